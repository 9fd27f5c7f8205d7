"""The target every posterior sampler draws from: log π(θ) + ℓ(θ) for fixed observations, in two terms.

For i.i.d. observations x_1..x_n (each distinct x once, with its count w_i) and a prior π(θ),

    log p(θ|x) = log π(θ) + ℓ(θ) + const,    ℓ(θ) = Σ_i w_i log p̂(x_i|θ)   (a `Model`'s likelihood)

The samplers of `goldmine.inference` need the two terms apart (tempering raises ℓ alone to a power
β ∈ [0, 1]; importance sampling weighs prior draws by ℓ) and, for Hamiltonian Monte Carlo, the
gradient of their sum through autograd on the surrogate. Outside the prior's support the density
is zero (−inf), and a NaN of the surrogate is read as −inf. `Target.evaluations` counts the θ points
at which ℓ was evaluated, the cost measure of `benchmarks/samplers.py`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..simulators.base import DTYPE
from .model import Model

__all__ = ["Target"]


class Target:
    """log π(θ) and ℓ(θ) of a `Model` for fixed observations.

    Arguments:
        model: the `Model` (surrogate or exact likelihood, and the prior).
        x: the distinct observations (n, x_dim); weights: their counts (n,) or None (all 1).
    """

    def __init__(self, model: Model, x: Tensor, weights: Tensor | None):
        self.model, self.x, self.weights = model, x, weights
        self.theta_dim = model.theta_dim
        self.evaluations = 0

    def inside(self, theta: Tensor) -> Tensor:
        """Whether each row of θ (m, d) lies in the prior's support → (m,) bool."""
        return self.model.inside(theta)

    def terms(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """(log π(θ), ℓ(θ)) for θ (m, d) → (m,) each, both −inf outside the prior's support."""
        log_prior = torch.full((len(theta),), -math.inf, dtype=DTYPE)
        log_lik = torch.full((len(theta),), -math.inf, dtype=DTYPE)
        inside = self.inside(theta)
        if inside.any():
            t = theta[inside]
            self.evaluations += len(t)
            log_prior[inside] = _finite_or_neginf(self.model.prior.log_prob(t).to(DTYPE))
            log_lik[inside] = _finite_or_neginf(self.model.log_likelihood(t, self.x, self.weights))
        return log_prior, log_lik

    def log_density(self, theta: Tensor) -> Tensor:
        """log π(θ) + ℓ(θ) for θ (m, d) → (m,)."""
        log_prior, log_lik = self.terms(theta)
        return log_prior + log_lik

    def differentiable(self, theta: Tensor) -> Tensor:
        """log π(θ) + ℓ(θ) for θ (m, d) inside the support, differentiable in θ (autograd through the
        surrogate's likelihood terms) → (m,)."""
        m, n = len(theta), len(self.x)
        self.evaluations += m
        terms = self.model._terms(self.x.repeat(m, 1), theta.repeat_interleave(n, 0)).to("cpu", DTYPE).reshape(m, n)
        if self.weights is not None:
            terms = terms * self.weights
        return self.model.prior.log_prob(theta).to(DTYPE) + terms.sum(1)


def _finite_or_neginf(value: Tensor) -> Tensor:
    return torch.nan_to_num(value, nan=-math.inf, neginf=-math.inf)
