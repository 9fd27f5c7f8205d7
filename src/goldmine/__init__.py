"""goldmine: simulation-based inference that mines gold from simulators."""

from . import simulators

__version__ = "0.1.0"
