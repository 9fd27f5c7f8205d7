"""The ratio family's weighting on the Galton board: where in θ the error of log r̂ sits, with and without it.

For each budget N, data seed and (method, weighting), a data set of N runs (`gm.simulate`, seed = the data
seed), the method fitted with its default settings but `weighting` (`gm.RatioEstimator(method,
weighting=w, seed=seed)`; "default" leaves the method's own), and its error against the exact likelihood,
`goldmine.evaluate.log_ratio_error(est, sim)`: the mean over the 101 θ points of the expected squared error
of log r̂ under p(x|θ), and that error per θ. weighting="ratio" multiplies each row's cross-entropy by
1 + r̂(x|θ) (`goldmine.estimators.ratio`, module docstring), "none" leaves it unweighted.

Usage:
    python benchmarks/galton_edge.py [--budgets 1000 10000] [--seeds 5] [--variants alice:none alice:ratio ...]
        [--out benchmarks/results/galton_edge] [--report]

DIR/galton_edge.json is rewritten after every fit; a rerun skips finished entries. DIR/galton_edge.png plots
the error per θ (mean over seeds) of every variant, one panel per budget. The table prints the mean error
over the seeds, [min, max] and max/min. One torch thread.
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

VARIANTS = ("alice:none", "alice:ratio", "carl:none", "carl:ratio")


def estimator(variant: str, seed: int) -> gm.RatioEstimator:
    """`method:weighting` with the default settings otherwise, seeded `seed`."""
    method, weighting = variant.split(":")
    options = {} if weighting == "default" else {"weighting": weighting}
    return gm.RatioEstimator(method, seed=seed, progress=False, **options)


def table(results: dict) -> list[str]:
    """Mean error over seeds [min, max] and max/min, per budget and variant."""
    rows = ["| N | variant | seeds | error, mean [min, max] | max / min | error at θ = −1 (mean) |",
            "|---:|---|---:|---|---:|---:|"]
    for budget in sorted({e["budget"] for e in results["entries"]}):
        for variant in dict.fromkeys(e["variant"] for e in results["entries"] if e["budget"] == budget):
            es = [e for e in results["entries"] if e["budget"] == budget and e["variant"] == variant]
            err = [e["error"] for e in es]
            edge = statistics.mean(e["per_theta"][0] for e in es)
            rows.append(f"| {budget} | {variant} | {len(err)} | {statistics.mean(err):.4g} [{min(err):.2g}, "
                        f"{max(err):.2g}] | {max(err) / min(err):.1f}× | {edge:.3g} |")
    return rows


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted({e["budget"] for e in results["entries"]})
    fig, axes = plt.subplots(1, len(budgets), figsize=(5 * len(budgets), 4), squeeze=False)
    for ax, budget in zip(axes[0], budgets):
        for variant in dict.fromkeys(e["variant"] for e in results["entries"] if e["budget"] == budget):
            es = [e for e in results["entries"] if e["budget"] == budget and e["variant"] == variant]
            per = torch.tensor([e["per_theta"] for e in es]).mean(0)
            ax.semilogy(es[0]["theta"], per, label=f"{variant} ({len(es)} seeds)")
        ax.set(title=f"Galton, N = {budget} runs", xlabel="θ", ylabel="E_x~p(x|θ)[(log r̂ − log r)²], mean over seeds")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", nargs="+", type=int, default=[1000, 10000])
    parser.add_argument("--seeds", type=int, default=5, help="data seeds 0..K-1 (each also the training seed)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), help="method:weighting (none, ratio, default)")
    parser.add_argument("--out", default="benchmarks/results/galton_edge")
    parser.add_argument("--report", action="store_true", help="only reprint the table and redraw the figure")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    file = out / "galton_edge.json"
    results = resume(file)
    if not args.report:
        sim = gm.simulators.GaltonBoard()
        done = {(e["budget"], e["seed"], e["variant"]) for e in results["entries"]}
        results["machine"] = machine_info()
        with tempfile.TemporaryDirectory() as tmp:
            for budget in args.budgets:
                for seed in range(args.seeds):
                    todo = [v for v in args.variants if (budget, seed, v) not in done]
                    if not todo:
                        continue
                    data = gm.simulate(sim, budget, Path(tmp) / f"galton_{budget}_{seed}.h5", seed=seed, progress=False)
                    for variant in todo:
                        est = estimator(variant, seed)
                        start = time.perf_counter()
                        est.fit(data)
                        seconds = time.perf_counter() - start
                        ev = log_ratio_error(est, sim)
                        entry = {"budget": budget, "seed": seed, "variant": variant, "error": ev["mse"],
                                 "fit_seconds": seconds, "theta": ev["theta_grid"][:, 0].tolist(),
                                 "per_theta": ev["per_theta"].tolist()}
                        results["entries"].append(entry)
                        print(f"N {budget:6d} seed {seed} {variant:12s} {entry['error']:.4g} "
                              f"(θ = −1: {entry['per_theta'][0]:.3g}) {seconds:.0f} s", flush=True)
                        write(results, file)
    print("\n".join(table(results)))
    if results["entries"]:
        plot(results, out / "galton_edge.png")
    return results


if __name__ == "__main__":
    main()
