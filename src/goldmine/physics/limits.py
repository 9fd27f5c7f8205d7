"""Rate and shape: the extended likelihood, profiling of nuisance parameters, and expected limits.

For n observed events x_1..x_n at an integrated luminosity L, parameters of interest θ and
nuisance parameters ν with standard-normal constraints,

    log L(θ, ν) = n log(L σ(θ, ν)) − L σ(θ, ν) + Σ_i w_i log r̂(x_i|θ, ν) − Σ_k ν_k²/2

up to constants (w_i = 1 for observed events; Asimov data weight each event by its expected count).
The profile likelihood ratio q(θ) = −2 [log L(θ, ν̂(θ)) − log L(θ̂, ν̂)], with ν̂(θ) maximising
log L at fixed θ, is χ²-distributed with d degrees of freedom asymptotically (Wilks), so the
68% and 95% limits are q < 2.30 and q < 5.99 in two dimensions. "Without systematics" fixes ν = 0.
The Asimov data set at θ₀ (every event weighted by L·w(z|θ₀, 0), or a large sample weighted to
L·σ(θ₀)) gives the median expected limits in one evaluation; `toy` draws pseudo-experiments
(n ~ Poisson(L σ(θ₀)) events, and auxiliary measurements a ~ N(ν₀, 1) that centre the constraints
−Σ_k (ν_k − a_k)²/2) whose limits are observed limits like those of real data (`observed`);
`toy_limits` gives the distribution of their limits (median and ±1σ, ±2σ bands) and the Neyman
coverage of the regions, the fraction of toys whose region holds θ₀.

The maximisation over ν runs either in torch (L-BFGS over every θ of the grid at once, with
gradients through the surrogate) or with iminuit's MIGRAD, one θ at a time.

References:
    Cowan, Cranmer, Gross, Vitells, "Asymptotic formulae for likelihood-based tests of new
    physics", Eur. Phys. J. C 71 (2011) 1554, https://arxiv.org/abs/1007.1727;
    Brehmer, Kling, Espejo, Cranmer, "MadMiner", Comput. Softw. Big Sci. 4 (2020) 3,
    https://arxiv.org/abs/1907.10621; James, Roos, "Minuit", Comput. Phys. Commun. 10 (1975) 343.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from scipy.stats import chi2
from torch import Tensor

from ..inference.model import Model
from ..inference.surrogate import likelihood_terms
from ..simulators.base import DTYPE, Simulator
from .events import NUISANCE_RANGE
from .nuisance import log_constraint

MINIMIZERS = ("torch", "iminuit")


@dataclass(frozen=True)
class EventData:
    """Events for the extended likelihood: x (n, x_dim) with weights (n,), and the count n_obs.

    Observed data have unit weights and count = n; an Asimov set has the expected counts. `auxiliary`
    (K,) holds the auxiliary measurements a of the nuisances, the centres of their constraints
    −Σ_k (ν_k − a_k)²/2; None means a = 0 (the nominal measurement, as for real data and Asimov sets).
    """

    x: Tensor | None
    weights: Tensor | None
    count: float
    auxiliary: Tensor | None = None


def observed(x) -> EventData:
    """Observed events x (n, x_dim), each of weight 1."""
    x = torch.as_tensor(x, dtype=DTYPE)
    return EventData(x, torch.ones(x.shape[0], dtype=DTYPE), float(x.shape[0]))


def asimov(source, theta, luminosity: float, events: int = 20_000, seed: int = 0) -> EventData:
    """The Asimov data set at the parameters θ (d + K,) for luminosity L.

    A weighted-event source (with `event_weights` and `x`) gives it exactly: every event weighted by
    L·w_i(θ). Any other simulator with `cross_section` gives `events` runs at θ weighted by L·σ(θ)/events.
    """
    theta = torch.as_tensor(theta, dtype=DTYPE).reshape(1, -1)
    if hasattr(source, "event_weights") and hasattr(source, "x"):
        w = luminosity * source.event_weights(theta)[0]
        return EventData(source.x, w, float(w.sum()))
    count = luminosity * float(source.cross_section(theta)[0])
    x = source.sample(theta.expand(events, -1), torch.Generator().manual_seed(seed)).x
    return EventData(x, torch.full((events,), count / events, dtype=DTYPE), count)


def toy(source, theta, luminosity: float, seed: int = 0) -> EventData:
    """One pseudo-experiment at the parameters θ (d + K,): n ~ Poisson(L σ(θ)) events drawn from `source`,
    each of weight 1, and for the K nuisances of the source (its `poi_dim` < d + K) auxiliary
    measurements a ~ N(ν, 1), the fluctuation of the measurements that constrain them (observed limits of
    toys give the distribution of limits that Asimov summarises)."""
    theta = torch.as_tensor(theta, dtype=DTYPE).reshape(1, -1)
    g = torch.Generator().manual_seed(seed)
    mean = luminosity * source.cross_section(theta)[0]
    n = int(torch.poisson(mean.reshape(1), generator=g)[0])
    data = EventData(None, None, 0.0) if n == 0 else observed(source.sample(theta.expand(n, -1), g).x)
    nu = theta[0, getattr(source, "poi_dim", theta.shape[1]):]
    if len(nu):
        data = EventData(data.x, data.weights, data.count, nu + torch.randn(len(nu), generator=g, dtype=DTYPE))
    return data


class ExtendedLikelihood:
    """log L(θ, ν) of the module docstring.

    Arguments:
        model: the shape part: a `goldmine.inference.Model`, a fitted surrogate or a simulator with
            an exact likelihood, over the parameters (θ, ν) (theta_dim = poi_dim + K); None for a
            rate-only likelihood.
        cross_section: σ(θ, ν): (m, poi_dim + K) → (m,) (e.g. the simulator's `cross_section`).
        luminosity: L, so that L·σ is the expected number of events.
        poi_dim: d, the number of parameters of interest; the rest are nuisance parameters.
        nuisance_dim: K, when `model` is None (rate only); otherwise read from the model.
        rate: whether to include the Poisson term (False: shape only).
        prior: the prior over (θ, ν) when `model` is a fitted surrogate (the event source's `prior`).

    Raises:
        ValueError: poi_dim larger than the parameters, or a non-positive luminosity.
    """

    def __init__(self, model, cross_section: Callable[[Tensor], Tensor], luminosity: float, poi_dim: int,
                 nuisance_dim: int | None = None, rate: bool = True, prior=None):
        if model is not None and not isinstance(model, Model):
            model = Model(model, prior=prior)
        self.model = model
        self.cross_section = cross_section
        if not luminosity > 0:
            raise ValueError(f"luminosity must be positive; got {luminosity}.")
        self.luminosity, self.poi_dim, self.rate = float(luminosity), int(poi_dim), bool(rate)
        total = model.theta_dim if model is not None else poi_dim + int(nuisance_dim or 0)
        if not 0 < self.poi_dim <= total:
            raise ValueError(f"poi_dim must be between 1 and the {total} parameters; got {poi_dim}.")
        self.nuisance_dim = total - self.poi_dim
        self._terms = likelihood_terms(model.surrogate) if model is not None else None
        source = model.source if model is not None else None
        #: whether the shape terms come without gradients (a fitted surrogate): profiles then difference them
        #: and stop at the tolerances `VALUES_ONLY_TOLERANCES` that their float32 rounding allows
        self.values_only = model is not None and not isinstance(source, Simulator)
        self._table = getattr(source, "log_prob_table", None) if isinstance(source, Simulator) else \
            getattr(getattr(model, "surrogate", None), "log_likelihood_table", None)

    def shape_terms(self, params: Tensor, x: Tensor) -> Tensor:
        """The shape terms log r̂(x_i|θ_j, ν_j) (or log p) of every pair: (m, d + K), (n, x_dim) → (m, n)."""
        m, n = params.shape[0], x.shape[0]
        step = max(1, 2**20 // n)
        if callable(self._table):
            return torch.cat([self._table(x, params[s:s + step]) for s in range(0, m, step)])
        step = max(1, 2**18 // n)
        return torch.cat([self._terms(x.repeat(len(p), 1), p.repeat_interleave(n, 0)).reshape(len(p), n)
                          for p in (params[s:s + step] for s in range(0, m, step))])

    def log_likelihood(self, params: Tensor, data: EventData) -> Tensor:
        """log L at parameter points (m, d + K) → (m,); differentiable in the parameters when the
        shape model is (simulators' exact likelihoods; surrogates give values only)."""
        return self._rate_part(params, data) + self._shape_part(params, data)

    def _rate_part(self, params: Tensor, data: EventData) -> Tensor:
        """The constraint and the Poisson term: (m, d + K) → (m,)."""
        nu = params[:, self.poi_dim:]
        out = log_constraint(nu if data.auxiliary is None else nu - data.auxiliary.to(nu.dtype))
        if self.rate:
            mu = self.luminosity * self.cross_section(params)
            out = out + data.count * torch.log(mu) - mu
        return out

    def _shape_part(self, params: Tensor, data: EventData) -> Tensor:
        """Σ_i w_i log r̂(x_i|θ, ν): (m, d + K) → (m,); zeros without a shape model or events."""
        if self._terms is None or data.x is None:
            return torch.zeros(params.shape[0], dtype=DTYPE)
        t = self.shape_terms(params, data.x).to(DTYPE)
        return torch.where(data.weights > 0, t * data.weights, torch.zeros((), dtype=DTYPE)).sum(-1)

    def gradient(self, params: Tensor, data: EventData) -> tuple[Tensor, Tensor]:
        """log L (m,) and its gradient in ν (m, K).

        Each part of log L (constraint and rate; shape) is differentiated by autograd where it carries a
        gradient, and by forward differences with step `FD_STEP` where it gives values only (a fitted
        surrogate evaluates its network without a graph, in float32): K more evaluations of that part.
        The parts are summed, so a part without a graph is never dropped from the gradient while the line
        search sees its values.
        """
        params = params.detach().requires_grad_(True)
        value = torch.zeros(params.shape[0], dtype=DTYPE)
        grad = torch.zeros(params.shape[0], self.nuisance_dim, dtype=DTYPE)
        for part in (self._rate_part, self._shape_part):
            with torch.enable_grad():
                v = part(params, data)
            if v.requires_grad:
                (g,) = torch.autograd.grad(v.sum(), params)
                grad = grad + g[:, self.poi_dim:]
            else:
                grad = grad + _forward_differences(part, params.detach(), v.detach(), data, self.poi_dim)
            value = value + v.detach()
        return value, grad


#: the step of finite differences in ν where a part of log L gives values only. Surrogates evaluate in
#: float32 (relative rounding ~1e-7 per event), so a step of 1e-5 leaves a gradient of rounding noise; at
#: 1e-3 the truncation error (h/2 times the curvature, ν being of order 1) moves ν̂ by about h/2, which
#: changes log L(θ, ν̂) only at second order.
FD_STEP = 1e-3


def _forward_differences(part, params: Tensor, value: Tensor, data: EventData, poi_dim: int) -> Tensor:
    """∂ part/∂ν_k by forward differences from its `value` at `params`: (m, d + K) → (m, K)."""
    grads = []
    with torch.no_grad():
        for k in range(poi_dim, params.shape[1]):
            up = params.clone()
            up[:, k] += FD_STEP
            grads.append((part(up, data) - value) / FD_STEP)
    return torch.stack(grads, -1) if grads else torch.zeros(params.shape[0], 0, dtype=DTYPE)


@dataclass
class Profile:
    """The profile likelihood on a grid of θ.

    Attributes:
        grid: (m, d) the points of interest; log_l: (m,) log L(θ, ν̂(θ)); nuisances: (m, K) ν̂(θ);
        q: (m,) −2 [log L(θ, ν̂(θ)) − max over the grid].
    """

    grid: Tensor
    log_l: Tensor
    nuisances: Tensor
    q: Tensor = field(init=False)

    def __post_init__(self):
        self.q = -2.0 * (self.log_l - self.log_l.max())


def profile(likelihood: ExtendedLikelihood, grid, data: EventData, minimizer: str = "torch",
            systematics: bool = True, bound: float = NUISANCE_RANGE) -> Profile:
    """log L(θ, ν̂(θ)) at every θ of the grid (m, d): ν maximised within [−bound, bound] (the range
    surrogates were trained on, `goldmine.physics.events.NUISANCE_RANGE`) or fixed at 0 (no systematics)."""
    if minimizer not in MINIMIZERS:
        raise ValueError(f"minimizer must be one of {MINIMIZERS}; got {minimizer!r}.")
    grid = torch.as_tensor(grid, dtype=DTYPE).reshape(-1, likelihood.poi_dim)
    k = likelihood.nuisance_dim
    nu = torch.zeros(grid.shape[0], k, dtype=DTYPE)
    if k and systematics:
        nu = _torch_profile(likelihood, grid, data, bound) if minimizer == "torch" else \
            _minuit_profile(likelihood, grid, data, bound)
    with torch.no_grad():
        log_l = likelihood.log_likelihood(torch.cat([grid, nu], -1), data)
    return Profile(grid, log_l, nu)


#: L-BFGS's tolerances on the gradient in ν and on the change of Σ_θ −log L per step when the shape terms
#: give values only: their float32 rounding (~1e-5 in a sum over thousands of events) never lets the
#: exact tolerances be met, so L-BFGS would run to its iteration limit; a last step that changes the sum by
#: less than 1e-4 changed no point's q by more than 2e-4
VALUES_ONLY_TOLERANCES = (1e-3, 1e-4)


def _torch_profile(likelihood: ExtendedLikelihood, grid: Tensor, data: EventData, bound: float) -> Tensor:
    """L-BFGS over u with ν = bound·tanh(u), every θ of the grid at once (the objective is a sum of
    independent terms)."""
    u = torch.zeros(grid.shape[0], likelihood.nuisance_dim, dtype=DTYPE, requires_grad=True)
    grad_tol, change_tol = VALUES_ONLY_TOLERANCES if likelihood.values_only else (1e-7, 1e-12)
    opt = torch.optim.LBFGS([u], lr=1.0, max_iter=100, tolerance_grad=grad_tol, tolerance_change=change_tol,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        t = torch.tanh(u.detach())
        value, grad = likelihood.gradient(torch.cat([grid, bound * t], -1), data)
        u.grad = -grad * bound * (1.0 - t**2)
        return -value.sum()

    for _ in range(2):  # a restart clears a history that stalled
        opt.step(closure)
    return bound * torch.tanh(u.detach())


def _minuit_profile(likelihood: ExtendedLikelihood, grid: Tensor, data: EventData, bound: float) -> Tensor:
    try:
        from iminuit import Minuit
    except ImportError as error:
        raise ImportError("profiling with iminuit needs it: pip install 'goldmine[physics]'") from error
    out = torch.empty(grid.shape[0], likelihood.nuisance_dim, dtype=DTYPE)
    for j in range(grid.shape[0]):
        point = grid[j:j + 1]

        def params(nu, point=point):
            return torch.cat([point, torch.as_tensor(np.asarray(nu), dtype=DTYPE).reshape(1, -1)], -1)

        def nll(nu):
            with torch.no_grad():
                return float(-likelihood.log_likelihood(params(nu), data)[0])

        def grad(nu):
            return (-likelihood.gradient(params(nu), data)[1][0]).numpy()

        m = Minuit(nll, np.zeros(likelihood.nuisance_dim), grad=grad)
        m.errordef = Minuit.LIKELIHOOD
        m.limits = [(-bound, bound)] * likelihood.nuisance_dim
        m.tol = 1e-6
        m.migrad()
        out[j] = torch.as_tensor(np.asarray(m.values), dtype=DTYPE)
    return out


@dataclass
class Limits:
    """Limits on θ from a profile: for each level, the grid points inside (q < χ²_d quantile) and the area.

    Attributes:
        profile: the `Profile`; levels: the confidence levels; inside: level → (m,) bool;
        areas: level → the region's area (volume in d dimensions) on the grid's cells.
    """

    profile: Profile
    levels: tuple
    inside: dict
    areas: dict

    def contains(self, theta, level: float = 0.95) -> bool:
        """Whether the grid point nearest θ lies inside the region of `level`."""
        theta = torch.as_tensor(theta, dtype=DTYPE).reshape(1, -1)
        nearest = int(((self.profile.grid - theta) ** 2).sum(-1).argmin())
        return bool(self.inside[level][nearest])


def wilks_limits(prof: Profile, levels=(0.68, 0.95)) -> Limits:
    """The Wilks regions q(θ) < χ²_d(level) of a profile on an even grid, with their areas."""
    grid = prof.grid
    d = grid.shape[1]
    spacing = [float(torch.unique(grid[:, k]).diff().min()) if len(torch.unique(grid[:, k])) > 1 else 1.0
               for k in range(d)]
    cell = float(np.prod(spacing))
    inside = {lv: prof.q < float(chi2.ppf(lv, d)) for lv in levels}
    return Limits(prof, tuple(levels), inside, {lv: cell * int(inside[lv].sum()) for lv in levels})


def expected_limits(likelihood: ExtendedLikelihood, grid, data: EventData, levels=(0.68, 0.95),
                    minimizer: str = "torch", systematics: bool = True) -> Limits:
    """The limits of `data` (typically `asimov(...)`: the median expected limits) on the grid."""
    return wilks_limits(profile(likelihood, grid, data, minimizer, systematics), levels)


@dataclass
class ToyLimits:
    """Limits of pseudo-experiments: the distribution of the limits that Asimov data summarise, and
    the coverage of the regions.

    Attributes:
        theta: (d + K,) the parameters the toys were drawn at; levels: the confidence levels.
        areas: level → (T,) the area of each toy's region; covered: level → (T,) whether it holds the
        grid point nearest θ's parameters of interest; counts: (T,) the toys' numbers of events.
        also: the `Profile`s of other data sets profiled from the toys' table (`pooled_toy_limits(also=...)`).
    """

    theta: Tensor
    levels: tuple
    areas: dict
    covered: dict
    counts: Tensor
    also: list = field(default_factory=list)

    def bands(self, level: float = 0.95) -> dict:
        """The median and the ±1σ, ±2σ quantiles (2.3%, 15.9%, 84.1%, 97.7%) of the toys' areas."""
        a = self.areas[level].to(DTYPE)
        q = torch.quantile(a, torch.tensor(BAND_QUANTILES, dtype=DTYPE))
        return dict(zip(("-2σ", "-1σ", "median", "+1σ", "+2σ"), q.tolist()))

    def coverage(self, level: float = 0.95) -> tuple[float, float]:
        """The fraction of toys whose region covers θ, and its binomial standard error."""
        c = self.covered[level].to(DTYPE)
        p = float(c.mean())
        return p, (p * (1.0 - p) / len(c)) ** 0.5 if len(c) else float("nan")


#: the normal quantiles of the ±2σ, ±1σ bands and the median
BAND_QUANTILES = (0.02275, 0.15866, 0.5, 0.84134, 0.97725)


def toy_limits(likelihood: ExtendedLikelihood, grid, source, theta, toys: int, seed: int = 0,
               levels=(0.68, 0.95), minimizer: str = "torch", systematics: bool = True,
               progress: bool = True) -> ToyLimits:
    """The Wilks limits of `toys` pseudo-experiments drawn at θ (d + K,) (`toy`, seeds seed, seed + 1, ...).

    Their areas give the expected limits with their ±1σ and ±2σ bands (`ToyLimits.bands`), beside
    the median of Asimov data; the fraction of regions that hold θ is their Neyman coverage
    (`ToyLimits.coverage`), which should match the level where Wilks' theorem holds. The regions are
    those of `wilks_limits` on the grid: q is measured from the grid's best point, and a region holds
    θ when it holds the grid point nearest θ.
    """
    from tqdm.auto import tqdm

    theta = torch.as_tensor(theta, dtype=DTYPE).reshape(-1)
    grid = torch.as_tensor(grid, dtype=DTYPE).reshape(-1, likelihood.poi_dim)

    def profiled():
        for t in tqdm(range(toys), desc="toys", disable=not progress, dynamic_ncols=True):
            data = toy(source, theta, likelihood.luminosity, seed=seed + t)
            yield data, profile(likelihood, grid, data, minimizer, systematics)

    return limits_of_toys(theta, grid, levels, profiled())


def limits_of_toys(theta: Tensor, grid: Tensor, levels, profiled) -> ToyLimits:
    """`ToyLimits` from (toy data, its `Profile` on `grid`) pairs: each toy's Wilks areas at `levels`, and whether
    its regions hold the grid point nearest θ (d + K,)."""
    nearest = int(((grid - theta[: grid.shape[1]]) ** 2).sum(-1).argmin())
    areas = {lv: [] for lv in levels}
    covered = {lv: [] for lv in levels}
    counts = []
    for data, found in profiled:
        found = wilks_limits(found, levels)
        counts.append(data.count)
        for lv in levels:
            areas[lv].append(found.areas[lv])
            covered[lv].append(bool(found.inside[lv][nearest]))
    return ToyLimits(theta, tuple(levels), {lv: torch.tensor(areas[lv], dtype=DTYPE) for lv in levels},
                     {lv: torch.tensor(covered[lv]) for lv in levels}, torch.tensor(counts, dtype=DTYPE))
