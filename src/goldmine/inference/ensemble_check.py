"""Where the members of an ensemble disagree: their likelihood surfaces and regions on the θ grid.

A surrogate with the capability "ensemble" (`goldmine.estimators.ensemble`) is the mean of k
members in log space; inference uses the mean, and this module looks at the members one by one.
On the region's grid each member j gives its own

    q_j(θ) = −2 (ℓ_j(θ) − max ℓ_j),    R_j = {θ : q_j(θ) ≤ t(θ)}

with the region's threshold t (Wilks' or Neyman's toys of the mean). Where the R_j differ the
surrogate's training noise is as large as the statistical precision: the union of the R_j is
the conservative choice there (averaging and widening make approximate regions and posteriors
more conservative: Hermans et al.). `confidence_region` and `expected_limits` attach a
`MemberSpread` to every region of an ensemble (`Region.members`) and warn when the union exceeds
the members' mean size by more than `WARN_EXCESS`.

Reference:
    Hermans, Delaunoy, Rozet, Wehenkel, Begy, Louppe, "A trust crisis in simulation-based inference?
    Your posterior approximations can be unfaithful", https://arxiv.org/abs/2110.06581
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .grid import Mesh, cell_volume
from .model import Model
from .surrogate import capabilities

#: the union of the members' regions may exceed their mean size by this fraction before a warning
WARN_EXCESS = 0.5

__all__ = ["MemberSpread", "WARN_EXCESS", "member_spread"]


@dataclass
class MemberSpread:
    """How far the members of an ensemble agree on a region.

    Attributes:
        q: each member's q_j(θ) on the region's grid (k, g).
        inside: each member's region q_j ≤ t on the grid (k, g).
        union: θ inside any member's region (g,): the conservative region.
        sizes: each member's region size, grid cell volume × points inside (k,).
        union_size: the union's size, in the same measure.
        boundary_spread: the mean over the disputed grid points (inside some members' regions and
            outside others') of the members' standard deviation of q_j; 0 when they all agree.
    """

    q: Tensor = field(repr=False)
    inside: Tensor = field(repr=False)
    union: Tensor = field(repr=False)
    sizes: Tensor
    union_size: float
    boundary_spread: float

    @property
    def mean_size(self) -> float:
        """The members' mean region size."""
        return float(self.sizes.mean())

    @property
    def excess(self) -> float:
        """union size / mean size − 1: 0 when the members' regions agree (inf when they are all empty
        but the union is not, which cannot happen; 0 when everything is empty)."""
        mean = self.mean_size
        return self.union_size / mean - 1.0 if mean > 0 else 0.0


def member_spread(model: Model, grid: Tensor, x: Tensor, weights, threshold: Tensor,
                  statistic=None) -> MemberSpread | None:
    """The members' regions of an ensemble surrogate on `grid` (None for any other surrogate); warns
    (RuntimeWarning) when their union exceeds their mean size by more than `WARN_EXCESS`.

    Arguments:
        model: the Model of the region. grid: θ points (g, theta_dim). x, weights: the observations
        and their weights, as the region's fit saw them. threshold: t(θ) on the grid (g,).
        statistic: the region's q from ℓ on the grid, (k, g) → (k, g), when it is not the profile
            (a windowed Neyman region's `goldmine.inference.toys.Window.statistic`).
    """
    surrogate = model.surrogate
    if "ensemble" not in capabilities(surrogate):
        return None
    log_lik = torch.stack([Model(m, prior=model.prior).log_likelihood(grid, x, weights)
                           for m in surrogate.members_])
    if statistic is None:
        q = (2.0 * (Mesh(grid).maximum(log_lik)[:, None] - log_lik)).clamp(min=0.0)
    else:
        q = statistic(log_lik)
    inside = q <= threshold
    union, common = inside.any(0), inside.all(0)
    volume = cell_volume(grid)
    sizes = inside.sum(1).to(q.dtype) * volume
    disputed = union & ~common
    spread = float(q[:, disputed].std(0).mean()) if disputed.any() and len(q) > 1 else 0.0
    out = MemberSpread(q, inside, union, sizes, float(union.sum()) * volume, spread)
    if out.excess > WARN_EXCESS:
        warnings.warn(
            f"the {len(q)} members of the ensemble disagree on the region: their union is {1 + out.excess:.2f} "
            f"times their mean size (members' q spread {spread:.3g} where they differ). The surrogate's training "
            "noise is as large as the statistical precision here: take region.members.union as the conservative "
            "region, or train on more runs.",
            RuntimeWarning, stacklevel=3)
    return out
