"""Fisher information as MadMiner reports it: parton-level truth, rate only, histograms, a score.

For events of weight w_k(θ) at luminosity L (θ here includes the nuisance parameters ν), the
expected Fisher information of the extended likelihood is

    I_ij(θ) = L Σ_k ∂_i w_k ∂_j w_k / w_k                       (truth: the full event information)
            = L σ E[t_i t_j] + L ∂_iσ ∂_jσ / σ                   (shape + rate, t the score of p(x|θ)),

the rate alone gives L ∂_iσ ∂_jσ/σ, a histogram L Σ_b ∂_iσ_b ∂_jσ_b/σ_b, and a learned score t̂(x)
(sally) L σ E[t̂_i t̂_j] + L ∂_iσ ∂_jσ/σ. With nuisance parameters the standard-normal constraints
add the identity to their block, and profiling them leaves the Schur complement

    I_prof = I_θθ − I_θν (I_νν + 1)^(−1) I_νθ.

The Cramér–Rao ellipse (θ − θ₀)ᵀ I (θ − θ₀) = χ²_d(level) is the expected limit where the
likelihood is Gaussian.

References:
    Brehmer, Cranmer, Kling, Plehn, "Better Higgs boson measurements through information
    geometry", Phys. Rev. D 95 (2017) 073002, https://arxiv.org/abs/1612.05261;
    Brehmer, Kling, Espejo, Cranmer, "MadMiner", Comput. Softw. Big Sci. 4 (2020) 3,
    https://arxiv.org/abs/1907.10621
"""

from __future__ import annotations

import math

import torch
from scipy.stats import chi2
from torch import Tensor

from ..simulators.base import DTYPE
from .histfactory import quantile_bins
from .morphing import monomial_gradients, monomials
from .nuisance import log_factor

KINDS = ("truth", "rate", "histogram", "score")


def weight_gradients(source, theta: Tensor) -> tuple[Tensor, Tensor]:
    """w_k and ∇w_k of every event at one point (d + K,): (N,), (N, d + K), in closed form."""
    theta = torch.as_tensor(theta, dtype=DTYPE).reshape(1, -1)
    poi, nu = theta[:, : source.poi_dim], theta[:, source.poi_dim:]
    base = (monomials(poi, source.morphing.exponents) @ source.coefficients.T)[0]
    grad_poi = (monomial_gradients(poi, source.morphing.exponents) @ source.coefficients.T)[0].T  # (N, d)
    if nu.shape[1] == 0:
        return base, grad_poi
    factor = torch.exp(log_factor(source.a, source.b, nu))[0]
    w = base * factor
    grad_nu = w[:, None] * (source.a + 2.0 * source.b * nu)
    return w, torch.cat([grad_poi * factor[:, None], grad_nu], -1)


def fisher_information(source, theta, luminosity: float, kind: str = "truth", observables=(0,), bins: int = 10,
                       score=None, profile: bool = True) -> Tensor:
    """The expected Fisher information of L·σ worth of events at θ (d,) or (d + K,).

    Arguments:
        source: `WeightedEvents` (with its nuisances).
        kind: "truth", "rate", "histogram" (of `observables`, `bins` each, equal expected counts) or
            "score" (a learned score: `score` is a function x (N, x_dim) → t̂ (N, d + K), e.g. a
            sally estimator's `score`).
        profile: with nuisances, profile them (Schur complement) and return the (d, d) information
            of θ; otherwise the (d + K, d + K) information with the constraints.

    Raises:
        ValueError: an unknown kind, or kind="score" without a score.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}.")
    theta = torch.as_tensor(theta, dtype=DTYPE).reshape(-1)
    k = source.theta_dim - source.poi_dim
    if theta.shape[0] == source.poi_dim:
        theta = torch.cat([theta, torch.zeros(k, dtype=DTYPE)])
    w, grad = weight_gradients(source, theta)
    sigma, grad_sigma = w.sum(), grad.sum(0)
    rate = torch.outer(grad_sigma, grad_sigma) / sigma
    if kind == "truth":
        positive = w > 0
        info = (grad[positive].T / w[positive]) @ grad[positive]
    elif kind == "rate":
        info = rate
    elif kind == "histogram":
        observables = (observables,) if isinstance(observables, int) else tuple(observables)
        bin_of = quantile_bins(source.x, w, observables, bins)
        n_bins = bins ** len(observables)
        s_b = torch.zeros(n_bins, dtype=DTYPE).index_add_(0, bin_of, w)
        g_b = torch.zeros(n_bins, grad.shape[1], dtype=DTYPE).index_add_(0, bin_of, grad)
        keep = s_b > 0
        info = (g_b[keep].T / s_b[keep]) @ g_b[keep]
    else:
        if score is None:
            raise ValueError("kind='score' needs score=, a function x (N, x_dim) → t̂(x) (N, d + K), e.g. est.score.")
        t = torch.as_tensor(score(source.x), dtype=DTYPE).reshape(len(w), -1)
        if t.shape[1] != grad.shape[1]:
            raise ValueError(f"the score has {t.shape[1]} components but the parameters are {grad.shape[1]}.")
        info = (t.T * w) @ t + rate
    info = luminosity * info
    if k:
        info = info + torch.diag(torch.cat([torch.zeros(source.poi_dim, dtype=DTYPE), torch.ones(k, dtype=DTYPE)]))
        if profile:
            d = source.poi_dim
            info = info[:d, :d] - info[:d, d:] @ torch.linalg.solve(info[d:, d:], info[d:, :d])
    return info


def ellipse(info: Tensor, center, level: float = 0.95, points: int = 200) -> Tensor:
    """The Cramér–Rao contour (θ − θ₀)ᵀ I (θ − θ₀) = χ²₂(level) of a 2×2 information: (points, 2)."""
    radius = math.sqrt(float(chi2.ppf(level, 2)))
    angle = torch.linspace(0.0, 2.0 * math.pi, points, dtype=DTYPE)
    circle = torch.stack([torch.cos(angle), torch.sin(angle)], -1) * radius
    chol = torch.linalg.cholesky(torch.linalg.inv(info))
    return torch.as_tensor(center, dtype=DTYPE).reshape(1, 2) + circle @ chol.T


def ellipse_area(info: Tensor, level: float = 0.95) -> float:
    """The area of the Cramér–Rao ellipse of a 2×2 information: π χ²₂(level) / √det I (infinite when I
    is singular, e.g. the rate alone, which constrains one direction only)."""
    det = float(torch.linalg.det(info))
    return math.pi * float(chi2.ppf(level, 2)) / math.sqrt(det) if det > 1e-12 * float(info.abs().max()) ** 2 else math.inf
