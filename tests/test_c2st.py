"""The classifier two-sample test and exact grid posteriors (goldmine.evaluate)."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch.distributions import Normal

from goldmine.evaluate import c2st, grid_posterior_samples
from goldmine.simulators import BlackBoxSimulator, GaltonBoard, Poisson, Weinberg, box_prior


def normal(n, d, seed, shift=0.0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


@pytest.mark.slow
def test_c2st_of_identical_distributions_is_chance():
    # Held-out accuracy over 2n = 2000 rows: under p = q its standard deviation is √(¼/2000) = 0.011.
    values = [c2st(normal(1000, 2, 2 * s), normal(1000, 2, 2 * s + 1), seed=s) for s in range(2)]
    for value in values:
        assert abs(value - 0.5) < 4 * math.sqrt(0.25 / 2000), values


@pytest.mark.slow
def test_c2st_of_disjoint_distributions_is_one():
    assert c2st(normal(300, 3, 0), normal(300, 3, 1, shift=6.0)) > 0.99


@pytest.mark.slow
def test_c2st_reaches_the_bayes_accuracy():
    # N(0, 1) against N(1, 1): the best classifier (threshold at ½) is right with probability Φ(½) = 0.691.
    # Held-out standard deviation √(0.69·0.31/2000) = 0.010; the fitted classifier may fall a little short.
    value = c2st(normal(1000, 1, 0), normal(1000, 1, 1, shift=1.0))
    assert abs(value - stats.norm.cdf(0.5)) < 0.04, value
    assert c2st(normal(1000, 1, 0)[:, 0], normal(1000, 1, 1, shift=1.0)[:, 0]) == value  # (n,) is (n, 1)


@pytest.mark.slow
def test_c2st_is_reproducible_and_leaves_the_global_generator_alone():
    p, q = normal(200, 2, 0), normal(200, 2, 1, shift=0.5)
    state = torch.get_rng_state()
    assert c2st(p, q, seed=3) == c2st(p, q, seed=3)
    assert torch.equal(torch.get_rng_state(), state)


def test_c2st_bad_input():
    with pytest.raises(ValueError, match="same number"):
        c2st(normal(100, 2, 0), normal(90, 2, 1))
    with pytest.raises(ValueError, match="same number n ≥ 10"):
        c2st(normal(5, 2, 0), normal(5, 2, 1))
    with pytest.raises(ValueError, match=r"same d; got \(100, 2\) and \(100, 3\)"):
        c2st(normal(100, 2, 0), normal(100, 3, 1))
    bad = normal(100, 2, 0)
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        c2st(bad, normal(100, 2, 1))


def test_grid_posterior_of_poisson_counts_follows_the_exact_posterior():
    # p(θ|x_1..m) ∝ exp(θ·Σx − m·e^θ) on [0.2, 7]; its CDF by the trapezoidal rule on 200001 nodes
    sim, m = Poisson(), 5
    x = sim.sample(torch.full((m, 1), 2.0, dtype=torch.float64), generator=torch.Generator().manual_seed(0)).x
    draws = grid_posterior_samples(sim, x, 5000, generator=torch.Generator().manual_seed(1))
    assert draws.shape == (5000, 1) and draws.dtype == torch.float64
    theta = np.linspace(0.2, 7.0, 200_001)
    log_post = theta * float(x.sum()) - m * np.exp(theta)
    density = np.exp(log_post - log_post.max())
    cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2)])
    assert stats.kstest(draws[:, 0].numpy(), lambda v: np.interp(v, theta, cdf / cdf[-1])).pvalue > 1e-3


def test_grid_posterior_of_weinberg_has_the_exact_mean():
    # The posterior mean of 20 observations by an independent rule (Gauss–Legendre, 64 × 64 nodes on
    # the box) against the mean of 4000 draws, within 4 standard errors of the sample.
    sim = Weinberg()
    x = sim.sample(torch.tensor([[47.0, 1.0]], dtype=torch.float64).expand(20, -1),
                   generator=torch.Generator().manual_seed(0)).x
    draws = grid_posterior_samples(sim, x, 4000, generator=torch.Generator().manual_seed(1))
    low, high = sim.prior.base_dist.low, sim.prior.base_dist.high
    assert ((draws >= low) & (draws <= high)).all()
    t, w = (torch.tensor(a, dtype=torch.float64) for a in np.polynomial.legendre.leggauss(64))
    nodes = torch.cartesian_prod(*[(lo + hi) / 2 + (hi - lo) / 2 * t for lo, hi in zip(low, high)])
    weights = torch.cartesian_prod(w, w).prod(1)
    log_post = sim.log_prob(x.repeat(len(nodes), 1), nodes.repeat_interleave(20, 0)).reshape(-1, 20).sum(1)
    post = weights * (log_post - log_post.max()).exp()
    mean = (post[:, None] * nodes).sum(0) / post.sum()
    error = draws.std(0) / math.sqrt(len(draws))
    assert ((draws.mean(0) - mean).abs() < 4 * error).all(), (draws.mean(0), mean, error)
    again = grid_posterior_samples(sim, x, 4000, generator=torch.Generator().manual_seed(1))
    assert torch.equal(draws, again)


def test_grid_posterior_bad_input():
    with pytest.raises(TypeError, match="Simulator"):
        grid_posterior_samples("weinberg", torch.zeros(1, 1), 10)
    black_box = BlackBoxSimulator(lambda t: t + np.random.normal(size=t.shape), box_prior([-1], [1]))
    with pytest.raises(NotImplementedError, match="exact likelihood"):
        grid_posterior_samples(black_box, torch.zeros(1, 1), 10)
    with pytest.raises(ValueError, match=r"x_obs must have shape \(n, 1\)"):
        grid_posterior_samples(Weinberg(), torch.zeros(2, 2), 10)
    with pytest.raises(ValueError, match="finite observation"):
        grid_posterior_samples(Weinberg(), torch.tensor([[float("nan")]]), 10)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        grid_posterior_samples(Weinberg(), torch.zeros(1, 1), 0)
    with pytest.raises(ValueError, match="grid_points"):
        grid_posterior_samples(Weinberg(), torch.zeros(1, 1), 10, grid_points=5000)
    with pytest.raises(ValueError, match="zero likelihood"):
        grid_posterior_samples(GaltonBoard(), torch.tensor([[2.5]]), 10)
    gaussian_prior = Poisson()
    gaussian_prior.prior = Normal(torch.tensor([3.0]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="not a uniform box"):
        grid_posterior_samples(gaussian_prior, torch.ones(1, 1), 10)
