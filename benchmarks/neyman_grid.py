"""Neyman regions on a θ grid for the benchmarks that compare several surrogates: the statistic, the thresholds
from toys shared by every surrogate, and the region of an observation.

The statistic is the profile q(θ) = 2(max ℓ − ℓ(θ)), ℓ(θ) = Σ_i log r̂(x_i|θ), with the maximum over the grid
refined by the quadratic through the best point's neighbours (`goldmine.inference.grid.Mesh.maximum`, as the
library's toys use it) and, at a point θ off the grid, the larger of that and ℓ(θ) (`point_statistic`). The threshold c(θ) is the
level-quantile of q(θ) over toys of n runs drawn at θ (`toy_quantile`: an order statistic, exact for
exchangeable toys), and the Neyman region of an observation is {θ_j : q_obs(θ_j) ≤ c(θ_j)} over the grid: it
covers any θ at the nominal level whatever the surrogate, so regions of different surrogates compare at equal
coverage. `benchmarks/lensing.py --neyman-bank` (toys resampled from a bank) and `benchmarks/lotka_volterra.py
--neyman` (independent toys, with overflowed runs redrawn) build their regions from these functions.

A simulator whose runs may overflow (NaN x, Lotka–Volterra's event cap) is observed only through its finite runs,
so its toys are too: `draw_finite` redraws the overflowed runs, and a point whose first `rounds` sets of n runs
all overflow cannot be observed (as the Lotka–Volterra study leaves out such a θ*). Such a point gets the
threshold −inf: it is outside every region (counted by the caller), as a θ that never yields the finite x observed.
"""

from __future__ import annotations

import math
import time
from contextlib import closing

import torch

from goldmine.executor import map_in_order, seeded_generator
from goldmine.inference.grid import Mesh
from goldmine.inference.toys import point_statistic, toy_log_likelihood, toy_quantile
from goldmine.simulators.base import DTYPE

#: sets of runs drawn before a point whose runs all overflow is given up (the study's rule for θ*)
ROUNDS = 50


def draw_finite(sim, theta: torch.Tensor, count: int, generator: torch.Generator, unit: int | None = None,
                rounds: int = ROUNDS) -> torch.Tensor:
    """Up to `count` runs with finite x at θ (theta_dim,) → (k, x_dim), k ≤ count: `count` runs are drawn per round
    and the finite ones kept, for at most `rounds` rounds; given up (k = 0) once the first rounds·unit runs
    (unit: the runs of one observation, default count) all overflowed."""
    unit = count if unit is None else unit
    kept = torch.empty(0, sim.x_dim, dtype=DTYPE)
    drawn = 0
    for _ in range(rounds):
        x = sim.sample(theta.expand(count, -1), generator=generator).x.to(DTYPE)
        kept = torch.cat([kept, x[torch.isfinite(x).all(1)]])[:count]
        drawn += count
        if len(kept) == count or (len(kept) == 0 and drawn >= rounds * unit):
            break
    return kept


def grid_q(mesh: Mesh, log_lik: torch.Tensor) -> torch.Tensor:
    """q at every grid point from ℓ on the grid, (t, g) → (t, g)."""
    return (2.0 * (mesh.maximum(log_lik)[:, None] - log_lik)).nan_to_num(nan=math.inf).clamp(min=0.0)


def toys_at(sim, theta: torch.Tensor, toys: int, n: int, seed: int, index: int) -> torch.Tensor:
    """`toys` toys of n finite runs at θ (fewer where runs overflow) → (t, n, x_dim), from the generator of
    (seed, index) alone."""
    x = draw_finite(sim, theta, toys * n, seeded_generator(seed, index), unit=n)
    t = len(x) // n
    return x[:t * n].reshape(t, n, sim.x_dim)


def thresholds_chunk(models: dict, sim, grid: torch.Tensor, points, toys: int, n: int, seed: int, level: float,
                     indices: list[int]) -> tuple[list[dict], dict]:
    """The thresholds at the points `indices` (runs in a worker): per point {"toys": t, name: c}, and the seconds
    spent simulating ("simulate") and per model.

    points None: the grid points, whose toys are evaluated together on the grid (θ_j is column j); else
    points (k, d) off the grid, each point's toys evaluated on the grid and the point. The toys of a point are
    drawn once and shared by every model; c = −inf where fewer than level/(1 − level) toys could be drawn.
    """
    mesh = Mesh(grid)
    least = math.ceil(level / (1 - level) - 1e-9)
    where = grid if points is None else points
    start = time.perf_counter()
    x = [toys_at(sim, where[j], toys, n, seed, j) for j in indices]
    seconds = {"simulate": time.perf_counter() - start}
    out = [{"toys": len(v)} for v in x]
    for name, model in models.items():
        start = time.perf_counter()
        if points is None:
            sizes = [len(v) for v in x]
            if sum(sizes) == 0:  # no point of the chunk can be observed
                for row in out:
                    row[name] = -math.inf
                seconds[name] = time.perf_counter() - start
                continue
            log_lik = toy_log_likelihood(model, torch.cat(x), grid)
            q = grid_q(mesh, log_lik)
            for i, (j, part) in enumerate(zip(indices, q.split(sizes))):
                out[i][name] = toy_quantile(part[:, j], level) if sizes[i] >= least else -math.inf
        else:
            for i, j in enumerate(indices):
                if len(x[i]) < least:
                    out[i][name] = -math.inf
                    continue
                log_lik = toy_log_likelihood(model, x[i], torch.cat([grid, points[j:j + 1]]))
                out[i][name] = toy_quantile(point_statistic(mesh, log_lik), level)
        seconds[name] = time.perf_counter() - start
    return out, seconds


def neyman_thresholds(models: dict, sim, grid: torch.Tensor, toys: int, n: int, seed: int, level: float,
                      points: torch.Tensor | None = None, workers: int = 1, chunk: int = 8,
                      log=print) -> tuple[dict, torch.Tensor, dict]:
    """c at every grid point (points None) or at every row of points (k, d), for every model: ({name: (k,)},
    toys drawn per point (k,), seconds summed over the chunks {"simulate": s, name: s}). The toys at point j
    come from the generator of (seed, j) alone, so the thresholds do not depend on the chunks or the workers;
    `workers` local processes share the points."""
    k = len(grid) if points is None else len(points)
    chunks = [list(range(i, min(i + chunk, k))) for i in range(0, k, chunk)]
    rows, seconds, start, every = [], {}, time.perf_counter(), max(1, len(chunks) // 10)
    with closing(map_in_order(thresholds_chunk, chunks, (models, sim, grid, points, toys, n, seed, level),
                              workers=workers, what="neyman thresholds")) as parts:
        for c, (part, spent) in enumerate(parts):
            rows.extend(part)
            for key, value in spent.items():
                seconds[key] = seconds.get(key, 0.0) + value
            if (c + 1) % every == 0:
                log(f"  thresholds at {len(rows)}/{k} points: {time.perf_counter() - start:.0f} s")
    thresholds = {name: torch.tensor([r[name] for r in rows], dtype=DTYPE) for name in models}
    return thresholds, torch.tensor([r["toys"] for r in rows]), seconds


def observed_region(model, x: torch.Tensor, grid: torch.Tensor, theta: torch.Tensor, thresholds: torch.Tensor,
                    threshold_at_theta: float, mesh: Mesh | None = None) -> dict:
    """The Neyman region of one observation x (n, x_dim): its grid points inside {q ≤ c} (g,) bool, q_obs at θ
    (theta_dim,), whether θ is covered by its own threshold c(θ) and by that of its nearest grid point."""
    mesh = Mesh(grid) if mesh is None else mesh
    log_lik = toy_log_likelihood(model, x[None], torch.cat([grid, theta[None]]))
    inside = grid_q(mesh, log_lik[:, :-1])[0] <= thresholds
    q_theta = float(point_statistic(mesh, log_lik)[0])
    nearest = int(((grid - theta) ** 2).sum(1).argmin())
    return {"inside": inside, "q": q_theta, "covered": q_theta <= threshold_at_theta,
            "covered_nearest": q_theta <= float(thresholds[nearest])}
