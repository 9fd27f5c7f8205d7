"""Mining speed: mined rows per second of every built-in simulator, measured three ways.

A mined row is the whole per-row work of a training data set row: θ ~ prior, one run
(x, z) ~ p(x, z|θ), then its gold

    log r(x, z|θ, θ_ref) = log p(x, z|θ) − log p(x, z|θ_ref),   t(x, z|θ),   t(x, z|θ_ref),

that is `sim.sample` followed by `goldmine.mining.augment`. The three ways:

    vectorized   one process, large batches through sample + augment; every measurement runs
                 whole batches for at least `min_time` seconds; the best of 3 measurements and
                 of a few batch sizes (up to 2^17 rows; the table names the best).
                 Once with torch's default intra-op threads and once with one thread.
    simulate     `goldmine.simulate` end to end (chunks, process pool, HDF5 writes to a temporary
                 directory) with workers=1, the best of `repeats` runs as for vectorized, and
                 workers=2, one run, spawn-up included.
    loop         a plain Python loop, one row per call to sample / joint_log_prob / joint_score,
                 for up to 200 rows or `loop_time` seconds.

The issue's target is the Galton board at ≥ 1,000,000 mined rows per second on the vectorized
path in one process, with the better of the two thread settings (the JSON names which, and records
the verdict for default threads apart). A second target: `simulate` with workers=1 and default
settings at ≥ half the better vectorized rate, on data sets of ≥ 10⁵ rows, for every simulator
(the column "simulate / vectorized"; a full run sizes every simulate call to ≥ 10⁵ rows). A third:
Lotka–Volterra mined at ≥ 1,000 rows per second (the JSON's "lotka_volterra_target").

Usage:
    python benchmarks/mining_speed.py [--quick] [--out DIR] [--only NAME ...]

It prints a table and writes DIR/mining_speed.json (DIR: benchmarks/results/mining_speed) (with machine information: cpu count, torch
version and threads, load average, which matters on a shared machine) and DIR/mining_speed.png.
A simulator whose module is missing or fails is reported as unavailable, not fatal.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import subprocess
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch

import goldmine as gm
from goldmine.mining import augment, reference_of
from goldmine.simulators.base import DTYPE, Simulator

TARGET = {"simulator": "galton", "rows_per_second": 1_000_000, "paths": ["vectorized", "vectorized_1thread"]}
#: issue 17's target for Lotka–Volterra (aim 10⁴ rows/s), judged like TARGET by `judge`
LV_TARGET = {"simulator": "lotka_volterra", "rows_per_second": 1_000, "paths": ["vectorized", "vectorized_1thread"]}
SIMULATE_TARGET = {"ratio": 0.5, "min_rows": 100_000}  # simulate (workers=1) / best vectorized, on ≥ 10⁵ rows
PATHS = ("vectorized", "vectorized_1thread", "simulate_w1", "simulate_w2", "loop")
LABELS = {
    "vectorized": "vectorized",
    "vectorized_1thread": "vectorized, 1 thread",
    "simulate_w1": "simulate, workers=1",
    "simulate_w2": "simulate, workers=2",
    "loop": "per-row loop",
}


@dataclass
class Spec:
    """One simulator and the sizes that make its measurements last about 1–5 s.

    batches: rows per vectorized batch, each tried (full run, --quick); the best counts, since the
    fastest batch size depends on the simulator and on the machine's caches. block: rows per seed
    block in `simulate`, None for the simulator's own; lowered for slow simulators so that a data
    set of a few blocks, which two workers can share, stays short.
    """

    name: str
    module: str
    cls: str
    kwargs: dict = field(default_factory=dict)
    batches: tuple[tuple[int, ...], tuple[int, ...]] = ((2**13, 2**15, 2**17), (2**10, 2**12))
    block: tuple[int | None, int | None] = (None, 1024)


SPECS = [
    Spec("galton", "goldmine.simulators.galton", "GaltonBoard"),
    Spec("weinberg", "goldmine.simulators.weinberg", "Weinberg"),
    Spec("poisson", "goldmine.simulators.poisson", "Poisson"),
    Spec("mixture", "goldmine.simulators.mixture", "GaussianMixture", {"dim": 2}),
    Spec("lotka_volterra", "goldmine.simulators.lotka_volterra", "LotkaVolterra",
         batches=((500, 2000), (200,)), block=(None, 200)),
]


@dataclass
class Sizes:
    repeats: int
    min_time: float  # seconds per vectorized measurement
    loop_rows: int
    loop_time: float  # seconds at most for the loop
    simulate_time: float  # seconds aimed at for simulate with workers=1
    simulate_max_rows: int
    simulate_min_rows: int = 0  # at least this many rows (the simulate target's size)


FULL = Sizes(repeats=3, min_time=1.0, loop_rows=200, loop_time=10.0, simulate_time=8.0, simulate_max_rows=2**21,
             simulate_min_rows=SIMULATE_TARGET["min_rows"])
QUICK = Sizes(repeats=2, min_time=0.1, loop_rows=20, loop_time=2.0, simulate_time=0.5, simulate_max_rows=2**14)


# -- the three ways of mining ---------------------------------------------------------------------


def draw_theta(sim: Simulator, n: int) -> torch.Tensor:
    """θ ~ prior, (n, theta_dim) float64 (priors draw from torch's global generator)."""
    return sim.prior.sample((n,)).to(DTYPE).reshape(n, sim.theta_dim)


def mine_batch(sim: Simulator, n: int, ref: torch.Tensor, generator: torch.Generator) -> dict:
    """n mined rows: θ ~ prior, a run at θ, and its log_r, score and score_ref."""
    theta = draw_theta(sim, n)
    draws = sim.sample(theta, generator=generator)
    return {"x": draws.x, **augment(sim, draws, theta, ref)}


def measure_vectorized(sim: Simulator, batches: tuple[int, ...], sizes: Sizes, seed: int = 0) -> dict:
    """Best rows/s over batch sizes and `sizes.repeats` measurements, each of whole batches lasting
    at least `sizes.min_time` seconds."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    ref = reference_of(sim)
    mine_batch(sim, min(min(batches), 64), ref, generator)  # warm-up: first-call allocations, lazy imports
    per_batch, per_cpu = {}, {}
    for batch in batches:
        rates, cpu_rates = [], []
        for _ in range(sizes.repeats):
            rows, start, cpu = 0, time.perf_counter(), time.process_time()
            while True:
                mine_batch(sim, batch, ref, generator)
                rows += batch
                elapsed = time.perf_counter() - start
                if elapsed >= sizes.min_time:
                    break
            rates.append(rows / elapsed)
            cpu_rates.append(rows / max(time.process_time() - cpu, 1e-9))
        per_batch[batch], per_cpu[batch] = rates, cpu_rates
    best = max(per_batch, key=lambda b: max(per_batch[b]))
    # rows per CPU second (all threads of this process): what a core delivers when others share it
    return {"rows_per_second": max(per_batch[best]), "batch": best, "threads": torch.get_num_threads(),
            "rows_per_cpu_second": max(per_cpu[best]),
            "rows_per_second_by_batch": {str(b): r for b, r in per_batch.items()},
            "rows_per_cpu_second_by_batch": {str(b): r for b, r in per_cpu.items()}}


def measure_loop(sim: Simulator, sizes: Sizes, seed: int = 0) -> dict:
    """rows/s of a Python loop that mines one row per call, for up to loop_rows rows or loop_time s."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    ref = reference_of(sim)[None]

    def one_row():
        theta = draw_theta(sim, 1)
        draws = sim.sample(theta, generator=generator)
        with torch.no_grad():
            log_r = sim.joint_log_prob(draws, theta) - sim.joint_log_prob(draws, ref)
        return draws.x, log_r, sim.joint_score(draws, theta), sim.joint_score(draws, ref)

    one_row()  # warm-up
    rows, start = 0, time.perf_counter()
    while rows < sizes.loop_rows:
        one_row()
        rows += 1
        if time.perf_counter() - start > sizes.loop_time:
            break
    elapsed = time.perf_counter() - start
    return {"rows_per_second": rows / elapsed, "rows": rows, "seconds": elapsed}


def measure_simulate(sim: Simulator, workers: int, n: int, seed: int = 0, repeats: int = 1) -> dict:
    """rows/s of goldmine.simulate end to end, writing HDF5 into a temporary directory: the best of `repeats` runs
    (each a new file), with the load average at each."""
    threads = torch.get_num_threads()
    seconds, cpu_seconds, loads = [], [], []
    try:
        for _ in range(repeats):
            with tempfile.TemporaryDirectory(prefix="goldmine-bench-") as tmp:
                start, cpu = time.perf_counter(), time.process_time()
                data = gm.simulate(sim, n, Path(tmp) / "bench.h5", seed=seed, workers=workers, progress=False)
                seconds.append(time.perf_counter() - start)
                cpu_seconds.append(time.process_time() - cpu)
                loads.append(os.getloadavg()[0])
                rows, size = len(data), (Path(tmp) / "bench.h5").stat().st_size
            if rows != n:
                raise RuntimeError(f"simulate wrote {rows} rows, {n} asked")
    finally:
        torch.set_num_threads(threads)  # in case the in-process chunks changed this process's threads
    # rows per CPU second of this process (not of worker processes): with workers=1, what a core delivers
    return {"rows_per_second": n / min(seconds), "rows_per_cpu_second": n / max(min(cpu_seconds), 1e-9),
            "rows": n, "seconds": min(seconds), "seconds_by_run": seconds,
            "load_average_1min_by_run": loads, "block_size": sim.block_size, "file_bytes": size}


def simulate_rows(sim: Simulator, rate: float, sizes: Sizes) -> int:
    """Rows for a simulate run of about simulate_time s at `rate`: whole blocks, at least 4 of them and at
    least simulate_min_rows rows."""
    block = sim.block_size
    blocks = max(4, round(rate * sizes.simulate_time / block))
    blocks = min(blocks, max(4, sizes.simulate_max_rows // block))
    blocks = max(blocks, -(-sizes.simulate_min_rows // block))
    return blocks * block


# -- one simulator --------------------------------------------------------------------------------


def bench_simulator(spec: Spec, sizes: Sizes, quick: bool, log=print) -> dict:
    """Every measurement of one simulator; on any failure the simulator is reported unavailable."""
    result: dict = {"simulator": spec.name, "class": f"{spec.module}.{spec.cls}", "kwargs": spec.kwargs,
                    "status": "ok"}
    stage = "load"
    try:
        sim = getattr(importlib.import_module(spec.module), spec.cls)(**spec.kwargs)
        block = spec.block[1 if quick else 0]
        if block is not None:
            sim.block_size = block  # an instance attribute: only this benchmark's data sets use it
        batches = spec.batches[1 if quick else 0]
        threads = torch.get_num_threads()

        stage = "vectorized"
        log(f"[{spec.name}] vectorized, batches {batches}, {threads} threads")
        result["vectorized"] = measure_vectorized(sim, batches, sizes)
        stage = "vectorized_1thread"
        log(f"[{spec.name}] vectorized, batches {batches}, 1 thread")
        torch.set_num_threads(1)
        try:
            result["vectorized_1thread"] = measure_vectorized(sim, batches, sizes)
        finally:
            torch.set_num_threads(threads)

        stage = "loop"
        log(f"[{spec.name}] per-row loop")
        result["loop"] = measure_loop(sim, sizes)

        rate = min(result["vectorized"]["rows_per_second"], result["vectorized_1thread"]["rows_per_second"])
        n = simulate_rows(sim, rate, sizes)
        for workers in (1, 2):
            stage = f"simulate_w{workers}"
            log(f"[{spec.name}] simulate {n} rows, workers={workers}")
            result[stage] = measure_simulate(sim, workers, n, repeats=sizes.repeats if workers == 1 else 1)
        result["vectorized_over_loop"] = result["vectorized"]["rows_per_second"] / result["loop"]["rows_per_second"]
        best = max(result["vectorized"]["rows_per_second"], result["vectorized_1thread"]["rows_per_second"])
        result["simulate_over_vectorized"] = result["simulate_w1"]["rows_per_second"] / best
        # the same ratio in rows per CPU second, which a shared machine's load disturbs less
        result["simulate_over_vectorized_cpu"] = result["simulate_w1"]["rows_per_cpu_second"] / max(
            result["vectorized"]["rows_per_cpu_second"], result["vectorized_1thread"]["rows_per_cpu_second"])
    except Exception as error:  # noqa: BLE001 — a broken simulator must not stop the others
        result["status"] = "unavailable"
        result["reason"] = f"{stage}: {type(error).__name__}: {error}"
        result["traceback"] = traceback.format_exc()
        log(f"[{spec.name}] unavailable — {result['reason']}")
    return result


# -- machine, table, plot -------------------------------------------------------------------------


def machine_info() -> dict:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        root = Path(__file__).resolve().parents[1]
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "src"], cwd=root, capture_output=True,
                                    text=True).stdout.strip())
    except OSError:
        commit, dirty = "", None
    return {
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "thread_environment": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")},
        "goldmine": gm.__version__,
        "git_commit": commit,
        "src_has_uncommitted_changes": dirty,
    }


def fmt_rate(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def table(results: list[dict], target: dict) -> str:
    head = ["simulator", "best batch", *(LABELS[p] for p in PATHS), "vectorized / loop", "simulate / vectorized"]
    rows = []
    for r in results:
        if r["status"] != "ok":
            rows.append([r["simulator"], "", f"unavailable ({r['reason'][:100]})"])
            continue
        rows.append([
            r["simulator"],
            f"{r['vectorized']['batch']}/{r['vectorized_1thread']['batch']}",
            *(fmt_rate(r[p]["rows_per_second"]) for p in PATHS),
            f"{r['vectorized_over_loop']:,.3g}×",
            f"{r['simulate_over_vectorized']:.2f} ({r['simulate_w1']['rows']:,} rows)",
        ])
    widths = [max([len(h), *(len(row[i]) for row in rows if len(row) == len(head) or i == 0)])
              for i, h in enumerate(head)]
    lines = ["mined rows per second (x, log_r, score, score_ref per row; θ ~ prior)",
             "  ".join(h.rjust(w) for h, w in zip(head, widths))]
    for row in rows:
        if len(row) == len(head):
            lines.append("  ".join(c.rjust(w) for c, w in zip(row, widths)))
        else:
            lines.append(f"{row[0].rjust(widths[0])}  {row[2]}")
    reached = target["reached"]
    verdict = (f"target: {target['simulator']} ≥ {target['rows_per_second']:,} mined rows/s vectorized in one "
            "process — ")
    if reached is None:
        lines.append(verdict + "not measured: NOT MET")
    else:
        default = target["reached_by_path"]["vectorized"]
        lines.append(verdict + f"reached {reached:,.0f} rows/s ({LABELS[target['path']]}): "
                     + ("MET" if target["target_met"] else "NOT MET")
                     + f"; with default threads {default:,.0f} rows/s: "
                     + ("met" if target["target_met_default_threads"] else "not met"))
    ok = [r for r in results if r["status"] == "ok"]
    lines.append(f"target: simulate (workers=1) ≥ {SIMULATE_TARGET['ratio']} × the better vectorized rate on ≥ "
                 f"{SIMULATE_TARGET['min_rows']:,} rows, every simulator — "
                 + ("MET" if simulate_target_met(results) else "NOT MET")
                 + " (" + ", ".join(f"{r['simulator']} {r['simulate_over_vectorized']:.2f}" for r in ok) + ")")
    lines.append("  the same ratio in rows per CPU second: "
                 + ", ".join(f"{r['simulator']} {r['simulate_over_vectorized_cpu']:.2f}" for r in ok))
    return "\n".join(lines)


def simulate_target_met(results: list[dict]) -> bool:
    """Whether every simulator's simulate (workers=1) reached the ratio on a data set of the target's size."""
    ok = [r for r in results if r["status"] == "ok"]
    return len(ok) == len(results) and all(
        r["simulate_over_vectorized"] >= SIMULATE_TARGET["ratio"] and r["simulate_w1"]["rows"] >= SIMULATE_TARGET["min_rows"]
        for r in ok)


def plot(results: list[dict], target: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["simulator"] for r in results]
    width = 0.8 / len(PATHS)
    fig, ax = plt.subplots(figsize=(11, 5))
    for j, p in enumerate(PATHS):
        xs, ys = [], []
        for i, r in enumerate(results):
            if r["status"] == "ok":
                xs.append(i + (j - (len(PATHS) - 1) / 2) * width)
                ys.append(r[p]["rows_per_second"])
        bars = ax.bar(xs, ys, width, label=LABELS[p])
        ax.bar_label(bars, [f"{y:.2g}" for y in ys], rotation=90, fontsize=7, padding=2)
    ax.set_yscale("log")
    ax.set_xlim(-0.5, len(results) - 0.5)
    for i, r in enumerate(results):
        if r["status"] != "ok":
            ax.text(i, 0.5, "unavailable", ha="center", va="center", transform=ax.get_xaxis_transform(), color="gray")
    ax.axhline(target["rows_per_second"], color="k", ls="--", lw=1)
    ax.text(len(results) - 0.55, target["rows_per_second"],
            f"target: {target['simulator']} ≥ {target['rows_per_second']:,} rows/s", va="bottom", ha="right", fontsize=8)
    ax.margins(y=0.15)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("mined rows per second")
    ax.set_title(f"goldmine mining speed ({os.cpu_count()} CPUs, torch {torch.__version__})")
    ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def judge(results: list[dict], spec: dict) -> dict:
    """The target's verdict: the best of its paths, and the verdict with default threads alone."""
    target = dict(spec)
    found = next((r for r in results if r["simulator"] == target["simulator"] and r["status"] == "ok"), None)
    by_path = {p: found[p]["rows_per_second"] for p in target["paths"]} if found else {}
    best = max(by_path, key=by_path.get) if by_path else None
    target.update(
        reached=by_path.get(best),
        path=best,
        reached_by_path=by_path,
        target_met=bool(by_path) and by_path[best] >= target["rows_per_second"],
        target_met_default_threads=bool(by_path) and by_path["vectorized"] >= target["rows_per_second"],
    )
    return target


# -- main -----------------------------------------------------------------------------------------


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "mining_speed"),
                        help="directory for mining_speed.json and mining_speed.png")
    parser.add_argument("--only", nargs="+", choices=[s.name for s in SPECS], help="these simulators alone")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    machine = machine_info()
    load_before = os.getloadavg()
    started = time.perf_counter()
    results = [bench_simulator(spec, sizes, args.quick) for spec in SPECS if not args.only or spec.name in args.only]
    machine["load_average_1_5_15min"] = {"before": load_before, "after": os.getloadavg()}

    target = judge(results, TARGET)

    report = {
        "benchmark": "mining_speed",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "seconds": time.perf_counter() - started,
        "machine": machine,
        "sizes": vars(sizes),
        "target": target,
        "target_met": target["target_met"],
        "simulate_target": {**SIMULATE_TARGET, "met": simulate_target_met(results),
                            "ratios": {r["simulator"]: r.get("simulate_over_vectorized") for r in results}},
        "lotka_volterra_target": judge(results, LV_TARGET),
        "simulators": results,
    }
    (out / "mining_speed.json").write_text(json.dumps(report, indent=2))
    plot(results, target, out / "mining_speed.png")
    print()
    print(table(results, target))
    load = machine["load_average_1_5_15min"]
    print(f"machine: {machine['cpu_count']} CPUs ({machine['cpu_model']}), torch {machine['torch']} with "
          f"{machine['torch_threads']} threads; 1-min load average before {load['before'][0]:.2f}, "
          f"after {load['after'][0]:.2f}")
    print(f"wrote {out / 'mining_speed.json'} and {out / 'mining_speed.png'}")
    return report


if __name__ == "__main__":
    main()
