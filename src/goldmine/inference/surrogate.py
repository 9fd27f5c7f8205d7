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
A surrogate that can share work between the pairs of many x and many θ may also offer

    log_likelihood_table(x, theta) → (m, n):   the same terms for every pair of x (n, x_dim) and θ (m, theta_dim)

(a ratio network evaluates its reference term once per x there); `Model` then uses it.

What else a surrogate can do it declares in `capabilities`, a set of these names:

    likelihood   log_likelihood_terms(x, theta), as above
    ratio        log_ratio(x, theta) → log r̂(x|θ, θ_ref), exactly 0 at θ_ref: (n,)
                 (`goldmine.evaluate` measures it against the exact ratio)
    score        score(x, theta) → ∇_θ log p̂(x|θ): (n, theta_dim)
    posterior    a posterior of one observation learned directly (npe): sample(x, n, generator) →
                 (n, theta_dim), log_prob(theta, x) → (n,), prior_ (the prior it was trained under)
                 and acceptance_; `goldmine.inference.posterior` samples it, `Model` refuses it
    summary      a summary learned at θ_ref (sally): score(x) → t̂(x) (n, theta_dim),
                 fisher_information_at_reference(x), and likelihood_surrogate(data) → a likelihood surrogate
                 (histograms of the summary filled from the training data)
    ensemble     the mean of k members (`goldmine.estimators.ensemble`): members_ (the fitted members,
                 surrogates themselves) and member_terms(x, theta) → (k, n); `log_ratio_std(x, theta)`
                 their spread of log r̂. `goldmine.inference.ensemble_check` compares their regions

Code that uses surrogates asks `capabilities(obj)`, never the estimator's class. Which estimator
declares which capability is tabulated in docs/architecture.md.

A fitted surrogate may also record the range of the x it was trained on, `x_low_` and `x_high_`
((x_dim,) each; every goldmine estimator does). Beyond that range a surrogate extrapolates: its
likelihood there was never learned from data, yet gives a confident-looking answer where the exact
likelihood would say the observation is impossible. Inference (`Model.check_x_obs`, the direct
posterior, ALFI) warns with a RuntimeWarning, `goldmine.checks.warn_outside_training`, when observations lie
outside the range widened by `checks.RANGE_MARGIN` of its width on each side. It warns rather than
refuses: a finite training set does not reach the edges of the support, so a rare observation just
beyond it is no mistake, and the user is the one to judge whether the answer can be trusted.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor

from ..simulators.base import Simulator, has_exact, shape_of_x

CAPABILITIES = ("likelihood", "ratio", "score", "posterior", "summary", "ensemble")


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
        if not has_exact(simulator):
            raise NotImplementedError(
                f"{simulator.name} has no exact likelihood log p(x|θ): run inference on a surrogate trained "
                "on its data instead (for example gm.RatioEstimator('alices'))."
            )
        self.simulator = simulator
        self.theta_dim_, self.x_dim_, self.reference_ = simulator.theta_dim, simulator.x_dim, simulator.reference
        self.x_shape_ = shape_of_x(simulator)

    def log_likelihood_terms(self, x: Tensor, theta: Tensor) -> Tensor:
        """log p(x|θ): x (n, x_dim), θ (n, theta_dim) → (n,); an x of more axes goes to the simulator in its
        shape (n, *x_shape)."""
        if len(self.x_shape_) > 1:
            x = x.reshape(len(x), *self.x_shape_)
        return self.simulator.log_prob(x, theta)


__all__ = ["CAPABILITIES", "ExactLikelihood", "capabilities", "likelihood_terms"]
