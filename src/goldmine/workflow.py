"""The workflow's pieces, shared by the `goldmine` command and by studies.

`make_simulator` (a built-in name or an import path `pkg.mod:Class`), `make_estimator` / `train`
(a method name and its options; a training writes into a hidden folder renamed into place once the
model is saved, so a killed training never looks finished), `evaluate_model` (errors against the
exact likelihood), `load_observed` / `generate_observed`, `infer` (the MLE and a confidence region
as plain JSON values) and `plot_inference`.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from . import checks, estimators, simulators
from .data import Dataset
from .estimators import PosteriorEstimator, ScoreEstimator, SummaryHistogram
from .evaluate import c2st, grid_posterior_samples, log_ratio_error, score_error
from .inference import Model, confidence_region
from .simulators.base import DTYPE, Simulator, box_bounds, draw_prior
from .estimators.ratio import METHODS as RATIO_METHODS
from .training import Trainer

# -- simulators -----------------------------------------------------------------------------------

#: built-in simulators by their `name` (with - written as _), and the class in goldmine.simulators
BUILTIN_SIMULATORS = {"galton": "GaltonBoard", "weinberg": "Weinberg", "poisson": "Poisson",
                      "mixture": "GaussianMixture", "lotka_volterra": "LotkaVolterra"}


def make_simulator(spec: str, options: dict | None = None) -> Simulator:
    """A simulator from a built-in name or an import path, with constructor options.

    Arguments:
        spec: a built-in name (galton, weinberg, poisson, mixture, lotka_volterra; case and - / _
            do not matter) or `package.module:Name`, where Name is a Simulator class, a function
            returning a Simulator, or a Simulator instance. The working folder is importable.
        options: keyword arguments of the class or function.

    Example:
        >>> make_simulator("weinberg", {"sigma": 0.2})
        Weinberg(sigma=0.2)
    """
    options = dict(options or {})
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a simulator is a built-in name or an import path package.module:Name; got {spec!r}.")
    if ":" in spec:
        target = import_object(spec)
    else:
        key = spec.strip().lower().replace("-", "_")
        by_class = {cls.lower(): cls for cls in BUILTIN_SIMULATORS.values()}
        name = BUILTIN_SIMULATORS.get(key) or by_class.get(key)
        if name is None:
            raise ValueError(f"unknown simulator {spec!r}: the built-ins are {', '.join(BUILTIN_SIMULATORS)}; a "
                             "simulator of your own is named by its import path, package.module:Class.")
        target = getattr(simulators, name)
    if isinstance(target, Simulator):
        if options:
            raise ValueError(f"{spec} is a simulator instance, so it takes no options; got {sorted(options)}.")
        return target
    if not callable(target):
        raise TypeError(f"{spec} is a {type(target).__name__}: name a Simulator class, a function that returns a "
                        "Simulator, or a Simulator instance.")
    check_call(target, options, spec)
    sim = target(**options)
    if not isinstance(sim, Simulator):
        raise TypeError(f"{spec} returned a {type(sim).__name__}, not a goldmine Simulator: subclass "
                        "goldmine.simulators.Simulator, or wrap a function θ → x in BlackBoxSimulator(fn, prior).")
    return sim


def import_object(path: str):
    """The object named by `package.module:Name` (Name may be dotted); the working folder is importable."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{path!r} is not an import path: write package.module:Name.")
    cwd = os.getcwd()
    if cwd not in sys.path:  # `python -m` would find a module in the working folder; the console script would not
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and (module_name == err.name or module_name.startswith(err.name + ".")):
            raise ValueError(f"cannot import {module_name!r} (from {path!r}): no such module. Check the spelling, "
                             "and run goldmine in the folder that holds it or add that folder to PYTHONPATH.") from None
        raise
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in vars(module) if not n.startswith("_")]
            raise ValueError(f"{module_name} has no {attr!r} (from {path!r}); it defines {', '.join(names[:30])}.")
        obj = getattr(obj, part)
    return obj


def check_call(fn, options: dict, what: str) -> None:
    """Raises a ValueError listing `fn`'s parameters when it cannot take the keyword arguments `options`."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: let the call itself complain
        return
    try:
        signature.bind(**options)
    except TypeError as err:
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        params = [p for p in signature.parameters.values() if p.kind in kinds]
        accepted = ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}" for p in params)
        raise ValueError(f"{what} does not take the options {options} ({err}); it takes: {accepted or 'none'}.") from None


def simulator_from_data(meta: dict, where) -> Simulator:
    """Rebuilds the simulator recorded in a data set's header (its class and constructor arguments)."""
    qualified = meta.get("simulator_class", "")
    module_name, _, name = qualified.rpartition(".")
    try:
        cls = import_object(f"{module_name}:{name}")
        if not (isinstance(cls, type) and issubclass(cls, Simulator)):
            raise TypeError(f"{qualified} is not a Simulator class")
        check_call(cls, meta.get("simulator_config", {}), qualified)
        return cls(**meta.get("simulator_config", {}))
    except (ValueError, TypeError, ImportError) as err:
        raise ValueError(f"cannot rebuild the simulator {qualified or '?'} that made {where} ({err}): name it "
                         "with --simulator (a built-in name or package.module:Class).") from None


def has_exact(sim: Simulator) -> bool:
    """Whether the simulator has an exact likelihood log p(x|θ)."""
    return type(sim).log_prob is not Simulator.log_prob


def describe_prior(prior) -> str:
    """A short text for a prior: U(low, high) for a box."""
    low, high = box_bounds(prior)
    if low is None:
        return type(prior).__name__
    if len(low) == 1 or (bool((low == low[0]).all()) and bool((high == high[0]).all())):
        power = "" if len(low) == 1 else f"^{len(low)}"
        return f"U({float(low[0]):g}, {float(high[0]):g}){power}"
    return f"U([{', '.join(f'{float(t):g}' for t in low)}], [{', '.join(f'{float(t):g}' for t in high)}])"


# -- methods ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MethodInfo:
    """One method: its family, the estimator class in goldmine.estimators, whether it needs gold."""

    family: str
    estimator: str
    gold: bool
    about: str


METHODS: dict[str, MethodInfo] = {
    "carl": MethodInfo("ratio", "RatioEstimator", False, "classifier between runs at θ and at θ_ref"),
    "rolr": MethodInfo("ratio", "RatioEstimator", True, "regression on the joint ratio r(x,z)"),
    "alice": MethodInfo("ratio", "RatioEstimator", True, "cross-entropy against soft labels 1/(1+r(x,z))"),
    "cascal": MethodInfo("ratio", "RatioEstimator", True, "carl + α·score term"),
    "rascal": MethodInfo("ratio", "RatioEstimator", True, "rolr + α·score term"),
    "alices": MethodInfo("ratio", "RatioEstimator", True, "alice + α·score term"),
    "nre": MethodInfo("ratio", "RatioEstimator", False, "amortized ratio p(x|θ)/p(x), joint vs shuffled pairs"),
    "sally": MethodInfo("score", "ScoreEstimator", True, "score t̂(x) at θ_ref; inference on a histogram of t̂"),
    "sallino": MethodInfo("score", "ScoreEstimator", True, "as sally; inference on h = t̂(x)·(θ − θ_ref)"),
    "nle": MethodInfo("likelihood", "LikelihoodEstimator", False, "flow p̂(x|θ)"),
    "scandal": MethodInfo("likelihood", "LikelihoodEstimator", True, "flow p̂(x|θ) + α·score term"),
    "npe": MethodInfo("posterior", "PosteriorEstimator", False, "flow q(θ|x), restricted to the prior's box"),
    "histogram": MethodInfo("baseline", "HistogramRatio", False, "histograms of x per θ bin (no network)"),
    "alfi": MethodInfo("alfi", "ALFI", False, "recurrent machine meta-learned on the simulator"),
}

#: the Trainer's settings (epochs, batch_size, lr, ...) and their defaults: options of every neural method
TRAINING_OPTIONS = {f.name: f.default for f in dataclasses.fields(Trainer) if f.name != "history"}


def method_info(method: str) -> MethodInfo:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; the methods are {', '.join(METHODS)} (goldmine list methods).")
    return METHODS[method]


def estimator_class(method: str) -> type:
    """The estimator class that trains `method`."""
    info = method_info(method)
    cls = getattr(estimators, info.estimator, None)
    if info.family == "alfi" or cls is None:
        raise NotImplementedError(f"{method} is not available from the command line or a study in this version "
                                  "of goldmine: it learns from the simulator itself rather than from a data set.")
    return cls


def method_options(method: str) -> dict:
    """The options of `method` and their defaults: the estimator's own, then the Trainer's.

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
    if own.get("alpha", 0.0) is None:  # each ratio method has its own default weight of the score term
        own["alpha"] = RATIO_METHODS[method].alpha
    if METHODS[method].family != "baseline":
        own.update(TRAINING_OPTIONS)
    return own


def canonical_options(method: str, options: dict | None) -> dict:
    """`options` with - written as _ and `hidden` read as `hidden_features` for flows; unknown ones raise."""
    known = method_options(method)
    out = {}
    for key, value in (options or {}).items():
        key = key.replace("-", "_")
        if key == "hidden" and "hidden" not in known and "hidden_features" in known:
            key = "hidden_features"
        if key not in known:
            raise ValueError(f"{method} has no option {key!r}; its options are {', '.join(known)} "
                             f"(goldmine list {method}).")
        out[key] = value
    return out


def make_estimator(method: str, options: dict | None = None, prior_box=None):
    """An unfitted estimator for `method` with `options` (see `method_options`).

    Arguments:
        prior_box: (low, high) of the prior, given to npe unless its options name a prior.
    """
    cls = estimator_class(method)
    options = canonical_options(method, options)
    family = METHODS[method].family
    if family == "posterior" and options.get("prior") is None and prior_box is not None:
        options["prior"] = prior_box
    return cls(**options) if family == "baseline" else cls(method=method, **options)


def train(method: str, data, out, options: dict | None = None, progress: bool = True,
          record: dict | None = None) -> tuple[object, dict]:
    """Trains `method` on a data set and saves it to the folder `out`, which appears only when complete.

    The estimator is saved to a hidden sibling folder first and renamed to `out` at the end, so a
    killed training leaves no folder that looks finished. An existing model in `out` is replaced.
    Besides the estimator's files, `trained_on.json` records the data set, its simulator, the
    options and the training time (and `record`).

    Returns:
        The fitted estimator and the contents of trained_on.json.
    """
    out = Path(out)
    if out.exists() and not (out / "config.json").is_file() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not a saved goldmine model: choose another output folder.")
    info = method_info(method)
    options = dict(options or {})
    if info.family != "baseline":
        options.setdefault("progress", progress)
    data = data if isinstance(data, Dataset) else Dataset(data)
    if not data.complete:
        raise ValueError(f"{data.path} is incomplete ({len(data)} of {data.meta['n']} rows): finish it first; the "
                         "same simulate call (or goldmine simulate command) resumes it.")
    prior_box = None
    if info.family == "posterior":
        try:
            low, high = box_bounds(simulator_from_data(data.meta, data.path).prior)
            prior_box = None if low is None else [low.tolist(), high.tolist()]
        except ValueError:  # a simulator that cannot be rebuilt: npe takes the box of the data's θ
            pass
    estimator = make_estimator(method, options, prior_box)
    start = time.perf_counter()
    estimator.fit(data)
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
        "stop_reason": history.get("stop_reason"),
        **(record or {}),
    }
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    estimator.save(partial)
    write_json(partial / "trained_on.json", trained_on)
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return estimator, trained_on


def read_trained_on(folder) -> dict:
    """The trained_on.json of a model folder, or {} for a model saved from Python."""
    path = Path(folder) / "trained_on.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def model_simulator(folder, spec: str | None = None, options: dict | None = None) -> Simulator:
    """The simulator named by `spec`, else the one recorded with the model (trained_on.json)."""
    if spec is not None:
        return make_simulator(spec, options)
    if options:
        raise ValueError("--sim-option needs --simulator: name the simulator the options are for.")
    record = read_trained_on(folder)
    if not record.get("simulator_class"):
        raise ValueError(f"{folder} does not record the simulator its data came from (it was not trained by "
                         "goldmine train): name it with --simulator (a built-in name or package.module:Class).")
    return simulator_from_data(record, folder)


# -- evaluation ------------------------------------------------------------------------------------


class _Zero:
    """The trivial surrogate log r̂ = 0, whose error is the scale to compare against."""

    def __init__(self, like):
        self.theta_dim_, self.x_dim_, self.reference_ = like.theta_dim_, like.x_dim_, like.reference_

    def log_ratio(self, x, theta) -> Tensor:
        return torch.zeros(len(x), dtype=DTYPE)


def evaluate_model(estimator, sim: Simulator, seed: int = 0, observations: int = 3, draws: int = 1000) -> dict:
    """Errors of a trained estimator against the simulator's exact likelihood (goldmine.evaluate).

    Ratio and likelihood estimators and histograms: the expected squared error of log r̂ over the
    prior's θ grid, beside that of log r̂ = 0. Score estimators: the squared error of t̂(x) at θ_ref,
    relative to tr I(θ_ref). npe: the C2ST between `draws` posterior draws and the exact posterior's,
    averaged over `observations` runs at θ ~ prior (seeded by `seed`); 0.5 is perfect.

    Raises:
        NotImplementedError: the simulator has no exact likelihood (or no quadrature grid over x).
    """
    if isinstance(estimator, ScoreEstimator):
        out = score_error(estimator, sim)
        return {"metric": "score_mse", "mse": out["mse"], "relative": out["relative"]}
    if isinstance(estimator, PosteriorEstimator):
        if not has_exact(sim):
            raise NotImplementedError(f"{sim.name} has no exact likelihood, so there is no exact posterior to "
                                      "compare npe with.")
        generator = torch.Generator().manual_seed(seed)
        theta = draw_prior(sim.prior, observations, seed=seed)
        x = sim.sample(theta, generator=generator).x
        scores = [c2st(estimator.sample(x[i : i + 1], draws, generator=generator),
                       grid_posterior_samples(sim, x[i : i + 1], draws, generator=generator), seed=seed)
                  for i in range(observations)]
        return {"metric": "c2st", "c2st": sum(scores) / len(scores), "per_observation": scores,
                "theta": theta.tolist(), "x": x.tolist()}
    out = log_ratio_error(estimator, sim)
    trivial = log_ratio_error(_Zero(estimator), sim)["mse"]
    return {"metric": "log_ratio_mse", "mse": out["mse"], "trivial_mse": trivial,
            "relative": out["mse"] / trivial if trivial > 0 else None,
            "theta_grid": out["theta_grid"].tolist(), "per_theta": out["per_theta"].tolist()}


# -- inference -------------------------------------------------------------------------------------


def load_observed(path) -> np.ndarray:
    """Observations (n, x_dim) from .npy, .csv / .txt (one row per observation; a header line is
    skipped) or .h5 / .hdf5 (the dataset `x`, as in a goldmine data set, or the file's only dataset)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no observations at {path}: give a .npy, .csv or .h5 file of shape (n, x_dim).")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise ValueError(f"{path} is not a plain numeric .npy array ({err}).") from None
    elif suffix in (".csv", ".txt", ".tsv", ".dat"):
        delimiter = "," if suffix == ".csv" else None
        try:
            x = np.loadtxt(path, delimiter=delimiter, ndmin=2)
        except ValueError:
            try:
                x = np.loadtxt(path, delimiter=delimiter, ndmin=2, skiprows=1)
            except ValueError as err:
                raise ValueError(f"{path} is not a table of numbers, one observation per row ({err}).") from None
    elif suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            names = [k for k in f if isinstance(f[k], h5py.Dataset)]
            if "x" not in names and len(names) != 1:
                raise ValueError(f"{path} holds the datasets {names}: put the observations in one named 'x'.")
            x = f["x" if "x" in names else names[0]][:]
    else:
        raise ValueError(f"cannot read observations from a {suffix or 'suffix-less'} file ({path}): give .npy, "
                         ".csv or .h5.")
    x = np.asarray(x, dtype=np.float64)
    return x[:, None] if x.ndim == 1 else x


def generate_observed(sim: Simulator, theta, n_obs: int, seed: int = 0) -> Tensor:
    """n_obs runs of the simulator at one θ (theta_dim,), from a generator seeded by `seed`: (n_obs, x_dim)."""
    n_obs = checks.positive_int(n_obs, "n_obs")
    given = torch.as_tensor(theta, dtype=DTYPE).reshape(-1)
    if given.numel() != sim.theta_dim:
        raise ValueError(f"the true θ of {sim.name} has {sim.theta_dim} component(s); got {given.tolist()}.")
    theta = sim.check_theta(given[None], "the true θ")
    return sim.sample(theta.expand(n_obs, -1), generator=torch.Generator().manual_seed(seed)).x.detach()


def inference_source(estimator, sim: Simulator, data=None):
    """What inference evaluates: the estimator itself, or for sally / sallino a histogram of its
    summary filled from the training data `data`."""
    if isinstance(estimator, ScoreEstimator):
        if data is None:
            raise ValueError(f"{estimator.method} infers through a histogram of its summary t̂(x), filled from the "
                             "training data: give the data set (--data DATA.h5).")
        return SummaryHistogram(estimator).fit(data)
    return estimator


def infer(source, sim: Simulator, x_obs, level: float = 0.95, method: str = "wilks", toys: int | None = None,
          seed: int = 0, workers: int = 1, grid_points: int | None = None, progress: bool = True) -> dict:
    """The MLE and the confidence region from i.i.d. observations, as plain JSON values.

    Arguments:
        source: an estimator from `inference_source`, or the simulator itself (exact likelihood).
        sim: the simulator: its prior bounds θ, its runs are the toys of Neyman regions.
        x_obs: (n, x_dim).
        level, method: the confidence level and wilks (asymptotic χ²) or neyman (toys).
        grid_points: θ grid points per axis (Model.grid's default otherwise).
        progress: a progress bar over the Neyman toys.

    Returns:
        dict with kind, n_obs, level, method, mle (θ̂), log_likelihood, size (length, area, ...),
        interval (1-D θ), grid, q, threshold, inside. For npe (a posterior of one observation) the
        posterior mean, standard deviation and central credible interval per dimension instead.
    """
    if isinstance(source, PosteriorEstimator):
        return _posterior_summary(source, sim, x_obs, level, seed)
    model = Model(source, prior=sim, simulator=sim)
    x = model.check_x_obs(x_obs)
    grid = None if grid_points is None else model.grid(grid_points)
    region = confidence_region(model, x, level=level, method=method, grid=grid, seed=seed, workers=workers,
                               progress=progress, **({} if toys is None else {"toys": toys}))
    fit, region_grid = region.mle, region.grid
    q, inside = region.q, region.inside
    threshold = torch.as_tensor(region.threshold, dtype=DTYPE).expand(len(q))
    interval = [float(v) for v in region.interval] if model.theta_dim == 1 else None
    size, segments = float(region.size), region.segments
    out = {"kind": model.kind, "n_obs": len(x), "level": level, "method": method,
           "mle": fit.theta.tolist(), "log_likelihood": fit.log_likelihood, "size": size}
    if interval is not None:
        out["interval"] = interval
    if segments:  # a 1-D region in several pieces shows here
        out["segments"] = [[float(a), float(b)] for a, b in segments]
    out.update(grid=region_grid.tolist(), q=q.tolist(), threshold=threshold.tolist(), inside=inside.tolist())
    return out


def _posterior_summary(estimator: PosteriorEstimator, sim: Simulator, x_obs, level: float, seed: int,
                       draws: int = 4000) -> dict:
    x = sim.check_x(x_obs, "x_obs")
    if len(x) != 1:
        return {"kind": "posterior", "n_obs": len(x),
                "skipped": f"npe learns the posterior q(θ|x) of one observation, not a likelihood of {len(x)}: "
                           "use a ratio or likelihood method for limits from many observations."}
    theta = estimator.sample(x, draws, generator=torch.Generator().manual_seed(seed)).double()
    tail = (1 - level) / 2
    bounds = torch.quantile(theta, torch.tensor([tail, 1 - tail], dtype=DTYPE), dim=0)
    return {"kind": "posterior", "n_obs": 1, "level": level, "draws": draws, "mean": theta.mean(0).tolist(),
            "std": theta.std(0).tolist(), "credible_interval": bounds.T.tolist()}


def plot_inference(results: dict[str, dict], path, true_theta=None) -> Path | None:
    """q(θ) of every method against the threshold (1-D θ), or each region's boundary (2-D θ), drawn by
    goldmine.plots.llr_curves / contours_2d.

    Arguments:
        results: name → the dict of `infer`; those without a grid, or on another grid than the
            first, are left out.
        true_theta: marked when given.

    Returns:
        The PNG's path, or None when there is nothing to draw (no grid, or θ of dimension > 2).
    """
    from . import plots

    shown = {name: r for name, r in results.items() if r.get("grid")}
    if not shown:
        return None
    first = next(iter(shown.values()))
    grid = np.asarray(first["grid"], dtype=float)
    if grid.shape[1] > 2:
        return None
    shown = {name: r for name, r in shown.items() if np.array_equal(np.asarray(r["grid"], dtype=float), grid)}
    q = {name: _floats(r["q"]) for name, r in shown.items()}
    threshold = _floats(first["threshold"])
    constant = bool(np.allclose(threshold, threshold[0]))
    truth = None if true_theta is None else np.ravel(np.asarray(true_theta, dtype=float))
    if grid.shape[1] == 1:
        if not constant:  # Neyman: each method's toys give it a threshold curve of its own
            thresholds = {f"{name}: threshold": _floats(r["threshold"]) for name, r in shown.items()}
            top = 4 * max(t.max() for t in thresholds.values())  # clipping q zooms in on the thresholds
            q = {name: np.minimum(values, top) for name, values in {**q, **thresholds}.items()}
        return plots.llr_curves(grid, q, truth=None if truth is None else float(truth[0]),
                                threshold=threshold[0] if constant else None, path=path)
    if not constant:  # each region's boundary is where q(θ) − t(θ) crosses 0
        q = {name: values - _floats(shown[name]["threshold"]) for name, values in q.items()}
    return plots.contours_2d(grid, q, levels=(float(threshold[0]) if constant else 0.0,), truth=truth, path=path)


def _floats(values) -> np.ndarray:
    """JSON numbers (None for ±∞ and NaN) as floats, with the gaps far above any threshold."""
    return np.asarray([1e12 if v is None else v for v in values], dtype=float)


# -- files -----------------------------------------------------------------------------------------


def jsonable(obj):
    """Plain JSON values: tensors and arrays as lists, non-finite floats as None, paths as strings."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (Tensor, np.ndarray)):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path, obj) -> Path:
    """Writes `obj` as JSON, whole or not at all (through a temporary file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(jsonable(obj), indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def metric_text(result: dict) -> str:
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    if result["metric"] == "c2st":
        return f"c2st {result['c2st']:.3f} (0.5 is perfect)"
    name = "mse(log r)" if result["metric"] == "log_ratio_mse" else "mse(t)"
    relative = f" (relative {result['relative']:.3g})" if result.get("relative") is not None else ""
    return f"{name} {result['mse']:.4g}{relative}"


def region_text(result: dict) -> str:
    if not result or "skipped" in result:
        return f"skipped: {result.get('skipped', 'not run')}"
    if result.get("kind") == "posterior":
        bounds = " × ".join(f"[{low:.3g}, {high:.3g}]" for low, high in result["credible_interval"])
        return "posterior mean " + ", ".join(f"{v:.3g}" for v in result["mean"]) + \
            f", {result['level']:.0%} credible {bounds}"
    theta = ", ".join(f"{v:.3g}" for v in result["mle"])
    if "interval" in result:
        region = f"[{result['interval'][0]:.3g}, {result['interval'][1]:.3g}]"
    else:
        region = f"size {result['size']:.3g}"
    return f"θ̂ = {theta}, {result['level']:.0%} {result['method']} {region}"


def one_line(err: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(err).split()) or type(err).__name__
