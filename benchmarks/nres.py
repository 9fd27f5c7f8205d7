"""nre against nres (nre + the score term) on the simulators with an exact likelihood, at equal runs.

Both methods train on N runs all at θ ~ prior (`goldmine.simulate(..., layout="prior")`, which stores
the joint score t(x, z|θ) of every run), with their default settings; nres reads the score, nre not.
Their error is that of sample_efficiency.py,

    mse_r = mean over a θ grid of E_{x~p(x|θ)} [(log r̂(x|θ, θ_ref) − log r(x|θ, θ_ref))²],

by quadrature (`goldmine.evaluate.log_ratio_error`), where log r̂(x|θ, θ_ref) = d(x, θ) − d(x, θ_ref).

Usage:
    python benchmarks/nres.py [--quick] [--budgets N ...] [--seeds K] [--simulators ...] [--out DIR]

Writes DIR/nres.json (after every fit) and DIR/nres.png (error per seed, nre against nres), and prints
the table. torch runs on one thread.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import goldmine as gm  # noqa: E402
from goldmine.evaluate import log_ratio_error  # noqa: E402
from mining_speed import machine_info  # noqa: E402

SIMULATORS = {"galton": gm.simulators.GaltonBoard, "weinberg": gm.simulators.Weinberg}
METHODS = ("nre", "nres")


def run(simulators, budgets, seeds: int, out: Path) -> dict:
    """Fits nre and nres on the same prior-layout data per (simulator, budget, seed); returns the results."""
    results = {"config": {"simulators": list(simulators), "budgets": list(budgets), "seeds": seeds},
               "machine": machine_info(), "entries": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name in simulators:
            sim = SIMULATORS[name]()
            for budget in budgets:
                for seed in range(seeds):
                    data = gm.simulate(sim, budget, Path(tmp) / f"{name}_{budget}_{seed}.h5", seed=seed,
                                       layout="prior", progress=False)
                    for method in METHODS:
                        start = time.perf_counter()
                        est = gm.RatioEstimator(method, seed=seed, progress=False).fit(data)
                        entry = dict(simulator=name, budget=budget, seed=seed, method=method,
                                     fit_seconds=time.perf_counter() - start,
                                     error=log_ratio_error(est, sim)["mse"])
                        results["entries"].append(entry)
                        print(f"{name:>9} {budget:>7} seed {seed} {method:>5}: mse_r {entry['error']:.4g} "
                              f"({entry['fit_seconds']:.0f} s)", flush=True)
                        (out / "nres.json").write_text(json.dumps(results, indent=1))
    return results


def table(results: dict) -> str:
    """Mean error over seeds (± standard error) and the mean of log(nres/nre) per (simulator, budget)."""
    rows = [f"{'simulator':>9} {'N':>7} {'nre':>18} {'nres':>18} {'mean log(nres/nre)':>19}"]
    groups = {}
    for e in results["entries"]:
        groups.setdefault((e["simulator"], e["budget"]), {}).setdefault(e["method"], {})[e["seed"]] = e["error"]
    for (name, budget), by in groups.items():
        cells = []
        for m in METHODS:
            v = list(by.get(m, {}).values())
            mean = sum(v) / len(v)
            se = (sum((a - mean) ** 2 for a in v) / (len(v) - 1) / len(v)) ** 0.5 if len(v) > 1 else float("nan")
            cells.append(f"{mean:.4g} ± {se:.2g}")
        common = sorted(set(by.get("nre", {})) & set(by.get("nres", {})))
        ratio = sum(math.log(by["nres"][s] / by["nre"][s]) for s in common) / max(len(common), 1)
        rows.append(f"{name:>9} {budget:>7} {cells[0]:>18} {cells[1]:>18} {ratio:>19.2f}")
    return "\n".join(rows)


def plot(results: dict, path: Path) -> None:
    """nres's error against nre's, one point per (simulator, budget, seed), on log axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    pairs = {}
    for e in results["entries"]:
        pairs.setdefault((e["simulator"], e["budget"], e["seed"]), {})[e["method"]] = e["error"]
    for name in sorted({k[0] for k in pairs}):
        pts = [(v["nre"], v["nres"]) for k, v in pairs.items() if k[0] == name and len(v) == 2]
        ax.scatter(*zip(*pts), label=name)
    lo = min(min(v.values()) for v in pairs.values())
    hi = max(max(v.values()) for v in pairs.values())
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="nre mse_r", ylabel="nres mse_r", title="prior layout, equal runs")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[1000])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--simulators", nargs="+", default=list(SIMULATORS), choices=list(SIMULATORS))
    parser.add_argument("--quick", action="store_true", help="galton, 1000 runs, 1 seed")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "nres")
    args = parser.parse_args(argv)
    if args.quick:
        args.simulators, args.budgets, args.seeds = ["galton"], [1000], 1
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    results = run(args.simulators, args.budgets, args.seeds, args.out)
    print(table(results))
    plot(results, args.out / "nres.png")
    return results


if __name__ == "__main__":
    main()
