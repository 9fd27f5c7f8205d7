"""goldmine: simulation-based inference that mines gold from simulators."""

from . import simulators
from .data import Dataset, simulate
from .mining import Gold, mine

__version__ = "0.1.0"

__all__ = ["simulators", "Dataset", "simulate", "Gold", "mine"]
