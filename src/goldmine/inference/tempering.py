"""Sampling a posterior with several modes: tempered sequential Monte Carlo, then chains that jump between modes.

Random-walk chains that start in one mode stay there: their kept draws give each mode the share of
chains that happened to start in it. This sampler finds the modes and weighs them first, then lets
every chain visit all of them.

1. **Tempering** (sequential Monte Carlo, Del Moral, Doucet, Jasra 2006). N particles drawn from the
   prior move through the targets π_β(θ) ∝ π(θ)·exp(β·ℓ(θ)), β from 0 to 1. Each stage picks the
   next β by bisection so that the effective sample size of the incremental weights exp((β' − β)·ℓ)
   is half the particles (Jasra et al. 2011), resamples (systematic), and moves every particle with
   Metropolis–Hastings kernels that leave π_β' invariant until 95% of them have moved. At β = 1 the
   particles are (approximately) posterior draws in which every mode holds its share of the mass.
2. **Kernel proposal**. From the particles, a mixture of Gaussians q(θ) = (1/M) Σ_m N(θ; μ_m, Σ_m):
   M centres drawn from the particles, each with the covariance of its k nearest particles
   (a local, adaptive kernel density estimate). Used as an independence proposal,
   α = min(1, p(θ')q(θ) / (p(θ)q(θ'))), it jumps between modes wherever the particles saw mass.
3. **Chains**. `chains` of the particles start Markov chains whose kernel is, at each step, the
   independence move with probability ½ and otherwise a random walk with the particles' mean local
   covariance (its scale tuned toward acceptance 0.25 during warm-up, then frozen). Both moves
   leave the posterior invariant, so the mixture does, and since the chains cross between modes
   their split R-hat and ESS mean what they mean for a unimodal posterior.

References:
    Del Moral, Doucet, Jasra, "Sequential Monte Carlo samplers", JRSS B 68 (2006) 411
    Jasra, Stephens, Doucet, Tsagaris, "Inference for Lévy-driven stochastic volatility models via
    adaptive sequential Monte Carlo", Scand. J. Stat. 38 (2011) 1
    Tierney, "Markov chains for exploring posterior distributions", Ann. Stat. 22 (1994) 1701
    (independence and mixture kernels)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..simulators.base import DTYPE, draw_prior
from .target import Target

PARTICLES = 1000  # particles of the tempering stage (at least the number of chains)
ESS_FRACTION = 0.5  # each tempering stage keeps this effective share of the particles
MOVED = 0.95  # a stage's moves go on until this share of the particles has moved at least once
MAX_MOVES = 30  # Metropolis–Hastings sweeps per stage at most
MAX_STAGES = 500  # tempering stages at most (β rises by at least 1/MAX_STAGES... unless ℓ is extreme)
CENTRES = 256  # mixture components of the kernel proposal
JUMP = 0.5  # the probability of an independence move at each step of the chains
RW_TARGET = 0.25  # the random walk's acceptance target during warm-up

__all__ = ["KernelProposal", "smc", "jump_chains"]


class KernelProposal:
    """q(θ) = (1/M) Σ_m N(θ; μ_m, Σ_m), a local kernel density of a particle cloud (n, d).

    Arguments:
        cloud: equally weighted particles (n, d), the neighbourhoods. generator: picks the centres.
        pool: the particles (p, d) the centres are drawn from; by default the cloud (the tempering
            draws them from the resampled particles and takes neighbourhoods in the diverse cloud
            before resampling).
        centres: M, at most n. neighbours: k, the particles whose covariance is a centre's Σ_m
            (by default n/20, between 2d + 2 and 100), found by distance in the cloud's whitened
            coordinates.
    """

    def __init__(self, cloud: Tensor, generator: torch.Generator, pool: Tensor | None = None, centres: int = CENTRES,
                 neighbours: int | None = None):
        n, d = cloud.shape
        k = neighbours or min(max(n // 20, 2 * d + 2), 100)
        k = min(k, n)
        pool = cloud if pool is None else pool
        centre = pool[torch.randperm(len(pool), generator=generator)[:min(centres, len(pool))]]
        spread = _jittered(torch.atleast_2d(torch.cov(cloud.T)))
        whiten = torch.linalg.cholesky_ex(spread)[0]
        white = torch.linalg.solve_triangular(whiten, cloud.T, upper=False).T
        white_centre = torch.linalg.solve_triangular(whiten, centre.T, upper=False).T
        near = torch.cdist(white_centre, white).topk(k, largest=False).indices  # (M, k)
        hood = cloud[near]  # (M, k, d)
        diff = hood - hood.mean(1, keepdim=True)
        # a floor of 10⁻⁴ of the cloud's covariance keeps a neighbourhood of copies from collapsing
        cov = _jittered(diff.transpose(1, 2) @ diff / max(k - 1, 1) + 1e-4 * spread)
        self.mean, self.cov = centre, cov
        self.chol = torch.linalg.cholesky(cov)
        eye = torch.eye(d, dtype=DTYPE).expand_as(cov)
        self.chol_inv = torch.linalg.solve_triangular(self.chol, eye, upper=False)
        self.log_norm = -self.chol.diagonal(dim1=1, dim2=2).log().sum(1) - 0.5 * d * math.log(2 * math.pi)

    def sample(self, m: int, generator: torch.Generator) -> Tensor:
        """m draws of q → (m, d)."""
        which = torch.randint(len(self.mean), (m,), generator=generator)
        eps = torch.randn(m, self.mean.shape[1], dtype=DTYPE, generator=generator)
        return self.mean[which] + (self.chol[which] @ eps[:, :, None])[:, :, 0]

    def log_prob(self, theta: Tensor) -> Tensor:
        """log q(θ) for θ (m, d) → (m,)."""
        diff = theta[:, None, :] - self.mean[None]  # (m, M, d)
        z = torch.einsum("kij,mkj->mki", self.chol_inv, diff)
        comp = self.log_norm - 0.5 * (z ** 2).sum(-1)
        return torch.logsumexp(comp, 1) - math.log(len(self.mean))

    def mean_covariance(self) -> Tensor:
        """The mean of the local covariances (d, d): the shape of one mode, for a random walk."""
        return self.cov.mean(0)


def smc(target: Target, particles: int, generator: torch.Generator, progress: bool = False) -> tuple[Tensor, int]:
    """Tempered SMC from the prior to the posterior → particles (particles, d) at β = 1, and the stages run.

    Raises:
        RuntimeError: every prior draw has zero likelihood, or β does not reach 1 in MAX_STAGES stages.
    """
    theta = draw_prior(target.model.prior, particles, generator)
    log_prior, log_lik = target.terms(theta)
    if not torch.isfinite(log_lik).any():
        raise RuntimeError(f"the tempering never reached a θ where the posterior density is positive (the "
                           f"likelihood is zero at all {particles} prior draws): check x_obs against the simulator, or "
                           "pass init= starting points near the maximum likelihood with sampler='metropolis'.")
    beta, stages, scale = 0.0, 0, 1.0
    bar = tqdm(total=1.0, desc="tempering", disable=not progress, dynamic_ncols=True, bar_format="{l_bar}{bar}| β={n:.3f}")
    while beta < 1.0:
        if stages >= MAX_STAGES:
            raise RuntimeError(f"tempering reached only β = {beta:.3g} in {MAX_STAGES} stages: the likelihood is "
                               "extremely peaked; use sampler='metropolis' with init= near the maximum likelihood.")
        new = _next_beta(log_lik, beta)
        log_w = (new - beta) * log_lik
        pick = _systematic(log_w, generator)
        previous = theta
        theta, log_prior, log_lik = theta[pick], log_prior[pick], log_lik[pick]
        proposal = KernelProposal(previous, generator, pool=theta)
        theta, log_prior, log_lik, scale = _move(target, proposal, theta, log_prior, log_lik, new, scale, generator)
        bar.update(new - beta)
        beta, stages = new, stages + 1
    bar.close()
    return theta, stages


def jump_chains(target: Target, start: Tensor, proposal: KernelProposal, warmup: int, steps: int, thin: int,
                generator: torch.Generator, progress: bool) -> tuple[Tensor, float]:
    """Chains with the kernel proposal's independence moves and a random walk, all at once
    → kept draws (chains, steps // thin, d) and the acceptance rate after warm-up."""
    chains, d = start.shape
    theta = start.clone()
    log_p = target.log_density(theta)
    log_q = proposal.log_prob(theta)
    chol = torch.linalg.cholesky(_jittered(proposal.mean_covariance()))
    log_s = math.log(2.38 / math.sqrt(d))
    kept = torch.empty(chains, steps // thin, d, dtype=DTYPE)
    accepted = 0
    bar = tqdm(range(warmup + steps), desc="mcmc", disable=not progress, dynamic_ncols=True)
    for step in bar:
        jump = torch.rand(chains, dtype=DTYPE, generator=generator) < JUMP
        walk = theta + math.exp(log_s) * torch.randn(chains, d, dtype=DTYPE, generator=generator) @ chol.T
        new = torch.where(jump[:, None], proposal.sample(chains, generator), walk)
        log_u = torch.rand(chains, dtype=DTYPE, generator=generator).log()
        new_log_p = target.log_density(new)
        new_log_q = proposal.log_prob(new)
        ratio = torch.where(jump, new_log_p - new_log_q - log_p + log_q, new_log_p - log_p)
        accept = (log_u < ratio) & torch.isfinite(new_log_p)
        theta = torch.where(accept[:, None], new, theta)
        log_p, log_q = torch.where(accept, new_log_p, log_p), torch.where(accept, new_log_q, log_q)
        if step < warmup:
            if (~jump).any():
                log_s += 0.1 * (float(accept[~jump].double().mean()) - RW_TARGET)
        else:
            accepted += int(accept.sum())
            kept_step = step - warmup + 1
            if kept_step % thin == 0 and kept_step // thin <= kept.shape[1]:
                kept[:, kept_step // thin - 1] = theta
    bar.close()
    return kept, accepted / (chains * steps)


def _next_beta(log_lik: Tensor, beta: float) -> float:
    """The β' in (β, 1] whose incremental weights exp((β' − β)·ℓ) keep ESS_FRACTION of the particles."""
    finite = torch.isfinite(log_lik)
    target = ESS_FRACTION * int(finite.sum())

    def ess(b: float) -> float:
        log_w = torch.where(finite, (b - beta) * torch.where(finite, log_lik, 0.0), -math.inf)
        w = torch.exp(log_w - log_w.max())
        return float(w.sum() ** 2 / (w ** 2).sum())

    if ess(1.0) >= target:
        return 1.0
    low, high = beta, 1.0
    for _ in range(60):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if ess(mid) >= target else (low, mid)
    return max(low, beta + 1e-12)


def _systematic(log_w: Tensor, generator: torch.Generator) -> Tensor:
    """Systematic resampling: n indices drawn in proportion to exp(log_w) (n,)."""
    n = len(log_w)
    w = torch.exp(torch.nan_to_num(log_w, nan=-math.inf) - log_w[torch.isfinite(log_w)].max())
    cdf = torch.cumsum(w / w.sum(), 0)
    u = (torch.rand((), dtype=DTYPE, generator=generator) + torch.arange(n, dtype=DTYPE)) / n
    return torch.searchsorted(cdf, u).clamp(max=n - 1)


def _move(target: Target, proposal: KernelProposal, theta: Tensor, log_prior: Tensor, log_lik: Tensor, beta: float,
          scale: float, generator: torch.Generator):
    """Metropolis–Hastings sweeps that leave π_β invariant (kernel-proposal jumps and random-walk steps
    alternately) until MOVED of the particles have moved."""
    n, d = theta.shape
    chol = torch.linalg.cholesky(_jittered(proposal.mean_covariance()))
    moved = torch.zeros(n, dtype=torch.bool)
    log_q = proposal.log_prob(theta)
    for sweep in range(MAX_MOVES):
        jump = sweep % 2 == 0
        if jump:
            new = proposal.sample(n, generator)
        else:
            new = theta + scale * 2.38 / math.sqrt(d) * torch.randn(n, d, dtype=DTYPE, generator=generator) @ chol.T
        new_prior, new_lik = target.terms(new)
        new_q = proposal.log_prob(new)
        ratio = new_prior + beta * new_lik - log_prior - beta * log_lik
        if jump:
            ratio = ratio - new_q + log_q
        ok = torch.isfinite(new_prior + new_lik)
        accept = ok & (torch.rand(n, dtype=DTYPE, generator=generator).log() < ratio)
        theta = torch.where(accept[:, None], new, theta)
        log_prior, log_lik = torch.where(accept, new_prior, log_prior), torch.where(accept, new_lik, log_lik)
        log_q = torch.where(accept, new_q, log_q)
        moved |= accept
        if not jump:  # a random walk that is rarely accepted takes smaller steps next time
            rate = float(accept.double().mean())
            scale *= math.exp(rate - RW_TARGET)
        if sweep >= 1 and float(moved.double().mean()) >= MOVED:
            break
    return theta, log_prior, log_lik, scale


def _jittered(cov: Tensor) -> Tensor:
    """cov (…, d, d) plus a relative jitter on its diagonal, so that it is positive definite."""
    d = cov.shape[-1]
    scale = cov.diagonal(dim1=-2, dim2=-1).mean(-1).clamp(min=1e-300)
    return cov + 1e-8 * scale[..., None, None] * torch.eye(d, dtype=DTYPE)
