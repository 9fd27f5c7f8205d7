"""Studies: simulator → data → trained methods → evaluation → inference, from one TOML file.

A study file names a simulator, a simulation budget, the methods to train and, optionally, the
observations to infer θ from (a file, or runs at a true θ). `run(path)` carries it out into one
output folder, which it creates or which is empty or a study's output already (goldmine's marker
`.goldmine` says so; any other folder is refused, so a study never overwrites a file it did not write):

    data.h5                       the training data (goldmine.simulate; a partial file resumes), of the
                                  layout "prior" (every run at θ ~ prior) when no method of the study
                                  needs runs at θ_ref (`registry.layout_for`), else pairs
    models/<method>/              each trained estimator: config.json, weights.safetensors,
                                  trained_on.json, evaluation.json, inference.json
    observed.npy                  the observations inferred from
    exact/inference.json          the same inference with the exact likelihood, when there is one
    results.json, summary.txt     every number above in one file, and the printed table
    llr.png                       q(θ) = −2 Δ log L per method (1-D θ) or the regions (2-D θ)
    stages.json                   the finished stages and a fingerprint of each one's inputs

A stage's fingerprint hashes its settings and the fingerprints of the stages it reads from. A rerun
skips the stages whose fingerprint is unchanged and redoes the others, so editing one method's
options retrains only that method. An interrupted stage resumes: the simulation continues after
its last finished chunk, a training starts over in a hidden folder that is renamed into place only
once the model is saved, so a killed training never looks finished.

A file with an [events] section instead of a simulator is an EFT study (LHE events in, limits with
systematics out), which `run` hands to `goldmine.physics.study` (examples/eft.toml).

The stages are made of the pieces in `goldmine.workflow`, which the `goldmine` command uses too; the
methods a study may train are the registry's (`goldmine.estimators.registry`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import checks
from .data import Dataset, simulate
from .estimators import load, registry
from .folders import claim
from .simulators.base import DTYPE, Simulator, has_exact
from .workflow.estimates import exact_cost, infer, inference_source
from .workflow.evaluation import evaluate_model
from .workflow.files import jsonable, write_json
from .workflow.observations import generate_observed, load_observed
from .workflow.report import duration, metric_text, one_line, plot_inference, region_text
from .workflow.simulators import describe_prior, make_simulator
from .workflow.training import (canonical_options, estimator_class, make_estimator, method_options, read_trained_on,
                                train)


def fingerprint(obj) -> str:
    return hashlib.sha256(json.dumps(jsonable(obj), sort_keys=True).encode()).hexdigest()[:16]


# -- the study file --------------------------------------------------------------------------------

# each table's keys: the types a value may have and a hint shown when a required key is missing
SCHEMA: dict[str, dict[str, tuple]] = {
    "": {"name": (str,), "output": (str,), "simulator": (str, dict), "data": (dict,), "train": (dict,),
         "evaluate": (dict,), "inference": (dict,)},
    "simulator": {"name": (str,), "options": (dict,)},
    "data": {"n": (int,), "seed": (int,), "workers": (int,), "chunk": (int,)},
    "train": {"methods": (list,)},  # plus shared options and one table per method, checked separately
    "evaluate": {"enabled": (bool,), "seed": (int,)},
    "inference": {"observed": (str,), "true_theta": (float, list), "n_obs": (int,), "seed": (int,),
                  "level": (float,), "method": (str,), "toys": (int,), "workers": (int,), "grid": (int,),
                  "exact": (bool,)},
}
REQUIRED = {"": ("simulator", "data", "train"), "simulator": ("name",), "data": ("n",), "train": ("methods",)}
HINTS = {"simulator": 'the simulator, e.g. simulator = "galton" or a [simulator] table with name = ...',
         "name": 'a built-in name such as "galton", or "package.module:Class"',
         "data": "a [data] table with n = the number of simulator runs",
         "n": "the number of simulator runs, an even number such as 20000",
         "train": 'a [train] table with methods = ["alices", ...]',
         "methods": 'the methods to train, e.g. methods = ["carl", "alices"] (goldmine list methods)'}


@dataclass
class Study:
    """A validated study file. `methods` maps each method to its merged options."""

    path: Path
    name: str
    output: Path
    simulator: str
    simulator_options: dict
    data: dict
    methods: dict[str, dict]
    evaluate: dict
    inference: dict | None
    sim: Simulator = field(repr=False, compare=False, default=None)


def _check_table(table: dict, section: str, where: str, extra: set = frozenset()) -> None:
    schema = SCHEMA[section]
    title = "the top level" if section == "" else f"[{section}]"
    for key in table:
        if key not in schema and key not in extra:
            known = ", ".join([*schema, *sorted(extra)])
            raise ValueError(f"{where}: {title} has no key {key!r}; the known keys are {known}.")
    for key in REQUIRED.get(section, ()):
        if key not in table:
            raise ValueError(f"{where}: {title} needs {key!r}: {HINTS[key]}.")
    for key, value in table.items():
        if key not in schema:
            continue
        types = schema[key]
        ok = any(isinstance(value, t) and not (isinstance(value, bool) and t is not bool) for t in types)
        ok = ok or (float in types and isinstance(value, int) and not isinstance(value, bool))
        if not ok:
            names = " or ".join({"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
                                 "list": "an array", "dict": "a table"}[t.__name__] for t in types)
            raise ValueError(f"{where}: {title} {key} must be {names}; got {value!r}.")


def _even_rows(value, name: str) -> int:
    value = checks.positive_int(value, name)
    if value % 2:
        raise ValueError(f"{name} must be an even number of simulator runs (half at θ ~ prior, half at θ_ref), e.g. "
                         f"20000; got {value}.")
    return value


def _one_of(value, name: str, known: tuple[str, ...]) -> str:
    if value not in known:
        names = " or ".join(f'"{k}"' for k in known)
        raise ValueError(f"{name} must be {names}; got {value!r}.")
    return value


# the checks of each table's values (the types are SCHEMA's): what the stages will require of them
DATA_VALUES = {"n": _even_rows, "seed": checks.seed, "workers": checks.positive_int, "chunk": checks.positive_int}
INFERENCE_VALUES = {"n_obs": checks.positive_int, "seed": checks.seed, "level": checks.level,
                    "method": lambda v, name: _one_of(v, name, ("wilks", "neyman")),
                    "toys": checks.positive_int, "workers": checks.positive_int,
                    "grid": lambda v, name: checks.int_at_least(v, name, 2)}


def _check_values(table: dict, section: str, where: str, values: dict) -> None:
    """Raises a ValueError naming the file, the table and the key of the first value its check refuses."""
    for key, check in values.items():
        if key in table:
            try:
                check(table[key], key)
            except ValueError as err:
                raise ValueError(f"{where}: [{section}] {err}") from None


def _check_options(method: str, options: dict, where: str) -> None:
    """Builds (without fitting) the estimator of `method` with `options`, so that a value it refuses fails now,
    before any stage runs; the error names the file and the table (`where`)."""
    try:
        make_estimator(method, options)
    except (ValueError, TypeError) as err:
        raise type(err)(f"{where} {err}") from None


def load_study(path, output=None) -> Study:
    """Reads and validates a study file (TOML); relative paths in it are relative to its folder.

    Arguments:
        output: the output folder, overriding the file's `output` (default: <file stem>-output beside it).

    Raises:
        FileNotFoundError: no such file, or its observed file is missing.
        ValueError: invalid TOML, an unknown or missing key, a value of the wrong type, an unknown
            method or option, or a method that needs gold with a black-box simulator.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no study file at {path}: write one like examples/study.toml in the goldmine "
                                "repository (goldmine run --help).")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path} is not valid TOML: {err}.") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text file: a study is a TOML file.") from None
    where, home = path.name, path.resolve().parent
    _check_table(raw, "", where)

    spec = raw["simulator"]
    spec = {"name": spec} if isinstance(spec, str) else spec
    _check_table(spec, "simulator", where)
    try:
        sim = make_simulator(spec["name"], spec.get("options"))
    except (ValueError, TypeError) as err:
        raise type(err)(f"{where}: [simulator] {err}") from None

    data = raw["data"]
    _check_table(data, "data", where)
    _check_values(data, "data", where, DATA_VALUES)
    data = {"n": data["n"], "seed": data.get("seed", 0), "workers": data.get("workers", 1), "chunk": data.get("chunk")}

    methods = _study_methods(raw["train"], sim, where)

    evaluate = raw.get("evaluate", {})
    _check_table(evaluate, "evaluate", where)
    _check_values(evaluate, "evaluate", where, {"seed": checks.seed})
    evaluate = {"enabled": evaluate.get("enabled", True), "seed": evaluate.get("seed", 0)}

    inference = None
    if "inference" in raw:
        inference = _study_inference(raw["inference"], sim, where, home)

    if output is not None:
        out = Path(output)
    elif "output" in raw:
        out = home / raw["output"]
    else:
        out = home / f"{path.stem}-output"
    return Study(path.resolve(), raw.get("name", path.stem), out.resolve(), spec["name"], dict(spec.get("options", {})),
                 data, methods, evaluate, inference, sim)


def _study_methods(table: dict, sim: Simulator, where: str) -> dict[str, dict]:
    listed = table.get("methods")
    known_methods = registry.methods()
    per_method = {k for k, v in table.items() if k in known_methods and isinstance(v, dict)}
    _check_table(table, "train", where, extra=per_method | {k for k in table if k != "methods"})
    if not isinstance(listed, list) or not listed or not all(isinstance(m, str) for m in listed):
        raise ValueError(f"{where}: [train] methods must be a non-empty array of method names, e.g. "
                         f'["carl", "alices"]; got {listed!r}.')
    if len(set(listed)) < len(listed):
        raise ValueError(f"{where}: [train] methods lists a method twice: {listed}.")
    for method in listed:
        try:
            spec = registry.get_method(method)
            estimator_class(method)
        except (ValueError, NotImplementedError) as err:
            raise type(err)(f"{where}: [train] methods: {err}") from None
        if spec.needs_gold and not sim.has_gold:
            raise ValueError(f"{where}: {method} needs gold, but {sim.name} is a black box without joint_log_prob: "
                             f"use methods that need none ({', '.join(registry.goldless(trainable=True))}), or "
                             "give the simulator a joint_log_prob.")
    for name in per_method - set(listed):
        raise ValueError(f"{where}: [train.{name}] configures {name}, which is not in [train] methods = {listed}: "
                         "add it there or remove the table.")
    shared = {k.replace("-", "_"): v for k, v in table.items() if k != "methods" and k not in per_method}
    # a shared setting must be an option of some method (so typos fail), not of every listed one
    known: dict[str, None] = {}
    for method, spec in known_methods.items():
        if spec.trainable:
            known.update(dict.fromkeys(method_options(method)))
    for key in shared:
        if key in known_methods:
            raise ValueError(f"{where}: [train] {key} must be a table of {key}'s options ([train.{key}]).")
        if key not in known:
            raise ValueError(f"{where}: [train] has no option {key!r}; the options are methods, {', '.join(known)}, "
                             "and a [train.METHOD] table per method (goldmine list METHOD).")
    methods = {}
    for method in listed:
        accepted = method_options(method)
        # shared settings apply to the methods that have them (epochs is nothing to a histogram)
        merged = canonical_options(method, {k: v for k, v in shared.items() if k in accepted})
        _check_options(method, merged, f"{where}: [train]")
        try:
            merged.update(canonical_options(method, table.get(method, {})))
        except ValueError as err:
            raise ValueError(f"{where}: [train.{method}] {err}") from None
        _check_options(method, merged, f"{where}: [train.{method}]")
        methods[method] = merged
    return methods


def _study_inference(table: dict, sim: Simulator, where: str, home: Path) -> dict:
    _check_table(table, "inference", where)
    _check_values(table, "inference", where, INFERENCE_VALUES)
    if ("observed" in table) == ("true_theta" in table):
        raise ValueError(f"{where}: [inference] needs either observed = a file of observations, or true_theta = "
                         "the θ to simulate them at (with n_obs and seed); not both, not neither.")
    out = {"level": float(table.get("level", 0.95)), "method": table.get("method", "wilks"),
           "toys": table.get("toys"), "workers": table.get("workers", 1), "grid": table.get("grid"),
           "exact": table.get("exact", True), "seed": table.get("seed", 0)}
    if "observed" in table:
        observed = home / table["observed"]
        if not observed.is_file():
            raise FileNotFoundError(f"{where}: [inference] observed = {table['observed']!r}: no such file "
                                    f"({observed}); paths are relative to the study file.")
        if "n_obs" in table:
            raise ValueError(f"{where}: [inference] n_obs goes with true_theta; with observed, every row of the "
                             "file is an observation.")
        out["observed"] = str(observed)
    else:
        theta = table["true_theta"]
        theta = [theta] if not isinstance(theta, list) else theta
        if len(theta) != sim.theta_dim or not all(isinstance(v, (int, float)) for v in theta):
            raise ValueError(f"{where}: [inference] true_theta must hold {sim.theta_dim} number(s) for {sim.name}; "
                             f"got {table['true_theta']!r}.")
        try:
            sim.check_theta(torch.tensor([theta], dtype=DTYPE), "true_theta")
        except ValueError as err:
            raise ValueError(f"{where}: [inference] {err}") from None
        out.update(true_theta=[float(v) for v in theta], n_obs=table.get("n_obs", 100))
    return out


# -- running a study -------------------------------------------------------------------------------


class Stages:
    """stages.json: per stage its fingerprint, status (running or done) and a few numbers, among them the
    seconds it took (wall-clock, from `start` to `finish`)."""

    def __init__(self, path: Path):
        self.path = path
        self._began: dict[str, float] = {}
        try:
            self.entries = json.loads(path.read_text()) if path.is_file() else {}
        except json.JSONDecodeError:  # written through os.replace, so only a hand edit gets here
            self.entries = {}

    def done(self, name: str, fp: str, *files: Path) -> bool:
        entry = self.entries.get(name, {})
        return entry.get("status") == "done" and entry.get("fingerprint") == fp and all(f.exists() for f in files)

    def state(self, name: str, fp: str) -> str:
        """new, changed (recorded with other inputs), interrupted (started with these inputs) or done."""
        entry = self.entries.get(name)
        if entry is None:
            return "new"
        if entry.get("fingerprint") != fp:
            return "changed"
        return "interrupted" if entry.get("status") == "running" else "done"

    def start(self, name: str, fp: str) -> None:
        self.entries[name] = {"fingerprint": fp, "status": "running", "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        self._began[name] = time.perf_counter()
        write_json(self.path, self.entries)

    def finish(self, name: str, fp: str, **info) -> None:
        if name in self._began:
            info.setdefault("seconds", round(time.perf_counter() - self._began.pop(name), 3))
        self.entries[name] = {**self.entries.get(name, {}), "fingerprint": fp, "status": "done", **info}
        write_json(self.path, self.entries)


def _event_study(path) -> bool:
    """Whether the file at `path` is an EFT study (LHE events in, limits out: `goldmine.physics.study`)."""
    from .physics.study import is_event_study

    try:
        return Path(path).is_file() and is_event_study(tomllib.loads(Path(path).read_text()))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False  # load_study names the problem


def run(study, output=None, progress: bool = True, echo=print) -> dict:
    """Carries out a study into its output folder, skipping the stages finished earlier.

    Arguments:
        study: a study file (path) or a `Study`.
        output: overrides the output folder.
        progress: progress bars for simulation and training.
        echo: where the one-line reports of each stage and the summary go.

    Returns:
        The contents of results.json.
    """
    if not isinstance(study, Study) and _event_study(study):  # [events]: an EFT study (goldmine.physics.study)
        from .physics.study import areas_table, run_eft_study

        record = run_eft_study(study, output, progress=progress)
        echo(areas_table(record))
        return record
    if not isinstance(study, Study):
        study = load_study(study, output)
    elif output is not None:
        study = dataclasses.replace(study, output=Path(output).resolve())
    sim = study.sim
    out = claim(study.output, "study", "choose another output folder (goldmine run -o, or output = ... in the "
                "study file)")
    copy = out / "study.toml"
    if not copy.is_file() or copy.read_bytes() != study.path.read_bytes():
        shutil.copyfile(study.path, copy)
    stages = Stages(out / "stages.json")
    fps: dict[str, str] = {}  # this study's stages and their fingerprints, which the report depends on

    def say(stage: str, text: str) -> None:
        echo(f"{stage:<20} {text}")

    # simulate
    data_path = out / "data.h5"
    # every run at θ ~ prior when no method of the study reads runs at θ_ref (npe, nre, nres, nle, scandal), else pairs
    layout = registry.layout_for(study.methods)
    data_fp = fingerprint({"simulator": study.simulator, "options": study.simulator_options, "n": study.data["n"],
                           "seed": study.data["seed"], **({"layout": layout} if layout != "pairs" else {})})
    fps["simulate"] = data_fp
    if stages.done("simulate", data_fp, data_path):
        say("simulate", f"done earlier: {data_path}")
    else:
        state = stages.state("simulate", data_fp)
        if state == "changed":
            data_path.unlink(missing_ok=True)
            say("simulate", "the data settings changed: simulating anew")
        elif data_path.exists():
            say("simulate", "resuming the interrupted simulation")
        stages.start("simulate", data_fp)
        start = time.perf_counter()
        data = simulate(sim, study.data["n"], data_path, seed=study.data["seed"], workers=study.data["workers"],
                        chunk_size=study.data["chunk"], progress=progress, layout=layout)
        seconds = time.perf_counter() - start
        stages.finish("simulate", data_fp, seconds=seconds, rows=len(data))
        every = ", every run at θ ~ prior (layout prior)" if layout == "prior" else ""
        say("simulate", f"{len(data):,} rows of {sim.name}{every} in {seconds:.1f} s → {data_path}")
    data = Dataset(data_path)

    # train
    train_fp = {}
    for method, options in study.methods.items():
        folder, stage = out / "models" / method, f"train/{method}"
        fp = fps[stage] = train_fp[method] = fingerprint({"data": data_fp, "method": method, "options": options})
        if stages.done(stage, fp, folder / "config.json"):
            say(f"train {method}", "done earlier")
            continue
        if stages.state(stage, fp) == "interrupted":
            say(f"train {method}", "the last training was interrupted: training again")
        stages.start(stage, fp)
        _, record = train(method, data, folder, options, progress=progress, record={"fingerprint": fp})
        stages.finish(stage, fp, seconds=record["seconds"])
        epochs = f", {record['epochs']} epochs" if record["epochs"] else ""
        say(f"train {method}", f"{record['seconds']:.1f} s{epochs} → {folder}")

    # evaluate
    if study.evaluate["enabled"]:
        for method in study.methods:
            folder, stage = out / "models" / method, f"evaluate/{method}"
            fp = fps[stage] = fingerprint({"train": train_fp[method], "seed": study.evaluate["seed"]})
            if stages.done(stage, fp, folder / "evaluation.json"):
                say(f"evaluate {method}", "done earlier")
                continue
            stages.start(stage, fp)
            try:
                result = evaluate_model(load(folder), sim, seed=study.evaluate["seed"])
            except (NotImplementedError, ValueError) as err:  # no exact truth to measure against
                result = {"skipped": one_line(err)}
            write_json(folder / "evaluation.json", result)
            stages.finish(stage, fp)
            say(f"evaluate {method}", f"{metric_text(result)} ({stages.entries[stage]['seconds']:.1f} s)")

    # infer
    observed = None
    if study.inference is not None:
        observed, observed_fp = _observe(study, sim, out, stages, say)
        fps["observe"] = observed_fp
        settings = {k: study.inference[k] for k in ("level", "method", "toys", "grid", "seed")}
        sources = {m: out / "models" / m for m in study.methods}
        if study.inference["exact"] and has_exact(sim):
            sources["exact"] = None
        for name, folder in sources.items():
            file = (folder or out / "exact") / "inference.json"
            upstream = train_fp.get(name, {"simulator": study.simulator, "options": study.simulator_options})
            fp = fps[f"infer/{name}"] = fingerprint({"upstream": upstream, "observed": observed_fp,
                                                     "settings": settings})
            if stages.done(f"infer/{name}", fp, file):
                say(f"infer {name}", "done earlier")
                continue
            stages.start(f"infer/{name}", fp)
            if folder is None:  # said with its cost, since an exact likelihood can be slow
                cost = exact_cost(sim, observed, settings["method"], settings["toys"], settings["grid"])
                say("infer exact", f"{cost['pairs']:,} evaluations of log p(x|θ), about {duration(cost['seconds'])} "
                    "([inference] exact = false skips it)")
            try:
                source = sim if folder is None else inference_source(load(folder), sim, data)
                result = infer(source, sim, observed, level=settings["level"], method=settings["method"],
                               toys=settings["toys"], seed=settings["seed"], workers=study.inference["workers"],
                               grid_points=settings["grid"], progress=progress)
            except (NotImplementedError, ValueError) as err:  # the method cannot give limits (e.g. sally in 2-D)
                result = {"skipped": one_line(err)}
            write_json(file, result)
            stages.finish(f"infer/{name}", fp)
            say(f"infer {name}", f"{region_text(result)} ({stages.entries[f'infer/{name}']['seconds']:.1f} s)")

    # report
    results = _collect(study, out, stages, observed)
    report_fp = fingerprint({"name": study.name, "stages": fps})
    files = [out / "results.json", out / "summary.txt"]
    table = summary_table(results)
    if stages.done("report", report_fp, *files):
        say("report", "done earlier")
    else:
        stages.start("report", report_fp)
        plot = None
        if observed is not None:
            inferred = {}
            for name in results["methods"]:
                inferred[name] = _read(out / "models" / name / "inference.json")
            if (out / "exact" / "inference.json").is_file() and "exact" in results:
                inferred["exact"] = _read(out / "exact" / "inference.json")
            plot = plot_inference(inferred, out / "llr.png", (study.inference or {}).get("true_theta"))
        results["plot"] = plot
        write_json(out / "results.json", results)
        (out / "summary.txt").write_text(table + "\n")
        stages.finish("report", report_fp)
        say("report", f"→ {out / 'results.json'}" + (f", {plot}" if plot else ""))
    echo("")
    echo(table)
    echo("")
    echo(f"output folder: {out}")
    echo(f"  data        {data_path}")
    echo(f"  models      {out / 'models'}/{{{','.join(study.methods)}}}")
    echo(f"  results     {out / 'results.json'} and {out / 'summary.txt'}")
    if (out / "llr.png").is_file() and observed is not None:
        echo(f"  plot        {out / 'llr.png'}")
    return json.loads((out / "results.json").read_text())


def _observe(study: Study, sim: Simulator, out: Path, stages: Stages, say) -> tuple[np.ndarray, str]:
    """The observations: read from the study's file or simulated at the true θ, stored in observed.npy."""
    inference, path = study.inference, out / "observed.npy"
    if "observed" in inference:
        source = Path(inference["observed"])
        spec = {"file": str(source), "sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    else:
        spec = {"simulator": study.simulator, "options": study.simulator_options,
                **{k: inference[k] for k in ("true_theta", "n_obs", "seed")}}
    fp = fingerprint(spec)
    if stages.done("observe", fp, path):
        say("observe", "done earlier")
        return np.load(path), fp
    stages.start("observe", fp)
    if "observed" in inference:
        x = sim.check_x(load_observed(source), f"the observations in {source}").numpy()
        text = f"{len(x)} observations from {source}"
    else:
        x = generate_observed(sim, inference["true_theta"], inference["n_obs"], inference["seed"]).numpy()
        text = f"{len(x)} runs at θ = {inference['true_theta']} (seed {inference['seed']})"
    tmp = path.with_name("observed.tmp.npy")
    np.save(tmp, x)
    os.replace(tmp, path)
    stages.finish("observe", fp, n_obs=len(x))
    say("observe", f"{text} → {path}")
    return x, fp


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _slim(result: dict) -> dict:
    """A stage's result without its arrays (grids, q), which stay in the stage's own file."""
    return {k: v for k, v in result.items() if k not in ("grid", "q", "threshold", "inside", "theta_grid", "per_theta")}


def _collect(study: Study, out: Path, stages: Stages, observed) -> dict:
    """results.json: the study's settings and every stage's numbers (without the grids)."""
    sim = study.sim
    results = {
        "study": study.name, "file": str(study.path), "output": str(out),
        "simulator": {"name": study.simulator, "options": study.simulator_options, "theta_dim": sim.theta_dim,
                      "x_dim": sim.x_dim, "prior": describe_prior(sim.prior), "gold": sim.has_gold,
                      "exact": has_exact(sim)},
        "data": {"path": str(out / "data.h5"), **study.data, **{k: stages.entries.get("simulate", {}).get(k)
                                                               for k in ("rows", "seconds")}},
        "methods": {},
    }
    if study.inference is not None:
        results["observed"] = {"path": str(out / "observed.npy"), "n_obs": None if observed is None else len(observed),
                               **{k: study.inference[k] for k in ("observed", "true_theta", "seed") if k in study.inference}}
    for method, options in study.methods.items():
        folder = out / "models" / method
        trained = read_trained_on(folder)
        entry = {"model": str(folder), "options": options,
                 "train": {k: trained.get(k) for k in ("seconds", "epochs", "best_val_loss", "kept",
                                                                       "kept_val_loss", "stop_reason")}}
        if (folder / "evaluation.json").is_file() and study.evaluate["enabled"]:
            entry["evaluation"] = _slim(_read(folder / "evaluation.json"))
        if study.inference is not None:
            entry["inference"] = _slim(_read(folder / "inference.json"))
        results["methods"][method] = entry
    exact = out / "exact" / "inference.json"
    if study.inference is not None and study.inference["exact"] and has_exact(sim) and exact.is_file():
        results["exact"] = {"inference": _slim(_read(exact))}
    return results


def summary_table(results: dict) -> str:
    """The plain table printed at the end of a study: one row per method (and the exact likelihood)."""
    rows = [("method", "train [s]", "epochs", "error", "inference")]
    for method, entry in results["methods"].items():
        train_info = entry.get("train", {})
        seconds = "-" if train_info.get("seconds") is None else f"{train_info['seconds']:.1f}"
        epochs = "-" if not train_info.get("epochs") else str(train_info["epochs"])
        error = metric_text(entry["evaluation"]) if "evaluation" in entry else "-"
        region = region_text(entry["inference"]) if "inference" in entry else "-"
        rows.append((method, seconds, epochs, error if len(error) < 40 else "skipped", region))
    if "exact" in results:
        rows.append(("exact", "-", "-", "-", region_text(results["exact"]["inference"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)

