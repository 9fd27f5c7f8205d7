"""The workflow's pieces, shared by the `goldmine` command and by studies, one concern per module.

    simulators     `make_simulator` (a built-in name or an import path `pkg.mod:Class`), rebuilding the
                   simulator recorded in a data set, `has_exact`, `describe_prior`
    training       a method's options (from the registry and its estimator), `make_estimator`, `train`
                   (atomic: a hidden folder swapped into place once the model is saved; it replaces only
                   a model goldmine wrote, see `goldmine.folders`), `model_simulator`
    evaluation     `evaluate_model`: errors against the exact likelihood, by what the estimator can do
    observations   `load_observed` (a file) / `generate_observed` (runs at a true θ)
    estimates      `inference_source` and `infer`: the MLE and a confidence region as plain JSON values
    report         one-line texts of results and errors, `plot_inference`
    files          `jsonable`, `write_json`

The methods themselves are the registry's (`goldmine.estimators.registry`).
"""

from .estimates import exact_cost, infer, inference_source
from .evaluation import evaluate_model
from .files import jsonable, write_json
from .observations import generate_observed, load_observed
from .report import duration, metric_text, one_line, plot_inference, region_notes, region_text
from ..simulators.base import has_exact
from .simulators import BUILTIN_SIMULATORS, check_call, describe_prior, import_object, make_simulator, \
    simulator_from_data, simulator_target
from .training import MODEL_FILES, TRAINING_OPTIONS, canonical_options, estimator_class, make_estimator, \
    method_options, model_simulator, read_trained_on, train

__all__ = ["duration", "exact_cost", "BUILTIN_SIMULATORS", "MODEL_FILES", "TRAINING_OPTIONS", "canonical_options", "check_call",
           "describe_prior", "estimator_class", "evaluate_model", "generate_observed", "has_exact", "import_object", "infer",
           "inference_source", "jsonable", "load_observed", "make_estimator", "make_simulator", "method_options",
           "metric_text", "model_simulator", "one_line", "plot_inference", "read_trained_on", "region_notes",
           "region_text", "simulator_from_data", "simulator_target", "train", "write_json"]
