"""Toy data sets: n i.i.d. runs drawn at a hypothesis θ, for Neyman thresholds, expected limits and
coverage, and the Asimov data set.

Toys share work: the toys of a batch of grid points are evaluated on the whole θ grid together, in
large blocks of (run, θ) pairs (`Model.terms`, where a ratio network evaluates its reference term
once per run), each distinct x once when x is discrete, and the toy's maximum ℓ(θ̂) is the grid
maximum refined by a quadratic through its neighbours (exact for a parabolic ℓ, so its error is
third order in the step). With continuous x the pairs are all distinct: a Neyman region on g grid
points costs g² · toys · n evaluations of the surrogate, and that is what bounds its time.

The Asimov data set at θ is the exact x grid, or a large simulated sample, weighted to a total of
n_obs: θ̂ = θ there, and its q is the median of q over toys asymptotically.

References:
    Cowan, Cranmer, Gross, Vitells, "Asymptotic formulae for likelihood-based tests of new physics",
    Eur. Phys. J. C 71 (2011) 1554, https://arxiv.org/abs/1007.1727
"""

from __future__ import annotations

import math
import warnings
from contextlib import closing

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..executor import map_in_order, seeded_generator
from ..simulators.base import DTYPE, Simulator
from .grid import Mesh, cell_volume, make_grid
from .model import Model, as_model

__all__ = ["ASIMOV_RUNS", "ASIMOV_VALUES", "asimov_data", "asimov_runs",
           "draw_toys", "neyman_thresholds", "toy_log_likelihood", "toy_quantile",
           "toy_setup", "toy_simulator", "toy_sizes", "toy_statistic"]

#: simulated runs standing in for the Asimov data set when the simulator has no exact x grid
ASIMOV_RUNS = 100_000
#: values of x those runs may hold at most: fewer runs of a large x (2²⁴ / x_dim; 4096 images of 64 × 64)
ASIMOV_VALUES = 1 << 24
#: likelihood terms (θ points × toy observations) held at once when continuous x is summed per toy
TERMS_PER_PASS = 1 << 23


def asimov_runs(sim: Simulator) -> int:
    """The runs that stand in for the Asimov data set: ASIMOV_RUNS, fewer when x is large (images), so that
    they hold at most ASIMOV_VALUES values, and at least 1000."""
    return min(ASIMOV_RUNS, max(1000, ASIMOV_VALUES // max(1, int(sim.x_dim))))


def draw_toys(sim: Simulator, theta: Tensor, toys: int, n: int, generator: torch.Generator) -> Tensor:
    """`toys` data sets of n i.i.d. runs at θ (theta_dim,) → x (toys, n, x_dim)."""
    rows, step = toys * n, max(1, sim.block_size)
    parts = [sim.sample(theta.expand(min(step, rows - s), -1), generator=generator).x for s in range(0, rows, step)]
    x = torch.cat(parts).to(DTYPE)
    if not torch.isfinite(x).all():
        raise ValueError(f"{sim.name} returned NaN or infinite x at θ = {theta.tolist()}: toys need a simulator "
                         "that always yields finite x.")
    return x.reshape(toys, n, -1)


def toy_log_likelihood(model: Model, x: Tensor, theta: Tensor) -> Tensor:
    """ℓ of every toy at every θ: x (toys, n, x_dim), θ (m, d) → (toys, m), both already checked.

    The terms of all toys on all θ go to the surrogate in large batches (`Model.terms`). Discrete x
    repeats: then each distinct value is evaluated once on all θ, and a toy's ℓ is its counts of the
    distinct values times their log-likelihoods.
    """
    toys, n, x_dim = x.shape
    m = len(theta)
    flat = x.reshape(toys * n, x_dim)
    if x_dim == 1:
        unique, inverse = torch.unique(flat[:, 0], return_inverse=True)
        unique = unique[:, None]
    else:
        unique, inverse = torch.unique(flat, dim=0, return_inverse=True)
    if len(unique) <= len(flat) // 2:
        per_event = model.terms(theta, unique).nan_to_num(nan=-math.inf).T  # (k, m)
        counts = torch.zeros(toys, len(unique), dtype=DTYPE)
        rows = torch.arange(toys).repeat_interleave(n)
        counts.index_put_((rows, inverse), torch.ones((), dtype=DTYPE), accumulate=True)
        finite = torch.isfinite(per_event)
        out = counts @ torch.where(finite, per_event, 0.0)
        # 0·(−inf) is undefined: an impossible x sends ℓ to −inf only for the toys that hold it
        impossible = (counts > 0).to(DTYPE) @ (~finite).to(DTYPE)
        return out.masked_fill(impossible > 0, -math.inf)
    out = torch.empty(toys, m, dtype=DTYPE)
    step = max(1, TERMS_PER_PASS // (n * m))  # toys per pass
    for s in range(0, toys, step):
        part = flat[s * n:(s + step) * n]
        per_event = model.terms(theta, part).nan_to_num(nan=-math.inf)  # (m, toys in the pass · n)
        out[s:s + step] = per_event.reshape(m, -1, n).sum(-1).T
    return out


def toy_statistic(model: Model, x: Tensor, grid: Tensor, theta: Tensor, mesh: Mesh | None = None) -> Tensor:
    """q(θ) of every toy at one θ (1, d), with ℓ(θ̂) from the grid (refined): x (toys, n, x_dim) → (toys,)."""
    mesh = Mesh(grid) if mesh is None else mesh
    log_lik = toy_log_likelihood(model, x, torch.cat([grid, theta]))
    at_theta = log_lik[:, -1]
    top = torch.maximum(mesh.maximum(log_lik[:, :-1]), at_theta)
    return (2.0 * (top - at_theta)).nan_to_num(nan=math.inf).clamp(min=0.0)


def toy_quantile(q: Tensor, level: float) -> float:
    """The threshold from T toy statistics: their k-th smallest, k = ⌈level·(T + 1)⌉.

    An observation and T toys drawn at the same θ are exchangeable, so P(q_obs ≤ q_(k)) = k/(T + 1)
    ≥ level exactly (at least that with ties, for discrete x); the plain empirical quantile would
    fall short by about (1 − level)/T. With fewer than level/(1 − level) toys no order statistic
    suffices, and the largest is taken with a warning.
    """
    toys = len(q)
    k = math.ceil(level * (toys + 1) - 1e-9)
    if k > toys:
        warnings.warn(f"{toys} toys are too few for a {level:.0%} Neyman threshold (it needs at least "
                      f"{math.ceil(level / (1 - level))}): the region undercovers; raise toys.", stacklevel=3)
        k = toys
    return float(q.nan_to_num(nan=math.inf).kthvalue(k).values)


def toy_sizes(grid: Tensor, q: Tensor, threshold: float) -> np.ndarray:
    """Region sizes of many toys at once, q: (toys, g) → (toys,): in 1-D the endpoints by linear
    interpolation of √q between grid points, above the cell volume times the points inside."""
    inside = q <= threshold
    if grid.shape[1] > 1:
        return (inside.sum(1) * cell_volume(grid)).numpy()
    order = grid[:, 0].argsort()
    theta, q, inside = grid[order, 0], q[:, order], inside[:, order]
    step = theta.diff()
    both = inside[:, 1:] & inside[:, :-1]
    one = inside[:, 1:] ^ inside[:, :-1]
    q_in = torch.where(inside[:, :-1], q[:, :-1], q[:, 1:])
    q_out = torch.where(inside[:, :-1], q[:, 1:], q[:, :-1])
    # √q is linear in θ on either side of θ̂ for a parabolic ℓ: interpolate it rather than q
    root = math.sqrt(threshold)
    part = ((root - q_in.sqrt()) / (q_out.sqrt() - q_in.sqrt())).nan_to_num(0.0).clamp(0.0, 1.0)
    return (step * torch.where(both, 1.0, torch.where(one, part, 0.0))).sum(1).numpy()


def neyman_thresholds(model: Model, sim: Simulator, grid: Tensor, level: float, toys: int, n: int, seed: int,
                      workers: int = 1, cluster=None, progress: bool = True) -> Tensor:
    """The level-quantile of q(θ_j) over `toys` data sets of n runs drawn at every grid point θ_j → (g,).

    Grid points are handed out in batches of up to 16, here, to `workers` local processes or to a
    Dask cluster (`goldmine.executor.map_in_order`); the toys at θ_j come from the generator seeded by
    (seed, j) alone, so the thresholds do not depend on the batching or the backend.
    """
    g = len(grid)
    per_chunk = max(1, min(16, g // (4 * workers)))
    chunks = [list(range(i, min(i + per_chunk, g))) for i in range(0, g, per_chunk)]
    out = []
    bar = tqdm(total=g, unit="θ", desc=f"neyman toys ({toys} per point)", disable=not progress, dynamic_ncols=True)
    try:
        with closing(map_in_order(thresholds_at, chunks, (model, sim, grid, level, toys, n, seed), workers=workers,
                                  cluster=cluster, what="neyman toys")) as parts:
            for part in parts:
                out.extend(part)
                bar.update(len(part))
    finally:
        bar.close()
    return torch.tensor(out, dtype=DTYPE)


def thresholds_at(model: Model, sim: Simulator, grid: Tensor, level: float, toys: int, n: int, seed: int,
                  indices: list[int]) -> list[float]:
    """The Neyman thresholds at the grid points `indices` (runs in a worker).

    The toys of all these points share one evaluation of ℓ on the grid (each distinct x once);
    θ_j is a grid point, so ℓ(θ_j) is column j.
    """
    x = torch.cat([draw_toys(sim, grid[j], toys, n, seeded_generator(seed, j)) for j in indices])
    log_lik = toy_log_likelihood(model, x, grid).reshape(len(indices), toys, len(grid))
    top = Mesh(grid).maximum(log_lik.reshape(-1, len(grid))).reshape(len(indices), toys)
    out = []
    for i, j in enumerate(indices):
        q = (2.0 * (top[i] - log_lik[i, :, j])).nan_to_num(nan=math.inf).clamp(min=0.0)
        out.append(toy_quantile(q, level))
    return out


def asimov_data(sim: Simulator, theta: Tensor, n_obs: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """The Asimov data set at θ (theta_dim,): x (m, x_dim) and weights (m,) summing to n_obs.

    The simulator's x grid weighted by n_obs·p(x|θ) when it has one and an exact likelihood, else
    the distinct values of `asimov_runs(sim)` runs at θ weighted by their counts.
    """
    try:
        x, w = sim.x_grid()
        weights = w * sim.log_prob(x, theta.expand(len(x), -1)).exp()
    except NotImplementedError:
        runs = sim.sample(theta.expand(asimov_runs(sim), -1), generator=seeded_generator(seed, 0)).x.to(DTYPE)
        runs = runs.reshape(len(runs), -1)  # x of more axes (images) as flat rows, as inference reads them
        runs = runs[torch.isfinite(runs).all(1)]
        x, weights = torch.unique(runs, dim=0, return_counts=True)
        weights = weights.to(DTYPE)
    keep = weights > 0
    x, weights = x[keep].to(DTYPE), weights[keep]
    return x, weights * (n_obs / weights.sum())


def toy_setup(model, theta, name: str, prior, simulator: Simulator | None, grid,
              what: str) -> tuple[Model, Tensor, Tensor, Simulator]:
    """The model, the one point θ (1, d) that toys are drawn at, the θ grid and the toys' simulator, checked."""
    model = as_model(model, prior, simulator)
    theta = model.check_theta(theta, name)
    if len(theta) != 1:
        raise ValueError(f"{name} must be one point of shape ({model.theta_dim},); got {len(theta)} rows.")
    return model, theta, make_grid(model, grid), toy_simulator(model, simulator, what)


def toy_simulator(model: Model, simulator: Simulator | None, what: str) -> Simulator:
    """The simulator that toys are drawn from: `simulator`, else the model's; checked against the model."""
    sim = model.simulator if simulator is None else simulator
    if sim is None:
        raise ValueError(
            f"{what} draws toy data sets from the simulator, but the model has none: pass simulator=sim (the "
            "simulator the surrogate was trained on), or build the model as Model(estimator, prior=sim)."
        )
    if (sim.theta_dim, sim.x_dim) != (model.theta_dim, model.x_dim):
        raise ValueError(
            f"the simulator {sim.name} has θ of dimension {sim.theta_dim} and x of dimension {sim.x_dim}, but the "
            f"model has {model.theta_dim} and {model.x_dim}: pass the simulator the surrogate was trained on."
        )
    return sim
