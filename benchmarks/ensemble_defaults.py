"""Ensembles with the default settings: k = 1 against k members (`gm.Ensemble(estimator, k)`), error and scatter.

For each simulator, data seed and method, a data set of N runs, the method fitted with its default settings
alone and as an ensemble of k members on bootstrap resamples, and the error
`goldmine.evaluate.log_ratio_error(est, sim)["mse"]` of each against the exact likelihood. Both are seeded the
same way: the k = 1 fit with the training seed s (--training-seed, 0 by default, the Trainer's default), the
ensemble's member j with s + j (`gm.Ensemble`), so that k = 1 is the ensemble's first member without the
bootstrap.

Usage:
    python benchmarks/ensemble_defaults.py [--simulators galton weinberg] [--methods alice carl] [--members 5]
        [--budget 1000] [--seeds 5] [--training-seed 0] [--out benchmarks/results/ensemble_defaults]

DIR/ensemble_defaults.json is rewritten after every fit; a rerun skips finished entries. One torch thread.
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
from goldmine.evaluate import log_ratio_error  # noqa: E402
from mining_speed import machine_info  # noqa: E402
from sample_efficiency import resume, write  # noqa: E402

SIMULATORS = {"galton": gm.simulators.GaltonBoard, "weinberg": gm.simulators.Weinberg}


def estimator(method: str, k: int, training_seed: int):
    """The method with its default settings and the Trainer seed `training_seed`: alone for k = 1, else the
    template of an ensemble of k members, member j seeded `training_seed` + j."""
    est = gm.RatioEstimator(method, seed=training_seed, progress=False)
    return est if k == 1 else gm.Ensemble(est, k)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulators", nargs="+", default=list(SIMULATORS), choices=list(SIMULATORS))
    parser.add_argument("--methods", nargs="+", default=["alice", "carl"])
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=5, help="data seeds 0..K-1")
    parser.add_argument("--training-seed", type=int, default=0, help="the k = 1 fit's seed, and the first member's "
                        "(member j: seed + j)")
    parser.add_argument("--out", default="benchmarks/results/ensemble_defaults")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    file = out / "ensemble_defaults.json"
    results = resume(file)
    done = {(e["simulator"], e["method"], e["seed"], e["budget"], e["k"], e.get("training_seed", 0))
            for e in results["entries"]}
    results["machine"] = machine_info()
    with tempfile.TemporaryDirectory() as tmp:
        for sim_name in args.simulators:
            sim = SIMULATORS[sim_name]()
            for seed in range(args.seeds):
                data = gm.simulate(sim, args.budget, Path(tmp) / f"{sim_name}_{seed}.h5", seed=seed, progress=False)
                for method in args.methods:
                    for k in (1, args.members):
                        if (sim_name, method, seed, args.budget, k, args.training_seed) in done:
                            continue
                        est = estimator(method, k, args.training_seed)
                        start = time.perf_counter()
                        est.fit(data)
                        entry = {"simulator": sim_name, "method": method, "seed": seed, "budget": args.budget, "k": k,
                                 "training_seed": args.training_seed,
                                 "error": log_ratio_error(est, sim)["mse"], "fit_seconds": time.perf_counter() - start}
                        results["entries"].append(entry)
                        print(f"{sim_name:8s} seed {seed} {method:6s} k={k} {entry['error']:.4g}", flush=True)
                        write(results, file)
    rows = {}
    for e in results["entries"]:
        rows.setdefault((e["simulator"], e["method"], e["k"]), []).append(e)
    results["summary"] = [{"simulator": s, "method": m, "k": k, "seeds": len(v),
                           "mean": statistics.fmean(e["error"] for e in v), "min": min(e["error"] for e in v),
                           "max": max(e["error"] for e in v),
                           "fit_seconds": statistics.fmean(e["fit_seconds"] for e in v)}
                          for (s, m, k), v in sorted(rows.items())]
    write(results, file)
    for r in results["summary"]:
        print(f"| {r['simulator']} | {r['method']} | {r['k']} | {r['mean']:.3g} [{r['min']:.2g}, {r['max']:.2g}] "
              f"| {r['max'] / r['min']:.1f}× | {r['fit_seconds']:.0f} |")
    return results


if __name__ == "__main__":
    main()
