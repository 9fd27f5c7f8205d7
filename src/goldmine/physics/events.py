"""An event source of weighted events: unweighted at any θ by morphing, mined like any simulator.

A generator that reweights writes, for every event i, its observables x_i and its weights w_b(z_i)
at a few benchmark points θ_b. With a `Morphing` between them the weight at any θ is
w_i(θ) = Σ_b α_b(θ) w_b(z_i), the cross section σ(θ) = Σ_i w_i(θ), and the events define the
distribution p(i|θ) = w_i(θ)/σ(θ) over the sample. `WeightedEvents` draws from it (resampling
with replacement: unweighting at θ) and replays it, so its gold is exact for the sample:

    log r(x, z|θ, θ_ref) = log [w_i(θ)/σ(θ)] − log [w_i(θ_ref)/σ(θ_ref)],
    t(x, z|θ) = ∇_θ w_i(θ)/w_i(θ) − ∇_θ σ(θ)/σ(θ),

z being the event (its index and its morphing coefficients F_c(z_i)). A finite sample repeats its
events; mine fewer runs than the sample holds events, or the surrogates learn the sample.

References:
    Brehmer, Kling, Espejo, Cranmer, "MadMiner: Machine learning-based inference for particle
    physics", Comput. Softw. Big Sci. 4 (2020) 3, https://arxiv.org/abs/1907.10621
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution

from ..simulators.base import DTYPE, Draws, Simulator
from .morphing import Morphing, monomials


class WeightedEvents(Simulator):
    """Weighted events with benchmark weights, seen as a simulator (see the module docstring).

    Arguments:
        x: (N, x_dim) the observables of every event.
        benchmark_weights: (N, B) the weight of every event at each benchmark of `morphing`.
        morphing: the `Morphing` between the benchmarks.
        prior: a torch distribution over θ (event shape (d,)).
        reference: θ_ref, (d,).
        name: a name for data files.

    Attributes:
        coefficients: F_c(z_i), (N, C); sigma_components: Σ_i F_c(z_i), (C,).

    Raises:
        ValueError: shapes that do not match, or non-finite weights.
    """

    block_size = 2048

    def __init__(self, x, benchmark_weights, morphing: Morphing, prior: Distribution, reference, name: str = "events"):
        self.x = torch.as_tensor(x, dtype=DTYPE)
        weights = torch.as_tensor(benchmark_weights, dtype=DTYPE)
        if self.x.ndim != 2 or weights.ndim != 2 or weights.shape[0] != self.x.shape[0]:
            raise ValueError(f"x must be (N, x_dim) and benchmark_weights (N, B) with the same N; got "
                             f"{tuple(self.x.shape)} and {tuple(weights.shape)}.")
        if weights.shape[1] != morphing.benchmarks.shape[0]:
            raise ValueError(f"benchmark_weights has {weights.shape[1]} columns but the morphing has "
                             f"{morphing.benchmarks.shape[0]} benchmarks: give one column per benchmark.")
        if not torch.isfinite(weights).all():
            raise ValueError("benchmark_weights holds NaN or infinite weights: drop those events first.")
        self.name = name
        self.morphing = morphing
        self.theta_dim, self.x_dim = morphing.theta_dim, self.x.shape[1]
        self.prior = prior
        self.reference = torch.as_tensor(reference, dtype=DTYPE).reshape(self.theta_dim)
        self.coefficients = morphing.coefficients(weights)
        self.sigma_components = self.coefficients.sum(0)

    def config(self) -> dict:
        return {"events": int(self.x.shape[0]), "benchmarks": self.morphing.benchmarks.tolist(),
                "exponents": self.morphing.exponents.tolist()}

    def event_weights(self, theta) -> Tensor:
        """w_i(θ) of every event: θ (n, d) → (n, N)."""
        theta = self.check_theta(theta)
        return monomials(theta, self.morphing.exponents) @ self.coefficients.T

    def cross_section(self, theta) -> Tensor:
        """σ(θ) = Σ_i w_i(θ): θ (n, d) → (n,), differentiable in θ."""
        theta = self.check_theta(theta)
        return monomials(theta, self.morphing.exponents) @ self.sigma_components

    def sample(self, theta, generator=None) -> Draws:
        """Events drawn with probability max(w_i(θ), 0)/Σ_j max(w_j(θ), 0), one per row of θ."""
        theta = self.check_theta(theta).detach()
        u = torch.rand(theta.shape[0], generator=generator, dtype=DTYPE)
        points, which = torch.unique(theta, dim=0, return_inverse=True)
        index = torch.empty(theta.shape[0], dtype=torch.int64)
        for k in range(points.shape[0]):  # the rows at one θ share one cumulative distribution over events
            rows = (which == k).nonzero()[:, 0]
            cdf = torch.cumsum(self.event_weights(points[k:k + 1])[0].clamp(min=0.0), 0)
            if not float(cdf[-1]) > 0:
                raise ValueError(f"θ = {points[k].tolist()} gives no event a positive morphed weight: it lies "
                                 "outside the region the events cover; restrict the prior.")
            index[rows] = torch.searchsorted(cdf, u[rows] * cdf[-1], right=True).clamp(max=len(cdf) - 1)
        return Draws(self.x[index], {"index": index.to(DTYPE), "coefficients": self.coefficients[index]})

    def joint_log_prob(self, draws: Draws, theta) -> Tensor:
        """log w_i(θ) − log σ(θ) of recorded events at θ (n, d) → (n,) (−inf or NaN where the morphed
        weight is not positive)."""
        theta = self.check_theta(theta)
        if not isinstance(draws.z, dict) or "coefficients" not in draws.z:
            raise ValueError("draws.z must hold the events' 'coefficients', as WeightedEvents.sample records them.")
        m = monomials(theta, self.morphing.exponents)
        w = (m * draws.z["coefficients"]).sum(-1)
        return torch.log(w) - torch.log(m @ self.sigma_components)

    def morphing_spread(self, theta) -> Tensor:
        """Σ_b α_b(θ)² at θ (n, d) → (n,): the factor by which morphing can amplify statistical errors."""
        return self.morphing.spread(self.check_theta(theta))
