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
REACH = LEVELS // 2  # |p − START| ≤ 10 before every level
CHUNK = 16384  # rows per pass in replays: keeps the (rows, 20) float64 temporaries in cache

# A ball gains at most one slot per even level and loses at most one per odd level, so it stays in
# [START − 10, START + 10] = [5, 25]: the walls at p = 0 and p = 31 are never reached, no decision
# of a run is forced, and sampling and replay can skip them (slot_probs keeps them, for clarity).
assert 0 < START - REACH and START + REACH < SLOTS - 1


class GaltonBoard(Simulator):
    """The Galton board of the module docstring: θ ∈ [−1, 1] (prior uniform), θ_ref = 0, x = final slot.

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
        self._c = (1 - self._s) / 2  # (20,), P(left) = c + s·σ(a) and P(right) = c + s·σ(−a)
        self._even = (torch.arange(LEVELS) % 2 == 0).to(torch.int8)
        self._evens_before = torch.tensor([(level + 1) // 2 for level in range(LEVELS)], dtype=DTYPE)
        self._offset = torch.arange(LEVELS) * (2 * REACH + 1) + REACH  # flat (level, ±(p − 15)) index

    # In terms of the lefts L_l taken before level l, p_l = 15 + (even levels before l) − L_l and the
    # logit a_l = 10·θ·(2p_l/30 − 1) = (2θ/3)·(p_l − 15).

    def _p_left(self, theta: Tensor, p: Tensor, level: int) -> Tensor:
        s = self._s[level]
        q = (1.0 - s) / 2.0 + s * torch.sigmoid(10.0 * theta * (2.0 * p / 30.0 - 1.0))
        if level % 2 == 1:
            q = torch.where(p == 0, torch.zeros_like(q), q)
            q = torch.where(p == SLOTS - 1, torch.ones_like(q), q)
        return q

    def sample(self, theta, generator=None) -> Draws:
        theta = self.check_theta(theta)[:, 0]
        n = theta.shape[0]
        u = torch.rand(LEVELS, n, generator=generator, dtype=DTYPE)  # level-major: each level contiguous
        left = torch.empty(LEVELS, n, dtype=torch.bool)
        lefts = torch.zeros(n, dtype=DTYPE)
        k = theta * (2.0 / 3.0)
        torch.lt(u[0], 0.5, out=left[0])  # s_0 = 0: a fair decision
        lefts += left[0]
        for level in range(1, LEVELS):
            s, c = self._s[level], self._c[level]
            # u < c + s·σ(a)  ⟺  (u − c)/s < σ(a)
            threshold = torch.addcmul(-c / s, u[level], 1 / s)
            a = (self._evens_before[level] - lefts).mul_(k)
            torch.lt(threshold, a.sigmoid_(), out=left[level])
            lefts += left[level]
        return Draws((START + REACH - lefts)[:, None], left.T.contiguous())

    def _signed_offsets(self, z: Tensor) -> Tensor:
        """±(p_l − 15), + where the ball went left, from the decisions z (n, 20): (n, 20) int8.

        The logit of the decision taken is ±a_l = (2θ/3)·this.
        """
        went_left = z.view(torch.int8)
        step = self._even - went_left  # right on an even level: +1; left on an odd one: −1
        before = torch.cumsum(step, dim=1, dtype=torch.int8) - step
        return before * (2 * went_left - 1)

    def _shared_theta(self, theta: Tensor) -> Tensor | None:
        """The θ of every row when all rows share it (as θ_ref does in mining), else None."""
        if theta.requires_grad or not bool((theta == theta[:1]).all()):
            return None
        return theta[0, 0]

    def _tables(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """log P(d) and ∂ log P(d)/∂θ at one θ for every (level, ±(p − 15)): two (20·21,) tables."""
        slope = torch.arange(-REACH, REACH + 1, dtype=DTYPE) * (2.0 / 3.0)  # ∂(±a)/∂θ, (21,)
        sig = torch.sigmoid(theta * slope)
        q = self._s[:, None] * sig
        prob = q + self._c[:, None]
        return prob.log().reshape(-1), (q * (1 - sig) * slope / prob).reshape(-1)

    def _lookup(self, table: Tensor, z: Tensor) -> Tensor:
        return table.take(self._signed_offsets(z).long() + self._offset).sum(dim=1)

    def _log_prob_rows(self, theta: Tensor, z: Tensor) -> Tensor:
        b = self._signed_offsets(z).to(DTYPE) * (theta * (2.0 / 3.0))  # ±a, (n, 20)
        # every P(d) ≥ (1 − sin(9π/19))/2 ≈ 0.0017, so the product of 20 stays far from underflow:
        # one log per row instead of 20
        return torch.addcmul(self._c, self._s, torch.sigmoid(b)).prod(dim=1).log()

    def _score_rows(self, theta: Tensor, z: Tensor) -> Tensor:
        slope = self._signed_offsets(z).to(DTYPE).mul_(2.0 / 3.0)  # ∂(±a)/∂θ
        sig = torch.sigmoid(theta * slope)
        q = self._s * sig
        prob = q + self._c
        # ∂ log P(d)/∂θ = s·σ(±a)·(1 − σ(±a))·∂(±a)/∂θ / P(d)
        return torch.addcmul(q, q, sig, value=-1).mul_(slope).div_(prob).sum(dim=1)

    def _replay(self, rows, table: Tensor | None, theta: Tensor, z: Tensor) -> Tensor:
        parts = []
        for i in range(0, theta.shape[0], CHUNK):
            zi = z[i : i + CHUNK]
            parts.append(rows(theta[i : i + CHUNK], zi) if table is None else self._lookup(table, zi))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def joint_log_prob(self, draws: Draws, theta) -> Tensor:
        theta = self.check_theta(theta)
        shared = self._shared_theta(theta)
        table = None if shared is None else self._tables(shared)[0]
        return self._replay(self._log_prob_rows, table, theta, draws.z)

    def joint_score(self, draws: Draws, theta) -> Tensor:
        """Hand-written t(x, z|θ) = Σ_l ±s_l σ'(a_l) ∂a_l/∂θ / P(d_l): no autograd graph."""
        theta = self.check_theta(theta).detach()
        shared = self._shared_theta(theta)
        table = None if shared is None else self._tables(shared)[1]
        return self._replay(self._score_rows, table, theta, draws.z)[:, None]

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

    def log_prob(self, x, theta) -> Tensor:
        x = self.check_x(x)
        theta = self.check_theta(theta)
        probs = self.slot_probs(theta)
        k = x[:, 0]
        valid = (k == k.round()) & (k >= 0) & (k < SLOTS)
        idx = k.clamp(0, SLOTS - 1).long()
        out = probs.gather(1, idx[:, None])[:, 0].log()
        return torch.where(valid, out, torch.full_like(out, -math.inf))

    def x_grid(self) -> tuple[Tensor, Tensor]:
        """The 32 slots, (32, 1), each with weight 1: Σ_i w_i f(x_i) = Σ_x f(x)."""
        return torch.arange(SLOTS, dtype=DTYPE)[:, None], torch.ones(SLOTS, dtype=DTYPE)
