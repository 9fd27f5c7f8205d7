"""Rejection and population Monte Carlo ABC against the exact posterior of the Poisson simulator."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

import goldmine as gm
from goldmine.evaluate import grid_posterior_samples
from goldmine.inference.abc import ABCResult, rejection_abc, smc_abc

SIM = gm.simulators.Poisson()
X_OBS = SIM.sample(torch.full((5, 1), 2.0), generator=torch.Generator().manual_seed(1)).x  # 3, 9, 5, 15, 7


class CountingPoisson(gm.simulators.Poisson):
    """Counts the runs it simulates, to check the reported simulator_calls."""

    def __init__(self):
        super().__init__()
        self.runs = 0

    def sample(self, theta, generator=None):
        self.runs += len(theta)
        return super().sample(theta, generator)


def counts_w1(sets, x_obs):
    """The Wasserstein-1 distance in counts (no prior-predictive units), comparable across runs."""
    return (sets[..., 0].sort(-1).values - x_obs[:, 0].sort().values).abs().sum(-1)


@pytest.fixture(scope="module")
def exact():
    return grid_posterior_samples(SIM, X_OBS, 20_000, generator=torch.Generator().manual_seed(0))


def moments(result: ABCResult) -> tuple[float, float]:
    w = result.weights
    mean = float(w @ result.samples[:, 0])
    return mean, float((w @ (result.samples[:, 0] - mean) ** 2) ** 0.5)


def test_rejection_converges_to_the_exact_posterior(exact):
    """As the accepted quantile shrinks, the ABC posterior's mean, width and its Kolmogorov–Smirnov
    distance to the exact posterior shrink (the C2ST accuracy goes 0.81 → 0.56 → 0.53; left out, it is slow)."""
    errors, ks = [], []
    for quantile in (0.3, 0.03, 0.003):
        sim = CountingPoisson()
        out = rejection_abc(sim, X_OBS, n_samples=1000, quantile=quantile, progress=False)
        proposals = math.ceil(1000 / quantile)
        assert out.proposals == proposals and out.simulator_calls == 5 * proposals == sim.runs
        assert out.samples.shape == (1000, 1) and math.isclose(float(out.weights.sum()), 1.0)
        assert float(out.distances.max()) == out.epsilon
        mean, std = moments(out)
        errors.append((abs(mean - float(exact.mean())), abs(std - float(exact.std()))))
        ks.append(ks_2samp(out.samples[:, 0].numpy(), exact[:, 0].numpy()).statistic)
    means, stds = zip(*errors)
    assert means[0] > means[1] > means[2] and stds[0] > stds[1] > stds[2], errors
    assert ks[0] > ks[1] > ks[2], ks
    # the tightest ABC posterior's mean agrees with the exact one within 4 standard errors
    assert means[2] < 4 * float(exact.std()) / math.sqrt(1000), errors


def test_smc_spends_its_budget_better_and_weights_correctly(exact):
    """With the same budget SMC reaches a smaller ε than rejection, and its weighted particles
    agree with rejection ABC at that same ε (the importance weights are right)."""
    sim = CountingPoisson()
    smc = smc_abc(sim, X_OBS, distance=counts_w1, n_particles=1000, budget=200_000, generations=None, progress=False)
    assert smc.simulator_calls <= 200_000 and smc.simulator_calls == sim.runs
    assert smc.simulator_calls == sum(h["simulator_calls"] for h in smc.history)
    assert smc.proposals * 5 == smc.simulator_calls
    assert [h["generation"] for h in smc.history] == list(range(len(smc.history))) and len(smc.history) > 3
    complete = [h for h in smc.history if h["complete"]]
    assert smc.epsilon == complete[-1]["epsilon"] and (smc.distances <= smc.epsilon).all()
    assert all(a["epsilon"] > b["epsilon"] for a, b in itertools.pairwise(complete))
    rejection = rejection_abc(SIM, X_OBS, distance=counts_w1, n_samples=1000, quantile=5000 / 200_000, progress=False)
    assert rejection.simulator_calls == 200_000 and smc.epsilon < rejection.epsilon, (smc.epsilon, rejection.epsilon)
    same = rejection_abc(SIM, X_OBS, distance=counts_w1, n_samples=1000, epsilon=smc.epsilon, progress=False)
    (m_smc, s_smc), (m_rej, s_rej) = moments(smc), moments(same)
    stderr = math.hypot(s_smc / math.sqrt(smc.ess), s_rej / math.sqrt(1000))
    assert abs(m_smc - m_rej) < 4 * stderr, (m_smc, m_rej, stderr)
    draws = smc.sample(500, torch.Generator().manual_seed(0))
    assert draws.shape == (500, 1) and torch.isin(draws, smc.samples).all()


def test_smc_stops_at_generations_and_is_reproducible():
    a = smc_abc(SIM, X_OBS, n_particles=200, generations=3, progress=False, seed=3)
    b = smc_abc(SIM, X_OBS, n_particles=200, generations=3, progress=False, seed=3)
    assert len(a.history) == 3 and all(h["complete"] for h in a.history)
    assert torch.equal(a.samples, b.samples) and torch.equal(a.weights, b.weights)
    assert a.ess <= 200 + 1e-9


def test_black_box_simulator_with_two_dimensional_x():
    """A black-box Gaussian location model: the posterior is N(x̄, I/n) inside the prior box."""
    sim = gm.simulators.BlackBoxSimulator(lambda t: t + np.random.normal(size=t.shape),
                                          gm.simulators.box_prior([-5.0, -5.0], [5.0, 5.0]))
    x_obs = torch.tensor([0.3, -0.4]) + torch.randn(10, 2, generator=torch.Generator().manual_seed(3))
    out = smc_abc(sim, x_obs, n_particles=500, generations=6, progress=False)
    mean = out.weights @ out.samples
    std = (out.weights @ (out.samples - mean) ** 2).sqrt()
    assert out.simulator_calls == 10 * out.proposals
    # ABC at ε > 0 is wider than the posterior (std 1/√10 = 0.32), but centred on it
    assert ((std > 0.3) & (std < 0.6)).all(), std
    assert ((mean - x_obs.mean(0)).abs() < 4 * std / math.sqrt(out.ess) + 0.05).all(), (mean, x_obs.mean(0))
    rejected = rejection_abc(sim, x_obs, n_samples=100, quantile=0.1, progress=False)
    assert rejected.samples.shape == (100, 2)


def test_epsilon_mode_counts_and_gives_up():
    sim = CountingPoisson()
    out = rejection_abc(sim, X_OBS, distance=counts_w1, n_samples=200, epsilon=12.0, progress=False)
    assert (out.distances <= 12).all() and out.simulator_calls == sim.runs == 5 * out.proposals
    with pytest.raises(ValueError, match="came within epsilon"):
        rejection_abc(SIM, X_OBS, distance=counts_w1, n_samples=200, epsilon=0.5, budget=50_000, progress=False)


@pytest.mark.parametrize("x_obs, match", [
    (torch.zeros(5, 2), r"shape \(n, 1\)"),
    (torch.zeros(0, 1), "empty"),
    (torch.tensor([[1.0], [float("nan")]]), "NaN"),
])
def test_bad_observations(x_obs, match):
    with pytest.raises(ValueError, match=match):
        rejection_abc(SIM, x_obs, progress=False)


def test_bad_settings():
    with pytest.raises(ValueError, match="quantile"):
        rejection_abc(SIM, X_OBS, quantile=1.5, progress=False)
    with pytest.raises(ValueError, match="quantile"):
        smc_abc(SIM, X_OBS, quantile=0.0, progress=False)
    with pytest.raises(ValueError, match="epsilon"):
        rejection_abc(SIM, X_OBS, epsilon=-1.0, progress=False)
    with pytest.raises(ValueError, match="generation 0"):
        smc_abc(SIM, X_OBS, n_particles=1000, budget=5000, progress=False)
    with pytest.raises(ValueError, match="never stop"):
        smc_abc(SIM, X_OBS, generations=None, progress=False)
    with pytest.raises(ValueError, match=r"\(k,\)"):
        rejection_abc(SIM, X_OBS, distance=lambda sets, x: sets.sum(1), n_samples=10, progress=False)
    with pytest.raises(TypeError, match="BlackBoxSimulator"):
        rejection_abc(lambda t: t, X_OBS, progress=False)
