"""The posterior samplers (goldmine.inference.tempering, slice, hmc, importance): every mode found by the
default, the same posterior from every sampler on a unimodal target, R-hat warnings, bad input."""

import math

import pytest
import torch

from goldmine.inference.mcmc import DEFAULT_SAMPLER, SAMPLERS, posterior
from goldmine.inference.model import Model, distinct
from goldmine.inference.target import Target
from goldmine.inference.tempering import KernelProposal
from goldmine.simulators import Poisson, box_prior
from goldmine.simulators.base import DTYPE, Draws, Simulator

SIGMA = 0.2
QUICK = dict(chains=16, warmup=200, steps=400, progress=False)


class Folded(Simulator):
    """x = θ² + N(0, σ²) per dimension, θ ∈ [−2, 2]²: the posterior has four equal modes (±θ_0, ±θ_1)."""

    name, theta_dim, x_dim = "folded", 2, 2

    def __init__(self):
        self.prior = box_prior([-2.0, -2.0], [2.0, 2.0])
        self.reference = torch.zeros(2, dtype=DTYPE)

    def sample(self, theta, generator=None) -> Draws:
        theta = self.check_theta(theta)
        return Draws(theta ** 2 + SIGMA * torch.randn(theta.shape, dtype=DTYPE, generator=generator), None)

    def log_prob(self, x, theta):
        x, theta = self.check_x(x), self.check_theta(theta)
        return (-0.5 * ((x - theta ** 2) / SIGMA) ** 2 - math.log(SIGMA * math.sqrt(2 * math.pi))).sum(1)


FOLDED = Folded()
X_FOLDED = FOLDED.sample(torch.tensor([[1.0, -1.3]]).expand(10, 2), generator=torch.Generator().manual_seed(0)).x


def quadrant_shares(draws):
    q = (draws[:, 0] > 0).long() * 2 + (draws[:, 1] > 0).long()
    return torch.bincount(q, minlength=4).double() / len(q)


@pytest.mark.slow
def test_the_default_sampler_gives_every_mode_its_share():
    assert DEFAULT_SAMPLER == "tempered"
    with _no_warning():
        post = posterior(FOLDED, X_FOLDED, seed=1, **QUICK)
    shares = quadrant_shares(post.samples)
    # each share is a mean of indicators; its standard error from the chains' smallest ESS
    se = math.sqrt(0.25 * 0.75 / float(post.ess.min()))
    assert ((shares - 0.25).abs() < 4 * se).all(), (shares, se)
    assert post.rhat.max() < 1.05 and post.sampler == "tempered"
    # the chains cross between modes: most chains visit all four quadrants
    visits = [(quadrant_shares(chain) > 0).sum() for chain in post.draws]
    assert sum(int(v) == 4 for v in visits) >= len(visits) // 2, visits


class _no_warning:
    def __enter__(self):
        import warnings
        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("error", RuntimeWarning)

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)


def test_chains_stuck_in_different_modes_warn_with_rhat_per_parameter():
    init = torch.tensor([[1.0, 1.3]] * 4 + [[-1.0, -1.3]] * 4)
    with pytest.warns(RuntimeWarning, match=r"R-hat .* \(want ≤ 1.05\).*sampler='tempered'"):
        post = posterior(FOLDED, X_FOLDED, init=init, sampler="metropolis", chains=8, warmup=50, steps=100,
                         progress=False)
    assert (post.rhat > 1.3).all()  # both parameters flagged (half the chains in each of two modes)
    assert "R-hat" in post.summary()


def test_bad_sampler_and_settings_are_refused():
    with pytest.raises(ValueError, match="sampler='nuts' is not one of"):
        posterior(FOLDED, X_FOLDED, sampler="nuts", **QUICK)
    with pytest.raises(ValueError, match="at least 2 chains"):
        posterior(FOLDED, X_FOLDED, sampler="slice", chains=1, warmup=10, steps=10, progress=False)
    with pytest.raises(ValueError, match="outside the prior's support"):
        posterior(FOLDED, X_FOLDED, sampler="hmc", init=torch.full((16, 2), 5.0), **QUICK)


def test_importance_sampling_warns_when_the_posterior_is_narrow():
    with pytest.warns(RuntimeWarning, match="effective sample size"):
        post = posterior(FOLDED, X_FOLDED, sampler="importance", chains=4, steps=250, progress=False)
    assert post.rhat is None and post.draws.shape == (1, 1000, 2)
    assert "importance sampling" in post.summary()


def test_kernel_proposal_is_a_normalised_density():
    g = torch.Generator().manual_seed(0)
    cloud = torch.cat([torch.randn(300, 1, dtype=DTYPE, generator=g) * 0.1 - 2,
                       torch.randn(100, 1, dtype=DTYPE, generator=g) * 0.3 + 1])
    q = KernelProposal(cloud, g)
    grid = torch.linspace(-6, 6, 24001, dtype=DTYPE)[:, None]
    mass = float(q.log_prob(grid).exp().sum() * (grid[1] - grid[0]))
    assert abs(mass - 1) < 1e-3
    draws = q.sample(20000, g)
    # the proposal follows the cloud: its share near the larger cluster is about 3/4
    share = float((draws[:, 0] < -0.5).double().mean())
    assert abs(share - 0.75) < 0.05


def test_target_splits_prior_and_likelihood():
    model = Model(FOLDED)
    target = Target(model, *distinct(X_FOLDED))
    theta = torch.tensor([[1.0, 1.3], [3.0, 0.0]])
    log_prior, log_lik = target.terms(theta)
    assert torch.isneginf(log_prior[1]) and torch.isneginf(log_lik[1])
    assert torch.allclose(log_lik[:1], model.log_likelihood(theta[:1], X_FOLDED))
    assert torch.allclose(target.differentiable(theta[:1]), log_prior[:1] + log_lik[:1])
    assert target.evaluations == 2


@pytest.mark.slow
@pytest.mark.parametrize("sampler", [s for s in SAMPLERS if s != "importance"])
def test_every_sampler_matches_the_exact_poisson_posterior(sampler):
    sim = Poisson()
    x = sim.sample(torch.full((20, 1), 2.0), generator=torch.Generator().manual_seed(0)).x
    model = Model(sim)
    grid = torch.linspace(1.0, 3.0, 4001, dtype=DTYPE)[:, None]
    log_p = model.log_likelihood(grid, x)
    w = torch.softmax(log_p, 0)
    mean = float((w * grid[:, 0]).sum())
    std = float((w * (grid[:, 0] - mean) ** 2).sum().sqrt())
    # few steps: slice and hmc call the model several times per step
    post = posterior(sim, x, sampler=sampler, chains=8, warmup=100, steps=200, progress=False, seed=2)
    se = std / math.sqrt(float(post.ess.min()))
    assert abs(float(post.samples.mean()) - mean) < 4 * se, (sampler, float(post.samples.mean()), mean, se)
    assert abs(float(post.samples.std()) / std - 1) < 0.15
