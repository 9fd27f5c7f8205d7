"""`make demo`: the Galton-board study end to end, from a simulator to a limit, against the exact truth.

1. simulate and mine 10⁴ runs (half at θ ~ U(−1, 1), half at θ_ref = 0) and check the gold identities;
2. train carl (no gold), rascal and alices (gold: joint ratio and joint score) on them;
3. measure both against the exact likelihood: E_θ Σ_x p(x|θ)(log r̂ − log r)²;
4. 100 observations at θ_true = 0.3: the maximum-likelihood estimate and the 95% interval (Wilks
   and Neyman) from the exact likelihood and each surrogate, through the same inference code;
5. print a table and the paths of the plots.

Run as `python -m goldmine.demo [--runs N] [--out DIR]`; about two minutes on two cores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import goldmine as gm
from goldmine.evaluate import log_prob_and_score, log_ratio_error
from goldmine.inference import Model, confidence_region
from goldmine.plots import gold_scores_per_slot, llr_curves

THETA_TRUE, N_OBS, LEVEL = 0.3, 100, 0.95


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="simulator runs to train on")
    parser.add_argument("--epochs", type=int, default=50, help="the Trainer's default; fewer for a quick look")
    parser.add_argument("--out", default="demo-output")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small networks: a second thread only waits on a shared machine
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sim = gm.simulators.GaltonBoard()
    start = time.perf_counter()

    print(f"1. simulate and mine {args.runs:,} Galton-board runs")
    path = out / "galton.h5"
    path.unlink(missing_ok=True)
    data = gm.simulate(sim, args.runs, path, seed=0)
    print(data.summary())
    print("   " + gm.check_gold(sim, data=data, verbose=False).summary())  # the full table: goldmine check galton

    print("\n2. train carl (no gold), rascal and alices (joint ratio + joint score)")
    models = {}
    for method in ("carl", "rascal", "alices"):
        est = gm.RatioEstimator(method, epochs=args.epochs, seed=0).fit(data)  # the default settings
        est.save(out / method)
        models[method] = est

    print("\n3. error against the exact likelihood ratio, E_θ Σ_x p(x|θ)(log r̂ − log r)²")
    errors = {method: log_ratio_error(est, sim)["mse"] for method, est in models.items()}
    for method, error in errors.items():
        print(f"   {method:7s} {error:.4f}")
    print("   (single fits scatter 2-5x with the data's seed; benchmarks/sample_efficiency.py averages seeds)")

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
    return {"errors": errors, "rows": rows}


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
