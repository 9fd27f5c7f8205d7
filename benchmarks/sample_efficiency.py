"""Sample efficiency: the error of every ratio method against the simulator budget it was trained on.

For each simulator, budget N (simulator runs), seed and method, a data set of N runs is simulated
(`goldmine.simulate`, half at θ ~ prior, half at θ_ref), the method is fitted on it, and its error

    mse_r = mean over a θ grid of E_{x~p(x|θ)} [(log r̂(x|θ, θ_ref) − log r(x|θ, θ_ref))²]

is computed exactly by quadrature (`goldmine.evaluate.log_ratio_error`). The methods are goldmine's
carl, rolr, alice, cascal, rascal, alices (`RatioEstimator`), the histogram baseline
(`HistogramRatio`) and sbi's NRE_A and NLE_A (`benchmarks/peers.py`), each given N fresh runs at
θ ~ prior, sbi's own design (the evidence cancels in log r̂(x|θ) − log r̂(x|θ_ref)).

The posterior methods npe and sbi_npe are judged by another metric, the C2ST of their posterior
against the exact one: asked for (`--methods ... npe sbi_npe`), they run through
`posterior_c2st.py` on Weinberg at the same budgets and seeds, into the same --out folder.

The sample-efficiency factor: for the best gold method (rolr, alice, cascal, rascal, alices; lowest
mean error) at budget N with mean error e, the budget N' at which a peer's mean error curve reaches e,
by linear interpolation of log error against log budget, reported as N'/N ("> max budget" when the
curve never gets that low). The issue's targets, recorded in the JSON under "targets":

    gold_vs_sbi_nre   at N = 10³ and 10⁴ the best gold method reaches the error that sbi NRE needs
                      ≥ 10·N runs for;
    carl_vs_sbi_nre   carl is no worse than sbi NRE at every budget both ran, by a one-sided paired test
                      over seeds on log error (`no_worse`: not significantly worse at 5%, with the power
                      to see a 2× deficit, or significantly better);
    gold_epoch_time_vs_carl
                      at N = 10⁵ each gold method run takes at most 2× carl's seconds per epoch.

and those of issue 4 (Weinberg, where sbi's NLE gives a density): scandal_vs_sbi_nle (as gold_vs_sbi_nre,
against sbi's NLE), nle_vs_sbi_nle (as carl_vs_sbi_nre) and nle_maf_vs_sbi_nle, the same for nle with
an affine flow like sbi's (method nle_maf).

A target that the budgets run cannot decide (e.g. 10⁴ without a budget ≥ 10⁵) is recorded as null.

Usage:
    python benchmarks/sample_efficiency.py [--quick] [--budgets N ...] [--seeds K] [--methods ...] [--out DIR]

Results are written to DIR/sample_efficiency.json after every fit; a rerun with the same DIR skips
the (simulator, budget, seed, method) entries already finished there. DIR/sample_efficiency.png plots
error against budget on log-log axes (mean over seeds, min–max band). torch runs on one thread.

References:
    Brehmer, Louppe, Pavez, Cranmer, "Mining gold from implicit models to improve likelihood-free
    inference", PNAS 117 (2020) 5242, https://arxiv.org/abs/1805.12244
    Hermans, Begy, Louppe, "Likelihood-free MCMC with amortized approximate ratio estimators",
    ICML 2020, https://arxiv.org/abs/1903.04057
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import goldmine as gm  # noqa: E402
from goldmine.evaluate import log_ratio_error  # noqa: E402
from mining_speed import machine_info  # noqa: E402
from peers import prior_pairs, sbi_nle, sbi_nre  # noqa: E402

SIMULATORS = {"galton": gm.simulators.GaltonBoard, "weinberg": gm.simulators.Weinberg}
NEURAL = ("carl", "rolr", "alice", "cascal", "rascal", "alices", "nre")
FLOWS = ("nle", "scandal")
# nle with an affine flow, architecture-matched to sbi's NLE, whose default MAF is a conditional Gaussian for
# one-dimensional x (sbi warns so): its shape errors largely cancel in log r̂, at the price of the density
# (Weinberg, 4000 runs: KL to the exact density 0.17 nats against 0.03 for goldmine's default splines)
AFFINE_NLE = "nle_maf"
GOLD = ("rolr", "alice", "cascal", "rascal", "alices", "scandal")  # the methods that use the mined log r and t
POSTERIORS = ("npe", "sbi_npe")  # judged by C2ST against the exact posterior: posterior_c2st.py, Weinberg only
METHODS = NEURAL + FLOWS + (AFFINE_NLE, "histogram", "sbi_nre", "sbi_nle")
BUDGETS = (100, 316, 1_000, 3_162, 10_000, 31_623, 100_000)
TRAINING = "goldmine's defaults: fit(data) with only the seed set (batch size and lr from the Trainer's rule)"
QUICK = dict(simulators=("galton",), budgets=(1_000, 10_000), seeds=1, methods=("carl", "alices", "histogram", "sbi_nre"))
TARGET_BUDGETS, TARGET_FACTOR = (1_000, 10_000), 10.0
SPEED_BUDGET, SPEED_FACTOR = 100_000, 2.0


class SbiRatio:
    """sbi's NRE as a goldmine ratio surrogate: the attributes and `log_ratio(x, theta)` evaluate needs."""

    train = staticmethod(sbi_nre)

    def __init__(self, sim, seed: int):
        self.theta_dim_, self.x_dim_, self.reference_ = sim.theta_dim, sim.x_dim, sim.reference.clone()
        self.sim, self.seed = sim, seed

    def fit(self, data) -> "SbiRatio":
        """Trains the peer on len(data) fresh runs at θ ~ prior."""
        self.reference_ = data.reference.clone()
        theta, x = prior_pairs(self.sim, len(data), self.seed)
        box = self.sim.prior.base_dist
        self.fitted_ = self.train(theta, x, box.low, box.high, seed=self.seed)
        self.epochs_ = int(self.fitted_.epochs)
        return self

    def log_ratio(self, x, theta) -> torch.Tensor:
        """log r̂(x|θ, θ_ref): x (n, d_x), θ (n, d_θ) → (n,)."""
        return self.fitted_(x, theta, self.reference_)


class SbiLikelihood(SbiRatio):
    """sbi's NLE as a ratio surrogate: log r̂(x|θ, θ_ref) = log p̂(x|θ) − log p̂(x|θ_ref) (continuous x only)."""

    train = staticmethod(sbi_nle)

    def fit(self, data) -> "SbiLikelihood":
        if self.sim.name == "galton":
            raise ValueError("sbi's NLE gives a density, not a probability mass: no ratio of masses for discrete x.")
        return super().fit(data)

    def log_ratio(self, x, theta) -> torch.Tensor:
        return self.fitted_(x, theta) - self.fitted_(x, self.reference_.expand(len(x), -1))


def make_estimator(method: str, sim, seed: int, budget: int):
    """Every goldmine estimator with its default settings (a user's fit(data)); only the seed is set."""
    if method in NEURAL:
        return gm.RatioEstimator(method, seed=seed, progress=False)
    if method in FLOWS:
        return gm.LikelihoodEstimator(method, seed=seed, progress=False)
    if method == AFFINE_NLE:
        return gm.LikelihoodEstimator("nle", flow="maf", seed=seed, progress=False)
    if method == "histogram":
        return gm.HistogramRatio()
    if method == "sbi_nre":
        return SbiRatio(sim, seed)
    if method == "sbi_nle":
        return SbiLikelihood(sim, seed)
    raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}.")


def epochs_of(est) -> int | None:
    if hasattr(est, "epochs_"):
        return est.epochs_
    history = getattr(est, "history_", None)
    return len(history["train_loss"]) if history else None


def even(n: float) -> int:
    return max(2, 2 * round(n / 2))


def key(e: dict) -> tuple:
    return (e["simulator"], e["budget"], e["seed"], e["method"])


# -- running ----------------------------------------------------------------------------------------


def run(config: dict, out: Path, log=print) -> dict:
    """Fits every (simulator, budget, seed, method) not yet in out/sample_efficiency.json; returns the results."""
    path = out / "sample_efficiency.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    entries = [e for e in results.get("entries", []) if "error" in e]  # failed fits are retried
    done = {key(e) for e in entries}
    results.update(config=config, machine=machine_info(), entries=entries)
    with tempfile.TemporaryDirectory() as tmp:
        for name in config["simulators"]:
            sim = SIMULATORS[name]()
            for budget in config["budgets"]:
                for seed in range(config["seeds"]):
                    todo = [m for m in config["methods"] if (name, budget, seed, m) not in done]
                    if not todo:
                        continue
                    start = time.perf_counter()
                    data = gm.simulate(sim, budget, Path(tmp) / f"{name}_{budget}_{seed}.h5", seed=seed, progress=False)
                    sim_seconds = time.perf_counter() - start
                    for method in todo:
                        entry = dict(simulator=name, budget=budget, seed=seed, method=method,
                                     simulate_seconds=sim_seconds)
                        try:
                            est = make_estimator(method, sim, seed, budget)
                            start = time.perf_counter()
                            est.fit(data)
                            entry["fit_seconds"] = time.perf_counter() - start
                            entry["epochs"] = epochs_of(est)
                            entry["error"] = log_ratio_error(est, sim)["mse"]
                        except Exception as err:  # one failing method must not end a long run
                            entry["failed"] = f"{type(err).__name__}: {err}"
                            entry["traceback"] = traceback.format_exc()
                        entry["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
                        results["entries"] = [e for e in results["entries"] if key(e) != key(entry)] + [entry]
                        summarize(results)
                        write(results, path)
                        log(line(entry), flush=True)
    summarize(results)
    write(results, path)
    return results


def resume(path: Path, **fresh) -> dict:
    """The results a resumable benchmark wrote to `path` so far, or a new record (`fresh` and no entries); makes
    the folder, so that `write` can follow."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return json.loads(path.read_text()) if path.exists() else {**fresh, "entries": []}


def write(results: dict, path: Path) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, path)  # a run killed mid-write keeps the previous file


def line(e: dict) -> str:
    head = f"{e['simulator']:>9} {e['budget']:>7} {e['seed']:>4} {e['method']:>9}"
    if "failed" in e:
        return f"{head}  FAILED {e['failed']}"
    epochs = "-" if e["epochs"] is None else str(e["epochs"])
    return f"{head} {epochs:>6} {e['fit_seconds']:>8.1f} {e['error']:>10.4g}"


# -- analysis ---------------------------------------------------------------------------------------


def curves(entries: list[dict]) -> dict:
    """{simulator: {method: {budget: {"mean", "min", "max", "seeds", "fit_seconds"}}}} over finished fits."""
    grouped: dict = {}
    for e in entries:
        if "error" in e:
            grouped.setdefault(e["simulator"], {}).setdefault(e["method"], {}).setdefault(e["budget"], []).append(e)
    out: dict = {}
    for sim, methods in grouped.items():
        for method, budgets in methods.items():
            for budget, es in sorted(budgets.items()):
                errors = [e["error"] for e in es]
                out.setdefault(sim, {}).setdefault(method, {})[budget] = dict(
                    mean=sum(errors) / len(errors), min=min(errors), max=max(errors), seeds=len(errors),
                    fit_seconds=sum(e["fit_seconds"] for e in es) / len(es),
                    epoch_seconds=(None if any(not e["epochs"] for e in es)  # the histogram has no epochs
                                   else sum(e["fit_seconds"] / e["epochs"] for e in es) / len(es)),
                )
    return out


def budget_to_reach(curve: dict, error: float) -> float | None:
    """The first budget at which a mean error curve {budget: stats} gets down to `error`.

    Log-log linear interpolation between neighbouring budgets; the smallest budget if the curve starts
    below `error`; None if it never gets there.
    """
    points = sorted((b, s["mean"]) for b, s in curve.items())
    if not points:
        return None
    if points[0][1] <= error:
        return float(points[0][0])
    for (b0, e0), (b1, e1) in zip(points, points[1:]):
        if e1 <= error:
            t = (math.log(error) - math.log(e0)) / (math.log(e1) - math.log(e0))
            return math.exp(math.log(b0) + t * (math.log(b1) - math.log(b0)))
    return None


def efficiency(table: dict) -> list[dict]:
    """Per simulator and budget: the best gold method and the budgets carl and sbi_nre need for its error."""
    rows = []
    for sim, methods in table.items():
        gold = {m: c for m, c in methods.items() if m in GOLD}
        budgets = sorted({b for c in gold.values() for b in c})
        for n in budgets:
            best = min((c[n]["mean"], m) for m, c in gold.items() if n in c)
            row = dict(simulator=sim, budget=n, best_gold=best[1], error=best[0])
            for peer in ("carl", "sbi_nre"):
                if peer not in methods:
                    continue
                curve = methods[peer]
                needed = budget_to_reach(curve, best[0])
                row[peer] = dict(
                    budget_needed=needed, factor=None if needed is None else needed / n,
                    max_budget=max(curve), reached=needed is not None,
                    at_min_budget=needed is not None and needed == min(curve),
                )
            rows.append(row)
    return rows


NO_WORSE_Z, NO_WORSE_POWER_Z, NO_WORSE_DEFICIT = 1.645, 2.486, 2.0  # 5% one-sided; 80% power against 2×


def no_worse(entries: list[dict], sim: str, budget: int, ours: str, peer: str) -> dict:
    """Is `ours` no worse than `peer` at this budget? A one-sided paired test over seeds.

    Errors scatter by factors of several across seeds and are heavy-tailed, so the test is on
    d_s = log(error_ours / error_peer) over the seeds both ran, with z = mean(d) / standard error:

        not met     z > 1.645: `ours` is significantly worse (5%, one-sided);
        met         z < −1.645 (significantly better), or z ≤ 1.645 with a standard error small enough
                    that a 2× worse `ours` would have been caught with 80% power (se ≤ log 2 / 2.486);
        undecided   otherwise (too few seeds for their scatter), and with fewer than 3 seeds.

    The means, the geometric-mean ratio exp(mean d) and its standard-error factor are recorded.
    """
    errors = {(e["method"], e["seed"]): e["error"] for e in entries
              if e["simulator"] == sim and e["budget"] == budget and "error" in e}
    seeds = sorted(s for (m, s) in errors if m == ours and (peer, s) in errors)
    mean = {m: sum(errors[m, s] for s in seeds) / len(seeds) for m in (ours, peer)}
    d = [math.log(errors[ours, s] / errors[peer, s]) for s in seeds]
    m = sum(d) / len(d)
    out = {ours: mean[ours], peer: mean[peer], "seeds": len(seeds), "ratio": math.exp(m)}
    if len(d) < 3:
        return {**out, "met": None}
    se = math.sqrt(sum((v - m) ** 2 for v in d) / (len(d) - 1) / len(d))
    z = m / se if se > 0 else math.copysign(math.inf, m)
    powerful = se <= math.log(NO_WORSE_DEFICIT) / NO_WORSE_POWER_Z
    met = False if z > NO_WORSE_Z else True if z < -NO_WORSE_Z or powerful else None
    return {**out, "se_factor": math.exp(se), "z": z, "met": met}


def targets(table: dict, rows: list[dict], entries: list[dict]) -> dict:
    """The issue's targets, judged on the curves and the per-seed errors; null where the run cannot decide."""
    gold = {}
    for row in rows:
        if row["budget"] not in TARGET_BUDGETS or "sbi_nre" not in row:
            continue
        peer = row["sbi_nre"]
        if peer["reached"]:
            # sbi reaching the error already at its smallest budget only bounds the factor from above
            met = peer["factor"] >= TARGET_FACTOR
        else:
            met = True if peer["max_budget"] >= TARGET_FACTOR * row["budget"] else None
        gold[f"{row['simulator']}/{row['budget']}"] = dict(best_gold=row["best_gold"], factor=peer["factor"], met=met)
    carl = {}
    for sim, methods in table.items():
        if "carl" in methods and "sbi_nre" in methods:
            for n in sorted(set(methods["carl"]) & set(methods["sbi_nre"])):
                carl[f"{sim}/{n}"] = no_worse(entries, sim, n, "carl", "sbi_nre")

    nle = {}  # issue 4: our nle no worse than sbi's NLE at equal budget
    scandal = {}  # issue 4: scandal at N reaches the error sbi's NLE needs >= 10·N runs for
    for sim, methods in table.items():
        for ours in ("nle", AFFINE_NLE):
            if ours in methods and "sbi_nle" in methods:
                for n in sorted(set(methods[ours]) & set(methods["sbi_nle"])):
                    nle.setdefault(ours, {})[f"{sim}/{n}"] = no_worse(entries, sim, n, ours, "sbi_nle")
        if "scandal" in methods and "sbi_nle" in methods:
            curve = methods["sbi_nle"]
            for n in sorted(set(methods["scandal"]) & set(TARGET_BUDGETS)):
                needed = budget_to_reach(curve, methods["scandal"][n]["mean"])
                if needed is not None:
                    met = needed / n >= TARGET_FACTOR
                else:
                    met = True if max(curve) >= TARGET_FACTOR * n else None
                scandal[f"{sim}/{n}"] = dict(factor=None if needed is None else needed / n, met=met)

    speed = {}  # a gold method on 10⁵ runs takes at most twice carl's time per epoch
    for sim, methods in table.items():
        if SPEED_BUDGET in methods.get("carl", {}):
            carl_epoch = methods["carl"][SPEED_BUDGET]["epoch_seconds"]
            for m in GOLD:
                if SPEED_BUDGET in methods.get(m, {}):
                    ratio = methods[m][SPEED_BUDGET]["epoch_seconds"] / carl_epoch
                    speed[f"{sim}/{m}"] = dict(ratio=ratio, met=ratio <= SPEED_FACTOR)

    def verdict(checks: dict):
        values = [c["met"] for c in checks.values()]
        if not values or any(v is None for v in values) and all(v is not False for v in values):
            return None
        return all(values)

    return {
        "gold_vs_sbi_nre": dict(
            description=f"best gold method at N in {TARGET_BUDGETS} reaches the error sbi NRE needs "
                        f">= {TARGET_FACTOR:g}·N runs for",
            met=verdict(gold), checks=gold),
        "carl_vs_sbi_nre": dict(description="carl no worse than sbi NRE at equal budget (one-sided paired test over "
                                            "seeds on log error, 5%)", met=verdict(carl),
                                checks=carl),
        "gold_epoch_time_vs_carl": dict(
            description=f"seconds per epoch of each gold method at N = {SPEED_BUDGET:,} <= {SPEED_FACTOR:g} × carl's",
            met=verdict(speed), checks=speed),
        "scandal_vs_sbi_nle": dict(description=f"scandal at N in {TARGET_BUDGETS} reaches the error sbi NLE needs "
                                               f">= {TARGET_FACTOR:g}·N runs for", met=verdict(scandal), checks=scandal),
        "nle_vs_sbi_nle": dict(description="nle no worse than sbi NLE at equal budget (paired test as above)", met=verdict(nle.get("nle", {})),
                               checks=nle.get("nle", {})),
        "nle_maf_vs_sbi_nle": dict(description="nle with an affine flow (as sbi's) no worse than sbi NLE (paired test)",
                                   met=verdict(nle.get(AFFINE_NLE, {})), checks=nle.get(AFFINE_NLE, {})),
    }


def selected(results: dict) -> list[dict]:
    """The entries of the current configuration (the file may also hold those of earlier runs)."""
    c = results["config"]
    return [e for e in results["entries"] if e["simulator"] in c["simulators"] and e["budget"] in c["budgets"]
            and e["seed"] < c["seeds"] and e["method"] in c["methods"]]


def summarize(results: dict) -> None:
    table = curves(selected(results))
    rows = efficiency(table)
    results["curves"] = {s: {m: {str(b): v for b, v in c.items()} for m, c in ms.items()} for s, ms in table.items()}
    results["efficiency"] = rows
    results["targets"] = targets(table, rows, selected(results))


# -- reporting --------------------------------------------------------------------------------------


def factor_text(peer: dict | None) -> str:
    if peer is None:
        return "-"
    if not peer["reached"]:
        return f"> {peer['max_budget']:,} runs"
    prefix = "≤ " if peer["at_min_budget"] else ""
    return f"{prefix}{peer['factor']:.2g}×"


def report(results: dict) -> str:
    table = curves(selected(results))
    out = []
    for sim, methods in table.items():
        budgets = sorted({b for c in methods.values() for b in c})
        out.append(f"\n{sim}: mean error over seeds [min, max] (fit seconds, mean)")
        out.append(f"{'method':>9} " + " ".join(f"{b:>26,}" for b in budgets))
        for method in [m for m in METHODS if m in methods] + [m for m in methods if m not in METHODS]:
            cells = []
            for b in budgets:
                s = methods[method].get(b)
                cells.append(f"{'-':>26}" if s is None else
                             f"{s['mean']:>9.3g} [{s['min']:.2g}, {s['max']:.2g}] ({s['fit_seconds']:.0f}s)".rjust(26))
            out.append(f"{method:>9} " + " ".join(cells))
    failed = [e for e in selected(results) if "failed" in e]
    for e in failed:
        out.append(f"FAILED {e['simulator']} {e['budget']} seed {e['seed']} {e['method']}: {e['failed']}")
    out.append("\nsample efficiency: budget needed to reach the best gold method's error, as a factor of N")
    out.append(f"{'simulator':>9} {'N':>7} {'best gold':>9} {'error':>9} {'carl':>16} {'sbi_nre':>16}")
    for r in results["efficiency"]:
        out.append(f"{r['simulator']:>9} {r['budget']:>7,} {r['best_gold']:>9} {r['error']:>9.3g} "
                   f"{factor_text(r.get('carl')):>16} {factor_text(r.get('sbi_nre')):>16}")
    for name, t in results["targets"].items():
        verdict = {True: "MET", False: "NOT MET", None: "undecided by these budgets"}[t["met"]]
        out.append(f"target {name} ({t['description']}): {verdict}")
        for where, c in t["checks"].items():
            out.append(f"    {where}: {'met' if c['met'] else 'undecided' if c['met'] is None else 'not met'}")
    return "\n".join(out)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = curves(selected(results))
    if not table:
        return
    fig, axes = plt.subplots(1, len(table), figsize=(6 * len(table), 4.5), squeeze=False)
    for ax, (sim, methods) in zip(axes[0], table.items()):
        colors = plt.get_cmap("tab20").colors
        for i, method in enumerate(m for m in METHODS if m in methods):
            c = methods[method]
            b = sorted(c)
            # peers and the classical baseline dashed; one colour per method (tab20 has enough)
            style = dict(ls="--") if method == "histogram" or method.startswith("sbi_") else {}
            (ln,) = ax.plot(b, [c[n]["mean"] for n in b], marker="o", ms=3, label=method, color=colors[2 * i if i < 10 else 2 * (i - 10) + 1],
                            **style)
            ax.fill_between(b, [c[n]["min"] for n in b], [c[n]["max"] for n in b], color=ln.get_color(), alpha=0.15)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("simulator runs N")
        ax.set_ylabel("mean-squared error of log r̂")
        ax.set_title(sim)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"goldmine sample efficiency\nmean over seeds, band min–max; torch {torch.__version__}, 1 thread",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- main -------------------------------------------------------------------------------------------


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS), help="simulator runs (made even)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. K-1 per budget (data and training)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS + POSTERIORS,
                        help=f"ratio and likelihood methods; {' and '.join(POSTERIORS)} run posterior_c2st.py on "
                             "weinberg at the same budgets and seeds")
    parser.add_argument("--simulators", nargs="+", default=list(SIMULATORS), choices=list(SIMULATORS))
    parser.add_argument("--quick", action="store_true", help="galton, budgets 10³ and 10⁴, 1 seed, 4 methods")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--report", action="store_true",
                        help="fit nothing: summarise, plot and print what the JSON in --out holds for this configuration")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    torch.set_num_threads(1)  # comparable timings; a thread pool on a shared machine mostly waits
    config = dict(simulators=list(args.simulators), budgets=sorted({even(b) for b in args.budgets}),
                  seeds=args.seeds, methods=[m for m in args.methods if m not in POSTERIORS], training=TRAINING)
    if args.quick:
        config.update(simulators=list(QUICK["simulators"]), budgets=list(QUICK["budgets"]), seeds=QUICK["seeds"],
                      methods=list(QUICK["methods"]))
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"sample efficiency: {config['simulators']}, budgets {config['budgets']}, {config['seeds']} seed(s), "
          f"methods {' '.join(config['methods'])}; torch threads {torch.get_num_threads()}")
    print(f"{'simulator':>9} {'budget':>7} {'seed':>4} {'method':>9} {'epochs':>6} {'fit [s]':>8} {'error':>10}")
    start = time.perf_counter()
    if args.report:
        results = json.loads((args.out / "sample_efficiency.json").read_text())
        results["config"] = config
        summarize(results)
        write(results, args.out / "sample_efficiency.json")
    else:
        results = run(config, args.out)
    plot(results, args.out / "sample_efficiency.png")
    print(report(results))
    posteriors = [m for m in args.methods if m in POSTERIORS]
    if posteriors and "weinberg" in config["simulators"] and not args.report:
        import posterior_c2st

        posterior_c2st.main(["--budgets", *map(str, config["budgets"]), "--seeds", str(config["seeds"]),
                             "--methods", *posteriors, "--out", str(args.out)])
    print(f"\nwall time {time.perf_counter() - start:.0f} s; wrote {args.out / 'sample_efficiency.json'} and "
          f"{args.out / 'sample_efficiency.png'}")
    return results


if __name__ == "__main__":
    main()
