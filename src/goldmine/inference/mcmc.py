"""Bayesian posteriors from any surrogate: MCMC on prior × likelihood, or the direct draws of npe.

`goldmine.inference.posterior(model, x_obs)` is the entry point; the chains' diagnostics (split
R-hat, ESS) live in `goldmine.inference.convergence`.

For i.i.d. observations x_1..x_n and a prior π(θ), every likelihood-type model gives

    log p(θ|x_1..x_n) = log π(θ) + ℓ(θ) + const,    ℓ(θ) = Σ_i log r̂(x_i|θ)  (or log p(x_i|θ), exact)

whose constant (the evidence, and the surrogate's log p(x_i|θ_ref)) MCMC never needs. The "metropolis"
sampler is random-walk Metropolis with many chains moved together, so that ℓ is evaluated once per step for
all chains in one batched call. The proposal θ' = θ + s·L·ε, ε ~ N(0, I), uses the covariance LLᵀ
of the draws of all chains in the last warm-up window (windows doubling in length, as in Stan) and
a scale s tuned by Robbins–Monro toward the acceptance rate that is optimal for Gaussian targets
(0.44 in 1-D down to 0.234 in many dimensions). Both are frozen after warm-up, so the kept draws
come from a fixed Metropolis kernel that leaves the posterior invariant, and the chains are
independent (which R-hat assumes). Proposals outside the prior's support have density zero: they
are rejected without evaluating the model. The chains start at `init`, or at prior draws picked
from 1000 in proportion to their posterior density (sampling-importance-resampling), so that
warm-up begins near the mass even when the posterior is much narrower than the prior.

`sampler=` chooses how the posterior is explored (every one of them batched over chains):

- "tempered" (the default): tempered sequential Monte Carlo from the prior finds and weighs every
  mode, then chains jump between the modes through a kernel-density independence proposal and take
  random-walk steps within them (`goldmine.inference.tempering`);
- "metropolis": the adaptive random walk described above, from importance-resampled prior draws;
- "slice": slice sampling along random directions from the same starts (`goldmine.inference.slice`);
- "hmc": Hamiltonian Monte Carlo through autograd on the surrogate (`goldmine.inference.hmc`);
- "importance": prior draws weighted by the likelihood and resampled, for a posterior that is not
  much narrower than the prior (`goldmine.inference.importance`).

The default was chosen by measurement on the four-mode posterior of the exact SLCP likelihood
(`benchmarks/samplers.py`, numbers in `benchmarks/README.md`): only the tempered sampler gave
every mode its share. Chains that do not cross between modes (metropolis, slice, hmc) give each mode
the share of chains that started in it, and their split R-hat warns when those shares disagree.

A surrogate that learned the posterior directly (npe, the "posterior" capability of
`goldmine.inference.surrogate`) is handed to `goldmine.inference.direct`: sampled as it is, for one
observation, nothing to converge.

References:
    Roberts, Gelman, Gilks, "Weak convergence and optimal scaling of random walk Metropolis
    algorithms", Ann. Appl. Probab. 7 (1997) 110
    Haario, Saksman, Tamminen, "An adaptive Metropolis algorithm", Bernoulli 7 (2001) 223
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .. import checks
from ..simulators.base import DTYPE, draw_prior
from .convergence import ESS_WARN, RHAT_WARN, ess, problems, split_rhat
from .direct import DirectPosterior, KeptDraws, direct_posterior, summary_rows
from .model import Model, as_model, distinct
from .surrogate import capabilities
from .hmc import hmc_chains
from .importance import importance_draws
from .slice import slice_chains
from .target import Target
from .tempering import PARTICLES, KernelProposal, jump_chains, smc

FIRST_WINDOW = 25  # warm-up steps before the first covariance update; windows then double
ADAPT_RATE = 0.1  # Robbins–Monro step on log s per step, times (acceptance − target)
# cells per dimension for the normaliser of log_prob: the chains span about 9 sd, widened to 13, so
# a cell is 0.013 sd (1-D) or 0.09 sd (2-D) wide, and the midpoint rule errs by ~h²/24 (below 1e-3)
NORMALISE_CELLS = {1: 1000, 2: 150}
NORMALISE_MARGIN = 0.25  # the grid spans the chains' range widened by this fraction on each side
CANDIDATES = 1000  # prior draws that the chains' starting points are picked from
SAMPLERS = ("tempered", "metropolis", "slice", "hmc", "importance")
DEFAULT_SAMPLER = "tempered"  # chosen by measurement: benchmarks/samplers.py, benchmarks/README.md

__all__ = ["Posterior", "posterior"]


class Posterior(KeptDraws):
    """Draws of p(θ|x_obs) and its density from MCMC chains on prior × likelihood.

    Attributes:
        kind: "mcmc" (a posterior learned directly is a `goldmine.inference.direct.DirectPosterior`).
        model: the `Model` behind it. x_obs: the observations (n, x_dim).
        sampler: the sampler that drew them ("tempered", "metropolis", "slice", "hmc", "importance").
        draws: the kept draws (chains, draws, theta_dim); importance draws are one "chain".
        rhat, ess: split R-hat and bulk ESS per dimension (theta_dim,); for importance sampling
            rhat is None and ess the effective sample size of the weights in every dimension.
        acceptance: the acceptance rate after warm-up (the mean acceptance probability for hmc,
            surrogate evaluations per step for slice, ESS / prior draws for importance).
        evaluations: θ points at which the likelihood was evaluated, warm-up included.
        normalised: whether `log_prob` is normalised (theta_dim ≤ 2).
    """

    kind = "mcmc"

    def __init__(self, model: Model, x_obs: Tensor, draws: Tensor, acceptance: float, rhat: Tensor | None,
                 ess: Tensor, sampler: str = "metropolis", evaluations: int = 0):
        self.model, self.x_obs, self.draws = model, x_obs, draws
        self.acceptance, self.rhat, self.ess = acceptance, rhat, ess
        self.sampler, self.evaluations = sampler, evaluations
        self._x, self._weights = distinct(x_obs)
        self.normalised = model.theta_dim in NORMALISE_CELLS
        self._log_z: float | None = None

    def __repr__(self) -> str:
        chains, n, d = self.draws.shape
        return f"Posterior({self.kind}, theta_dim={d}, {chains}×{n} draws, {len(self.x_obs)} observations)"

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws of the posterior → (n, theta_dim) float64.

        n of the kept draws, picked at random without replacement (so they are nearly independent
        when n is well below the ESS).

        Raises:
            ValueError: n is not a positive integer, or exceeds the number of kept draws.
        """
        n = checks.sample_count(n, "n")  # n, or sbi's sample shape (n,)
        samples = self.samples
        if n > len(samples):
            raise ValueError(f"the chains hold {len(samples)} draws, fewer than n={n}: ask for fewer, or run "
                             "posterior(...) with more chains or steps.")
        return samples[torch.randperm(len(samples), generator=generator)[:n]]

    def log_prob(self, theta) -> Tensor:
        """log p(θ|x_obs) at each row of θ (m, theta_dim) → (m,) float64; −inf outside the prior's support.

        log π(θ) + ℓ(θ), normalised for theta_dim ≤ 2 by the midpoint rule on 1000 (1-D) or 150² (2-D)
        cells over the range the chains visited (widened by a quarter on each side, cut to the prior's
        box), where all but a negligible share of the mass lies; for theta_dim > 2 it is unnormalised
        (`normalised` is False).
        """
        theta = self._check_points(theta)
        out = self._unnormalised(theta)
        if self.normalised:
            out = out - self._normaliser()
        return out

    def summary(self) -> str:
        """A readable table: mean, std and central 68% / 95% intervals per dimension, and diagnostics."""
        chains, n, d = self.draws.shape
        rate = {"slice": "evaluations per step", "importance": "ESS / prior draws"}.get(self.sampler, "acceptance")
        what = (f"importance sampling: {n} resampled draws" if self.sampler == "importance" else
                f"MCMC, {self.sampler}: {chains} chains × {n} draws")
        head = (f"Posterior ({what}, {rate} {self.acceptance:.2f}) "
                f"given {len(self.x_obs)} observation{'s' * (len(self.x_obs) != 1)}")
        lines = [head, *summary_rows(self.samples, self.rhat, self.ess, names=getattr(self.model, "theta_names", None))]
        worry = problems(self.rhat, self.ess)
        lines.append("diagnostics: " + ("; ".join(worry) if worry else
                                        f"R-hat ≤ {RHAT_WARN} and ESS ≥ {ESS_WARN} in every dimension"))
        return "\n".join(lines)

    # -- densities ---------------------------------------------------------------------------

    def _check_points(self, theta) -> Tensor:
        return checks.rows(theta, self.model.theta_dim, "theta")

    def _unnormalised(self, theta: Tensor) -> Tensor:
        return _log_density(self.model, theta, self._x, self._weights)

    def _normaliser(self) -> float:
        """log ∫ π(θ) e^ℓ(θ) dθ by the midpoint rule on cells over the chains' range (cached)."""
        if self._log_z is None:
            d = self.model.theta_dim
            samples = self.samples
            low, high = samples.amin(0), samples.amax(0)
            width = (high - low).clamp(min=1e-12)
            low, high = low - NORMALISE_MARGIN * width, high + NORMALISE_MARGIN * width
            if self.model.low is not None:
                low, high = torch.maximum(low, self.model.low), torch.minimum(high, self.model.high)
            cells = NORMALISE_CELLS[d]
            size = (high - low) / cells
            axes = [lo + (torch.arange(cells, dtype=DTYPE) + 0.5) * s for lo, s in zip(low, size)]
            centres = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)
            log_p = self._unnormalised(centres)
            self._log_z = float(torch.logsumexp(log_p, 0) + size.log().sum())
            if not math.isfinite(self._log_z):
                raise RuntimeError("the posterior density is zero (or not finite) on the whole grid over the chains' "
                                   "range, so it cannot be normalised: check the diagnostics of the chains.")
        return self._log_z


def posterior(model, x_obs, prior=None, chains: int = 32, warmup: int = 1000, steps: int = 2000, thin: int = 1,
              seed: int = 0, init=None, progress: bool = True, sampler: str = DEFAULT_SAMPLER
              ) -> Posterior | DirectPosterior:
    """The posterior p(θ|x_obs): MCMC for likelihood-type models, direct sampling for npe.

    Arguments:
        model: a `Model`, a fitted surrogate (ratio or likelihood estimator, or one that learned the
            posterior directly, such as npe), or a simulator with an exact likelihood.
        x_obs: i.i.d. observations (n, x_dim); npe conditions on exactly one (1, x_dim).
        prior: a torch distribution over θ (theta_dim,), or a simulator whose prior to take;
            defaults to the model's. npe only accepts the box it was trained with.
        chains: Markov chains run side by side (one batched model call per step for all of them).
        warmup: steps per chain that adapt the proposal and are discarded.
        steps: steps per chain after warm-up; every `thin`-th state is kept.
        thin: keep every thin-th state (steps // thin ≥ 4 draws per chain).
        seed: seeds the starting points, the proposals and the npe draws.
        init: starting points (chains, theta_dim) inside the prior; by default prior draws picked
            in proportion to their posterior density (see the module docstring), or for "tempered"
            the tempering's particles.
        progress: show a progress bar over the steps.
        sampler: "tempered" (default), "metropolis", "slice", "hmc" or "importance" (see the module
            docstring). "importance" draws chains × steps prior points and keeps chains × steps // thin
            resampled draws.

    Returns:
        A `Posterior`, or for npe a `goldmine.inference.direct.DirectPosterior` (chains, warmup, steps,
        thin, init, progress and sampler do not apply to it). A RuntimeWarning is issued when R-hat > 1.05 or the
        bulk ESS < 400 in some dimension (for "importance": the ESS of the weights < 400).

    Raises:
        ValueError: an unknown sampler, too few chains or draws, or init of the wrong shape or outside
            the prior.

    Example:
        >>> import goldmine as gm
        >>> sim = gm.simulators.Poisson()
        >>> x = sim.sample(torch.full((20, 1), 2.0), generator=torch.Generator().manual_seed(0)).x
        >>> post = posterior(sim, x, chains=16, warmup=300, steps=500, progress=False)
        >>> post.sample(100).shape, bool(post.rhat.max() < 1.05)
        (torch.Size([100, 1]), True)
    """
    if not isinstance(model, Model) and "posterior" in capabilities(model):
        return direct_posterior(model, x_obs, prior, seed)
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r} is not one of {', '.join(map(repr, SAMPLERS))}: pick one "
                         f"(the default, {DEFAULT_SAMPLER!r}, finds every mode).")
    model = _with_prior(model, prior)
    if model.prior is None:
        raise ValueError("a posterior needs the prior over θ: pass prior= (any torch distribution with log_prob and "
                         "sample, or a simulator) to posterior or to Model.")
    x = model.check_x_obs(x_obs)
    chains, steps, thin = (checks.positive_int(v, name) for v, name in ((chains, "chains"), (steps, "steps"),
                                                                          (thin, "thin")))
    warmup = checks.non_negative_int(warmup, "warmup")
    if steps // thin < 4:
        raise ValueError(f"steps // thin = {steps // thin}: keep at least 4 draws per chain (split R-hat needs "
                         "them, and a good estimate many more): raise steps or lower thin.")
    if chains < 2:
        raise ValueError(f"chains={chains}: run at least 2 chains (R-hat compares them; 16 or more is best).")
    generator = torch.Generator().manual_seed(seed)
    xw = distinct(x)
    target = Target(model, *xw)
    if sampler == "importance":
        draws, weights_ess = importance_draws(target, chains * steps, chains * steps // thin, generator)
        ess_ = torch.full((model.theta_dim,), weights_ess, dtype=DTYPE)
        if weights_ess < ESS_WARN:
            warnings.warn(f"importance sampling from the prior: the weights' effective sample size is "
                          f"{weights_ess:.0f} of {chains * steps} prior draws (want ≥ {ESS_WARN}): the posterior is "
                          "much narrower than the prior; use sampler='tempered' or draw more (chains, steps).",
                          RuntimeWarning, stacklevel=2)
        return Posterior(model, x, draws, weights_ess / (chains * steps), None, ess_, sampler, target.evaluations)
    if sampler == "tempered":
        particles, _ = smc(target, max(PARTICLES, chains), generator, progress)
        start = (_starting_points(model, chains, init, *xw, generator) if init is not None else
                 particles[torch.randperm(len(particles), generator=generator)[:chains]])
        proposal = KernelProposal(particles, generator)
        draws, acceptance = jump_chains(target, start, proposal, warmup, steps, thin, generator, progress)
    else:
        start = _starting_points(model, chains, init, *xw, generator)
        # the starting points' candidates and the random walk's proposals are evaluated outside `target`
        target.evaluations += 0 if init is not None else max(CANDIDATES, chains)
        if sampler == "metropolis":
            draws, acceptance = _metropolis(model, xw, start, warmup, steps, thin, generator, progress)
            target.evaluations += chains * (warmup + steps)  # at most: proposals outside the prior cost nothing
        elif sampler == "slice":
            draws, acceptance = slice_chains(target, start, warmup, steps, thin, generator, progress)
        else:
            draws, acceptance = hmc_chains(target, start, warmup, steps, thin, generator, progress)
    rhat, ess_ = split_rhat(draws), ess(draws)
    worry = problems(rhat, ess_)
    if worry:
        modes = ("" if sampler == "tempered" else
                 ", or, if the chains sit in different modes, use sampler='tempered'")
        warnings.warn(f"the MCMC chains may not represent the posterior ({sampler} sampler): " + "; ".join(worry) + ". Run "
                      f"longer (warmup, steps) or use more chains{modes} (plot the chains).", RuntimeWarning, stacklevel=2)
    return Posterior(model, x, draws, acceptance, rhat, ess_, sampler, target.evaluations)


# -- the sampler ------------------------------------------------------------------------------


def _metropolis(model: Model, xw: tuple[Tensor, Tensor | None], start: Tensor, warmup: int, steps: int, thin: int,
                generator: torch.Generator, progress: bool) -> tuple[Tensor, float]:
    """Adaptive random-walk Metropolis, all chains at once → kept draws (chains, steps // thin, d), acceptance."""
    x, w = xw
    chains, d = start.shape
    target = {1: 0.44, 2: 0.35, 3: 0.3}.get(d, 0.25)
    optimal = math.log(2.38 / math.sqrt(d))
    theta, log_p = start.clone(), _log_density(model, start, x, w)
    cov = _covariance(start, model)
    chol, log_s = torch.linalg.cholesky(cov), optimal
    window_start, window_end, window = 0, min(FIRST_WINDOW, warmup), FIRST_WINDOW
    history = torch.empty(warmup, chains, d, dtype=DTYPE)
    kept = torch.empty(chains, steps // thin, d, dtype=DTYPE)
    accepted = 0
    bar = tqdm(range(warmup + steps), desc="mcmc", disable=not progress, dynamic_ncols=True)
    for step in bar:
        proposal = theta + math.exp(log_s) * torch.randn(chains, d, dtype=DTYPE, generator=generator) @ chol.T
        log_u = torch.rand(chains, dtype=DTYPE, generator=generator).log()
        inside = model.inside(proposal)
        log_q = torch.full((chains,), -math.inf, dtype=DTYPE)
        if inside.any():
            log_q[inside] = _log_density(model, proposal[inside], x, w)
        # a chain still at density 0 (a start where the data are impossible) walks until it finds mass
        accept = inside & ((log_u < log_q - log_p) | (torch.isneginf(log_p) & ~torch.isnan(log_q)))
        theta = torch.where(accept[:, None], proposal, theta)
        log_p = torch.where(accept, log_q, log_p)
        rate = float(accept.double().mean())
        if step < warmup:
            history[step] = theta
            log_s += ADAPT_RATE * (rate - target)
            if step + 1 == window_end:
                # the window's second half: the chains have moved away from where it began
                half = (window_start + window_end) // 2
                chol, log_s = _update_proposal(history[half:window_end], chol, log_s, optimal, model)
                window *= 2
                # a window that would leave less than a full one after it stretches to warm-up's end
                window_start, window_end = window_end, window_end + window
                if window_end + 2 * window > warmup:
                    window_end = warmup
        else:
            accepted += int(accept.sum())
            kept_step = step - warmup + 1
            if kept_step % thin == 0 and kept_step // thin <= kept.shape[1]:
                kept[:, kept_step // thin - 1] = theta
        if progress and step % 50 == 0:
            bar.set_postfix(acceptance=f"{rate:.2f}")
    bar.close()
    stuck = torch.isneginf(log_p) | torch.isnan(log_p)
    if stuck.any():
        raise RuntimeError(
            f"{int(stuck.sum())} of {chains} chains never reached a θ where the posterior density is positive "
            "(the observations are impossible there): check x_obs against the simulator, or pass init= "
            "starting points near the maximum likelihood (gm.inference.mle).")
    return kept, accepted / (chains * steps)


def _update_proposal(window: Tensor, chol: Tensor, log_s: float, optimal: float, model: Model):
    """The covariance of the window's draws (all chains pooled); kept as it was if that is degenerate."""
    pooled = window.reshape(-1, window.shape[-1])
    cov = torch.atleast_2d(torch.cov(pooled.T))
    scale = cov.diagonal().mean()
    cov = cov + 1e-10 * scale * torch.eye(len(cov), dtype=DTYPE)  # keeps it positive definite
    new, info = torch.linalg.cholesky_ex(cov)
    if info != 0 or not torch.isfinite(new).all() or not scale > 0:
        return chol, log_s - 1.0  # no chain moved: take smaller steps with the old shape
    return new, optimal


def _covariance(start: Tensor, model: Model) -> Tensor:
    """The first proposal covariance: that of the starting points, else the prior box's (width²/12)."""
    cov = torch.atleast_2d(torch.cov(start.T)) if len(start) > 1 else torch.zeros(1, 1, dtype=DTYPE)
    scale = cov.diagonal().mean()
    cov = cov + 1e-10 * scale * torch.eye(len(cov), dtype=DTYPE)
    if torch.isfinite(cov).all() and scale > 0 and torch.linalg.cholesky_ex(cov)[1] == 0:
        return cov
    if model.low is not None:
        return torch.diag((model.high - model.low) ** 2 / 12.0)
    return torch.eye(start.shape[1], dtype=DTYPE)


def _log_density(model: Model, theta: Tensor, x: Tensor, weights: Tensor | None) -> Tensor:
    """log π(θ) + ℓ(θ) for θ (m, d) → (m,); −inf outside the prior's support, NaN read as −inf."""
    out = torch.full((len(theta),), -math.inf, dtype=DTYPE)
    inside = model.inside(theta)
    if inside.any():
        t = theta[inside]
        value = model.prior.log_prob(t).to(DTYPE) + model.log_likelihood(t, x, weights)
        out[inside] = torch.nan_to_num(value, nan=-math.inf, neginf=-math.inf)
    return out


def _starting_points(model: Model, chains: int, init, x: Tensor, weights: Tensor | None,
                     generator: torch.Generator) -> Tensor:
    """`init`, or `chains` of CANDIDATES prior draws picked without replacement in proportion to their
    posterior density (sampling-importance-resampling by Gumbel top-k): near the posterior's mass at
    once, yet spread over all of it, several modes included."""
    if init is not None:
        start = model.check_theta(init, "init")
        if len(start) != chains:
            raise ValueError(f"init has {len(start)} starting points; give one per chain: ({chains}, "
                             f"{model.theta_dim}).")
        return start.clone()
    candidates = draw_prior(model.prior, max(CANDIDATES, chains), generator)
    log_w = _log_density(model, candidates, x, weights)
    gumbel = -torch.empty_like(log_w).exponential_(generator=generator).log()
    keys = torch.where(torch.isneginf(log_w), gumbel - 1e300, log_w + gumbel)  # impossible ones last
    return candidates[keys.topk(chains).indices]




# -- validation -------------------------------------------------------------------------------


def _with_prior(model, prior) -> Model:
    if isinstance(model, Model) and prior is not None:
        return Model(model, prior=prior, simulator=model.simulator)
    return as_model(model, prior)
