"""The balancing condition of BNRE (`RatioEstimator(balance=λ)`, `goldmine.losses.balancing`): the penalty's value,
the classes it compares for carl and nre, that a balanced fit is balanced on held-out rows, and that it is kept."""

import math

import pytest
import torch

import goldmine as gm
from goldmine import losses
from goldmine.estimators.ratio import balance_penalty

SIM = gm.simulators.GaltonBoard()
FAST = dict(epochs=10, hidden=(64, 64), progress=False)


def test_the_penalty_is_the_squared_excess_of_the_two_class_means():
    first, second = torch.tensor([0.0, math.log(3.0)]), torch.tensor([-math.log(3.0)])
    # σ: ½ and ¾ in the first class (mean 5/8), ¼ in the second: (5/8 + 1/4 − 1)² = 1/64
    assert float(losses.balancing(first, second)) == pytest.approx(1 / 64, rel=1e-6)
    assert float(losses.balancing(torch.zeros(3), torch.zeros(2))) == 0.0  # σ = ½: the trivial classifier is balanced
    assert float(losses.balancing(first, torch.zeros(0))) == 0.0  # a class missing from the batch: no penalty
    first.requires_grad_(True)
    (grad,) = torch.autograd.grad(losses.balancing(first, second), first)
    s = torch.sigmoid(first.detach())  # d/dd_i = 2·(excess)·σ'(d_i)/n₁
    torch.testing.assert_close(grad, 2 * (-1 / 8) * s * (1 - s) / 2)


def test_the_true_ratio_is_balanced():
    """E_{x~p(x|θ)}[σ(log r)] + E_{x~p(x|θ_ref)}[σ(log r)] = 1 for the exact Galton ratio at every θ."""
    x = torch.arange(32.0, dtype=torch.float64)[:, None]
    for t in (-0.9, -0.3, 0.4, 1.0):
        theta = torch.full((32, 1), t, dtype=torch.float64)
        log_p, log_p_ref = SIM.log_prob(x, theta), SIM.log_prob(x, torch.zeros_like(theta))
        seen = (log_p > -math.inf) | (log_p_ref > -math.inf)  # x that neither θ reaches adds nothing
        p, p_ref, s = log_p[seen].exp(), log_p_ref[seen].exp(), torch.sigmoid(log_p[seen] - log_p_ref[seen])
        assert float((p * s).sum() + (p_ref * s).sum()) == pytest.approx(1.0, abs=1e-12)


def test_the_classes_are_the_labels_or_the_joint_and_the_shuffled_pairs():
    a = torch.tensor([1.0, -1.0, 2.0, 0.5])
    y = torch.tensor([0.0, 1.0, 0.0, 1.0])
    by_label = balance_penalty({"log_r_hat": a, "y": y})
    assert float(by_label) == pytest.approx(float(losses.balancing(a[[0, 2]], a[[1, 3]])))
    marginal = torch.tensor([-2.0, 0.0, 1.0, -1.0])
    assert float(balance_penalty({"log_r_hat": a, "log_r_hat_marginal": marginal})) == pytest.approx(
        float(losses.balancing(a, marginal)))


def test_balance_is_an_option_of_every_ratio_method_off_by_default():
    assert all(gm.RatioEstimator(m).balance == 0.0 for m in ("carl", "alice", "cascal", "alices", "nre", "nres"))
    est = gm.RatioEstimator("nre", balance=100)
    assert est.balance == 100.0 and est.params["balance"] == 100.0
    assert gm.RatioEstimator().balance is None  # the method, and with it the default, is chosen by fit
    from goldmine.workflow.training import method_options
    assert method_options("carl")["balance"] == 0.0 and method_options("nre")["balance"] == 0.0  # --option balance=λ
    for bad in (-1, math.inf, "100", math.nan):
        with pytest.raises(ValueError, match="balance must be a finite number ≥ 0"):
            gm.RatioEstimator("carl", balance=bad)


def held_out_balance(est, rows: dict) -> tuple[float, float]:
    """mean σ(log r̂) over the held-out rows drawn at θ + over those drawn at θ_ref − 1, and its standard error."""
    s = torch.sigmoid(est.log_ratio(rows["x"], rows["theta"]))
    s0, s1 = s[rows["label"] == 0], s[rows["label"] == 1]
    return float(s0.mean() + s1.mean() - 1), float((s0.var() / len(s0) + s1.var() / len(s1)).sqrt())


@pytest.mark.slow
def test_a_balanced_carl_is_balanced_on_held_out_rows_and_keeps_its_balance_through_save_load(tmp_path):
    data = gm.simulate(SIM, 2000, tmp_path / "train.h5", seed=0, progress=False)
    held = gm.simulate(SIM, 20_000, tmp_path / "held.h5", seed=1, progress=False).tensors(["theta", "x", "label"])
    est = gm.RatioEstimator("carl", balance=100, seed=0, **FAST).fit(data)
    excess, stderr = held_out_balance(est, held)
    assert abs(excess) < 3 * stderr, (excess, stderr)  # balanced within 3 standard errors of 20,000 rows
    again = gm.load(est.save(tmp_path / "m"))
    assert again.balance == 100.0 and again.params == est.params
    x, theta = torch.arange(5.0, 26.0)[:, None], torch.linspace(-1, 1, 21)[:, None]
    torch.testing.assert_close(again.log_ratio(x, theta), est.log_ratio(x, theta), rtol=0, atol=0)
    plain = gm.RatioEstimator("carl", seed=0, **FAST).fit(data)
    assert not torch.equal(plain.log_ratio(x, theta), est.log_ratio(x, theta))  # the penalty reaches the loss
    members = gm.Ensemble(gm.RatioEstimator("carl", balance=100, seed=0, **{**FAST, "epochs": 1}), 2).fit(data)
    assert all(m.balance == 100.0 for m in members.members_)


@pytest.mark.slow
def test_a_balanced_nre_is_balanced_between_joint_and_shuffled_pairs_on_held_out_rows(tmp_path):
    data = gm.simulate(SIM, 2000, tmp_path / "train.h5", seed=0, progress=False, layout="prior")
    held = gm.simulate(SIM, 20_000, tmp_path / "held.h5", seed=1, progress=False, layout="prior").tensors(["theta", "x"])
    est = gm.RatioEstimator("nre", balance=100, seed=0, **FAST).fit(data)
    joint = torch.sigmoid(est.log_ratio_evidence(held["x"], held["theta"]))
    shuffled = torch.sigmoid(est.log_ratio_evidence(held["x"], held["theta"].roll(1, dims=0)))
    excess = float(joint.mean() + shuffled.mean() - 1)
    stderr = float(((joint + shuffled).var() / len(joint)).sqrt())  # the pairs share x: the sum per row
    assert abs(excess) < 3 * stderr, (excess, stderr)
