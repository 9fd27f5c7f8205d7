"""Inference with surrogates: maximum likelihood, confidence regions, posteriors and diagnostics."""

from .abc import ABCResult, rejection_abc, smc_abc
from .fisher import CramerRao, cramer_rao, fisher_information
from .mle import MLE, mle, test_statistic
from .model import Model, as_model

__all__ = ["ABCResult", "CramerRao", "MLE", "Model", "as_model", "cramer_rao", "fisher_information", "mle",
           "rejection_abc", "smc_abc", "test_statistic"]
