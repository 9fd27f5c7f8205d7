"""Estimators: surrogates of the likelihood ratio, the score, the likelihood and the posterior."""

from . import registry
from .alfi import ALFI
from .base import Estimator, load
from .ensemble import Ensemble
from .baselines import HistogramRatio
from .likelihood import LikelihoodEstimator
from .posterior import PosteriorEstimator
from .ratio import RatioEstimator
from .score import ScoreEstimator, SummaryHistogram

__all__ = ["ALFI", "Ensemble", "Estimator", "HistogramRatio", "LikelihoodEstimator", "PosteriorEstimator", "load", "RatioEstimator", "ScoreEstimator", "SummaryHistogram",
           "registry"]
