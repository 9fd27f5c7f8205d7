"""Tests of the Gaussian-mixture simulator against its closed-form likelihood."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from goldmine.simulators.base import DTYPE, Draws, Simulator
from goldmine.simulators.mixture import GaussianMixture


def gen(seed):
    return torch.Generator().manual_seed(seed)


def rows(theta, n):
    return torch.tensor([theta], dtype=DTYPE).expand(n, len(theta))


def marginal_cdf(u):
    """CDF of one coordinate of x − θ: ½Φ(u) + ½Φ(u/0.1)."""
    return 0.5 * stats.norm.cdf(u) + 0.5 * stats.norm.cdf(u / 0.1)


THETAS = [(0.0, 0.0), (3.0, -7.5), (15.0, -12.0, 0.5, 2.0, -30.0)]  # the last lies outside the prior


@pytest.mark.parametrize("theta", THETAS)
def test_samples_follow_the_mixture_and_record_the_component(theta):
    dim = len(theta)
    sim = GaussianMixture(dim=dim)
    n = 20_000
    draws = sim.sample(rows(theta, n), generator=gen(1))
    assert draws.x.shape == (n, dim) and draws.z.shape == (n,) and draws.z.dtype == torch.long
    eps = (draws.x - rows(theta, n)).numpy()
    k = draws.z.numpy()
    assert abs(k.mean() - 0.5) < 5 * 0.5 / math.sqrt(n)
    for j in range(dim):  # every coordinate has the mixture marginal
        assert stats.kstest(eps[:, j], marginal_cdf).pvalue > 1e-3
    for comp, scale in enumerate((1.0, 0.1)):  # given the recorded z, x − θ is N(0, σ_z² I)
        radius2 = (eps[k == comp] ** 2).sum(1) / scale**2
        assert stats.kstest(radius2, stats.chi2(dim).cdf).pvalue > 1e-3


@pytest.mark.parametrize("theta", THETAS[:2])
def test_radial_histogram_matches_exact_likelihood(theta):
    """Chi-square of ‖x − θ‖ in bins whose probabilities integrate the exact 2-D density (2πρ p dρ)."""
    sim = GaussianMixture(dim=2)
    n = 50_000
    draws = sim.sample(rows(theta, n), generator=gen(2))
    edges = [0.0, 0.03, 0.06, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8, 1.2, 1.6, 2.0, 2.5, 3.0, 10.0]
    nodes, weights = np.polynomial.legendre.leggauss(64)
    probs = []
    for a, b in zip(edges[:-1], edges[1:]):
        rho = torch.tensor((a + b) / 2 + (b - a) / 2 * nodes, dtype=DTYPE)
        x = rows(theta, len(rho)) + torch.stack([rho, torch.zeros_like(rho)], dim=1)
        density = sim.log_prob(x, rows(theta, len(rho))).exp()
        probs.append(float((torch.tensor((b - a) / 2 * weights) * 2 * math.pi * rho * density).sum()))
    probs = np.array(probs)
    assert abs(probs.sum() - 1) < 1e-10
    radius = (draws.x - rows(theta, n)).norm(dim=1).numpy()
    counts = np.histogram(radius, bins=edges)[0]
    assert counts.sum() == n
    assert stats.chisquare(counts, n * probs / probs.sum()).pvalue > 1e-3


def test_likelihood_normalises_on_a_2d_grid():
    sim = GaussianMixture(dim=2)
    theta = torch.tensor([1.0, -2.0], dtype=DTYPE)
    h = 0.01
    axis = torch.arange(-8.0, 8.0 + h / 2, h, dtype=DTYPE)  # h = σ_1/10: the trapezoid rule is exact to ~1e-15
    grid = torch.cartesian_prod(axis, axis) + theta
    density = sim.log_prob(grid, theta.expand(len(grid), 2)).exp().reshape(len(axis), len(axis))
    total = torch.trapezoid(torch.trapezoid(density, dx=h, dim=1), dx=h)
    assert abs(float(total) - 1) < 1e-10


@pytest.mark.parametrize("dim", [3, 5])
def test_likelihood_normalises_by_importance_sampling(dim):
    """E_q[p/q] = 1 with q a wider two-scale Gaussian mixture, so that p/q is bounded."""
    sim = GaussianMixture(dim=dim)
    n = 200_000
    theta = torch.full((1, dim), 0.7, dtype=DTYPE)
    g = gen(3)
    scale = torch.where(torch.rand(n, 1, generator=g, dtype=DTYPE) < 0.5, 1.3, 0.13)
    x = theta + scale * torch.randn(n, dim, generator=g, dtype=DTYPE)
    sq = ((x - theta) ** 2).sum(1)
    log_q = torch.logsumexp(
        torch.stack([math.log(0.5) - dim * math.log(s * math.sqrt(2 * math.pi)) - sq / (2 * s**2) for s in (1.3, 0.13)]),
        dim=0,
    )
    w = torch.exp(sim.log_prob(x, theta.expand(n, dim)) - log_q)
    assert abs(float(w.mean()) - 1) < 5 * float(w.std()) / math.sqrt(n)
    assert float(w.std()) / math.sqrt(n) < 0.01  # the check is sharp


@pytest.mark.parametrize("dim", [2, 4])
def test_joint_score_equals_finite_differences_and_autograd(dim):
    sim = GaussianMixture(dim=dim)
    n = 400
    theta = 24 * torch.rand(n, dim, generator=gen(4), dtype=DTYPE) - 12  # also outside the prior
    draws = sim.sample(theta, generator=gen(5))
    score = sim.joint_score(draws, theta)
    assert score.shape == (n, dim)
    assert torch.allclose(score, Simulator.joint_score(sim, draws, theta), rtol=1e-12, atol=1e-10)
    for j in range(dim):
        step = torch.zeros(dim, dtype=DTYPE)
        step[j] = 1e-5
        fd = (sim.joint_log_prob(draws, theta + step) - sim.joint_log_prob(draws, theta - step)) / 2e-5
        assert torch.allclose(score[:, j], fd, rtol=1e-6, atol=1e-5)


def test_gold_identities_hold_exactly_with_the_posterior_over_the_component():
    """Σ_z p(z|x, θ_ref)·r(x, z|θ, θ_ref) = p(x|θ)/p(x|θ_ref) and Σ_z p(z|x, θ)·t(x, z|θ) = ∇_θ log p(x|θ)."""
    sim = GaussianMixture(dim=3)
    n = 300
    ref = sim.reference.expand(n, 3)
    theta = torch.tensor([[0.05, -0.1, 0.2]], dtype=DTYPE).expand(n, 3)
    x = sim.sample(ref, generator=gen(6)).x
    both = [Draws(x, torch.full((n,), k)) for k in (0, 1)]

    def posterior(at):
        return torch.stack([torch.exp(sim.joint_log_prob(d, at) - sim.log_prob(x, at)) for d in both], dim=1)

    post_ref = posterior(ref)
    assert torch.allclose(post_ref.sum(1), torch.ones(n, dtype=DTYPE), rtol=1e-12)
    r = torch.stack([torch.exp(sim.joint_log_prob(d, theta) - sim.joint_log_prob(d, ref)) for d in both], dim=1)
    exact_log_r = sim.log_prob(x, theta) - sim.log_prob(x, ref)
    assert torch.allclose(torch.log((post_ref * r).sum(1)), exact_log_r, rtol=1e-10, atol=1e-10)
    t = torch.stack([sim.joint_score(d, theta) for d in both], dim=1)  # (n, 2, 3)
    th = theta.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(sim.log_prob(x, th).sum(), th)
    assert torch.allclose((posterior(theta)[:, :, None] * t).sum(1), grad, rtol=1e-10, atol=1e-10)


def test_sampling_is_reproducible_and_config():
    sim = GaussianMixture(dim=4)
    theta = torch.zeros(30, 4, dtype=DTYPE)
    a, b = sim.sample(theta, generator=gen(8)), sim.sample(theta, generator=gen(8))
    assert torch.equal(a.x, b.x) and torch.equal(a.z, b.z)
    assert sim.config() == {"dim": 4} and sim.defined_outside_prior and sim.reference.tolist() == [0.0] * 4


def test_bad_input_raises():
    for dim in (1, 6, 2.5, True, "3"):
        with pytest.raises(ValueError):
            GaussianMixture(dim=dim)
    sim = GaussianMixture(dim=2)
    with pytest.raises(ValueError):
        sim.sample(torch.zeros(3, 3, dtype=DTYPE))
    with pytest.raises(ValueError):
        sim.sample(torch.zeros(3, dtype=DTYPE))  # a vector is one point of length theta_dim
    assert sim.sample(torch.zeros(2, dtype=DTYPE)).x.shape == (1, 2)
    with pytest.raises(ValueError):
        sim.sample(torch.tensor([[math.nan, 0.0]], dtype=DTYPE))
    with pytest.raises(ValueError):
        sim.log_prob(torch.zeros(1, 3, dtype=DTYPE), torch.zeros(1, 2, dtype=DTYPE))
    draws = Draws(torch.zeros(2, 2, dtype=DTYPE), None)
    with pytest.raises(ValueError):
        sim.joint_log_prob(draws, torch.zeros(2, 2, dtype=DTYPE))
    with pytest.raises(ValueError):
        sim.joint_score(Draws(draws.x, torch.tensor([0, 2])), torch.zeros(2, 2, dtype=DTYPE))
    # defined everywhere: θ far outside the prior is fine
    assert sim.sample(torch.tensor([[50.0, -50.0]], dtype=DTYPE), generator=gen(9)).x.shape == (1, 2)
