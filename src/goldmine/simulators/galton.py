"""The generalized Galton board: a ball falls through 20 rows of nails into one of 31 slots.

At level l = 0..19 in slot p the ball goes left with probability

    P(left | l, p, θ) = (1 − sin(πl/19))/2 + sin(πl/19)·σ(10·θ·(2p/30 − 1)),

except on odd levels, where p = 0 forces right and p = 31 forces left. Going left keeps p on even
levels and decrements it on odd ones; going right increments p on even levels and keeps it on odd
ones. The ball starts at p = 15; x is the final slot. The latent z is the 20 decisions, so

    log p(x, z|θ) = Σ_l log P(d_l | l, p_l, θ),

and p(x|θ) follows exactly by dynamic programming over the slots.

References:
    Brehmer, Louppe, Pavez, Cranmer, "Mining gold from implicit models to improve likelihood-free
    inference", PNAS 117 (2020) 5242, https://arxiv.org/abs/1805.12244
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import DTYPE, Draws, Simulator, box_prior

LEVELS = 20
SLOTS = 32  # p = 0..31
START = 15


class GaltonBoard(Simulator):
    """The Galton board of DESIGN.md: θ ∈ [−1, 1] (prior uniform), θ_ref = 0, x = final slot.

    Example:
        >>> sim = GaltonBoard()
        >>> draws = sim.sample(torch.zeros(4, 1), generator=torch.Generator().manual_seed(0))
        >>> draws.x.shape, draws.z.shape
        (torch.Size([4, 1]), torch.Size([4, 20]))
    """

    name = "galton"
    theta_dim = 1
    x_dim = 1

    def __init__(self):
        self.prior = box_prior([-1.0], [1.0])
        self.reference = torch.zeros(1, dtype=DTYPE)
        levels = torch.arange(LEVELS, dtype=DTYPE)
        self._s = torch.sin(math.pi * levels / (LEVELS - 1))  # (20,)

    def _p_left(self, theta: Tensor, p: Tensor, level: int) -> Tensor:
        s = self._s[level]
        q = (1.0 - s) / 2.0 + s * torch.sigmoid(10.0 * theta * (2.0 * p / 30.0 - 1.0))
        if level % 2 == 1:
            q = torch.where(p == 0, torch.zeros_like(q), q)
            q = torch.where(p == SLOTS - 1, torch.ones_like(q), q)
        return q

    @staticmethod
    def _step(p: Tensor, left: Tensor, level: int) -> Tensor:
        if level % 2 == 0:
            return p + (~left).to(p.dtype)
        return p - left.to(p.dtype)

    def sample(self, theta, generator=None) -> Draws:
        theta = self.check_theta(theta)[:, 0]
        n = theta.shape[0]
        u = torch.rand(n, LEVELS, generator=generator, dtype=DTYPE)
        p = torch.full((n,), float(START), dtype=DTYPE)
        left = torch.empty(n, LEVELS, dtype=torch.bool)
        for level in range(LEVELS):
            left[:, level] = u[:, level] < self._p_left(theta, p, level)
            p = self._step(p, left[:, level], level)
        return Draws(p[:, None], left)

    def _path(self, z: Tensor) -> Tensor:
        """Slot before each level, (n, 20), recomputed from the decisions z: (n, 20)."""
        moves = torch.where(
            torch.arange(LEVELS) % 2 == 0, (~z).to(DTYPE), -z.to(DTYPE)
        )  # even levels: right → +1; odd levels: left → −1
        after = START + torch.cumsum(moves, dim=1)
        return torch.cat([torch.full_like(after[:, :1], START), after[:, :-1]], dim=1)

    def joint_log_prob(self, theta, draws: Draws) -> Tensor:
        theta = self.check_theta(theta)
        z = draws.z
        p = self._path(z)
        s = self._s
        a = theta * 10.0 * (2.0 * p / 30.0 - 1.0)  # (n, 20)
        # log P(left) and log P(right) without cancellation: P = (1−s)/2 + s·σ(±a)
        log_left = torch.logaddexp(torch.log((1 - s) / 2), torch.log(s) + torch.nn.functional.logsigmoid(a))
        log_right = torch.logaddexp(torch.log((1 - s) / 2), torch.log(s) + torch.nn.functional.logsigmoid(-a))
        odd = torch.arange(LEVELS) % 2 == 1
        forced = odd & ((p == 0) | (p == SLOTS - 1))
        log_p = torch.where(z, log_left, log_right)
        log_p = torch.where(forced, torch.zeros_like(log_p), log_p)
        return log_p.sum(dim=1)

    def joint_score(self, theta, draws: Draws) -> Tensor:
        """Hand-written t(x, z|θ) = Σ_l ±s_l σ'(a_l) ∂a_l/∂θ / P(d_l): no autograd graph."""
        theta = self.check_theta(theta).detach()
        z = draws.z
        p = self._path(z)
        s = self._s
        slope = 10.0 * (2.0 * p / 30.0 - 1.0)
        sig = torch.sigmoid(theta * slope)
        dq = s * sig * (1 - sig) * slope  # ∂P(left)/∂θ
        q = (1 - s) / 2 + s * sig
        term = torch.where(z, dq / q, -dq / (1 - q))
        odd = torch.arange(LEVELS) % 2 == 1
        forced = odd & ((p == 0) | (p == SLOTS - 1))
        term = torch.where(forced, torch.zeros_like(term), term)
        return term.sum(dim=1, keepdim=True)

    def slot_probs(self, theta) -> Tensor:
        """Exact p(x = k|θ) for every slot k = 0..31: (n, 1) → (n, 32), by dynamic programming."""
        theta = self.check_theta(theta)[:, 0]
        n = theta.shape[0]
        slots = torch.arange(SLOTS, dtype=DTYPE).expand(n, SLOTS)
        prob = torch.zeros(n, SLOTS, dtype=DTYPE)
        prob[:, START] = 1.0
        for level in range(LEVELS):
            q = self._p_left(theta[:, None], slots, level)
            go_left, go_right = prob * q, prob * (1 - q)
            if level % 2 == 0:  # left stays, right moves up
                shifted = torch.nn.functional.pad(go_right[:, :-1], (1, 0))
                prob = go_left + shifted
            else:  # left moves down, right stays
                shifted = torch.nn.functional.pad(go_left[:, 1:], (0, 1))
                prob = go_right + shifted
        return prob

    def log_prob(self, theta, x) -> Tensor:
        theta = self.check_theta(theta)
        x = self.check_x(x)
        probs = self.slot_probs(theta)
        k = x[:, 0]
        valid = (k == k.round()) & (k >= 0) & (k < SLOTS)
        idx = k.clamp(0, SLOTS - 1).long()
        out = probs.gather(1, idx[:, None])[:, 0].log()
        return torch.where(valid, out, torch.full_like(out, -math.inf))

    def x_grid(self) -> tuple[Tensor, Tensor]:
        """The 32 slots, (32, 1), each with weight 1: Σ_i w_i f(x_i) = Σ_x f(x)."""
        return torch.arange(SLOTS, dtype=DTYPE)[:, None], torch.ones(SLOTS, dtype=DTYPE)
