"""θ grids: the points a region is evaluated on, their mesh neighbours for refining maxima, and their cells.

A grid is either a Cartesian mesh (`Model.grid()`, or points per axis), on which a maximum over the
grid is refined by the quadratic through the best point's neighbours, or any set of points (g, d).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..simulators.base import DTYPE
from .model import Model

__all__ = ["Mesh", "cell_volume", "make_grid", "nearest"]


def make_grid(model: Model, grid) -> Tensor:
    """The θ grid (g, d): `model.grid()` for None, that many points per axis for an integer, else the
    points given, checked."""
    if grid is None:
        return model.grid()
    if isinstance(grid, (int, np.integer)) and not isinstance(grid, bool):
        if grid < 2:
            raise ValueError(f"grid must be at least 2 points per axis; got {grid}.")
        return model.grid(int(grid))
    return model.check_theta(grid, "grid")


class Mesh:
    """The neighbours of the points of a θ grid that is a Cartesian mesh, for refining maxima."""

    def __init__(self, grid: Tensor):
        g, d = grid.shape
        axes = [torch.unique(grid[:, a]) for a in range(d)]
        self.shape = torch.tensor([len(u) for u in axes])
        self.index = None
        if int(self.shape.prod()) == g:
            multi = torch.stack([torch.searchsorted(axes[a], grid[:, a].contiguous()) for a in range(d)], 1)
            index = torch.full(tuple(self.shape.tolist()), -1, dtype=torch.long)
            index[tuple(multi.T)] = torch.arange(g)
            if bool((index >= 0).all()):
                self.index, self.multi = index, multi

    def maximum(self, values: Tensor) -> Tensor:
        """The maximum over the grid of each row of values (t, g) → (t,), refined by the quadratic
        through the best point's neighbours (a Newton step in grid units, kept within one step; the
        best one-axis parabola where the full quadratic is not concave there)."""
        values = values.nan_to_num(nan=-math.inf, neginf=-math.inf)
        best = values.argmax(1)
        top = values.gather(1, best[:, None])[:, 0]
        if self.index is None:
            return top
        m = self.multi[best]  # (t, d)
        d = m.shape[1]
        eye = torch.eye(d, dtype=torch.long)

        def at(offset: Tensor) -> Tensor:
            idx = self.index[tuple(torch.minimum((m + offset).clamp(min=0), self.shape - 1).T)]
            return values.gather(1, idx[:, None])[:, 0]

        plus = torch.stack([at(eye[a]) for a in range(d)], 1)
        minus = torch.stack([at(-eye[a]) for a in range(d)], 1)
        ok = (m > 0) & (m < self.shape - 1) & torch.isfinite(plus) & torch.isfinite(minus)
        ok &= torch.isfinite(top)[:, None]
        grad = torch.where(ok, (plus - minus) / 2, 0.0)
        curv = torch.where(ok, plus - 2 * top[:, None] + minus, -1.0)
        hess = torch.diag_embed(curv)
        for a in range(d):
            for b in range(a + 1, d):
                cross = (at(eye[a] + eye[b]) - at(eye[a] - eye[b]) - at(eye[b] - eye[a]) + at(-eye[a] - eye[b])) / 4
                cross = torch.where(ok[:, a] & ok[:, b] & torch.isfinite(cross), cross, 0.0)
                hess[:, a, b] = hess[:, b, a] = cross
        # the full quadratic where it is concave with its peak within one step
        chol, info = torch.linalg.cholesky_ex(-hess)
        chol = torch.where((info == 0)[:, None, None], chol, torch.eye(d, dtype=DTYPE))
        shift = torch.cholesky_solve(grad[:, :, None], chol)[:, :, 0]
        full = 0.5 * (grad * shift).sum(1)
        full_ok = (info == 0) & (shift.abs() <= 1).all(1) & torch.isfinite(full)
        # else the best single-axis parabola
        axis_shift = -grad / curv
        axis_gain = torch.where((curv < 0) & (axis_shift.abs() <= 1), 0.5 * grad * axis_shift, 0.0).amax(1)
        return top + torch.where(full_ok, full, axis_gain).clamp(min=0.0)


def cell_volume(grid: Tensor) -> float:
    """The volume per point of a θ grid: the mesh's cell, or the bounding box over the points."""
    span = grid.amax(0) - grid.amin(0)
    counts = torch.tensor([len(torch.unique(grid[:, a])) for a in range(grid.shape[1])])
    if int(counts.prod()) == len(grid):
        return float(torch.where(counts > 1, span / (counts - 1).clamp(min=1), 1.0).prod())
    return float(span.prod()) / len(grid)


def nearest(grid: Tensor, theta: Tensor) -> Tensor:
    """The index of the grid point nearest each θ (m, d) → (m,), in units of the grid's span."""
    scale = (grid.amax(0) - grid.amin(0)).clamp(min=1e-300)
    return torch.cdist(theta / scale, grid / scale).argmin(1)
