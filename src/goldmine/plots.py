"""Figures (matplotlib, written to PNG files; no screen needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch


def gold_scores_per_slot(panels: list[dict], path: str | Path) -> Path:
    """Joint scores of single runs against the exact score, per discrete observation.

    Arguments:
        panels: one dict per θ with keys theta (float), x (n,), score (n,) of runs at θ, and
            slots (k,), exact (k,): the exact score ∂_θ log p(x|θ) at each slot.
        path: the PNG file to write.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        x, score = panel["x"], panel["score"]
        shown = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:3000]
        jitter = (torch.rand(len(shown), generator=torch.Generator().manual_seed(1)) - 0.5) * 0.5
        ax.scatter(x[shown] + jitter, score[shown], s=3, alpha=0.25, color="goldenrod", label="joint score t(x,z|θ) of a run")
        slots, counts = torch.unique(x, return_counts=True)
        slots = slots[counts >= 10]
        means = torch.stack([score[x == k].mean() for k in slots])
        errs = torch.stack([score[x == k].std() / (x == k).sum().sqrt() for k in slots])
        ax.errorbar(slots, means, yerr=errs, fmt="o", color="black", ms=3, label="mean joint score per slot")
        ax.plot(panel["slots"], panel["exact"], "-", color="tab:blue", label="exact ∂θ log p(x|θ)")
        ax.set(xlabel="slot x", ylabel="score", title=f"θ = {panel['theta']:g}")
        ax.set_ylim(score.quantile(0.001).item() - 1, score.quantile(0.999).item() + 1)
    axes[0][0].legend(fontsize=8, loc="best")
    return _save(fig, path)


# -- inference figures: arrays in, a PNG out ------------------------------------------------------

EXACT = ("exact", "truth", "true")  # curve names drawn as the reference (black, thick)


def llr_curves(theta_grid, curves: dict, truth: float | None = None, threshold=None, *, path: str | Path,
               label: str = "θ") -> Path:
    """−2 Δlog L along a one-dimensional θ grid, one curve per method; the exact one highlighted.

    Arguments:
        theta_grid: (g,) or (g, 1). curves: name → q = −2(ℓ − ℓ̂) on the grid (g,).
        truth: the true θ (a vertical line). threshold: a q value or several (horizontal lines),
            e.g. the Wilks thresholds 1 and 3.84.
        path: the PNG file. label: the θ axis label.
    """
    theta = _array(theta_grid).reshape(-1)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for name, q in curves.items():
        style = {"color": "black", "lw": 2.2, "zorder": 3} if name.lower() in EXACT else {"lw": 1.4}
        ax.plot(theta, _array(q).reshape(-1), label=name, **style)
    for t in np.atleast_1d(threshold if threshold is not None else []):
        ax.axhline(float(t), color="grey", ls=":", lw=1)
    if truth is not None:
        ax.axvline(float(truth), color="grey", ls="--", lw=1, label="truth")
    top = max(float(np.max(q[np.isfinite(q)], initial=1.0)) for q in map(_array, curves.values()))
    if threshold is not None:  # zoom on the region the thresholds cut
        top = min(top, 4 * float(np.max(threshold)))
    ax.set(xlabel=label, ylabel="−2 Δ log L", ylim=(0, 1.05 * top))
    ax.legend(fontsize=8)
    return _save(fig, path)


def region(region, truth=None, name: str = "q(θ)", *, path: str | Path) -> Path:
    """A confidence region of `goldmine.inference.confidence_region`, its axes named after θ's components:
    q(θ) = −2 Δlog L against its threshold for one-dimensional θ, the region's boundary q(θ) = t(θ) for
    two-dimensional θ (`q_figure`).

    Arguments:
        region: a `Region`. truth: the true θ (theta_dim,), marked when given. name: the legend's entry.
        path: the PNG file.
    """
    grid = region.grid
    if grid.shape[1] > 2:
        raise ValueError(f"a region of {grid.shape[1]}-D θ cannot be drawn in one figure: use corner() on samples, "
                         "or region.contains(theta) and region.size.")
    threshold = torch.as_tensor(region.threshold, dtype=torch.float64).expand(len(region.q))
    return q_figure(grid, {name: region.q}, {name: threshold}, truth, region.theta_names, path=path)


def q_figure(grid, q: dict, thresholds: dict, truth=None, labels=None, *, path: str | Path,
             zoom: bool = False) -> Path:
    """q(θ) = −2 Δlog L of one or more methods on one θ grid against their thresholds t(θ): for one-dimensional
    θ the curves (`llr_curves`), the threshold a line when it is constant, else a curve per method; for
    two-dimensional θ each region's boundary q(θ) = t(θ) (`contours_2d`). `plots.region` and the command line's
    and studies' `workflow.plot_inference` draw through it.

    Arguments:
        grid: (g, 1) or (g, 2). q: name → q on the grid (g,). thresholds: name → t(θ) on the grid (g,) of every
            name in q (the first one's says whether the thresholds are constant, as they are for Wilks).
        truth: the true θ (d,), marked when given. labels: the names of θ's components.
        zoom: for thresholds that vary (Neyman) in one dimension, clip the curves at 4× the largest threshold, to
            zoom on where q crosses them.
        path: the PNG file.
    """
    grid = _array(grid)
    d = grid.shape[1]
    if d not in (1, 2):
        raise ValueError(f"q(θ) of {d}-D θ cannot be drawn in one figure; got a grid of shape {grid.shape}.")
    labels = labels or (("θ",) if d == 1 else ("θ₀", "θ₁"))
    first = _array(next(iter(thresholds.values()))).reshape(-1)
    constant = bool(np.allclose(first, first[0]))
    truth = None if truth is None else _array(truth).reshape(-1)
    if d == 1:
        if not constant:  # Neyman: each method's toys give it a threshold curve of its own
            curves = {**q, **{f"{name}: threshold": thresholds[name] for name in q}}
            if zoom:
                top = 4 * max(_array(t).max() for t in thresholds.values())
                curves = {name: np.minimum(_array(values), top) for name, values in curves.items()}
            q = curves
        return llr_curves(grid, q, truth=None if truth is None else float(truth[0]),
                          threshold=float(first[0]) if constant else None, path=path, label=labels[0])
    if not constant:  # each region's boundary is where q(θ) − t(θ) crosses 0
        q = {name: _array(values) - _array(thresholds[name]) for name, values in q.items()}
    return contours_2d(grid, q, levels=(float(first[0]) if constant else 0.0,), truth=truth, labels=labels,
                       path=path)


def contours_2d(grid, q: dict, levels=(2.30, 5.99), truth=None, labels=("θ₀", "θ₁"), *, path: str | Path) -> Path:
    """Contours of q = −2 Δlog L over a two-dimensional θ grid, one colour per method.

    Arguments:
        grid: the even grid (g, 2) of `Model.grid()` (meshgrid order "ij").
        q: name → q on the grid (g,). levels: the q values of the contour lines (by default the
            Wilks thresholds of 68% and 95% for two parameters).
        truth: the true θ (2,). labels: the axis labels. path: the PNG file.
    """
    grid = _array(grid)
    axes = [np.unique(grid[:, 0]), np.unique(grid[:, 1])]
    shape = (len(axes[0]), len(axes[1]))
    if shape[0] * shape[1] != len(grid):
        raise ValueError(f"grid must be an even (ij-ordered) grid of shape (g, 2); got {grid.shape}.")
    fig, ax = plt.subplots(figsize=(5.5, 4.6))
    styles = ["-", "--", ":", "-."]
    for i, (name, values) in enumerate(q.items()):
        color = "black" if name.lower() in EXACT else f"C{i}"
        ax.contour(axes[0], axes[1], _array(values).reshape(shape).T, levels=sorted(levels), colors=[color],
                   linestyles=[styles[k % 4] for k in range(len(levels))])
        ax.plot([], [], color=color, label=name)
    if truth is not None:
        ax.plot(*_array(truth).reshape(2), "*", color="black", ms=10, label="truth")
    ax.set(xlabel=labels[0], ylabel=labels[1])
    ax.legend(fontsize=8)
    return _save(fig, path)


def corner(samples: dict, truth=None, labels=None, *, path: str | Path, bins: int = 40) -> Path:
    """A corner plot: marginal histograms on the diagonal, pairwise scatter below, one colour per sample set.

    Arguments:
        samples: name → draws (n, d). truth: the true θ (d,). labels: d axis labels. path: the PNG file.
    """
    sets = {name: _array(s).reshape(len(s), -1) for name, s in samples.items()}
    d = next(iter(sets.values())).shape[1]
    labels = labels or [f"θ{i}" for i in range(d)]
    fig, axes = plt.subplots(d, d, figsize=(2.6 * d + 1, 2.6 * d + 1), squeeze=False)
    rng = np.random.default_rng(0)
    for k, (name, s) in enumerate(sets.items()):
        shown = s[rng.permutation(len(s))[:2000]]
        for i in range(d):
            axes[i][i].hist(s[:, i], bins=bins, density=True, histtype="step", color=f"C{k}", label=name)
            for j in range(i):
                axes[i][j].scatter(shown[:, j], shown[:, i], s=2, alpha=0.3, color=f"C{k}")
    for i in range(d):
        for j in range(d):
            ax = axes[i][j]
            if j > i:
                ax.set_axis_off()
                continue
            if truth is not None:
                t = _array(truth).reshape(-1)
                ax.axvline(t[j], color="black", ls="--", lw=1)
                if j < i:
                    ax.axhline(t[i], color="black", ls="--", lw=1)
            ax.set(xlabel=labels[j] if i == d - 1 else "", ylabel=labels[i] if 0 < i and j == 0 else "")
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def coverage_plot(levels, observed, stderr, *, path: str | Path) -> Path:
    """Empirical against nominal coverage, with error bars and the diagonal of perfect calibration.

    Arguments:
        levels: nominal levels (k,). observed: the empirical coverage at each (k,). stderr: its
            standard error (k,). path: the PNG file.
    """
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    ax.errorbar(_array(levels).reshape(-1), _array(observed).reshape(-1), yerr=_array(stderr).reshape(-1),
                fmt="o", color="black", ms=4, capsize=2, label="empirical")
    ax.set(xlabel="nominal coverage", ylabel="empirical coverage", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8)
    return _save(fig, path)


def fisher_ellipses(fishers: dict, center, n_obs: int = 1, labels=("θ₀", "θ₁"), *, path: str | Path,
                    level: float | None = None) -> Path:
    """Cramér–Rao regions of n_obs observations, one per Fisher information: ellipses in the first two
    θ components (1-σ content by default), or intervals for one-dimensional θ.

    Arguments:
        fishers: name → I(θ) per observation (d, d). center: the point (d,). n_obs: observations.
        labels: axis labels. path: the PNG file. level: the probability content of the regions.
    """
    # plots sit after inference in the data flow
    from .inference.fisher import ONE_SIGMA, cramer_rao

    level = ONE_SIGMA if level is None else level
    center = _array(center).reshape(-1)
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    for i, (name, info) in enumerate(fishers.items()):
        bound = cramer_rao(_array(info), n_obs, center=center)
        color = "black" if name.lower() in EXACT else f"C{i}"
        if len(center) == 1:
            half = float(bound.interval(level)[0, 1]) - center[0]
            ax.errorbar([center[0]], [i], xerr=[half], fmt="o", color=color, capsize=3, label=name)
        else:
            points = bound.ellipse(level).numpy()
            ax.plot(points[:, 0], points[:, 1], color=color, label=name)
    if len(center) > 1:
        ax.plot(center[0], center[1], "+", color="black")
    else:
        ax.set_yticks([])
    ax.set(xlabel=labels[0], ylabel=labels[1] if len(center) > 1 else "",
           title=f"Cramér–Rao bound, n = {n_obs}, {100 * level:.0f}% regions")
    ax.legend(fontsize=8)
    return _save(fig, path)


def sample_efficiency(budgets, errors: dict, *, path: str | Path, ylabel: str = "error") -> Path:
    """Error against simulation budget on log-log axes, with a band per method.

    Arguments:
        budgets: simulator runs (k,). errors: name → (mean, lo, hi), each (k,). path: the PNG file.
    """
    budgets = _array(budgets).reshape(-1)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for i, (name, (mean, lo, hi)) in enumerate(errors.items()):
        ax.plot(budgets, _array(mean).reshape(-1), "o-", color=f"C{i}", label=name, ms=3)
        ax.fill_between(budgets, _array(lo).reshape(-1), _array(hi).reshape(-1), color=f"C{i}", alpha=0.2)
    ax.set(xscale="log", yscale="log", xlabel="simulator runs", ylabel=ylabel)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _array(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=float)


def _save(fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def posterior_checks(report, *, path: str | Path, columns: int = 4) -> Path:
    """The figure of a `goldmine.inference.posterior_checks` report: per statistic the histogram of its
    replicated values with the observed value (and its two-sided p-value), and the expected-coverage
    curve when the report has one.

    Arguments:
        report: a `PosteriorChecks`. path: the PNG file. columns: panels per row.
    """
    p = report.predictive
    panels = len(p.names) + (report.calibration is not None)
    rows = (panels + columns - 1) // columns
    fig, axes = plt.subplots(rows, min(columns, panels), figsize=(3.4 * min(columns, panels), 3.0 * rows),
                             squeeze=False)
    flat = axes.reshape(-1)
    for j, name in enumerate(p.names):
        ax = flat[j]
        ax.hist(_array(p.replicated[:, j]), bins=30, color="lightsteelblue", edgecolor="white")
        ax.axvline(float(p.observed[j]), color="black" if p.two_sided[j] >= p.alpha else "tab:red", lw=2)
        ax.set(xlabel=name, title=f"p = {float(p.two_sided[j]):.2f}")
        ax.set_yticks([])
    if report.calibration is not None:
        c = report.calibration
        ax = flat[len(p.names)]
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
        ax.errorbar(_array(c.levels), _array(c.coverage), yerr=2 * _array(c.stderr), fmt="o", color="black", ms=3,
                    capsize=2)
        ax.set(xlabel="credibility level", ylabel="expected coverage", xlim=(0, 1), ylim=(0, 1),
               title=f"{c.problems} problems")
    for ax in flat[panels:]:
        ax.set_visible(False)
    fig.tight_layout()
    return _save(fig, path)
