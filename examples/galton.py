"""Galton board: the sample-efficiency story in miniature, from 5000 simulator runs to a limit.

1. simulate and mine 5000 Galton-board runs (half at θ ~ U(−1, 1), half at θ_ref = 0);
2. train carl (no gold), alices (joint ratio + joint score) and the histogram baseline on the same runs;
3. measure each against the exact likelihood ratio: E_θ Σ_x p(x|θ)(log r̂ − log r)²;
4. 50 observations at θ_true = 0.3: the MLE and the 68% / 95% Wilks intervals from the exact
   likelihood and every surrogate, and their −2 Δlog L curves in one plot;
5. the Cramér–Rao bound from the exact Fisher information against the exact 68% half-widths, observed
   and expected (Asimov).

Run as `python examples/galton.py [--quick] [--out DIR]`: about 20 s on two cores, under 10 s
with --quick (1000 runs, 5 epochs: a smoke test whose numbers mean little).
"""

import argparse
import time
from pathlib import Path

import torch

import goldmine as gm
import goldmine.plots  # gm.plots: not imported by `import goldmine`

THETA_TRUE, N_OBS = 0.3, 50


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1000 runs, 5 epochs")
    parser.add_argument("--out", default=Path(__file__).parent / "galton-output", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)  # small networks: a second thread only waits on a shared machine
    start = time.perf_counter()
    runs, epochs = (1000, 5) if args.quick else (5000, 50)
    args.out.mkdir(parents=True, exist_ok=True)

    # 1. simulate and mine: every run stores x, the joint log-ratio log r(x,z|θ,θ_ref) and the joint score
    sim = gm.simulators.GaltonBoard()
    path = args.out / "galton.h5"
    path.unlink(missing_ok=True)
    data = gm.simulate(sim, runs, path, seed=0, progress=False)
    print(data.summary())

    # 2. three surrogates of log r(x|θ, θ_ref) from the same runs
    training = {"epochs": epochs, "hidden": (64, 64), "lr": 2e-3, "batch_size": 128, "seed": 0, "progress": False}
    surrogates = {
        "carl": gm.RatioEstimator("carl", **training).fit(data),
        "alices": gm.RatioEstimator("alices", alpha=1.0, **training).fit(data),
        "histogram": gm.HistogramRatio(theta_bins=20).fit(data),
    }

    # 3. errors against the exact likelihood ratio (the simulator knows p(x|θ) by dynamic programming)
    errors = {name: gm.evaluate.log_ratio_error(est, sim)["mse"] for name, est in surrogates.items()}

    # 4. MLE and Wilks intervals from 50 observations, the same code for the truth and every surrogate
    x_obs = sim.sample(torch.full((N_OBS, 1), THETA_TRUE), generator=torch.Generator().manual_seed(1)).x
    regions = {}  # name → (68% region, 95% region)
    for name, source in {"exact": sim, **surrogates}.items():
        model = gm.inference.Model(source, prior=sim)
        regions[name] = [gm.inference.confidence_region(model, x_obs, level) for level in (0.68, 0.95)]
    curves = {name: r95.q for name, (_, r95) in regions.items()}
    plot = gm.plots.llr_curves(regions["exact"][1].grid, curves, truth=THETA_TRUE, threshold=[1.0, 3.84],
                              path=args.out / "galton_llr.png")

    # 5. the Cramér–Rao bound: no unbiased estimator from 50 observations beats 1/√(50·I(θ))
    fisher = gm.inference.fisher_information(sim, [THETA_TRUE])  # per observation
    bound = gm.inference.cramer_rao(fisher, n_obs=N_OBS, center=[THETA_TRUE])
    asimov = gm.inference.expected_limits(sim, [THETA_TRUE], n_obs=N_OBS, level=0.68)  # the median data set's interval

    print(f"\n{runs} runs; {N_OBS} observations at θ_true = {THETA_TRUE}")
    print(f"{'surrogate':>10} {'error':>8} {'θ̂':>7} {'68% Wilks interval':>20} {'95% Wilks interval':>20} "
          f"{'95% length / exact':>19}")
    exact_68, exact_95 = regions["exact"]
    for name, (r68, r95) in regions.items():
        e = f"{errors[name]:.4f}" if name in errors else "—"
        # an interval of several pieces (q dips below the threshold more than once) is marked with *
        i68, i95 = (f"[{r.interval[0]:.3f}, {r.interval[1]:.3f}]" + "*" * (len(r.segments) > 1) for r in (r68, r95))
        print(f"{name:>10} {e:>8} {r95.mle.theta.item():>7.3f} {i68:>20} {i95:>20} {r95.size / exact_95.size:>19.2f}")
    print("   * several pieces: their span is shown, their total length compared")
    print(f"\nexact Fisher information I(θ_true) = {fisher.item():.3f} per observation; Cramér–Rao bound on the "
          f"std of θ̂ from {N_OBS} observations: {bound.std.item():.4f}")
    print("68% half-widths of the exact likelihood (≈ the bound for a Gaussian likelihood and an efficient MLE):")
    for what, region in [("these observations", exact_68), ("expected (Asimov data at θ_true)", asimov)]:
        print(f"   {what:34s} {region.size / 2:.4f}  ({region.size / 2 / bound.std.item():.2f} × the bound)")
    print(f"\nplot: {plot}\ndata: {path}\nfinished in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
