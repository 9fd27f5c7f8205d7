"""The Fisher information and the Cramér–Rao bound it sets on the precision of any measurement.

    I(θ) = E_{x~p(x|θ)} [t(x|θ) t(x|θ)ᵀ],    t(x|θ) = ∇_θ log p(x|θ),

per observation; n i.i.d. observations carry n·I(θ). `fisher_information` takes it either from
the exact likelihood (by quadrature over x, `goldmine.evaluate.exact_fisher_information`) or from
sally's learned score at θ_ref, I(θ_ref) ≈ mean of t̂(x) t̂(x)ᵀ over x ~ p(x|θ_ref)
(`ScoreEstimator.fisher_information_at_reference`). An unbiased estimator of θ from n observations
has covariance at least (n·I)⁻¹ (Cramér–Rao), and the MLE reaches it as n grows; the bound's
ellipses {θ : (θ − θ₀)ᵀ n·I (θ − θ₀) ≤ χ²_d(level)} are the expected confidence regions of an
ideal analysis.

References:
    Brehmer, Cranmer, Louppe, Pavez, "Constraining effective field theories with machine
    learning", https://arxiv.org/abs/1805.00013 and the guide https://arxiv.org/abs/1805.00020
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy.stats import chi2
from torch import Tensor

from .. import checks, evaluate
from ..data import Dataset
from ..simulators.base import DTYPE, Simulator
from .model import Model

#: the probability content of a 1-σ interval
ONE_SIGMA = math.erf(1 / math.sqrt(2))


def fisher_information(source, theta=None, x=None, n_obs: int = 1) -> Tensor:
    """The Fisher information of n_obs i.i.d. observations, n_obs · I(θ): (d, d).

    Arguments:
        source: a simulator with an exact likelihood (or a `Model` of kind "exact"), or a fitted
            `ScoreEstimator` (sally / sallino).
        theta: the point (d,); the simulator's reference by default. The score estimator knows
            the score only at its θ_ref, so `theta` must be None or θ_ref.
        x: for a score estimator, runs drawn at θ_ref: (m, x_dim), or a `Dataset` (its rows drawn
            at the reference, label 1, are used). Not used with a simulator.
        n_obs: the number of observations.

    Returns:
        n_obs · I(θ), (d, d) float64.

    Example:
        >>> import goldmine as gm
        >>> fisher_information(gm.simulators.Poisson(), torch.tensor([2.0]), n_obs=10)  # 10·e²
        tensor([[73.8906]], dtype=torch.float64)
    """
    n_obs = checks.positive_int(n_obs, "n_obs")
    if isinstance(source, Model):
        source = source.source
    if isinstance(source, Simulator):
        if x is not None:
            raise ValueError("x is only used with a score estimator: the exact Fisher information integrates over x.")
        theta = source.reference if theta is None else torch.as_tensor(theta, dtype=DTYPE).reshape(-1)
        return n_obs * evaluate.exact_fisher_information(source, theta)
    if not callable(getattr(source, "fisher_information_at_reference", None)) or not hasattr(source, "reference_"):
        raise TypeError(f"{type(source).__name__} cannot give a Fisher information: pass a simulator with an exact "
                        "likelihood or a fitted ScoreEstimator (sally).")
    reference = source.reference_.to(DTYPE).reshape(-1)
    if theta is not None:
        theta = torch.as_tensor(theta, dtype=DTYPE).reshape(-1)
        if theta.shape != reference.shape or not torch.allclose(theta, reference):
            raise ValueError(f"sally learns the score only at its reference θ_ref = {reference.tolist()}; got "
                             f"theta = {theta.tolist()}. Pass theta=None, or train on data with that reference.")
    if x is None:
        raise ValueError("a score estimator needs x: runs drawn at θ_ref (m, x_dim), or the Dataset it was trained "
                         "on, whose rows at the reference are used.")
    if isinstance(x, Dataset):
        x = x.tensors(["x"], label=1)["x"]
    if len(x) < 2:
        raise ValueError("x must hold at least two runs drawn at θ_ref to average t̂ t̂ᵀ over.")
    return n_obs * source.fisher_information_at_reference(x).to(DTYPE)


@dataclass
class CramerRao:
    """The Cramér–Rao bound of n_obs observations.

    Attributes:
        fisher: n_obs · I (d, d). covariance: its inverse, the bound on the covariance of θ̂ (d, d).
        center: the point the ellipses are drawn around (d,). n_obs: observations.
    """

    fisher: Tensor
    covariance: Tensor
    center: Tensor
    n_obs: int

    @property
    def std(self) -> Tensor:
        """The bound on the standard deviation of each component of θ̂, (d,)."""
        return self.covariance.diagonal().sqrt()

    def interval(self, level: float = 0.95) -> Tensor:
        """Each component's central interval of the Gaussian bound, (d, 2)."""
        half = math.sqrt(chi2.ppf(checks.level(level), 1)) * self.std
        return torch.stack([self.center - half, self.center + half], -1)

    def ellipse(self, level: float = ONE_SIGMA, points: int = 200, dims: tuple[int, int] = (0, 1)) -> Tensor:
        """The boundary {θ : (θ − c)ᵀ Σ⁻¹ (θ − c) = χ²₂(level)} of the bound's region in two of the
        components (Σ their 2×2 marginal covariance): (points, 2)."""
        dims = list(dims)
        if len(dims) != 2 or len(set(dims)) != 2 or not all(0 <= i < len(self.center) for i in dims):
            raise ValueError(f"dims must name two different components of θ (0..{len(self.center) - 1}); got {dims}.")
        cov = self.covariance[dims][:, dims]
        angle = torch.linspace(0, 2 * math.pi, points, dtype=DTYPE)
        circle = torch.stack([angle.cos(), angle.sin()], -1) * math.sqrt(chi2.ppf(checks.level(level), 2))
        return self.center[dims] + circle @ torch.linalg.cholesky(cov).T


def cramer_rao(fisher, n_obs: int = 1, center=None) -> CramerRao:
    """The covariance bound (n_obs · I)⁻¹ from the Fisher information of one observation.

    Arguments:
        fisher: I(θ) per observation (d, d) (a scalar for d = 1).
        n_obs: the number of i.i.d. observations.
        center: where the ellipses sit (d,); zero by default.

    Returns:
        A `CramerRao` with the covariance, standard deviations, intervals and ellipses.

    Example:
        >>> bound = cramer_rao(torch.tensor([[4.0, 0.0], [0.0, 1.0]]), n_obs=4)
        >>> bound.std
        tensor([0.2500, 0.5000], dtype=torch.float64)
    """
    n_obs = checks.positive_int(n_obs, "n_obs")
    info = torch.as_tensor(fisher, dtype=DTYPE)
    info = info.reshape(1, 1) if info.numel() == 1 else info
    if info.ndim != 2 or info.shape[0] != info.shape[1] or not torch.isfinite(info).all():
        raise ValueError(f"fisher must be a finite square matrix (d, d); got shape {tuple(info.shape)}.")
    if not torch.allclose(info, info.T, rtol=1e-6, atol=1e-12 * float(info.abs().max().clamp(min=1e-300))):
        raise ValueError("fisher must be symmetric: the Fisher information is E[t tᵀ].")
    total = n_obs * info
    eigen = torch.linalg.eigvalsh(total)
    if eigen.min() <= 1e-12 * eigen.max().clamp(min=1e-300):
        raise ValueError(f"the Fisher information is singular (eigenvalues {eigen.tolist()}): some direction of θ is "
                         "not measured, so its variance has no finite bound. Fix or drop that parameter.")
    center = torch.zeros(len(total), dtype=DTYPE) if center is None else torch.as_tensor(center, dtype=DTYPE).reshape(-1)
    if center.shape != (len(total),):
        raise ValueError(f"center must have shape ({len(total)},); got {tuple(center.shape)}.")
    covariance = torch.linalg.inv(total)
    return CramerRao(total, 0.5 * (covariance + covariance.T), center, n_obs)


__all__ = ["ONE_SIGMA", "CramerRao", "cramer_rao", "fisher_information"]
