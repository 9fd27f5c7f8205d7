"""goldmine: simulation-based inference that mines gold from simulators."""

from . import simulators
from .data import Dataset, simulate
from .estimators import RatioEstimator, ScoreEstimator, load
from .mining import Gold, mine
from .training import Trainer

__version__ = "0.1.0"

__all__ = ["simulators", "Dataset", "simulate", "Gold", "mine", "RatioEstimator", "ScoreEstimator", "Trainer", "load"]
