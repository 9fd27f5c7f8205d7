"""Tests of the Poisson simulator against its closed-form likelihood."""

import math

import pytest
import torch
from scipy import stats

from goldmine.simulators.base import DTYPE, Draws, Simulator
from goldmine.simulators.poisson import Poisson


def gen(seed):
    return torch.Generator().manual_seed(seed)


def pmf(sim, theta, counts):
    """Exact P(x = k|θ) for the integer counts k: (m,) → (m,)."""
    return sim.log_prob(counts[:, None], torch.full((len(counts), 1), theta, dtype=DTYPE)).exp()


@pytest.mark.parametrize("theta", [0.5, 3.0, 6.5])
def test_counts_follow_the_exact_likelihood(theta):
    """Chi-square of the count histogram, with the tails pooled so that every cell expects ≥ 20."""
    sim = Poisson()
    n = 20_000
    draws = sim.sample(torch.full((n, 1), theta, dtype=DTYPE), generator=gen(1))
    x = draws.x[:, 0]
    assert draws.x.shape == (n, 1) and draws.x.dtype == DTYPE and draws.z is None
    assert torch.equal(x, x.round()) and (x >= 0).all()
    k = torch.arange(0, 5000, dtype=DTYPE)
    p = pmf(sim, theta, k)
    keep = n * p >= 20
    lo, hi = int(k[keep].min()), int(k[keep].max())
    inner = (k >= lo) & (k <= hi)
    expected = torch.cat([p[k < lo].sum()[None], p[inner], p[k > hi].sum()[None]]) * n
    observed = torch.cat(
        [(x < lo).sum()[None], torch.bincount(x[(x >= lo) & (x <= hi)].long() - lo, minlength=hi - lo + 1),
         (x > hi).sum()[None]]
    ).to(DTYPE)
    cells = expected > 0  # the pooled tail of a small rate can be empty (no counts below 0)
    expected, observed = expected[cells], observed[cells]
    pvalue = stats.chisquare(observed.numpy(), (expected * n / expected.sum()).numpy()).pvalue
    assert pvalue > 1e-3


@pytest.mark.parametrize("theta", [0.2, 3.6, 7.0])
def test_likelihood_normalises_with_the_right_mean(theta):
    sim = Poisson()
    k = torch.arange(0, 5000, dtype=DTYPE)  # e^7 ≈ 1097: the tail beyond 5000 is negligible
    p = pmf(sim, theta, k)
    assert abs(float(p.sum()) - 1) < 1e-12
    assert abs(float((k * p).sum()) / math.exp(theta) - 1) < 1e-12


def test_likelihood_is_minus_infinity_off_the_counts_and_matches_scipy():
    sim = Poisson()
    x = torch.tensor([[-1.0], [0.5], [2.0], [0.0], [40.0]], dtype=DTYPE)
    log_p = sim.log_prob(x, torch.full((5, 1), 2.0, dtype=DTYPE))
    assert torch.isneginf(log_p[:2]).all()
    assert torch.allclose(log_p[2:], torch.tensor(stats.poisson.logpmf([2, 0, 40], math.exp(2.0))), rtol=1e-13)


def test_joint_quantities_are_the_exact_ones():
    sim = Poisson()
    n = 1000
    theta = 0.2 + 6.8 * torch.rand(n, 1, generator=gen(2), dtype=DTYPE)
    draws = sim.sample(theta, generator=gen(3))
    assert torch.equal(sim.joint_log_prob(draws, theta), sim.log_prob(draws.x, theta))
    score = sim.joint_score(draws, theta)
    assert score.shape == (n, 1)
    assert torch.allclose(score, draws.x - theta.exp(), rtol=0, atol=0)
    assert torch.allclose(score, Simulator.joint_score(sim, draws, theta), rtol=1e-12, atol=1e-9)
    inner = ((theta > 0.2 + 1e-5) & (theta < 7.0 - 1e-5))[:, 0]
    th, sub = theta[inner], Draws(draws.x[inner])
    fd = (sim.joint_log_prob(sub, th + 1e-5) - sim.joint_log_prob(sub, th - 1e-5)) / 2e-5
    assert torch.allclose(score[inner, 0], fd, rtol=1e-6, atol=1e-4)


def test_gold_identities_hold_on_average():
    """With no latent, r and t are exact; their Monte-Carlo means are 1 and 0 within 5 standard errors."""
    sim = Poisson()
    n = 100_000
    ref = sim.reference[None]
    draws = sim.sample(ref.expand(n, 1), generator=gen(4))
    r = torch.exp(sim.joint_log_prob(draws, torch.tensor([[3.5]], dtype=DTYPE)) - sim.joint_log_prob(draws, ref))
    assert abs(float(r.mean()) - 1) < 5 * float(r.std()) / math.sqrt(n)
    t = sim.joint_score(draws, ref)[:, 0]
    assert abs(float(t.mean())) < 5 * float(t.std()) / math.sqrt(n)


def test_sampling_is_reproducible_and_defaults():
    sim = Poisson()
    theta = torch.full((50, 1), 2.0, dtype=DTYPE)
    assert torch.equal(sim.sample(theta, generator=gen(7)).x, sim.sample(theta, generator=gen(7)).x)
    assert sim.sample(torch.full((4,), 2.0, dtype=DTYPE), generator=gen(7)).x.shape == (4, 1)
    assert sim.reference.tolist() == [3.6] and sim.config() == {} and not sim.defined_outside_prior


def test_bad_input_raises():
    sim = Poisson()
    for theta in ([[1.0, 2.0]], [[math.nan]], [[0.1]], [[7.5]], [[math.inf]]):
        with pytest.raises(ValueError):
            sim.sample(torch.tensor(theta, dtype=DTYPE))
        with pytest.raises(ValueError):
            sim.log_prob(torch.zeros(1, 1, dtype=DTYPE), torch.tensor(theta, dtype=DTYPE))
    with pytest.raises(ValueError):
        sim.log_prob(torch.zeros(1, 2, dtype=DTYPE), torch.full((1, 1), 1.0, dtype=DTYPE))
