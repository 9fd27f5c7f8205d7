"""Nuisance parameters: systematic uncertainties as event-weight variations with constraint terms.

A generator gives the weight of every event under the ±1σ variations of a systematic (scale and
PDF variations, a normalisation). With ρ_±(z) = w_±(z)/w(z), each nuisance ν_k changes the weights as

    w(z|θ, ν) = w(z|θ) · exp(Σ_k a_k(z) ν_k + b_k(z) ν_k²),
    a_k = (log ρ_+ − log ρ_−)/2,    b_k = (log ρ_+ + log ρ_−)/2,

which is positive, smooth and passes through both variations at ν_k = ±1 (MadMiner's nuisance
morphing). A normalisation uncertainty δ is ρ_± = (1 + δ)^(±1) for every event: a = log(1 + δ), b = 0,
a log-normal rate. Every nuisance carries a constraint term, a standard normal on ν_k (the
auxiliary measurement that fixed the ±1σ variations):

    log c(ν) = −Σ_k ν_k²/2.

References:
    Brehmer, Kling, Espejo, Cranmer, "MadMiner: Machine learning-based inference for particle
    physics", Comput. Softw. Big Sci. 4 (2020) 3, https://arxiv.org/abs/1907.10621;
    Cranmer et al., "HistFactory: a tool for creating statistical models for use with RooFit and
    RooStats", CERN-OPEN-2012-016.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..simulators.base import DTYPE

CONSTRAINTS = ("normal",)


@dataclass(frozen=True)
class Nuisance:
    """One systematic uncertainty.

    Attributes:
        name: its name.
        up, down: (N,) the ratios ρ_± = w_±/w of every event at ν = ±1 (shape variations), or None
            for a normalisation.
        normalisation: δ of a normalisation uncertainty (ρ_± = (1 + δ)^(±1)), or None.
        constraint: the constraint term, "normal" (a standard normal on ν). None is refused.
    """

    name: str
    up: Tensor | None = None
    down: Tensor | None = None
    normalisation: float | None = None
    constraint: str | None = "normal"

    def __post_init__(self):
        if self.constraint not in CONSTRAINTS:
            raise ValueError(
                f"nuisance {self.name!r} has no constraint term (constraint={self.constraint!r}): an unconstrained "
                "nuisance is a free parameter that the data alone must fix; give constraint='normal' (ν ~ N(0, 1), "
                "its ±1σ variations at ν = ±1), or make it a parameter of interest.")
        shape = self.up is not None or self.down is not None
        if shape == (self.normalisation is not None):
            raise ValueError(f"nuisance {self.name!r} needs either up= and down= weight ratios (a shape variation) "
                             "or normalisation=δ, not both and not neither.")
        if shape and (self.up is None or self.down is None):
            raise ValueError(f"nuisance {self.name!r}: give both up= and down= weight ratios.")
        if self.normalisation is not None and not self.normalisation > -1.0:
            raise ValueError(f"nuisance {self.name!r}: normalisation δ must exceed −1; got {self.normalisation}.")

    def coefficients(self, n: int) -> tuple[Tensor, Tensor]:
        """a_k(z_i), b_k(z_i) of n events: two (n,)."""
        if self.normalisation is not None:
            return torch.full((n,), math.log1p(self.normalisation), dtype=DTYPE), torch.zeros(n, dtype=DTYPE)
        up, down = torch.as_tensor(self.up, dtype=DTYPE).reshape(-1), torch.as_tensor(self.down, dtype=DTYPE).reshape(-1)
        if up.shape[0] != n or down.shape[0] != n:
            raise ValueError(f"nuisance {self.name!r} has {up.shape[0]} up and {down.shape[0]} down ratios for {n} "
                             "events: give one per event.")
        if not ((up > 0).all() and (down > 0).all()):
            raise ValueError(f"nuisance {self.name!r} has weight ratios that are not positive: drop those events "
                             "or clip the variations.")
        lu, ld = torch.log(up), torch.log(down)
        return (lu - ld) / 2.0, (lu + ld) / 2.0


def nuisance_coefficients(nuisances, n: int) -> tuple[Tensor, Tensor]:
    """a (n, K) and b (n, K) of K nuisances."""
    pairs = [nu.coefficients(n) for nu in nuisances]
    if not pairs:
        return torch.zeros(n, 0, dtype=DTYPE), torch.zeros(n, 0, dtype=DTYPE)
    return torch.stack([p[0] for p in pairs], -1), torch.stack([p[1] for p in pairs], -1)


def log_factor(a: Tensor, b: Tensor, nu: Tensor) -> Tensor:
    """Σ_k a_k ν_k + b_k ν_k²: a, b (n, K) events, ν (m, K) points → (m, n)."""
    return nu @ a.T + (nu**2) @ b.T


def log_constraint(nu: Tensor) -> Tensor:
    """−Σ_k ν_k²/2 of ν (m, K) → (m,)."""
    return -0.5 * (nu**2).sum(-1)
