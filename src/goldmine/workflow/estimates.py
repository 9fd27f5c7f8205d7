"""Inference for the command line and studies: the MLE and a confidence region, or a direct posterior's
summary, as plain JSON values."""

from __future__ import annotations

import warnings

import torch

from .. import checks
from ..inference import Model, confidence_region
from ..inference.intervals import CalibrationWarning, size_kind
from ..checks import warn_outside_training
from ..inference.surrogate import capabilities
from ..inference.toys import neyman_pairs, neyman_plan
from ..simulators.base import DTYPE, Simulator


def inference_source(estimator, sim: Simulator, data=None):
    """What inference evaluates: the estimator itself, or for a summary (sally / sallino) its likelihood
    surrogate, a histogram of the summary filled from the training data `data`."""
    can = capabilities(estimator)
    if "summary" in can and "likelihood" not in can:
        if data is None:
            raise ValueError(f"{estimator.method} infers through a histogram of its summary t̂(x), filled from the "
                             "training data: give the data set (--data DATA.h5).")
        return estimator.likelihood_surrogate(data)
    return estimator


def infer(source, sim: Simulator, x_obs, level: float = 0.95, method: str = "wilks", toys: int | None = None,
          seed: int = 0, workers: int = 1, grid_points: int | None = None, progress: bool = True,
          check: int | None = None, true_theta=None) -> dict:
    """The MLE and the confidence region from i.i.d. observations, as plain JSON values.

    Arguments:
        source: an estimator from `inference_source`, or the simulator itself (exact likelihood).
        sim: the simulator: its prior bounds θ, its runs are the toys of Neyman regions.
        x_obs: (n, x_dim).
        level, method: the confidence level and wilks (asymptotic χ²) or neyman (toys).
        grid_points: θ grid points per axis (Model.grid's default otherwise).
        progress: a progress bar over the Neyman toys.
        check: wilks: toys at θ̂ and around it that measure the coverage of the χ² threshold (`confidence_region`'s
            check, `goldmine.inference.wilks_check`; its warning is left to the caller, which has it in "calibration").
        true_theta: the θ the observations were simulated at, if known: whether it is inside.

    Returns:
        dict with kind, n_obs, level, method, mle (θ̂), mle_on_edge and edge_axes (θ̂ on the prior's
        box), log_likelihood, size (length, area, ...; size_kind says which, in units of theta_names), theta_names,
        interval (1-D θ), calibration (with check),
        true_theta_inside (with true_theta), grid, q, threshold, inside. For npe (a posterior of one observation) the
        posterior mean, standard deviation and central credible interval per dimension instead.
    """
    if "posterior" in capabilities(source):
        return _posterior_summary(source, sim, x_obs, level, seed)
    model = Model(source, prior=sim, simulator=sim)
    model.progress = progress  # the bar of a slow ℓ(θ) (the exact likelihood), hidden by --quiet
    x = model.check_x_obs(x_obs)
    grid = None if grid_points is None else model.grid(checks.int_at_least(grid_points, "grid", 2))
    check = check if method == "wilks" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        region = confidence_region(model, x, level=level, method=method, grid=grid, seed=seed, workers=workers,
                                   progress=progress, check=check, **({} if toys is None else {"toys": toys}))
    fit, region_grid = region.mle, region.grid
    q, inside = region.q, region.inside
    threshold = torch.as_tensor(region.threshold, dtype=DTYPE).expand(len(q))
    interval = [float(v) for v in region.interval] if model.theta_dim == 1 else None
    size, segments = float(region.size), region.segments
    out = {"kind": model.kind, "n_obs": len(x), "level": level, "method": method,
           "mle": fit.theta.tolist(), "mle_on_edge": fit.on_edge, "edge_axes": list(fit.edge_axes),
           "log_likelihood": fit.log_likelihood, "size": size, "theta_names": list(model.theta_names),
           "size_kind": size_kind(model.theta_dim)}
    if interval is not None:
        out["interval"] = interval
    if segments:  # a 1-D region in several pieces shows here
        out["segments"] = [[float(a), float(b)] for a, b in segments]
    if region.calibration is not None:
        out["calibration"] = region.calibration
    if method == "neyman":  # the statistic and toys of the construction (goldmine.inference.toys)
        out.update(window=region.window, pool=region.pool, window_edge=region.window_edge)
    if true_theta is not None:
        out["true_theta_inside"] = bool(region.contains(torch.as_tensor(true_theta, dtype=DTYPE))[0])
    out.update(grid=region_grid.tolist(), q=q.tolist(), threshold=threshold.tolist(), inside=inside.tolist())
    return out


def _posterior_summary(estimator, sim: Simulator, x_obs, level: float, seed: int,
                       draws: int = 4000) -> dict:
    x = sim.check_x(x_obs, "x_obs")
    warn_outside_training(estimator, x)
    if len(x) != 1:
        return {"kind": "posterior", "n_obs": len(x),
                "skipped": f"{getattr(estimator, 'method', 'the estimator')} learns the posterior q(θ|x) of one observation, not a likelihood of {len(x)}: "
                           "use a ratio or likelihood method for limits from many observations."}
    theta = estimator.sample(x, draws, generator=torch.Generator().manual_seed(seed)).double()
    tail = (1 - level) / 2
    bounds = torch.quantile(theta, torch.tensor([tail, 1 - tail], dtype=DTYPE), dim=0)
    return {"kind": "posterior", "n_obs": 1, "level": level, "draws": draws, "mean": theta.mean(0).tolist(),
            "theta_names": list(checks.theta_names(sim, sim.theta_dim)),
            "std": theta.std(0).tolist(), "credible_interval": bounds.T.tolist()}


#: pairs (x, θ) on which `exact_cost` times the simulator's log p(x|θ)
COST_PROBE = 4096


def exact_cost(sim: Simulator, x_obs, method: str = "wilks", toys: int | None = None, grid_points: int | None = None,
               check: int | None = None) -> dict:
    """What `infer` with the simulator's exact likelihood will cost: the evaluations of log p(x|θ) it makes and
    the seconds they take at the speed measured on `COST_PROBE` pairs (a rough estimate: it leaves out the
    refinement of θ̂ and the toys' simulation).

    Arguments:
        sim: a simulator with an exact `log_prob`. x_obs: the observations (n, x_dim).
        method, toys, grid_points, check: as for `infer`.

    Returns:
        {"pairs": evaluations, "seconds": their estimated time, "per_second": the speed measured}.
    """
    import time

    model = Model(sim)
    x = model.check_x_obs(x_obs, warn=False)
    grid = model.grid(grid_points)
    g, n = len(grid), len(torch.unique(x, dim=0))
    pairs = g * n  # the MLE's grid, which the region reuses
    if method == "neyman":
        toys = 1000 if toys is None else toys  # the default plan (window and pool for continuous x) at 95%
        pairs += neyman_pairs(grid, toys, len(x), *neyman_plan(sim, grid, 0.95, toys, len(x), 0))
    elif check:
        pairs += check * len(x) * (g + 1)  # the check's toys (at θ̂ and around it), each on the grid
    take = torch.arange(COST_PROBE)
    xs, ts = x[take % len(x)], grid[take % g]
    with torch.no_grad():
        sim.log_prob(xs[:16], ts[:16])  # first calls pay for caches and imports
        start = time.perf_counter()
        sim.log_prob(xs, ts)
        seconds = max(time.perf_counter() - start, 1e-9)
    speed = COST_PROBE / seconds
    return {"pairs": int(pairs), "seconds": pairs / speed, "per_second": speed}
