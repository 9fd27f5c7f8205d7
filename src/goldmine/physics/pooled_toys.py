"""Profiled toys at the cost of one table: the shape terms of every distinct event once per grid point and ν node.

`toy_limits` profiles ν for every toy at every grid point θ_g, evaluating the shape model on each
(event, θ_g, ν) the minimiser visits: T toys of n events cost T · G · n · (iterations) · (K + 1)
evaluations of a surrogate. Toys drawn from a finite sample of weighted events (`WeightedEvents`:
unweighting resamples its events) repeat the same J events, and

    Σ_i log r̂(x_i|θ_g, ν) = Σ_j c_tj log r̂(x_j|θ_g, ν)        (c_tj: how often toy t drew event j)

is linear in the table log r̂(x_j|θ_g, ν). On a tensor-product grid of P Chebyshev nodes per nuisance
over [−b, b] (ν_k = b cos((2k + 1)π / 2P)) the table costs J · G · P^K evaluations, whatever the number
of toys, and each toy's shape term is the tensor-product Lagrange interpolant through its node values

    S_t(θ_g, ν) = Σ_n L_n(ν) Σ_j c_tj log r̂(x_j|θ_g, ν_n),     L_n(ν) = Π_k ℓ_{n_k}(ν_k),

a polynomial of degree P − 1 in each ν_k, cheap and differentiable; log σ(θ_g, ν), the same for every toy, is
interpolated alike (a weighted-event source sums all its events for each σ). ν̂(θ_g) maximises the toy's
extended likelihood with these and the exact constraint terms, with the same L-BFGS as `profile`. The toys are those of `toy` (same seeds),
so only the ν-dependence of the shape term and of σ is approximated; with odd P, ν = 0 is a node, and the toys with
ν fixed ("without systematics") are exact. The interpolation error of a smooth function on Chebyshev
nodes falls geometrically with P (Trefethen, "Approximation Theory and Approximation Practice", SIAM
2013, ch. 8); `compare_profiles` measures it against the exact profile of a few toys.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..simulators.base import DTYPE
from .events import NUISANCE_RANGE
from .limits import EventData, ExtendedLikelihood, Profile, ToyLimits, limits_of_toys, profile, toy
from .nuisance import log_constraint

#: Chebyshev nodes per nuisance: odd, so that ν = 0 is a node
NODES = 7


def chebyshev_nodes(nodes: int, bound: float) -> Tensor:
    """The P Chebyshev points of the first kind over [−b, b], (P,) ascending."""
    k = torch.arange(nodes, dtype=DTYPE)
    return (bound * torch.cos((2 * k + 1) * math.pi / (2 * nodes))).flip(0)


def lagrange_basis(nu: Tensor, nodes: Tensor) -> Tensor:
    """Tensor-product Lagrange basis at ν (m, K) on P nodes per axis: (m, P^K), the nodes ordered as
    `node_grid` (the first axis slowest); differentiable in ν."""
    p = len(nodes)
    diff = nodes[:, None] - nodes[None, :] + torch.eye(p, dtype=DTYPE)  # (P, P), ones on the diagonal
    out = torch.ones(nu.shape[0], 1, dtype=nu.dtype)
    for k in range(nu.shape[1]):
        factors = (nu[:, k, None, None] - nodes[None, None, :]) / diff[None]  # (m, P_i, P_j): (ν − c_j)/(c_i − c_j)
        eye = torch.eye(p, dtype=torch.bool)
        one_d = torch.where(eye[None], torch.ones((), dtype=nu.dtype), factors).prod(-1)  # (m, P)
        out = (out[:, :, None] * one_d[:, None, :]).reshape(nu.shape[0], -1)
    return out


def node_grid(nodes: Tensor, k: int) -> Tensor:
    """The tensor-product nodes (P^K, K), the first axis slowest."""
    if k == 0:
        return torch.zeros(1, 0, dtype=DTYPE)
    return torch.stack(torch.meshgrid(*[nodes] * k, indexing="ij"), -1).reshape(-1, k)


def grid_by_nodes(grid: Tensor, nu_nodes: Tensor) -> Tensor:
    """Every grid point with every ν node, (G·N, d + K), the nodes varying fastest."""
    return torch.cat([grid.repeat_interleave(nu_nodes.shape[0], 0), nu_nodes.repeat(grid.shape[0], 1)], -1)


class _InterpolatedToy:
    """The extended likelihood of one toy with its shape term and log σ interpolated in ν (duck-types the parts
    of `ExtendedLikelihood` that `profile` uses). Rows of `params` are the grid's points in order."""

    values_only = False

    def __init__(self, base: ExtendedLikelihood, values: Tensor, log_sigma: Tensor, nodes: Tensor | None):
        self.base, self.values, self.log_sigma, self.nodes = base, values, log_sigma, nodes
        self.poi_dim, self.nuisance_dim = base.poi_dim, base.nuisance_dim

    def log_likelihood(self, params: Tensor, data: EventData) -> Tensor:
        nu = params[:, self.poi_dim:]
        basis = torch.ones(params.shape[0], 1, dtype=DTYPE) if self.nodes is None else lagrange_basis(nu, self.nodes)
        out = log_constraint(nu if data.auxiliary is None else nu - data.auxiliary.to(nu.dtype))
        if self.base.rate:
            mu = self.base.luminosity * torch.exp((basis * self.log_sigma).sum(-1))
            out = out + data.count * torch.log(mu) - mu
        return out + (basis * self.values).sum(-1)

    def gradient(self, params: Tensor, data: EventData) -> tuple[Tensor, Tensor]:
        params = params.detach().requires_grad_(True)
        with torch.enable_grad():
            value = self.log_likelihood(params, data)
            (g,) = torch.autograd.grad(value.sum(), params)
        return value.detach(), g[:, self.poi_dim:]


def _nodes(likelihood: ExtendedLikelihood, systematics: bool, nodes: int, bound: float) -> tuple[Tensor | None, Tensor]:
    """The 1-D nodes (None with ν fixed) and the tensor-product nodes (N, K) (ν = 0 alone with ν fixed)."""
    k = likelihood.nuisance_dim if systematics else 0
    if not k:
        return None, torch.zeros(1, likelihood.nuisance_dim, dtype=DTYPE)
    node_1d = chebyshev_nodes(nodes, bound)
    return node_1d, node_grid(node_1d, k)


def log_sigma_table(likelihood: ExtendedLikelihood, grid: Tensor, systematics: bool, nodes: int = NODES,
                    bound: float = NUISANCE_RANGE) -> Tensor:
    """log σ(θ_g, ν_n) at every grid point and ν node: (G, N), the same for every toy."""
    _, nu_nodes = _nodes(likelihood, systematics, nodes, bound)
    with torch.no_grad():
        return torch.log(likelihood.cross_section(grid_by_nodes(grid, nu_nodes))).to(DTYPE).reshape(grid.shape[0], -1)


def pooled_toy_limits(likelihood: ExtendedLikelihood, grid, source, theta, toys: int, seed: int = 0,
                      levels=(0.68, 0.95), systematics: bool = True, nodes: int = NODES,
                      bound: float = NUISANCE_RANGE, progress: bool = True, also: tuple = ()) -> ToyLimits:
    """`toy_limits` for toys that repeat the events of a finite sample, ν profiled on interpolated shape terms.

    Arguments:
        likelihood, grid (G, d), source, theta (d + K,), toys, seed, levels: as for `toy_limits`
            (the same toys: `toy(source, θ, L, seed + t)`).
        systematics: profile ν (True) or fix it at 0 (exact: the table at ν = 0 only).
        nodes: Chebyshev nodes P per nuisance over [−bound, bound] (the profile's range).
        also: other data sets (`EventData`, e.g. the Asimov data) profiled from the same table: their events
            join the toys' distinct events, so that no event is tabulated twice.

    Returns:
        `ToyLimits` of the toys; with `also`, its `.also` holds their `Profile`s in order.

    Raises:
        ValueError: `likelihood` has no shape model (a rate-only likelihood needs no table: use `toy_limits`).
    """
    if likelihood.model is None:
        raise ValueError("pooled_toy_limits tabulates the shape terms; a rate-only likelihood has none: use toy_limits.")
    theta = torch.as_tensor(theta, dtype=DTYPE).reshape(-1)
    grid = torch.as_tensor(grid, dtype=DTYPE).reshape(-1, likelihood.poi_dim)
    drawn = [toy(source, theta, likelihood.luminosity, seed=seed + t) for t in range(toys)]
    also = list(also)
    profiles = pooled_profiles(likelihood, grid, also + drawn, systematics, nodes, bound, progress)
    extra = [next(profiles) for _ in also]
    found = limits_of_toys(theta, grid, levels, zip(drawn, profiles))
    found.also.extend(extra)
    return found


def pooled_profiles(likelihood: ExtendedLikelihood, grid: Tensor, data_sets: list[EventData], systematics: bool,
                    nodes: int = NODES, bound: float = NUISANCE_RANGE, progress: bool = False):
    """The `Profile` on `grid` of each data set in turn (a generator), their shape terms from one table
    (`interpolated_toys`: each distinct event of all the data sets evaluated once per grid point and ν node)."""
    from tqdm.auto import tqdm

    models = interpolated_toys(likelihood, grid, data_sets, systematics, nodes, bound, progress)
    for data, model in tqdm(zip(data_sets, models), total=len(data_sets), desc="toy profiles", disable=not progress,
                            dynamic_ncols=True):
        yield profile(model, grid, data, systematics=systematics, bound=bound)


def interpolated_toys(likelihood: ExtendedLikelihood, grid: Tensor, drawn: list[EventData], systematics: bool,
                      nodes: int = NODES, bound: float = NUISANCE_RANGE, progress: bool = False) -> list:
    """Each data set's extended likelihood with its shape term and log σ interpolated in ν (`toy_shape_tables`,
    `log_sigma_table`), for `profile` on `grid`."""
    values, node_1d = toy_shape_tables(likelihood, grid, drawn, systematics, nodes, bound, progress)
    log_sigma = log_sigma_table(likelihood, grid, systematics, nodes, bound)
    return [_InterpolatedToy(likelihood, values[t], log_sigma, node_1d) for t in range(len(drawn))]


def toy_shape_tables(likelihood: ExtendedLikelihood, grid: Tensor, drawn: list[EventData], systematics: bool,
                     nodes: int = NODES, bound: float = NUISANCE_RANGE,
                     progress: bool = False) -> tuple[Tensor, Tensor | None]:
    """Every toy's shape term Σ_i log r̂(x_i|θ_g, ν_n) at every grid point and ν node: (T, G, P^K), each
    distinct event evaluated once per (θ_g, ν_n), and the 1-D nodes (P,) (None with ν fixed at 0: one node).
    A toy without events has zeros; a (toy, θ_g, ν_n) whose events include a non-finite term gets −inf."""
    from tqdm.auto import tqdm

    node_1d, nu_nodes = _nodes(likelihood, systematics, nodes, bound)
    with_events = [d for d in drawn if d.x is not None]
    out = torch.zeros(len(drawn), grid.shape[0], nu_nodes.shape[0], dtype=DTYPE)
    if not with_events:
        return out, node_1d
    distinct, inverse = torch.unique(torch.cat([d.x for d in with_events]), dim=0, return_inverse=True)
    counts = torch.zeros(len(drawn), distinct.shape[0], dtype=DTYPE)
    start = 0
    for t, d in enumerate(drawn):
        if d.x is None:
            continue
        counts[t].index_add_(0, inverse[start:start + d.x.shape[0]], d.weights.to(DTYPE))
        start += d.x.shape[0]
    step = max(1, 2**16 // nu_nodes.shape[0])
    for s in tqdm(range(0, grid.shape[0], step), desc="toy table", disable=not progress, dynamic_ncols=True):
        g = grid[s:s + step]
        with torch.no_grad():
            table = likelihood.shape_terms(grid_by_nodes(g, nu_nodes), distinct).to(DTYPE)  # (g·N, J)
        finite = torch.isfinite(table)
        summed = counts @ torch.where(finite, table, torch.zeros((), dtype=DTYPE)).T  # (T, g·N)
        bad = (counts > 0).to(DTYPE) @ (~finite).to(DTYPE).T > 0
        out[:, s:s + step] = torch.where(bad, -torch.inf, summed).reshape(len(drawn), g.shape[0], -1)
    return out, node_1d


def interpolated_profile(likelihood: ExtendedLikelihood, grid, data: EventData, systematics: bool = True,
                         nodes: int = NODES, bound: float = NUISANCE_RANGE) -> Profile:
    """`profile` of one data set (observed or Asimov) with its shape term interpolated in ν between Chebyshev
    nodes: G · P^K evaluations per distinct event instead of one per event and L-BFGS step (for a surrogate,
    whose shape terms the minimiser would difference: K + 1 evaluations per step). Exact with ν fixed."""
    grid = torch.as_tensor(grid, dtype=DTYPE).reshape(-1, likelihood.poi_dim)
    if likelihood.model is None:
        return profile(likelihood, grid, data, systematics=systematics, bound=bound)
    return next(pooled_profiles(likelihood, grid, [data], systematics, nodes, bound))


def compare_profiles(likelihood: ExtendedLikelihood, grid, source, theta, toys: int, seed: int = 0,
                     nodes: int = NODES, bound: float = NUISANCE_RANGE) -> dict:
    """The interpolation's error on the first `toys` toys, ν profiled: the largest |q_pooled − q_exact| over
    the grid, and over the points with q_exact < 12 (where regions are decided), against `profile`."""
    theta = torch.as_tensor(theta, dtype=DTYPE).reshape(-1)
    grid = torch.as_tensor(grid, dtype=DTYPE).reshape(-1, likelihood.poi_dim)
    drawn = [toy(source, theta, likelihood.luminosity, seed=seed + t) for t in range(toys)]
    models = interpolated_toys(likelihood, grid, drawn, True, nodes, bound)
    worst, worst_near = 0.0, 0.0
    for data, model in zip(drawn, models):
        exact = profile(likelihood, grid, data, bound=bound).q
        pooled = profile(model, grid, data, bound=bound).q
        diff = (pooled - exact).abs()
        worst = max(worst, float(diff.max()))
        worst_near = max(worst_near, float(diff[exact < 12.0].max()))
    return {"toys": toys, "nodes": nodes, "max_abs_q_error": worst, "max_abs_q_error_where_q_below_12": worst_near}
