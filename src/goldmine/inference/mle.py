"""Maximum-likelihood estimation and the profile-free test statistic over the prior's box.

    θ̂ = argmax_θ ℓ(θ),   ℓ(θ) = Σ_i log r̂(x_i|θ)   (or log p for the exact likelihood)
    q(θ) = −2 log λ(θ) = −2 (ℓ(θ) − ℓ(θ̂))

Surrogate likelihoods can have several local optima, so the maximum is found in two stages: ℓ on an
even grid over the box first, then a bounded derivative-free refinement (Powell) from the best few
grid points that are not neighbours of each other and come within `CONTENDER` of the best. q is clipped at 0 from below: a grid point that
beats the refined optimum means the refinement stopped early, not that q is negative.

An MLE on the edge of the prior's box (within `EDGE` of its width) is flagged: the likelihood still
rises towards the edge, so θ̂ is the bound, not a stationary point, and Wilks' χ² threshold does not
hold there (Chernoff, "On the distribution of the likelihood ratio", Ann. Math. Statist. 25 (1954) 573).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import minimize, minimize_scalar
from torch import Tensor

from ..simulators.base import DTYPE
from .model import Model, as_model

#: grid points whose ℓ is within this of the best are refined too (another optimum may hide there)
CONTENDER = 2.0
#: θ̂ within this fraction of the box's width from a bound is on the prior's edge
EDGE = 1e-3


@dataclass
class MLE:
    """The maximum-likelihood estimate.

    Attributes:
        theta: θ̂ (theta_dim,). log_likelihood: ℓ(θ̂), up to the model's constant in θ.
        grid, grid_log_likelihood: the first-stage grid (g, theta_dim) and ℓ on it (g,).
        n_obs: the number of observations.
        edge_axes: the dimensions of θ in which θ̂ lies on the prior's box (within `EDGE` of its
            width); empty when θ̂ is inside, or the prior has no box.
    """

    theta: Tensor
    log_likelihood: float
    grid: Tensor = field(repr=False)
    grid_log_likelihood: Tensor = field(repr=False)
    n_obs: int = 0
    edge_axes: tuple[int, ...] = ()

    @property
    def on_edge(self) -> bool:
        """Whether θ̂ lies on the edge of the prior's box in any dimension."""
        return bool(self.edge_axes)

    def q(self, log_likelihood: Tensor) -> Tensor:
        """−2 log λ = −2 (ℓ − ℓ(θ̂)) from values ℓ, clipped at 0."""
        return (-2.0 * (log_likelihood - self.log_likelihood)).clamp(min=0.0)


def mle(model, x_obs, prior=None, grid=None, starts: int = 3, weights=None) -> MLE:
    """The maximum-likelihood estimate of θ from i.i.d. observations, over the prior's support.

    Arguments:
        model: a `Model`, a fitted surrogate or a simulator with an exact likelihood.
        x_obs: observations (n, x_dim).
        prior: the prior (or its simulator) when `model` is a bare estimator.
        grid: the first-stage θ grid (g, theta_dim); `Model.grid()` by default (over the prior's box, or
            `Model`'s `bounds` for an unbounded prior: the search stays inside that box).
        starts: local refinements started from the best separated grid points.
        weights: optional weights of the observations (n,), as in `Model.log_likelihood`.

    Returns:
        An `MLE` with θ̂ and ℓ(θ̂).

    Example:
        >>> import goldmine as gm
        >>> sim = gm.simulators.Poisson()
        >>> x = sim.sample(torch.full((200, 1), 2.0), generator=torch.Generator().manual_seed(0)).x
        >>> round(float(gm.inference.mle(sim, x).theta), 1)
        2.0
    """
    model = as_model(model, prior)
    x = model.check_x_obs(x_obs, warn=weights is None)  # weighted x: an Asimov grid, not observations
    grid = model.grid() if grid is None else model.check_theta(grid, "grid")
    values = model.log_likelihood(grid, x, weights)
    if not torch.isfinite(values).any():
        raise ValueError("the log-likelihood is −inf or NaN at every grid point: the observations are impossible "
                         "under every θ of the grid (check x_obs against the simulator's support).")
    values = torch.nan_to_num(values, nan=-torch.inf)
    best_theta, best_value = grid[int(values.argmax())], float(values.max())
    if model.grid_low is not None and starts > 0:
        spacing = _spacing(grid, model)
        for start in _separated_best(grid, values, spacing, starts, best_value - CONTENDER):
            theta, value = _refine(model, x, weights, start, spacing)
            if value > best_value:
                best_theta, best_value = theta, value
    return MLE(best_theta.clone(), best_value, grid, values, n_obs=len(x), edge_axes=edge_axes(model, best_theta))


def edge_axes(model: Model, theta: Tensor) -> tuple[int, ...]:
    """The dimensions in which θ (theta_dim,) lies within `EDGE` of the width of the prior's box from a bound."""
    if model.low is None:
        return ()
    width = model.high - model.low
    near = ((theta - model.low) <= EDGE * width) | ((model.high - theta) <= EDGE * width)
    return tuple(int(a) for a in torch.nonzero(near & (width > 0)).reshape(-1))


def test_statistic(model, theta, x_obs, prior=None, fit: MLE | None = None, weights=None) -> Tensor:
    """q(θ) = −2 log λ(θ) at each row of θ (m, theta_dim) → (m,), with θ̂ from `fit` or from `mle`."""
    model = as_model(model, prior)
    fit = mle(model, x_obs, weights=weights) if fit is None else fit
    return fit.q(model.log_likelihood(theta, x_obs, weights))


test_statistic.__test__ = False  # a statistic, not a test for pytest to collect from users' test modules


def _spacing(grid: Tensor, model: Model) -> Tensor:
    points = max(2, round(len(grid) ** (1 / model.theta_dim)))
    return (model.grid_high - model.grid_low) / (points - 1)


def _separated_best(grid: Tensor, values: Tensor, spacing: Tensor, starts: int, floor: float) -> list[Tensor]:
    """The best grid points above `floor`, skipping any within two grid steps of one already taken."""
    chosen: list[Tensor] = []
    for i in values.argsort(descending=True).tolist():
        if not values[i] >= floor:
            break
        if all(((grid[i] - c).abs() > 2 * spacing + 1e-12).any() for c in chosen):
            chosen.append(grid[i])
            if len(chosen) == starts:
                break
    return chosen


def _refine(model: Model, x: Tensor, weights, start: Tensor, spacing: Tensor) -> tuple[Tensor, float]:
    low = torch.maximum(start - 2 * spacing, model.grid_low).numpy()
    high = torch.minimum(start + 2 * spacing, model.grid_high).numpy()
    scale = np.where(high > low, high - low, 1.0)

    def negative(u: np.ndarray) -> float:
        theta = torch.as_tensor(low + np.clip(u, 0, 1) * scale, dtype=DTYPE)[None]
        value = float(model.log_likelihood(theta, x, weights)[0])
        return -value if np.isfinite(value) else 1e300

    if len(low) == 1:  # Brent on the bracket needs a tenth of Powell's evaluations
        result = minimize_scalar(lambda u: negative(np.array([u])), bounds=(0.0, 1.0), method="bounded",
                                 options={"xatol": 1e-6})
        theta = torch.as_tensor(low + np.clip(result.x, 0, 1) * scale, dtype=DTYPE).reshape(1)
        return theta, -float(result.fun)
    u0 = ((start.numpy() - low) / scale).clip(0, 1)
    result = minimize(negative, u0, method="Powell", bounds=[(0.0, 1.0)] * len(u0),
                      options={"xtol": 1e-5, "ftol": 1e-9})
    theta = torch.as_tensor(low + np.clip(result.x, 0, 1) * scale, dtype=DTYPE)
    return theta, -float(result.fun)
