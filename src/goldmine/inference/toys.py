"""Toy data sets: n i.i.d. runs drawn at a hypothesis θ, for Neyman thresholds, expected limits and
coverage, and the Asimov data set.

Toys share work: the toys of a batch of grid points are evaluated on the whole θ grid together, in
large blocks of (run, θ) pairs (`Model.terms`, where a ratio network evaluates its reference term
and its first layer's x part once per run, `RatioNetwork.table`), each distinct x once when x is
discrete, and the toy's maximum ℓ(θ̂) is the grid maximum refined by a quadratic through its neighbours (exact for a parabolic ℓ, so its error is
third order in the step). With continuous x the pairs are all distinct: the profile statistic on g
grid points costs g² · toys · n evaluations of the surrogate. Two devices bring that down.

**A windowed statistic.** For a grid point θ_g and a half-width of w grid steps,

    q_w(θ_g) = −2 [ℓ(θ_g) − max_{θ ∈ W_w(θ_g)} ℓ(θ)],    W_w(θ_g) = grid points within w steps of θ_g
                                                            along every axis ((2w + 1)^d of them, fewer at the edge),

the maximum refined by the quadratic through the best point's neighbours inside the window (`Window`).
Neyman's construction is exact for any statistic: with t_g the level-quantile of q_w(θ_g) over toys
drawn at θ_g, and the same q_w applied to the observations, P_θg(q_w ≤ t_g) ≥ level, so the region
{θ_g : q_w,obs(θ_g) ≤ t_g} covers at the nominal level. The statistic only decides the region's shape
(its power). Where ℓ is parabolic in an identified direction, q_w at θ_g is an increasing function
of the distance |θ̂ − θ_g| in that direction's standard errors (q_w = z² while θ̂ lies in the window,
2·z·a − a² beyond, with a the window's reach in standard errors), so the window gives the same
region as the profile; it differs where ℓ is far from parabolic, and in several identified
directions, where beyond the window it ranks points by the slope of ℓ rather than its drop. Points
whose observed window maximum sits on the window's edge (θ̂ beyond the window) are counted in
`Region.window_edge`. Each toy needs ℓ at (2w + 1)^d points only: g · toys · n · (2w + 1)^d evaluations.

**Pooled toys.** At each grid point θ_j a pool of M runs is simulated once; a toy is n indices drawn
with replacement from the pool, and its ℓ at any θ is the sum of the pool's terms at its indices:
every pool run is evaluated once per θ it is needed at, whatever the number of toys. The cost becomes
g · M · (2w + 1)^d evaluations. A finite pool has its own best-fitting θ_pool, off θ_j by about
I₁^(−1/2)/√M (I₁ the information of one run), and the toys resampled from it are centred there: their
q(θ_j) is noncentral χ²_d with noncentrality λ ≈ (n/M)·χ²_d, E λ = d·n/M. For small λ

    P(χ²_d(λ) > t) ≈ (1 − level) + (λ/2)·[S_{d+2}(t) − S_d(t)],   S_k = the χ²_k survival function,

so the pool shifts the threshold's coverage by about (d·n/M)·½·[S_{d+2}(t) − (1 − level)], at t the χ²_d
quantile, towards over-coverage. The pool's spread errs too: its covariance is that of M runs, off by
a relative √(2/M), which scales the toys' q and moves the threshold by about t·√(2/(d·M)), a random
error (no bias) that adds to the quantile's own. The default pool (`pool_size`) keeps the shift of
the coverage, and the spread's error of the threshold, at `POOL_BIAS` times the quantile's own Monte
Carlo error σ = sqrt(level (1 − level) / toys) (in probability, and over the χ²_d density f_d(t)):

    M = max( d·n·[S_{d+2}(t) − (1 − level)] / (2·POOL_BIAS·σ),   2·t²·f_d(t)² / (d·POOL_BIAS²·σ²) ),

M ≈ 44·n for 1,000 toys in 2-D at 95% (the first term), and at least about 2·toys for few runs per
toy (the second). A pool as large as toys · n is no pool: the toys are then independent.

Discrete x (few distinct values) needs neither: each distinct value is evaluated once on the whole
grid, so the profile statistic with independent toys is cheap, and `neyman_plan` keeps it there.

The Asimov data set at θ is the exact x grid, or a large simulated sample, weighted to a total of
n_obs: θ̂ = θ there, and its q is the median of q over toys asymptotically.

References:
    Neyman, "Outline of a theory of statistical estimation based on the classical theory of
    probability", Phil. Trans. R. Soc. A 236 (1937) 333.
    Cowan, Cranmer, Gross, Vitells, "Asymptotic formulae for likelihood-based tests of new physics",
    Eur. Phys. J. C 71 (2011) 1554, https://arxiv.org/abs/1007.1727
    Efron, Tibshirani, "An Introduction to the Bootstrap", Chapman & Hall (1993): resampling a finite sample.
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

__all__ = ["ASIMOV_RUNS", "ASIMOV_VALUES", "NEYMAN_WINDOW", "POOL_BIAS", "Window", "asimov_data", "asimov_runs",
           "distinct", "draw_toys", "neyman_pairs", "neyman_plan", "neyman_thresholds", "pool_size", "repeats",
           "toy_log_likelihood", "toy_quantile", "toy_setup", "toy_simulator", "toy_sizes", "toy_statistic"]

#: simulated runs standing in for the Asimov data set when the simulator has no exact x grid
ASIMOV_RUNS = 100_000
#: values of x those runs may hold at most: fewer runs of a large x (2²⁴ / x_dim; 4096 images of 64 × 64)
ASIMOV_VALUES = 1 << 24
#: likelihood terms (θ points × toy observations) held at once when continuous x is summed per toy
TERMS_PER_PASS = 1 << 23
#: the window's half-width in grid steps of a Neyman region for continuous x (benchmarks/README.md, "Neyman speed")
NEYMAN_WINDOW = 2
#: the default pool's coverage shift, as a fraction of the threshold's Monte Carlo error (`pool_size`)
POOL_BIAS = 0.5
#: runs drawn to tell discrete x (at most half of them distinct) from continuous x
PROBE_RUNS = 2000
#: the generator stream of those runs (grid points use the streams 0..g − 1)
PROBE_STREAM = (1 << 31) - 1


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


def distinct(flat: Tensor) -> tuple[Tensor, Tensor]:
    """The distinct rows of runs flat (N, x_dim) → (k, x_dim), and each run's index among them (N,); one-dimensional
    x by a sort of the values, much faster than unique rows."""
    if flat.shape[1] == 1:
        unique, inverse = torch.unique(flat[:, 0], return_inverse=True)
        return unique[:, None], inverse
    return torch.unique(flat, dim=0, return_inverse=True)


def repeats(unique: Tensor, flat: Tensor) -> bool:
    """Whether runs repeat enough (at most half of them distinct) that `toy_log_likelihood` evaluates each distinct
    value once, at a cost that does not grow with the toys."""
    return len(unique) <= len(flat) // 2


def toy_log_likelihood(model: Model, x: Tensor, theta: Tensor) -> Tensor:
    """ℓ of every toy at every θ: x (toys, n, x_dim), θ (m, d) → (toys, m), both already checked.

    The terms of all toys on all θ go to the surrogate in large batches (`Model.terms`). Discrete x
    repeats: then each distinct value is evaluated once on all θ, and a toy's ℓ is its counts of the
    distinct values times their log-likelihoods.
    """
    toys, n, x_dim = x.shape
    m = len(theta)
    flat = x.reshape(toys * n, x_dim)
    unique, inverse = distinct(flat)
    if repeats(unique, flat):
        per_event = model.terms(theta, unique).nan_to_num(nan=-math.inf, neginf=-math.inf).T  # (k, m)
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
        per_event = model.terms(theta, part).nan_to_num(nan=-math.inf, neginf=-math.inf)  # (m, toys in the pass · n)
        out[s:s + step] = per_event.reshape(m, -1, n).sum(-1).T
    return out


def toy_statistic(model: Model, x: Tensor, grid: Tensor, theta: Tensor, mesh: Mesh | None = None) -> Tensor:
    """q(θ) of every toy at one θ (1, d), with ℓ(θ̂) from the grid (refined): x (toys, n, x_dim) → (toys,)."""
    mesh = Mesh(grid) if mesh is None else mesh
    return point_statistic(mesh, toy_log_likelihood(model, x, torch.cat([grid, theta])))


def point_statistic(mesh: Mesh, log_lik: Tensor) -> Tensor:
    """q(θ) = 2(max ℓ − ℓ(θ)) at a θ off the grid from ℓ on the grid and, in the last column, at θ: (t, g + 1) →
    (t,); the maximum is the larger of the refined grid maximum and ℓ(θ), and NaN becomes +inf (never inside)."""
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


class Window:
    """The windows of a uniform θ mesh: for each grid point the grid points within w steps of it along
    every axis, and the windowed statistic q_w on them (the module's docstring).

    Arguments:
        grid: a Cartesian mesh with even steps along every axis (g, d), as `Model.grid` makes.
        w: the half-width in grid steps (≥ 1).

    Attributes:
        w, offsets: the (2w + 1)^d integer offsets of a window (K, d), in mesh order; centre: the
            index of the zero offset. neighbours: the grid index of every window point (g, K), −1
            beyond the grid. step: the grid step along each axis (d,).

    Raises:
        ValueError: the grid is not an even Cartesian mesh.
    """

    def __init__(self, grid: Tensor, w: int):
        mesh = Mesh(grid)
        if mesh.index is None or not is_even(grid):
            raise ValueError("a windowed Neyman statistic needs an even Cartesian θ grid (Model.grid or points per "
                             "axis); for other points pass window=None (the profile over all points).")
        d = grid.shape[1]
        self.w = int(w)
        line = torch.arange(-self.w, self.w + 1)
        self.offsets = torch.stack(torch.meshgrid(*[line] * d, indexing="ij"), -1).reshape(-1, d)
        self.centre = len(self.offsets) // 2
        self.local = Mesh(self.offsets.to(DTYPE))
        target = mesh.multi[:, None, :] + self.offsets[None]  # (g, K, d)
        valid = ((target >= 0) & (target < mesh.shape)).all(-1)
        clamped = torch.minimum(target.clamp(min=0), mesh.shape - 1)
        self.neighbours = torch.where(valid, mesh.index[tuple(clamped.unbind(-1))], -1)
        span = grid.amax(0) - grid.amin(0)
        self.step = span / (mesh.shape - 1).clamp(min=1).to(DTYPE)

    def maximum(self, values: Tensor) -> tuple[Tensor, Tensor]:
        """The refined maximum of ℓ over each window and whether its best point is on the window's edge:
        values (t, K) at the window points (−inf beyond the grid) → (t,), (t,) bool."""
        values = values.nan_to_num(nan=-math.inf, neginf=-math.inf)
        best = values.argmax(1)
        edge = (self.offsets[best].abs() == self.w).any(1) & torch.isfinite(values.amax(1))
        return self.local.maximum(values), edge

    def statistic(self, log_lik: Tensor) -> tuple[Tensor, Tensor]:
        """q_w at every grid point from ℓ on the grid, log_lik (t, g) → q (t, g), and whether each
        window's maximum sits on its edge (t, g)."""
        t, g = log_lik.shape
        gathered = log_lik[:, self.neighbours.clamp(min=0)].masked_fill(self.neighbours < 0, -math.inf)
        top, edge = self.maximum(gathered.reshape(t * g, -1))
        q = (2.0 * (top.reshape(t, g) - log_lik)).nan_to_num(nan=math.inf).clamp(min=0.0)
        return q, edge.reshape(t, g)

    def points(self, theta: Tensor, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
        """The window around any θ (m, d), inside the box low..high (the grid's): points (m, K, d) and
        which of them lie inside (m, K)."""
        pts = theta[:, None, :] + self.offsets.to(DTYPE) * self.step
        tol = 1e-9 * self.step
        inside = ((pts >= low - tol) & (pts <= high + tol)).all(-1)
        return torch.minimum(torch.maximum(pts, low), high), inside


def is_even(grid: Tensor) -> bool:
    """Whether every axis of a mesh has evenly spaced values (to 10⁻⁶ of its step)."""
    for a in range(grid.shape[1]):
        axis = torch.unique(grid[:, a])
        if len(axis) > 2:
            steps = axis.diff()
            if float((steps - steps.mean()).abs().max()) > 1e-6 * float(steps.mean()):
                return False
    return True


def pool_size(toys: int, n: int, theta_dim: int, level: float) -> int:
    """The default pool of runs per grid point (the module's docstring): the larger of
    d·n·[S_{d+2}(t) − (1 − level)] / (2·POOL_BIAS·σ), so that the pool's offset shifts the coverage by
    POOL_BIAS·σ, and 2·t²·f_d(t)² / (d·POOL_BIAS²·σ²), so that its spread moves the threshold by POOL_BIAS
    times the quantile's own error; σ = sqrt(level (1 − level) / toys), t the χ²_d level-quantile, f_d
    the χ²_d density. toys·n (independent toys) when that is no fewer."""
    from scipy.stats import chi2

    d = theta_dim
    t = chi2.ppf(level, d)
    shift = max(float(chi2.sf(t, d + 2)) - (1.0 - level), 1e-3)
    sigma = math.sqrt(level * (1.0 - level) / toys)
    offset = d * n * shift / (2.0 * POOL_BIAS * sigma)
    spread = 2.0 * t ** 2 * float(chi2.pdf(t, d)) ** 2 / (d * POOL_BIAS ** 2 * sigma ** 2)
    return int(min(toys * n, math.ceil(max(offset, spread))))


def neyman_plan(sim: Simulator, grid: Tensor, level: float, toys: int, n: int, seed: int, window="auto",
                pool="auto") -> tuple[int | None, int | None]:
    """The statistic's window and the pool of a Neyman construction, "auto" resolved → (w or None for
    the profile, M or None for independent toys).

    Discrete x (at most half of PROBE_RUNS runs at the grid's middle point distinct) keeps the
    profile over the whole grid and independent toys, which evaluate each distinct x once; continuous
    x takes the window NEYMAN_WINDOW (the profile when the grid is no even mesh) and `pool_size` runs.
    """
    if window == "auto" or pool == "auto":
        probe = draw_toys(sim, grid[len(grid) // 2], 1, PROBE_RUNS, seeded_generator(seed, PROBE_STREAM))[0]
        discrete = len(torch.unique(probe, dim=0)) <= PROBE_RUNS // 2
        if window == "auto":
            window = None if discrete or Mesh(grid).index is None or not is_even(grid) else NEYMAN_WINDOW
        if pool == "auto":
            pool = None if discrete else pool_size(toys, n, grid.shape[1], level)
    if window is not None:
        window = int(window)
    if pool is not None and int(pool) >= toys * n:
        pool = None
    return window, None if pool is None else int(pool)


def neyman_pairs(grid: Tensor, toys: int, n: int, window: int | None, pool: int | None) -> int:
    """The likelihood evaluations (run, θ) of a Neyman construction's toys, as `neyman_plan` set it up:
    g · R · K with R = pool (or toys·n) runs per grid point and K = (2w + 1)^d points per window (or g
    for the profile); distinct discrete x cost less."""
    g, d = grid.shape
    runs = toys * n if pool is None else pool
    return g * runs * (g if window is None else (2 * window + 1) ** d)


def neyman_thresholds(model: Model, sim: Simulator, grid: Tensor, level: float, toys: int, n: int, seed: int,
                      workers: int = 1, cluster=None, progress: bool = True, window: int | None = None,
                      pool: int | None = None) -> Tensor:
    """The level-quantile of q(θ_j) over `toys` data sets of n runs drawn at every grid point θ_j → (g,).

    Grid points are handed out in batches of up to 16, here, to `workers` local processes or to a
    Dask cluster (`goldmine.executor.map_in_order`); the toys at θ_j come from the generator seeded by
    (seed, j) alone, so the thresholds do not depend on the batching or the backend.

    Arguments:
        window: None for the profile q over the whole grid, else the windowed q_w of that half-width.
        pool: None for independent toys, else the runs per grid point that toys are resampled from.
        (`neyman_plan` resolves both; see the module's docstring.)
    """
    g = len(grid)
    per_chunk = max(1, min(16, g // (4 * workers)))
    chunks = [list(range(i, min(i + per_chunk, g))) for i in range(0, g, per_chunk)]
    out = []
    bar = tqdm(total=g, unit="θ", desc=f"neyman toys ({toys} per point)", disable=not progress, dynamic_ncols=True)
    try:
        with closing(map_in_order(thresholds_at, chunks, (model, sim, grid, level, toys, n, seed, window, pool),
                                  workers=workers, cluster=cluster, what="neyman toys")) as parts:
            for part in parts:
                out.extend(part)
                bar.update(len(part))
    finally:
        bar.close()
    return torch.tensor(out, dtype=DTYPE)


def thresholds_at(model: Model, sim: Simulator, grid: Tensor, level: float, toys: int, n: int, seed: int,
                  window: int | None, pool: int | None, indices: list[int]) -> list[float]:
    """The Neyman thresholds at the grid points `indices` (runs in a worker).

    Independent toys with the profile: the toys of all these points share one evaluation of ℓ on the
    grid (each distinct x once); θ_j is a grid point, so ℓ(θ_j) is column j. Otherwise each point's
    runs (its pool, or its toys' runs) are evaluated once at the points its statistic needs
    (`pooled_statistic`).
    """
    if window is not None or pool is not None:
        statistic = None if window is None else Window(grid, window)
        return [toy_quantile(pooled_statistic(model, sim, grid, statistic, toys, n, pool, seeded_generator(seed, j),
                                              j), level) for j in indices]
    x = torch.cat([draw_toys(sim, grid[j], toys, n, seeded_generator(seed, j)) for j in indices])
    log_lik = toy_log_likelihood(model, x, grid).reshape(len(indices), toys, len(grid))
    top = Mesh(grid).maximum(log_lik.reshape(-1, len(grid))).reshape(len(indices), toys)
    out = []
    for i, j in enumerate(indices):
        q = (2.0 * (top[i] - log_lik[i, :, j])).nan_to_num(nan=math.inf).clamp(min=0.0)
        out.append(toy_quantile(q, level))
    return out


def pooled_statistic(model: Model, sim: Simulator, grid: Tensor, window: Window | None, toys: int, n: int,
                     pool: int | None, generator: torch.Generator, j: int) -> Tensor:
    """q(θ_j) of `toys` toys at grid point j → (toys,): the windowed q_w (or the profile for window None)
    of toys resampled from a pool of `pool` runs at θ_j (independent toys for pool None).

    The runs are drawn first and the toys' indices after, from `generator`. Each distinct run is
    evaluated once at every point of θ_j's window (the whole grid for the profile) in one batched call
    of `Model.terms`, and a toy's ℓ there is the sum of its runs' terms.
    """
    runs = draw_toys(sim, grid[j], 1, toys * n if pool is None else pool, generator)[0]
    if pool is None:
        index = torch.arange(toys * n).reshape(toys, n)
    else:
        index = torch.randint(pool, (toys, n), generator=generator)
    unique, inverse = distinct(runs)
    if len(unique) == len(runs):
        unique, inverse = runs, torch.arange(len(runs))
    index = inverse[index]
    points = torch.arange(len(grid)) if window is None else window.neighbours[j]
    valid = points >= 0
    terms = model.terms(grid[points[valid]], unique).nan_to_num(nan=-math.inf, neginf=-math.inf)  # (K', runs)
    terms = terms.T.contiguous()  # (runs, K'): a toy's runs are gathered as whole rows, 4× faster than columns
    sums = torch.empty(toys, terms.shape[1], dtype=DTYPE)
    step = max(1, TERMS_PER_PASS // (n * terms.shape[1]))  # toys per pass
    for s in range(0, toys, step):
        sums[s:s + step] = terms[index[s:s + step]].sum(1)
    if window is None:
        top = Mesh(grid).maximum(sums)
        at = sums[:, j]
    else:
        values = torch.full((toys, len(points)), -math.inf, dtype=DTYPE)
        values[:, valid] = sums
        top, _ = window.maximum(values)
        at = values[:, window.centre]
    return (2.0 * (torch.maximum(top, at) - at)).nan_to_num(nan=math.inf).clamp(min=0.0)


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
