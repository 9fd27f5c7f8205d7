"""Inference with surrogates: maximum likelihood, confidence regions, posteriors and diagnostics."""

from .mle import MLE, mle, test_statistic
from .model import Model, as_model

__all__ = ["MLE", "Model", "as_model", "mle", "test_statistic"]
