"""Results as text and plots: one-line metrics and regions, the q(θ) curves of several methods, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import checks
from ..inference.intervals import size_text, trust_notes, window_note


def metric_text(result: dict) -> str:
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    if result["metric"] == "c2st":
        return f"c2st {result['c2st']:.3f} (0.5 is perfect)"
    if result["metric"] == "coverage":  # no exact likelihood: calibration by toys
        return (f"coverage of {result['level']:.0%} Wilks regions {result['coverage']:.3f} ± {result['stderr']:.3f} "
                f"(toys at {len(result['per_theta'])} θ; no exact likelihood to measure errors against)")
    name = "mse(log r)" if result["metric"] == "log_ratio_mse" else "mse(t)"
    relative = f" (relative {result['relative']:.3g})" if result.get("relative") is not None else ""
    if result.get("integration") == "monte carlo":  # no quadrature grid over x: an estimate, with its error
        return f"{name} {result['mse']:.4g} ± {result['stderr']:.2g}{relative}, Monte Carlo over " \
               f"{result['samples']:,} runs of x per θ"
    return f"{name} {result['mse']:.4g}{relative}"


def region_text(result: dict) -> str:
    if not result or "skipped" in result:
        return f"skipped: {result.get('skipped', 'not run')}"
    if result.get("kind") == "posterior":
        names = checks.theta_names(result.get("theta_names"), len(result["mean"]))
        bounds = " × ".join(f"[{low:.3g}, {high:.3g}]" for low, high in result["credible_interval"])
        return "posterior mean " + ", ".join(f"{n} = {v:.3g}" for n, v in zip(names, result["mean"])) + \
            f", {result['level']:.0%} credible {bounds}"
    names = checks.theta_names(result.get("theta_names"), len(result["mle"]))
    theta = ", ".join(f"{n} = {v:.3g}" for n, v in zip(names, result["mle"]))
    if "interval" in result:
        region = f"[{result['interval'][0]:.3g}, {result['interval'][1]:.3g}]"
    else:
        region = size_text(result["size"], names)
    edge = " (θ̂ on the prior's edge)" if result.get("mle_on_edge") else ""
    return f"θ̂ = {theta}{edge}, {result['level']:.0%} {result['method']} {region}"


def region_notes(result: dict) -> list[str]:
    """The lines that say how far a region of `infer` can be trusted: θ̂ on the prior's edge, the
    coverage measured by the calibration check, and whether the true θ (when known) lies inside."""
    if not result or "skipped" in result or result.get("kind") == "posterior":
        return []
    notes = trust_notes(result.get("edge_axes", ()), result.get("calibration"), neyman="--method neyman",
                        names=result.get("theta_names"))
    window = window_note(result.get("window"), result.get("window_edge", 0))
    if window:
        notes.append(window)
    if "true_theta_inside" in result:
        notes.append(f"the true θ is {'inside' if result['true_theta_inside'] else 'outside'} the region")
    return notes


def duration(seconds: float) -> str:
    """A rough duration: "2 s", "3 min", "1.5 h"."""
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def one_line(err: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(err).split()) or type(err).__name__


def plot_inference(results: dict[str, dict], path, true_theta=None) -> Path | None:
    """q(θ) of every method against the threshold (1-D θ), or each region's boundary (2-D θ), drawn by
    goldmine.plots.q_figure (which draws `plots.region` too), zoomed on the thresholds when they vary.

    Arguments:
        results: name → the dict of `infer`; those without a grid, or on another grid than the
            first, are left out.
        true_theta: marked when given.

    Returns:
        The PNG's path, or None when there is nothing to draw (no grid, or θ of dimension > 2).
    """
    from .. import plots

    shown = {name: r for name, r in results.items() if r.get("grid")}
    if not shown:
        return None
    first = next(iter(shown.values()))
    grid = np.asarray(first["grid"], dtype=float)
    if grid.shape[1] > 2:
        return None
    shown = {name: r for name, r in shown.items() if np.array_equal(np.asarray(r["grid"], dtype=float), grid)}
    q = {name: _floats(r["q"]) for name, r in shown.items()}
    thresholds = {name: _floats(r["threshold"]) for name, r in shown.items()}
    names = checks.theta_names(first.get("theta_names"), grid.shape[1])
    return plots.q_figure(grid, q, thresholds, true_theta, names, path=path, zoom=True)


def _floats(values) -> np.ndarray:
    """JSON numbers (None for ±∞ and NaN) as floats, with the gaps far above any threshold."""
    return np.asarray([1e12 if v is None else v for v in values], dtype=float)
