"""Posterior quality against the budget: goldmine's npe and sbi's NPE, judged by C2ST to the exact posterior.

For each budget N (simulator runs), a Weinberg data set of N runs is simulated (`goldmine.simulate`,
half at θ ~ prior, half at θ_ref). NPE learns p(θ|x) only from pairs with θ ~ prior, so both methods
train on the N/2 label-0 pairs: goldmine's `PosteriorEstimator("npe")` selects them itself, sbi's
NPE_C (`benchmarks/peers.py`, default MAF, early stopping) gets `data.tensors(["theta", "x"], label=0)`.

The quality of q(θ|x_obs) is the classifier two-sample test (`goldmine.evaluate.c2st`) between 1000
draws of q and 1000 draws of the exact posterior (`goldmine.evaluate.grid_posterior_samples`, a
200 × 200 grid over the prior's box), averaged over three fixed observations, each one simulator run
at θ = (42, 0.7), (45, 1.0), (48, 0.9). C2ST is 0.5 for a perfect posterior and 1 for a useless one.

Even two exact samples do not give exactly 0.5: the noise floor is measured once, as the C2ST of two
independent exact samples of 1000 draws, for each observation and 5 seeds. The issue's target,
recorded as targets.npe_vs_sbi_npe.met in the JSON:

    npe_vs_sbi_npe   at every budget both ran, the mean C2ST of npe ≤ sbi NPE's + 2 × the standard
                     deviation of the noise floor's C2ST (null when no budget has both).

Usage:
    python benchmarks/posterior_c2st.py [--budgets N ...] [--seeds K] [--out DIR]

DIR/posterior_c2st.json is rewritten after every fit; a rerun into the same DIR skips the (budget,
seed, method) entries already finished there and retries failed ones. DIR/posterior_c2st.png plots
C2ST against the budget (mean over seeds, min–max band). torch runs on one thread.

References:
    Lopez-Paz, Oquab, "Revisiting classifier two-sample tests", ICLR 2017,
    https://arxiv.org/abs/1610.06545
    Lueckmann et al., "Benchmarking simulation-based inference", AISTATS 2021,
    https://arxiv.org/abs/2101.04653 (C2ST against reference posteriors)
    Greenberg, Nonnenmacher, Macke, "Automatic posterior transformation for likelihood-free
    inference", ICML 2019, https://arxiv.org/abs/1905.07488 (sbi's NPE_C)
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import goldmine as gm  # noqa: E402
from goldmine.evaluate import c2st, grid_posterior_samples  # noqa: E402
from mining_speed import machine_info  # noqa: E402
from peers import sbi_npe  # noqa: E402
from sample_efficiency import write  # noqa: E402

METHODS = ("npe", "sbi_npe")
BUDGETS = (1_000, 3_162, 10_000)
THETA_OBS = ((42.0, 0.7), (45.0, 1.0), (48.0, 0.9))
OBS_SEED = 20_240_404  # the generator of the observations
EXACT_SEED = 1_000  # exact draws of observation i use seed EXACT_SEED + i
SAMPLE_SEED = 7  # the methods' posterior draws
DRAWS = 1_000
FLOOR_SEEDS = 5


def even(n: float) -> int:
    return max(2, 2 * round(n / 2))


def key(e: dict) -> tuple:
    return (e["budget"], e["seed"], e["method"])


# -- the problem ------------------------------------------------------------------------------------


def observations(sim) -> torch.Tensor:
    """One simulator run at each θ of THETA_OBS, from a fixed generator: (3, 1)."""
    theta = torch.tensor(THETA_OBS, dtype=torch.float64)
    return sim.sample(theta, generator=torch.Generator().manual_seed(OBS_SEED)).x


def exact_samples(sim, x_obs: torch.Tensor, seed: int) -> list[torch.Tensor]:
    """DRAWS exact posterior draws per observation, the i-th with generator seed `seed + i`."""
    return [grid_posterior_samples(sim, x_obs[i : i + 1], DRAWS, generator=torch.Generator().manual_seed(seed + i))
            for i in range(len(x_obs))]


def noise_floor(sim, x_obs: torch.Tensor) -> dict:
    """C2ST of two independent exact samples, per observation and seed; its mean and standard deviation."""
    values = []
    for s in range(FLOOR_SEEDS):
        first = exact_samples(sim, x_obs, 10_000 + 100 * s)
        second = exact_samples(sim, x_obs, 20_000 + 100 * s)
        values.append([c2st(p, q, seed=0) for p, q in zip(first, second)])
    flat = [v for row in values for v in row]
    return dict(c2st=values, mean=statistics.mean(flat), std=statistics.stdev(flat),
                mean_over_observations_std=statistics.stdev(statistics.mean(row) for row in values),
                seeds=FLOOR_SEEDS, draws=DRAWS)


# -- the methods ------------------------------------------------------------------------------------


def fit_and_sample(method: str, sim, data, x_obs: torch.Tensor, seed: int, budget: int) -> dict:
    """Fits `method` on the data set; returns DRAWS posterior draws per observation and the fit's facts."""
    box = sim.prior.base_dist
    low, high = box.low.tolist(), box.high.tolist()
    if method == "npe":
        est = gm.PosteriorEstimator("npe", prior=(low, high), seed=seed, progress=False)  # default settings
        start = time.perf_counter()
        est.fit(data)
        seconds = time.perf_counter() - start
        draws, acceptance = [], []
        for i in range(len(x_obs)):
            draws.append(est.sample(x_obs[i], DRAWS, generator=torch.Generator().manual_seed(SAMPLE_SEED + i)))
            acceptance.append(est.acceptance_)
        return dict(draws=draws, fit_seconds=seconds, epochs=len(est.history_["train_loss"]), acceptance=acceptance)
    if method == "sbi_npe":
        rows = data.tensors(["theta", "x"], label=0)
        start = time.perf_counter()
        sample = sbi_npe(rows["theta"], rows["x"], low, high, seed=seed)
        seconds = time.perf_counter() - start
        draws = sample(x_obs, DRAWS, seed=SAMPLE_SEED)  # (DRAWS, 3, 2)
        return dict(draws=[draws[:, i] for i in range(len(x_obs))], fit_seconds=seconds, epochs=int(sample.epochs))
    raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}.")


# -- running ----------------------------------------------------------------------------------------


def run(config: dict, out: Path, log=print) -> dict:
    """Fits every (budget, seed, method) not yet in out/posterior_c2st.json; returns the results."""
    path = out / "posterior_c2st.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    entries = [e for e in results.get("entries", []) if "c2st" in e]  # failed fits are retried
    done = {key(e) for e in entries}
    sim = gm.simulators.Weinberg()
    x_obs = observations(sim)
    config = dict(config, x_obs=x_obs[:, 0].tolist())
    results.update(config=config, machine=machine_info(), entries=entries)
    exact = exact_samples(sim, x_obs, EXACT_SEED)
    if results.get("noise_floor", {}).get("seeds") != FLOOR_SEEDS:
        start = time.perf_counter()
        results["noise_floor"] = noise_floor(sim, x_obs)
        results["noise_floor"]["seconds"] = time.perf_counter() - start
        log(f"noise floor: C2ST of two exact samples {results['noise_floor']['mean']:.4f} "
            f"± {results['noise_floor']['std']:.4f} (sd)", flush=True)
    summarize(results)
    write(results, path)
    with tempfile.TemporaryDirectory() as tmp:
        for budget in config["budgets"]:
            for seed in range(config["seeds"]):
                todo = [m for m in config["methods"] if (budget, seed, m) not in done]
                if not todo:
                    continue
                start = time.perf_counter()
                data = gm.simulate(sim, budget, Path(tmp) / f"weinberg_{budget}_{seed}.h5", seed=seed, progress=False)
                sim_seconds = time.perf_counter() - start
                for method in todo:
                    entry = dict(budget=budget, seed=seed, method=method, train_pairs=budget // 2,
                                 simulate_seconds=sim_seconds)
                    try:
                        fit = fit_and_sample(method, sim, data, x_obs, seed, budget)
                        entry.update({k: v for k, v in fit.items() if k != "draws"})
                        entry["c2st_per_observation"] = [c2st(q, p, seed=0) for q, p in zip(fit["draws"], exact)]
                        entry["c2st"] = statistics.mean(entry["c2st_per_observation"])
                    except Exception as err:  # one failing fit must not end a long run
                        entry["failed"] = f"{type(err).__name__}: {err}"
                        entry["traceback"] = traceback.format_exc()
                    entry["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
                    results["entries"] = [e for e in results["entries"] if key(e) != key(entry)] + [entry]
                    summarize(results)
                    write(results, path)
                    log(line(entry), flush=True)
    return results


def line(e: dict) -> str:
    head = f"{e['budget']:>7} {e['seed']:>4} {e['method']:>8}"
    if "failed" in e:
        return f"{head}  FAILED {e['failed']}"
    per = " ".join(f"{v:.3f}" for v in e["c2st_per_observation"])
    return f"{head} {e['epochs']:>6} {e['fit_seconds']:>8.1f} {e['c2st']:>7.4f}  ({per})"


# -- analysis ---------------------------------------------------------------------------------------


def selected(results: dict) -> list[dict]:
    c = results["config"]
    return [e for e in results["entries"] if "c2st" in e and e["budget"] in c["budgets"] and e["seed"] < c["seeds"]
            and e["method"] in c["methods"]]


def curves(entries: list[dict]) -> dict:
    """{method: {budget: {"mean", "min", "max", "seeds", "fit_seconds", "epochs"}}} over finished fits."""
    grouped: dict = {}
    for e in entries:
        grouped.setdefault(e["method"], {}).setdefault(e["budget"], []).append(e)
    out: dict = {}
    for method, budgets in grouped.items():
        for budget, es in sorted(budgets.items()):
            values = [e["c2st"] for e in es]
            out.setdefault(method, {})[budget] = dict(
                mean=statistics.mean(values), min=min(values), max=max(values), seeds=len(values),
                fit_seconds=statistics.mean(e["fit_seconds"] for e in es),
                epochs=statistics.mean(e["epochs"] for e in es))
    return out


def targets(table: dict, floor: dict) -> dict:
    tolerance = 2.0 * floor["std"]
    checks = {}
    if "npe" in table and "sbi_npe" in table:
        for n in sorted(set(table["npe"]) & set(table["sbi_npe"])):
            ours, theirs = table["npe"][n]["mean"], table["sbi_npe"][n]["mean"]
            checks[str(n)] = dict(npe=ours, sbi_npe=theirs, difference=ours - theirs, met=ours <= theirs + tolerance)
    met = all(c["met"] for c in checks.values()) if checks else None
    return {"npe_vs_sbi_npe": dict(
        description="mean C2ST of npe <= sbi NPE's + tolerance at every budget both ran (Weinberg, 3 observations)",
        tolerance=tolerance, tolerance_rule="2 × the standard deviation of the noise floor's C2ST",
        met=met, checks=checks)}


def summarize(results: dict) -> None:
    table = curves(selected(results))
    results["curves"] = {m: {str(b): v for b, v in c.items()} for m, c in table.items()}
    results["targets"] = targets(table, results["noise_floor"])


# -- reporting --------------------------------------------------------------------------------------


def report(results: dict) -> str:
    table = curves(selected(results))
    floor = results["noise_floor"]
    budgets = sorted({b for c in table.values() for b in c})
    out = ["\nWeinberg: C2ST against the exact posterior, mean over 3 observations; mean over seeds [min, max] "
           "(epochs, fit seconds)"]
    out.append(f"{'method':>8} " + " ".join(f"{b:>30,}" for b in budgets))
    for method in [m for m in METHODS if m in table]:
        cells = []
        for b in budgets:
            s = table[method].get(b)
            cells.append(f"{'-':>30}" if s is None else
                         f"{s['mean']:.3f} [{s['min']:.3f}, {s['max']:.3f}] ({s['epochs']:.0f}, {s['fit_seconds']:.0f}s)"
                         .rjust(30))
        out.append(f"{method:>8} " + " ".join(cells))
    for e in results["entries"]:
        if "failed" in e:
            out.append(f"FAILED {e['budget']} seed {e['seed']} {e['method']}: {e['failed']}")
    out.append(f"noise floor (two exact samples of {floor['draws']}): C2ST {floor['mean']:.4f}, sd {floor['std']:.4f}")
    t = results["targets"]["npe_vs_sbi_npe"]
    verdict = {True: "MET", False: "NOT MET", None: "undecided (no budget with both methods)"}[t["met"]]
    out.append(f"target npe_vs_sbi_npe ({t['description']}, tolerance {t['tolerance']:.4f}): {verdict}")
    for n, c in t["checks"].items():
        out.append(f"    N = {int(n):,}: npe {c['npe']:.4f} vs sbi NPE {c['sbi_npe']:.4f}: "
                   f"{'met' if c['met'] else 'not met'}")
    return "\n".join(out)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = curves(selected(results))
    if not table:
        return
    floor = results["noise_floor"]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for method in [m for m in METHODS if m in table]:
        c = table[method]
        b = sorted(c)
        style = dict(ls="--") if method == "sbi_npe" else {}
        label = {"npe": "goldmine npe", "sbi_npe": "sbi NPE_C"}[method]
        (ln,) = ax.plot(b, [c[n]["mean"] for n in b], marker="o", ms=4, label=label, **style)
        ax.fill_between(b, [c[n]["min"] for n in b], [c[n]["max"] for n in b], color=ln.get_color(), alpha=0.15)
    ax.axhline(0.5, color="k", lw=1, label="0.5 (perfect)")
    ax.axhspan(floor["mean"] - floor["std"], floor["mean"] + floor["std"], color="grey", alpha=0.2,
               label="noise floor (two exact samples, ± sd)")
    ax.set_xscale("log")
    ax.set_xlabel("simulator runs N (NPE trains on the N/2 drawn at θ ~ prior)")
    ax.set_ylabel("C2ST against the exact posterior")
    ax.set_title("Weinberg posterior quality (mean of 3 observations;\nmean over seeds, band min–max; "
                 f"torch {torch.__version__}, 1 thread)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- main -------------------------------------------------------------------------------------------


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS), help="simulator runs (made even)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0 .. K-1 per budget (data and training)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    torch.set_num_threads(1)  # comparable timings; a thread pool on a shared machine mostly waits
    config = dict(simulator="weinberg", budgets=sorted({even(b) for b in args.budgets}), seeds=args.seeds,
                  methods=list(args.methods), theta_obs=[list(t) for t in THETA_OBS], draws=DRAWS,
                  training="goldmine's defaults (PosteriorEstimator with only prior and seed set)")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"posterior C2ST: weinberg, budgets {config['budgets']}, {config['seeds']} seed(s), methods "
          f"{' '.join(config['methods'])}; torch threads {torch.get_num_threads()}")
    print(f"{'budget':>7} {'seed':>4} {'method':>8} {'epochs':>6} {'fit [s]':>8} {'C2ST':>7}  (per observation)")
    start = time.perf_counter()
    results = run(config, args.out)
    plot(results, args.out / "posterior_c2st.png")
    print(report(results))
    print(f"\nwall time {time.perf_counter() - start:.0f} s; wrote {args.out / 'posterior_c2st.json'} and "
          f"{args.out / 'posterior_c2st.png'}")
    return results


if __name__ == "__main__":
    main()
