"""Convergence diagnostics of Markov chains: the rank-normalised split R-hat and the effective sample size.

Both are rank-normalised (Vehtari et al. 2021): the split R-hat is the larger of the bulk R-hat
(of the normal scores of the pooled ranks) and the tail R-hat (the same for |θ − median|); the
bulk ESS applies Geyer's initial monotone sequence to the chains' mean autocorrelation of the
normal scores, with the between-chain variance included.

References:
    Vehtari, Gelman, Simpson, Carpenter, Bürkner, "Rank-normalization, folding, and localization: an
    improved R-hat for assessing convergence of MCMC", Bayesian Analysis 16 (2021) 667,
    https://arxiv.org/abs/1903.08008
    Geyer, "Practical Markov chain Monte Carlo", Statistical Science 7 (1992) 473
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import special, stats
from torch import Tensor

from ..simulators.base import DTYPE

# Vehtari et al. (2021) ask for R-hat ≤ 1.01 from 4 long chains; R-hat − 1 of converged chains is
# about chains/(2·ESS), so many short chains at the ESS floor below (32 at 400) reach 1.04 by chance
RHAT_WARN = 1.05
ESS_WARN = 400  # below it, R-hat and the tail quantiles are unreliable (Vehtari et al. 2021)

__all__ = ["ESS_WARN", "RHAT_WARN", "ess", "problems", "split_rhat"]


def split_rhat(draws) -> Tensor:
    """Rank-normalised split R-hat per dimension: draws (chains, n, d) → (d,), the larger of bulk and tail.

    Each chain is cut in two halves; the pooled draws are replaced by the normal scores of their
    ranks (bulk), and of the ranks of |θ − median| (tail, which catches chains that agree in location
    but not in scale). R-hat = √(V̂⁺/W) with W the mean within-chain variance and V̂⁺ = (n−1)/n·W +
    the variance of the chain means. Near 1 when the chains agree. (Vehtari et al. 2021, arXiv:1903.08008.)
    """
    x = _split(draws)
    bulk = _rhat(_normal_scores(x))
    tail = _rhat(_normal_scores(np.abs(x - np.median(x.reshape(-1, x.shape[-1]), axis=0))))
    return torch.as_tensor(np.maximum(bulk, tail), dtype=DTYPE)


def ess(draws, rank_normalise: bool = True) -> Tensor:
    """The effective sample size per dimension: draws (chains, n, d) → (d,).

    On split chains, with the autocorrelation ρ_t = 1 − (W − mean autocovariance_t)/V̂⁺ summed by
    Geyer's initial monotone sequence: ESS = chains·n / (−1 + 2 Σ_k (ρ_2k + ρ_2k+1)), the pairs
    summed while positive and made non-increasing. `rank_normalise` gives the bulk ESS (of the
    normal scores of the ranks, robust to heavy tails), else the classic ESS of the raw values,
    which sets the Monte-Carlo error of the mean.
    """
    x = _split(draws)
    if rank_normalise:
        x = _normal_scores(x)
    return torch.as_tensor([_ess_one(x[..., j]) for j in range(x.shape[-1])], dtype=DTYPE)


def _split(draws) -> np.ndarray:
    x = np.asarray(torch.as_tensor(draws, dtype=DTYPE))
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[1] < 4:
        raise ValueError(f"draws must have shape (chains, n, d) with n ≥ 4; got {x.shape}.")
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, -half:]], axis=0)


def _normal_scores(x: np.ndarray) -> np.ndarray:
    """Φ⁻¹((rank − 3/8)/(S + 1/4)) of the pooled draws, per dimension (average ranks for ties)."""
    m, n, d = x.shape
    ranks = stats.rankdata(x.reshape(m * n, d), axis=0)
    return special.ndtri((ranks - 0.375) / (m * n + 0.25)).reshape(m, n, d)


def _rhat(x: np.ndarray) -> np.ndarray:
    n = x.shape[1]
    within = x.var(axis=1, ddof=1).mean(axis=0)
    between = x.mean(axis=1).var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(((n - 1) / n * within + between) / within)


def _ess_one(x: np.ndarray) -> float:
    """ESS of one dimension of split chains (m, n)."""
    m, n = x.shape
    centred = x - x.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(centred, n=2 * n, axis=1)
    autocov = np.fft.irfft(spectrum * spectrum.conj(), n=2 * n, axis=1)[:, :n] / n  # (m, n), lag 0..n−1
    within = autocov[:, 0].mean() * n / (n - 1)
    var_plus = within * (n - 1) / n + (x.mean(axis=1).var(ddof=1) if m > 1 else 0.0)
    if not var_plus > 0:
        return float("nan")
    rho = 1.0 - (within - autocov.mean(axis=0)) / var_plus
    pairs = rho[: 2 * (n // 2)].reshape(-1, 2).sum(axis=1)
    negative = np.flatnonzero(pairs <= 0)
    pairs = pairs[: negative[0] if len(negative) else len(pairs)]
    tau = -1.0 + 2.0 * np.minimum.accumulate(pairs).sum()
    # an antithetic chain can give τ < 1; the floor caps the ESS at S·log10(S) draws
    tau = max(tau, 1.0 / math.log10(m * n))
    return m * n / tau


def problems(rhat: Tensor | None, ess_: Tensor) -> list[str]:
    """What is wrong with chains of this R-hat and ESS (d,) each, as readable phrases naming the θ
    dimensions; empty when nothing is. rhat None: independent draws, only the ESS is judged."""
    worry = []
    if rhat is not None and not (rhat <= RHAT_WARN).all():
        worry.append("R-hat " + ", ".join(f"{v:.3f}" for v in rhat.tolist()) + f" (want ≤ {RHAT_WARN})")
    if not (ess_ >= ESS_WARN).all():
        worry.append("ESS " + ", ".join(f"{v:.0f}" for v in ess_.tolist()) + f" (want ≥ {ESS_WARN})")
    return worry
