"""Neyman speed: seconds for the toy thresholds of a Neyman region with a ratio surrogate, and what the
fast construction (windowed statistic, pooled toys) costs in accuracy.

A Neyman region needs, at every point θ_j of a g-point grid, the level-quantile of a statistic over
`toys` data sets of n runs drawn at θ_j. With continuous x and the profile statistic (ℓ of every toy
on the whole grid) every (toy run, θ) pair is its own network evaluation:

    profile, independent toys:  pairs = g · toys · n · g          (1,000 toys, n = 100, 21 × 21: 1.9 · 10¹⁰)
    window w, pool of M runs:   pairs = g · M · (2w + 1)^d        (w = 1, M = 4,347:                1.7 · 10⁷)

(`goldmine.inference.toys` gives the math). This script measures, on the 2-D Weinberg problem with a
small alices ratio estimator (trained here on 5,000 runs for 2 epochs; training is not counted), n = 100
observations, level 0.95:

1. speed: `neyman_thresholds` with the default plan (`neyman_plan`: window NEYMAN_WINDOW, pool
   `pool_size`) for 100 and 1,000 toys on 11 × 11 and 21 × 21 grids, every grid point (not projected),
   and the old construction (profile, independent toys) on `--points` grid points, projected to the
   whole grid as (seconds per point) · g: every grid point costs the same there.
2. pool: the effect of a finite pool on the thresholds, with the exact likelihood (so that only the
   toys vary): the thresholds of 1,000 toys at 5 grid points of the 21 × 21 grid, each from 4 seeds,
   with pools of M runs against independent toys (M = toys · n), as a mean shift and in units of the
   thresholds' own Monte Carlo spread.
3. agreement: the regions of one observed data set (the exact likelihood, 11 × 11 grid, 1,000 toys)
   with the windowed statistic (w = 1, 2) and with the profile, both with the default pool: the
   grid points on which they agree, and their areas.

Usage:
    python benchmarks/neyman_speed.py [--toys 100 1000] [--grids 11 21] [--points K] [--quick] [--out DIR]
        [--speed-only] [--workers 1 2] [--subset K --threads 1]

--subset K times the default construction at K evenly spaced grid points in this process and projects its CPU
seconds to the whole grid (the number that a shared machine leaves comparable between two versions).

It prints a table and writes DIR/neyman_speed.json (with the machine: cpu count, torch threads, load
average before and after, which matters on a shared machine, and CPU seconds, the workers' included, beside
wall-clock seconds)
and DIR/neyman_speed.png.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import goldmine as gm
from goldmine.executor import seeded_generator
from goldmine.inference import Model, confidence_region
from goldmine.inference.toys import (NEYMAN_WINDOW, Window, neyman_pairs, neyman_plan, neyman_thresholds, pool_size,
                                     pooled_statistic, thresholds_at, toy_quantile)
from goldmine.simulators.base import Draws, Simulator, box_prior

sys.path.insert(0, str(Path(__file__).parent))
from mining_speed import machine_info  # noqa: E402

TARGET = {"toys": 1000, "grid": 21, "seconds": 60.0, "cores": 2}
LEVEL, SEED, BATCH = 0.95, 0, 16


def train(runs: int, epochs: int, folder: Path):
    sim = gm.simulators.Weinberg()
    data = gm.simulate(sim, runs, folder / "weinberg.h5", seed=SEED, progress=False)
    start = time.perf_counter()
    est = gm.RatioEstimator("alices", epochs=epochs, seed=SEED, progress=False).fit(data)
    return sim, est, time.perf_counter() - start


def measure_subset(model: Model, sim, points: int, toys: int, n: int, window: int, subset: int) -> dict:
    """CPU seconds of the default construction at `subset` evenly spaced grid points in this process, projected to
    the whole grid as (CPU seconds per point) · g: every point costs about the same, and CPU seconds are what a
    shared machine leaves comparable."""
    grid = model.grid(points)
    g = len(grid)
    window, pool = neyman_plan(sim, grid, LEVEL, toys, n, SEED, window=window)
    indices = sorted(set(np.linspace(0, g - 1, subset).round().astype(int).tolist()))
    start, cpu = time.perf_counter(), cpu_seconds()
    thresholds = []
    for s in range(0, len(indices), BATCH):
        thresholds += thresholds_at(model, sim, grid, LEVEL, toys, n, SEED, window, pool, indices[s:s + BATCH])
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    pairs = len(indices) * pool * (2 * window + 1) ** 2
    return {"construction": f"window {window}, pool {pool}, {len(indices)} points", "workers": 1, "toys": toys,
            "grid": f"{points}x{points}", "grid_points": g, "n_obs": n, "window": window, "pool": pool,
            "points_measured": len(indices), "indices": indices, "thresholds": thresholds,
            "measured_seconds": seconds, "measured_cpu_seconds": cpu, "seconds": cpu / len(indices) * g,
            "projected": True, "pairs": neyman_pairs(grid, toys, n, window, pool), "pairs_per_second": pairs / seconds,
            "pairs_per_cpu_second": pairs / cpu}


def measure_fast(model: Model, sim, points: int, toys: int, n: int, window: int, workers: int = 1) -> dict:
    """Seconds for the whole region's thresholds with the window and the default pool, in `workers` local
    processes (CPU seconds of this process and of the workers, which have ended when it returns)."""
    grid = model.grid(points)
    g = len(grid)
    window, pool = neyman_plan(sim, grid, LEVEL, toys, n, SEED, window=window)
    start, cpu = time.perf_counter(), cpu_seconds()
    neyman_thresholds(model, sim, grid, LEVEL, toys, n, SEED, workers=workers, progress=False, window=window,
                      pool=pool)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    pairs = neyman_pairs(grid, toys, n, window, pool)
    name = f"window {window}, pool {pool}" + (f", {workers} workers" if workers > 1 else "")
    return {"construction": name, "workers": workers, "toys": toys, "grid": f"{points}x{points}",
            "grid_points": g, "n_obs": n, "window": window, "pool": pool, "points_measured": g,
            "measured_seconds": seconds, "measured_cpu_seconds": cpu, "seconds": seconds, "projected": False,
            "pairs": pairs, "pairs_per_second": pairs / seconds, "pairs_per_cpu_second": pairs / cpu}


def cpu_seconds() -> float:
    """CPU seconds (user and system) of this process and of its ended child processes (the local workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure_profile(model: Model, sim, points: int, toys: int, n: int, requested: int) -> dict:
    """Seconds for the old construction (profile, independent toys) at `requested` grid points, projected."""
    grid = model.grid(points)
    g = len(grid)
    k = g if requested <= 0 or requested >= g else requested
    indices = sorted(set(np.linspace(0, g - 1, k).round().astype(int).tolist()))
    start, cpu = time.perf_counter(), time.process_time()
    for s in range(0, len(indices), BATCH):
        thresholds_at(model, sim, grid, LEVEL, toys, n, SEED, None, None, indices[s:s + BATCH])
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    pairs = len(indices) * toys * n * g
    return {"construction": "profile, independent toys", "toys": toys, "grid": f"{points}x{points}",
            "grid_points": g, "n_obs": n, "window": None, "pool": None, "points_measured": len(indices),
            "measured_seconds": seconds, "measured_cpu_seconds": cpu, "seconds": seconds / len(indices) * g,
            "projected": len(indices) < g, "pairs": neyman_pairs(grid, toys, n, None, None), "pairs_per_second": pairs / seconds,
            "pairs_per_cpu_second": pairs / cpu}


def pool_effect(sim, toys: int, n: int, pools: list[int], points: list[int], seeds: int) -> dict:
    """Thresholds (windowed, w = NEYMAN_WINDOW) with pools of M runs against independent toys, exact likelihood."""
    model = Model(sim)
    model.progress = False
    grid = model.grid(21)
    window = Window(grid, NEYMAN_WINDOW)
    table = {}
    for pool in [None] + pools:
        table[pool] = np.array([[toy_quantile(pooled_statistic(model, sim, grid, window, toys, n, pool,
                                                               seeded_generator(s, j), j), LEVEL)
                                 for s in range(seeds)] for j in points])
    independent = table[None]
    spread = float(independent.std(1, ddof=1).mean())  # the Monte Carlo sd of one threshold
    rows = []
    for pool in pools:
        diff = table[pool] - independent.mean(1, keepdims=True)
        rows.append({"pool": pool, "pool_over_n": pool / n, "mean_shift": float(diff.mean()),
                     "shift_stderr": float(diff.std(ddof=1) / math.sqrt(diff.size)),
                     "shift_over_mc_sd": float(diff.mean()) / spread,
                     "sd": float(table[pool].std(1, ddof=1).mean())})
    return {"toys": toys, "n_obs": n, "grid": "21x21", "points": points, "seeds": seeds, "window": NEYMAN_WINDOW,
            "default_pool": pool_size(toys, n, 2, LEVEL), "independent_sd": spread,
            "independent_mean": independent.mean(1).tolist(), "pools": rows}


class Gaussian2(Simulator):
    """x = θ + ε, ε ~ N(0, Σ) with unit variances and correlation RHO, θ ∈ [−1.5, 1.5]²: both directions
    of θ identified, ℓ an exact parabola whose 95% region is an ellipse of area π·χ²₂(0.95)·√det Σ / n."""

    name, theta_dim, x_dim = "gaussian2", 2, 2
    RHO = 0.8

    def __init__(self):
        self.prior = box_prior([-1.5, -1.5], [1.5, 1.5])
        self.reference = torch.zeros(2, dtype=torch.float64)
        cov = torch.tensor([[1.0, self.RHO], [self.RHO, 1.0]], dtype=torch.float64)
        self.chol, self.precision = torch.linalg.cholesky(cov), torch.linalg.inv(cov)

    def sample(self, theta, generator=None) -> Draws:
        theta = self.check_theta(theta)
        return Draws(theta + torch.randn(theta.shape, dtype=torch.float64, generator=generator) @ self.chol.T, None)

    def log_prob(self, x, theta):
        d = self.check_x(x) - self.check_theta(theta)
        return -0.5 * ((d @ self.precision) * d).sum(1)


def power(toys: int, n: int, points: int, seeds: int, windows: list[int]) -> dict:
    """Region areas with the window against the profile where both directions of θ are identified."""
    from scipy.stats import chi2

    sim = Gaussian2()
    areas = {"profile": []} | {f"window {w}": [] for w in windows}
    for seed in range(seeds):
        x = sim.sample(torch.tensor([[0.1, -0.2]], dtype=torch.float64).expand(n, -1),
                       generator=seeded_generator(SEED, 1000 + seed)).x
        for name, window in [("profile", None)] + [(f"window {w}", w) for w in windows]:
            region = confidence_region(sim, x, LEVEL, method="neyman", grid=points, toys=toys, seed=SEED,
                                       progress=False, window=window)
            areas[name].append(region.size)
    exact = math.pi * chi2.ppf(LEVEL, 2) * math.sqrt(1 - Gaussian2.RHO ** 2) / n
    return {"simulator": "x = θ + N(0, Σ), correlation 0.8", "toys": toys, "n_obs": n, "grid": f"{points}x{points}",
            "seeds": seeds, "ellipse_area": exact, "areas": areas,
            "mean_area_over_profile": {k: float(np.mean(v) / np.mean(areas["profile"])) for k, v in areas.items()}}


def agreement(sim, toys: int, n: int, points: int) -> dict:
    """The regions of one observed data set with the window (w = 1, 2) and with the profile."""
    x = sim.sample(sim.reference.expand(n, -1), generator=seeded_generator(SEED, 12345)).x
    out, regions = {}, {}
    for name, window in (("profile", None), ("window 1", 1), ("window 2", 2)):
        start = time.perf_counter()
        region = confidence_region(sim, x, LEVEL, method="neyman", grid=points, toys=toys, seed=SEED,
                                   progress=False, window=window)
        regions[name] = region
        out[name] = {"area": region.size, "points_inside": int(region.inside.sum()), "pool": region.pool,
                     "window_edge": region.window_edge, "seconds": time.perf_counter() - start,
                     "true_theta_inside": bool(region.contains(sim.reference[None])[0])}
    for name in ("window 1", "window 2"):
        out[name]["agreement_with_profile"] = float((regions[name].inside == regions["profile"].inside)
                                                    .double().mean())
    return {"toys": toys, "n_obs": n, "grid": f"{points}x{points}", "likelihood": "exact", "regions": out}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    labels = [f"{r['toys']} toys\n{r['grid']}\n{'profile' if r['window'] is None else 'w=%d+pool' % r['window']}"
              for r in results]
    colours = ["tab:orange" if r["projected"] else "tab:blue" for r in results]
    ax.bar(labels, [r["seconds"] for r in results], color=colours)
    ax.axhline(TARGET["seconds"], color="k", ls="--", lw=1, label=f"target {TARGET['seconds']:.0f} s "
                                                                    f"({TARGET['toys']} toys, {TARGET['grid']}²)")
    ax.set_yscale("log")
    ax.set_ylabel("seconds for the region's thresholds")
    ax.set_title("Neyman toys, Weinberg, alices, n = 100 (orange: projected from a subset of points)", fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--toys", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--grids", type=int, nargs="+", default=[11, 21], help="points per axis")
    parser.add_argument("--points", type=int, default=1, help="grid points of the profile's projection (0: all)")
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 2], help="window half-widths timed")
    parser.add_argument("--workers", type=int, nargs="+", default=[1],
                        help="local processes for the toys of the window and pool construction")
    parser.add_argument("--subset", type=int, default=0,
                        help="time the window and pool at this many grid points only, in CPU seconds, projected")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of this process")
    parser.add_argument("--n-obs", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5000, help="training runs of the surrogate")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--speed-only", action="store_true",
                        help="time the window and pool only (no profile projection, pool, agreement or power checks)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 100 toys, a 5 × 5 grid, small checks")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "neyman_speed")
    args = parser.parse_args()
    torch.set_num_threads(min(args.threads, torch.get_num_threads()))
    check_toys, check_points, pools, seeds, agree_grid = 1000, [110, 160, 220, 270, 330], [1000, 2000, 4347], 4, 11
    power_toys, power_grid, power_seeds = 300, 21, 2
    if args.quick:
        args.toys, args.grids, args.points, args.runs = [100], [5], 1, 1000
        check_toys, check_points, pools, seeds, agree_grid = 100, [110, 220], [300], 2, 5
        power_toys, power_grid, power_seeds = 50, 7, 1

    machine = machine_info()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        sim, est, train_seconds = train(args.runs, args.epochs, Path(folder))
    model = Model(est, prior=sim, simulator=sim)
    model.progress = False
    if args.subset:
        results = [measure_subset(model, sim, points, toys, args.n_obs, w, args.subset) for points in args.grids
                   for toys in args.toys for w in args.windows]
    else:
        results = [measure_fast(model, sim, points, toys, args.n_obs, w, k) for points in args.grids
                   for toys in args.toys for w in args.windows for k in args.workers]
    pools_out = agree = power_out = None
    if not args.speed_only:
        results += [measure_profile(model, sim, points, toys, args.n_obs, args.points) for points in args.grids
                    for toys in args.toys]
        pools_out = pool_effect(sim, check_toys, args.n_obs, pools, check_points, seeds)
        agree = agreement(sim, check_toys, args.n_obs, agree_grid)
        power_out = power(power_toys, 20, power_grid, power_seeds, args.windows)
    machine["load_average_1_5_15min"] = {"before": load_before, "after": os.getloadavg()}
    target = min((r for r in results if r["toys"] == TARGET["toys"] and r["grid_points"] == TARGET["grid"] ** 2
                   and r["window"] == NEYMAN_WINDOW and not r["projected"]), key=lambda r: r["seconds"], default=None)
    report = {
        "benchmark": "neyman_speed",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine, "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "surrogate": {"method": "alices", "runs": args.runs, "epochs": args.epochs, "hidden": list(est.hidden),
                      "train_seconds": train_seconds},
        "level": LEVEL, "results": results, "pool_effect": pools_out, "agreement": agree,
        "power": power_out, "default_window": NEYMAN_WINDOW,
        "target": {**TARGET, "seconds_measured": None if target is None else target["seconds"],
                   "cpu_seconds_measured": None if target is None else target["measured_cpu_seconds"],
                   "met": None if target is None else target["seconds"] <= TARGET["seconds"]},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "neyman_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(results, args.out / "neyman_speed.png")

    print(f"Neyman toys on Weinberg with alices (n = {args.n_obs}); load average {load_before[0]:.1f} → "
          f"{machine['load_average_1_5_15min']['after'][0]:.1f} on {os.cpu_count()} cpus, "
          f"{torch.get_num_threads()} torch threads")
    print(f"  {'construction':>32}  {'toys':>5}  {'grid':>6}  {'pairs':>9}  {'measured':>12}  {'seconds':>14}  "
          f"{'cpu s':>7}  {'pairs/s':>9}")
    for r in results:
        measured = f"{r['points_measured']}/{r['grid_points']} pts"
        seconds = f"{r['seconds']:.1f}{' (proj.)' if r['projected'] else ''}"
        print(f"  {r['construction']:>32}  {r['toys']:>5}  {r['grid']:>6}  {r['pairs']:9.2e}  {measured:>12}  "
              f"{seconds:>14}  {r['measured_cpu_seconds']:7.1f}  {r['pairs_per_second']:9.2e}")
    if not args.speed_only:
        print_checks(pools_out, agree, power_out)
    if target is not None:
        print(f"target (default window {NEYMAN_WINDOW}): {TARGET['toys']} toys on {TARGET['grid']}×{TARGET['grid']} in "
              f"≤ {TARGET['seconds']:.0f} s: {target['seconds']:.1f} s ({target['measured_cpu_seconds']:.1f} CPU s), "
              f"{'met' if report['target']['met'] else 'not met'}")
    print(f"written {args.out / 'neyman_speed.json'} and {args.out / 'neyman_speed.png'}")


def print_checks(pools_out: dict, agree: dict, power_out: dict) -> None:
    p = pools_out
    print(f"pool effect (exact likelihood, window {p['window']}, {p['toys']} toys, n = {p['n_obs']}, "
          f"{len(p['points'])} points × {p['seeds']} seeds): independent toys' threshold sd {p['independent_sd']:.3f}")
    for r in p["pools"]:
        print(f"  M = {r['pool']:>6} ({r['pool_over_n']:.0f} n): shift {r['mean_shift']:+.3f} ± {r['shift_stderr']:.3f}"
              f" = {r['shift_over_mc_sd']:+.2f} MC sd; threshold sd {r['sd']:.3f}")
    print(f"agreement with the profile (exact likelihood, {agree['grid']}, {agree['toys']} toys, one data set):")
    for name, r in agree["regions"].items():
        extra = f", agreement {r['agreement_with_profile']:.3f}" if "agreement_with_profile" in r else ""
        print(f"  {name:>9}: area {r['area']:.3f}, {r['points_inside']} points inside, window edge {r['window_edge']},"
              f" pool {r['pool']}, {r['seconds']:.1f} s{extra}")
    pw = power_out
    print(f"power where both directions are identified ({pw['simulator']}, {pw['grid']}, {pw['toys']} toys, "
          f"n = {pw['n_obs']}, {pw['seeds']} data sets; the exact ellipse {pw['ellipse_area']:.3f}):")
    for name, ratio in pw["mean_area_over_profile"].items():
        print(f"  {name:>9}: mean area {np.mean(pw['areas'][name]):.3f}, {ratio:.2f} × the profile's")


if __name__ == "__main__":
    main()
