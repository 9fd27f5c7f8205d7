"""Confidence regions from the profile-free likelihood ratio: Wilks' asymptotics or Neyman's toys.

    q(θ) = −2 (ℓ(θ) − ℓ(θ̂)),    R = {θ : q(θ) ≤ t(θ)}

Wilks: t = the χ²_d quantile at the level (d = dim θ), valid for many observations when θ is
identified and not at the edge of the prior's box. Neyman: t(θ_j) = the level-quantile of q over
toy data sets of n i.i.d. runs drawn at each grid point θ_j, so the coverage is the nominal one up
to the toys' own error, whatever n. In one dimension the endpoints are refined between grid points
by root-finding on q(θ) − t(θ).

Expected limits are the median region under a hypothesis θ: the Asimov data set (the exact x grid,
or a large simulated sample, weighted to a total of n_obs, in which θ̂ = θ and q is its median
asymptotically) or the region of median size over toy data sets.

Toys are cheap because they share work: every toy's ℓ is evaluated on the θ grid at once, each
distinct x once (discrete x repeats), and the toy's maximum ℓ(θ̂) is the grid maximum refined by a
quadratic through its neighbours (exact for a parabolic ℓ, so its error is third order in the step).

References:
    Wilks, "The large-sample distribution of the likelihood ratio for testing composite hypotheses",
    Ann. Math. Statist. 9 (1938) 60.
    Neyman, "Outline of a theory of statistical estimation based on the classical theory of
    probability", Phil. Trans. R. Soc. A 236 (1937) 333.
    Cowan, Cranmer, Gross, Vitells, "Asymptotic formulae for likelihood-based tests of new physics",
    Eur. Phys. J. C 71 (2011) 1554, https://arxiv.org/abs/1007.1727
    Brehmer, Louppe, Pavez, Cranmer, "Mining gold from implicit models to improve likelihood-free
    inference", PNAS 117 (2020) 5242, https://arxiv.org/abs/1805.12244
"""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context

import numpy as np
import torch
from scipy.optimize import brentq
from scipy.stats import chi2
from torch import Tensor
from tqdm.auto import tqdm

from ..checks import choice as _check_choice, level as _check_level, positive_int as _check_count
from ..data import _in_order, block_generator
from ..simulators.base import DTYPE, Simulator
from .mle import MLE, mle
from .model import CHUNK, Model, as_model

__all__ = ["Region", "confidence_region", "expected_limits"]

METHODS = ("wilks", "neyman")
EXPECTATIONS = ("asimov", "toys")
#: simulated runs standing in for the Asimov data set when the simulator has no exact x grid
ASIMOV_RUNS = 100_000


@dataclass
class Region:
    """A confidence region {θ : q(θ) ≤ t(θ)} on a θ grid.

    Attributes:
        method: "wilks" or "neyman". level: the confidence level.
        grid: θ points (g, theta_dim). q: q(θ) on them (g,). threshold: t(θ) on them (g,): the χ²
            quantile (wilks) or the per-point toy quantile (neyman). inside: q ≤ threshold (g,).
        mle: the fit of the observations. segments: in 1-D, the connected pieces [(low, high), ...]
            with endpoints refined between grid points. toys: toy data sets per grid point (neyman).
    """

    method: str
    level: float
    grid: Tensor = field(repr=False)
    q: Tensor = field(repr=False)
    threshold: Tensor = field(repr=False)
    inside: Tensor = field(repr=False)
    mle: MLE = field(repr=False)
    segments: list[tuple[float, float]] | None = None
    toys: int = 0
    # what contains() needs to evaluate q off the grid
    model: Model | None = field(default=None, repr=False, compare=False)
    x_obs: Tensor | None = field(default=None, repr=False, compare=False)
    weights: Tensor | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        where = f"interval={tuple(round(v, 4) for v in self.interval)}" if self.segments else f"size={self.size:.4g}"
        fit = [round(v, 4) for v in self.mle.theta.tolist()]
        return (f"Region({self.method}, level={self.level}, {where}, θ̂={fit}, "
                f"{int(self.inside.sum())}/{len(self.grid)} grid points inside)")

    @property
    def interval(self) -> tuple[float, float]:
        """(low, high) in 1-D: from the lowest to the highest endpoint of the region's segments."""
        if self.segments is None:
            raise ValueError(f"interval is for one-dimensional θ; this region is {self.grid.shape[1]}-D: use size "
                             "or contains(theta).")
        if not self.segments:
            return (math.nan, math.nan)
        return (self.segments[0][0], self.segments[-1][1])

    @property
    def size(self) -> float:
        """The length (1-D, from the refined segments) or the volume (grid cell × points inside)."""
        if self.segments is not None:
            return float(sum(high - low for low, high in self.segments))
        return float(self.inside.sum()) * cell_volume(self.grid)

    def contains(self, theta) -> Tensor:
        """Whether each row of θ (m, theta_dim) lies in the region → (m,) bool.

        q(θ) is evaluated exactly and compared with the threshold at θ (interpolated between grid
        points in 1-D, the nearest grid point's above); points outside the prior are outside.
        """
        theta = torch.as_tensor(theta, dtype=DTYPE).reshape(-1, self.grid.shape[1])
        if self.model is None:  # a region built by hand: the nearest grid point decides
            return self.inside[_nearest(self.grid, theta)]
        out = torch.zeros(len(theta), dtype=torch.bool)
        prior = self.model.inside(theta) & torch.isfinite(theta).all(1)
        if prior.any():
            q = self.mle.q(self.model.log_likelihood(theta[prior], self.x_obs, self.weights))
            out[prior] = q <= self._threshold_at(theta[prior])
        return out

    def _threshold_at(self, theta: Tensor) -> Tensor:
        if bool((self.threshold == self.threshold[0]).all()):
            return self.threshold[0].expand(len(theta))
        if self.grid.shape[1] == 1:
            order = self.grid[:, 0].argsort()
            values = np.interp(theta[:, 0].numpy(), self.grid[order, 0].numpy(), self.threshold[order].numpy())
            return torch.as_tensor(values, dtype=DTYPE)
        return self.threshold[_nearest(self.grid, theta)]


# -- the public functions -----------------------------------------------------------------------


def confidence_region(
    model,
    x_obs,
    level: float = 0.95,
    method: str = "wilks",
    prior=None,
    simulator: Simulator | None = None,
    grid=None,
    toys: int = 1000,
    seed: int = 0,
    workers: int = 1,
    cluster=None,
    progress: bool = True,
) -> Region:
    """The confidence region for θ from i.i.d. observations.

    Arguments:
        model: a `Model`, a fitted surrogate or a simulator with an exact likelihood.
        x_obs: observations (n, x_dim).
        level: the confidence level in (0, 1).
        method: "wilks" (χ²_d threshold) or "neyman" (per-point toy thresholds).
        prior: the prior (or its simulator) when `model` is a bare estimator.
        simulator: the simulator that Neyman toys are drawn from; the model's by default.
        grid: θ points (g, theta_dim), or points per axis, or None for `Model.grid()`.
        toys: toy data sets per grid point (neyman). The threshold's quantile has an error of
            about sqrt(level (1 − level) / toys) in probability.
        seed: toys at grid point j come from a generator seeded by (seed, j) alone, so the region
            does not depend on `workers` or the backend.
        workers: local processes (spawned) that draw the toys of grid points in parallel.
        cluster: a Dask scheduler address or a `dask.distributed.Client`; then `workers` is ignored.
        progress: show a progress bar over grid points (neyman).

    Returns:
        A `Region`.

    Neyman's cost is g·toys·n simulator runs and ℓ of g·toys toy data sets on the g grid points.
    Discrete x keeps the second part small (each distinct x is evaluated once for a chunk of grid
    points); continuous x costs g²·toys·n evaluations of the likelihood, so take a coarser grid
    (e.g. grid=15 in 2-D) and a few hundred toys there.

    Example:
        >>> import goldmine as gm
        >>> sim = gm.simulators.GaltonBoard()
        >>> x = sim.sample(torch.full((100, 1), 0.3), generator=torch.Generator().manual_seed(0)).x
        >>> region = confidence_region(sim, x, level=0.68)
        >>> region.contains(torch.tensor([[0.3], [-0.9]])).tolist()
        [True, False]
    """
    _check_level(level)
    _check_choice(method, METHODS, "method")
    _check_count(toys, "toys")
    _check_count(workers, "workers")
    model = as_model(model, prior, simulator)
    x = model.check_x_obs(x_obs)
    grid = _grid(model, grid)
    sim = _simulator(model, simulator, "method='neyman'") if method == "neyman" else None
    return _region(model, x, None, level, method, grid, sim, int(toys), int(seed), int(workers), cluster, progress)


def expected_limits(
    model,
    theta,
    n_obs: int,
    level: float = 0.95,
    method: str = "asimov",
    prior=None,
    simulator: Simulator | None = None,
    grid=None,
    toys: int = 100,
    seed: int = 0,
) -> Region:
    """The median expected Wilks region from n_obs i.i.d. observations under the hypothesis θ.

    Arguments:
        model, prior, simulator, grid: as in `confidence_region`.
        theta: the hypothesis (theta_dim,).
        n_obs: the number of observations.
        level: the confidence level in (0, 1).
        method: "asimov": the region of the Asimov data set, the simulator's exact x grid weighted
            by n_obs·p(x|θ) (or, without one, ASIMOV_RUNS runs at θ weighted to a total of n_obs);
            "toys": the region of median size over `toys` data sets drawn at θ.
        toys: toy data sets (method "toys").
        seed: the toys' (or the Asimov runs') seed.

    Returns:
        A `Region`: the Asimov data set's, or that of the toy data set of median size.

    Example:
        >>> import goldmine as gm
        >>> region = expected_limits(gm.simulators.GaltonBoard(), [0.3], n_obs=100, level=0.68)
        >>> round(region.size, 2)
        0.21
    """
    _check_level(level)
    _check_choice(method, EXPECTATIONS, "method")
    _check_count(toys, "toys")
    _check_count(n_obs, "n_obs")
    model, theta, grid, sim = toy_setup(model, theta, "theta", prior, simulator, grid, "expected_limits")
    if method == "asimov":
        x, weights = asimov_data(sim, theta[0], n_obs, seed)
        return _region(model, x, weights, level, "wilks", grid, None, 0, seed, 1, None, False)
    x = draw_toys(sim, theta[0], int(toys), int(n_obs), block_generator(seed, 0))
    log_lik = toy_log_likelihood(model, x, grid)
    q = (2.0 * (Mesh(grid).maximum(log_lik)[:, None] - log_lik)).clamp(min=0.0)
    sizes = toy_sizes(grid, q, float(chi2.ppf(level, model.theta_dim)))
    median = int(np.argsort(sizes, kind="stable")[(len(sizes) - 1) // 2])
    region = _region(model, x[median], None, level, "wilks", grid, None, 0, seed, 1, None, False)
    region.toys = int(toys)
    return region


# -- the region ---------------------------------------------------------------------------------


def _region(model: Model, x: Tensor, weights, level, method, grid, sim, toys, seed, workers, cluster,
            progress) -> Region:
    fit = mle(model, x, grid=grid, weights=weights)
    q = fit.q(fit.grid_log_likelihood)
    if method == "wilks":
        threshold = torch.full((len(grid),), float(chi2.ppf(level, model.theta_dim)), dtype=DTYPE)
    else:
        threshold = neyman_thresholds(model, sim, grid, level, toys, len(x), seed, workers, cluster, progress)
    region = Region(method, float(level), grid, q, threshold, q <= threshold, fit,
                    toys=toys if method == "neyman" else 0,
                    model=model, x_obs=x, weights=weights)
    if model.theta_dim == 1:
        region.segments = _segments(region)
    return region


def _segments(region: Region) -> list[tuple[float, float]]:
    """The region's connected pieces in 1-D, each endpoint the root of q − t between grid points."""
    order = region.grid[:, 0].argsort()
    theta = region.grid[order, 0].tolist()
    inside = region.inside[order].tolist()

    def excess(value: float) -> float:  # q(θ) − t(θ) < 0 inside
        point = torch.tensor([[value]], dtype=DTYPE)
        q = region.mle.q(region.model.log_likelihood(point, region.x_obs, region.weights))
        return float(q - region._threshold_at(point))

    def crossing(a: float, b: float) -> float:  # the region is entered going from b to a
        fa, fb = excess(a), excess(b)
        if not (fa <= 0 < fb):  # rounding at a grid point: keep the grid point
            return a
        return brentq(excess, min(a, b), max(a, b), xtol=1e-9 * abs(b - a), rtol=1e-12)

    segments, i, g = [], 0, len(theta)
    while i < g:
        if not inside[i]:
            i += 1
            continue
        j = i
        while j + 1 < g and inside[j + 1]:
            j += 1
        low = theta[i] if i == 0 else crossing(theta[i], theta[i - 1])
        high = theta[j] if j == g - 1 else crossing(theta[j], theta[j + 1])
        segments.append((low, high))
        i = j + 1
    return segments


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


# -- toys ---------------------------------------------------------------------------------------


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
    """ℓ of every toy at every θ: x (toys, n, x_dim), θ (m, d) → (toys, m).

    Discrete x repeats: then each distinct value is evaluated once on all θ, and a toy's ℓ is its
    counts of the distinct values times their log-likelihoods.
    """
    toys, n, x_dim = x.shape
    flat = x.reshape(toys * n, x_dim)
    if x_dim == 1:
        unique, inverse = torch.unique(flat[:, 0], return_inverse=True)
        unique = unique[:, None]
    else:
        unique, inverse = torch.unique(flat, dim=0, return_inverse=True)
    if len(unique) <= len(flat) // 2:
        per_event = model.per_event(theta, unique).nan_to_num(nan=-math.inf).T  # (k, m)
        counts = torch.zeros(toys, len(unique), dtype=DTYPE)
        rows = torch.arange(toys).repeat_interleave(n)
        counts.index_put_((rows, inverse), torch.ones((), dtype=DTYPE), accumulate=True)
        finite = torch.isfinite(per_event)
        out = counts @ torch.where(finite, per_event, 0.0)
        # 0·(−inf) is undefined: an impossible x sends ℓ to −inf only for the toys that hold it
        impossible = (counts > 0).to(DTYPE) @ (~finite).to(DTYPE)
        return out.masked_fill(impossible > 0, -math.inf)
    out = torch.empty(toys, len(theta), dtype=DTYPE)
    step = max(1, CHUNK // (n * len(theta)))  # toys per pass
    for s in range(0, toys, step):
        part = x[s:s + step]
        per_event = model.per_event(theta, part.reshape(-1, x_dim)).nan_to_num(nan=-math.inf)
        out[s:s + step] = per_event.reshape(len(theta), len(part), n).sum(-1).T
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


def neyman_thresholds(model: Model, sim: Simulator, grid: Tensor, level: float, toys: int, n: int, seed: int,
                      workers: int = 1, cluster=None, progress: bool = True) -> Tensor:
    """The level-quantile of q(θ_j) over `toys` data sets of n runs drawn at every grid point θ_j → (g,)."""
    g = len(grid)
    per_chunk = max(1, min(16, g // (4 * workers)))
    chunks = [list(range(i, min(i + per_chunk, g))) for i in range(0, g, per_chunk)]
    out = []
    bar = tqdm(total=g, unit="θ", desc=f"neyman toys ({toys} per point)", disable=not progress, dynamic_ncols=True)
    try:
        for part in _map_in_order(_thresholds_at, (model, sim, grid), chunks, (level, toys, n, seed), workers,
                                  cluster):
            out.extend(part)
            bar.update(len(part))
    finally:
        bar.close()
    return torch.tensor(out, dtype=DTYPE)


def _thresholds_at(shared, indices: list[int], level: float, toys: int, n: int, seed: int,
                   threads: int | None = None) -> list[float]:
    """The Neyman thresholds at the grid points `indices` (runs in a worker).

    The toys of all these points share one evaluation of ℓ on the grid (each distinct x once);
    θ_j is a grid point, so ℓ(θ_j) is column j.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    model, sim, grid = shared
    x = torch.cat([draw_toys(sim, grid[j], toys, n, block_generator(seed, j)) for j in indices])
    log_lik = toy_log_likelihood(model, x, grid).reshape(len(indices), toys, len(grid))
    top = Mesh(grid).maximum(log_lik.reshape(-1, len(grid))).reshape(len(indices), toys)
    out = []
    for i, j in enumerate(indices):
        q = (2.0 * (top[i] - log_lik[i, :, j])).nan_to_num(nan=math.inf).clamp(min=0.0)
        out.append(toy_quantile(q, level))
    return out


def _map_in_order(fn, shared, chunks, args, workers: int, cluster):
    """Yields fn(shared, chunk, *args) for every chunk in order: here, in `workers` spawned
    processes, or on a Dask cluster (with `shared` scattered once), as `goldmine.simulate` runs."""
    if cluster is not None:
        from dask.distributed import Client

        client = Client(cluster) if isinstance(cluster, str) else cluster
        try:
            ahead = 2 * max(1, sum(client.nthreads().values()))
            [future] = client.scatter([shared], broadcast=True)
            yield from _in_order([lambda c=c: client.submit(fn, future, c, *args, 1, pure=False) for c in chunks],
                                 ahead=ahead)
        finally:
            if isinstance(cluster, str):
                client.close()
    elif workers == 1:
        for chunk in chunks:
            yield fn(shared, chunk, *args)
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            yield from _in_order([lambda c=c: pool.submit(fn, shared, c, *args, 1) for c in chunks], ahead=2 * workers)


def asimov_data(sim: Simulator, theta: Tensor, n_obs: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """The Asimov data set at θ (theta_dim,): x (m, x_dim) and weights (m,) summing to n_obs.

    The simulator's x grid weighted by n_obs·p(x|θ) when it has one and an exact likelihood, else
    the distinct values of ASIMOV_RUNS runs at θ weighted by their counts.
    """
    try:
        x, w = sim.x_grid()
        weights = w * sim.log_prob(x, theta.expand(len(x), -1)).exp()
    except NotImplementedError:
        runs = sim.sample(theta.expand(ASIMOV_RUNS, -1), generator=block_generator(seed, 0)).x.to(DTYPE)
        runs = runs[torch.isfinite(runs).all(1)]
        x, weights = torch.unique(runs, dim=0, return_counts=True)
        weights = weights.to(DTYPE)
    keep = weights > 0
    x, weights = x[keep].to(DTYPE), weights[keep]
    return x, weights * (n_obs / weights.sum())


# -- grids --------------------------------------------------------------------------------------


class Mesh:
    """The neighbours of the points of a θ grid that is a Cartesian mesh, for refining maxima."""

    def __init__(self, grid: Tensor):
        g, d = grid.shape
        axes = [torch.unique(grid[:, a]) for a in range(d)]
        self.shape = torch.tensor([len(u) for u in axes])
        self.index = None
        if int(self.shape.prod()) == g:
            multi = torch.stack([torch.searchsorted(axes[a], grid[:, a].contiguous()) for a in range(d)], 1)
            index = torch.full(tuple(self.shape.tolist()), -1, dtype=torch.long)
            index[tuple(multi.T)] = torch.arange(g)
            if bool((index >= 0).all()):
                self.index, self.multi = index, multi

    def maximum(self, values: Tensor) -> Tensor:
        """The maximum over the grid of each row of values (t, g) → (t,), refined by the quadratic
        through the best point's neighbours (a Newton step in grid units, kept within one step; the
        best one-axis parabola where the full quadratic is not concave there)."""
        values = values.nan_to_num(nan=-math.inf)
        best = values.argmax(1)
        top = values.gather(1, best[:, None])[:, 0]
        if self.index is None:
            return top
        m = self.multi[best]  # (t, d)
        d = m.shape[1]
        eye = torch.eye(d, dtype=torch.long)

        def at(offset: Tensor) -> Tensor:
            idx = self.index[tuple(torch.minimum((m + offset).clamp(min=0), self.shape - 1).T)]
            return values.gather(1, idx[:, None])[:, 0]

        plus = torch.stack([at(eye[a]) for a in range(d)], 1)
        minus = torch.stack([at(-eye[a]) for a in range(d)], 1)
        ok = (m > 0) & (m < self.shape - 1) & torch.isfinite(plus) & torch.isfinite(minus)
        ok &= torch.isfinite(top)[:, None]
        grad = torch.where(ok, (plus - minus) / 2, 0.0)
        curv = torch.where(ok, plus - 2 * top[:, None] + minus, -1.0)
        hess = torch.diag_embed(curv)
        for a in range(d):
            for b in range(a + 1, d):
                cross = (at(eye[a] + eye[b]) - at(eye[a] - eye[b]) - at(eye[b] - eye[a]) + at(-eye[a] - eye[b])) / 4
                cross = torch.where(ok[:, a] & ok[:, b] & torch.isfinite(cross), cross, 0.0)
                hess[:, a, b] = hess[:, b, a] = cross
        # the full quadratic where it is concave with its peak within one step
        chol, info = torch.linalg.cholesky_ex(-hess)
        chol = torch.where((info == 0)[:, None, None], chol, torch.eye(d, dtype=DTYPE))
        shift = torch.cholesky_solve(grad[:, :, None], chol)[:, :, 0]
        full = 0.5 * (grad * shift).sum(1)
        full_ok = (info == 0) & (shift.abs() <= 1).all(1) & torch.isfinite(full)
        # else the best single-axis parabola
        axis_shift = -grad / curv
        axis_gain = torch.where((curv < 0) & (axis_shift.abs() <= 1), 0.5 * grad * axis_shift, 0.0).amax(1)
        return top + torch.where(full_ok, full, axis_gain).clamp(min=0.0)


def cell_volume(grid: Tensor) -> float:
    """The volume per point of a θ grid: the mesh's cell, or the bounding box over the points."""
    span = grid.amax(0) - grid.amin(0)
    counts = torch.tensor([len(torch.unique(grid[:, a])) for a in range(grid.shape[1])])
    if int(counts.prod()) == len(grid):
        return float(torch.where(counts > 1, span / (counts - 1).clamp(min=1), 1.0).prod())
    return float(span.prod()) / len(grid)


def _nearest(grid: Tensor, theta: Tensor) -> Tensor:
    scale = (grid.amax(0) - grid.amin(0)).clamp(min=1e-300)
    return torch.cdist(theta / scale, grid / scale).argmin(1)


def toy_setup(model, theta, name: str, prior, simulator: Simulator | None, grid,
              what: str) -> tuple[Model, Tensor, Tensor, Simulator]:
    """The model, the one point θ (1, d) that toys are drawn at, the θ grid and the toys' simulator, checked."""
    model = as_model(model, prior, simulator)
    theta = model.check_theta(theta, name)
    if len(theta) != 1:
        raise ValueError(f"{name} must be one point of shape ({model.theta_dim},); got {len(theta)} rows.")
    return model, theta, _grid(model, grid), _simulator(model, simulator, what)


def _grid(model: Model, grid) -> Tensor:
    if grid is None:
        return model.grid()
    if isinstance(grid, (int, np.integer)) and not isinstance(grid, bool):
        if grid < 2:
            raise ValueError(f"grid must be at least 2 points per axis; got {grid}.")
        return model.grid(int(grid))
    return model.check_theta(grid, "grid")


# -- validation ---------------------------------------------------------------------------------


def _simulator(model: Model, simulator: Simulator | None, what: str) -> Simulator:
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

