"""The surrogate protocol: what inference asks of a trained surrogate, and what a surrogate can do.

Likelihood inference (`Model`: the MLE, confidence regions, expected limits, MCMC posteriors) calls
one method of a fitted surrogate,

    log_likelihood_terms(x, theta) → (n,):   log p̂(x_i|θ_i) + c(x_i)

for rows x (n, x_dim) and θ (n, theta_dim) (or one θ for all rows), where c may depend on x but not
on θ: it cancels in every likelihood ratio, and MCMC never needs it. A ratio estimator gives
log r̂(x|θ, θ_ref) (c = −log p(x|θ_ref)), a likelihood estimator log p̂(x|θ) (c = 0), and a
simulator's exact likelihood enters through the adapter `ExactLikelihood`. The surrogate also has
`theta_dim_` and `x_dim_` once fitted, and may name what its terms are in `kind` ("ratio",
"likelihood", "exact"). An object with only `log_ratio(x, theta)` is taken as a ratio surrogate.

What else a surrogate can do it declares in `capabilities`, a set of these names:

    likelihood   log_likelihood_terms(x, theta), as above
    ratio        log_ratio(x, theta) → log r̂(x|θ, θ_ref), exactly 0 at θ_ref: (n,)
                 (`goldmine.evaluate` measures it against the exact ratio)
    score        score(x, theta) → ∇_θ log p̂(x|θ): (n, theta_dim)
    posterior    a posterior of one observation learned directly (npe): sample(x, n, generator) →
                 (n, theta_dim), log_prob(theta, x) → (n,), prior_ (the prior it was trained under)
                 and acceptance_; `goldmine.inference.posterior` samples it, `Model` refuses it
    summary      a summary learned at θ_ref (sally): score(x) → t̂(x) (n, theta_dim),
                 fisher_information(x), and likelihood_surrogate(data) → a likelihood surrogate
                 (histograms of the summary filled from the training data)

Code that uses surrogates asks `capabilities(obj)`, never the estimator's class.

A fitted surrogate may also record the range of the x it was trained on, `x_low_` and `x_high_`
((x_dim,) each; every goldmine estimator does). Beyond that range a surrogate extrapolates: its
likelihood there was never learned from data, yet gives a confident-looking answer where the exact
likelihood would say the observation is impossible. Inference (`Model.check_x_obs`, the direct
posterior, ALFI) warns with a RuntimeWarning, `warn_outside_training`, when observations lie
outside the range widened by `RANGE_MARGIN` of its width on each side. It warns rather than
refuses: a finite training set does not reach the edges of the support, so a rare observation just
beyond it is no mistake, and the user is the one to judge whether the answer can be trusted.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import Tensor

from ..simulators.base import Simulator

CAPABILITIES = ("likelihood", "ratio", "score", "posterior", "summary")
#: how far observations may lie beyond the training range without a warning, as a fraction of its width
RANGE_MARGIN = 0.1


def capabilities(obj) -> frozenset[str]:
    """What `obj` can do: its declared `capabilities`, or for an object without them "likelihood" and
    "ratio" when it has `log_ratio` (or "likelihood" alone when it has `log_likelihood_terms`)."""
    declared = getattr(obj, "capabilities", None)
    if declared is not None:
        return frozenset(declared)
    found = set()
    if callable(getattr(obj, "log_likelihood_terms", None)):
        found.add("likelihood")
    if callable(getattr(obj, "log_ratio", None)):
        found |= {"likelihood", "ratio"}
    return frozenset(found)


def likelihood_terms(source) -> Callable[[Tensor, Tensor], Tensor]:
    """The fitted surrogate's `log_likelihood_terms` (or `log_ratio`), checked at the boundary.

    Raises:
        TypeError: `source` gives no likelihood; the message says what to do with it instead.
        RuntimeError: it is not fitted yet.
    """
    can = capabilities(source)
    name = getattr(source, "method", None) or type(source).__name__
    if "likelihood" not in can:
        if "posterior" in can:
            raise TypeError(
                f"{name} learns the posterior q(θ|x) directly, not a likelihood, so it makes no Model: pass it to "
                "gm.inference.posterior(estimator, x_obs) for one observation (or use its sample and log_prob), or "
                "train a ratio or likelihood estimator for limits from many observations."
            )
        if "summary" in can:
            raise TypeError(
                f"{name} learns a summary t̂(x), not a likelihood: infer with its histogram likelihood, "
                "Model(estimator.likelihood_surrogate(training_data), prior=sim)."
            )
        raise TypeError(
            f"{type(source).__name__} is not a surrogate goldmine can infer with: pass a fitted estimator "
            "with log_likelihood_terms(x, theta) or log_ratio(x, theta) (RatioEstimator, LikelihoodEstimator, "
            "HistogramRatio, SummaryHistogram), or a Simulator with an exact log_prob."
        )
    if not hasattr(source, "theta_dim_"):
        raise RuntimeError(f"this {type(source).__name__} is not fitted yet: call fit(dataset) first.")
    terms = getattr(source, "log_likelihood_terms", None)
    return terms if callable(terms) else source.log_ratio


class ExactLikelihood:
    """A simulator's exact likelihood seen as a surrogate: its terms are log p(x|θ) itself.

    Raises:
        NotImplementedError: the simulator has no exact likelihood.
    """

    kind = "exact"
    capabilities = frozenset({"likelihood"})

    def __init__(self, simulator: Simulator):
        if type(simulator).log_prob is Simulator.log_prob:
            raise NotImplementedError(
                f"{simulator.name} has no exact likelihood log p(x|θ): run inference on a surrogate trained "
                "on its data instead (for example gm.RatioEstimator('alices'))."
            )
        self.simulator = simulator
        self.theta_dim_, self.x_dim_, self.reference_ = simulator.theta_dim, simulator.x_dim, simulator.reference

    def log_likelihood_terms(self, x: Tensor, theta: Tensor) -> Tensor:
        """log p(x|θ): x (n, x_dim), θ (n, theta_dim) → (n,)."""
        return self.simulator.log_prob(x, theta)


def outside_training(surrogate, x: Tensor) -> Tensor | None:
    """Where x (n, x_dim) lies outside the surrogate's training range widened by `RANGE_MARGIN` of its width on
    each side (of |x_low_|, at least 1, where the range has no width): (n, x_dim) bool; None when the
    surrogate records no range."""
    low, high = getattr(surrogate, "x_low_", None), getattr(surrogate, "x_high_", None)
    if low is None or high is None:
        return None
    low, high = torch.as_tensor(low, dtype=torch.float64), torch.as_tensor(high, dtype=torch.float64)
    width = high - low
    margin = RANGE_MARGIN * torch.where(width > 0, width, low.abs().clamp(min=1.0))
    x = torch.as_tensor(x).detach().to(torch.float64).reshape(len(x), -1)
    return (x < low - margin) | (x > high + margin)


def warn_outside_training(surrogate, x: Tensor, stacklevel: int = 2) -> int:
    """Warns (RuntimeWarning) when observations x (n, x_dim) lie outside the range of x the surrogate was
    trained on (`outside_training`), naming how many, the range and an example; returns how many."""
    outside = outside_training(surrogate, x)
    count = 0 if outside is None else int(outside.any(1).sum())
    if not count:
        return 0
    name = getattr(surrogate, "method", None) or type(surrogate).__name__
    low, high = surrogate.x_low_.tolist(), surrogate.x_high_.tolist()
    x = torch.as_tensor(x).detach().to(torch.float64).reshape(len(x), -1)
    label = (lambda j: "x") if len(low) == 1 else (lambda j: f"x_{j + 1}")
    where = ", ".join(f"{label(j)} in [{low[j]:.4g}, {high[j]:.4g}] (e.g. {float(x[outside[:, j], j][0]):.4g})"
                      for j in range(len(low)) if outside[:, j].any())
    warnings.warn(
        f"{count} of {len(x)} observations lie outside the range of x that {name} was trained on, by more than "
        f"{RANGE_MARGIN:.0%} of its width: {where}. There it extrapolates what it never learned from data, so its "
        "answer may look confident and be wrong: check the observations against the simulator, or train on data "
        "that covers them.", RuntimeWarning, stacklevel=stacklevel + 1)
    return count


__all__ = ["CAPABILITIES", "RANGE_MARGIN", "ExactLikelihood", "capabilities", "likelihood_terms", "outside_training",
           "warn_outside_training"]
