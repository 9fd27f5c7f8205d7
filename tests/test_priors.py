"""Any torch prior with log_prob and sample: simulate, npe, Model (MLE, regions, MCMC) and ABC (issue 18, item 2).

The test simulator is x = θ + N(0, σ²) with a Gaussian prior N(0, 1) per dimension, whose posterior
is known: for n observations with mean x̄, θ|x ~ N(n x̄ / (n + σ²), σ² / (n + σ²)).
"""

import math

import pytest
import torch
from torch.distributions import Dirichlet, Distribution, Independent, LogNormal, Normal

import goldmine as gm
from goldmine.simulators import Draws, Simulator
from goldmine.simulators.priors import check_prior, grid_box, log_uniform, support_bounds

SIGMA = 0.5


class Shift(Simulator):
    """x = θ + N(0, σ²) in one dimension, with a Gaussian prior and an exact likelihood."""

    name, theta_dim, x_dim, has_gold, defined_outside_prior = "shift", 1, 1, False, True
    prior = Independent(Normal(torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)), 1)
    reference = torch.zeros(1, dtype=torch.float64)

    def sample(self, theta, generator=None):
        theta = self.check_theta(theta)
        return Draws(theta + SIGMA * torch.randn(theta.shape, dtype=torch.float64, generator=generator))

    def log_prob(self, x, theta):
        return Normal(self.check_theta(theta)[:, 0], SIGMA).log_prob(self.check_x(x)[:, 0])


class NoDensity(Distribution):
    """A prior that draws but has no log_prob."""

    arg_constraints = {}

    def __init__(self):
        super().__init__(event_shape=(1,), validate_args=False)

    def sample(self, sample_shape=()):
        return torch.randn(*sample_shape, 1)


def _exact(x_obs):
    n, mean = len(x_obs), float(x_obs.mean())
    return n * mean / (n + SIGMA**2), math.sqrt(SIGMA**2 / (n + SIGMA**2))


X_OBS = torch.tensor([[0.9], [1.3], [0.4], [1.0]], dtype=torch.float64)


def test_supports_and_grid_boxes_of_any_prior():
    gauss = Independent(Normal(torch.zeros(2), torch.ones(2)), 1)
    low, high = support_bounds(gauss)
    assert torch.isinf(low).all() and torch.isinf(high).all() and (low < 0).all()
    assert support_bounds(log_uniform([0.1, 1.0], [10.0, 100.0]))[1].tolist() == pytest.approx([10.0, 100.0])
    assert support_bounds(Independent(LogNormal(torch.zeros(1), 1.0), 1))[0].tolist() == [0.0]
    with pytest.raises(ValueError, match="not an interval"):
        support_bounds(Dirichlet(torch.ones(3)))
    # 10⁵ draws: the 0.05% and 99.95% quantiles (±3.29) have a standard error of about 0.04
    low, high = grid_box(gauss)
    assert torch.allclose(high, torch.full((2,), 3.2905, dtype=torch.float64), atol=0.16)
    assert torch.allclose(low, -high, atol=0.3)
    assert grid_box(gauss, bounds=([-1, -2], [1, 2]))[1].tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="low < high"):
        grid_box(gauss, bounds=([1, 0], [0, 1]))


def test_a_prior_without_log_prob_is_refused_with_the_fix():
    for call in (lambda: check_prior(NoDensity()), lambda: gm.inference.Model(Shift(), prior=NoDensity()),
                 lambda: gm.inference.rejection_abc(Shift(), X_OBS, prior=NoDensity(), progress=False),
                 lambda: gm.PosteriorEstimator(prior=NoDensity())):
        with pytest.raises(TypeError, match="does not implement log_prob.*Independent\\(Normal"):
            call()
    with pytest.raises(TypeError, match="has no sample"):
        check_prior(object())
    with pytest.raises(ValueError, match="event shape"):
        check_prior(Normal(torch.zeros(2), 1.0), theta_dim=2)


def test_simulate_draws_theta_from_a_gaussian_prior(tmp_path):
    data = gm.simulate(Shift(), 4000, tmp_path / "s.h5", progress=False)
    theta = data.tensors(["theta"], label=0, dtype=torch.float64)["theta"]
    # 2000 draws of N(0, 1): the mean within 4 standard errors, the variance within 4 of its own
    assert abs(float(theta.mean())) < 4 / math.sqrt(2000)
    assert abs(float(theta.var()) - 1) < 4 * math.sqrt(2 / 2000)


@pytest.mark.slow
def test_mle_region_and_mcmc_under_a_gaussian_prior():
    model = gm.inference.Model(Shift())
    assert model.low is None and float(model.grid_high[0]) > 3  # the grid: the prior's central 99.9%
    fit = gm.inference.mle(model, X_OBS)
    assert float(fit.theta) == pytest.approx(float(X_OBS.mean()), abs=1e-4) and not fit.on_edge
    region = gm.inference.confidence_region(model, X_OBS, 0.95, progress=False)
    half = 1.959964 * SIGMA / 2  # Wilks is exact here: x̄ ± 1.96 σ/√n
    step = float(model.grid_high - model.grid_low) / 100
    assert region.interval[0] == pytest.approx(float(X_OBS.mean()) - half, abs=step)
    assert region.interval[1] == pytest.approx(float(X_OBS.mean()) + half, abs=step)
    post = gm.inference.posterior(model, X_OBS, chains=16, warmup=300, steps=600, progress=False)
    mean, sd = _exact(X_OBS)
    samples = post.samples[:, 0]
    assert abs(float(samples.mean()) - mean) < 4 * sd / math.sqrt(float(post.ess[0]))
    assert float(samples.std()) == pytest.approx(sd, rel=0.1)
    # the normalised density against the exact one at the mean: midpoint rule, well below MC error
    assert float(post.log_prob(torch.tensor([[mean]]))) == pytest.approx(-math.log(sd * math.sqrt(2 * math.pi)),
                                                                        abs=0.03)


def test_abc_under_a_gaussian_prior():
    result = gm.inference.rejection_abc(Shift(), X_OBS[:1], n_samples=400, quantile=0.05, progress=False)
    mean, sd = _exact(X_OBS[:1])
    # ABC's tolerance widens the posterior a little: the mean within 4 standard errors of the broad one
    assert abs(float(result.samples.mean()) - mean) < 4 * 1.2 * sd / math.sqrt(400)


def test_model_without_prior_gives_the_likelihood_and_asks_for_bounds():
    model = gm.inference.Model(_Wrapped())
    ll = model.log_likelihood(torch.tensor([[0.0], [1.0]]), X_OBS)
    assert torch.allclose(ll, gm.inference.Model(Shift()).log_likelihood(torch.tensor([[0.0], [1.0]]), X_OBS))
    with pytest.raises(ValueError, match="no prior and no bounds"):
        gm.inference.mle(model, X_OBS)
    with pytest.raises(ValueError, match="needs the prior"):
        gm.inference.posterior(model, X_OBS)
    bounded = gm.inference.Model(_Wrapped(), bounds=([-3.0], [3.0]))
    assert float(gm.inference.mle(bounded, X_OBS).theta) == pytest.approx(float(X_OBS.mean()), abs=1e-4)


class _Wrapped:
    """Shift's exact likelihood seen as a likelihood surrogate (as nle is)."""

    theta_dim_, x_dim_, kind, capabilities = 1, 1, "likelihood", frozenset({"likelihood"})

    def log_likelihood_terms(self, x, theta):
        return Shift().log_prob(x, theta)


@pytest.mark.slow
def test_npe_restricts_to_the_support_of_a_log_uniform_prior():
    prior = log_uniform([0.1], [10.0])
    theta = gm.simulators.draw_prior(prior, 1000, seed=0)
    x = theta.log() + 0.3 * torch.randn(1000, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    npe = gm.PosteriorEstimator(prior=prior, epochs=3, progress=False).fit((theta, x))
    assert npe.params["prior"] == [[pytest.approx(0.1)], [pytest.approx(10.0)]]
    draws = npe.sample(torch.tensor([[2.2]]), 2000, generator=torch.Generator().manual_seed(0))
    assert ((draws >= 0.1) & (draws <= 10.0)).all()
    assert torch.isneginf(npe.log_prob(torch.tensor([[20.0]]), torch.tensor([[2.2]])))
    assert npe.acceptance_ < 1  # the flow leaks beyond 10 for x near its edge; the support check removes it


@pytest.mark.slow
def test_npe_under_a_gaussian_prior_matches_the_conjugate_posterior():
    prior = Shift.prior
    theta = gm.simulators.draw_prior(prior, 3000, seed=0)
    x = theta + SIGMA * torch.randn(3000, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    npe = gm.PosteriorEstimator(prior=prior, epochs=10, progress=False).fit((theta, x))
    post = gm.inference.posterior(npe, X_OBS[:1], prior=prior)
    mean, sd = _exact(X_OBS[:1])
    # the flow's error after 10 epochs on 2,700 rows dominates the 10⁴ draws' (sd/100)
    assert float(post.samples.mean()) == pytest.approx(mean, abs=0.1)
    assert float(post.samples.std()) == pytest.approx(sd, rel=0.15)
    with pytest.raises(ValueError, match="cannot change prior"):
        gm.inference.posterior(npe, X_OBS[:1], prior=gm.simulators.box_prior([-1.0], [1.0]))
