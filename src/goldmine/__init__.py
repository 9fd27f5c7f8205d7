"""goldmine: simulation-based inference that mines gold from simulators."""

from . import evaluate, inference, simulators
from .data import Dataset, simulate
from .estimators import ALFI, HistogramRatio, LikelihoodEstimator, PosteriorEstimator, RatioEstimator, ScoreEstimator, load
from .mining import Gold, mine
from .training import Trainer

__version__ = "0.1.0"

__all__ = ["ALFI", "evaluate", "inference", "simulators", "Dataset", "simulate", "Gold", "mine", "HistogramRatio", "LikelihoodEstimator", "PosteriorEstimator", "RatioEstimator", "ScoreEstimator", "Trainer", "load"]
