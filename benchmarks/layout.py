"""The data layout: the methods that read no run at θ_ref, trained on the same budget laid out as pairs (half
the runs at θ_ref) or with every run at θ ~ prior (`goldmine.simulate(..., layout="prior")`).

For each simulator, data seed and method, a data set of N runs in each layout, the method fitted with its
default settings, and its error `goldmine.evaluate.log_ratio_error(est, sim)["mse"]` against the exact
likelihood.

Usage:
    python benchmarks/layout.py [--simulators galton weinberg] [--methods nre nle] [--budget 1000] [--seeds 5]
        [--out benchmarks/results/layout]

DIR/layout.json is rewritten after every fit; a rerun into the same DIR skips finished entries. One torch thread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import goldmine as gm  # noqa: E402
from goldmine.estimators.registry import get_method  # noqa: E402
from goldmine.evaluate import log_ratio_error  # noqa: E402
from mining_speed import machine_info  # noqa: E402
from sample_efficiency import resume, write  # noqa: E402

SIMULATORS = {"galton": gm.simulators.GaltonBoard, "weinberg": gm.simulators.Weinberg}
LAYOUTS = ("pairs", "prior")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulators", nargs="+", default=list(SIMULATORS), choices=list(SIMULATORS))
    parser.add_argument("--methods", nargs="+", default=["nre", "nle"])
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/layout")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    file = out / "layout.json"
    results = resume(file)
    done = {(e["simulator"], e["method"], e["seed"], e["budget"], e["layout"]) for e in results["entries"]}
    results["machine"] = machine_info()
    with tempfile.TemporaryDirectory() as tmp:
        for sim_name in args.simulators:
            sim = SIMULATORS[sim_name]()
            for seed in range(args.seeds):
                for layout in LAYOUTS:
                    path = Path(tmp) / f"{sim_name}_{seed}_{layout}.h5"
                    for method in args.methods:
                        if (sim_name, method, seed, args.budget, layout) in done:
                            continue
                        data = gm.simulate(sim, args.budget, path, seed=seed, layout=layout, progress=False)
                        cls = get_method(method).estimator
                        start = time.perf_counter()
                        est = cls(method, seed=seed, progress=False).fit(data)
                        entry = {"simulator": sim_name, "method": method, "seed": seed, "budget": args.budget,
                                 "layout": layout, "error": log_ratio_error(est, sim)["mse"],
                                 "fit_seconds": time.perf_counter() - start}
                        results["entries"].append(entry)
                        print(f"{sim_name:8s} seed {seed} {method:5s} {layout:5s} {entry['error']:.4g}", flush=True)
                        write(results, file)
    rows = {}
    for e in results["entries"]:
        rows.setdefault((e["simulator"], e["method"], e["layout"]), []).append(e["error"])
    results["summary"] = [{"simulator": s, "method": m, "layout": lay, "mean": statistics.fmean(v), "min": min(v),
                           "max": max(v), "seeds": len(v)} for (s, m, lay), v in sorted(rows.items())]
    write(results, file)
    for r in results["summary"]:
        print(f"| {r['simulator']} | {r['method']} | {r['layout']} | {r['mean']:.3g} [{r['min']:.2g}, {r['max']:.2g}] |")
    return results


if __name__ == "__main__":
    main()
