"""What every neural estimator shares: settings, input checks, saving and loading without pickle.

A saved estimator is a folder:

    config.json           format version, class, constructor arguments, fitted dimensions, θ_ref
    weights.safetensors   the network's weights and buffers (standardisation statistics included)
    history.json          the Trainer's history of losses
    .goldmine             the marker that says goldmine wrote the folder (`goldmine.folders`)

`goldmine.load(folder)` rebuilds the estimator from these alone. docs/architecture.md describes the
format and how to add an estimator family.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn

from .. import checks
from ..data import Dataset
from ..folders import claim
from ..training import Trainer

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

    def __init__(self, **training):
        self.training = training
        self.trainer = Trainer(**training)  # validates the settings now, not at fit time
        self.history_: dict = {}

    # -- fitting -----------------------------------------------------------------------------

    def _build(self, theta_dim: int, x_dim: int) -> nn.Module:
        raise NotImplementedError

    def _resolve_method(self, data: Dataset | str, gold: str, goldless: str) -> Dataset:
        """The data set, opened; a `method` left None becomes `gold` when the data have gold (the joint
        ratio and score of a simulator with a joint likelihood), else `goldless`, recorded in `params` so
        that a saved estimator names the method it was trained with."""
        if not isinstance(data, Dataset):
            data = Dataset(data)
        if self.method is None:
            self.method = gold if data.has_gold else goldless
            self.params["method"] = self.method
        return data

    def _setup(self, data: Dataset | str, fields: tuple[str, ...], method: str) -> Dataset:
        """Opens and checks the data set, and builds a freshly seeded network for it."""
        if not isinstance(data, Dataset):
            data = Dataset(data)
        data.require(*fields, method=method)
        self.theta_dim_, self.x_dim_ = data.theta_dim, data.x_dim
        self.reference_ = data.reference.clone()
        torch.manual_seed(self.trainer.seed)
        self.network_ = self._build(self.theta_dim_, self.x_dim_)
        return data

    def _train(self, loss, data, fields: tuple[str, ...], label: int | None = None) -> None:
        """Trains `network_` with the Trainer and stores the history; a fit that fails (a TrainingError on
        non-finite rows or losses, or an interrupt) leaves the estimator unfitted, never with half-trained
        weights."""
        try:
            self.history_ = self.trainer.fit(self.network_, loss, data, fields, label=label, desc=self.method)
        except BaseException:
            self.network_, self.history_ = None, {}
            raise

    def _check_fitted(self) -> nn.Module:
        if self.network_ is None:
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit(dataset) first.")
        return self.network_

    def _check_x(self, x) -> Tensor:
        return checks.rows(x, self.x_dim_, "x", dtype=torch.float32, hint=" (the data's x_dim)")

    def _check_x_theta(self, x, theta) -> tuple[Tensor, Tensor]:
        """x (n, x_dim) and θ (n, theta_dim), a single θ (theta_dim,) or (1, theta_dim) broadcast to n."""
        x = self._check_x(x)
        theta = checks.rows(theta, self.theta_dim_, "theta", dtype=torch.float32)
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
        est.reference_ = torch.tensor(fitted["reference"], dtype=torch.float64)
        est.network_ = est._build(est.theta_dim_, est.x_dim_)
        est.network_.load_state_dict(state)
        est.network_.eval()
        return est

    def save(self, path: str | Path) -> Path:
        """Writes config.json, weights.safetensors and history.json into the folder `path`."""
        network = self._check_fitted()
        config = {
            "class": type(self).__name__,
            "params": self.params,
            "training": self.training,
            "fitted": {"theta_dim": self.theta_dim_, "x_dim": self.x_dim_, "reference": self.reference_.tolist()},
        }
        return write_folder(path, config, network.state_dict(), self.history_)


def write_folder(path: str | Path, config: dict, tensors: dict[str, Tensor], history: dict) -> Path:
    """Writes a saved estimator's folder: config.json (with the format), weights.safetensors, history.json.

    Raises:
        FileExistsError: `path` is a file, or a folder that is neither empty nor a saved estimator.
    """
    from safetensors.torch import save_file

    path = Path(path)
    claim(path, "model", "save into a new or empty folder, or one an estimator was saved to")
    (path / "config.json").write_text(json.dumps({"goldmine_format": FORMAT, **config}, indent=2))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path / "weights.safetensors"))
    (path / "history.json").write_text(json.dumps(history, indent=1, default=float))
    return path


def load(path: str | Path) -> Estimator:
    """Rebuilds a saved estimator from its folder (no pickle).

    Raises:
        FileNotFoundError: the folder or one of its files is missing.
        ValueError: a file is corrupt, or was written by an incompatible version of goldmine.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    for name in ("config.json", "weights.safetensors"):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name} is missing: {path} is not a saved goldmine estimator (est.save(folder)).")
    try:
        config = json.loads((path / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path / 'config.json'} is corrupt ({err}); save the estimator again.") from None
    if config.get("goldmine_format") != FORMAT:
        raise ValueError(
            f"{path} was saved in estimator format {config.get('goldmine_format')!r}; this goldmine reads format "
            f"{FORMAT}. Load it with the goldmine version that saved it, or train and save it again."
        )
    cls = REGISTRY.get(config.get("class"))
    if cls is None:
        raise ValueError(f"{path} holds an unknown estimator class {config.get('class')!r}; known: {', '.join(REGISTRY)}.")
    try:
        state = load_file(str(path / "weights.safetensors"))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path / 'weights.safetensors'} is corrupt ({err}); save the estimator again.") from None
    try:
        est = cls._restore(config, state)
    except (RuntimeError, KeyError, TypeError) as err:
        raise ValueError(f"{path / 'weights.safetensors'} does not fit {path / 'config.json'} ({err}).") from None
    history = path / "history.json"
    est.history_ = json.loads(history.read_text()) if history.is_file() else {}
    return est
