"""Tests of the Weinberg simulator against its exact likelihood."""

import functools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from goldmine.simulators.base import DTYPE, Draws, Simulator
from goldmine.simulators.weinberg import Weinberg, angle_cdf, angle_icdf, asymmetry

THETAS = [(42.0, 0.9), (48.0, 0.6), (44.0, 1.15), (50.0, 1.2), (40.0, 1.2)]
EDGES = [-0.9, -0.7, -0.5, -0.3, -0.1, 0.1, 0.3, 0.5, 0.7, 0.9]  # inner edges: 11 bins, open at both ends
OUTER = 3.0  # p(x|θ) beyond |x| = 3 is below e^-200: the open bins are integrated up to ±3


def gen(seed):
    return torch.Generator().manual_seed(seed)


def point(theta):
    return torch.tensor([theta], dtype=DTYPE)


@functools.cache
def legendre(n):
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return torch.tensor(nodes, dtype=DTYPE), torch.tensor(weights, dtype=DTYPE)


def gauss_legendre(a, b, n=96):
    nodes, weights = legendre(n)
    return (a + b) / 2 + (b - a) / 2 * nodes, (b - a) / 2 * weights


def composite(a, b, pieces, n=96):
    """Nodes and weights of Gauss–Legendre on `pieces` equal sub-intervals of [a, b]."""
    edges = np.linspace(a, b, pieces + 1)
    parts = [gauss_legendre(lo, hi, n) for lo, hi in zip(edges[:-1], edges[1:])]
    return torch.cat([x for x, _ in parts]), torch.cat([w for _, w in parts])


def bin_probs(sim, theta, edges=EDGES):
    """P(bin|θ) = ∫_bin p(x|θ) dx by Gauss–Legendre quadrature of the exact density, differentiable in θ."""
    bounds = [-OUTER, *edges, OUTER]
    probs = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        x, w = gauss_legendre(a, b)
        probs.append((w * sim.log_prob(x[:, None], theta.expand(len(x), 2)).exp()).sum())
    return torch.stack(probs)


def bin_index(x):
    return torch.bucketize(x[:, 0], torch.tensor(EDGES, dtype=DTYPE))


def test_inverse_cdf_solves_the_cubic():
    u = torch.cat([torch.linspace(0, 1, 1001, dtype=DTYPE), torch.tensor([1e-12, 1 - 1e-12], dtype=DTYPE)])
    for a in (-1.95, -1.05, 0.0, 0.4, 1.95):
        c = angle_icdf(torch.tensor(a, dtype=DTYPE), u)
        assert c.min() >= -1 and c.max() <= 1
        assert torch.allclose(angle_cdf(torch.tensor(a, dtype=DTYPE), c), u, rtol=0, atol=1e-14)


@pytest.mark.parametrize("theta", THETAS[:3])
def test_true_angle_follows_the_exact_distribution(theta):
    sim = Weinberg()
    n = 20_000
    draws = sim.sample(point(theta).expand(n, 2), generator=gen(1))
    a = asymmetry(point(theta))[0]
    c = draws.z[:, 0]
    assert draws.z.shape == (n, 1) and c.abs().max() <= 1
    assert stats.kstest(c.numpy(), lambda v: angle_cdf(a, torch.as_tensor(v)).numpy()).pvalue > 1e-3


@pytest.mark.parametrize("theta", THETAS[:3])
def test_measured_angle_histogram_matches_exact_likelihood(theta):
    sim = Weinberg()
    n = 50_000
    draws = sim.sample(point(theta).expand(n, 2), generator=gen(2))
    assert draws.x.shape == (n, 1)
    counts = torch.bincount(bin_index(draws.x), minlength=len(EDGES) + 1).numpy()
    probs = bin_probs(sim, point(theta)).numpy()
    assert abs(probs.sum() - 1) < 1e-10
    assert stats.chisquare(counts, n * probs / probs.sum()).pvalue > 1e-3


def test_sampling_is_reproducible():
    sim = Weinberg()
    theta = sim.reference.expand(100, 2)
    a, b = sim.sample(theta, generator=gen(5)), sim.sample(theta, generator=gen(5))
    assert torch.equal(a.x, b.x) and torch.equal(a.z, b.z)


@pytest.mark.parametrize("theta", THETAS)
def test_likelihood_normalises(theta):
    sim = Weinberg()
    x, w = composite(-OUTER, OUTER, pieces=24)
    total = (w * sim.log_prob(x[:, None], point(theta).expand(len(x), 2)).exp()).sum()
    assert abs(float(total) - 1) < 1e-10


def test_likelihood_equals_brute_force_integral_over_the_true_angle():
    """The truncated-moment closed form against log-space quadrature of ∫ f(c|θ) N(x; c, σ²) dc."""
    sim = Weinberg(sigma=0.1)
    x = torch.tensor([-3.0, -1.5, -1.0, -0.95, -0.3, 0.0, 0.2, 0.99, 1.2, 2.0, 3.0], dtype=DTYPE)
    c, w = composite(-1.0, 1.0, pieces=40)
    for theta in THETAS:
        a = asymmetry(point(theta))[0]
        log_f = math.log(3 / 8) + torch.log(1 + c**2 + a * c)
        log_n = -0.5 * ((x[:, None] - c) / 0.1) ** 2 - math.log(0.1 * math.sqrt(2 * math.pi))
        brute = torch.logsumexp(log_f + log_n + w.log(), dim=1)
        exact = sim.log_prob(x[:, None], point(theta).expand(len(x), 2))
        assert torch.allclose(exact, brute, rtol=1e-10, atol=1e-10)


def test_joint_log_prob_integrates_over_z_to_the_likelihood():
    """joint_log_prob is a true log p(x, z|θ): ∫ p(x, c|θ) dc = p(x|θ)."""
    sim = Weinberg(sigma=0.2)
    x = torch.tensor([-1.4, -0.5, 0.1, 0.8, 1.3], dtype=DTYPE)
    c, w = composite(-1.0, 1.0, pieces=4)
    theta = point((47.0, 0.7))
    joint = sim.joint_log_prob(Draws(x.repeat_interleave(len(c))[:, None], c.repeat(len(x))[:, None]), theta)
    marginal = torch.logsumexp(joint.reshape(len(x), len(c)) + w.log(), dim=1)
    assert torch.allclose(marginal, sim.log_prob(x[:, None], theta.expand(len(x), 2)), rtol=1e-10)


def test_likelihood_in_the_tails_is_finite_very_negative_and_differentiable():
    sim = Weinberg()
    x = torch.tensor([[-100.0], [-10.0], [-3.0], [3.0], [10.0], [100.0]], dtype=DTYPE)
    theta = sim.reference.expand(len(x), 2).clone().requires_grad_(True)
    log_p = sim.log_prob(x, theta)
    assert torch.isfinite(log_p).all()
    assert (log_p[2:4] < -150).all() and (log_p[[0, 1, 4, 5]] < -4000).all()
    (grad,) = torch.autograd.grad(log_p.sum(), theta)
    assert torch.isfinite(grad).all()


def test_score_equals_autograd_and_finite_differences_of_log_prob():
    sim = Weinberg()
    x = torch.linspace(-2.5, 2.5, 41, dtype=DTYPE)[:, None]
    theta = torch.tensor([[45.3, 0.8]], dtype=DTYPE).expand(len(x), 2).clone()
    score = sim.score(x, theta)
    with torch.enable_grad():
        t = theta.clone().requires_grad_(True)
        (auto,) = torch.autograd.grad(sim.log_prob(x, t).sum(), t)
    assert torch.allclose(score, auto, rtol=1e-10, atol=1e-12)
    for j, h in enumerate((1e-4, 1e-6)):
        step = torch.zeros(2, dtype=DTYPE)
        step[j] = h
        fd = (sim.log_prob(x, theta + step) - sim.log_prob(x, theta - step)) / (2 * h)
        assert torch.allclose(score[:, j], fd, rtol=1e-6, atol=1e-8)


def test_joint_score_equals_finite_differences_and_autograd():
    sim = Weinberg()
    n = 500
    low, high = sim.prior.base_dist.low, sim.prior.base_dist.high
    theta = low + (high - low) * torch.rand(n, 2, generator=gen(4), dtype=DTYPE)
    draws = sim.sample(theta, generator=gen(3))
    score = sim.joint_score(draws, theta)
    assert score.shape == (n, 2)
    assert torch.allclose(score, Simulator.joint_score(sim, draws, theta), rtol=1e-12, atol=1e-12)
    for j, h in enumerate((1e-4, 1e-6)):
        step = torch.zeros(2, dtype=DTYPE)
        step[j] = h
        inside = (theta + step <= high).all(1) & (theta - step >= low).all(1)
        th = theta[inside]
        sub = Draws(draws.x[inside], draws.z[inside])
        fd = (sim.joint_log_prob(sub, th + step) - sim.joint_log_prob(sub, th - step)) / (2 * h)
        assert torch.allclose(score[inside, j], fd, rtol=1e-6, atol=1e-8)


def test_joint_ratio_is_the_ratio_of_true_angle_densities():
    """The detector term cancels: r(x, z|θ, θ_ref) does not depend on x given c."""
    sim = Weinberg()
    c = torch.linspace(-1, 1, 11, dtype=DTYPE)[:, None]
    theta = point((49.0, 1.1))
    log_r = [
        sim.joint_log_prob(Draws(c + dx, c), theta) - sim.joint_log_prob(Draws(c + dx, c), sim.reference[None])
        for dx in (-0.3, 0.0, 0.25)
    ]
    a, a_ref = asymmetry(theta)[0], asymmetry(sim.reference[None])[0]
    exact = torch.log((1 + c**2 + a * c) / (1 + c**2 + a_ref * c))[:, 0]
    for lr in log_r:
        assert torch.allclose(lr, exact, rtol=1e-12, atol=1e-14)


def binned_mean(values, bins, nbins):
    """Per-bin sample mean and its standard error: values (n, k) → (nbins, k), (nbins, k)."""
    means, errors = [], []
    for b in range(nbins):
        v = values[bins == b]
        means.append(v.mean(0))
        errors.append(v.std(0) / math.sqrt(len(v)))
    return torch.stack(means), torch.stack(errors)


@pytest.mark.parametrize("theta", [(48.0, 0.6), (44.0, 1.15)])
def test_gold_ratio_identity_in_bins_of_x(theta):
    """Among runs at θ_ref, E[r(x, z|θ, θ_ref) | x ∈ bin] = P(bin|θ)/P(bin|θ_ref).

    Binning x (instead of a kernel) makes the identity exact at the level of bins:
    E[r·1{x ∈ bin}] = ∫_bin ∫ p(x, z|θ) dz dx = P(bin|θ), and dividing by P(bin|θ_ref) gives the
    conditional mean. The bin probabilities come from integrating the exact likelihood; the
    tolerance is 5 per-bin standard errors.
    """
    sim = Weinberg()
    n = 400_000
    ref = sim.reference[None]
    draws = sim.sample(ref.expand(n, 2), generator=gen(10))
    r = torch.exp(sim.joint_log_prob(draws, point(theta)) - sim.joint_log_prob(draws, ref))
    mean, err = binned_mean(r[:, None], bin_index(draws.x), len(EDGES) + 1)
    exact = bin_probs(sim, point(theta)) / bin_probs(sim, ref)
    assert (exact - 1).abs().max() > 20 * err.max()  # the test has power: the ratios are far from 1
    assert ((mean[:, 0] - exact).abs() < 5 * err[:, 0]).all(), (mean[:, 0], exact, err[:, 0])


@pytest.mark.parametrize("theta", [(42.0, 0.9), (47.0, 0.7)])
def test_gold_score_identity_in_bins_of_x(theta):
    """Among runs at θ, E[t(x, z|θ) | x ∈ bin] = ∇_θ log P(bin|θ).

    Exact at the level of bins: E[t·1{x ∈ bin}] = ∫_bin ∇_θ p(x|θ) dx = ∇_θ P(bin|θ). The right-hand
    side is autograd through the quadrature of the exact likelihood; tolerance 5 standard errors.
    """
    sim = Weinberg()
    n = 400_000
    draws = sim.sample(point(theta).expand(n, 2), generator=gen(11))
    mean, err = binned_mean(sim.joint_score(draws, point(theta)), bin_index(draws.x), len(EDGES) + 1)
    rows = []
    th = point(theta).requires_grad_(True)
    log_p = bin_probs(sim, th).log()
    for b in range(len(EDGES) + 1):
        (g,) = torch.autograd.grad(log_p[b], th, retain_graph=True)
        rows.append(g[0])
    exact = torch.stack(rows)
    assert exact.abs().max() > 20 * err.max()
    assert ((mean - exact).abs() < 5 * err).all(), (mean, exact, err)


def test_bad_input_raises():
    sim = Weinberg()
    with pytest.raises(ValueError):
        sim.sample(torch.zeros(3, 1, dtype=DTYPE))
    with pytest.raises(ValueError, match=r"\(2,\) for one point"):
        sim.sample(torch.tensor([42.0, 0.9, 1.0], dtype=DTYPE))  # a vector is one point of length theta_dim
    assert sim.sample(torch.tensor([42.0, 0.9], dtype=DTYPE)).x.shape == (1, 1)
    with pytest.raises(ValueError):
        sim.sample(torch.tensor([[math.nan, 0.9]], dtype=DTYPE))
    with pytest.raises(ValueError):
        sim.sample(torch.tensor([[39.0, 0.9]], dtype=DTYPE))
    with pytest.raises(ValueError):
        sim.log_prob(torch.zeros(1, 1, dtype=DTYPE), torch.tensor([[45.0, 1.3]], dtype=DTYPE))
    with pytest.raises(ValueError):
        sim.log_prob(torch.zeros(1, 2, dtype=DTYPE), sim.reference[None])
    with pytest.raises(ValueError):
        sim.joint_log_prob(Draws(torch.zeros(2, 1, dtype=DTYPE), None), sim.reference[None])
    for sigma in (0.0, -1.0, math.inf):
        with pytest.raises(ValueError):
            Weinberg(sigma=sigma)
    assert Weinberg(sigma=0.2).config() == {"sigma": 0.2}
