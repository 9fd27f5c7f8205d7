"""mine(): shapes, the reference, consistency with the simulator, and refusal for black boxes."""

import numpy as np
import pytest
import torch

from goldmine import mine
from goldmine.simulators import BlackBoxSimulator, GaltonBoard, Simulator, box_prior


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
