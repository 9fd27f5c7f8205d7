"""Regions that say when they cannot be trusted, and the batched toys behind Neyman regions: the
batched toys against a per-toy reference, the calibration check of a Wilks region on the exact and
on a too-steep likelihood, and the flag of an MLE on the prior's edge."""

import math
import warnings

import pytest
import torch
from scipy.stats import chi2

import goldmine as gm
from goldmine.executor import seeded_generator
from goldmine.inference import Model, confidence_region, mle
from goldmine.inference import model as model_module
from goldmine.inference import toys as toys_module
from goldmine.inference.grid import Mesh
from goldmine.inference.intervals import CalibrationWarning, trust_notes
from goldmine.inference.toys import draw_toys, neyman_thresholds, toy_quantile
from goldmine.simulators import GaltonBoard, Weinberg, box_prior

DTYPE = torch.float64


class Steep:
    """The exact likelihood raised to the power 3: q is 3 times too large, so Wilks regions are too small."""

    kind = "ratio"

    def __init__(self, sim):
        self.sim, self.theta_dim_, self.x_dim_ = sim, sim.theta_dim, sim.x_dim

    def log_likelihood_terms(self, x, theta):
        return 3.0 * self.sim.log_prob(x, theta)


def observed(sim, theta, n, seed=0):
    theta = torch.as_tensor(theta, dtype=DTYPE).reshape(1, -1)
    return sim.sample(theta.expand(n, -1), generator=torch.Generator().manual_seed(seed)).x


def reference_thresholds(terms, sim, grid, level, toys, n, seed):
    """Neyman thresholds the plain way: each toy on its own, its rows paired with every θ for `terms(x, θ)`."""
    mesh, out = Mesh(grid), []
    for j in range(len(grid)):
        x = draw_toys(sim, grid[j], toys, n, seeded_generator(seed, j))
        q = []
        for k in range(toys):
            rows = terms(x[k].repeat(len(grid), 1), grid.repeat_interleave(n, 0))
            log_lik = rows.double().reshape(len(grid), n).sum(1)
            q.append(2.0 * (mesh.maximum(log_lik[None])[0] - log_lik[j]))
        out.append(toy_quantile(torch.stack(q).clamp(min=0.0), level))
    return torch.tensor(out, dtype=DTYPE)


@pytest.fixture(scope="module")
def weinberg_ratio(tmp_path_factory):
    sim = Weinberg()
    data = gm.simulate(sim, 1000, tmp_path_factory.mktemp("trust") / "w.h5", progress=False)
    return sim, gm.RatioEstimator("alices", hidden=(16, 16), epochs=1, progress=False).fit(data)


@pytest.mark.slow
def test_batched_toys_match_a_per_toy_reference(weinberg_ratio, monkeypatch):
    """Continuous x through a ratio network's table (reference term once per x), in blocks small
    enough that every loop runs more than once, against its log_ratio pair by pair."""
    sim, est = weinberg_ratio
    monkeypatch.setattr(model_module, "CHUNK", 256)
    monkeypatch.setattr(toys_module, "TERMS_PER_PASS", 500)
    model = Model(est, prior=sim, simulator=sim)
    grid = model.grid(4)
    batched = neyman_thresholds(model, sim, grid, 0.68, 12, 15, seed=3, progress=False)
    expected = reference_thresholds(est.log_ratio, sim, grid, 0.68, 12, 15, seed=3)
    torch.testing.assert_close(batched, expected, rtol=1e-4, atol=1e-4)  # float32 network, other batch shapes


def test_batched_toys_of_discrete_x_match_a_per_toy_reference(monkeypatch):
    """Discrete x (each distinct value once) on the exact Galton likelihood: the same numbers."""
    sim = GaltonBoard()
    monkeypatch.setattr(model_module, "CHUNK", 64)
    model = Model(sim)
    grid = model.grid(5)
    batched = neyman_thresholds(model, sim, grid, 0.9, 20, 40, seed=1, progress=False)
    expected = reference_thresholds(sim.log_prob, sim, grid, 0.9, 20, 40, seed=1)
    torch.testing.assert_close(batched, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("n", [7, 5000])  # blocks of θ with every x, blocks of x with every θ
def test_terms_of_every_pair_agree_with_the_surrogate_row_by_row(weinberg_ratio, monkeypatch, n):
    sim, est = weinberg_ratio
    monkeypatch.setattr(model_module, "CHUNK", 1 << 13)
    model = Model(est, prior=sim)
    theta = model.grid(6)
    x = observed(sim, sim.reference, n)
    table = model.per_event(theta, x)
    rows = est.log_ratio(x.repeat(len(theta), 1), theta.repeat_interleave(n, 0)).double().reshape(len(theta), n)
    torch.testing.assert_close(table, rows, rtol=1e-5, atol=1e-5)


def test_the_check_of_an_exact_wilks_region_finds_the_nominal_coverage():
    sim, toys, level = GaltonBoard(), 300, 0.95
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        region = confidence_region(sim, observed(sim, [0.3], 100), level=level, check=toys)
    c = region.calibration
    assert c["toys"] == toys and c["level"] == level and c["points"][0]["theta"] == region.mle.theta.tolist()
    # θ̂ and the two ends of the 99% region (within a grid step), 300 toys each: every coverage within 3 binomial
    # standard errors of the level
    low, high = confidence_region(sim, observed(sim, [0.3], 100), level=0.99).interval
    assert [p["toys"] for p in c["points"]] == [toys] * 3
    assert c["points"][1]["theta"][0] == pytest.approx(low, abs=0.02)
    assert c["points"][2]["theta"][0] == pytest.approx(high, abs=0.02)
    for p in c["points"]:
        assert abs(p["coverage"] - level) < 3 * math.sqrt(level * (1 - level) / p["toys"])
        assert p["stderr"] == pytest.approx(math.sqrt(p["coverage"] * (1 - p["coverage"]) / p["toys"]))
    assert c["coverage"] == min(p["coverage"] for p in c["points"]) and c["theta"] in [p["theta"] for p in c["points"]]
    assert not c["under_covers"] and "consistent with the nominal 0.95" in region.summary()
    unchecked = confidence_region(sim, observed(sim, [0.3], 100), level=level)
    assert unchecked.calibration is None and unchecked.interval == region.interval


def test_the_check_of_a_too_steep_surrogate_warns():
    sim, toys, level = GaltonBoard(), 300, 0.95
    model = Model(Steep(sim), prior=sim, simulator=sim)
    with pytest.warns(CalibrationWarning, match=r"lowest coverage 0\.\d+ ± 0\.\d+ at .*by 300 toys.*method='neyman'"):
        region = confidence_region(model, observed(sim, [0.3], 100), level=level, check=toys)
    # q is 3 times the true one, so the threshold covers P(χ²₁ ≤ χ²₁(0.95) / 3) = 0.74 asymptotically, at every θ
    c = region.calibration
    assert c["under_covers"] and c["p_value"] < 1e-6
    for p in c["points"]:  # the check stops at its first certain warning: the points after it may be unmeasured
        assert p["toys"] == 0 or (abs(p["coverage"] - chi2.cdf(chi2.ppf(level, 1) / 3, 1))
                                  < 4 * math.sqrt(0.74 * 0.26 / p["toys"]))
    assert "too small to be trusted" in region.summary() and "lowest checked coverage" in repr(region)


def test_the_check_is_for_wilks_and_needs_a_simulator():
    sim = GaltonBoard()
    x = observed(sim, [0.3], 50)
    with pytest.raises(ValueError, match="Neyman region is calibrated by its own toys"):
        confidence_region(sim, x, method="neyman", check=100)
    with pytest.raises(ValueError, match="check must be a positive integer"):
        confidence_region(sim, x, check=0)
    with pytest.raises(ValueError, match="pass simulator=sim"):
        confidence_region(Model(Steep(sim), prior=sim.prior), x, check=100)


def test_an_mle_on_the_prior_edge_is_flagged():
    sim = GaltonBoard()
    x = observed(sim, [0.3], 100)
    inside = mle(sim, x)
    assert not inside.on_edge and inside.edge_axes == ()
    # a prior that leaves out the truth: the likelihood rises up to its lower bound
    narrow = Model(sim, prior=box_prior([0.6], [1.0]))
    fit = mle(narrow, x)
    assert fit.theta.item() == pytest.approx(0.6, abs=1e-6) and fit.on_edge and fit.edge_axes == (0,)
    region = confidence_region(narrow, x)
    assert region.mle.on_edge and "edge of the prior's box (in θ)" in region.summary()  # θ's name
    assert "θ̂ on the prior's edge" in repr(region)


def test_an_mle_in_a_corner_of_a_two_dimensional_box_names_both_axes():
    """Weinberg's p(x|θ) depends on θ through A(θ) = 2 tanh(s(E)) G_f alone; with G_f ≤ 0.6 no θ of the box
    reaches the true A, and ℓ rises towards its most negative A, at the corner E = 40, G_f = 0.6."""
    sim = Weinberg()
    x = observed(sim, sim.reference, 200)
    model = Model(sim, prior=box_prior([40.0, 0.5], [50.0, 0.6]))
    fit = mle(model, x, grid=model.grid(15))
    assert fit.edge_axes == (0, 1)
    torch.testing.assert_close(fit.theta, torch.tensor([40.0, 0.6], dtype=DTYPE), rtol=0, atol=1e-6)
    assert "in θ_0, θ_1" in trust_notes(fit.edge_axes, None)[0]


def test_summary_says_whether_the_true_theta_is_inside():
    sim = GaltonBoard()
    region = confidence_region(sim, observed(sim, [0.3], 100))
    assert "the true θ = 0.3 is inside the region" in region.summary(true_theta=[0.3])
    assert "the true θ = -0.9 is outside the region" in region.summary(true_theta=[-0.9])
