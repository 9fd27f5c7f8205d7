"""two_moons' gold (issue 18 item 7): exact, infinite where one of the two supports excludes a run, kept in data sets.

Its likelihood's support, the half-plane x₀ > b(θ) = 0.25 − |θ₀ + θ₁|/√2, moves with θ and its density does
not vanish at the edge. Hence (module docstring of goldmine.simulators.two_moons):
- a run drawn at θ left of θ_ref's edge has log r = +∞ exactly, and the data set keeps it;
- E_θref[r] = 1 holds once the runs at θ with r = ∞ are counted (check_gold's tail form);
- E_θ[t] = ∂b/∂θ · F with F = ∫ p(b, x₁|θ) dx₁ = (2/π)·E[1/ρ], ρ ~ N(0.1, 0.01²): a boundary term, not 0.
"""

import math

import torch

import goldmine as gm
from goldmine import losses
from goldmine.simulators.base import DTYPE
from goldmine.simulators.two_moons import R_LOC, R_SCALE


def test_data_keep_the_runs_whose_joint_ratio_is_infinite(tmp_path):
    sim = gm.simulators.TwoMoons()
    data = gm.simulate(sim, 400, tmp_path / "tm.h5", seed=0, progress=False)
    assert data.invalid_rows == 0
    rows = data.tensors(["theta", "x", "label", "log_r", "score"], dtype=DTYPE)
    assert len(rows["x"]) == 400  # every row is read
    at_theta = rows["label"] == 0
    outside_ref = rows["x"][:, 0] <= 0.25  # left of θ_ref = 0's edge
    # r = ∞ exactly there (log p(x|θ_ref) = −∞), finite everywhere else; the scores are finite
    assert torch.isposinf(rows["log_r"][at_theta & outside_ref]).all() and (at_theta & outside_ref).sum() > 100
    assert torch.isfinite(rows["log_r"][~(at_theta & outside_ref)]).all()
    assert torch.isfinite(rows["score"]).all()
    # the ratio losses read such labels finitely: ALICE's soft label s = 1/(1 + r) = 0, rolr clips log r
    log_r_hat = torch.zeros(len(rows["log_r"]))
    assert torch.isfinite(losses.alice(log_r_hat, rows["log_r"].float())).all()
    assert torch.isfinite(losses.rolr(log_r_hat, rows["log_r"].float(), rows["label"].float())).all()


def test_two_moons_gold_identities_hold_with_the_runs_of_infinite_ratio():
    report = gm.check_gold(gm.simulators.TwoMoons(), runs=4000, bins=2, verbose=False)
    assert report.passed, report.table()


def test_the_mean_joint_score_is_the_boundary_term_of_the_moving_support():
    sim = gm.simulators.TwoMoons()
    n = 100_000
    rho = torch.linspace(R_LOC - 8 * R_SCALE, R_LOC + 8 * R_SCALE, 20001, dtype=DTYPE)
    normal = torch.exp(-0.5 * ((rho - R_LOC) / R_SCALE) ** 2) / (R_SCALE * math.sqrt(2 * math.pi))
    flux = 2 / math.pi * float(torch.trapezoid(normal / rho, rho))  # ∫ p(b, x₁|θ) dx₁
    for k, point in enumerate(([0.3, 0.2], [-0.5, 0.1])):
        theta = torch.tensor([point], dtype=DTYPE).expand(n, 2)
        t = sim.joint_score(sim.sample(theta, torch.Generator().manual_seed(k)), theta)
        expected = -math.copysign(1.0, sum(point)) / math.sqrt(2) * flux  # ∂b/∂θ_j · F, the same for j = 0, 1
        se = t.std(0) / math.sqrt(n)
        assert ((t.mean(0) - expected).abs() < 4 * se).all(), (t.mean(0), expected, se)
        assert (t.mean(0).abs() > 10 * se).all()  # and far from 0: E[t] = 0 does not hold here
