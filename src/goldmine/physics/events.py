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

With nuisance parameters ν (`goldmine.physics.nuisance`) the parameters are (θ, ν), the weights
w_i(θ, ν) = w_i(θ)·exp(Σ_k a_ik ν_k + b_ik ν_k²) and σ(θ, ν) = Σ_i w_i(θ, ν); surrogates then learn
r̂(x|θ, ν), and inference profiles ν with their constraint terms (`goldmine.physics.limits`).

References:
    Brehmer, Kling, Espejo, Cranmer, "MadMiner: Machine learning-based inference for particle
    physics", Comput. Softw. Big Sci. 4 (2020) 3, https://arxiv.org/abs/1907.10621
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution

from ..simulators.base import DTYPE, Draws, Simulator, box_bounds, box_prior
from .morphing import Morphing, monomials
from .nuisance import log_factor, nuisance_coefficients

#: the box over each nuisance parameter in the prior that surrogates train on
NUISANCE_RANGE = 3.0


class WeightedEvents(Simulator):
    """Weighted events with benchmark weights, seen as a simulator (see the module docstring).

    Arguments:
        x: (N, x_dim) the observables of every event.
        benchmark_weights: (N, B) the weight of every event at each benchmark of `morphing`.
        morphing: the `Morphing` between the benchmarks.
        prior: a torch distribution over θ (event shape (d,)).
        reference: θ_ref, (d,).
        name: a name for data files.
        nuisances: `Nuisance`s; the parameters become (θ, ν) with a uniform prior on
            [−NUISANCE_RANGE, NUISANCE_RANGE] for each ν_k (what surrogates train on; inference uses
            the constraint terms) and ν_ref = 0.

    Attributes:
        coefficients: F_c(z_i), (N, C); sigma_components: Σ_i F_c(z_i), (C,).
        poi_dim: d, the parameters of interest; nuisance_names: the K nuisances' names.

    Raises:
        ValueError: shapes that do not match, or non-finite weights.
    """

    block_size = 2048

    def __init__(self, x, benchmark_weights, morphing: Morphing, prior: Distribution, reference, name: str = "events",
                 nuisances=()):
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
        self.poi_dim, self.x_dim = morphing.theta_dim, self.x.shape[1]
        self.nuisances = tuple(nuisances)
        self.nuisance_names = tuple(nu.name for nu in self.nuisances)
        self.a, self.b = nuisance_coefficients(self.nuisances, self.x.shape[0])
        k = len(self.nuisances)
        self.theta_dim = self.poi_dim + k
        reference = torch.as_tensor(reference, dtype=DTYPE).reshape(self.poi_dim)
        self.reference = torch.cat([reference, torch.zeros(k, dtype=DTYPE)])
        if k:
            low, high = box_bounds(prior)
            if low is None:
                raise ValueError("with nuisances the prior over θ must be a box (gm.simulators.box_prior): the "
                                 "nuisances' range is added to it.")
            prior = box_prior(torch.cat([low, torch.full((k,), -NUISANCE_RANGE, dtype=DTYPE)]),
                              torch.cat([high, torch.full((k,), NUISANCE_RANGE, dtype=DTYPE)]))
        self.prior = prior
        self.coefficients = morphing.coefficients(weights)
        self.sigma_components = self.coefficients.sum(0)

    def config(self) -> dict:
        return {"events": int(self.x.shape[0]), "benchmarks": self.morphing.benchmarks.tolist(),
                "exponents": self.morphing.exponents.tolist(), "nuisances": list(self.nuisance_names)}

    def _split(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        return theta[:, : self.poi_dim], theta[:, self.poi_dim:]

    def event_weights(self, theta) -> Tensor:
        """w_i(θ, ν) of every event: (θ, ν) (n, d + K) → (n, N)."""
        poi, nu = self._split(self.check_theta(theta))
        w = monomials(poi, self.morphing.exponents) @ self.coefficients.T
        return w * torch.exp(log_factor(self.a, self.b, nu)) if nu.shape[1] else w

    def cross_section(self, theta) -> Tensor:
        """σ(θ, ν) = Σ_i w_i(θ, ν): (n, d + K) → (n,), differentiable in θ (a polynomial without nuisances)."""
        theta = self.check_theta(theta)
        poi, nu = self._split(theta)
        if nu.shape[1] == 0:
            return monomials(poi, self.morphing.exponents) @ self.sigma_components
        return torch.cat([self.event_weights(theta[s:s + 256]).sum(-1) for s in range(0, theta.shape[0], 256)])

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
        poi, nu = self._split(theta)
        m = monomials(poi, self.morphing.exponents)
        log_w = torch.log((m * draws.z["coefficients"]).sum(-1))
        if nu.shape[1]:
            index = draws.z["index"].long()
            log_w = log_w + (self.a[index] * nu).sum(-1) + (self.b[index] * nu**2).sum(-1)
        if nu.shape[1] == 0:
            return log_w - torch.log(m @ self.sigma_components)
        # rows often repeat θ (one θ for many events): σ(θ, ν), a sum over all events, once per run of equal
        # rows, expanded to first order around it so that each row keeps its own gradient
        _, inverse, counts = torch.unique_consecutive(theta.detach(), dim=0, return_inverse=True, return_counts=True)
        firsts = torch.cumsum(counts, 0) - counts
        point = theta[firsts].detach().requires_grad_(True)
        with torch.enable_grad():
            sigma = self.cross_section(point)
            (grad,) = torch.autograd.grad(sigma.sum(), point)
        sigma = sigma.detach()[inverse] + ((theta - theta.detach()) * grad[inverse]).sum(-1)
        return log_w - torch.log(sigma)

    def _find(self, x: Tensor) -> Tensor:
        """The event of each row of x (n, x_dim), −1 where none has this x: (n,) int64 (the last answer is
        kept: inference asks again and again about the same observations)."""
        last = getattr(self, "_last_find", None)
        if last is not None and last[0].shape == x.shape and torch.equal(last[0], x.detach()):
            return last[1]
        n_events = self.x.shape[0]
        _, ids = torch.unique(torch.cat([self.x, x.detach()]), dim=0, return_inverse=True)
        event_of = torch.full((int(ids.max()) + 1,), -1, dtype=torch.int64)
        event_of[ids[:n_events]] = torch.arange(n_events)
        if int((event_of >= 0).sum()) < n_events:
            raise ValueError("two events have the same x, so x does not identify an event: log_prob needs "
                             "distinct rows of x (add an observable that tells them apart).")
        found = event_of[ids[n_events:]]
        self._last_find = (x.detach().clone(), found)
        return found

    def log_prob(self, x, theta) -> Tensor:
        """Exact log p(x|θ, ν) of the unweighted sample, differentiable in θ: x (n, x_dim) must be rows
        of the events' x (−inf elsewhere), θ (n, d + K) → (n,).

        Raises:
            ValueError: two events share one x (the sample's x must tell its events apart).
        """
        x, theta = self.check_x(x), self.check_theta(theta)
        found = self._find(x)
        index = found.clamp(min=0)
        draws = Draws(x, {"index": index.to(DTYPE), "coefficients": self.coefficients[index]})
        log_p = self.joint_log_prob(draws, theta)
        return torch.where(found >= 0, log_p, torch.full_like(log_p, -torch.inf))

    def log_prob_table(self, x, theta) -> Tensor:
        """`log_prob` for every pair: x (n, x_dim), θ (m, d + K) → (m, n), differentiable in θ."""
        x, theta = self.check_x(x), self.check_theta(theta)
        found = self._find(x)
        index = found.clamp(min=0)
        poi, nu = self._split(theta)
        log_w = torch.log(monomials(poi, self.morphing.exponents) @ self.coefficients[index].T)
        if nu.shape[1]:
            log_w = log_w + log_factor(self.a[index], self.b[index], nu)
        log_p = log_w - torch.log(self.cross_section(theta))[:, None]
        return torch.where(found >= 0, log_p, torch.full_like(log_p, -torch.inf))

    def morphing_spread(self, theta) -> Tensor:
        """Σ_b α_b(θ)² at θ (n, d) → (n,): the factor by which morphing can amplify statistical errors."""
        theta = self.check_theta(theta)
        return self.morphing.spread(theta[:, : self.poi_dim])
