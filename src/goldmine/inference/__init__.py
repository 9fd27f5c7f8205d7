"""Inference with surrogates: maximum likelihood, confidence regions, posteriors and diagnostics."""

from .abc import ABCResult, rejection_abc, smc_abc
from .diagnostics import coverage
from .fisher import CramerRao, cramer_rao, fisher_information
from .intervals import Region, confidence_region, expected_limits
from .mle import MLE, mle, test_statistic
from .model import Model, as_model

__all__ = ["ABCResult", "CramerRao", "MLE", "Model", "Region", "as_model", "confidence_region", "coverage", "cramer_rao",
           "expected_limits", "fisher_information", "mle", "rejection_abc", "smc_abc", "test_statistic"]
