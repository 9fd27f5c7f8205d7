"""Model selection: which weights a ratio fit should keep, judged against the exact likelihood.

One fit per (simulator, data seed, method, option) with the estimator's default settings; the Trainer
records the epoch with the lowest validation value of every criterion and a copy of its weights
(`Trainer.best_states`), so one fit gives the error of three rules:

    final   the weights at the end of the cosine schedule (`Trainer(keep="final")`)
    loss    the epoch with the lowest validation value of the method's own loss (`keep="best"`)
    xent    the epoch with the lowest validation classification cross-entropy between the rows drawn at
            θ and at θ_ref (`keep="xent"`, `goldmine.estimators.ratio.cross_entropy`): a proper
            scoring rule for every ratio surrogate that needs no gold

The error is `goldmine.evaluate.log_ratio_error(est, sim)["mse"]`, exact by quadrature. Method
variants with another weight α of the score term are named "alices@0.1" (method@alpha).

Usage:
    python benchmarks/model_selection.py [--simulators galton weinberg] [--methods carl rascal alices alice]
        [--budget 1000] [--seeds 5] [--out benchmarks/results/model_selection]

DIR/model_selection.json is rewritten after every fit; a rerun into the same DIR skips finished entries.
torch runs on one thread.
"""

from __future__ import annotations

import argparse
import datetime
import math
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
RULES = ("final", "loss", "xent")


def estimator(variant: str, seed: int) -> gm.RatioEstimator:
    method, _, alpha = variant.partition("@")
    options = {"alpha": float(alpha)} if alpha else {}
    return gm.RatioEstimator(method, seed=seed, progress=False, **options)


def fit_entry(sim_name: str, variant: str, seed: int, budget: int, tmp: Path) -> dict:
    sim = SIMULATORS[sim_name]()
    path = tmp / f"{sim_name}_{budget}_{seed}.h5"
    data = gm.simulate(sim, budget, path, seed=seed, progress=False)
    est = estimator(variant, seed)
    start = time.perf_counter()
    est.fit(data)
    seconds = time.perf_counter() - start
    final = {k: v.clone() for k, v in est.network_.state_dict().items()}
    entry = {"simulator": sim_name, "method": variant, "seed": seed, "budget": budget, "fit_seconds": seconds,
             "error": {}, "epoch": {}}
    states = {"final": (len(est.history_["val_loss"]), None, final), **est.trainer.best_states}
    for rule in RULES:
        if rule not in states:
            continue
        epoch, _, state = states[rule]
        est.network_.load_state_dict(state)
        est.network_.eval()
        entry["error"][rule] = log_ratio_error(est, sim)["mse"]
        entry["epoch"][rule] = epoch
    return entry


def summary(entries: list[dict]) -> list[dict]:
    """Per (simulator, method): the mean, min and max error of each rule, and the median ratio to final."""
    rows = []
    groups = {}
    for e in entries:
        groups.setdefault((e["simulator"], e["method"]), []).append(e)
    for (sim, method), es in sorted(groups.items()):
        row = {"simulator": sim, "method": method, "seeds": len(es)}
        for rule in RULES:
            errors = [e["error"][rule] for e in es if rule in e["error"]]
            if not errors:
                continue
            ratios = [e["error"][rule] / e["error"]["final"] for e in es if rule in e["error"]]
            row[rule] = {"mean": statistics.fmean(errors), "min": min(errors), "max": max(errors),
                         "median_ratio_to_final": statistics.median(ratios),
                         "geomean_ratio_to_final": math.exp(statistics.fmean(math.log(r) for r in ratios)),
                         "epochs": [e["epoch"][rule] for e in es]}
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| simulator | method | final | best own loss | best xent |", "|---|---|---|---|---|"]
    for r in rows:
        cells = []
        for rule in RULES:
            if rule not in r:
                cells.append("—")
                continue
            c = r[rule]
            ratio = "" if rule == "final" else f" (×{c['geomean_ratio_to_final']:.2f})"
            cells.append(f"{c['mean']:.3g} [{c['min']:.2g}, {c['max']:.2g}]{ratio}")
        lines.append(f"| {r['simulator']} | {r['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulators", nargs="+", default=list(SIMULATORS), choices=list(SIMULATORS))
    parser.add_argument("--methods", nargs="+", default=["carl", "rascal", "alices", "alice"])
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/model_selection")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    file = out / "model_selection.json"
    results = resume(file)
    done = {(e["simulator"], e["method"], e["seed"], e["budget"]) for e in results["entries"]}
    results["machine"] = machine_info()
    results["command"] = "python benchmarks/model_selection.py " + " ".join(argv if argv is not None else sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp:
        for sim_name in args.simulators:
            for seed in range(args.seeds):
                for variant in args.methods:
                    if (sim_name, variant, seed, args.budget) in done:
                        continue
                    entry = fit_entry(sim_name, variant, seed, args.budget, Path(tmp))
                    entry["time"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
                    results["entries"].append(entry)
                    print(f"{sim_name:8s} seed {seed} {variant:12s} " + "  ".join(
                        f"{r} {entry['error'][r]:.4g} (ep {entry['epoch'][r]})" for r in entry["error"]), flush=True)
                    results["summary"] = summary(results["entries"])
                    write(results, file)
    results["summary"] = summary(results["entries"])
    write(results, file)
    print(table(results["summary"]))
    return results


if __name__ == "__main__":
    main()
