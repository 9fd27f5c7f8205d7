"""A trained estimator measured against the simulator's exact likelihood, by what it can do."""

from __future__ import annotations

import torch
from torch import Tensor

from ..evaluate import c2st, grid_posterior_samples, log_ratio_error, score_error
from ..inference.surrogate import capabilities
from ..simulators.base import DTYPE, Simulator, draw_prior
from .simulators import has_exact


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

    Raises:
        NotImplementedError: the simulator has no exact likelihood (or no quadrature grid over x), or the
            estimator gives none of the three.
    """
    can = capabilities(estimator)
    if "summary" in can:
        out = score_error(estimator, sim)
        return {"metric": "score_mse", "mse": out["mse"], "relative": out["relative"]}
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
    out = log_ratio_error(estimator, sim)
    trivial = log_ratio_error(_Zero(estimator), sim)["mse"]
    return {"metric": "log_ratio_mse", "mse": out["mse"], "trivial_mse": trivial,
            "relative": out["mse"] / trivial if trivial > 0 else None,
            "theta_grid": out["theta_grid"].tolist(), "per_theta": out["per_theta"].tolist()}
