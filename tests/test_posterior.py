"""PosteriorEstimator (npe) against the exact grid posterior of Weinberg; the prior's box; saving."""

import math

import pytest
import torch

import goldmine as gm
from goldmine.estimators.posterior import LEAKAGE_DRAWS, PosteriorEstimator
from goldmine.evaluate import c2st, grid_posterior_samples

# npe fits the shared pair-layout data on purpose (its runs at θ ~ prior are the training set these tests were
# built on); the warning about the unused runs at θ_ref is tested in test_model_selection.py.
pytestmark = pytest.mark.filterwarnings("ignore::goldmine.estimators.base.UnusedRunsWarning")

WEINBERG = gm.simulators.Weinberg()
BOX = ([40.0, 0.5], [50.0, 1.2])
FAST = dict(epochs=20, batch_size=128, lr=2e-3, transforms=1, progress=False)
CELLS = 200  # per dimension, for the exact posterior and the integrals over the box


@pytest.fixture(scope="module")
def weinberg(tmp_path_factory):
    return gm.simulate(WEINBERG, 10_000, tmp_path_factory.mktemp("post") / "w.h5", seed=0, progress=False)


@pytest.fixture(scope="module")
def x_obs():
    """One observation drawn at a θ inside the prior's box."""
    return WEINBERG.sample(torch.tensor([[47.0, 1.0]], dtype=torch.float64), generator=torch.Generator().manual_seed(1)).x


@pytest.fixture(scope="module")
def npe(weinberg):
    return PosteriorEstimator(prior=BOX, seed=0, **FAST).fit(weinberg)


def box_cells(low, high):
    """Centres (CELLS², 2) of an even grid of cells on the box, and one cell's area."""
    axes = [lo + (torch.arange(CELLS, dtype=torch.float64) + 0.5) * (hi - lo) / CELLS for lo, hi in zip(low, high)]
    return torch.cartesian_prod(*axes), math.prod((hi - lo) / CELLS for lo, hi in zip(low, high))


@pytest.mark.slow
def test_npe_matches_the_exact_posterior(npe, x_obs):
    n = 2000
    exact = [grid_posterior_samples(WEINBERG, x_obs, n, generator=torch.Generator().manual_seed(s)) for s in (2, 3)]
    # Noise floor: two exact samples; held-out accuracy over 2n = 4000 rows has sd √(¼/4000) = 0.008.
    # Measured 0.487–0.507 over five seeds. The prior itself scores 0.603 (the Bayes accuracy against
    # this posterior is 0.5 + TV/2 = 0.597): 0.55 is halfway, 6 sd above chance. Measured npe:
    # 0.501–0.512 over training seeds 0–2.
    floor = c2st(exact[0], exact[1])
    assert abs(floor - 0.5) < 4 * math.sqrt(0.25 / (2 * n)), floor
    draws = npe.sample(x_obs, n, generator=torch.Generator().manual_seed(4))
    assert draws.shape == (n, 2) and npe.prior_.support.check(draws.double()).all()
    assert c2st(exact[0], draws) < 0.55

    # The same by densities on the grid: total variation from the exact posterior. The prior is 0.195
    # away; measured npe 0.060–0.063 over training seeds 0–2.
    cells, area = box_cells(*BOX)
    exact_mass = torch.softmax(WEINBERG.log_prob(x_obs.expand(len(cells), -1), cells), 0)
    npe_mass = npe.log_prob(cells, x_obs).double().exp() * area
    # the leakage correction makes q_B integrate to 1 over the box: Z(x) ≈ 0.98 from 10⁴ draws has a
    # standard error of 0.0014 (measured within 0.001)
    assert abs(npe_mass.sum() - 1) < 0.01, npe_mass.sum()
    prior_tv = 0.5 * (exact_mass - 1 / len(cells)).abs().sum()
    npe_tv = 0.5 * (exact_mass - npe_mass).abs().sum()
    assert npe_tv < 0.5 * prior_tv, (npe_tv, prior_tv)


@pytest.mark.slow
def test_log_prob_outside_the_box_and_shapes(npe, x_obs):
    theta = torch.tensor([[45.0, 0.8], [39.9, 0.8], [45.0, 1.21], [50.0, 0.5]])
    log_q = npe.log_prob(theta, x_obs)
    assert log_q.shape == (4,) and log_q[[1, 2]].eq(-math.inf).all() and torch.isfinite(log_q[[0, 3]]).all()
    # one θ, one x: every accepted form of a single point gives the same value, up to float32 kernels
    # that differ in the last bits with the batch shape and the instruction set (rtol 1e-5)
    for t, x in ((theta[0], x_obs[0]), (theta[:1], x_obs), (theta[0], x_obs.expand(4, 1))):
        torch.testing.assert_close(npe.log_prob(t, x), log_q[0].expand(len(x)), rtol=1e-5, atol=1e-5)
    # one observation per row, with Z(x) per distinct x: rows 0 and 2 agree (up to the last bits, which
    # may depend on a row's place in the batch), rows 0, 1 and 3 differ
    xs = torch.tensor([[-0.5], [0.5], [-0.5], [0.9]])
    per_row = npe.log_prob(theta[[0, 0, 0, 0]], xs)
    torch.testing.assert_close(per_row[0], per_row[2], rtol=1e-5, atol=1e-5)
    assert min(abs(per_row[i] - per_row[j]) for i, j in ((0, 1), (0, 3), (1, 3))) > 1e-3, per_row


@pytest.mark.slow
def test_sampling_is_reproducible_and_leaves_the_global_generator_alone(npe, x_obs):
    state = torch.get_rng_state()
    a = npe.sample(x_obs, 500, generator=torch.Generator().manual_seed(7))
    b = npe.sample(x_obs[0], 500, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), state)


@pytest.mark.slow
def test_a_narrower_box_rejects_draws(weinberg, x_obs):
    # Training ignores the box, so the same seed gives the same flow, restricted to a narrower box; for a
    # uniform prior that is the exact posterior restricted to the box.
    low, high = [42.0, 0.6], [48.0, 1.1]
    est = PosteriorEstimator(prior=(low, high), seed=0, **{**FAST, "epochs": 5}).fit(weinberg)
    n = 4000
    draws = est.sample(x_obs, n, generator=torch.Generator().manual_seed(1))
    assert draws.shape == (n, 2) and est.prior_.support.check(draws.double()).all()
    # the acceptance and Z(x) are two independent estimates of the flow's mass inside the box
    z = math.exp(est._log_z(x_obs.float()))
    assert 0.2 < est.acceptance_ < 0.8, est.acceptance_  # the box holds 43% of the prior; measured 0.389
    drawn = n / est.acceptance_
    assert abs(est.acceptance_ - z) < 4 * math.sqrt(z * (1 - z) * (1 / drawn + 1 / LEAKAGE_DRAWS))
    # q_B integrates to 1 up to the relative error of Z(x) from 10⁴ draws, √((1 − Z)/(Z·10⁴)) = 0.012
    # (measured 0.015: Z = 0.387 from the draws, 0.393 by the grid)
    cells, area = box_cells(low, high)
    mass = est.log_prob(cells, x_obs).double().exp().sum() * area
    assert abs(mass - 1) < 4 * math.sqrt((1 - z) / (z * LEAKAGE_DRAWS)), mass


def test_default_box_is_the_range_of_the_training_theta(weinberg, x_obs):
    est = PosteriorEstimator(seed=0, **{**FAST, "epochs": 1}).fit(weinberg)
    low, high = est.network_.low.double(), est.network_.high.double()
    # 5000 uniform draws per dimension: the extremes fall within 0.2% of the width (p > 1 − 1e-4)
    width = torch.tensor([10.0, 0.7], dtype=torch.float64)
    for gap in ((low - torch.tensor(BOX[0])) / width, (torch.tensor(BOX[1]) - high) / width):
        assert ((gap >= 0) & (gap < 2e-3)).all(), (low, high)
    assert est.params["prior"] is None


def test_the_prior_can_be_a_box_distribution_or_its_simulator():
    sim = gm.simulators.Weinberg()
    for prior in (sim, sim.prior, gm.simulators.box_prior(*BOX)):
        assert PosteriorEstimator(prior=prior).params["prior"] == [list(BOX[0]), list(BOX[1])]
    # any torch prior: its support, unbounded dimensions stored as None (tests/test_sbi_priors.py)
    gauss = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(2), 1.0), 1)
    assert PosteriorEstimator(prior=gauss).params["prior"] == [[None, None], [None, None]]


@pytest.mark.slow
def test_leaking_flows_warn_and_hopeless_ones_raise(weinberg, x_obs):
    small = PosteriorEstimator(prior=([44.0, 0.8], [44.5, 0.835]), seed=0, **{**FAST, "epochs": 1}).fit(weinberg)
    with pytest.warns(RuntimeWarning, match="leaks most of its mass"):
        assert small.sample(x_obs, 10, generator=torch.Generator().manual_seed(0)).shape == (10, 2)
    assert 1e-4 < small.acceptance_ < 0.01
    tiny = PosteriorEstimator(prior=([44.0, 0.8], [44.001, 0.8001]), seed=0, **{**FAST, "epochs": 1}).fit(weinberg)
    with pytest.raises(RuntimeError, match="fell inside the prior's box"):
        tiny.sample(x_obs, 10)
    assert tiny.acceptance_ < 1e-4
    with pytest.raises(RuntimeError, match="cannot be estimated"):
        tiny.log_prob(torch.tensor([44.0005, 0.80005]), x_obs)


@pytest.mark.parametrize("flow", ["nsf", "maf"])
def test_save_load_gives_identical_outputs(weinberg, x_obs, tmp_path, flow):
    est = PosteriorEstimator(prior=BOX, flow=flow, seed=3, **{**FAST, "epochs": 1}).fit(weinberg)
    again = gm.load(est.save(tmp_path / flow))
    assert isinstance(again, PosteriorEstimator) and again.params == est.params
    # the flow shared with nle keeps npe's names of its weights, so models saved before it load
    names = {"theta_norm.mean", "theta_norm.std", "x_norm.mean", "x_norm.std", "reference", "low", "high"}
    assert names <= set(again.network_.state_dict())
    theta = torch.tensor([[41.0, 0.6], [45.0, 0.9], [49.0, 1.1], [51.0, 0.9]])
    torch.testing.assert_close(again.log_prob(theta, x_obs), est.log_prob(theta, x_obs), rtol=0, atol=0)
    draws = [e.sample(x_obs, 100, generator=torch.Generator().manual_seed(0)) for e in (est, again)]
    torch.testing.assert_close(draws[0], draws[1], rtol=0, atol=0)
    # the default box, learned from the data, is saved with the weights
    est = PosteriorEstimator(flow=flow, seed=3, **{**FAST, "epochs": 1}).fit(weinberg)
    again = gm.load(est.save(tmp_path / f"{flow}-default"))
    torch.testing.assert_close(again.network_.low, est.network_.low, rtol=0, atol=0)
    torch.testing.assert_close(again.log_prob(theta, x_obs), est.log_prob(theta, x_obs), rtol=0, atol=0)


def test_discrete_x_is_a_context(tmp_path):
    galton = gm.simulate(gm.simulators.GaltonBoard(), 2000, tmp_path / "g.h5", seed=0, progress=False)
    est = PosteriorEstimator(seed=0, **{**FAST, "epochs": 2}).fit(galton)
    draws = est.sample(torch.tensor([12.0]), 200, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (200, 1) and est.prior_.support.check(draws.double()).all()
    assert torch.isfinite(est.log_prob(torch.linspace(-0.9, 0.9, 7), torch.tensor([[12.0]]))).all()


def test_bad_input(weinberg, x_obs):
    with pytest.raises(ValueError, match=r"unknown method 'nle'.*npe"):
        PosteriorEstimator("nle")
    with pytest.raises(ValueError, match=r"unknown flow 'realnvp'.*nsf, maf"):
        PosteriorEstimator(flow="realnvp")
    with pytest.raises(ValueError, match="low < high"):
        PosteriorEstimator(prior=([40, 1.2], [50, 0.5]))
    with pytest.raises(ValueError, match="one bound per θ dimension each; got 2 lows and 3 highs"):
        PosteriorEstimator(prior=([40, 0.5], [50, 1.2, 3]))
    with pytest.raises(ValueError, match="must be a box"):
        PosteriorEstimator(prior=[40, 50, 60])
    with pytest.raises(RuntimeError, match="not fitted"):
        PosteriorEstimator().sample(x_obs, 3)
    with pytest.raises(ValueError, match=r"prior has 3 dimensions, but the θ of .* have 2"):
        PosteriorEstimator(prior=([0, 0, 0], [1, 1, 1]), progress=False).fit(weinberg)

    est = PosteriorEstimator(prior=BOX, seed=0, **{**FAST, "epochs": 1}).fit(weinberg)
    with pytest.raises(ValueError, match=r"one observation of shape \(1, 1\) or \(1,\); got \(1, 2\)"):
        est.sample(torch.zeros(1, 2), 3)
    with pytest.raises(ValueError, match=r"one observation .* got \(2, 1\)"):
        est.sample(torch.zeros(2, 1), 3)
    with pytest.raises(ValueError, match="NaN"):
        est.sample(torch.tensor([[float("nan")]]), 3)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        est.sample(x_obs, 0)
    with pytest.raises(ValueError, match="NaN"):
        est.log_prob(torch.tensor([45.0, 0.8]), torch.tensor([[float("inf")]]))
    with pytest.raises(ValueError, match=r"theta has shape \(3, 3\)"):
        est.log_prob(torch.zeros(3, 3), x_obs)
    with pytest.raises(ValueError, match=r"x has shape \(2, 1\)"):
        est.log_prob(torch.zeros(3, 2), torch.zeros(2, 1))
    with pytest.raises(ValueError, match=r"x must have shape \(n, 1\)"):
        est.log_prob(torch.zeros(3, 2), torch.zeros(3, 2))
