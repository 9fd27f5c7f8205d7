"""Particle physics the way MadMiner users work: gold from event weights and morphing, Les Houches
files, a built-in EFT process, nuisance parameters, rate-and-shape limits with profiling, Fisher
information, and the binned pyhf analysis as the baseline.

Reading LHE files (pylhe) and ROOT files (uproot), iminuit profiling and the pyhf baseline need the extra: pip install 'goldmine[physics]'.
"""

from .events import WeightedEvents
from .fisher import ellipse, ellipse_area, fisher_information
from .histfactory import histogram_limits, histogram_profile
from .lhe import LHEEvents, declared_weights, lhe_source, read_lhe, write_lhe
from .limits import (EventData, ExtendedLikelihood, Limits, Profile, ToyLimits, asimov, expected_limits, observed, profile,
                     toy, toy_limits, wilks_limits)
from .morphing import Morphing, choose_benchmarks, components
from .nuisance import Nuisance
from .pooled_toys import pooled_toy_limits
from .process import EFTProcess
from .root import read_root, variation_nuisances

__all__ = ["EFTProcess", "EventData", "ExtendedLikelihood", "LHEEvents", "Limits", "Morphing", "Nuisance", "Profile",
           "WeightedEvents", "asimov", "choose_benchmarks", "components", "declared_weights", "ellipse", "ellipse_area",
           "expected_limits", "fisher_information", "histogram_limits", "histogram_profile", "lhe_source",
           "observed", "pooled_toy_limits", "profile", "read_lhe", "read_root", "toy", "toy_limits", "ToyLimits", "variation_nuisances", "wilks_limits",
           "write_lhe"]
