"""mine(): shapes, the reference, consistency with the simulator, and refusal for black boxes."""

import numpy as np
import pytest
import torch

from goldmine import mine
from goldmine.simulators import BlackBoxSimulator, Draws, ExponentialFamily, GaltonBoard, Simulator, box_prior


def test_mine_agrees_with_replay_at_a_custom_reference():
    sim = GaltonBoard()
    theta = torch.linspace(-0.9, 0.9, 7)[:, None]
    ref = torch.tensor([0.25])
    gold = mine(sim, theta, reference=ref, generator=torch.Generator().manual_seed(0))
    assert gold.theta.shape == (7, 1) and gold.x.shape == (7, 1) and gold.log_r.shape == (7,)
    # the same generator reproduces the same runs, whose replay gives the same gold
    draws = sim.sample(theta, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(draws.x, gold.x)
    expected = sim.joint_log_prob(draws, theta) - sim.joint_log_prob(draws, ref.expand(7, 1))
    torch.testing.assert_close(gold.log_r, expected)
    torch.testing.assert_close(gold.score, sim.joint_score(draws, theta))


def test_log_r_is_zero_at_the_reference():
    gold = mine(GaltonBoard(), torch.zeros(100, 1))
    assert gold.log_r.abs().max() == 0


def test_reference_is_validated():
    with pytest.raises(ValueError, match="reference"):
        mine(GaltonBoard(), torch.zeros(3, 1), reference=torch.tensor([3.0]))


def test_black_box_mining_names_the_methods_that_still_work():
    sim = BlackBoxSimulator(lambda t: t + np.random.normal(size=t.shape), box_prior([-1], [1]))
    with pytest.raises(NotImplementedError, match="carl, nre, nle, npe, histogram, abc, alfi"):
        mine(sim, torch.zeros(3, 1))


def test_a_simulator_that_takes_theta_first_is_refused_when_defined():
    # the protocol's densities take the variable first and θ second: the old order would swap them silently
    with pytest.raises(TypeError, match=r"log_prob\(x, theta\), the density's variable first"):
        class LogProb(Simulator):
            def log_prob(self, theta, x):
                return torch.zeros(len(x))
    with pytest.raises(TypeError, match=r"joint_log_prob\(draws, theta\)"):
        class Joint(Simulator):
            def joint_log_prob(self, theta, draws):
                return torch.zeros(len(theta))
    with pytest.raises(TypeError, match=r"score\(x, theta\)"):
        class Score(Simulator):
            def score(self, t, x):
                return t

    class Fine(Simulator):
        def log_prob(self, x, theta):
            return torch.zeros(len(x))

        def joint_score(self, draws, theta):
            return theta

    assert Fine().log_prob(torch.zeros(2, 1), torch.ones(2, 1)).shape == (2,)


# -- an exponential family mined from its sufficient statistics ---------------------------------


class Lifetimes(Simulator):
    """20 exponential lifetimes w_i with rate e^θ (the latent path), x = how many end before 1.
    log p(z|θ) = Σ_i (θ − e^θ w_i), replayed from the stored path."""

    name, theta_dim, x_dim = "lifetimes", 1, 1

    def __init__(self):
        self.prior = box_prior([-1.0], [1.0])
        self.reference = torch.zeros(1, dtype=torch.float64)

    def sample(self, theta, generator=None):
        theta = self.check_theta(theta)
        waits = torch.empty(len(theta), 20, dtype=torch.float64).exponential_(generator=generator) / theta.exp()
        return Draws((waits < 1).sum(1, keepdim=True).double(), waits)

    def joint_log_prob(self, draws, theta):
        theta = self.check_theta(theta)
        return (theta - theta.exp() * draws.z).sum(1)


class LifetimeStats(ExponentialFamily, Lifetimes):
    """The same runs returned with T = (20, Σ w_i) instead of the path: η(θ) = (θ, −e^θ)."""

    def sample(self, theta, generator=None):
        draws = Lifetimes.sample(self, theta, generator)
        stats = torch.stack([torch.full((len(draws.z),), 20.0, dtype=torch.float64), draws.z.sum(1)], dim=1)
        return Draws(draws.x, None, stats)

    def natural_parameters(self, theta):
        return torch.cat([theta, -theta.exp()], dim=1)


def test_a_users_exponential_family_is_mined_from_its_statistics():
    """Same seed: the gold from T equals the replay of the path to float64 precision; the score by
    autograd through η is T₀ − e^θ T₁; E[t(x, z|θ)] = 0 within 5 standard errors."""
    theta = torch.linspace(-0.9, 0.9, 2000, dtype=torch.float64)[:, None]
    path = mine(Lifetimes(), theta, generator=torch.Generator().manual_seed(3))
    stats = mine(LifetimeStats(), theta, generator=torch.Generator().manual_seed(3))
    assert torch.equal(path.x, stats.x)
    torch.testing.assert_close(stats.log_r, path.log_r, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(stats.score, path.score, rtol=1e-12, atol=1e-12)
    draws = LifetimeStats().sample(theta, generator=torch.Generator().manual_seed(4))
    expected = draws.stats[:, :1] - theta.exp() * draws.stats[:, 1:]
    torch.testing.assert_close(LifetimeStats().joint_score(draws, theta), expected, rtol=1e-12, atol=1e-12)
    t = stats.score[:, 0]
    assert abs(float(t.mean())) < 5 * float(t.std()) / len(t) ** 0.5
    with pytest.raises(ValueError, match="draws.stats is None"):
        LifetimeStats().joint_log_prob(Draws(draws.x, None), theta)
    with pytest.raises(ValueError, match="runs.*but theta has"):
        LifetimeStats().joint_log_prob(draws, theta[:3])


def test_simulate_mines_an_exponential_family(tmp_path):
    import goldmine as gm

    data = gm.simulate(LifetimeStats(), 400, tmp_path / "stats.h5", progress=False)
    path = gm.simulate(Lifetimes(), 400, tmp_path / "path.h5", progress=False)
    a, b = data.tensors(dtype=torch.float64), path.tensors(dtype=torch.float64)
    assert torch.equal(a["x"], b["x"])
    for key in ("log_r", "score", "score_ref"):
        torch.testing.assert_close(a[key], b[key], rtol=1e-12, atol=1e-12)


def test_in_process_simulate_runs_on_one_thread_and_restores_the_count(tmp_path, monkeypatch):
    import goldmine as gm

    seen = []
    sample = GaltonBoard.sample

    def spy(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return sample(self, *args, **kwargs)

    monkeypatch.setattr(GaltonBoard, "sample", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for layout in ("pairs", "prior"):
            gm.simulate(GaltonBoard(), 200, tmp_path / f"{layout}.h5", progress=False, layout=layout)
        assert seen == [1, 1, 1] and torch.get_num_threads() == 2  # pairs: runs at θ and at θ_ref; prior: one
    finally:
        torch.set_num_threads(before)
