"""Approximate Bayesian computation: rejection ABC and population Monte Carlo ABC (ABC-SMC).

ABC needs nothing but the simulator. The observation is a set X_obs of n i.i.d. runs; a proposed θ
simulates a toy set X_θ of n runs, and θ is kept when the toy set lies within ε of the observed one:

    p_ε(θ|X_obs) ∝ p(θ) · P(ρ(X_θ, X_obs) ≤ ε),

which tends to the posterior p(θ|X_obs) as ε → 0 when ρ = 0 only for sets with the same sufficient
statistic. The default distance ρ is the Wasserstein-1 distance between the sets' empirical
marginals, per x component in units of its prior-predictive standard deviation (measured on the
first batch of sets simulated from the prior), averaged over the components:

    ρ(X, Y) = (1/d_x) Σ_j (1/n) Σ_i |x_(i)j − y_(i)j| / s_j,    x_(i)j the i-th smallest of component j.

For one-dimensional x the sorted set (the order statistic) is sufficient for i.i.d. data, so ρ → 0
loses nothing; for several components it matches the marginals but not their dependence (pass a
`distance` of your own summaries when that matters). With n = 1 it is the standardised L1 distance.

`rejection_abc` draws θ from the prior and keeps the closest fraction `quantile` (or all within
`epsilon`). `smc_abc` (population Monte Carlo, Beaumont et al. 2009) starts from rejection ABC
with that quantile, then in every generation t sets ε_t to the `quantile` of the current
particles' distances (the adaptive schedule of Lenormand et al. 2013; tied distances step to the
next smaller one) and proposes θ = θ_j + η, θ_j drawn by weight, η ~ N(0, 2Σ) with Σ the
weighted covariance of the particles, until `n_particles` are within ε_t; each gets the weight

    w_i ∝ p(θ_i) / Σ_j w_j^{t−1} N(θ_i; θ_j^{t−1}, 2Σ).

It stops after `generations` generations, when the simulator-run `budget` is spent, or when the
acceptance rate falls below `min_acceptance`; an unfinished generation is discarded.

References:
    Beaumont, Cornuet, Marin, Robert, "Adaptive approximate Bayesian computation", Biometrika 96
    (2009) 983, https://arxiv.org/abs/0805.2256
    Lenormand, Jabot, Deffuant, "Adaptive approximate Bayesian computation for complex models",
    Computational Statistics 28 (2013) 2777, https://arxiv.org/abs/1111.1308
    Sisson, Fan, Beaumont, "Overview of approximate Bayesian computation",
    https://arxiv.org/abs/1802.09720
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .. import checks
from ..simulators.base import DTYPE, Simulator, draw_prior, seed_from
from ..simulators.priors import check_prior

#: simulator runs per call of simulator.sample (θ proposals × observations)
ROWS_PER_CALL = 1 << 16
#: the default distance's spreads are measured on at least this many prior-predictive sets
PILOT_SETS = 64

Distance = Callable[[Tensor, Tensor], Tensor]


@dataclass
class ABCResult:
    """The outcome of an ABC run: weighted draws of the approximate posterior.

    Attributes:
        samples: θ (m, d). weights: (m,), normalised to sum 1 (uniform for rejection ABC).
        distances: ρ(X_θ, X_obs) of each sample (m,). epsilon: the final tolerance.
        simulator_calls: simulator runs in total (θ proposals × observations per set).
        proposals: θ proposals simulated in total.
        history: one dict per generation: generation, epsilon, proposals, simulator_calls,
            accepted, acceptance, ess, complete.
    """

    samples: Tensor
    weights: Tensor
    epsilon: float
    simulator_calls: int
    proposals: int
    distances: Tensor = field(repr=False)
    history: list = field(default_factory=list, repr=False)

    @property
    def ess(self) -> float:
        """The effective sample size 1 / Σ w²."""
        return float(1.0 / (self.weights**2).sum())

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws (n, d) by resampling the samples with replacement according to their weights."""
        n = checks.sample_count(n, "n")  # n, or sbi's sample shape (n,)
        return self.samples[torch.multinomial(self.weights, n, replacement=True, generator=generator)]


def rejection_abc(simulator: Simulator, x_obs, distance: Distance | None = None, n_samples: int = 1000,
                  quantile: float | None = 0.01, epsilon: float | None = None, prior=None, seed: int = 0,
                  batch: int | None = None, budget: int | None = None, progress: bool = True) -> ABCResult:
    """Rejection ABC: θ from the prior, kept when its toy set is among the closest to x_obs.

    Arguments:
        simulator: any goldmine simulator, black boxes included.
        x_obs: the observed set of n i.i.d. runs (n, x_dim) (or (n,) for x_dim = 1).
        distance: ρ(x_sets (k, n, x_dim), x_obs (n, x_dim)) → (k,); the module's default if None.
        n_samples: accepted θ.
        quantile: keep the n_samples closest of n_samples / quantile prior draws (ε is then the
            largest accepted distance). Ignored when `epsilon` is given.
        epsilon: keep every θ within ε, drawing until n_samples are accepted.
        prior: a torch distribution over θ; the simulator's prior by default.
        seed: seeds every draw.
        batch: θ proposals per simulator call (by default about 65536 runs per call).
        budget: the most simulator runs to spend: with `quantile`, a ValueError up front when
            n_samples / quantile proposals need more; with `epsilon`, a ValueError when they do
            not yield n_samples (by default 10⁴ · n_samples proposals).
        progress: show a progress bar.

    Returns:
        An `ABCResult` with uniform weights.

    Example:
        >>> import goldmine as gm
        >>> sim = gm.simulators.Poisson()
        >>> x = sim.sample(torch.full((5, 1), 2.0), generator=torch.Generator().manual_seed(1)).x
        >>> out = rejection_abc(sim, x, n_samples=100, quantile=0.05, progress=False)
        >>> out.samples.shape, out.simulator_calls
        (torch.Size([100, 1]), 10000)
    """
    run = _Runner(simulator, x_obs, distance, prior, seed, batch)
    n_samples = checks.positive_int(n_samples, "n_samples")
    if epsilon is None:
        quantile = checks.fraction(quantile, "quantile")
        total = math.ceil(n_samples / quantile)
        if budget is not None and total * run.n > budget:
            raise ValueError(f"budget={budget} simulator runs is less than the {total} proposals × {run.n} "
                             f"observations = {total * run.n} runs that quantile={quantile} needs.")
        bar = tqdm(total=total, desc="rejection abc", unit="θ", disable=not progress, dynamic_ncols=True)
        theta, d = torch.empty(0, run.sim.theta_dim, dtype=DTYPE), torch.empty(0, dtype=DTYPE)
        for start in range(0, total, run.chunk):  # streamed: only the closest n_samples are kept
            new = run.prior_sample(min(run.chunk, total - start))
            theta, d = torch.cat([theta, new]), torch.cat([d, run.distances(new)])
            d, keep = torch.topk(d, min(n_samples, len(d)), largest=False)
            theta = theta[keep]
            bar.update(len(new))
        bar.close()
        eps, accepted = float(d.max()), n_samples
    else:
        eps = checks.positive_float(epsilon, "epsilon")
        limit = 10_000 * n_samples if budget is None else checks.positive_int(budget, "budget") // run.n
        if limit < 1:
            raise ValueError(f"budget={budget} simulator runs cannot simulate one set of {run.n} observations.")
        bar = tqdm(total=n_samples, desc="rejection abc", unit="acc", disable=not progress, dynamic_ncols=True)
        thetas, ds, total = [], [], 0
        while sum(map(len, ds)) < n_samples:
            if total >= limit:
                raise ValueError(
                    f"only {sum(map(len, ds))} of n_samples={n_samples} θ came within epsilon={eps:g} in "
                    f"{total} proposals ({total * run.n} simulator runs): raise epsilon or the budget, or "
                    "use quantile= instead.")
            k = min(run.chunk, limit - total)
            theta = run.prior_sample(k)
            d = run.distances(theta)
            total += k
            thetas.append(theta[d <= eps])
            ds.append(d[d <= eps])
            bar.update(min(int((d <= eps).sum()), n_samples - bar.n))
        bar.close()
        accepted = sum(map(len, ds))
        theta, d = torch.cat(thetas)[:n_samples], torch.cat(ds)[:n_samples]
    weights = torch.full((n_samples,), 1.0 / n_samples, dtype=DTYPE)
    entry = _entry(0, eps, total, run.n, accepted, float(n_samples), True)
    return ABCResult(theta, weights, eps, total * run.n, total, d, [entry])


def smc_abc(simulator: Simulator, x_obs, distance: Distance | None = None, n_particles: int = 1000,
            generations: int | None = 8, budget: int | None = None, quantile: float = 0.5, prior=None,
            seed: int = 0, batch: int | None = None, min_acceptance: float = 1e-3,
            progress: bool = True) -> ABCResult:
    """Population Monte Carlo ABC with an adaptive tolerance schedule (see the module docstring).

    Arguments:
        simulator, x_obs, distance, prior, seed, batch: as in `rejection_abc`.
        n_particles: particles per generation.
        generations: the most generations, the rejection step included; None: until the budget
            is spent.
        budget: the most simulator runs (θ proposals × observations per set) to spend.
        quantile: generation 0 keeps this fraction of its prior draws; every later ε is this
            quantile of the previous generation's distances.
        min_acceptance: stop when a generation's acceptance rate falls below this.
        progress: show a progress bar over generations.

    Returns:
        An `ABCResult` of the last complete generation; `history` holds every generation.
    """
    run = _Runner(simulator, x_obs, distance, prior, seed, batch)
    n_particles = checks.positive_int(n_particles, "n_particles")
    quantile = checks.fraction(quantile, "quantile")
    min_acceptance = checks.fraction(min_acceptance, "min_acceptance")
    if generations is None and budget is None:
        raise ValueError("give generations, budget or both: otherwise smc_abc would never stop.")
    generations = math.inf if generations is None else checks.positive_int(generations, "generations")
    budget = math.inf if budget is None else checks.positive_int(budget, "budget")
    affordable = budget if math.isinf(budget) else budget // run.n  # proposals
    first = math.ceil(n_particles / quantile)
    if first > affordable:
        raise ValueError(f"budget={budget} simulator runs cannot pay for generation 0: {first} prior proposals "
                         f"(n_particles / quantile) × {run.n} observations = {first * run.n} runs. Raise the "
                         "budget or lower n_particles.")
    bar = tqdm(desc="smc abc", unit="gen", disable=not progress, dynamic_ncols=True,
               total=None if math.isinf(generations) else generations)

    theta = run.prior_sample(first)
    d = run.distances(theta)
    d, keep = torch.topk(d, n_particles, largest=False)
    theta, eps = theta[keep], float(d.max())
    log_w = torch.full((n_particles,), -math.log(n_particles), dtype=DTYPE)
    spent = first
    history = [_entry(0, eps, first, run.n, n_particles, float(n_particles), True)]
    bar.update(1)
    bar.set_postfix(eps=f"{eps:.3g}", runs=spent * run.n)

    while len(history) < generations:
        eps_next = float(torch.quantile(d, quantile))
        if eps_next >= eps:  # tied (discrete) distances: step to the next smaller one
            below = d[d < eps]
            if len(below) == 0:
                break
            eps_next = float(below.max())
        kernel = _kernel(theta, log_w.exp())
        accepted_theta, accepted_d, proposals = [], [], 0
        rate, cap = history[-1]["acceptance"], math.ceil(n_particles / min_acceptance)
        while sum(map(len, accepted_d)) < n_particles:
            left = min(affordable - spent, cap) - proposals
            if left <= 0:
                break
            missing = n_particles - sum(map(len, accepted_d))
            # the proposals expected to fill the population, grown at most fourfold per batch
            k = int(min(left, math.ceil(missing / rate) + 16, max(4 * proposals, 1024)))
            new = run.perturb(theta, log_w, kernel, k)
            dist = run.distances(new)
            proposals += k
            ok = dist <= eps_next
            accepted_theta.append(new[ok])
            accepted_d.append(dist[ok])
            rate = max(sum(map(len, accepted_d)), 1) / proposals  # ≥ 1 / proposals: never zero
        spent += proposals
        accepted = sum(map(len, accepted_d))
        done = accepted >= n_particles
        entry = _entry(len(history), eps_next, proposals, run.n, accepted, math.nan, done)
        if not done:
            if proposals:
                history.append(entry)
            break
        new_theta, new_d = torch.cat(accepted_theta)[:n_particles], torch.cat(accepted_d)[:n_particles]
        log_w = run.log_weights(new_theta, theta, log_w, kernel)
        theta, d, eps = new_theta, new_d, eps_next
        entry["ess"] = float(1.0 / (log_w.exp() ** 2).sum())
        history.append(entry)
        bar.update(1)
        bar.set_postfix(eps=f"{eps:.3g}", acc=f"{entry['acceptance']:.3f}", runs=spent * run.n)
    bar.close()
    return ABCResult(theta, log_w.exp(), eps, spent * run.n, spent, d, history)


class _Runner:
    """The validated inputs and the batched simulations of one ABC run."""

    def __init__(self, simulator: Simulator, x_obs, distance: Distance | None, prior, seed: int, batch: int | None):
        if not isinstance(simulator, Simulator):
            raise TypeError(f"simulator must be a goldmine Simulator (wrap a function in "
                            f"gm.simulators.BlackBoxSimulator); got {type(simulator).__name__}.")
        self.sim = simulator
        self.x_obs = _check_x_obs(simulator, x_obs)
        self.n = len(self.x_obs)
        self.prior = check_prior(simulator.prior if prior is None else prior)
        if tuple(self.prior.event_shape) != (simulator.theta_dim,):
            raise ValueError(f"the prior has event shape {tuple(self.prior.event_shape)}, but {simulator.name}'s θ "
                             f"has dimension {simulator.theta_dim}: pass a prior over ({simulator.theta_dim},).")
        if distance is not None and not callable(distance):
            raise TypeError("distance must be a function (x_sets (k, n, x_dim), x_obs (n, x_dim)) -> (k,).")
        self.distance = distance
        self.chunk = max(PILOT_SETS, ROWS_PER_CALL // self.n) if batch is None else checks.positive_int(batch, "batch")
        self.generator = torch.Generator().manual_seed(seed)

    def prior_sample(self, k: int) -> Tensor:
        return draw_prior(self.prior, k, seed=seed_from(self.generator))

    def simulate(self, theta: Tensor) -> Tensor:
        """One batched simulator call: θ (k, d) → toy sets (k, n, x_dim)."""
        x = self.sim.sample(theta.repeat_interleave(self.n, 0), generator=self.generator).x
        return torch.as_tensor(x, dtype=DTYPE).reshape(len(theta), self.n, self.sim.x_dim)

    def distances(self, theta: Tensor) -> Tensor:
        """ρ(X_θ, X_obs) for every row of θ (k, d) → (k,), simulated `chunk` proposals at a time."""
        out = []
        for start in range(0, len(theta), self.chunk):
            sets = self.simulate(theta[start:start + self.chunk])
            if self.distance is None:
                self.distance = default_distance(self.x_obs, sets)
            d = torch.as_tensor(self.distance(sets, self.x_obs), dtype=DTYPE)
            if d.shape != (len(sets),) or torch.isnan(d).any():
                raise ValueError(f"distance returned shape {tuple(d.shape)} (or NaN) for {len(sets)} toy sets; it "
                                 "must return (k,) non-NaN distances for x_sets (k, n, x_dim).")
            out.append(d)
        return torch.cat(out)

    def inside(self, theta: Tensor) -> Tensor:
        return self.prior.support.check(theta).reshape(len(theta), -1).all(-1)

    def perturb(self, theta: Tensor, log_w: Tensor, kernel: Tensor, k: int) -> Tensor:
        """k proposals θ_j + η inside the prior's support, θ_j drawn by weight, η ~ N(0, 2Σ)."""
        out, have = [], 0
        while have < k:
            parents = torch.multinomial(log_w.exp(), k, replacement=True, generator=self.generator)
            noise = torch.randn(k, theta.shape[1], dtype=DTYPE, generator=self.generator)
            new = theta[parents] + noise @ kernel.T
            new = new[self.inside(new)]
            out.append(new)
            have += len(new)
        return torch.cat(out)[:k]

    def log_weights(self, new: Tensor, old: Tensor, log_w: Tensor, kernel: Tensor) -> Tensor:
        """log of p(θ_i) / Σ_j w_j N(θ_i; θ_j, 2Σ), normalised; the kernel's constant cancels."""
        # Mahalanobis distances under 2Σ = L Lᵀ: whiten once, then pairwise squared distances
        white_new = torch.linalg.solve_triangular(kernel, new.T, upper=False).T
        white_old = torch.linalg.solve_triangular(kernel, old.T, upper=False).T
        mixture = torch.cat([torch.logsumexp(log_w - 0.5 * torch.cdist(rows, white_old) ** 2, dim=1)
                             for rows in white_new.split(max(1, (1 << 22) // len(old)))])
        log_w = self.prior.log_prob(new).to(DTYPE) - mixture
        return log_w - torch.logsumexp(log_w, 0)


def default_distance(x_obs: Tensor, pilot: Tensor) -> Distance:
    """The default distance: the Wasserstein-1 distance between the two sets' marginals, per x
    component in units of its prior-predictive standard deviation, averaged over the components.

    Arguments:
        x_obs: the observed set (n, x_dim).
        pilot: toy sets simulated at prior draws (k, n, x_dim); their spread sets the units.

    Returns:
        ρ(x_sets (k, n, x_dim), x_obs (n, x_dim)) → (k,).
    """
    scale = _nonzero(pilot.reshape(-1, pilot.shape[-1]).std(0))
    observed = x_obs.sort(0).values

    def wasserstein(sets: Tensor, obs: Tensor) -> Tensor:
        target = observed if obs is x_obs else obs.sort(0).values
        return ((sets.sort(1).values - target) / scale).abs().mean((1, 2))

    return wasserstein


def _entry(generation: int, epsilon: float, proposals: int, n: int, accepted: int, ess: float, complete: bool) -> dict:
    """One generation's line of the history."""
    return {"generation": generation, "epsilon": epsilon, "proposals": proposals, "simulator_calls": proposals * n,
            "accepted": accepted, "acceptance": accepted / max(proposals, 1), "ess": ess, "complete": complete}


def _nonzero(scale: Tensor) -> Tensor:
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def _kernel(theta: Tensor, w: Tensor) -> Tensor:
    """The Cholesky factor of 2Σ, Σ the weighted covariance of the particles, kept positive definite."""
    mean = w @ theta
    cov = 2.0 * ((theta - mean).T * w) @ (theta - mean)
    jitter = 1e-12 * cov.diagonal().mean().clamp(min=1e-300) + 1e-300
    return torch.linalg.cholesky(cov + jitter * torch.eye(theta.shape[1], dtype=DTYPE))


def _check_x_obs(sim: Simulator, x_obs) -> Tensor:
    try:
        x = sim.check_x(torch.as_tensor(x_obs), "x_obs").detach()
    except (TypeError, RuntimeError) as err:
        raise ValueError(f"x_obs must be an array of shape (n, {sim.x_dim}): {err}") from None
    if len(x) == 0:
        raise ValueError(f"x_obs is empty: pass the observed set, shape (n, {sim.x_dim}) with n ≥ 1.")
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).any(1).nonzero()[:, 0][:5].tolist()
        raise ValueError(f"x_obs holds NaN or infinite values (rows {bad}): drop or fix those observations.")
    return x


__all__ = ["ABCResult", "default_distance", "rejection_abc", "smc_abc"]
