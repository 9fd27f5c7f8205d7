"""A trained estimator measured against the simulator's exact likelihood, by what it can do."""

from __future__ import annotations

import torch
from torch import Tensor

from ..evaluate import c2st, grid_posterior_samples, log_ratio_error, score_error
from ..inference.surrogate import capabilities
from ..simulators.base import DTYPE, Simulator, box_bounds, draw_prior
from ..simulators.base import has_exact


class _Zero:
    """The trivial surrogate log r̂ = 0, whose error is the scale to compare against."""

    def __init__(self, like):
        self.theta_dim_, self.x_dim_, self.reference_ = like.theta_dim_, like.x_dim_, like.reference_

    def log_ratio(self, x, theta) -> Tensor:
        return torch.zeros(len(x), dtype=DTYPE)


def evaluate_model(estimator, sim: Simulator, seed: int = 0, observations: int = 3, draws: int = 1000) -> dict:
    """Errors of a trained estimator against the simulator's exact likelihood (goldmine.evaluate).

    By what the estimator can do (`goldmine.inference.surrogate`): a summary at θ_ref (sally,
    sallino): the squared error of t̂(x) at θ_ref, relative to tr I(θ_ref). A direct posterior (npe):
    the C2ST between `draws` posterior draws and the exact posterior's, averaged over `observations`
    runs at θ ~ prior (seeded by `seed`); 0.5 is perfect. A ratio (ratio and likelihood estimators,
    histograms): the expected squared error of log r̂ over the prior's θ grid, beside that of log r̂ = 0.

    Without an exact likelihood, a ratio or likelihood estimator is judged by the coverage of its Wilks
    regions, measured by toys (`calibration_by_toys`). The errors are integrals over x: by quadrature when the simulator has an `x_grid`, else by Monte Carlo
    over runs of the simulator (seeded by `seed`) with a standard error ("stderr", "integration").

    Raises:
        NotImplementedError: the simulator has no exact likelihood and the estimator is no likelihood (sally,
            npe: nothing to compare with), or the estimator gives none of the three.
    """
    can = capabilities(estimator)
    if not has_exact(sim) and "likelihood" in can and "summary" not in can:
        return calibration_by_toys(estimator, sim, seed)
    if "summary" in can:
        out = score_error(estimator, sim, seed=seed)
        return {"metric": "score_mse", "mse": out["mse"], "relative": out["relative"], "stderr": out["stderr"],
                "integration": out["integration"], **({"samples": out["samples"]} if "samples" in out else {})}
    if "posterior" in can:
        if not has_exact(sim):
            raise NotImplementedError(f"{sim.name} has no exact likelihood, so there is no exact posterior to "
                                      f"compare {getattr(estimator, 'method', 'the posterior')} with.")
        generator = torch.Generator().manual_seed(seed)
        theta = draw_prior(sim.prior, observations, seed=seed)
        x = sim.sample(theta, generator=generator).x
        scores = [c2st(estimator.sample(x[i : i + 1], draws, generator=generator),
                       grid_posterior_samples(sim, x[i : i + 1], draws, generator=generator), seed=seed)
                  for i in range(observations)]
        return {"metric": "c2st", "c2st": sum(scores) / len(scores), "per_observation": scores,
                "theta": theta.tolist(), "x": x.tolist()}
    if "ratio" not in can:
        raise NotImplementedError(f"{type(estimator).__name__} gives no log-ratio, score or posterior to measure "
                                  "against the exact likelihood.")
    out = log_ratio_error(estimator, sim, seed=seed)
    trivial = log_ratio_error(_Zero(estimator), sim, seed=seed)["mse"]  # the same runs of x, by the same seed
    return {"metric": "log_ratio_mse", "mse": out["mse"], "trivial_mse": trivial,
            "relative": out["mse"] / trivial if trivial > 0 else None,
            "stderr": out["stderr"], "integration": out["integration"],
            **({"samples": out["samples"]} if "samples" in out else {}),
            "theta_grid": out["theta_grid"].tolist(), "per_theta": out["per_theta"].tolist()}


#: the calibration by toys of `calibration_by_toys`: θ points from the prior, toys at each, observations per toy
CALIBRATION_POINTS, CALIBRATION_TOYS, CALIBRATION_N_OBS, CALIBRATION_LEVEL = 3, 100, 50, 0.68
#: grid points per θ axis of the toys' MLE
CALIBRATION_GRID = {1: 51, 2: 21, 3: 9}


def calibration_by_toys(estimator, sim: Simulator, seed: int = 0) -> dict:
    """How often the estimator's Wilks regions cover the truth, where no exact likelihood can measure its errors.

    At `CALIBRATION_POINTS` θ drawn from the prior (seeded by `seed`; for a box prior, from the middle half
    of the box, away from the edges where Wilks regions are cut and over-cover), `CALIBRATION_TOYS` toy data
    sets of `CALIBRATION_N_OBS` runs each are simulated and the fraction whose `CALIBRATION_LEVEL` Wilks
    region holds the θ they were drawn at is measured (`goldmine.inference.coverage`). A calibrated surrogate
    covers at the level, up to the binomial standard error, where Wilks's theorem holds for the exact
    likelihood (enough observations); a surrogate whose ratios are off usually covers less.

    Returns:
        {"metric": "coverage", "coverage": the mean over the points, "stderr", "level", "per_theta",
        "theta", "toys", "n_obs"}.
    """
    from ..inference import Model, coverage

    model = Model(estimator, prior=sim, simulator=sim)
    model.progress = False
    theta = draw_prior(sim.prior, CALIBRATION_POINTS, seed=seed)
    low, high = box_bounds(sim.prior)
    if low is not None:
        theta = low + (0.25 + 0.5 * (theta - low) / (high - low)) * (high - low)
    grid = model.grid(CALIBRATION_GRID.get(sim.theta_dim, 5))
    found = [coverage(model, t, CALIBRATION_N_OBS, CALIBRATION_LEVEL, "wilks", toys=CALIBRATION_TOYS,
                      seed=seed + i, grid=grid, progress=False) for i, t in enumerate(theta)]
    per_theta = [f["coverage"] for f in found]
    stderr = sum(f["stderr"] ** 2 for f in found) ** 0.5 / len(found)
    return {"metric": "coverage", "coverage": sum(per_theta) / len(per_theta), "stderr": stderr,
            "level": CALIBRATION_LEVEL, "per_theta": per_theta, "theta": theta.tolist(),
            "toys": CALIBRATION_TOYS, "n_obs": CALIBRATION_N_OBS,
            "note": f"{sim.name} has no exact likelihood: the coverage of {CALIBRATION_LEVEL:.0%} Wilks regions by "
                    "toys instead of errors"}
