"""The `goldmine` command: simulate, train, evaluate, infer, run a study, benchmark, list.

    goldmine list [simulators | methods | benchmarks | METHOD]
    goldmine simulate SIMULATOR -n N -o data.h5 [--sim-option KEY=VALUE] [--seed --workers --chunk --cluster]
    goldmine train METHOD data.h5 -o model/ [--epochs --batch-size --lr --alpha --hidden --seed --option KEY=VALUE]
                  [--device cpu|cuda|mps|auto]
    goldmine evaluate model/ [--simulator SIMULATOR] [-o evaluation.json]
    goldmine infer model/ (--observed obs.npy | --true-theta θ [--n-obs N]) [--level 0.95] [--method wilks|neyman]
    goldmine posterior SIMULATOR (--observed obs.npy | --true-theta θ) [--method npe] [--budget N] [--rounds K]
                  [--device D]
    goldmine check SIMULATOR [--runs N] [--bins B] [--seed S] [--data DATA.h5]
    goldmine run study.toml [-o OUTPUT]
    goldmine benchmark [NAME [ARGS ...]]

A simulator is a built-in name (goldmine list simulators) or the import path of one of your own,
package.module:Class or package.module:factory, with constructor arguments from --sim-option.
Long steps show progress bars (--quiet hides them) and every command ends with a plain summary.
A mistake in the arguments (a bad option, a missing file, a method that does not fit the data)
ends with exit code 2 and one line on stderr that names the fix; --debug shows the traceback.
A reader that stops early (goldmine list | head -1) ends it quietly with exit code 141, as SIGPIPE
ends a C program. A simulator of your own is imported as Python imports it, from Python's path:
`python -m goldmine ...` or PYTHONPATH=. finds one in the working folder.
The work itself is done by goldmine.study, which `goldmine run` strings together from a TOML file.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import select
import subprocess
import sys
import textwrap
import time
import unicodedata
import warnings
from pathlib import Path

import torch

from . import __version__, checks, simulators, study, workflow
from .estimators import load
from .folders import marked
from .training import TrainingError
from .estimators.registry import default_method, get_method, methods
from .inference.surrogate import capabilities

#: toy data sets (at θ̂ and the ends of the wider region, `goldmine.inference.wilks_check`) with which goldmine infer
#: checks the coverage of a Wilks region
CHECK_TOYS = 200

#: library errors that mean a mistake in the arguments: one line on stderr and exit code 2
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, NotImplementedError, OSError)


class Parser(argparse.ArgumentParser):
    """argparse, with its error on one line (exit code 2) pointing at the command's --help."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# -- argument types ------------------------------------------------------------------------------


def integer(text: str) -> int:
    """A whole number: 1.5 or true is refused, not rounded."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, e.g. 0; got {text!r}") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, e.g. 1000; got {text!r}")
    return value


def key_value(text: str) -> dict:
    """KEY=VALUE (VALUE read as JSON when it parses, else as a string) or a JSON object.

    Example:
        >>> key_value("hidden=[64, 64]"), key_value("flow=nsf"), key_value('{"sigma": 0.2}')
        ({'hidden': [64, 64]}, {'flow': 'nsf'}, {'sigma': 0.2})
    """
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise argparse.ArgumentTypeError(f"{text!r} is not a JSON object ({err})") from None
        return value
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. sigma=0.2) or a JSON object")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return {key.strip(): parsed}


def numbers(kind):
    """A type for a comma-separated list of `kind` values: 0.3, or 45,0.8."""

    def parse(text: str) -> list:
        try:
            return [kind(v) for v in text.split(",")]
        except ValueError:
            example = "64,64" if kind is int else "45,0.8"
            raise argparse.ArgumentTypeError(f"must be comma-separated {kind.__name__}s, e.g. {example}; "
                                             f"got {text!r}") from None

    parse.__name__ = f"{kind.__name__} list"
    return parse


def merged(pairs: list[dict] | None) -> dict:
    out: dict = {}
    for pair in pairs or []:
        out.update(pair)
    return out


# -- the parser ----------------------------------------------------------------------------------


def build_parser() -> Parser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--threads", type=positive_int, help="torch threads (default: torch's choice)")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")

    parser = Parser(prog="goldmine", description="Simulation-based inference that mines gold from simulators.",
                    epilog="Run 'goldmine COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"goldmine {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True,
                                     parser_class=Parser)

    def command(name: str, handler, help: str, **kwargs) -> Parser:
        sub = commands.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", **kwargs)
        sub.set_defaults(handler=handler)
        return sub

    p = command("list", cmd_list, "show the simulators, the methods and their options, the benchmarks",
                parents=[common])
    p.add_argument("what", nargs="?", metavar="simulators|methods|benchmarks|METHOD",
                   help="one part only, or every option of one method")

    p = command("simulate", cmd_simulate, "simulate (and mine, when the simulator has gold) a training data set "
                "into an HDF5 file; rerun the same command to resume an interrupted one", parents=[common])
    p.add_argument("simulator", metavar="SIMULATOR", help="a built-in name (goldmine list simulators) or "
                   "package.module:Class of your own")
    p.add_argument("-n", "--rows", dest="n", type=positive_int, required=True,
                   help="simulator runs (even): half at θ ~ prior, half at θ_ref")
    p.add_argument("-o", "--output", required=True, metavar="FILE.h5", help="the data set to write")
    sim_option_argument(p)
    p.add_argument("--seed", type=integer, default=0, help="the same seed gives the same data (default 0)")
    p.add_argument("--workers", type=positive_int, default=1, help="local processes (default 1)")
    p.add_argument("--chunk", type=positive_int, metavar="ROWS", help="rows per task and write")
    p.add_argument("--cluster", metavar="ADDRESS", help="a Dask scheduler, tcp://host:port")
    p.add_argument("--layout", choices=("pairs", "prior"), default="pairs",
                   help="pairs (default): half the runs at θ ~ prior, half at θ_ref, for every method; prior: every "
                   "run at θ ~ prior, for methods that need no run at θ_ref (npe, nre, nres, nle, scandal)")

    p = command("train", cmd_train, "train an estimator on a data set and save it to a folder", parents=[common])
    p.add_argument("method", metavar="METHOD", help="carl, alices, sally, scandal, npe, histogram, ... "
                   "(goldmine list methods)")
    p.add_argument("data", metavar="DATA.h5", help="a data set written by goldmine simulate")
    p.add_argument("-o", "--output", required=True, metavar="FOLDER", help="the model folder to write: a new or "
                   "empty folder, or a model goldmine wrote (replaced once the new one is saved)")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--alpha", type=float, help="weight of the score term (cascal rascal alices scandal)")
    p.add_argument("--hidden", type=numbers(int), metavar="W,W,...", help="hidden layer widths, e.g. 64,64")
    p.add_argument("--patience", type=positive_int, help="early stopping after this many epochs without progress")
    p.add_argument("--validation", type=float, help="fraction of rows held out for validation")
    p.add_argument("--seed", type=integer, help="seed of the initialisation and the shuffling")
    p.add_argument("--option", action="append", type=key_value, metavar="KEY=VALUE",
                   help="any other option of the method (repeatable; goldmine list METHOD shows them)")
    device_argument(p, "train on")

    p = command("evaluate", cmd_evaluate, "measure a trained estimator against the simulator's exact likelihood",
                parents=[common])
    p.add_argument("model", metavar="MODEL", help="a folder written by goldmine train")
    simulator_arguments(p)
    p.add_argument("-o", "--output", metavar="FILE.json", help="default: MODEL/evaluation.json")
    p.add_argument("--seed", type=integer, default=0, help="seeds the observations of npe's C2ST (default 0)")

    p = command("infer", cmd_infer, "the maximum-likelihood estimate and a confidence interval or region from "
                "observations", parents=[common])
    p.add_argument("model", metavar="MODEL", help="a folder written by goldmine train")
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--observed", metavar="FILE", help="observations, one per row: .npy, .csv or .h5")
    given.add_argument("--true-theta", type=numbers(float), metavar="θ", help="simulate the observations at this "
                       "θ instead, e.g. 0.3 or 45,0.8")
    p.add_argument("--n-obs", type=positive_int, default=100, help="observations at --true-theta (default 100)")
    p.add_argument("--seed", type=integer, default=0, help="seeds the observations and the toys (default 0)")
    simulator_arguments(p)
    p.add_argument("--data", metavar="DATA.h5", help="sally/sallino: the data to fill the summary histograms "
                   "(default: the data the model was trained on)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    p.add_argument("--method", choices=("wilks", "neyman"), default="wilks",
                   help="asymptotic χ² threshold, or toys (default wilks)")
    p.add_argument("--toys", type=positive_int, help="toys per θ point (neyman)")
    p.add_argument("--workers", type=positive_int, default=1, help="processes for the toys (default 1)")
    p.add_argument("--grid", type=positive_int, metavar="POINTS", help="θ grid points per axis")
    p.add_argument("--no-exact", action="store_true", help="skip the exact likelihood even when there is one")
    p.add_argument("--check-toys", type=positive_int, default=CHECK_TOYS, metavar="N",
                   help=f"toy data sets at each of θ̂ and the ends of the 99%% region along each axis (up to "
                        f"2d + 1 points) that check a Wilks region's coverage (default {CHECK_TOYS})")
    p.add_argument("--no-check", action="store_true", help="skip the check of a Wilks region's coverage by toys")
    device_argument(p, "evaluate the model on")
    p.add_argument("-o", "--output", metavar="FILE.json", help="default: MODEL/inference.json (plot beside it)")

    p = command("check", cmd_check, "test a simulator's gold (joint ratio and joint score) against the identities "
                "it must satisfy, in standard errors per θ bin; exit code 1 when one fails", parents=[common])
    p.add_argument("simulator", metavar="SIMULATOR", help="a built-in name (goldmine list simulators) or "
                   "package.module:Class of your own")
    sim_option_argument(p)
    p.add_argument("--runs", type=positive_int, default=20_000, help="simulator runs, half at θ_ref (default 20000)")
    p.add_argument("--bins", type=positive_int, default=4, help="quantile bins per component of θ (default 4)")
    p.add_argument("--seed", type=integer, default=0, help="seeds the runs (default 0)")
    p.add_argument("--data", metavar="DATA.h5", help="test the rows of this data set instead of fresh runs")

    p = command("posterior", cmd_posterior, "the posterior of an observation straight from a simulator, in one call "
                "(gm.infer): simulate a budget in memory, train the method, sample the posterior", parents=[common])
    p.add_argument("simulator", metavar="SIMULATOR", help="a built-in name (goldmine list simulators) or "
                   "package.module:Class of your own")
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--observed", metavar="FILE", help="the observation(s), one per row: .npy, .csv or .h5")
    given.add_argument("--true-theta", type=numbers(float), metavar="θ", help="simulate the observation at this θ")
    p.add_argument("--n-obs", type=positive_int, default=1, help="observations at --true-theta (default 1; npe: 1)")
    sim_option_argument(p)
    p.add_argument("--method", default="npe", help="npe (default), nle, nre, alices, ... (goldmine list methods)")
    p.add_argument("--budget", type=positive_int, default=10_000, help="simulator runs in total (default 10000)")
    p.add_argument("--rounds", type=positive_int, default=1, help="sequential rounds (default 1)")
    p.add_argument("--seed", type=integer, default=0, help="seeds the observation, the runs and training (default 0)")
    p.add_argument("--option", action="append", type=key_value, metavar="KEY=VALUE",
                   help="an option of the method (repeatable; goldmine list METHOD shows them)")
    device_argument(p, "train and sample on")
    p.add_argument("-o", "--output", default="posterior.json", metavar="FILE.json",
                   help="the summary to write, with a corner plot beside it (default posterior.json)")

    p = command("run", cmd_run, "carry out a whole study described by a TOML file; a rerun skips the stages "
                "already finished and resumes an interrupted one", parents=[common])
    p.add_argument("study", metavar="STUDY.toml", help="the study (see examples/study.toml)")
    p.add_argument("-o", "--output", metavar="FOLDER", help="default: the study's output, or STUDY-output/; a new "
                   "or empty folder, or one a study wrote")

    p = command("benchmark", cmd_benchmark, "run a script from the repository's benchmarks/ folder")
    p.add_argument("name", nargs="?", metavar="NAME", help="the script (without .py); none lists them")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="passed on to the script")
    return parser


def device_argument(p: Parser, what: str) -> None:
    """Adds --device: where the network computes (`goldmine.checks.device`, which names the fix for a device
    this machine does not have)."""
    p.add_argument("--device", metavar="DEVICE", help=f"where to {what}: cpu (default), cuda, cuda:N, mps, or auto "
                   "(an accelerator when present)")


def sim_option_argument(p: Parser, simulator: str = "the simulator") -> None:
    """Adds --sim-option, the one definition of it: a constructor argument of `simulator`, repeatable (KEY=VALUE
    or a JSON object of them; `merged(args.sim_option)` gives the dict)."""
    p.add_argument("--sim-option", action="append", type=key_value, metavar="KEY=VALUE",
                   help=f"a constructor argument of {simulator} (repeatable), or a JSON object of them")


def simulator_arguments(p: Parser) -> None:
    p.add_argument("--simulator", metavar="SIMULATOR", help="default: the simulator of the model's training data")
    sim_option_argument(p, "--simulator")


# -- commands ------------------------------------------------------------------------------------


def need_file(path, what: str, fix: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {what} at {path}: {fix}.")
    return path


def need_model(folder) -> Path:
    folder = need_file(folder, "model", f"train one with goldmine train METHOD DATA.h5 -o {folder}")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a saved goldmine model (it has no config.json): give the folder "
                                "that goldmine train -o wrote.")
    return folder


def table(rows: list[tuple], indent: str = "  ") -> str:
    """Left-aligned columns; combining marks (the hat of t̂) take no width."""

    def width(text) -> int:
        return sum(not unicodedata.combining(c) for c in str(text))

    widths = [max(width(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(indent + "  ".join(str(c) + " " * (w - width(c)) for c, w in zip(r, widths)).rstrip()
                     for r in rows)


def cmd_list(args) -> int:
    what = args.what
    if what not in (None, "simulators", "methods", "benchmarks") and what not in methods():
        raise ValueError(f"goldmine list shows simulators, methods, benchmarks or one method's options (e.g. "
                         f"goldmine list alices); got {what!r}.")
    if what in methods():
        print(method_text(what))
        return 0
    if what in (None, "simulators"):
        rows = [("name", "θ dim", "x dim", "prior", "gold", "exact p(x|θ)", "options")]
        for name, cls_name in workflow.BUILTIN_SIMULATORS.items():
            cls = getattr(simulators, cls_name)
            sim = cls()
            params = [f"{k}={p.default!r}" for k, p in inspect.signature(cls).parameters.items()
                      if p.default is not p.empty]
            rows.append((name, sim.theta_dim, sim.x_dim, workflow.describe_prior(sim.prior),
                         "yes" if sim.has_gold else "no", "yes" if workflow.has_exact(sim) else "no",
                         " ".join(params) or "-"))
        print("Simulators: goldmine simulate NAME -n N -o data.h5 [--sim-option KEY=VALUE]")
        print(table(rows))
        print("  your own: package.module:Class or package.module:factory (a goldmine Simulator on Python's path; "
              "PYTHONPATH=. or python -m goldmine for the working folder)")
    if what in (None, "methods"):
        if what is None:
            print()
        rows = [("family", "method", "gold", "what it learns", "options")]
        for name, spec in methods().items():
            try:
                own = [k for k in workflow.method_options(name) if k not in workflow.TRAINING_OPTIONS]
                options = " ".join(own) + (" + training" if spec.neural else "")
            except NotImplementedError:
                options = "(not available from the command line)"
            rows.append((spec.family, name, "yes" if spec.needs_gold else "no", spec.about, options))
        print("Methods: goldmine train METHOD data.h5 -o model/   (goldmine list METHOD shows every option)")
        print(table(rows))
        print(textwrap.fill("training, for every neural method: " + ", ".join(
            f"{k}={v!r}" for k, v in workflow.TRAINING_OPTIONS.items()), width=100, initial_indent="  ",
            subsequent_indent="    "))
    if what in (None, "benchmarks"):
        try:
            folder = benchmarks_folder()
        except FileNotFoundError:
            if what is not None:
                raise
            return 0
        if what is None:
            print()
        print(f"Benchmarks: goldmine benchmark NAME [ARGS]   ({folder})")
        print("  " + ", ".join(benchmark_names(folder)))
    return 0


def method_text(method: str) -> str:
    spec = get_method(method)
    gold = "needs gold" if spec.needs_gold else "needs no gold"
    estimator = spec.estimator.__name__ if spec.estimator is not None else "no estimator"
    lines = [f"{method}: {spec.about} ({spec.family}, {estimator}; {gold})"]
    options = workflow.method_options(method)
    own = {k: v for k, v in options.items() if k not in workflow.TRAINING_OPTIONS}
    lines.append(f"  options (goldmine train {method} DATA.h5 -o MODEL --option KEY=VALUE):")
    lines += [f"    {k} = {json.dumps(v)}" for k, v in own.items()]
    if spec.neural:
        lines.append("  training (--epochs, --batch-size, --lr, --seed, --patience, --validation, or --option):")
        lines += [f"    {k} = {json.dumps(v)}" for k, v in workflow.TRAINING_OPTIONS.items()]
    return "\n".join(lines)


def cmd_simulate(args) -> int:
    from .data import simulate

    sim = workflow.make_simulator(args.simulator, merged(args.sim_option))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    resumed = out.exists()
    start = time.perf_counter()
    data = simulate(sim, args.n, out, seed=args.seed, workers=args.workers, cluster=args.cluster,
                    chunk_size=args.chunk, progress=not args.quiet, layout=args.layout)
    seconds = time.perf_counter() - start
    kind = "gold: " + ", ".join(f for f in data.fields if f in ("log_r", "score", "score_ref")) if data.has_gold \
        else "no gold: a black box"
    print(f"data set  {out}{'  (resumed or reused an existing file)' if resumed else ''}")
    names = checks.theta_names(sim, sim.theta_dim)
    reference = ", ".join(f"{n} = {v:g}" for n, v in zip(names, data.reference.tolist()))
    print(f"  {len(data):,} rows of {sim!r}, seed {args.seed}, θ_ref: {reference}")
    print(f"  fields {', '.join(data.fields)} ({kind}); {seconds:.1f} s")
    if data.invalid_rows:
        print(f"  {data.invalid_rows} rows hold non-finite x or gold (training skips them where it reads those)")
    method = default_method("ratio", data.has_gold, data.layout)  # what RatioEstimator() trains on these data
    print(f"next: goldmine train {method} {out} -o model/")
    return 0


def cmd_train(args) -> int:
    need_file(args.data, "data set", "simulate one first with goldmine simulate SIMULATOR -n N -o FILE.h5")
    options = merged(args.option)
    for flag in ("epochs", "batch_size", "lr", "alpha", "hidden", "patience", "validation", "seed"):
        if getattr(args, flag) is not None:
            options[flag] = getattr(args, flag)
    replaced = marked(args.output, "model")
    estimator, record = workflow.train(args.method, args.data, args.output, options, progress=not args.quiet,
                                       device=args.device)
    print(f"model     {args.output}  ({type(estimator).__name__} {args.method})"
          + ("  (replaced the model that was there)" if replaced else ""))
    if record.get("note"):
        print(f"  note: {record['note']}")
    epochs = f", {record['epochs']} epochs" if record["epochs"] else ""
    if record.get("stop_reason") not in (None, "epochs"):
        epochs += f" ({record['stop_reason']})"
    print(f"  trained on {args.data}: {record['rows']:,} rows of {record['simulator']}, {record['seconds']:.1f} s"
          f"{epochs}")
    if record.get("kept_val_loss") is not None:  # the loss of the weights saved, not of some other epoch
        kept = "the best epoch's weights (early stopping)" if record.get("kept") == "best" else \
            "the final epoch's weights"
        best = record.get("best_val_loss")
        other = f"; the best epoch's was {best:.4g}" if record.get("kept") != "best" and best is not None \
            and best < record["kept_val_loss"] else ""
        print(f"  validation loss {record['kept_val_loss']:.4g} of the model saved, {kept}{other}")
    elif record.get("best_val_loss") is not None:
        print(f"  best validation loss {record['best_val_loss']:.4g}")
    print(f"next: goldmine evaluate {args.output}   or   goldmine infer {args.output} --true-theta θ")
    return 0


def cmd_evaluate(args) -> int:
    folder = need_model(args.model)
    estimator = load(folder)
    sim = workflow.model_simulator(folder, args.simulator, merged(args.sim_option))
    name = workflow.read_trained_on(folder).get("method") or getattr(estimator, "method", type(estimator).__name__)
    result = workflow.evaluate_model(estimator, sim, seed=args.seed)
    out = Path(args.output) if args.output else folder / "evaluation.json"
    workflow.write_json(out, {"model": str(folder), "method": name, "simulator": repr(sim), **result})
    against = "by toys of" if result["metric"] == "coverage" else "against the exact likelihood of"
    print(f"{name} {against} {sim!r}: {workflow.metric_text(result)}")
    if result["metric"] == "log_ratio_mse":
        print(f"  (log r̂ = 0 scores {result['trivial_mse']:.4g}; the mean over {len(result['per_theta'])} θ points "
              "of the prior's grid)")
    print(f"written   {out}")
    return 0


def cmd_infer(args) -> int:
    folder = need_model(args.model)
    if args.observed is not None:
        need_file(args.observed, "observations", "give a .npy, .csv or .h5 file with one observation per row")
    estimator = load(folder, device=args.device)
    record = workflow.read_trained_on(folder)
    sim = workflow.model_simulator(folder, args.simulator, merged(args.sim_option))
    if args.observed is not None:
        x = workflow.load_observed(args.observed)
        observed = {"file": str(args.observed), "n_obs": len(x)}
    else:
        x = workflow.generate_observed(sim, args.true_theta, args.n_obs, args.seed)
        observed = {"true_theta": args.true_theta, "n_obs": args.n_obs, "seed": args.seed}
    data = args.data or record.get("data")
    if "summary" in capabilities(estimator) and data is not None:
        need_file(data, "training data", "give the data set the model was trained on with --data")
    name = record.get("method") or getattr(estimator, "method", type(estimator).__name__)
    check = None if args.no_check or args.method != "wilks" else args.check_toys
    settings = {"level": args.level, "method": args.method, "toys": args.toys, "seed": args.seed,
                "workers": args.workers, "grid_points": args.grid, "progress": not args.quiet, "check": check,
                "true_theta": args.true_theta}
    exact = not args.no_exact and workflow.has_exact(sim)
    if check and (exact or "posterior" not in capabilities(estimator)):
        print(f"checking each Wilks region by {check} toy data sets drawn at its θ̂ and the ends of its wider region "
              f"with {sim.name} (--no-check skips this)", flush=True)
    results = {name: workflow.infer(workflow.inference_source(estimator, sim, data), sim, x, **settings)}
    if exact:  # on by default, to set every answer beside the truth; said with its cost, since it can be slow
        cost = workflow.exact_cost(sim, x, args.method, args.toys, args.grid, check)
        print(f"exact likelihood of {sim.name} for comparison: {cost['pairs']:,} evaluations of log p(x|θ), about "
              f"{workflow.duration(cost['seconds'])} (--no-exact skips it)", flush=True)
        results["exact"] = workflow.infer(sim, sim, x, **settings)
    out = Path(args.output) if args.output else folder / "inference.json"
    workflow.write_json(out, {"model": str(folder), "simulator": repr(sim), "observed": observed, "results": results})
    plot = workflow.plot_inference(results, out.with_suffix(".png"), args.true_theta)
    print(f"{len(x)} observation{'s' if len(x) != 1 else ''} " + (f"from {args.observed}" if args.observed else
                                        f"simulated at θ = {args.true_theta} (seed {args.seed})"))
    print(table([(k, workflow.region_text(r)) for k, r in results.items()]))
    for name, result in results.items():
        for note in workflow.region_notes(result):
            print(f"  {name}: {note}")
    print(f"written   {out}" + (f" and {plot}" if plot else ""))
    return 0


def cmd_check(args) -> int:
    from .data import Dataset
    from .gold_check import check_gold

    sim = workflow.make_simulator(args.simulator, merged(args.sim_option))
    data = None
    if args.data is not None:
        data = Dataset(need_file(args.data, "data set", "simulate one with goldmine simulate SIMULATOR -n N -o FILE.h5"))
    if not args.quiet:
        source = f"the rows of {args.data}" if data is not None else f"{args.runs:,} fresh runs"
        print(f"checking the gold of {sim!r} on {source} ...", flush=True)
    report = check_gold(sim, args.runs + args.runs % 2, data=data, bins=args.bins, seed=args.seed, verbose=False)
    print(report.table())
    return 0 if report.passed else 1


def cmd_posterior(args) -> int:
    from .pipeline import infer

    sim = workflow.make_simulator(args.simulator, merged(args.sim_option))
    if args.observed is not None:
        need_file(args.observed, "observations", "give a .npy, .csv or .h5 file with one observation per row")
        x = workflow.load_observed(args.observed)
    else:
        x = workflow.generate_observed(sim, args.true_theta, args.n_obs, args.seed)
    result = infer(sim, None, x, method=args.method, budget=args.budget, rounds=args.rounds, seed=args.seed,
                   progress=not args.quiet, device=args.device, **merged(args.option))
    samples = result.posterior.samples
    q = torch.quantile(samples, torch.tensor([0.025, 0.5, 0.975], dtype=samples.dtype), dim=0)
    out = Path(args.output)
    summary = {"simulator": repr(sim), "method": args.method, "simulations": result.simulations,
               "rounds": result.rounds, "observed": x.tolist(), "mean": samples.mean(0).tolist(),
               "std": samples.std(0).tolist(), "median": q[1].tolist(), "interval_95": [q[0].tolist(), q[2].tolist()]}
    workflow.write_json(out, summary)
    plot = result.plot(out.with_suffix(".png"), truth=args.true_theta)
    print(result.summary())
    print(f"written   {out} and {plot}")
    return 0


def cmd_run(args) -> int:
    need_file(args.study, "study file", "write one like examples/study.toml of the goldmine repository")
    study.run(args.study, args.output, progress=not args.quiet)
    return 0


def benchmarks_folder() -> Path:
    """$GOLDMINE_BENCHMARKS, else the repository's benchmarks/ beside src/, else ./benchmarks."""
    candidates = [Path(os.environ["GOLDMINE_BENCHMARKS"])] if os.environ.get("GOLDMINE_BENCHMARKS") else []
    candidates += [Path(__file__).resolve().parents[2] / "benchmarks", Path.cwd() / "benchmarks"]
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise FileNotFoundError("no benchmarks/ folder: the benchmark scripts live in a clone of the goldmine repository, "
                            "not in the installed package; run goldmine benchmark in the clone, or set "
                            "GOLDMINE_BENCHMARKS to the folder.")


def benchmark_names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.py") if not p.name.startswith("_"))


def cmd_benchmark(args) -> int:
    folder = benchmarks_folder()
    names = benchmark_names(folder)
    if args.name is None:
        print(f"Benchmarks in {folder}: {', '.join(names)}\nrun one: goldmine benchmark NAME [ARGS]")
        return 0
    name = args.name.removesuffix(".py").replace("-", "_")
    if name not in names:
        raise ValueError(f"no benchmark {args.name!r} in {folder}; the benchmarks are {', '.join(names)}.")
    return subprocess.call([sys.executable, str(folder / f"{name}.py"), *args.args])


# -- entry point ---------------------------------------------------------------------------------


def stdout_closed() -> bool:
    """Whether standard output is a pipe whose reader has gone (poll reports an error on its write end)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    if not hasattr(select, "poll"):
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


@contextlib.contextmanager
def plain_warnings(plain: bool = True):
    """Warnings shown as "goldmine: warning: <message>" inside the block (a user reads the warning, not the
    line of goldmine that raised it; --debug keeps Python's form with the file and line)."""
    previous = warnings.formatwarning
    if plain:
        warnings.formatwarning = lambda message, *_, **__: f"goldmine: warning: {message}\n"
    try:
        yield
    finally:
        warnings.formatwarning = previous


def main(argv: list[str] | None = None) -> int:
    """Runs the command line `argv` (sys.argv[1:] by default) and returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help and --version (0), bad arguments (2)
        return done.code if isinstance(done.code, int) else 0
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    try:
        with plain_warnings(not getattr(args, "debug", False)):
            code = args.handler(args)
        sys.stdout.flush()  # a reader that has gone (| head -1) shows here rather than at exit
        return code
    except BrokenPipeError:
        if not stdout_closed():  # a pipe of a worker, say: an error like any other
            print(f"goldmine: error: a pipe broke ({workflow.one_line(sys.exc_info()[1])})", file=sys.stderr)
            return 2
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the flush at exit is quiet too
        return 128 + 13  # as if killed by SIGPIPE, as a C program (yes | head -1) would be
    except KeyboardInterrupt:
        print("goldmine: interrupted.", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if getattr(args, "debug", False):
            raise
        print(f"goldmine: error: {workflow.one_line(err)}", file=sys.stderr)
        return 2
    except TrainingError as err:  # the work failed (non-finite data or losses): nothing was saved
        if getattr(args, "debug", False):
            raise
        print(f"goldmine: training failed: {workflow.one_line(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
