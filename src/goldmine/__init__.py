"""goldmine: simulation-based inference that mines gold from simulators.

The package's layers, a data set's rows, the protocols between the parts and how to add a simulator or
a method are described in docs/architecture.md.
"""

from . import evaluate, inference, simulators
from .data import Dataset, simulate
from .gold_check import GoldCheck, check_gold
from .estimators import ALFI, Ensemble, HistogramRatio, LikelihoodEstimator, PosteriorEstimator, RatioEstimator, ScoreEstimator, load
from .memory import InMemoryData
from .mining import Gold, mine
from .pipeline import infer
from .training import Trainer

__version__ = "0.1.0"


def __getattr__(name: str):
    # gm.plots on first use: matplotlib costs a second at import, which the command line should not pay;
    # gm.physics likewise, on first use
    if name in ("plots", "physics"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'goldmine' has no attribute {name!r}")

__all__ = ["check_gold", "GoldCheck", "ALFI", "Ensemble", "evaluate", "inference", "physics", "plots", "simulators", "Dataset", "simulate", "Gold", "mine", "HistogramRatio", "LikelihoodEstimator", "PosteriorEstimator", "RatioEstimator", "ScoreEstimator", "Trainer", "load", "InMemoryData", "infer"]
