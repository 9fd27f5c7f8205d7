"""Inference quality: how close the limits and posteriors made from each surrogate come to the exact ones.

For each simulator, budget N (simulator runs), seed and method, a data set of N runs is simulated
(`goldmine.simulate`), the method is fitted on it and wrapped as `goldmine.inference.Model`, and

    size      the expected (Asimov) 95% Wilks region from n_obs i.i.d. observations at the hypothesis θ₀,
              its length (1-D) or area (2-D) divided by the exact likelihood's: 1.0 is the limit;
              below 1 the surrogate claims more precision than the data hold;
    coverage  the Neyman coverage of the 95% region at θ₀ over toy data sets (toys drawn from the
              simulator, the threshold calibrated by toys through the surrogate), and the Wilks one;
    c2st      the classifier two-sample test between MCMC draws of the surrogate's posterior (direct
              draws for npe) and the exact grid posterior, for one observation x ~ p(x|θ₀) (npe
              conditions on a single observation; 0.5 is perfect).

Methods: goldmine's carl, rascal, alices (`RatioEstimator`), sally (a histogram of the learned score,
`SummaryHistogram`; sallino's scalar summary for d_θ > 1), nle and scandal (`LikelihoodEstimator`),
npe (`PosteriorEstimator`, posterior only), the histogram baseline and sbi's NRE (the peers of
`sample_efficiency.py`, with the same training settings). The exact likelihood is run through the
same code as the reference. The issue's target, recorded under "targets":

    gold_limits   at N = 10⁴ the best gold method's expected 95% region is within 5% of the exact
                  one and its Neyman coverage is within 2 points of 95%.

Usage:
    python benchmarks/inference_quality.py [--simulators galton weinberg] [--budgets N ...] [--seeds K]
        [--methods ...] [--toys T] [--quick] [--out DIR]

DIR/inference_quality.json is rewritten after every entry (a rerun skips finished entries);
DIR/inference_quality.png plots the three metrics against the budget. torch runs on one thread.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import goldmine as gm  # noqa: E402
from goldmine.evaluate import c2st, grid_posterior_samples  # noqa: E402
from goldmine.inference import Model, coverage, expected_limits  # noqa: E402
from goldmine.inference.mcmc import posterior  # noqa: E402
from mining_speed import machine_info  # noqa: E402
from sample_efficiency import SIMULATORS, even, make_estimator, write  # noqa: E402

METHODS = ("exact", "carl", "rascal", "alices", "sally", "scandal", "nle", "npe", "histogram", "sbi_nre")
GOLD = ("rascal", "alices", "sally", "scandal")
#: the hypothesis θ₀ and the observations per data set, per simulator
#: and the θ grid points per axis (21 × 21 keeps 2-D toys affordable)
SETUP = {"galton": dict(theta=[0.3], n_obs=100, grid=101), "weinberg": dict(theta=[45.0, 0.9], n_obs=100, grid=21)}
BUDGETS = (1_000, 10_000, 100_000)
LEVEL, TARGET_BUDGET, SIZE_TOLERANCE, COVERAGE_TOLERANCE = 0.95, 10_000, 0.05, 0.02
QUICK = dict(simulators=("galton",), budgets=(1_000,), seeds=1, methods=("exact", "carl", "alices", "npe"), toys=200)


def fit(method: str, sim, data, seed: int, budget: int):
    """The fitted surrogate of `method` on `data`, or the simulator itself for "exact"."""
    if method == "exact":
        return sim
    if method == "sally":
        score = gm.ScoreEstimator("sally" if sim.theta_dim == 1 else "sallino", seed=seed, progress=False).fit(data)
        return gm.estimators.SummaryHistogram(score).fit(data)
    if method == "npe":
        return gm.PosteriorEstimator("npe", prior=sim.prior, seed=seed, progress=False).fit(data)
    return make_estimator(method, sim, seed, budget).fit(data)


def measure(method: str, surrogate, sim, setup: dict, toys: int, seed: int) -> dict:
    theta = torch.tensor(setup["theta"], dtype=torch.float64)
    # npe's posterior is its own object, no likelihood Model: posterior() samples it directly
    model = surrogate if method == "npe" else Model(surrogate, prior=sim, simulator=sim)
    out: dict = {}
    if method != "npe":
        region = expected_limits(model, theta, setup["n_obs"], LEVEL, grid=setup["grid"])
        out["size"] = region.size
        for kind in ("neyman", "wilks"):
            c = coverage(model, theta, setup["n_obs"], LEVEL, method=kind, toys=toys, seed=seed, grid=setup["grid"])
            out[f"coverage_{kind}"], out[f"coverage_{kind}_stderr"] = c["coverage"], c["stderr"]
    g = torch.Generator().manual_seed(seed)
    x_obs = sim.sample(theta[None], generator=g).x
    draws = posterior(model, x_obs, seed=seed, progress=False).sample(1000, generator=g)
    exact = grid_posterior_samples(sim, x_obs, 1000, generator=g)
    out["c2st"] = c2st(draws, exact, seed=seed)
    return out


def key(e: dict) -> tuple:
    return (e["simulator"], e["budget"], e["seed"], e["method"])


def run(config: dict, out: Path, log=print) -> dict:
    path = out / "inference_quality.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    entries = [e for e in results.get("entries", []) if "c2st" in e]
    done = {key(e) for e in entries}
    results.update(config=config, machine=machine_info(), entries=entries)
    with tempfile.TemporaryDirectory() as tmp:
        for name in config["simulators"]:
            sim, setup = SIMULATORS[name](), SETUP[name]
            for budget in config["budgets"]:
                for seed in range(config["seeds"]):
                    todo = [m for m in config["methods"] if (name, budget, seed, m) not in done]
                    if not todo:
                        continue
                    data = gm.simulate(sim, budget, Path(tmp) / f"{name}_{budget}_{seed}.h5", seed=seed, progress=False)
                    for method in todo:
                        entry = dict(simulator=name, budget=budget, seed=seed, method=method, toys=config["toys"])
                        try:
                            start = time.perf_counter()
                            surrogate = fit(method, sim, data, seed, budget)
                            entry["fit_seconds"] = time.perf_counter() - start
                            start = time.perf_counter()
                            entry.update(measure(method, surrogate, sim, setup, config["toys"], seed))
                            entry["inference_seconds"] = time.perf_counter() - start
                        except Exception as err:  # one failing method must not end a long run
                            entry["failed"] = f"{type(err).__name__}: {err}"
                            entry["traceback"] = traceback.format_exc()
                        entry["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
                        results["entries"] = [e for e in results["entries"] if key(e) != key(entry)] + [entry]
                        write(results, path)
                        log(line(entry), flush=True)
    return results


# -- summaries --------------------------------------------------------------------------------------


def relative_sizes(entries: list[dict]) -> list[dict]:
    """Each entry with size_ratio = its size / the exact likelihood's at the same (simulator, budget, seed)."""
    exact = {(e["simulator"], e["seed"]): e["size"] for e in entries if e["method"] == "exact" and "size" in e}
    for e in entries:
        if "size" in e and (e["simulator"], e["seed"]) in exact:
            e["size_ratio"] = e["size"] / exact[(e["simulator"], e["seed"])]
    return entries


def table(entries: list[dict]) -> dict:
    """{simulator: {method: {budget: {metric: mean over seeds}}}}."""
    grouped: dict = {}
    for e in entries:
        if "c2st" in e:
            grouped.setdefault(e["simulator"], {}).setdefault(e["method"], {}).setdefault(e["budget"], []).append(e)
    out: dict = {}
    for sim, methods in grouped.items():
        for method, budgets in methods.items():
            for budget, es in sorted(budgets.items()):
                row = {}
                for metric in ("size_ratio", "coverage_neyman", "coverage_wilks", "c2st", "coverage_neyman_stderr"):
                    values = [e[metric] for e in es if metric in e]
                    if values:
                        row[metric] = sum(values) / len(values)
                out.setdefault(sim, {}).setdefault(method, {})[budget] = dict(row, seeds=len(es))
    return out


def targets(tab: dict) -> dict:
    checks = {}
    for sim, methods in tab.items():
        best = None
        for method in GOLD:
            row = methods.get(method, {}).get(TARGET_BUDGET)
            if row and "size_ratio" in row and (best is None or abs(row["size_ratio"] - 1) < abs(best[1]["size_ratio"] - 1)):
                best = (method, row)
        if best is None:
            continue
        method, row = best
        size_ok = abs(row["size_ratio"] - 1) <= SIZE_TOLERANCE
        coverage_ok = abs(row["coverage_neyman"] - LEVEL) <= COVERAGE_TOLERANCE
        # too few toys to tell 2 points apart: the coverage half of the check stays undecided
        resolved = row["coverage_neyman_stderr"] <= COVERAGE_TOLERANCE / 2
        checks[f"{sim}/{TARGET_BUDGET}"] = dict(best_gold=method, size_ratio=row["size_ratio"],
                                                coverage_neyman=row["coverage_neyman"],
                                                coverage_stderr=row["coverage_neyman_stderr"],
                                                met=(size_ok and coverage_ok) if resolved else (None if size_ok else False))
    verdicts = [c["met"] for c in checks.values()]
    # met only when every simulator's check is decided and met; any failure fails it; else undecided
    met = False if False in verdicts else (True if verdicts and None not in verdicts else None)
    return {"gold_limits": dict(description=f"at N = {TARGET_BUDGET} the best gold method's expected 95% region is "
                                f"within {SIZE_TOLERANCE:.0%} of the exact one and its Neyman coverage within "
                                f"{COVERAGE_TOLERANCE * 100:.0f} points of 95%", met=met, checks=checks)}


def line(e: dict) -> str:
    head = f"{e['simulator']:>9} {e['budget']:>7} {e['seed']:>4} {e['method']:>9}"
    if "failed" in e:
        return f"{head}  FAILED {e['failed']}"

    def f(k, fmt):
        return format(e[k], fmt) if k in e else "-"

    return (f"{head} {f('size', '>10.4g')} {f('coverage_neyman', '>8.3f')} {f('coverage_wilks', '>8.3f')} "
            f"{f('c2st', '>6.3f')} {e['fit_seconds'] + e['inference_seconds']:>8.1f}")


def report(results: dict) -> str:
    lines = []
    for sim, methods in results["table"].items():
        budgets = sorted({b for m in methods.values() for b in m})
        lines.append(f"\n{sim}: expected 95% region size / exact · Neyman coverage · Wilks coverage · posterior C2ST")
        lines.append(f"{'method':>10} " + " ".join(f"{f'N={b}':>30}" for b in budgets))
        for method in (m for m in METHODS if m in methods):
            cells = []
            for b in budgets:
                r = methods[method].get(b, {})
                cells.append(" ".join(format(r[k], ".3f") if k in r else "  -  " for k in
                                      ("size_ratio", "coverage_neyman", "coverage_wilks", "c2st")).rjust(30))
            lines.append(f"{method:>10} " + " ".join(cells))
    for name, t in results["targets"].items():
        lines.append(f"\ntarget {name}: {t['description']}: {'MET' if t['met'] else 'not met' if t['met'] is False else 'undecided'}")
        for where, c in t["checks"].items():
            lines.append(f"  {where}: {c}")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tab = results["table"]
    metrics = [("size_ratio", "expected 95% region size / exact"), ("coverage_neyman", "Neyman coverage of 95%"),
               ("c2st", "posterior C2ST (0.5 = exact)")]
    fig, axes = plt.subplots(len(tab), 3, figsize=(15, 4.2 * len(tab)), squeeze=False)
    for row, (sim, methods) in zip(axes, tab.items()):
        for ax, (metric, label) in zip(row, metrics):
            for method in (m for m in METHODS if m in methods):
                points = sorted((b, r[metric]) for b, r in methods[method].items() if metric in r)
                if points:
                    style = dict(ls="--") if method in ("histogram", "sbi_nre", "exact") else {}
                    ax.plot(*zip(*points), marker="o", ms=4, label=method, color=f"C{METHODS.index(method)}", **style)
            ax.axhline({"size_ratio": 1.0, "coverage_neyman": LEVEL, "c2st": 0.5}[metric], color="k", lw=0.8)
            ax.set_xscale("log")
            ax.set_xlabel("simulator runs N")
            ax.set_ylabel(label)
            ax.set_title(sim)
            ax.grid(True, which="both", alpha=0.3)
        row[2].legend(fontsize=8)  # the C2ST panel holds every method, npe included
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--simulators", nargs="+", default=list(SETUP), choices=list(SETUP))
    parser.add_argument("--toys", type=int, default=1000, help="toy data sets per coverage estimate")
    parser.add_argument("--quick", action="store_true", help="galton, 10³ runs, 1 seed, 4 methods, 200 toys")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "inference_quality")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = dict(simulators=list(args.simulators), budgets=sorted({even(b) for b in args.budgets}), seeds=args.seeds,
                  methods=list(args.methods), toys=args.toys, setup=SETUP, level=LEVEL)
    if args.quick:
        config.update(simulators=list(QUICK["simulators"]), budgets=list(QUICK["budgets"]), seeds=QUICK["seeds"],
                      methods=list(QUICK["methods"]), toys=QUICK["toys"])
    if "exact" not in config["methods"]:
        config["methods"].insert(0, "exact")  # the reference every size is divided by
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"inference quality: {config['simulators']}, budgets {config['budgets']}, {config['seeds']} seed(s), "
          f"{config['toys']} toys, methods {' '.join(config['methods'])}")
    print(f"{'simulator':>9} {'budget':>7} {'seed':>4} {'method':>9} {'size':>10} {'neyman':>8} {'wilks':>8} "
          f"{'c2st':>6} {'time [s]':>8}")
    start = time.perf_counter()
    results = run(config, args.out)
    entries = relative_sizes(results["entries"])
    results["table"] = table([e for e in entries if e["method"] in config["methods"]])
    results["targets"] = targets(results["table"])
    write(results, args.out / "inference_quality.json")
    plot(results, args.out / "inference_quality.png")
    print(report(results))
    print(f"\nwall time {time.perf_counter() - start:.0f} s; wrote {args.out / 'inference_quality.json'} and "
          f"{args.out / 'inference_quality.png'}")
    return results


if __name__ == "__main__":
    main()
