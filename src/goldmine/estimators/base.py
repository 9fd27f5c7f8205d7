"""What every neural estimator shares: settings, input checks, saving and loading without pickle.

A saved estimator is a folder:

    config.json           format version, class, constructor arguments, fitted dimensions, θ_ref and
                          the range of the training x
    weights.safetensors   the network's weights and buffers (standardisation statistics included)
    history.json          the Trainer's history of losses
    .goldmine             the marker that says goldmine wrote the folder (`goldmine.folders`)

`goldmine.load(folder)` rebuilds the estimator from these alone. docs/architecture.md describes the
format and how to add an estimator family.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from .. import checks
from ..data import Dataset, holds_x_dim
from ..folders import claim
from ..memory import as_data
from ..training import Trainer

#: the Trainer's settings, which every neural estimator takes as keyword arguments
TRAINING_SETTINGS = tuple(f.name for f in dataclasses.fields(Trainer) if f.name != "history")

FORMAT = 1
REGISTRY: dict[str, type["Estimator"]] = {}


def register(cls):
    """Class decorator: makes `goldmine.load` able to rebuild `cls` by its name."""
    REGISTRY[cls.__name__] = cls
    return cls


class Estimator:
    """Base class. Subclasses store their constructor arguments unchanged in `self.params`, build their
    network in `_build(theta_dim, x_dim)` and set the fitted attributes (ending in `_`) in `fit`.

    `kind` and `capabilities` say what inference can do with a fitted one (`goldmine.inference.surrogate`);
    the methods each subclass trains are registered in `goldmine.estimators.registry`."""

    network_: nn.Module | None = None
    kind: str = "estimator"
    capabilities: frozenset[str] = frozenset()
    #: the per-dimension range of the x it was fitted on, (x_dim,) each (None before fit, or for old saves)
    x_low_: Tensor | None = None
    x_high_: Tensor | None = None
    #: the shape of one x it was fitted on: (x_dim,) for a vector, e.g. (1, 64, 64) for images
    x_shape_: tuple[int, ...] | None = None
    #: the names of θ's components, the `theta_names` of the simulator of the data it was fitted on (None when
    #: the data do not say: rows in memory, a simulator of your own or one without names); inference and plots
    #: name θ by them when no simulator is given (`goldmine.checks.theta_names`)
    theta_names_: tuple[str, ...] | None = None

    #: weights the next fit starts from instead of a fresh initialisation (`start_from`), else None
    _start_state: dict | None = None

    #: the family's own defaults of Trainer settings (the flows and sally train with lr 1e-3 and batches
    #: of at least 128 rows, as their benchmarks did; the ratio family uses the Trainer's own defaults)
    TRAINING_DEFAULTS: dict = {}

    def __init__(self, **training):
        unknown = [k for k in training if k not in TRAINING_SETTINGS]
        if unknown:
            raise TypeError(f"{type(self).__name__} has no option {', '.join(map(repr, unknown))}; its training "
                            f"settings are {', '.join(TRAINING_SETTINGS)}.")
        training = {**self.TRAINING_DEFAULTS, **training}
        self.training = training
        self.trainer = Trainer(**training)  # validates the settings now, not at fit time
        self.history_: dict = {}

    # -- fitting -----------------------------------------------------------------------------

    def _build(self, theta_dim: int, x_dim: int) -> nn.Module:
        raise NotImplementedError

    def _resolve_method(self, data: Dataset | str, family: str) -> Dataset:
        """The data set, opened; a `method` left None becomes `family`'s default for these data (with or
        without gold, of their layout: `registry.default_method`), recorded in `params` so that a saved
        estimator names the method it was trained with."""
        from .registry import default_method

        data = as_data(data)  # a Dataset, its path, or tensors in memory (goldmine.memory)
        if self.method is None:
            self.method = default_method(family, data.has_gold, getattr(data, "layout", "pairs"))
            self.params["method"] = self.method
        return data

    def _setup(self, data: Dataset | str, fields: tuple[str, ...], method: str) -> Dataset:
        """Opens and checks the data set, and builds a freshly seeded network for it."""
        data = as_data(data)
        data.require(*fields, method=method)
        check_layout(data, method)
        self.theta_dim_, self.x_dim_ = data.theta_dim, data.x_dim
        self.x_shape_ = tuple(getattr(data, "x_shape", (data.x_dim,)))
        self.reference_ = data.reference.clone()
        self.theta_names_ = data_theta_names(data)
        # the range of x per element, for the warning beyond it; an x of more axes (images) has none: a pixel
        # beyond its training range says little about whether the image is
        self.x_low_, self.x_high_ = (data.x_range() or (None, None)) if len(self.x_shape_) == 1 else (None, None)
        torch.manual_seed(self.trainer.seed)
        self.network_ = self._build(self.theta_dim_, self.x_dim_)
        if self._start_state is not None:
            self.network_.load_state_dict(self._start_state)
        return data

    def start_from(self, other: "Estimator") -> "Estimator":
        """Makes the next fit start from the fitted weights of `other` (an estimator of the same settings) rather
        than from a fresh initialisation, and returns self; what fit derives from the data (standardisations) is
        derived afresh. Sequential rounds use it to refine one network over the rounds."""
        self._start_state = other._check_fitted().state_dict()
        return self

    def _train(self, loss, data, fields: tuple[str, ...], label: int | None = None, monitors: dict | None = None,
               device=None, finite: tuple[str, ...] | None = None) -> None:
        """Trains `network_` with the Trainer (on `device`, `checks.device`: the CPU by default; the network stays
        there, see `to`; `finite`: the fields that must be finite, `Trainer.fit`) and stores the history; a fit
        that fails (a TrainingError on non-finite rows or losses, or an interrupt) leaves the estimator unfitted,
        never with half-trained weights."""
        try:
            self.history_ = self.trainer.fit(self.network_, loss, data, fields, label=label, desc=self.method,
                                             monitors=monitors, device=device, finite=finite)
        except BaseException:
            self.network_, self.history_ = None, {}
            raise

    @property
    def device_(self) -> torch.device:
        """Where the fitted network lives and computes (the CPU unless fit or `to` was given a device)."""
        net = self._check_fitted()
        tensor = next(iter(net.parameters()), None)
        if tensor is None:
            tensor = next(iter(net.buffers()), None)
        return torch.device("cpu") if tensor is None else tensor.device

    def to(self, device) -> "Estimator":
        """Moves the fitted network to `device` ("cpu", "cuda", "mps", a torch.device or "auto",
        `checks.device`) and returns self: its methods then take inputs anywhere, compute there and return
        tensors on that device (inference brings them back to the CPU). A saved model holds CPU tensors.

        Raises:
            ValueError: a device this machine does not have (the message names the fix).
        """
        self._check_fitted().to(checks.device(device))
        return self

    def _check_fitted(self) -> nn.Module:
        if self.network_ is None:
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit(dataset) first.")
        return self.network_

    def _check_x(self, x) -> Tensor:
        """x as (n, *x_shape) float32: rows of the data's shape, flat rows (n, x_dim), or one x (x_shape)."""
        shape = self.x_shape_ or (self.x_dim_,)
        if len(shape) == 1:
            x = checks.rows(x, self.x_dim_, "x", dtype=torch.float32, hint=" (the data's x_dim)")
        else:
            x = checks.shaped_rows(x, shape, "x", dtype=torch.float32, hint=" (the data's x_shape)")
        return self._on_device(x)

    def _on_device(self, tensor: Tensor) -> Tensor:
        """`tensor` on the fitted network's device (itself when both are on the CPU)."""
        net = self.network_
        return tensor if net is None else tensor.to(self.device_)

    def _check_x_theta(self, x, theta) -> tuple[Tensor, Tensor]:
        """x (n, x_dim) and θ (n, theta_dim), a single θ (theta_dim,) or (1, theta_dim) broadcast to n."""
        x = self._check_x(x)
        theta = self._on_device(checks.rows(theta, self.theta_dim_, "theta", dtype=torch.float32))
        if theta.shape[0] not in (1, len(x)):
            raise ValueError(
                f"x has shape {tuple(x.shape)} and theta has shape {tuple(theta.shape)}: theta must be "
                f"(n, {self.theta_dim_}) with the same n as x, or a single point (1, {self.theta_dim_})."
            )
        return x, theta.expand(len(x), -1)

    # -- saving ------------------------------------------------------------------------------

    @classmethod
    def _restore(cls, config: dict, state: dict[str, Tensor]) -> "Estimator":
        """Rebuilds a saved estimator from its config.json and its tensors."""
        est = cls(**config["params"], **config["training"])
        fitted = config["fitted"]
        est.theta_dim_, est.x_dim_ = fitted["theta_dim"], fitted["x_dim"]
        est.x_shape_ = restore_shape(fitted)
        est.reference_ = torch.tensor(fitted["reference"], dtype=torch.float64)
        est.theta_names_ = restore_names(fitted)
        restore_range(est, fitted)
        est.network_ = est._build(est.theta_dim_, est.x_dim_)
        est.network_.load_state_dict(state)
        est.network_.eval()
        return est

    def save(self, path: str | Path) -> Path:
        """Writes config.json, weights.safetensors and history.json into the folder `path`."""
        network = self._check_fitted()
        config = {"class": type(self).__name__, "params": self.params, "training": self.training,
                  "fitted": self._fitted_record()}
        return write_folder(path, config, network.state_dict(), self.history_)  # device-free: CPU tensors

    def _fitted_record(self) -> dict:
        """What fit learned besides the weights, for config.json: dimensions, θ_ref, the names of θ, the range of x."""
        return {"theta_dim": self.theta_dim_, "x_dim": self.x_dim_, "reference": self.reference_.tolist(),
                **names_record(self), **shape_record(self), **range_record(self)}


class UnusedRunsWarning(UserWarning):
    """A method reads only the runs drawn at θ ~ prior, and the data spend some of their runs at θ_ref."""


def check_layout(data: Dataset, method: str) -> None:
    """Raises a ValueError when `method` needs runs at θ_ref and `data` has none (layout "prior"); warns
    (`UnusedRunsWarning`) when `method` reads only the runs at θ (nre, nres, npe) and the data hold runs at θ_ref,
    which it leaves unused: with the pairs layout, half the simulator runs."""
    from .registry import methods

    spec = methods().get(method)
    if spec is not None and spec.from_data and spec.label == 0:
        unused = reference_runs(data)
        if unused:
            warnings.warn(f"{method} reads only the runs drawn at θ ~ prior: {unused:,} of the {len(data):,} runs of "
                          f"{data.path} were drawn at θ_ref and are not used. Simulate with layout='prior' (goldmine "
                          "simulate --layout prior; gm.infer does) to spend every run on it.", UnusedRunsWarning,
                          stacklevel=4)
    if getattr(data, "layout", "pairs") == "prior" and spec is not None and spec.needs_reference_runs:
        raise ValueError(f"{method} needs runs drawn at θ_ref, and {data.path} has none (simulated with "
                         "layout='prior', every run at θ ~ prior): simulate with layout='pairs' (the default), or "
                         "train a method that needs no runs at θ_ref (nre, nres, npe, nle, scandal).")


def reference_runs(data) -> int:
    """How many rows of `data` were drawn at θ_ref (label 1): half of a pairs-layout data set's."""
    if getattr(data, "layout", None) == "prior":
        return 0
    if isinstance(data, Dataset):
        return len(data) // 2
    return int((data.tensors(["label"], drop_invalid=False)["label"] == 1).sum())


def write_folder(path: str | Path, config: dict, tensors: dict[str, Tensor], history: dict) -> Path:
    """Writes a saved estimator's folder: config.json (with the format), weights.safetensors, history.json.

    Raises:
        FileExistsError: `path` is a file, or a folder that is neither empty nor a saved estimator.
    """
    from safetensors.torch import save_file

    path = Path(path)
    claim(path, "model", "save into a new or empty folder, or one an estimator was saved to")
    (path / "config.json").write_text(json.dumps({"goldmine_format": FORMAT, **config}, indent=2))
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path / "weights.safetensors"))
    (path / "history.json").write_text(json.dumps(history, indent=1, default=float))
    return path


def load(path: str | Path, embedding=None, device=None) -> Estimator:
    """Rebuilds a saved estimator from its folder (no pickle).

    Arguments:
        path: the folder that `est.save(path)` wrote.
        embedding: the embedding network of your own (a torch.nn.Module built as when it was trained) of a model
            trained with one; its saved weights are loaded into a copy of it. A built-in embedding is rebuilt
            from config.json and needs nothing here (`goldmine.embeddings`).
        device: where the loaded network computes (`Estimator.to`): the CPU by default, whatever device it was
            trained on (saved weights are CPU tensors).

    Raises:
        FileNotFoundError: the folder or one of its files is missing.
        NotADirectoryError, IsADirectoryError: `path` is a file, or one of its files a folder.
        PermissionError: a file cannot be read.
        ValueError: a file is corrupt, lacks a key or holds a value of the wrong type, or was written by an
            incompatible version of goldmine. Every message names the file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    device = checks.device(device)
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path} is a file, not a model folder: give the folder that est.save(folder) or "
                                 "goldmine train -o wrote.")
    for name in ("config.json", "weights.safetensors"):
        _need_file(path, name)
    config_file = path / "config.json"
    config = _read_json(config_file)
    _check_config(config, config_file)
    cls = REGISTRY[config["class"]]
    config = _with_embedding(config, embedding, path)
    try:
        state = load_file(str(path / "weights.safetensors"))
    except PermissionError:
        raise PermissionError(f"cannot read {path / 'weights.safetensors'}: permission denied.") from None
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path / 'weights.safetensors'} is corrupt ({err}); save the estimator again.") from None
    try:
        est = cls._restore(config, state)
    except (ValueError, TypeError) as err:  # a setting or a fitted value the estimator refuses
        raise ValueError(f"{config_file}: {err}") from None
    except KeyError as err:
        raise ValueError(f"{path} is incomplete: {err} is missing from config.json or weights.safetensors; save the "
                         "estimator again.") from None
    except (RuntimeError, IndexError) as err:
        raise ValueError(f"{path / 'weights.safetensors'} does not fit {config_file} ({err}).") from None
    history = path / "history.json"
    est.history_ = _read_json(history) if history.exists() else {}
    if not isinstance(est.history_, dict):
        raise ValueError(f"{history} holds a JSON {type(est.history_).__name__}, not the training history (an "
                         "object): delete it to load the model without its history.")
    if device.type != "cpu" and callable(getattr(est, "to", None)):
        est.to(device)
    return est


def _with_embedding(config: dict, embedding, path: Path) -> dict:
    """config with the user's embedding module in place of its record (estimators and ensemble members)."""
    if embedding is None:
        return config
    if not isinstance(embedding, nn.Module):
        raise TypeError("embedding must be the torch.nn.Module the model was trained with; got "
                        f"{type(embedding).__name__}.")
    from ..embeddings import USER

    found = []

    def swap(value):  # every recorded user's module (an ensemble's members too) becomes `embedding`
        if isinstance(value, dict):
            if value.get("name") == USER and "class" in value:
                found.append(value)
                return embedding
            return {k: swap(v) for k, v in value.items()}
        return value

    out = {**config, "params": swap(config["params"])} if isinstance(config.get("params"), dict) else config
    found = bool(found)
    if not found:
        saved = config.get("params", {}).get("embedding")
        what = f"the built-in {saved.get('name')} embedding, rebuilt from config.json" if isinstance(saved, dict) else \
            "no embedding network"
        raise ValueError(f"{path} was saved with {what}: load it without embedding=.")
    return out


#: the keys of config.json and the JSON type of each value
CONFIG_KEYS = {"class": str, "params": dict, "training": dict, "fitted": dict}


def _need_file(folder: Path, name: str) -> None:
    file = folder / name
    if not file.exists():
        raise FileNotFoundError(f"{file} is missing: {folder} is not a saved goldmine estimator (est.save(folder)).")
    if file.is_dir():
        raise IsADirectoryError(f"{file} is a folder, not a file: {folder} is not a saved goldmine estimator.")
    if not file.is_file():
        raise ValueError(f"{file} is not a regular file (a device or a pipe): {folder} is not a saved goldmine "
                         "estimator.")


def _read_json(file: Path):
    """The JSON value of a file of a model folder; one-line errors that name the file."""
    try:
        text = file.read_text()
    except PermissionError:
        raise PermissionError(f"cannot read {file}: permission denied.") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{file} is a folder, not a file: {file.parent} is not a saved goldmine "
                                "estimator.") from None
    except UnicodeDecodeError:
        raise ValueError(f"{file} is corrupt (not text); save the estimator again.") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{file} is corrupt ({err}); save the estimator again.") from None


def _check_config(config, file: Path) -> None:
    """Raises a ValueError naming `file` when config.json is not an object with the keys and types of a saved
    estimator, of this format and a known class."""
    if not isinstance(config, dict):
        raise ValueError(f"{file} holds a JSON {type(config).__name__}, not a saved estimator's settings (an "
                         "object): it is corrupt; save the estimator again.")
    if config.get("goldmine_format") != FORMAT:
        raise ValueError(
            f"{file.parent} was saved in estimator format {config.get('goldmine_format')!r}; this goldmine reads "
            f"format {FORMAT}. Load it with the goldmine version that saved it, or train and save it again."
        )
    for key, kind in CONFIG_KEYS.items():
        if key not in config:
            raise ValueError(f"{file} lacks the key {key!r}: it is incomplete; save the estimator again.")
        if not isinstance(config[key], kind):
            raise ValueError(f"{file}: {key} must be a JSON {'string' if kind is str else 'object'}; got "
                             f"{config[key]!r}.")
    if config["class"] not in REGISTRY:
        raise ValueError(f"{file} holds an unknown estimator class {config['class']!r}; known: {', '.join(REGISTRY)}.")
    fitted = config["fitted"]
    for key in ("theta_dim", "x_dim"):
        if key not in fitted:
            raise ValueError(f"{file} lacks fitted {key}: it is incomplete; save the estimator again.")
        try:
            checks.positive_int(fitted[key], f"fitted {key}")
        except ValueError as err:
            raise ValueError(f"{file}: {err}") from None


def data_theta_names(data) -> tuple[str, ...] | None:
    """The names of θ's components of the simulator behind `data`: a "theta_names" of its header, else the
    `theta_names` of the built-in simulator its header records (rebuilt from the record by
    `simulators.describe.rebuild`, which imports nothing the file names); None for rows in memory, a simulator of
    your own (its code is not run from a file's record) or a simulator without names."""
    from ..simulators.describe import rebuild

    meta = getattr(data, "meta", None) or {}
    names = meta.get("theta_names")
    if names is None and meta.get("simulator_class"):
        try:
            names = getattr(rebuild(meta), "theta_names", None)
        except (ValueError, TypeError):  # not built in, or a record it cannot rebuild: the file gives no names
            names = None
    return checks.full_names(names, data.theta_dim)


def names_record(est) -> dict:
    """The names of θ's components an estimator was fitted with, for config.json's "fitted": {theta_names} or {}."""
    names = getattr(est, "theta_names_", None)
    return {} if names is None else {"theta_names": list(names)}


def restore_names(fitted: dict) -> tuple[str, ...] | None:
    """The theta_names_ of config.json's "fitted" (None for a model saved without them), checked against theta_dim."""
    names = fitted.get("theta_names")
    if names is None:
        return None
    if not isinstance(names, list) or checks.full_names(names, fitted["theta_dim"]) is None:
        raise ValueError(f"fitted theta_names {names!r} must be a list of theta_dim = {fitted['theta_dim']} strings.")
    return tuple(names)


def shape_record(est) -> dict:
    """The shape of one x an estimator was fitted on, for config.json's "fitted": {x_shape} when x has more
    than one axis, else {} (a vector x is described by x_dim alone, as before x_shape existed)."""
    shape = getattr(est, "x_shape_", None)
    return {} if shape is None or len(shape) == 1 else {"x_shape": list(shape)}


def restore_shape(fitted: dict) -> tuple[int, ...]:
    """The x_shape_ of config.json's "fitted", checked against x_dim; (x_dim,) when it has none."""
    shape = fitted.get("x_shape", [fitted["x_dim"]])
    if not holds_x_dim(shape, fitted["x_dim"]):
        raise ValueError(f"fitted x_shape {shape!r} must be a list of positive sizes with x_dim = {fitted['x_dim']} "
                         "elements.")
    return tuple(int(d) for d in shape)


def range_record(est) -> dict:
    """The range of the x an estimator was fitted on, for config.json's "fitted": {x_low, x_high} or {}."""
    if getattr(est, "x_low_", None) is None:
        return {}
    return {"x_low": est.x_low_.tolist(), "x_high": est.x_high_.tolist()}


def restore_range(est, fitted: dict) -> None:
    """Sets x_low_ and x_high_ from config.json's "fitted" (None for a model saved before goldmine recorded them)."""
    if fitted.get("x_low") is None:
        est.x_low_ = est.x_high_ = None
        return
    low = torch.tensor(fitted["x_low"], dtype=torch.float64).reshape(-1)
    high = torch.tensor(fitted["x_high"], dtype=torch.float64).reshape(-1)
    if low.shape != (est.x_dim_,) or high.shape != (est.x_dim_,):
        raise ValueError(f"fitted x_low and x_high must hold x_dim = {est.x_dim_} numbers each; got "
                         f"{fitted['x_low']!r} and {fitted['x_high']!r}.")
    est.x_low_, est.x_high_ = low, high

