"""Slice sampling along random directions, many chains at once.

From θ, a direction v = L·ε (ε ~ N(0, I), LLᵀ the covariance of the warm-up draws) and a level
log y = log p(θ) − E (E ~ Exp(1)) define the slice {t : log p(θ + t·v) > log y} on the line. An
interval of width w around t = 0, placed at random, steps out by w until both ends lie outside the
slice (at most MAX_OUT times each way); then t is drawn uniformly from the interval, and the
interval shrinks toward 0 at every draw outside the slice, until one lands inside (Neal 2003). The
move leaves p invariant for any fixed L and w, and needs no tuning of an acceptance rate: L is
learned in warm-up windows (doubling, as for `goldmine.inference.mcmc`'s random walk), w is 3 (in
units of the direction's length, about 3 standard deviations along it), and both are frozen after
warm-up. All chains step out and shrink together, one batched call of the surrogate per round.

A slice chain does not cross between well-separated modes; `sampler="tempered"`
(`goldmine.inference.tempering`) does.

References:
    Neal, "Slice sampling", Ann. Stat. 31 (2003) 705
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..simulators.base import DTYPE
from .target import Target

WIDTH = 3.0  # the initial interval, in units of the direction's length
MAX_OUT = 10  # stepping-out steps per side at most
MAX_SHRINK = 100  # shrinkage rounds at most (then the chain stays where it is)
FIRST_WINDOW = 25

__all__ = ["slice_chains"]


def slice_chains(target: Target, start: Tensor, warmup: int, steps: int, thin: int, generator: torch.Generator,
                 progress: bool) -> tuple[Tensor, float]:
    """Slice-sampling chains → kept draws (chains, steps // thin, d) and the mean number of surrogate
    evaluations per step and chain (in place of an acceptance rate)."""
    chains, d = start.shape
    theta, log_p = start.clone(), target.log_density(start)
    chol = _chol(start)
    history = torch.empty(warmup, chains, d, dtype=DTYPE)
    kept = torch.empty(chains, steps // thin, d, dtype=DTYPE)
    update, window = min(FIRST_WINDOW, warmup), FIRST_WINDOW
    before = target.evaluations
    bar = tqdm(range(warmup + steps), desc="slice", disable=not progress, dynamic_ncols=True)
    for step in bar:
        if step == warmup:
            before = target.evaluations
        theta, log_p = _step(target, theta, log_p, chol, generator)
        if step < warmup:
            history[step] = theta
            if step + 1 == update:
                half = history[(step + 1) // 2:step + 1].reshape(-1, d)
                chol = _chol(half, chol)
                window *= 2
                update = warmup if update + 2 * window > warmup else update + window
        else:
            kept_step = step - warmup + 1
            if kept_step % thin == 0 and kept_step // thin <= kept.shape[1]:
                kept[:, kept_step // thin - 1] = theta
    bar.close()
    return kept, (target.evaluations - before) / (chains * steps)


def _step(target: Target, theta: Tensor, log_p: Tensor, chol: Tensor, generator: torch.Generator):
    chains, d = theta.shape
    v = torch.randn(chains, d, dtype=DTYPE, generator=generator) @ chol.T
    log_y = log_p - torch.empty(chains, dtype=DTYPE).exponential_(generator=generator)
    low = -WIDTH * torch.rand(chains, dtype=DTYPE, generator=generator)
    high = low + WIDTH
    # step out both ends together: one batched call per round for every end still inside the slice
    ends = torch.stack([low, high], 1)  # (chains, 2)
    sign = torch.tensor([-1.0, 1.0], dtype=DTYPE)
    active = torch.ones(chains, 2, dtype=torch.bool)
    for _ in range(MAX_OUT):
        idx = active.nonzero()
        if len(idx) == 0:
            break
        c, e = idx[:, 0], idx[:, 1]
        still = target.log_density(theta[c] + ends[c, e, None] * v[c]) > log_y[c]
        active[c, e] = still
        ends[c, e] += sign[e] * WIDTH * still.to(DTYPE)
    low, high = ends[:, 0].clone(), ends[:, 1].clone()
    new, new_log_p = theta.clone(), log_p.clone()
    todo = torch.ones(chains, dtype=torch.bool)
    for _ in range(MAX_SHRINK):
        idx = todo.nonzero()[:, 0]
        t = low[idx] + (high[idx] - low[idx]) * torch.rand(len(idx), dtype=DTYPE, generator=generator)
        point = theta[idx] + t[:, None] * v[idx]
        value = target.log_density(point)
        inside = value > log_y[idx]
        new[idx[inside]], new_log_p[idx[inside]] = point[inside], value[inside]
        todo[idx[inside]] = False
        low[idx] = torch.where(~inside & (t < 0), t, low[idx])
        high[idx] = torch.where(~inside & (t >= 0), t, high[idx])
        if not todo.any():
            break
    return new, new_log_p


def _chol(points: Tensor, fallback: Tensor | None = None) -> Tensor:
    d = points.shape[1]
    cov = torch.atleast_2d(torch.cov(points.T)) if len(points) > 1 else torch.zeros(d, d, dtype=DTYPE)
    scale = float(cov.diagonal().mean())
    if not (math.isfinite(scale) and scale > 0):
        return fallback if fallback is not None else torch.eye(d, dtype=DTYPE)
    chol, info = torch.linalg.cholesky_ex(cov + 1e-10 * scale * torch.eye(d, dtype=DTYPE))
    if info != 0:
        return fallback if fallback is not None else torch.eye(d, dtype=DTYPE)
    return chol
