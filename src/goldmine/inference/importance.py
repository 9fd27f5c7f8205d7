"""Importance sampling from the prior: for a posterior not much narrower than the prior.

N prior draws θ_j get the weights w_j ∝ exp(ℓ(θ_j)) (the prior is the proposal, so it cancels),
and the kept draws are resampled from them in proportion to w (sampling-importance-resampling,
Rubin 1988). The draws are independent of any chain, so they find every mode in its proportion,
but they are only as many as the effective sample size of the weights, ESS = (Σ w)² / Σ w², which
falls like (posterior volume / prior volume) as the posterior narrows: this sampler suits a prior
that is small against the posterior (few observations, broad likelihoods), and warns when the ESS
is below `ESS_WARN` of `goldmine.inference.convergence`.

References:
    Rubin, "Using the SIR algorithm to simulate posterior distributions", Bayesian Statistics 3 (1988) 395
    Kong, "A note on importance sampling using standardized weights", Tech. Rep. 348, U. Chicago (1992)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..simulators.base import DTYPE, draw_prior
from .target import Target

BLOCK = 10_000  # prior draws per call of the surrogate

__all__ = ["importance_draws"]


def importance_draws(target: Target, proposals: int, keep: int, generator: torch.Generator) -> tuple[Tensor, float]:
    """`keep` draws (1, keep, d) resampled from `proposals` prior draws weighted by exp(ℓ), and the
    effective sample size of the weights.

    Raises:
        RuntimeError: every prior draw has zero likelihood.
    """
    theta = draw_prior(target.model.prior, proposals, generator)
    log_w = torch.cat([target.terms(theta[i:i + BLOCK])[1] for i in range(0, proposals, BLOCK)])
    if not torch.isfinite(log_w).any():
        raise RuntimeError(f"the likelihood is zero at all {proposals} prior draws: the posterior is far narrower "
                           "than the prior; use sampler='tempered'.")
    w = torch.exp(log_w - log_w.max())
    w = torch.nan_to_num(w, nan=0.0)
    ess = float(w.sum() ** 2 / (w ** 2).sum())
    pick = torch.multinomial(w / w.sum(), keep, replacement=True, generator=generator)
    return theta[pick][None].to(DTYPE), ess if math.isfinite(ess) else 0.0
