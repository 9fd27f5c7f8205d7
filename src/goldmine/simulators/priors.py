"""Priors over θ: any torch distribution with `log_prob` and `sample`, checked once at the boundary.

goldmine draws θ from a prior (`draw_prior`), evaluates log π(θ) (MCMC, ABC's importance weights,
sequential rounds) and asks where it is defined (its support). A uniform box is one prior among
others; a Gaussian, a log-uniform (`log_uniform`), a product of independent ones
(`torch.distributions.Independent`, or your own subclass of `torch.distributions.Distribution`) work
the same way.

Two things need more than the prior:

- npe restricts its posterior to the prior's support, which it stores as one interval per θ
  dimension (`support_bounds`, ±inf where unbounded); a support that is not such a product of
  intervals (a simplex) is refused.
- Grids over θ (maximum likelihood, confidence regions, the normaliser of a posterior's density)
  need a bounded box: the prior's support when it is bounded, else the box given by the user, else
  the central `mass` of the prior's marginals (`grid_box`), from seeded draws.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution, ExpTransform, Independent, TransformedDistribution, Uniform

from .base import DTYPE, draw_prior

#: the central mass per θ dimension of the default grid box of an unbounded prior
GRID_MASS = 0.999
#: seeded prior draws behind the quantiles of that box
GRID_DRAWS = 100_000

__all__ = ["check_prior", "grid_box", "log_uniform", "support_bounds"]


def check_prior(prior, theta_dim: int | None = None, what: str = "prior") -> Distribution:
    """`prior` itself, once it is known to draw (`sample`) and to have a density (`log_prob`) that is finite, one
    number per θ, at its own draws.

    Raises:
        TypeError: no `sample` or no `log_prob`, or a `log_prob` that raises NotImplementedError (a
            `torch.distributions.Distribution` subclass that did not implement it), naming the fix.
        ValueError: an event shape other than (theta_dim,); a log_prob that is not one number per draw, or is
            NaN or −inf at the prior's own draws.
    """
    fix = ("give a torch.distributions prior with sample and log_prob, e.g. "
           "Independent(Normal(loc, scale), 1), gm.simulators.box_prior(low, high) or "
           "gm.simulators.log_uniform(low, high), or implement log_prob(theta) in your Distribution subclass")
    for method in ("sample", "log_prob"):
        if not callable(getattr(prior, method, None)):
            raise TypeError(f"{what} ({type(prior).__name__}) has no {method}: {fix}.")
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            draw = prior.sample((2,))
        log_p = prior.log_prob(draw)
    except NotImplementedError:
        raise TypeError(f"{what} ({type(prior).__name__}) does not implement log_prob (or sample): {fix}.") from None
    shape = tuple(getattr(prior, "event_shape", ()) or ())
    if theta_dim is not None and shape != (theta_dim,) and not (theta_dim == 1 and shape == ()):
        raise ValueError(f"{what} has event shape {shape}, but θ has dimension {theta_dim}: pass a prior over "
                         f"({theta_dim},), e.g. Independent(..., 1) of one distribution per θ dimension.")
    log_p = torch.as_tensor(log_p)
    if log_p.shape != (2,):
        raise ValueError(f"{what}'s log_prob of 2 draws has shape {tuple(log_p.shape)}, not (2,): it must give one "
                         "log-density per θ; wrap independent components in Independent(..., 1) so that the θ "
                         "dimensions form the event.")
    if not bool((log_p > -math.inf).all()):  # NaN fails this too
        raise ValueError(f"{what}'s log_prob at its own draws {draw.tolist()} is {log_p.tolist()}: a prior must have a "
                         "finite log-density where it draws; check its log_prob (and its support).")
    return prior


def support_bounds(prior: Distribution) -> tuple[Tensor, Tensor]:
    """The prior's support as one interval per θ dimension: (low, high), (theta_dim,) float64 each, ±inf
    where unbounded (a Gaussian: (−inf, inf); a log-normal: (0, inf)).

    Raises:
        ValueError: a support that is no product of intervals (a simplex, a user's constraint).
    """
    shape = tuple(prior.event_shape) or (1,)
    base = prior.base_dist if isinstance(prior, Independent) else prior
    if isinstance(base, Uniform):
        return (base.low.to(DTYPE).expand(shape).clone(), base.high.to(DTYPE).expand(shape).clone())
    mapped = _monotone_image(base)
    if mapped is not None:
        return mapped[0].expand(shape).clone(), mapped[1].expand(shape).clone()
    support = prior.support
    while hasattr(support, "base_constraint"):
        support = support.base_constraint
    name = type(support).__name__
    if name in ("_Real", "_RealVector"):
        low, high = -math.inf, math.inf
    elif hasattr(support, "lower_bound") or hasattr(support, "upper_bound"):
        low, high = getattr(support, "lower_bound", -math.inf), getattr(support, "upper_bound", math.inf)
    else:
        raise ValueError(f"the prior's support ({support}) is not an interval in every θ dimension, so npe cannot "
                         "restrict its posterior to it: give npe prior=(low, high), the box to restrict to.")
    low = torch.as_tensor(low, dtype=DTYPE).expand(shape).clone()
    high = torch.as_tensor(high, dtype=DTYPE).expand(shape).clone()
    return low, high


def _monotone_image(dist) -> tuple[Tensor, Tensor] | None:
    """The interval of a uniform distribution mapped by monotone elementwise transforms (a log-uniform), or None."""
    if not isinstance(dist, TransformedDistribution):
        return None
    inner = dist.base_dist.base_dist if isinstance(dist.base_dist, Independent) else dist.base_dist
    if not isinstance(inner, Uniform):
        return None
    low, high = inner.low.to(DTYPE), inner.high.to(DTYPE)
    for t in dist.transforms:
        try:
            t.sign  # defined for monotone elementwise transforms only
        except NotImplementedError:
            return None
        low, high = t(low), t(high)
        low, high = torch.minimum(low, high), torch.maximum(low, high)
    return low, high


def grid_box(prior: Distribution, bounds=None, mass: float = GRID_MASS) -> tuple[Tensor, Tensor]:
    """A bounded box (low, high) for grids over θ: `bounds` when given, else the prior's support when it is
    bounded, else the central `mass` of each marginal of the prior (from GRID_DRAWS seeded draws),
    cut to the support.

    Arguments:
        prior: the prior.
        bounds: (low, high), one bound per θ dimension, or None.
        mass: the central mass per dimension of the box of an unbounded prior.

    Raises:
        ValueError: bounds that are not finite with low < high.
    """
    if bounds is not None:
        try:
            low, high = (torch.as_tensor(b, dtype=DTYPE).reshape(-1) for b in bounds)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"bounds must be (low, high), one bound per θ dimension each; got {bounds!r}.") from None
        if low.shape != high.shape or not (torch.isfinite(low).all() and torch.isfinite(high).all()
                                           and (low < high).all()):
            raise ValueError(f"bounds must be finite with low < high in every θ dimension; got low={low.tolist()}, "
                             f"high={high.tolist()}.")
        return low, high
    try:
        low, high = support_bounds(prior)
    except ValueError:
        low = high = None
    if low is not None and torch.isfinite(low).all() and torch.isfinite(high).all():
        return low, high
    draws = draw_prior(prior, GRID_DRAWS, seed=0)
    tail = (1 - mass) / 2
    q = torch.quantile(draws, torch.tensor([tail, 1 - tail], dtype=DTYPE), dim=0)
    if low is not None:
        return torch.maximum(q[0], low), torch.minimum(q[1], high)
    return q[0], q[1]


def log_uniform(low, high) -> Distribution:
    """A log-uniform prior on [low, high] per θ dimension (log θ uniform), float64, 0 < low < high."""
    low = torch.as_tensor(low, dtype=DTYPE).reshape(-1)
    high = torch.as_tensor(high, dtype=DTYPE).reshape(-1)
    if not ((low > 0).all() and (low < high).all() and torch.isfinite(high).all()):
        raise ValueError(f"log_uniform needs 0 < low < high, finite; got low={low.tolist()}, high={high.tolist()}.")
    return Independent(TransformedDistribution(Uniform(low.log(), high.log()), [ExpTransform()]), 1)
