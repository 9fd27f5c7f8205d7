"""Frequentist diagnostics: does a confidence region cover the truth as often as it claims?

The coverage at θ_true is the probability that the region from n i.i.d. observations drawn at
θ_true contains θ_true, estimated from toy data sets:

    coverage = (1/T) Σ_k 1[q_k(θ_true) ≤ t(θ_true)],    stderr = sqrt(coverage (1 − coverage) / T),

with q_k(θ_true) = −2 (ℓ_k(θ_true) − ℓ_k(θ̂_k)) of toy k. Containment needs only these two numbers,
not a whole region: ℓ_k(θ̂_k) is the grid maximum refined by a quadratic, as for Neyman toys, with
all toys sharing one evaluation of ℓ on the grid. For Wilks t is the χ²_d quantile; for Neyman t is
calibrated once at θ_true by an independent set of toys, whose quantile error adds to the stderr.

References:
    Cranmer, Brehmer, Louppe, "The frontier of simulation-based inference", PNAS 117 (2020) 30055,
    https://arxiv.org/abs/1911.01429
"""

from __future__ import annotations

import math

import torch
from scipy.stats import chi2
from tqdm.auto import tqdm

from .. import checks
from ..executor import seeded_generator
from ..simulators.base import Simulator
from .intervals import METHODS
from .toys import draw_toys, toy_quantile, toy_setup, toy_statistic

#: parts of the toys between two updates of coverage's progress bar
PROGRESS_STEPS = 20


def coverage(
    model,
    theta_true,
    n_obs: int,
    level: float = 0.95,
    method: str = "wilks",
    toys: int = 300,
    seed: int = 0,
    simulator: Simulator | None = None,
    prior=None,
    grid=None,
    calibration_toys: int | None = None,
    progress: bool = True,
) -> dict:
    """The fraction of toy data sets whose confidence region contains θ_true.

    Arguments:
        model: a `Model`, a fitted surrogate or a simulator with an exact likelihood.
        theta_true: the true θ (theta_dim,) the toys are drawn at.
        n_obs: observations per toy data set.
        level: the regions' confidence level in (0, 1).
        method: "wilks" or "neyman", as in `confidence_region`.
        toys: toy data sets checked.
        seed: the toys' seed (checked toys and Neyman calibration toys are independent streams).
        simulator: the simulator toys are drawn from; the model's by default.
        prior: the prior (or its simulator) when `model` is a bare estimator.
        grid: the θ grid of the toys' MLE, as in `confidence_region`.
        calibration_toys: toys that calibrate the Neyman threshold at θ_true (`toys` by default).
        progress: a progress bar over the toys (checked and calibrating), in `PROGRESS_STEPS` steps.

    Returns:
        {"coverage", "stderr", "toys", "level", "method", "threshold"}. The stderr is binomial, plus,
        for Neyman, the error sqrt(level (1 − level) / calibration_toys) of the calibrated quantile.

    Example:
        >>> import goldmine as gm
        >>> out = coverage(gm.simulators.GaltonBoard(), [0.3], n_obs=100, level=0.68, toys=200)
        >>> abs(out["coverage"] - 0.68) < 4 * out["stderr"]
        True
    """
    level = checks.level(level)
    method = checks.choice(method, METHODS, "method")
    toys = checks.positive_int(toys, "toys")
    n_obs = checks.positive_int(n_obs, "n_obs")
    calibration_toys = toys if calibration_toys is None else checks.positive_int(calibration_toys, "calibration_toys")
    model, theta, grid, sim = toy_setup(model, theta_true, "theta_true", prior, simulator, grid, "coverage")

    total = toys + (calibration_toys if method == "neyman" else 0)
    with tqdm(total=total, desc=f"coverage {method}", unit="toys", disable=not progress, dynamic_ncols=True) as bar:
        x = draw_toys(sim, theta[0], int(toys), int(n_obs), seeded_generator(seed, 0))
        q = _statistics(model, x, grid, theta, bar)
        extra = 0.0
        if method == "wilks":
            threshold = float(chi2.ppf(level, model.theta_dim))
        else:
            calibration = draw_toys(sim, theta[0], int(calibration_toys), int(n_obs), seeded_generator(seed, 1))
            threshold = toy_quantile(_statistics(model, calibration, grid, theta, bar), level)
            extra = level * (1 - level) / calibration_toys
    covered = float((q <= threshold).double().mean())
    stderr = math.sqrt(covered * (1 - covered) / toys + extra)
    return {"coverage": covered, "stderr": stderr, "toys": int(toys), "level": float(level), "method": method,
            "threshold": threshold}


def _statistics(model, x, grid, theta, bar) -> torch.Tensor:
    """toy_statistic of the toys x (toys, n, x_dim) in `PROGRESS_STEPS` parts, advancing `bar` after each
    (one part when the bar is off: then the surrogate sees the same batches as before)."""
    if bar.disable:
        q = toy_statistic(model, x, grid, theta)
        bar.update(len(x))
        return q
    parts = []
    for part in x.split(max(1, -(-len(x) // PROGRESS_STEPS))):
        parts.append(toy_statistic(model, part, grid, theta))
        bar.update(len(part))
    return torch.cat(parts)
