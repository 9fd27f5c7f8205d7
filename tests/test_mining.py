"""mine(): shapes, the reference, consistency with the simulator, and refusal for black boxes."""

import numpy as np
import pytest
import torch

from goldmine import mine
from goldmine.simulators import BlackBoxSimulator, GaltonBoard, box_prior


def test_mine_agrees_with_replay_at_a_custom_reference():
    sim = GaltonBoard()
    theta = torch.linspace(-0.9, 0.9, 7)[:, None]
    ref = torch.tensor([0.25])
    gold = mine(sim, theta, reference=ref, generator=torch.Generator().manual_seed(0))
    assert gold.theta.shape == (7, 1) and gold.x.shape == (7, 1) and gold.log_r.shape == (7,)
    # the same generator reproduces the same runs, whose replay gives the same gold
    draws = sim.sample(theta, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(draws.x, gold.x)
    expected = sim.joint_log_prob(theta, draws) - sim.joint_log_prob(ref.expand(7, 1), draws)
    torch.testing.assert_close(gold.log_r, expected)
    torch.testing.assert_close(gold.score, sim.joint_score(theta, draws))


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
