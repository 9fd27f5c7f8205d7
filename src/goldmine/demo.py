"""`make demo`: the Galton-board study end to end, from a simulator to a limit, against the exact truth.

1. simulate and mine 10⁴ runs (half at θ ~ U(−1, 1), half at θ_ref = 0) for each of 3 data seeds,
   and check the gold identities;
2. train, with their default settings, carl (no gold), alice (gold: the joint ratio; what
   `gm.RatioEstimator()` trains on data with gold) and alices (the joint ratio and the joint score)
   on the runs of every seed: the same runs for every method;
3. measure them against the exact likelihood, E_θ Σ_x p(x|θ)(log r̂ − log r)², per seed and as the
   mean ± standard deviation over the seeds: gold against goldmine's own carl at equal runs;
4. 100 observations at θ_true = 0.3: the maximum-likelihood estimate and the 95% interval (Wilks
   and Neyman) from the exact likelihood and each surrogate of the first seed, through the same
   inference code;
5. print a table and the paths of the plots.

Run as `python -m goldmine.demo [--runs N] [--seeds K] [--workers W] [--out DIR]`; the fits run in
W = 2 processes by default; a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import goldmine as gm
from goldmine.evaluate import log_prob_and_score, log_ratio_error
from goldmine.executor import map_in_order
from goldmine.inference import Model, confidence_region
from goldmine.plots import gold_scores_per_slot, llr_curves

THETA_TRUE, N_OBS, LEVEL = 0.3, 100, 0.95
#: carl (no gold), the default gold method (alice) and the gold method with the joint score as well
METHODS = ("carl", "alice", "alices")


def fit_one(out: str, epochs: int | None, task: tuple[int, str]) -> tuple[float, float]:
    """Fits `method` with its default settings on the runs of data seed `seed` (in a worker), saves it to
    OUT/METHOD_seedS and returns (its error against the exact ratio, fit seconds)."""
    torch.set_num_threads(1)  # small networks: a second thread only waits on a shared machine
    seed, method = task
    sim = gm.simulators.GaltonBoard()
    start = time.perf_counter()
    est = estimator(method, epochs).fit(gm.Dataset(data_path(out, seed)))
    seconds = time.perf_counter() - start
    est.save(model_path(out, method, seed))
    return log_ratio_error(est, sim)["mse"], seconds


def estimator(method: str, epochs: int | None = None) -> gm.RatioEstimator:
    """The demo's unfitted estimator of `method`: its default settings, seed 0, and `epochs` when given (else the
    estimator's own default, the one place that says how long a fit trains)."""
    return gm.RatioEstimator(method, seed=0, progress=False, **({} if epochs is None else {"epochs": epochs}))


def data_path(out, seed: int) -> Path:
    return Path(out) / ("galton.h5" if seed == 0 else f"galton_seed{seed}.h5")


def model_path(out, method: str, seed: int) -> Path:
    return Path(out) / (method if seed == 0 else f"{method}_seed{seed}")


def arguments() -> argparse.ArgumentParser:
    """The demo's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="simulator runs to train on")
    parser.add_argument("--epochs", type=int, help=f"default: the estimators' own ({estimator('carl').trainer.epochs}); "
                        "fewer for a quick look")
    parser.add_argument("--seeds", type=int, default=3, help="data seeds 0..K-1 (each 'runs' runs)")
    parser.add_argument("--workers", type=int, default=2, help="processes that fit the estimators")
    parser.add_argument("--out", default="demo-output")
    return parser


def main(argv=None) -> dict:
    args = arguments().parse_args(argv)
    torch.set_num_threads(1)  # small networks: a second thread only waits on a shared machine
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sim = gm.simulators.GaltonBoard()
    start = time.perf_counter()

    seeds = list(range(args.seeds))
    print(f"1. simulate and mine {args.runs:,} Galton-board runs for each of the data seeds {seeds}")
    for seed in seeds:
        path = data_path(out, seed)
        path.unlink(missing_ok=True)
        data = gm.simulate(sim, args.runs, path, seed=seed, progress=False)
        if seed == 0:
            print(data.summary())
            print("   " + gm.check_gold(sim, data=data, verbose=False).summary())  # the full table: goldmine check galton
    path = data_path(out, 0)

    print(f"\n2. train {', '.join(METHODS)} with their default settings on the runs of every seed "
          f"({len(seeds) * len(METHODS)} fits in {args.workers} processes)")
    tasks = [(seed, method) for seed in seeds for method in METHODS]
    # list() runs the iterator to its end, which shuts the worker pool down cleanly (zip would stop one short)
    fitted = dict(zip(tasks, list(map_in_order(fit_one, tasks, (str(out), args.epochs), workers=args.workers,
                                               what="goldmine.demo"))))
    models = {method: gm.load(model_path(out, method, 0)) for method in METHODS}
    errors = {method: fitted[(0, method)][0] for method in METHODS}

    print("\n3. error against the exact likelihood ratio, E_θ Σ_x p(x|θ)(log r̂ − log r)², "
          f"{args.runs:,} runs per seed")
    summary = error_table(fitted, seeds)

    print(f"\n4. {N_OBS} observations at θ_true = {THETA_TRUE}: MLE and {LEVEL:.0%} intervals")
    x_obs = sim.sample(torch.full((N_OBS, 1), THETA_TRUE), generator=torch.Generator().manual_seed(7)).x
    rows, curves = [], {}
    for name, source in {"exact": sim, **models}.items():
        model = Model(source, prior=sim, simulator=sim)
        wilks = confidence_region(model, x_obs, LEVEL, "wilks")
        neyman = confidence_region(model, x_obs, LEVEL, "neyman", toys=1000, progress=False)
        curves[name] = wilks.q
        rows.append((name, errors.get(name), wilks.mle.theta.item(), wilks.interval, neyman.interval))
    figure = llr_curves(wilks.grid, curves, truth=THETA_TRUE, threshold=[3.84], path=out / "galton_llr.png")

    print(f"\n{'surrogate':>10} {'error':>8} {'θ̂':>8} {'95% Wilks interval':>22} {'95% Neyman interval':>22} "
          f"{'length / exact':>15}")
    exact_length = rows[0][3][1] - rows[0][3][0]
    for name, error, theta, w, n in rows:
        e = "—" if error is None else f"{error:.4f}"
        print(f"{name:>10} {e:>8} {theta:>8.3f} {f'[{w[0]:.3f}, {w[1]:.3f}]':>22} {f'[{n[0]:.3f}, {n[1]:.3f}]':>22} "
              f"{(w[1] - w[0]) / exact_length:>15.3f}")
    scores = plot_gold_scores(sim, out)
    print(f"\nplots: {figure}\n       {scores}\nmodels: {', '.join(str(out / m) for m in models)}; data: {path}")
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return {"errors": errors, "rows": rows, "seeds": summary}


def error_table(fitted: dict, seeds: list[int]) -> dict:
    """Prints the error of every method per data seed, the mean ± standard deviation over the seeds and
    the ratio of carl's mean error to each method's; returns {method: {"errors", "mean", "sd"}}."""
    summary = {}
    head = "".join(f"{f'seed {s}':>9}" for s in seeds)
    print(f"   {'method':8s}{head}   {'mean ± sd':>17}   carl's error / its")
    for method in METHODS:
        errors = torch.tensor([fitted[(s, method)][0] for s in seeds], dtype=torch.float64)
        sd = errors.std().item() if len(errors) > 1 else 0.0
        summary[method] = {"errors": errors.tolist(), "mean": errors.mean().item(), "sd": sd}
    for method, row in summary.items():
        cells = "".join(f"{e:9.4f}" for e in row["errors"])
        print(f"   {method:8s}{cells}   {row['mean']:8.4f} ± {row['sd']:.4f}   "
              f"{summary['carl']['mean'] / row['mean']:6.1f}×")
    seconds = {m: sum(fitted[(s, m)][1] for s in seeds) / len(seeds) for m in METHODS}
    print("   fit seconds per seed: " + ", ".join(f"{m} {t:.0f}" for m, t in seconds.items()))
    print("   (the same runs for every method; benchmarks/sample_efficiency.py measures every budget)")
    return summary


def plot_gold_scores(sim, out: Path) -> Path:
    """The joint scores of single runs scatter around the exact score of their slot: what rascal regresses on."""
    panels = []
    for value in (-0.5, 0.5):
        gold = gm.mine(sim, torch.full((20_000, 1), value), generator=torch.Generator().manual_seed(1))
        slots = torch.arange(32.0)[:, None]
        log_p, exact = log_prob_and_score(sim, slots, torch.full((32, 1), value))
        reachable = log_p.isfinite()
        panels.append({"theta": value, "x": gold.x[:, 0], "score": gold.score[:, 0],
                       "slots": torch.arange(32)[reachable], "exact": exact[reachable, 0]})
    return gold_scores_per_slot(panels, out / "galton_scores.png")


if __name__ == "__main__":
    main()
