"""Training a method by name from the command line or a study: its options, its estimator, an atomic save.

The methods, their estimator classes and their own defaults come from the registry
(`goldmine.estimators.registry`); the options of a method are its estimator's constructor
arguments and, for neural methods, the Trainer's settings. A training writes into a fresh hidden
folder swapped into place once the model is saved, so a killed training never looks finished, and
it replaces only a folder that goldmine wrote (`goldmine.folders`).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import time
from pathlib import Path

from .. import checks
from ..data import Dataset
from ..estimators.ensemble import ENSEMBLE_FAMILIES, ensembled
from ..estimators.registry import get_method
from ..folders import replacing
from ..simulators.base import Simulator, box_bounds
from ..training import Trainer
from .files import write_json
from ..simulators.describe import rebuild
from .simulators import make_simulator, simulator_from_data, simulator_target


#: the files goldmine writes into a model folder (the estimator's, train's, evaluate's and infer's defaults):
#: the only ones a model folder may hold for `train` to replace it
MODEL_FILES = ("config.json", "weights.safetensors", "history.json", "trained_on.json", "evaluation.json",
               "inference.json", "inference.png")

#: the Trainer's settings (epochs, batch_size, lr, ...) and their defaults: options of every neural method
TRAINING_OPTIONS = {f.name: f.default for f in dataclasses.fields(Trainer) if f.name != "history"}


def estimator_class(method: str) -> type:
    """The estimator class that trains `method` (from the registry).

    Raises:
        ValueError: no such method.
        NotImplementedError: the method does not learn from a data set (alfi, abc).
    """
    spec = get_method(method)
    if not spec.trainable:
        raise NotImplementedError(f"{method} is not available from the command line or a study in this version "
                                  "of goldmine: it learns from the simulator itself rather than from a data set.")
    return spec.estimator


def method_options(method: str) -> dict:
    """The options of `method` and their defaults: the estimator's own (with the method's own defaults
    from the registry), then the Trainer's for neural methods.

    Example:
        >>> opts = method_options("alices")
        >>> opts["alpha"], opts["epochs"], method_options("rascal")["alpha"]
        (1.0, 50, 10.0)
    """
    cls = estimator_class(method)
    own = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name not in ("self", "method") and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            own[name] = list(p.default) if isinstance(p.default, tuple) else p.default
    spec = get_method(method)
    own.update((k, v) for k, v in spec.defaults.items() if k in own)  # e.g. rascal's weight of the score term
    if spec.family in ENSEMBLE_FAMILIES:  # k members on bootstrap resamples (goldmine.estimators.ensemble)
        own["ensemble"] = 1
    if spec.neural:
        own.update(TRAINING_OPTIONS)
        own.update(cls.TRAINING_DEFAULTS)  # e.g. the flows' lr
    return own


def canonical_options(method: str, options: dict | None) -> dict:
    """`options` with - written as _ and the former flow option `hidden_features` read as `hidden`; unknown ones
    raise."""
    known = method_options(method)
    out = {}
    for key, value in (options or {}).items():
        key = key.replace("-", "_")
        if key == "hidden_features" and "hidden" in known:  # the flows' name for `hidden` before one name
            key = "hidden"
        if key not in known:
            raise ValueError(f"{method} has no option {key!r}; its options are {', '.join(known)} "
                             f"(goldmine list {method}).")
        out[key] = value
    return out


def make_estimator(method: str, options: dict | None = None, prior_box=None):
    """An unfitted estimator for `method` with `options` (see `method_options`).

    Arguments:
        prior_box: (low, high) of the prior, given to an estimator that takes a `prior` (npe) unless its
            options name one.
    """
    cls = estimator_class(method)
    options = canonical_options(method, options)
    takes = inspect.signature(cls.__init__).parameters
    if "prior" in takes and options.get("prior") is None and prior_box is not None:
        options["prior"] = prior_box
    members = options.pop("ensemble", 1)
    estimator = cls(method=method, **options) if "method" in takes else cls(**options)
    return ensembled(estimator, members)


def fit_device(estimator, method: str, device) -> dict:
    """The device keyword for `estimator.fit`: {} for the CPU default; a device only for estimators that
    train a network (a histogram or a classical method is refused, with the fix, for any other device)."""
    if device is None:
        return {}
    device = checks.device(device)
    if "device" in inspect.signature(estimator.fit).parameters:
        return {"device": device}
    if device.type == "cpu":
        return {}
    raise ValueError(f"{method} trains no network and runs on the CPU only: leave out --device (or device=) "
                     f"for it; {device} serves the neural methods.")


def train(method: str, data, out, options: dict | None = None, progress: bool = True,
          record: dict | None = None, device=None) -> tuple[object, dict]:
    """Trains `method` on a data set and saves it to the folder `out`, which appears only when complete.

    `out` (resolved first, so `inner/..` is the folder it names) must be new, empty, or a model that
    goldmine saved (it carries goldmine's marker, `goldmine.folders`) holding only the files goldmine
    writes there (`MODEL_FILES`); anything else is refused before training, as is a place that cannot
    be written. The estimator is saved to a fresh hidden sibling folder and swapped in at the end, so a
    killed or failed training leaves `out` as it was; a previous model is removed only then. Besides the
    estimator's files, `trained_on.json` records the data set, its simulator, the options and the
    training time (and `record`). `device`: where a neural method trains (`goldmine.checks.device`; the
    CPU by default); the saved model holds CPU tensors whatever the device.

    Returns:
        The fitted estimator and the contents of trained_on.json.

    Raises:
        FileExistsError: `out` is a file, or a folder that holds anything goldmine did not write.
        NotADirectoryError, PermissionError: `out` cannot be written.
    """
    spec = get_method(method)
    options = dict(options or {})
    if spec.neural:
        options.setdefault("progress", progress)
    data = data if isinstance(data, Dataset) else Dataset(data)
    if not data.complete:
        raise ValueError(f"{data.path} is incomplete ({len(data)} of {data.meta['n']} rows): finish it first; the "
                         "same simulate call (or goldmine simulate command) resumes it.")
    prior_box, note = None, None
    if "prior" in method_options(method):  # npe: restricted to the box of the simulator's prior
        try:
            low, high = box_bounds(simulator_from_data(data.meta, data.path).prior)
            prior_box = None if low is None else [low.tolist(), high.tolist()]
        except ValueError:  # a simulator that is not built in (goldmine imports no module a file names)
            note = (f"the prior of {method} is the box of the data's θ: the data's simulator "
                    f"{data.meta.get('simulator_class') or data.simulator} is not built into goldmine, and goldmine "
                    "imports no module that a file names.")
    estimator = make_estimator(method, options, prior_box)
    fit_options = fit_device(estimator, method, device)
    with replacing(out, "model", MODEL_FILES, last="config.json") as partial:
        start = time.perf_counter()
        estimator.fit(data, **fit_options)
        seconds = time.perf_counter() - start
        history = getattr(estimator, "history_", None) or {}
        trained_on = {
            "method": method,
            "options": {k: v for k, v in canonical_options(method, options).items() if k != "progress"},
            "data": str(data.path.resolve()),
            "rows": len(data),
            "simulator": data.simulator,
            "simulator_class": data.meta.get("simulator_class"),
            "simulator_config": data.meta.get("simulator_config"),
            "seconds": seconds,
            "epochs": len(history.get("train_loss", [])) or None,
            "best_val_loss": history.get("best_val_loss"),
            "kept": history.get("kept"),  # the weights kept: "final" (the schedule's end) or "best" (early stopping)
            "kept_val_loss": history.get("kept_val_loss"),
            "stop_reason": history.get("stop_reason"),
            **({"note": note} if note else {}),
            **(record or {}),
        }
        estimator.save(partial)
        write_json(partial / "trained_on.json", trained_on)
    return estimator, trained_on


def read_trained_on(folder) -> dict:
    """The trained_on.json of a model folder, or {} for a model saved from Python."""
    path = Path(folder) / "trained_on.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def model_simulator(folder, spec: str | None = None, options: dict | None = None) -> Simulator:
    """The simulator named by `spec`, else the one recorded with the model (trained_on.json).

    A class named by `spec` without `options` that is the recorded simulator's class (by its name, so a
    class recorded from a script as __main__.Sim is found as mysims:Sim) is built with the recorded
    configuration, the one the training data came from; with `options`, or a function or another class,
    it is built from `options` alone. Nothing that the record names is imported.
    """
    record = read_trained_on(folder)
    if spec is not None:
        target = simulator_target(spec)
        qualified = record.get("simulator_class") or ""
        name = getattr(target, "__qualname__", None) if isinstance(target, type) else None
        if not options and name and (qualified == name or qualified.endswith("." + name)):
            return rebuild(record, simulator=target, where=str(folder))
        return make_simulator(spec, options)
    if options:
        raise ValueError("--sim-option needs --simulator: name the simulator the options are for.")
    if not record.get("simulator_class"):
        raise ValueError(f"{folder} does not record the simulator its data came from (it was not trained by "
                         "goldmine train): name it with --simulator (a built-in name or package.module:Class).")
    return simulator_from_data(record, folder)
