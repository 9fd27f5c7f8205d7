"""Four-momenta as arrays: the kinematics that the EFT process and LHE observables share.

`FourMomenta` holds (e, px, py, pz) of many particles as tensors of one shape; sums are the
four-momenta of systems, and the usual observables (pt, eta, phi, m, rapidity) are properties, so
that an observable is an expression such as ``(p[0] + p[1]).m``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..simulators.base import DTYPE


class FourMomenta:
    """(e, px, py, pz), each a float64 tensor of one shape (one entry per event)."""

    def __init__(self, e, px, py, pz):
        self.e, self.px, self.py, self.pz = (torch.as_tensor(v, dtype=DTYPE) for v in (e, px, py, pz))

    def __add__(self, other: "FourMomenta") -> "FourMomenta":
        return FourMomenta(self.e + other.e, self.px + other.px, self.py + other.py, self.pz + other.pz)

    def __sub__(self, other: "FourMomenta") -> "FourMomenta":
        return FourMomenta(self.e - other.e, self.px - other.px, self.py - other.py, self.pz - other.pz)

    def scaled(self, factor: Tensor) -> "FourMomenta":
        return FourMomenta(self.e * factor, self.px * factor, self.py * factor, self.pz * factor)

    @property
    def pt(self) -> Tensor:
        return torch.hypot(self.px, self.py)

    @property
    def p(self) -> Tensor:
        return torch.sqrt(self.px**2 + self.py**2 + self.pz**2)

    @property
    def phi(self) -> Tensor:
        return torch.atan2(self.py, self.px)

    @property
    def eta(self) -> Tensor:
        return torch.asinh(self.pz / self.pt.clamp(min=1e-300))

    @property
    def rapidity(self) -> Tensor:
        return 0.5 * torch.log((self.e + self.pz) / (self.e - self.pz))

    @property
    def m2(self) -> Tensor:
        return self.e**2 - self.px**2 - self.py**2 - self.pz**2

    @property
    def m(self) -> Tensor:
        return torch.sqrt(self.m2.clamp(min=0.0))

    def boosted(self, by: "FourMomenta") -> "FourMomenta":
        """This momentum, given in the rest frame of `by`, in the frame where `by` has its momentum."""
        mass = by.m
        gamma = by.e / mass
        bx, by_, bz = by.px / by.e, by.py / by.e, by.pz / by.e
        bp = bx * self.px + by_ * self.py + bz * self.pz
        k = gamma**2 / (gamma + 1.0) * bp + gamma * self.e
        return FourMomenta(gamma * (self.e + bp), self.px + k * bx, self.py + k * by_, self.pz + k * bz)


def delta_phi(a: Tensor, b: Tensor) -> Tensor:
    """|φ_a − φ_b| folded into [0, π]."""
    d = torch.remainder(a - b, 2.0 * math.pi)
    return torch.minimum(d, 2.0 * math.pi - d)


def collins_soper(lepton: FourMomenta, antilepton: FourMomenta) -> Tensor:
    """cos θ* of the lepton in the Collins–Soper frame of the pair, with the +z beam as the quark's."""
    pair = lepton + antilepton
    plus1, minus1 = (lepton.e + lepton.pz) / math.sqrt(2.0), (lepton.e - lepton.pz) / math.sqrt(2.0)
    plus2, minus2 = (antilepton.e + antilepton.pz) / math.sqrt(2.0), (antilepton.e - antilepton.pz) / math.sqrt(2.0)
    mass = pair.m
    return 2.0 * (plus1 * minus2 - minus1 * plus2) / (mass * torch.sqrt(mass**2 + pair.pt**2))
