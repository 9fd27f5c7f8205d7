"""Neyman speed: seconds for the toy thresholds of a Neyman region with a ratio surrogate.

A Neyman region needs, at every point θ_j of a g-point grid, `toys` data sets of n runs drawn at
θ_j, and for each toy its ℓ(θ) on the whole grid (its maximum gives q(θ_j)). With continuous x
every (toy run, θ) pair is its own network evaluation:

    pairs = g · toys · n · g        (1,000 toys, n = 100, 21 × 21 grid: 1.9 · 10¹⁰)

so the time is pairs / (the network's pairs per second) plus the simulator's g · toys · n runs.
This script measures that on the 2-D Weinberg problem with a small alices ratio estimator (trained
here on 5,000 runs for 2 epochs; training is not counted), n = 100 observations, for 100 and 1,000
toys on 11 × 11 and 21 × 21 grids, through `goldmine.inference.toys.thresholds_at`, the work unit of
`confidence_region(method="neyman")`.

Every grid point costs the same (toys · n runs and toys · n · g pairs), so by default each
configuration runs the toys of `--points` grid points spread over the grid, in the batches of up to
16 points that `neyman_thresholds` uses, and the whole region's time is projected as
(seconds per point) · g; `--points 0` runs every point (hours for the largest configuration). The
JSON says which. The same measurement with the ratio network's reference term evaluated for every
pair (the network's plain `log_likelihood_terms`, as before `log_likelihood_table`) gives the gain
of evaluating it once per run.

Usage:
    python benchmarks/neyman_speed.py [--points K] [--toys 100 1000] [--grids 11 21] [--quick] [--out DIR]

It prints a table and writes DIR/neyman_speed.json (with the machine: cpu count, torch threads,
load average before and after, which matters on a shared machine, and pairs per CPU second beside
pairs per wall-clock second: on a shared machine the CPU time is the fairer comparison between
configurations measured minutes apart) and DIR/neyman_speed.png.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import goldmine as gm
from goldmine.executor import seeded_generator
from goldmine.inference import Model
from goldmine.inference.toys import draw_toys, thresholds_at

TARGET = {"toys": 1000, "grid": 21, "seconds": 60.0, "cores": 2}
LEVEL, SEED, BATCH = 0.95, 0, 16


class PerPair:
    """The estimator seen through `log_likelihood_terms` alone: the reference term once per pair."""

    def __init__(self, est):
        self.est, self.kind, self.theta_dim_, self.x_dim_ = est, est.kind, est.theta_dim_, est.x_dim_

    def log_likelihood_terms(self, x, theta):
        return self.est.log_likelihood_terms(x, theta)


def train(runs: int, epochs: int, folder: Path):
    sim = gm.simulators.Weinberg()
    data = gm.simulate(sim, runs, folder / "weinberg.h5", seed=SEED, progress=False)
    start = time.perf_counter()
    est = gm.RatioEstimator("alices", epochs=epochs, seed=SEED, progress=False).fit(data)
    return sim, est, time.perf_counter() - start


def measure(model: Model, sim, points: int, toys: int, n: int, requested: int) -> dict:
    """Seconds for the thresholds at `requested` grid points (all when 0), and the share of simulation."""
    grid = model.grid(points)
    g = len(grid)
    k = g if requested <= 0 or requested >= g else requested
    indices = sorted(set(np.linspace(0, g - 1, k).round().astype(int).tolist()))
    start, cpu = time.perf_counter(), time.process_time()
    for s in range(0, len(indices), BATCH):
        thresholds_at(model, sim, grid, LEVEL, toys, n, SEED, indices[s:s + BATCH])
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    for j in indices:
        draw_toys(sim, grid[j], toys, n, seeded_generator(SEED, j))
    simulation = time.perf_counter() - start
    per_point = seconds / len(indices)
    pairs = len(indices) * toys * n * g
    return {"toys": toys, "grid": f"{points}x{points}", "grid_points": g, "n_obs": n,
            "points_measured": len(indices), "measured_seconds": seconds, "measured_cpu_seconds": cpu,
            "simulation_seconds": simulation, "seconds": per_point * g, "projected": len(indices) < g,
            "pairs_per_second": pairs / seconds, "pairs_per_cpu_second": pairs / cpu, "pairs": g * toys * n * g}


def machine_info() -> dict:
    try:
        root = Path(__file__).resolve().parents[1]
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "git_commit": commit,
            "omp": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY") if k in os.environ}}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [f"{r['toys']} toys\n{r['grid']}" for r in results]
    colours = ["tab:orange" if r["projected"] else "tab:blue" for r in results]
    ax.bar(labels, [r["seconds"] for r in results], color=colours)
    ax.axhline(TARGET["seconds"], color="k", ls="--", lw=1, label=f"target {TARGET['seconds']:.0f} s "
                                                                    f"({TARGET['toys']} toys, {TARGET['grid']}²)")
    ax.set_yscale("log")
    ax.set_ylabel("seconds for the region's thresholds")
    ax.set_title("Neyman toys, Weinberg, alices, n = 100 (orange: projected from a subset of points)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--toys", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--grids", type=int, nargs="+", default=[11, 21], help="points per axis")
    parser.add_argument("--points", type=int, default=8, help="grid points measured per configuration (0: all)")
    parser.add_argument("--n-obs", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5000, help="training runs of the surrogate")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke test: 20 toys, a 5 × 5 grid, 2 points")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "neyman_speed")
    args = parser.parse_args()
    if args.quick:
        args.toys, args.grids, args.points, args.runs = [20], [5], 2, 1000

    machine = machine_info()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        sim, est, train_seconds = train(args.runs, args.epochs, Path(folder))
    model = Model(est, prior=sim, simulator=sim)
    results = [measure(model, sim, points, toys, args.n_obs, args.points) for points in args.grids
               for toys in args.toys]
    per_pair = measure(Model(PerPair(est), prior=sim, simulator=sim), sim, args.grids[0], args.toys[0], args.n_obs,
                       args.points)
    machine["load_average_1_5_15min"] = {"before": load_before, "after": os.getloadavg()}
    target = next((r for r in results if r["toys"] == TARGET["toys"] and r["grid_points"] == TARGET["grid"] ** 2),
                  None)
    report = {
        "benchmark": "neyman_speed",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine, "surrogate": {"method": "alices", "runs": args.runs, "epochs": args.epochs,
                                          "hidden": list(est.hidden), "train_seconds": train_seconds},
        "level": LEVEL, "results": results,
        "reference_term_per_pair": per_pair,
        "table_gain": per_pair["seconds"] / results[0]["seconds"],
        "table_gain_cpu": per_pair["measured_cpu_seconds"] / results[0]["measured_cpu_seconds"],
        "target": {**TARGET, "seconds_measured": None if target is None else target["seconds"],
                   "met": None if target is None else target["seconds"] <= TARGET["seconds"]},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "neyman_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(results, args.out / "neyman_speed.png")

    print(f"Neyman toys on Weinberg with alices (n = {args.n_obs}); load average {load_before[0]:.1f} → "
          f"{machine['load_average_1_5_15min']['after'][0]:.1f} on {os.cpu_count()} cpus, "
          f"{torch.get_num_threads()} torch threads")
    print(f"  {'toys':>5}  {'grid':>6}  {'pairs':>9}  {'measured':>14}  {'seconds':>14}  {'pairs/s':>9}  "
          f"{'pairs/cpu s':>11}  simulation")
    for r in results + [{**per_pair, "grid": per_pair["grid"] + "*"}]:
        measured = f"{r['points_measured']}/{r['grid_points']} pts"
        seconds = f"{r['seconds']:.0f}{' (proj.)' if r['projected'] else ''}"
        share = r["simulation_seconds"] / r["measured_seconds"]
        print(f"  {r['toys']:>5}  {r['grid']:>6}  {r['pairs']:9.2e}  {measured:>14}  {seconds:>14}  "
              f"{r['pairs_per_second']:9.2e}  {r['pairs_per_cpu_second']:11.2e}  {share:.0%}")
    print(f"  * the reference term once per pair (as before log_likelihood_table): {report['table_gain']:.2f}× the "
          f"time, {report['table_gain_cpu']:.2f}× the CPU time")
    if target is not None:
        print(f"target: {TARGET['toys']} toys on {TARGET['grid']}×{TARGET['grid']} in ≤ {TARGET['seconds']:.0f} s: "
              f"{target['seconds']:.0f} s, {'met' if report['target']['met'] else 'not met'}")
    print(f"written {args.out / 'neyman_speed.json'} and {args.out / 'neyman_speed.png'}")


if __name__ == "__main__":
    main()
