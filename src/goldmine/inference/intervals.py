"""Confidence regions from the profile-free likelihood ratio: Wilks' asymptotics or Neyman's toys.

    q(θ) = −2 (ℓ(θ) − ℓ(θ̂)),    R = {θ : q(θ) ≤ t(θ)}

Wilks: t = the χ²_d quantile at the level (d = dim θ), valid for many observations when θ is
identified and not at the edge of the prior's box. Neyman: t(θ_j) = the level-quantile of q over
toy data sets of n i.i.d. runs drawn at each grid point θ_j, so the coverage is the nominal one up
to the toys' own error, whatever n. For continuous x the Neyman region by default uses the windowed
statistic q_w(θ) = −2 (ℓ(θ) − max of ℓ within w grid steps of θ) for toys and observations alike, with
toys resampled from a pool of runs per grid point (`toys.py` gives the math: any statistic calibrated
by its own toys covers exactly; the window and the pool bound the cost). In one dimension the
endpoints are refined between grid points by root-finding on q(θ) − t(θ).

Expected limits are the median region under a hypothesis θ: the Asimov data set (the exact x grid,
or a large simulated sample, weighted to a total of n_obs, in which θ̂ = θ and q is its median
asymptotically) or the region of median size over toy data sets.

Toys and the Asimov data set are made in `toys.py`, θ grids in `grid.py`.

A Wilks region can be checked against the simulator (`check=` toys, `wilks_check.py`): toy data sets of the
same size drawn at θ̂ and at the ends along each axis of a slightly wider region (99% for a 95% one) measure
how often q(θ) ≤ χ²_d there, the coverage of the threshold where the truth may lie. A surrogate whose
likelihood ratios are too steep or biased away from θ̂ (or too few observations for the asymptotics) shows
as a coverage below the level at one of the points, and the region warns, naming the lowest coverage and
where it was measured; the rule keeps the false alarms of a calibrated region at `wilks_check.FALSE_ALARM`
whatever the number of points (Šidák's correction, derived there).

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
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import brentq
from scipy.stats import chi2
from torch import Tensor

from .. import checks
from ..executor import seeded_generator
from ..simulators.base import DTYPE, Simulator
from .ensemble_check import member_spread
from .grid import Mesh, cell_volume, make_grid, nearest
from .mle import MLE, mle
from .model import Model, as_model
from .toys import (Window, asimov_data, draw_toys, neyman_plan, neyman_thresholds, toy_log_likelihood, toy_setup,
                   toy_simulator, toy_sizes)
from .wilks_check import check_region, reach_level

__all__ = ["CalibrationWarning", "Region", "confidence_region", "expected_limits"]

METHODS = ("wilks", "neyman")
EXPECTATIONS = ("asimov", "toys")
#: a checked region is conservative when its lowest measured coverage is this many binomial standard errors of the
#: level above the level (said, not warned; the rule for under-coverage is `wilks_check.under_covers`)
OVER_COVERAGE = 3.0


class CalibrationWarning(RuntimeWarning):
    """A confidence region's threshold covers less often than its level claims (measured by toys)."""


@dataclass
class Region:
    """A confidence region {θ : q(θ) ≤ t(θ)} on a θ grid.

    Attributes:
        method: "wilks" or "neyman". level: the confidence level.
        grid: θ points (g, theta_dim). q: q(θ) on them (g,). threshold: t(θ) on them (g,): the χ²
            quantile (wilks) or the per-point toy quantile (neyman). inside: q ≤ threshold (g,).
        mle: the fit of the observations. segments: in 1-D, the connected pieces [(low, high), ...]
            with endpoints refined between grid points. toys: toy data sets per grid point (neyman).
        window: neyman: the half-width in grid steps of the windowed statistic q_w that q and the
            threshold are (then q is q_w, not the profile q), or None for the profile.
        pool: neyman: the runs per grid point that the toys were resampled from, or None for
            independent toys (`goldmine.inference.toys`).
        window_edge: with a window, the grid points inside the region whose observed window maximum
            sits on the window's edge (θ̂ lies beyond their window: they are judged by the slope of ℓ).
        top: neyman without a window: the maximum of ℓ that q is measured from, the one its toys use (the
            grid's, refined by the quadratic through its best point's neighbours); None: the MLE's ℓ(θ̂).
        calibration: the check of a Wilks region by toys at θ̂ and the ends along each axis of a wider region
            (`confidence_region(check=...)`, `wilks_check.check_region`): {"toys" (per point), "coverage",
            "stderr" and "theta" (the lowest coverage and where), "coverage_toys" (the toys it is measured by:
            fewer when the check stopped at a certain verdict), "level", "under_covers", "p_value",
            "false_alarm", "evaluated", "points" (per point)}, or None when unchecked.
        members: for an ensemble surrogate, its members' regions and their spread
            (`goldmine.inference.ensemble_check.MemberSpread`; `members.union` is the conservative region).
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
    window: int | None = None
    pool: int | None = None
    window_edge: int = 0
    top: float | None = None
    calibration: dict | None = None
    # what contains() needs to evaluate q off the grid
    model: Model | None = field(default=None, repr=False, compare=False)
    x_obs: Tensor | None = field(default=None, repr=False, compare=False)
    weights: Tensor | None = field(default=None, repr=False, compare=False)
    # an ensemble surrogate's members' regions (inference.ensemble_check.MemberSpread), else None
    members: object = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        where = f"interval={tuple(round(v, 4) for v in self.interval)}" if self.segments else \
            f"{size_kind(self.grid.shape[1])}={self.size:.4g}"
        fit = [round(v, 4) for v in self.mle.theta.tolist()]
        flags = ", θ̂ on the prior's edge" if self.mle.on_edge else ""
        if self.window is not None:
            flags += f", window ±{self.window} steps"
        if self.calibration is not None:
            flags += f", lowest checked coverage {self.calibration['coverage']:.3f} ± {self.calibration['stderr']:.3f}"
        return (f"Region({self.method}, level={self.level}, {where}, θ̂={fit}, "
                f"{int(self.inside.sum())}/{len(self.grid)} grid points inside{flags})")

    def summary(self, true_theta=None) -> str:
        """The region in a few lines of text: θ̂, the interval or size, and what speaks against trusting
        it (θ̂ on the prior's edge, a measured under-coverage); with `true_theta` (theta_dim,) whether
        it lies inside."""
        names = self.theta_names
        theta = ", ".join(f"{n} = {v:.4g}" for n, v in zip(names, self.mle.theta.tolist()))
        where = (f"[{self.interval[0]:.4g}, {self.interval[1]:.4g}]" if self.segments is not None
                 else size_text(self.size, names))
        lines = [f"θ̂ = ({theta}), {self.level:.0%} {self.method} region {where}"]
        lines += [f"  {note}" for note in trust_notes(self.mle.edge_axes, self.calibration, names=names)]
        note = window_note(self.window, self.window_edge)
        if note:
            lines.append(f"  {note}")
        if true_theta is not None:
            truth = torch.as_tensor(true_theta, dtype=DTYPE).reshape(1, -1)
            given = f" = {truth[0, 0]:.4g}" if names == ("θ",) else \
                " (" + ", ".join(f"{n} = {v:.4g}" for n, v in zip(names, truth[0].tolist())) + ")"
            lines.append(f"  the true θ{given} is {'inside' if self.contains(truth)[0] else 'outside'} the region")
        return "\n".join(lines)

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
    def theta_names(self) -> tuple[str, ...]:
        """The names of θ's components (the model's, else θ or θ₀, θ₁, …)."""
        return checks.theta_names(self.model, self.grid.shape[1])

    @property
    def size(self) -> float:
        """The region's extent in the units of θ: its length in 1-D (from the refined segments), its area
        in 2-D (in units of θ₀ × θ₁) and its volume beyond (grid cell × points inside): `size_text` words it."""
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
            return self.inside[nearest(self.grid, theta)]
        out = torch.zeros(len(theta), dtype=torch.bool)
        prior = self.model.inside(theta) & torch.isfinite(theta).all(1)
        if prior.any():
            out[prior] = self._q_at(theta[prior]) <= self._threshold_at(theta[prior])
        return out

    def _q_at(self, theta: Tensor) -> Tensor:
        """The region's statistic at any θ (m, d) inside the prior → (m,): the profile q, or q_w over the
        window around θ (its points beyond the grid's box left out)."""
        if self.window is None:
            ell = self.model.log_likelihood(theta, self.x_obs, self.weights)
            if self.top is None:
                return self.mle.q(ell)
            return (2.0 * (ell.clamp(min=self.top) - ell)).nan_to_num(nan=math.inf)  # as toys.point_statistic
        window = Window(self.grid, self.window)
        points, inside = window.points(theta, self.grid.amin(0), self.grid.amax(0))
        inside[:, window.centre] = True
        values = torch.full(inside.shape, -math.inf, dtype=DTYPE)
        values[inside] = self.model.log_likelihood(points[inside], self.x_obs, self.weights)
        top, _ = window.maximum(values)
        at = values[:, window.centre]
        return (2.0 * (torch.maximum(top, at) - at)).nan_to_num(nan=math.inf).clamp(min=0.0)

    def _threshold_at(self, theta: Tensor) -> Tensor:
        if bool((self.threshold == self.threshold[0]).all()):
            return self.threshold[0].expand(len(theta))
        if self.grid.shape[1] == 1:
            order = self.grid[:, 0].argsort()
            values = np.interp(theta[:, 0].numpy(), self.grid[order, 0].numpy(), self.threshold[order].numpy())
            return torch.as_tensor(values, dtype=DTYPE)
        return self.threshold[nearest(self.grid, theta)]


def size_kind(dim: int) -> str:
    """What a region's size is in `dim` dimensions: a length, an area or a volume."""
    return {1: "length", 2: "area"}.get(dim, "volume")


def size_text(size: float, names) -> str:
    """A region's size with what it is and its units, e.g. "area 0.0152 (in units of E × G_f)"."""
    return f"{size_kind(len(names))} {size:.4g} (in units of {' × '.join(names)})"


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
    check: int | None = None,
    window="auto",
    pool="auto",
) -> Region:
    """The confidence region for θ from i.i.d. observations.

    Arguments:
        model: a `Model`, a fitted surrogate or a simulator with an exact likelihood.
        x_obs: observations (n, x_dim).
        level: the confidence level in (0, 1).
        method: "wilks" (χ²_d threshold) or "neyman" (per-point toy thresholds).
        prior: the prior (or its simulator) when `model` is a bare estimator.
        simulator: the simulator that Neyman toys are drawn from; the model's by default.
        grid: θ points (g, theta_dim), or points per axis, or None for `Model.grid()`. A grid needs a
            bounded box: the prior's support, or for an unbounded prior (a Gaussian) the box given as
            `Model(..., bounds=(low, high))`, by default the central 99.9% of each of its marginals.
        toys: toy data sets per grid point (neyman). The threshold's quantile has an error of
            about sqrt(level (1 − level) / toys) in probability.
        seed: toys at grid point j come from a generator seeded by (seed, j) alone, so the region
            does not depend on `workers` or the backend.
        workers: local processes (spawned) that draw the toys of grid points in parallel.
        cluster: a Dask scheduler address or a `dask.distributed.Client`; then `workers` is ignored.
        progress: show a progress bar over grid points (neyman) and over the toys of `check`.
        check: wilks only: that many toy data sets (a few hundred, e.g. 200) of len(x_obs) runs at each
            of up to 2d + 1 points, θ̂ and the lowest and highest grid point along each axis of the wider
            region of level 1 − (1 − level)/5, drawn with the simulator, measure the coverage of the χ²
            threshold there (`Region.calibration`: the lowest coverage and where); None (the default)
            skips the check.
            A coverage too low for a calibrated threshold warns (`CalibrationWarning`, a RuntimeWarning;
            the rule, with its false-alarm probability `wilks_check.FALSE_ALARM` whatever the number of
            points, in `goldmine.inference.wilks_check`). It costs m·check·n runs and, for continuous x,
            m·check·n·g likelihood terms (each toy's ℓ on the grid; m ≤ 2d + 1 points): m·check times the
            region's own n·g. That is why it is off by default here, where regions are often
            computed in loops (toys, scans, studies): with a network surrogate on a 2-D grid it turns a
            region of seconds into one of minutes (benchmarks/README.md, "region_coverage"). `goldmine infer`,
            which computes one region for a user to read, checks by default.
        window: neyman: the statistic. None: the profile q over the whole grid; an integer w ≥ 1: the
            windowed q_w, ℓ's maximum within w grid steps (needs an even mesh); "auto": the profile
            for discrete x, `goldmine.inference.toys.NEYMAN_WINDOW` for continuous x. Any choice covers
            at the level; the window bounds the cost (`goldmine.inference.toys`).
        pool: neyman: runs simulated per grid point that the toys are resampled from; None for
            independent toys; "auto": independent for discrete x, `goldmine.inference.toys.pool_size`
            for continuous x (the pool's errors are half the toys' own Monte Carlo error).

    Returns:
        A `Region`.

    Neyman's cost with independent toys and the profile is g·toys·n simulator runs and ℓ of g·toys toy
    data sets on the g grid points. Discrete x keeps the second part small (each distinct x is
    evaluated once for a chunk of grid points). Continuous x would cost g²·toys·n evaluations of the
    likelihood; the default window and pool make it g·M·(2w + 1)^d evaluations and g·M runs.

    Example:
        >>> import goldmine as gm
        >>> sim = gm.simulators.GaltonBoard()
        >>> x = sim.sample(torch.full((100, 1), 0.3), generator=torch.Generator().manual_seed(0)).x
        >>> region = confidence_region(sim, x, level=0.68)
        >>> region.contains(torch.tensor([[0.3], [-0.9]])).tolist()
        [True, False]
    """
    checks.level(level)
    checks.choice(method, METHODS, "method")
    checks.positive_int(toys, "toys")
    checks.positive_int(workers, "workers")
    if check is not None:
        checks.positive_int(check, "check")
        if method != "wilks":
            raise ValueError("check measures the coverage of the Wilks threshold; a Neyman region is calibrated by "
                             "its own toys: pass check=None with method='neyman'.")
    model = as_model(model, prior, simulator)
    x = model.check_x_obs(x_obs)
    grid = make_grid(model, grid)
    sim = toy_simulator(model, simulator, "method='neyman'") if method == "neyman" else None
    checker = toy_simulator(model, simulator, "check") if check is not None else None
    plan = (None, None)
    if method == "neyman":
        if window not in ("auto", None):
            checks.positive_int(window, "window")
        if pool not in ("auto", None):
            checks.positive_int(pool, "pool")
        plan = neyman_plan(sim, grid, level, int(toys), len(x), int(seed), window, pool)
    region = _region(model, x, None, level, method, grid, sim, int(toys), int(seed), int(workers), cluster, progress,
                     plan)
    if checker is not None:
        region.calibration = _calibrate(region, checker, int(check), int(seed), progress)
    return region


def _calibrate(region: Region, simulator: Simulator, toys: int, seed: int = 0, progress: bool = False) -> dict:
    """`wilks_check.check_region` of the region, with a `CalibrationWarning` that names the lowest coverage and
    where it was measured when it under-covers.

    Returns:
        The check's dict (`Region.calibration`).
    """
    out = check_region(region, simulator, toys, seed, progress)
    if out["under_covers"]:
        names = checks.theta_names(region.model, region.grid.shape[1])
        warnings.warn(trust_notes((), out, names=names)[0] + ".", CalibrationWarning, stacklevel=3)
    return out


def window_note(window: int | None, window_edge: int) -> str | None:
    """The line that says a windowed Neyman region judged some of its points by the slope of ℓ alone
    (their observed window maximum on the window's edge), or None."""
    if window is None or not window_edge:
        return None
    return (f"{window_edge} grid points inside the region have their observed window maximum on the window's edge "
            f"(θ̂ beyond ±{window} grid steps): there the region follows the slope of ℓ, not its drop (still "
            "calibrated by the toys; window=None in confidence_region gives the profile statistic)")


def trust_notes(edge_axes, calibration: dict | None, neyman: str = "method='neyman'", names=None) -> list[str]:
    """One line per reason to doubt a region: θ̂ on the prior's edge in `edge_axes`, a measured coverage
    (`calibration`, as in `Region.calibration`) below the level; the measured coverage also when it is
    fine. `neyman` is how the advice names the Neyman construction; `names` those of θ's components."""
    notes = []
    if edge_axes:
        axes = ", ".join(names[a] if names is not None and a < len(names) else f"θ_{a}" for a in edge_axes)
        notes.append(f"θ̂ lies on the edge of the prior's box (in {axes}): the likelihood still rises there, so θ̂ "
                     f"is the bound and Wilks' χ² does not hold; widen the prior, or use {neyman}")
    if calibration is not None:
        c = calibration
        measured = f"coverage at θ̂ {c['coverage']:.3f} ± {c['stderr']:.3f} by {c['toys']} toys from the simulator"
        if "points" in c:  # the check at several points of the region (wilks_check), each with c["toys"] toys
            at = c["points"][0]["theta"] == c["theta"]
            where = "θ̂" if at else "θ = " + _point_text(c["theta"], names)
            based = c.get("coverage_toys", c["toys"])  # fewer when the check stopped at a certain verdict
            measured = (f"lowest coverage {c['coverage']:.3f} ± {c['stderr']:.3f} at {where}, of {len(c['points'])} "
                        f"points (θ̂ and the ends along each axis of the {_reach(c['level'])} region) checked by "
                        f"{c['toys']} toys each from the simulator"
                        + (f" (that coverage by the first {based} of them: the verdict no longer depended on the rest)"
                           if based < c["toys"] else ""))
        margin = OVER_COVERAGE * math.sqrt(c["level"] * (1 - c["level"]) / c.get("coverage_toys", c["toys"]))
        if c["under_covers"]:
            notes.insert(0, f"{measured}, below the nominal {c['level']:.3g}: the region is too small to be trusted; "
                            f"use {neyman} (thresholds calibrated by toys), train the surrogate longer, or use an "
                            "ensemble of surrogates")
        elif c["coverage"] > c["level"] + margin:
            notes.append(f"{measured}, above the nominal {c['level']:.3g}: the region is conservative (larger than "
                         "it needs to be)")
        else:
            notes.append(f"{measured}: consistent with the nominal {c['level']:.3g}")
    return notes


def _reach(level: float) -> str:
    """The level of the wider region whose ends the check measured at, as a percentage."""
    return f"{100 * reach_level(level):.3f}".rstrip("0").rstrip(".") + "%"


def _point_text(theta, names=None) -> str:
    """θ as "0.412" (one component) or "(E = 45.1, G_f = 0.9)"."""
    values = [float(v) for v in theta]
    if len(values) == 1:
        return f"{values[0]:.4g}"
    names = names if names is not None and len(names) == len(values) else [f"θ_{j}" for j in range(len(values))]
    return "(" + ", ".join(f"{n} = {v:.4g}" for n, v in zip(names, values)) + ")"


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
            by n_obs·p(x|θ) (or, without one, ASIMOV_RUNS runs at θ weighted to a total of n_obs,
            fewer for a large x: `goldmine.inference.toys.asimov_runs`);
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
    checks.level(level)
    checks.choice(method, EXPECTATIONS, "method")
    checks.positive_int(toys, "toys")
    checks.positive_int(n_obs, "n_obs")
    model, theta, grid, sim = toy_setup(model, theta, "theta", prior, simulator, grid, "expected_limits")
    if method == "asimov":
        x, weights = asimov_data(sim, theta[0], n_obs, seed)
        return _region(model, x, weights, level, "wilks", grid, None, 0, seed, 1, None, False)
    x = draw_toys(sim, theta[0], int(toys), int(n_obs), seeded_generator(seed, 0))
    log_lik = toy_log_likelihood(model, x, grid)
    q = (2.0 * (Mesh(grid).maximum(log_lik)[:, None] - log_lik)).clamp(min=0.0)
    sizes = toy_sizes(grid, q, float(chi2.ppf(level, model.theta_dim)))
    median = int(np.argsort(sizes, kind="stable")[(len(sizes) - 1) // 2])
    region = _region(model, x[median], None, level, "wilks", grid, None, 0, seed, 1, None, False)
    region.toys = int(toys)
    return region


# -- the region ---------------------------------------------------------------------------------


def _region(model: Model, x: Tensor, weights, level, method, grid, sim, toys, seed, workers, cluster,
            progress, plan=(None, None)) -> Region:
    """The region; `plan` is the Neyman statistic's (window, pool) from `neyman_plan`."""
    fit = mle(model, x, grid=grid, weights=weights)
    window, pool = plan
    q, edge, statistic, top = fit.q(fit.grid_log_likelihood), None, None, None
    if window is not None:
        statistic = Window(grid, window)
        q, edge = (v[0] for v in statistic.statistic(fit.grid_log_likelihood[None]))
    elif method == "neyman":
        # the toys' statistic (`goldmine.inference.toys`): ℓ's maximum is the grid's, refined by its quadratic, not
        # the MLE's own search; the thresholds are quantiles of that statistic, so the observation must be judged by it
        top = float(Mesh(grid).maximum(fit.grid_log_likelihood[None])[0])
        q = (2.0 * (top - fit.grid_log_likelihood)).clamp(min=0.0)
    if method == "wilks":
        threshold = torch.full((len(grid),), float(chi2.ppf(level, model.theta_dim)), dtype=DTYPE)
    else:
        threshold = neyman_thresholds(model, sim, grid, level, toys, len(x), seed, workers, cluster, progress,
                                      window=window, pool=pool)
    inside = q <= threshold
    region = Region(method, float(level), grid, q, threshold, inside, fit,
                    toys=toys if method == "neyman" else 0, window=window, pool=pool,
                    window_edge=0 if edge is None else int((edge & inside).sum()), top=top,
                    model=model, x_obs=x, weights=weights)
    if model.theta_dim == 1:
        region.segments = _segments(region)
    region.members = member_spread(model, grid, x, weights, threshold,
                                   None if statistic is None else lambda v: statistic.statistic(v)[0])
    return region


def _segments(region: Region) -> list[tuple[float, float]]:
    """The region's connected pieces in 1-D, each endpoint the root of q − t between grid points."""
    order = region.grid[:, 0].argsort()
    theta = region.grid[order, 0].tolist()
    inside = region.inside[order].tolist()

    def excess(value: float) -> float:  # q(θ) − t(θ) < 0 inside
        point = torch.tensor([[value]], dtype=DTYPE)
        return float(region._q_at(point) - region._threshold_at(point))

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
