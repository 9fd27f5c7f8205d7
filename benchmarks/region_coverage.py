"""Coverage of the default 95% Wilks regions of every ratio and likelihood method, with default settings.

For each simulator with an exact likelihood (Galton board, Weinberg), budget N (simulator runs) and data
seed, every method of the ratio and likelihood families that the data allow (`estimators/registry.py`;
gold methods only where the simulator has gold) is fitted as a user calls it, `fit(data)` with no
options (only the seed set), on N runs in the layout the registry names for it (`layout_for`: every run
at θ ~ prior for nre and nle, pairs otherwise). Then

    error     `goldmine.evaluate.log_ratio_error(est, sim)["mse"]`, exact by quadrature (as gm.evaluate);
    coverage  at each fixed true θ, the fraction of toy data sets of n_obs runs drawn from the simulator
              whose 95% Wilks region (χ² threshold) contains θ (`goldmine.inference.coverage`), with its
              binomial standard error;
    check     for one observed data set drawn at each true θ, `confidence_region(..., check=CHECK_TOYS)`:
              the coverage of the χ² threshold measured by toys at θ̂ and at the ends of the wider region along
              each axis (`goldmine.inference.wilks_check`), and whether it warned (`CalibrationWarning`) and named
              the lowest coverage it measured;

and the exact likelihood runs through the same code as the reference row. Per (simulator, budget,
method) the summary pools the coverage over seeds and θ points, counts the under-covering cases (seed,
θ) and how many of them the check warned for, and gives the error's spread over seeds (max / min).

The issue's targets, recorded under "targets":

    coverage   every ratio and likelihood method's pooled Wilks coverage within 2 points of 95%, or every
               one of its under-covering cases warned by the check (naming the measured coverage);
    spread     the default estimator (`gm.RatioEstimator()` on data with gold) at 10³ runs: max / min
               error over ≥ 5 data seeds at most 2.

Usage:
    python benchmarks/region_coverage.py [--simulators galton weinberg] [--budgets 1000 10000] [--seeds 5]
        [--methods ...] [--toys 250] [--check 200] [--quick] [--report] [--out DIR]
        [--recheck STORED_DIR] [--curtailment STORED_DIR] [--false-alarms REGIONS] [--sizes]

--curtailment STORED_DIR refits the entries stored there (as --recheck) and runs the check of each observed region twice,
every toy at every point and curtailed (`wilks_check`: a point stops once its verdict is certain, the check at the
first certain warning): whether the verdicts are identical, and the toys and seconds each took (DIR/curtailment.json).

--recheck refits the entries stored in STORED_DIR (same seeds: the same fit, verified by its error) and reruns only
the check, keeping the stored coverage at the true θ and the stored check as "check_before", so that the report sets
the earlier check (θ̂ alone) beside the current one on the same cases. --false-alarms counts how often the check
warns for the exact likelihood's regions over many observed data sets.

Variants of a method (`--methods carl+bal nre+bal10 carl+ens5`): METHOD+balλ is `RatioEstimator(METHOD, balance=λ)`
(the balancing condition of BNRE; "+bal" alone: λ = 100, the paper's), METHOD+ensK is `gm.Ensemble` of K members of
METHOD's default estimator; every other option stays the default. Each check also records the size of the observed
region (`Region.size`: its length in 1-D, its area in 2-D), which the summary sets beside the exact likelihood's: a
method that covers by widening its regions shows it there. --sizes adds it to stored entries measured before (refitted
with their seeds, kept only where the refit reproduces the stored error).

Each finished (simulator, budget, seed, method) is one JSON file in DIR/entries/ (a rerun skips it, so a
killed run resumes); DIR/coverage.json holds the summary and DIR/coverage.png plots it. --report redraws
both from the stored entries without fitting. torch runs on one thread.

(The file is not called coverage.py: on a path with benchmarks/ first it would shadow the `coverage` package, which
numba imports.)

References:
    Wilks, "The large-sample distribution of the likelihood ratio for testing composite hypotheses",
    Ann. Math. Statist. 9 (1938) 60.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import goldmine as gm  # noqa: E402
from goldmine.estimators.registry import layout_for, methods  # noqa: E402
from goldmine.evaluate import log_ratio_error  # noqa: E402
from goldmine.inference import CalibrationWarning, Model, confidence_region, coverage  # noqa: E402
from goldmine.inference.wilks_check import FALSE_ALARM, check_region, p_value  # noqa: E402
from inference_quality import LEVEL, SETUP  # noqa: E402
from mining_speed import machine_info  # noqa: E402
from sample_efficiency import SIMULATORS, even, make_estimator, write  # noqa: E402

FAMILIES = ("ratio", "likelihood")
#: the fixed true θ points and observations per toy data set: inference_quality's hypothesis and n_obs, and one
#: more point per simulator; Weinberg's θ grid is 41 × 41 (its exact Wilks coverage is the same at 61 × 61,
#: 0.98 at both points, where 21 × 21 inflates it to 0.995)
POINTS = {"galton": dict(thetas=[SETUP["galton"]["theta"], [-0.5]], n_obs=SETUP["galton"]["n_obs"], grid=101),
          "weinberg": dict(thetas=[SETUP["weinberg"]["theta"], [42.0, 0.7]], n_obs=SETUP["weinberg"]["n_obs"], grid=41)}
BUDGETS = (1_000, 10_000)
TOYS, CHECK_TOYS, SEEDS = 250, 200, 5
#: the targets: within this many probability points of the level; the default estimator's spread at most
COVERAGE_TOLERANCE, SPREAD_LIMIT, SPREAD_BUDGET = 0.02, 2.0, 1_000
#: the rule of the check at θ̂ alone that the current one is compared with: warn more than this many binomial standard
#: errors below the level
BEFORE_K = 1.5
QUICK = dict(simulators=["galton"], budgets=[1_000], seeds=2, methods=["exact", "carl", "alice"], toys=100, check=100)


def default_methods(sim) -> list[str]:
    """The ratio and likelihood methods the registry offers for the simulator's data (gold ones only with gold)."""
    return [name for f in FAMILIES for name, m in methods(f).items() if m.trainable and (sim.has_gold or not m.needs_gold)]


#: "+bal" without a number: the balancing weight of Delaunoy et al. (arXiv:2208.13624)
PAPER_BALANCE = 100.0


def variant(method: str) -> tuple[str, dict]:
    """The base method of a method name and its variant's options: "carl+bal" → ("carl", {"balance": 100.0}),
    "nre+bal10" → ("nre", {"balance": 10.0}), "carl+ens5" → ("carl", {"ensemble": 5}), "carl" → ("carl", {})."""
    base, _, tail = method.partition("+")
    if not tail:
        return base, {}
    if tail.startswith("bal"):
        return base, {"balance": float(tail[3:]) if tail[3:] else PAPER_BALANCE}
    if tail.startswith("ens") and tail[3:].isdigit():
        return base, {"ensemble": int(tail[3:])}
    raise ValueError(f"unknown variant {method!r}: METHOD+bal[λ] or METHOD+ensK.")


def default_estimator_method(sim) -> str:
    """The method `gm.RatioEstimator().fit(data)` trains on pairs data of this simulator: alice with gold, else carl."""
    return "alice" if sim.has_gold else "carl"


def key(e: dict) -> tuple:
    return (e["simulator"], e["budget"], e["seed"], e["method"])


def entry_path(out: Path, e: dict) -> Path:
    return out / "entries" / f"{e['simulator']}_{e['budget']}_{e['seed']}_{e['method']}.json"


# -- one entry ----------------------------------------------------------------------------------------


def measure(model, sim, setup: dict, toys: int, check: int, seed: int) -> dict:
    """Wilks coverage at each true θ and the calibration check of one observed data set drawn there."""
    points = []
    for j, theta in enumerate(setup["thetas"]):
        c = coverage(model, theta, setup["n_obs"], LEVEL, "wilks", toys=toys, seed=1000 * seed + j,
                     grid=setup["grid"], progress=False)
        point = dict(theta=theta, coverage=c["coverage"], stderr=c["stderr"], toys=toys)
        point["check"] = measure_check(model, sim, setup, theta, j, check, seed)
        points.append(point)
    return {"points": points}


def observed(sim, setup: dict, theta, j: int, seed: int) -> torch.Tensor:
    """The observed data set of true θ point j and data seed `seed`: setup["n_obs"] runs at θ, (n_obs, x_dim)."""
    g = torch.Generator().manual_seed(10_000 + 1000 * seed + j)
    return sim.sample(torch.tensor([theta], dtype=torch.float64).expand(setup["n_obs"], -1), generator=g).x


def selection(config: dict):
    """(budget, seed, simulator name, method) of every entry the config selects, in the order runs take them: every
    10³ entry before the first 10⁴ one, seeds before simulators, so that a budget cut short has its first seeds on
    every simulator."""
    for budget in config["budgets"]:
        for seed in range(config["seeds"]):
            for name in config["simulators"]:
                for method in config["methods"][name]:
                    yield budget, seed, name, method


def measure_check(model, sim, setup: dict, theta, j: int, check: int, seed: int) -> dict:
    """`confidence_region(..., check=check)` of the observed data set drawn at the true θ (point j, data seed
    `seed`): what the check measured, whether it warned and named the coverage, and whether the truth is inside."""
    x_obs = observed(sim, setup, theta, j, seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CalibrationWarning)
        region = confidence_region(model, x_obs, LEVEL, "wilks", grid=setup["grid"], check=check, seed=seed,
                                   progress=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, CalibrationWarning)]
    cal = region.calibration
    return dict(coverage=cal["coverage"], stderr=cal["stderr"], toys=cal["toys"], theta=cal["theta"],
                points=cal["points"], p_value=cal["p_value"], under_covers=cal["under_covers"], warned=bool(messages),
                names_coverage=bool(messages) and f"{cal['coverage']:.3f}" in messages[0],
                message=messages[0] if messages else None, on_edge=bool(region.mle.on_edge), size=float(region.size),
                true_inside=bool(region.contains(torch.tensor([theta], dtype=torch.float64))[0]))


def recheck_entry(stored: dict, config: dict, tmp: Path) -> dict:
    """A stored entry with the current calibration check in place of the one it was measured with (kept as
    "check_before" in each point). The surrogate is fitted again with the entry's seed; when its error equals the
    stored one the stored coverage at the true θ is that of this fit and is kept, otherwise it is measured again."""
    name, budget, seed, method = key(stored)
    sim = SIMULATORS[name]()
    setup = dict(thetas=[p["theta"] for p in stored["points"]], n_obs=stored["n_obs"], grid=stored["grid"])
    entry = {k: v for k, v in stored.items() if k not in ("points", "inference_seconds", "finished")}
    entry.update(rechecked_from=str(config["recheck"]), check=config["check"])
    try:
        if method == "exact":
            surrogate = sim
        else:
            surrogate, _, _ = fit_surrogate(sim, name, method, budget, seed, tmp)
            entry["refit_error"] = log_ratio_error(surrogate, sim)["mse"]
        model = Model(surrogate, prior=sim, simulator=sim)
        same = method == "exact" or math.isclose(entry["refit_error"], stored["error"], rel_tol=1e-9)
        entry["refit_matches"] = same
        start = time.perf_counter()
        points = []
        for j, old in enumerate(stored["points"]):
            point = {k: v for k, v in old.items() if k != "check"}
            if not same:
                c = coverage(model, old["theta"], setup["n_obs"], LEVEL, "wilks", toys=old["toys"],
                             seed=1000 * seed + j, grid=setup["grid"], progress=False)
                point.update(coverage=c["coverage"], stderr=c["stderr"])
            point["check_before"] = old["check"]
            point["check"] = measure_check(model, sim, setup, old["theta"], j, config["check"], seed)
            points.append(point)
        entry["points"] = points
        entry["inference_seconds"] = time.perf_counter() - start
    except Exception as err:  # one failing method must not end a long run
        entry["failed"] = f"{type(err).__name__}: {err}"
        entry["traceback"] = traceback.format_exc()
    entry["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return entry


def recheck(config: dict, out: Path, log=print) -> list[dict]:
    """`recheck_entry` of every stored entry in config["recheck"] that the selection (simulators, budgets, seeds,
    methods) names, in the order of `run`, skipping those already rechecked into `out`."""
    (out / "entries").mkdir(parents=True, exist_ok=True)
    stored = {key(e): e for e in load(Path(config["recheck"])) if "failed" not in e}
    with tempfile.TemporaryDirectory() as tmp:
        for budget, seed, name, method in selection(config):
            old = stored.get((name, budget, seed, method))
            path = entry_path(out, dict(simulator=name, budget=budget, seed=seed, method=method))
            if old is None or (path.is_file() and "failed" not in json.loads(path.read_text())):
                continue
            entry = recheck_entry(old, config, Path(tmp))
            write(entry, path)
            log(line(entry), flush=True)
    return load(out)


def other_rules(est, sim, setup: dict, toys: int, seed: int) -> dict:
    """The error and Wilks coverage of the weights the Trainer's other keep rules would have kept from the same fit
    (`Trainer.best_states`: "loss", the best validation epoch of the method's loss, `keep="best"`; "xent", the ratio
    family's classification cross-entropy, `keep="xent"`), as benchmarks/model_selection.py scores their error."""
    states = getattr(getattr(est, "trainer", None), "best_states", None) or {}
    final = {k: v.clone() for k, v in est.network_.state_dict().items()}
    out = {}
    try:
        for rule, (epoch, _, state) in states.items():
            est.network_.load_state_dict(state)
            est.network_.eval()
            model = Model(est, prior=sim, simulator=sim)
            points = []
            for j, theta in enumerate(setup["thetas"]):
                c = coverage(model, theta, setup["n_obs"], LEVEL, "wilks", toys=toys, seed=1000 * seed + j,
                             grid=setup["grid"], progress=False)
                points.append(dict(theta=theta, coverage=c["coverage"], stderr=c["stderr"], toys=toys))
            out[rule] = dict(epoch=epoch, error=log_ratio_error(est, sim)["mse"], points=points)
    finally:
        est.network_.load_state_dict(final)
        est.network_.eval()
    return out


def setup_of(name: str, config: dict) -> dict:
    """The true θ points, n_obs and grid of a simulator, with the command line's --grid and --points applied."""
    setup = dict(POINTS[name])
    setup["thetas"] = setup["thetas"][:config.get("points") or None]
    setup["grid"] = config.get("grid", {}).get(name) or setup["grid"]
    return setup


def fit_surrogate(sim, name: str, method: str, budget: int, seed: int, tmp: Path):
    """`method` fitted with its defaults on `budget` runs of `sim` (data seed `seed`, in the layout the method wants):
    (the surrogate, the layout, the fit's seconds)."""
    base, options = variant(method)
    layout = layout_for([base])
    data = gm.simulate(sim, budget, tmp / f"{name}_{budget}_{seed}_{layout}.h5", seed=seed, progress=False,
                       layout=layout)
    est = make_estimator(base, sim, seed, budget)
    if "balance" in options:
        est = type(est)(**{**est.params, "balance": options["balance"]}, **est.training)
    if "ensemble" in options:
        est = gm.Ensemble(est, options["ensemble"])
    start = time.perf_counter()
    return est.fit(data), layout, time.perf_counter() - start


def run_entry(name: str, budget: int, seed: int, method: str, config: dict, tmp: Path) -> dict:
    sim, setup = SIMULATORS[name](), setup_of(name, config)
    entry = dict(simulator=name, budget=budget, seed=seed, method=method, toys=config["toys"], check=config["check"],
                 n_obs=setup["n_obs"], grid=setup["grid"])
    try:
        if method == "exact":
            surrogate = sim
        else:
            surrogate, layout, seconds = fit_surrogate(sim, name, method, budget, seed, tmp)
            entry.update(layout=layout, fit_seconds=seconds,
                         epochs=len(surrogate.history_["train_loss"]) if getattr(surrogate, "history_", None) else None,
                         kept=(surrogate.history_ or {}).get("kept") if hasattr(surrogate, "history_") else None)
            entry["error"] = log_ratio_error(surrogate, sim)["mse"]
        start = time.perf_counter()
        entry.update(measure(Model(surrogate, prior=sim, simulator=sim), sim, setup, config["toys"], config["check"],
                             seed))
        if config.get("rules") and method != "exact":
            entry["rules"] = other_rules(surrogate, sim, setup, config["toys"], seed)
        entry["inference_seconds"] = time.perf_counter() - start
    except Exception as err:  # one failing method must not end a long run
        entry["failed"] = f"{type(err).__name__}: {err}"
        entry["traceback"] = traceback.format_exc()
    entry["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return entry


def run(config: dict, out: Path, log=print) -> list[dict]:
    (out / "entries").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for budget, seed, name, method in selection(config):
            path = entry_path(out, dict(simulator=name, budget=budget, seed=seed, method=method))
            if path.is_file():
                stored = json.loads(path.read_text())
                if "failed" not in stored and ("rules" in stored or not config.get("rules") or method == "exact"):
                    continue
            entry = run_entry(name, budget, seed, method, config, Path(tmp))
            write(entry, path)
            log(line(entry), flush=True)
    return load(out)


def backfill_sizes(config: dict, out: Path, log=print) -> list[dict]:
    """The observed region's size (`Region.size`) added to the check of every selected entry in `out` that lacks it
    (entries measured before the size was recorded): the surrogate refitted with the entry's seed, kept only when
    its error equals the stored one (the same fit), and the region of the same observed data set (`observed`)."""
    with tempfile.TemporaryDirectory() as tmp:
        for budget, seed, name, method in selection(config):
            path = entry_path(out, dict(simulator=name, budget=budget, seed=seed, method=method))
            if not path.is_file():
                continue
            entry = json.loads(path.read_text())
            if "failed" in entry or all("size" in p["check"] for p in entry["points"]):
                continue
            sim = SIMULATORS[name]()
            surrogate = sim if method == "exact" else fit_surrogate(sim, name, method, budget, seed, Path(tmp))[0]
            if method != "exact" and not math.isclose(log_ratio_error(surrogate, sim)["mse"], entry["error"],
                                                      rel_tol=1e-9):
                log(f"{path.name}: the refit does not reproduce the stored error; its size is left out", flush=True)
                continue
            setup = dict(n_obs=entry["n_obs"], grid=entry["grid"])
            for j, point in enumerate(entry["points"]):
                x_obs = observed(sim, setup, point["theta"], j, seed)
                region = confidence_region(Model(surrogate, prior=sim, simulator=sim), x_obs, LEVEL, "wilks",
                                           grid=entry["grid"], progress=False)
                point["check"]["size"] = float(region.size)
            write(entry, path)
            log(f"{path.name}: sizes {[p['check']['size'] for p in entry['points']]}", flush=True)
    return load(out)


def false_alarms(names, regions: int, config: dict, out: Path, log=print) -> dict:
    """How often the check warns for the exact likelihood (a calibrated Wilks region, up to its finite-n error): per
    simulator, `regions` observed data sets (the true θ points in turn, data seeds 100 000 + k), each region checked
    by config["check"] toys per point (check seed k). Stored in DIR/false_alarms.json, merged with earlier runs."""
    path = out / "false_alarms.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    for name in names:
        sim, setup = SIMULATORS[name](), setup_of(name, config)
        start, warned, lowest = time.perf_counter(), 0, []
        for k in range(regions):
            theta = setup["thetas"][k % len(setup["thetas"])]
            g = torch.Generator().manual_seed(100_000 + k)
            x_obs = sim.sample(torch.tensor([theta], dtype=torch.float64).expand(setup["n_obs"], -1), generator=g).x
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CalibrationWarning)
                region = confidence_region(sim, x_obs, LEVEL, "wilks", grid=setup["grid"], check=config["check"],
                                           seed=k, progress=False)
            warned += region.calibration["under_covers"]
            lowest.append(region.calibration["coverage"])
        results[name] = dict(regions=regions, toys_per_point=config["check"], grid=setup["grid"], n_obs=setup["n_obs"],
                             warned=warned, rate=warned / regions, stderr=math.sqrt(FALSE_ALARM * (1 - FALSE_ALARM) / regions),
                             false_alarm=FALSE_ALARM, mean_lowest_coverage=statistics.fmean(lowest),
                             seconds=time.perf_counter() - start)
        log(f"{name}: the exact likelihood's check warned for {warned} of {regions} regions "
            f"({warned / regions:.3f}; the rule allows {FALSE_ALARM})", flush=True)
    write(results, path)
    return results


def curtailment(config: dict, out: Path, log=print) -> dict:
    """The check of every observed region of the entries stored in config["curtailment"] (the selection of `recheck`;
    surrogates refitted with the entry's seed), every toy at every point and curtailed: per case (entry, true θ) both
    verdicts, the toys evaluated and the seconds. Stored in DIR/curtailment.json."""
    stored = {key(e): e for e in load(Path(config["curtailment"])) if "failed" not in e}
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for budget, seed, name, method in selection(config):
            entry = stored.get((name, budget, seed, method))
            if entry is None:
                continue
            sim, setup = SIMULATORS[name](), setup_of(name, config)
            surrogate = sim if method == "exact" else fit_surrogate(sim, name, method, budget, seed, Path(tmp))[0]
            model = Model(surrogate, prior=sim, simulator=sim)
            model.progress = False
            for j, theta in enumerate(setup["thetas"]):
                x_obs = observed(sim, setup, theta, j, seed)  # as measure_check draws it
                region = confidence_region(model, x_obs, LEVEL, "wilks", grid=setup["grid"], progress=False)
                case = dict(simulator=name, budget=budget, seed=seed, method=method, theta=theta)
                for how, curtail in (("full", False), ("curtailed", True)):
                    start = time.process_time()
                    c = check_region(region, sim, config["check"], seed, curtail=curtail)
                    case[how] = dict(under_covers=c["under_covers"], evaluated=c["evaluated"],
                                     coverage=c["coverage"], coverage_toys=c["coverage_toys"],
                                     cpu_seconds=time.process_time() - start)
                case["same_verdict"] = case["full"]["under_covers"] == case["curtailed"]["under_covers"]
                cases.append(case)
                log(f"{name} {budget} seed {seed} {method:>7} θ = {theta}: warns {case['full']['under_covers']}"
                    f" / {case['curtailed']['under_covers']}, toys {case['full']['evaluated']} → "
                    f"{case['curtailed']['evaluated']}, CPU s {case['full']['cpu_seconds']:.2f} → "
                    f"{case['curtailed']['cpu_seconds']:.2f}", flush=True)
    warned = [c for c in cases if c["full"]["under_covers"]]
    total = {how: {k: sum(c[how][k] for c in cases) for k in ("evaluated", "cpu_seconds")} for how in ("full", "curtailed")}
    result = dict(stored=str(config["curtailment"]), check=config["check"], cases=len(cases),
                  same_verdict=sum(c["same_verdict"] for c in cases), warned=len(warned),
                  toys_warned={how: sum(c[how]["evaluated"] for c in warned) for how in ("full", "curtailed")},
                  total=total, machine=machine_info(), details=cases)
    write(result, out / "curtailment.json")
    log(f"{len(cases)} cases: the same verdict in {result['same_verdict']}; {len(warned)} warned; toys evaluated "
        f"{total['full']['evaluated']} → {total['curtailed']['evaluated']} (warned cases {result['toys_warned']['full']}"
        f" → {result['toys_warned']['curtailed']}); CPU s {total['full']['cpu_seconds']:.1f} → "
        f"{total['curtailed']['cpu_seconds']:.1f}")
    return result


def load(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "entries").glob("*.json"))]


# -- summaries ------------------------------------------------------------------------------------------


def warns(point: dict, false_alarm: float = FALSE_ALARM) -> bool:
    """Whether the check of this case warns by the current rule (`wilks_check`: Šidák over the points it measured,
    at `false_alarm`), re-scored from the toys that covered at each point; a check measured at θ̂ alone (an entry of
    an earlier release) by the rule of that release (`warns_before`)."""
    check = point["check"]
    if "points" not in check:
        return warns_before(check)
    m = len(check["points"])
    lowest = min(p_value(p["covered"], p["toys"], LEVEL) for p in check["points"])
    return 1 - (1 - lowest) ** m < false_alarm


def warns_before(check: dict) -> bool:
    """The rule of the check before it measured at several points: its coverage at θ̂ more than BEFORE_K binomial
    standard errors of the level below the level."""
    return check["coverage"] < LEVEL - BEFORE_K * math.sqrt(LEVEL * (1 - LEVEL) / check["toys"])


def summary(entries: list[dict]) -> list[dict]:
    """Per (simulator, budget, method): error over seeds, the pooled coverage, the under-covering cases and warnings."""
    groups: dict = {}
    for e in entries:
        if "failed" not in e:
            groups.setdefault((e["simulator"], e["budget"], e["method"]), []).append(e)
    exact = {(e["simulator"], e["budget"], e["seed"], j): p["check"].get("size")
             for e in entries if e["method"] == "exact" and "failed" not in e for j, p in enumerate(e["points"])}
    rows = []
    for (sim, budget, method), es in sorted(groups.items()):
        points = [p for e in es for p in e["points"]]
        sizes = [p["check"]["size"] / exact[(sim, budget, e["seed"], j)] for e in es for j, p in enumerate(e["points"])
                 if p["check"].get("size") is not None and exact.get((sim, budget, e["seed"], j))]
        toys = sum(p["toys"] for p in points)
        pooled = sum(p["coverage"] * p["toys"] for p in points) / toys
        row = dict(simulator=sim, budget=budget, method=method, seeds=len(es), toys=toys, coverage=pooled,
                   stderr=math.sqrt(pooled * (1 - pooled) / toys),
                   grid=sorted({e["grid"] for e in es}),
                   per_theta=[dict(theta=t, coverage=statistics.fmean(p["coverage"] for p in points if p["theta"] == t))
                              for t in POINTS[sim]["thetas"] if any(p["theta"] == t for p in points)])
        under = [p for p in points if p["coverage"] < LEVEL - COVERAGE_TOLERANCE]
        row.update(cases=len(points), under_cases=len(under), under_warned=sum(map(warns, under)),
                   named=all(p["check"]["names_coverage"] for p in points if p["check"]["warned"]),
                   warned=sum(map(warns, points)),
                   check_coverage=statistics.fmean(p["check"]["coverage"] for p in points),
                   size_ratio=statistics.fmean(sizes) if sizes else None)
        if method != "exact":
            errors = [e["error"] for e in es]
            row.update(error=statistics.fmean(errors), error_min=min(errors), error_max=max(errors),
                       spread=max(errors) / min(errors) if min(errors) > 0 else math.inf,
                       layout=es[0].get("layout"))
        within = abs(pooled - LEVEL) <= COVERAGE_TOLERANCE
        silent = row["under_cases"] - row["under_warned"]
        row["verdict"] = ("within 2 points" if within else "over-covers (conservative)" if pooled > LEVEL else
                          "under-covers, every case warned" if not silent else
                          f"under-covers, {silent} of {row['under_cases']} cases silently")
        row["met"] = within or (pooled < LEVEL and not silent and row["named"])
        rows.append(row)
    return rows


def check_rules(entries: list[dict], ks=(1.0, 1.5, 2.0)) -> list[dict]:
    """How the calibration check's rule "warn when the coverage it measures is more than k binomial standard errors
    below the level" (`intervals.UNDER_COVERAGE` is k) would sort the measured cases (surrogates only): of those whose
    coverage at the true θ is more than 2 points under, how many it warns for; of the others, how many it warns for
    (false alarms); and, for a calibrated threshold, the binomial probability of a false alarm with the check's toys."""
    from scipy.stats import binom

    cases = [(p["coverage"], p.get("check_before", p["check"])) for e in entries
             if "failed" not in e and e["method"] != "exact" for p in e["points"]]
    cases = [(cov, c) for cov, c in cases if "points" not in c]  # checks at θ̂ alone
    out = []
    for k in ks:
        def warns(check):
            return check["coverage"] < LEVEL - k * math.sqrt(LEVEL * (1 - LEVEL) / check["toys"])

        under = [c for cov, c in cases if cov < LEVEL - COVERAGE_TOLERANCE]
        fine = [c for cov, c in cases if cov >= LEVEL - COVERAGE_TOLERANCE]
        toys = max((c["toys"] for _, c in cases), default=CHECK_TOYS)
        limit = math.ceil(toys * (LEVEL - k * math.sqrt(LEVEL * (1 - LEVEL) / toys))) - 1  # warns at ≤ limit covered
        out.append(dict(k=k, under=len(under), under_warned=sum(map(warns, under)), fine=len(fine),
                        fine_warned=sum(map(warns, fine)), null_false_alarm=float(binom.cdf(limit, toys, LEVEL)),
                        toys=toys))
    return out


def recheck_counts(entries: list[dict], false_alarms=(FALSE_ALARM, 0.1)) -> list[dict]:
    """For the rechecked entries (with "check_before"), per (simulator, budget) and in all: of the surrogates' cases
    more than 2 points under at the true θ, how many the check at θ̂ alone warned for (`warns_before`) and how many the
    current check warns for (`warns`, at each false-alarm probability); the same for the surrogates' other cases and
    for the exact likelihood's cases (whose warnings are false alarms when it covers)."""
    groups: dict = {}
    for e in entries:
        if "failed" in e or not all("check_before" in p for p in e["points"]):
            continue
        for where in ((e["simulator"], e["budget"]), ("all", "all")):
            g = groups.setdefault(where, dict(under=[], fine=[], exact=[]))
            for p in e["points"]:
                kind = "exact" if e["method"] == "exact" else \
                    "under" if p["coverage"] < LEVEL - COVERAGE_TOLERANCE else "fine"
                g[kind].append(p)
    rows = []
    for (sim, budget), g in sorted(groups.items(), key=lambda kv: (kv[0][0] == "all", str(kv[0]))):
        row = dict(simulator=sim, budget=budget)
        for kind, points in g.items():
            row[kind] = len(points)
            row[f"{kind}_before"] = sum(warns_before(p["check_before"]) for p in points)
            for a in false_alarms:
                row[f"{kind}_now_{a:g}"] = sum(warns(p, a) for p in points)
        row["exact_coverage"] = (statistics.fmean(p["coverage"] for p in g["exact"]) if g["exact"] else None)
        rows.append(row)
    return rows


def recheck_table(rows: list[dict], false_alarms=(FALSE_ALARM, 0.1)) -> str:
    head = ["simulator", "runs", "under-covering cases", "warned at θ̂ (before)"]
    head += [f"warned now (false alarm {a:g})" for a in false_alarms]
    head += ["other cases: warned before", *[f"now ({a:g})" for a in false_alarms]]
    head += ["exact cases: warned before", *[f"now ({a:g})" for a in false_alarms]]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for r in rows:
        cells = [str(r["simulator"]), str(r["budget"]), str(r["under"]), str(r["under_before"])]
        cells += [str(r[f"under_now_{a:g}"]) for a in false_alarms]
        cells += [f"{r['fine_before']}/{r['fine']}", *[f"{r[f'fine_now_{a:g}']}/{r['fine']}" for a in false_alarms]]
        cells += [f"{r['exact_before']}/{r['exact']}", *[f"{r[f'exact_now_{a:g}']}/{r['exact']}" for a in false_alarms]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(rows: list[dict], default: str) -> dict:
    rows = [r for r in rows if "+" not in r["method"]]  # the targets are the defaults': variants are measured beside
    cov = {f"{r['simulator']}/{r['budget']}/{r['method']}": dict(coverage=r["coverage"], stderr=r["stderr"],
                                                                  verdict=r["verdict"], met=r["met"])
           for r in rows if r["method"] != "exact"}
    spread = {f"{r['simulator']}/{r['budget']}/{r['method']}": dict(spread=r["spread"], seeds=r["seeds"],
                                                                     met=r["spread"] <= SPREAD_LIMIT)
              for r in rows if r["method"] == default and r["budget"] == SPREAD_BUDGET and r["seeds"] >= 5}

    def verdict(checks):
        return None if not checks else all(c["met"] for c in checks.values())

    return {"coverage": dict(description=f"the pooled coverage of the default {LEVEL:.0%} Wilks region within "
                             f"{COVERAGE_TOLERANCE * 100:.0f} points of nominal, or every under-covering case warned "
                             "with the measured coverage", met=verdict(cov), checks=cov),
            "spread": dict(description=f"the default estimator ({default}) at {SPREAD_BUDGET} runs: max/min error over "
                           f"≥ 5 data seeds at most {SPREAD_LIMIT:g}×", met=verdict(spread), checks=spread)}


def line(e: dict) -> str:
    head = f"{e['simulator']:>9} {e['budget']:>6} {e['seed']:>4} {e['method']:>8}"
    if "failed" in e:
        return f"{head}  FAILED {e['failed']}"
    cov = " ".join(f"{p['coverage']:.3f}" for p in e["points"])
    chk = " ".join(f"{p['check']['coverage']:.3f}{'!' if p['check']['warned'] else ''}" for p in e["points"])
    err = f"{e['error']:.4g}" if "error" in e else "-"
    return (f"{head} error {err:>9}  coverage {cov}  check {chk}  "
            f"{e.get('fit_seconds', 0) + e['inference_seconds']:.0f} s")


def table(rows: list[dict]) -> str:
    lines = ["| simulator | runs | method | seeds | Wilks coverage (pooled toys) | per θ | under-covering cases: warned | "
             "error mean [min, max] | max/min | verdict | observed region's size / exact's |",
             "|---|---:|---|---:|---|---|---|---|---:|---|---:|"]
    for r in rows:
        per = " / ".join(f"{p['coverage']:.3f}" for p in r["per_theta"])
        err = (f"{r['error']:.3g} [{r['error_min']:.2g}, {r['error_max']:.2g}]" if "error" in r else "exact")
        spread = f"{r['spread']:.1f}×" if "spread" in r else ""
        lines.append(f"| {r['simulator']} | {r['budget']} | {r['method']} | {r['seeds']} | {r['coverage']:.3f} ± "
                     f"{r['stderr']:.3f} ({r['toys']}) | {per} | {r['under_cases']}/{r['cases']}: {r['under_warned']} | "
                     f"{err} | {spread} | {r['verdict']} | "
                     f"{'' if r.get('size_ratio') is None else format(r['size_ratio'], '.2f')} |")
    return "\n".join(lines)


def rules_table(entries: list[dict]) -> str:
    """Per (simulator, budget, method): the mean error and pooled coverage of the weights each keep rule picks."""
    groups: dict = {}
    for e in entries:
        if "rules" in e:
            g = groups.setdefault((e["simulator"], e["budget"], e["method"]), {})
            g.setdefault("final", []).append((e["error"], e["points"]))
            for rule, r in e["rules"].items():
                g.setdefault(rule, []).append((r["error"], r["points"]))
    lines = ["| simulator | runs | method | seeds | final: error, coverage | best own loss | best xent |",
             "|---|---:|---|---:|---|---|---|"]
    for (sim, budget, method), g in sorted(groups.items()):
        cells = []
        for rule in ("final", "loss", "xent"):
            if rule not in g:
                cells.append("—")
                continue
            pts = [p for _, ps in g[rule] for p in ps]
            pooled = sum(p["coverage"] * p["toys"] for p in pts) / sum(p["toys"] for p in pts)
            cells.append(f"{statistics.fmean(err for err, _ in g[rule]):.3g}, {pooled:.3f}")
        lines.append(f"| {sim} | {budget} | {method} | {len(g['final'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["simulator"], r["budget"]) for r in rows})
    fig, axes = plt.subplots(2, len(panels), figsize=(5 * len(panels), 7), squeeze=False)
    for col, (sim, budget) in enumerate(panels):
        rs = [r for r in rows if (r["simulator"], r["budget"]) == (sim, budget)]
        names = [r["method"] for r in rs]
        ax = axes[0, col]
        ax.errorbar(range(len(rs)), [r["coverage"] for r in rs], yerr=[2 * r["stderr"] for r in rs], fmt="o")
        ax.axhline(LEVEL, color="k", lw=0.8)
        ax.axhspan(LEVEL - COVERAGE_TOLERANCE, LEVEL + COVERAGE_TOLERANCE, color="g", alpha=0.15)
        ax.set_xticks(range(len(rs)), names, rotation=45)
        ax.set_ylabel("Wilks coverage of 95% (±2 se)")
        ax.set_title(f"{sim}, {budget} runs")
        ax = axes[1, col]
        es = [r for r in rs if "error" in r]
        ax.errorbar(range(len(es)), [r["error"] for r in es],
                    yerr=[[r["error"] - r["error_min"] for r in es], [r["error_max"] - r["error"] for r in es]], fmt="o")
        ax.set_yscale("log")
        ax.set_xticks(range(len(es)), [r["method"] for r in es], rotation=45)
        ax.set_ylabel("log r error, mean [min, max] over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(out: Path, config: dict) -> dict:
    entries = load(out)
    rows = summary(entries)
    default = default_estimator_method(SIMULATORS["galton"]())
    results = dict(config=config, machine=machine_info(), summary=rows, targets=targets(rows, default),
                   check_rules=check_rules(entries), recheck=recheck_counts(entries),
                   default_method=default, failed=[key(e) for e in entries if "failed" in e])
    write(results, out / "coverage.json")
    if rows:
        plot(rows, out / "coverage.png")
    print(table(rows))
    print("\n" + rules_table(entries))
    if results["recheck"]:
        print("\nthe check at θ̂ alone (before) against the check at θ̂ and the region's ends (now):")
        print(recheck_table(results["recheck"]))
    print("\nthe check's rule, warn below the level by k standard errors: under-covering cases warned / false alarms")
    for c in results["check_rules"]:
        print(f"  k = {c['k']}: {c['under_warned']}/{c['under']} under-covering cases warned, {c['fine_warned']}/"
              f"{c['fine']} others warned; a calibrated region warns with probability {c['null_false_alarm']:.3f} "
              f"({c['toys']} toys)")
    for name, t in results["targets"].items():
        state = {True: "MET", False: "not met", None: "undecided"}[t["met"]]
        print(f"\ntarget {name}: {t['description']}: {state}")
        for where, c in t["checks"].items():
            if not c["met"]:
                print(f"  not met: {where}: {c}")
    return results


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulators", nargs="+", default=list(POINTS), choices=list(POINTS))
    parser.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS))
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--methods", nargs="+", default=None, help="default: exact and every ratio and likelihood method")
    parser.add_argument("--toys", type=int, default=TOYS, help="toy data sets per true θ and entry")
    parser.add_argument("--check", type=int, default=CHECK_TOYS, help="toys of confidence_region's calibration check")
    parser.add_argument("--grid", nargs="+", default=[], metavar="SIM=POINTS",
                        help="θ grid points per axis for a simulator, e.g. weinberg=21 (default: POINTS)")
    parser.add_argument("--points", type=int, default=None, help="use only the first this many true θ points")
    parser.add_argument("--rules", action="store_true",
                        help="also the error and coverage of the weights the other keep rules pick from the same fit")
    parser.add_argument("--quick", action="store_true", help="galton, 10³ runs, 2 seeds, exact carl alice, 100 toys")
    parser.add_argument("--report", action="store_true", help="summarise the stored entries without fitting")
    parser.add_argument("--false-alarms", type=int, default=None, metavar="REGIONS",
                        help="only count how often the check warns for the exact likelihood's regions, over this many "
                             "observed data sets per simulator")
    parser.add_argument("--recheck", type=Path, default=None, metavar="DIR",
                        help="refit the entries stored in DIR and rerun only the calibration check (the current one), "
                             "keeping their coverage at the true θ when the refit reproduces their error")
    parser.add_argument("--curtailment", type=Path, default=None, metavar="DIR",
                        help="refit the entries stored in DIR and check each observed region twice, every toy and "
                             "curtailed: the verdicts, toys and seconds (DIR/curtailment.json under --out)")
    parser.add_argument("--sizes", action="store_true",
                        help="add the observed region's size to the selected stored entries that lack it (refitted "
                             "with their seeds; kept only where the refit reproduces the stored error)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "coverage")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = dict(simulators=args.simulators, budgets=sorted({even(b) for b in args.budgets}), seeds=args.seeds,
                  toys=args.toys, check=args.check, level=LEVEL, rules=args.rules, true_points=POINTS, points=args.points,
                  grid={k: int(v) for k, v in (g.split("=") for g in args.grid)})
    if args.quick:
        config.update(QUICK)
    wanted = config.pop("methods", None) or args.methods
    config["methods"] = {name: [m for m in ["exact", *default_methods(SIMULATORS[name]())] if wanted is None or m in wanted]
                         + [m for m in wanted or () if "+" in m and variant(m)[0] in default_methods(SIMULATORS[name]())]
                         for name in config["simulators"]}
    args.out.mkdir(parents=True, exist_ok=True)
    if args.false_alarms:
        return false_alarms(config["simulators"], args.false_alarms, config, args.out)
    if args.curtailment is not None:
        config["curtailment"] = str(args.curtailment)
        return curtailment(config, args.out)
    if not args.report:
        print(f"coverage: {config['simulators']}, budgets {config['budgets']}, {config['seeds']} seed(s), "
              f"{config['toys']} toys per θ, check {config['check']}, methods {config['methods']}", flush=True)
        start = time.perf_counter()
        if args.sizes:
            backfill_sizes(config, args.out)
        elif args.recheck is not None:
            config["recheck"] = str(args.recheck)
            recheck(config, args.out)
        else:
            run(config, args.out)
        print(f"wall time {time.perf_counter() - start:.0f} s", flush=True)
    return report(args.out, config)


if __name__ == "__main__":
    main()
