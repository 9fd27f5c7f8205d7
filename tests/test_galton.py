"""The Galton board against its exact likelihood, and its gold identities by Monte Carlo."""

import math

import pytest
import torch
from scipy import stats

from goldmine import mine
from goldmine.simulators import GaltonBoard, Simulator


@pytest.fixture(scope="module")
def sim():
    return GaltonBoard()


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("theta", [-0.7, 0.0, 0.6])
def test_slot_histogram_matches_exact_probabilities(sim, theta):
    n = 100_000
    x = sim.sample(torch.full((n, 1), theta), generator=gen(1)).x[:, 0].long()
    counts = torch.bincount(x, minlength=32).double()
    expected = sim.slot_probs(torch.tensor([[theta]]))[0] * n
    keep = expected > 5  # pool the sparse tails into one cell for the chi-square test
    obs = torch.cat([counts[keep], counts[~keep].sum()[None]])
    exp = torch.cat([expected[keep], expected[~keep].sum()[None]])
    obs, exp = obs[exp > 0], exp[exp > 0]
    assert stats.chisquare(obs.numpy(), exp.numpy()).pvalue > 1e-3


def test_log_prob_normalises_and_matches_slot_probs(sim):
    theta = torch.linspace(-1, 1, 9)[:, None]
    probs = sim.slot_probs(theta)
    torch.testing.assert_close(probs.sum(1), torch.ones(9, dtype=torch.float64), rtol=0, atol=1e-12)
    slots = torch.arange(32.0)
    lp = sim.log_prob(slots.repeat(9)[:, None], theta.repeat_interleave(32, 0)).reshape(9, 32)
    torch.testing.assert_close(lp.exp(), probs)
    assert sim.log_prob(torch.tensor([[2.5], [40.0]]), torch.zeros(2, 1)).eq(-math.inf).all()


def test_joint_score_matches_autograd_and_finite_differences(sim):
    theta = torch.linspace(-0.95, 0.95, 50)[:, None].double()
    draws = sim.sample(theta, generator=gen(2))
    fast = sim.joint_score(draws, theta)
    torch.testing.assert_close(fast, Simulator.joint_score(sim, draws, theta), rtol=1e-10, atol=1e-12)
    h = 1e-5
    fd = (sim.joint_log_prob(draws, theta + h) - sim.joint_log_prob(draws, theta - h)) / (2 * h)
    torch.testing.assert_close(fast[:, 0], fd, rtol=1e-6, atol=1e-6)


def test_joint_log_prob_of_sampled_paths_is_consistent(sim):
    """Summing over all paths is impossible, but p(x, z|θ) ≤ p(x|θ) must hold for every run."""
    theta = torch.full((2000, 1), 0.4, dtype=torch.float64)
    draws = sim.sample(theta, generator=gen(3))
    assert (sim.joint_log_prob(draws, theta) <= sim.log_prob(draws.x, theta) + 1e-12).all()


def _per_slot_means(x, values):
    """Mean, standard error and count of values per slot."""
    slots = x[:, 0].long()
    n = torch.bincount(slots, minlength=32).double()
    s1 = torch.zeros(32, dtype=torch.float64).index_add_(0, slots, values)
    s2 = torch.zeros(32, dtype=torch.float64).index_add_(0, slots, values**2)
    mean = s1 / n.clamp(min=1)
    var = (s2 / n.clamp(min=1) - mean**2) * n / (n - 1).clamp(min=1)
    return mean, (var / n.clamp(min=1)).sqrt(), n


@pytest.mark.parametrize("theta", [-0.5, 0.4])
def test_gold_ratio_identity(sim, theta):
    """Among runs at θ_ref, the mean of r(x,z|θ,θ_ref) per slot is the exact r(x|θ,θ_ref)."""
    n = 400_000
    at_ref = sim.sample(torch.zeros(n, 1), generator=gen(4))
    th = torch.full((n, 1), theta, dtype=torch.float64)
    r = (sim.joint_log_prob(at_ref, th) - sim.joint_log_prob(at_ref, torch.zeros(n, 1))).exp()
    mean, se, count = _per_slot_means(at_ref.x, r)
    exact = sim.slot_probs(torch.tensor([[theta]]))[0] / sim.slot_probs(torch.zeros(1, 1))[0]
    ok = count >= 200
    assert ok.sum() >= 8
    z = (mean[ok] - exact[ok]) / se[ok]
    assert z.abs().max() < 5, z


@pytest.mark.parametrize("theta", [-0.5, 0.4])
def test_gold_score_identity(sim, theta):
    """Among runs at θ, the mean of t(x,z|θ) per slot is ∂_θ log p(x|θ) of the exact likelihood."""
    n = 400_000
    th = torch.full((n, 1), theta, dtype=torch.float64)
    gold = mine(sim, th, generator=gen(5))
    mean, se, count = _per_slot_means(gold.x, gold.score[:, 0])
    t = torch.tensor([[theta]], dtype=torch.float64, requires_grad=True)
    probs = sim.slot_probs(t)[0]
    exact = torch.stack([torch.autograd.grad(probs[k], t, retain_graph=True)[0][0, 0] for k in range(32)])
    exact = exact / probs.detach()  # ∂ log p = ∂p / p, for the slots that can be reached
    ok = count >= 200
    assert ok.sum() >= 8
    z = (mean[ok] - exact[ok]) / se[ok]
    assert z.abs().max() < 5, z


@pytest.mark.parametrize(
    "theta, message",
    [
        (torch.zeros(3, 2), "shape"),
        (torch.tensor([[0.1], [float("nan")]]), "NaN"),
        (torch.tensor([[0.1], [1.5]]), "outside the support"),
        (torch.zeros(0, 1), "empty"),
    ],
)
def test_bad_theta_is_rejected(sim, theta, message):
    with pytest.raises(ValueError, match=message):
        sim.sample(theta)
    with pytest.raises(ValueError, match=message):
        mine(sim, theta)
