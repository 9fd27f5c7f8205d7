"""Simulators: the protocol, the adapters and the built-ins with exact truth."""

from .base import BlackBoxSimulator, Draws, ExponentialFamily, Simulator, box_prior, draw_prior
from .galton import GaltonBoard
from .lensing import StrongLensing
from .lotka_volterra import LotkaVolterra
from .mixture import GaussianMixture
from .poisson import Poisson
from .priors import check_prior, log_uniform
from .pyro import PyroSimulator
from .weinberg import Weinberg
from .slcp import SLCP
from .two_moons import TwoMoons

__all__ = ["BlackBoxSimulator", "Draws", "Simulator", "box_prior", "GaltonBoard", "LotkaVolterra", "GaussianMixture", "Poisson", "PyroSimulator",
           "Weinberg", "draw_prior", "check_prior", "log_uniform", "ExponentialFamily",
           "StrongLensing", "SLCP", "TwoMoons"]
