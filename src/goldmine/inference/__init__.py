"""Inference with surrogates: maximum likelihood, confidence regions, posteriors and diagnostics."""

from .abc import ABCResult, rejection_abc, smc_abc
from .calibration import Calibration, expected_coverage
from .diagnostics import coverage
from .direct import DirectPosterior
from .fisher import CramerRao, cramer_rao, fisher_information
from .intervals import CalibrationWarning, Region, confidence_region, expected_limits
from .mle import MLE, mle, test_statistic
from .model import Model, as_model
from .convergence import ess, split_rhat
from .mcmc import Posterior, posterior
from .predictive import PosteriorChecks, PredictiveCheck, posterior_checks, predictive_check

__all__ = ["ABCResult", "Calibration", "CalibrationWarning", "CramerRao", "DirectPosterior", "MLE", "Model", "Posterior",
           "Region", "as_model", "confidence_region", "coverage", "cramer_rao", "ess", "expected_coverage", "expected_limits",
           "fisher_information", "mle", "posterior", "rejection_abc", "smc_abc", "split_rhat", "test_statistic"]
__all__ += ["PosteriorChecks", "PredictiveCheck", "posterior_checks", "predictive_check"]
