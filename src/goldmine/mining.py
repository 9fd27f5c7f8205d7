"""Mining gold: the joint likelihood ratio and the joint score of every simulator run.

For a run (x, z) drawn at θ the simulator's `joint_log_prob` is replayed at θ and at θ_ref:

    log r(x, z|θ, θ_ref) = log p(x, z|θ) − log p(x, z|θ_ref),    t(x, z|θ) = ∇_θ log p(x, z|θ),

the score by autograd unless the simulator has a hand-written `joint_score`. An exponential family
(`goldmine.simulators.ExponentialFamily`, log p(x, z|θ) = η(θ)·T(x, z)) is mined from the statistics
T that its runs return, without the path: log r = (η(θ) − η(θ_ref))·T and t = T·∂η/∂θ. Both are
unbiased labels of the intractable targets:

    E_{z~p(z|x,θ_ref)}[r(x, z|θ, θ_ref)] = r(x|θ, θ_ref),    E_{z~p(z|x,θ)}[t(x, z|θ)] = ∇_θ log p(x|θ).

References:
    Brehmer, Louppe, Pavez, Cranmer, "Mining gold from implicit models to improve likelihood-free
    inference", PNAS 117 (2020) 5242, https://arxiv.org/abs/1805.12244
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .simulators.base import Draws, Simulator


@dataclass(frozen=True)
class Gold:
    """Mined runs.

    Attributes:
        theta: (n, d_θ), the parameter point of each run.
        x: (n, d_x), the observation drawn at theta.
        log_r: (n,), log r(x, z|θ, θ_ref).
        score: (n, d_θ), t(x, z|θ).
    """

    theta: Tensor
    x: Tensor
    log_r: Tensor
    score: Tensor


def reference_of(sim: Simulator, reference=None) -> Tensor:
    """θ_ref as a validated (theta_dim,) float64 tensor: the simulator's own unless given."""
    ref = sim.reference if reference is None else reference
    return sim.check_theta(torch.as_tensor(ref).reshape(1, -1), what="reference")[0]


@torch.no_grad()
def augment(sim: Simulator, draws: Draws, theta: Tensor, reference: Tensor) -> dict[str, Tensor]:
    """The gold of recorded runs, evaluated at θ (one row per run) and at θ_ref.

    Arguments:
        sim: a simulator with `joint_log_prob`.
        draws: the recorded runs, n of them.
        theta: (n, d_θ), where log r and t are evaluated (not necessarily where x was drawn).
        reference: (d_θ,), θ_ref.

    Returns:
        log_r (n,), score (n, d_θ) = t(x, z|θ) and score_ref (n, d_θ) = t(x, z|θ_ref).
    """
    ref = reference.expand_as(theta)
    log_r = sim.joint_log_prob(draws, theta) - sim.joint_log_prob(draws, ref)
    return {
        "log_r": log_r,
        "score": sim.joint_score(draws, theta),
        "score_ref": sim.joint_score(draws, ref),
    }


def mine(sim: Simulator, theta, reference=None, generator: torch.Generator | None = None) -> Gold:
    """Draws x ~ p(x|θ) once per row of θ and mines its joint log-ratio and joint score.

    Arguments:
        sim: a simulator that has `joint_log_prob` (not a black box).
        theta: (n, d_θ) parameter points.
        reference: θ_ref of the ratio; the simulator's own by default.
        generator: the source of randomness, for reproducible runs.

    Example:
        >>> import goldmine as gm
        >>> gold = gm.mine(gm.simulators.GaltonBoard(), torch.full((5, 1), 0.3))
        >>> gold.log_r.shape, gold.score.shape
        (torch.Size([5]), torch.Size([5, 1]))
    """
    sim.require_gold()
    theta = sim.check_theta(theta)
    ref = reference_of(sim, reference)
    draws = sim.sample(theta, generator=generator)
    gold = augment(sim, draws, theta, ref)
    return Gold(theta, draws.x, gold["log_r"], gold["score"])
