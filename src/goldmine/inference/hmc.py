"""Hamiltonian Monte Carlo through autograd on the surrogate, many chains at once.

The chains move in unconstrained coordinates u, θ = T(u) with T = `torch.distributions.transform_to`
of the prior's support (a logistic map onto a box), whose density is
log p(u) = log π(T(u)) + ℓ(T(u)) + log |det ∂T/∂u|. Each step draws a momentum ρ ~ N(0, M),
runs LEAPFROG leapfrog steps of size ε (jittered by ±20% per step) with ∇_u log p by autograd
through the surrogate's likelihood terms, and accepts the end point with probability
min(1, exp(−ΔH)) (Neal 2011). During warm-up ε is tuned by dual averaging toward a mean acceptance
of 0.8 (Hoffman, Gelman 2014) and the diagonal mass matrix M⁻¹ is set to the variance of u in
doubling windows; both are frozen after warm-up. A trajectory whose energy error exceeds 1000 or
turns non-finite (a divergence) is rejected.

The surrogate must be differentiable in θ (every neural ratio and likelihood estimator, and
simulators whose `log_prob` is written in torch); HMC does not cross between well-separated modes
(`sampler="tempered"` does).

References:
    Neal, "MCMC using Hamiltonian dynamics", in Handbook of Markov Chain Monte Carlo (2011),
    https://arxiv.org/abs/1206.1901
    Hoffman, Gelman, "The No-U-Turn sampler", JMLR 15 (2014) 1593 (dual averaging of ε)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import transform_to
from tqdm.auto import tqdm

from ..simulators.base import DTYPE
from .target import Target

LEAPFROG = 16  # leapfrog steps per trajectory
ACCEPT_TARGET = 0.8
DIVERGENCE = 1000.0
FIRST_WINDOW = 25

__all__ = ["hmc_chains"]


def hmc_chains(target: Target, start: Tensor, warmup: int, steps: int, thin: int, generator: torch.Generator,
               progress: bool) -> tuple[Tensor, float]:
    """HMC chains → kept draws (chains, steps // thin, d) and the mean acceptance probability after warm-up.

    Raises:
        RuntimeError: the surrogate's log-likelihood is not differentiable in θ.
    """
    transform = transform_to(target.model.prior.support)
    chains, d = start.shape
    u = transform.inv(start).detach()
    u = torch.nan_to_num(u, nan=0.0, posinf=30.0, neginf=-30.0)
    log_p, grad = _value_and_grad(target, transform, u)
    inv_mass = torch.ones(d, dtype=DTYPE)
    eps = _initial_step(target, transform, u, log_p, grad, inv_mass, generator)
    mu, h_bar, log_eps_bar, t0, gamma, kappa = math.log(10 * eps), 0.0, 0.0, 10.0, 0.05, 0.75
    history = torch.empty(warmup, chains, d, dtype=DTYPE)
    kept = torch.empty(chains, steps // thin, d, dtype=DTYPE)
    update, window, counter, accepted = min(FIRST_WINDOW, warmup), FIRST_WINDOW, 0, 0.0
    bar = tqdm(range(warmup + steps), desc="hmc", disable=not progress, dynamic_ncols=True)
    for step in bar:
        size = eps * (0.8 + 0.4 * float(torch.rand((), dtype=DTYPE, generator=generator)))
        u, log_p, grad, prob = _transition(target, transform, u, log_p, grad, inv_mass, size, generator)
        if step < warmup:
            counter += 1
            h_bar = (1 - 1 / (counter + t0)) * h_bar + (ACCEPT_TARGET - float(prob.mean())) / (counter + t0)
            log_eps = mu - math.sqrt(counter) / gamma * h_bar
            weight = counter ** -kappa
            log_eps_bar = weight * log_eps + (1 - weight) * log_eps_bar
            eps = math.exp(log_eps)
            history[step] = u
            if step + 1 == update:
                var = history[(step + 1) // 2:step + 1].reshape(-1, d).var(0)
                if torch.isfinite(var).all() and (var > 0).all():
                    inv_mass = var
                    eps = _initial_step(target, transform, u, log_p, grad, inv_mass, generator)
                    mu, h_bar, log_eps_bar, counter = math.log(10 * eps), 0.0, 0.0, 0
                window *= 2
                update = warmup if update + 2 * window > warmup else update + window
            if step + 1 == warmup:
                eps = math.exp(log_eps_bar) if counter else eps
        else:
            accepted += float(prob.mean())
            kept_step = step - warmup + 1
            if kept_step % thin == 0 and kept_step // thin <= kept.shape[1]:
                kept[:, kept_step // thin - 1] = transform(u).detach()
        if progress and step % 50 == 0:
            bar.set_postfix(step_size=f"{eps:.3g}")
    bar.close()
    return kept, accepted / steps


def _value_and_grad(target: Target, transform, u: Tensor) -> tuple[Tensor, Tensor]:
    u = u.detach().requires_grad_(True)
    with torch.enable_grad():
        theta = transform(u)
        jac = transform.log_abs_det_jacobian(u, theta)
        if jac.dim() > 1:
            jac = jac.sum(-1)
        value = target.differentiable(theta) + jac
        if not value.requires_grad:
            raise RuntimeError("the model's log-likelihood is not differentiable in θ, so HMC cannot run on it: "
                               "use sampler='slice' or 'tempered'.")
        grad, = torch.autograd.grad(value.sum(), u)
    value = torch.nan_to_num(value.detach(), nan=-math.inf)
    return value, torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)


def _transition(target, transform, u, log_p, grad, inv_mass, eps, generator):
    chains, d = u.shape
    rho = torch.randn(chains, d, dtype=DTYPE, generator=generator) / inv_mass.sqrt()
    h0 = -log_p + 0.5 * (rho ** 2 * inv_mass).sum(1)
    new_u, new_rho, new_log_p, new_grad = u, rho + 0.5 * eps * grad, log_p, grad
    for i in range(LEAPFROG):
        new_u = new_u + eps * inv_mass * new_rho
        new_log_p, new_grad = _value_and_grad(target, transform, new_u)
        new_rho = new_rho + (eps if i < LEAPFROG - 1 else 0.5 * eps) * new_grad
    h1 = -new_log_p + 0.5 * (new_rho ** 2 * inv_mass).sum(1)
    delta = h1 - h0
    delta = torch.where(torch.isfinite(delta) & (delta < DIVERGENCE), delta, torch.full_like(delta, math.inf))
    prob = torch.exp(-delta).clamp(max=1.0)
    accept = torch.rand(chains, dtype=DTYPE, generator=generator) < prob
    u = torch.where(accept[:, None], new_u, u)
    return u, torch.where(accept, new_log_p, log_p), torch.where(accept[:, None], new_grad, grad), prob


def _initial_step(target, transform, u, log_p, grad, inv_mass, generator) -> float:
    """A step size whose single leapfrog step is accepted about half the time (Hoffman, Gelman 2014)."""
    eps = 0.1
    for _ in range(40):
        chains, d = u.shape
        rho = torch.randn(chains, d, dtype=DTYPE, generator=generator) / inv_mass.sqrt()
        r = rho + 0.5 * eps * grad
        new_u = u + eps * inv_mass * r
        new_log_p, new_grad = _value_and_grad(target, transform, new_u)
        r = r + 0.5 * eps * new_grad
        delta = (-new_log_p + 0.5 * (r ** 2 * inv_mass).sum(1)) - (-log_p + 0.5 * (rho ** 2 * inv_mass).sum(1))
        prob = float(torch.exp(-torch.nan_to_num(delta, nan=math.inf)).clamp(max=1.0).mean())
        if 0.3 < prob < 0.9:
            break
        eps = eps * 2 if prob >= 0.9 else eps / 2
    return eps
