"""Weinberg: a two-dimensional limit on (E, G_f) from 200 measured muon angles, with gold and against the truth.

1. simulate and mine 10⁴ Weinberg runs (half at θ ~ prior, half at θ_ref = (42, 0.9));
2. train alices (a ratio network on joint ratios and scores) and scandal (a flow on the likelihood
   with the score term), and measure both against the exact likelihood ratio;
3. 200 observations at θ_true = (43, 0.8): the 68% and 95% Wilks regions from the exact likelihood
   and both surrogates, and their contours in one plot;
4. the expected (Asimov) 95% region at θ_true, its area relative to the exact one;
5. the coverage of the best surrogate's 95% region at θ_true from toy data sets: Neyman (thresholds
   calibrated by toys, so 95% by construction) and Wilks (χ²₂ thresholds; since only one direction
   of θ is measured, q follows χ²₁ and even the exact likelihood covers P(χ²₁ ≤ 5.99) = 98.6%).

The data identify only the asymmetry A(θ) = 2·tanh((2E − 90)/90 · 10)·G_f, so every region is a
band along a curve of constant A rather than an ellipse, and θ̂ is one point of its ridge.

Run as `python examples/weinberg_limits.py [--quick] [--out DIR]`: about two minutes on two cores,
about 20 s with --quick (2000 runs, 5 epochs, 20 toys: a smoke test whose numbers mean little).
"""

import argparse
import time
from pathlib import Path

import torch

import goldmine as gm
import goldmine.plots  # gm.plots: not imported by `import goldmine`
from goldmine.simulators.weinberg import asymmetry

THETA_TRUE, N_OBS = torch.tensor([43.0, 0.8], dtype=torch.float64), 200


def asymmetry_at(theta) -> float:
    """A(θ) at one point θ = (E, G_f): the one combination of θ that the angle depends on."""
    return asymmetry(torch.as_tensor(theta, dtype=torch.float64).reshape(1, 2))[0].item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2000 runs, 5 epochs, 20 toys")
    parser.add_argument("--out", default=Path(__file__).parent / "weinberg_limits-output", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)  # small networks: a second thread only waits on a shared machine
    start = time.perf_counter()
    runs, epochs, toys, grid, toy_grid = (2000, 5, 20, 15, 11) if args.quick else (10_000, 30, 100, 41, 21)
    args.out.mkdir(parents=True, exist_ok=True)

    # 1. simulate and mine
    sim = gm.simulators.Weinberg()
    path = args.out / "weinberg.h5"
    path.unlink(missing_ok=True)
    data = gm.simulate(sim, runs, path, seed=0, progress=False)
    print(data.summary())

    # 2. two gold surrogates and their errors against the exact ratio, E_θ E_x~p(x|θ) (log r̂ − log r)²
    training = {"epochs": epochs, "lr": 2e-3, "batch_size": 128, "seed": 0, "progress": False}
    surrogates = {
        "alices": gm.RatioEstimator("alices", alpha=1.0, hidden=(64, 64), **training).fit(data),
        "scandal": gm.LikelihoodEstimator("scandal", alpha=1.0, **training).fit(data),
    }
    errors = {name: gm.evaluate.log_ratio_error(est, sim)["mse"] for name, est in surrogates.items()}

    # 3. and 4. observed regions and the expected (Asimov) one, the same code for the truth and the surrogates
    x_obs = sim.sample(THETA_TRUE.expand(N_OBS, 2), generator=torch.Generator().manual_seed(1)).x
    models = {name: gm.inference.Model(source, prior=sim) for name, source in {"exact": sim, **surrogates}.items()}
    regions = {name: [gm.inference.confidence_region(model, x_obs, level, grid=grid) for level in (0.68, 0.95)]
               for name, model in models.items()}
    expected = {name: gm.inference.expected_limits(model, THETA_TRUE, N_OBS, level=0.95, grid=grid)
                for name, model in models.items()}
    plot = gm.plots.contours_2d(regions["exact"][0].grid, {name: r95.q for name, (_, r95) in regions.items()},
                                truth=THETA_TRUE, labels=("beam energy E [GeV]", "Fermi constant G_f"),
                                path=args.out / "weinberg_regions.png")

    print(f"\n{runs:,} runs; {N_OBS} observations at θ_true = {THETA_TRUE.tolist()}, A(θ_true) = "
          f"{asymmetry_at(THETA_TRUE):.3f}; areas in GeV × G_f units, relative to the exact likelihood's")
    print("x depends on θ only through A(θ): the regions are bands along curves of constant A, θ̂ one point of "
          "their ridge")
    print(f"{'surrogate':>9} {'error':>8} {'θ̂':>15} {'A(θ̂)':>7} {'68% area':>9} {'95% area':>9} "
          f"{'95% / exact':>11} {'truth in 95%':>12} {'Asimov 95% / exact':>18}")
    for name, (r68, r95) in regions.items():
        e = f"{errors[name]:.5f}" if name in errors else "—"
        fit = r95.mle.theta
        inside = "yes" if r95.contains(THETA_TRUE[None]).item() else "no"
        print(f"{name:>9} {e:>8} {f'({fit[0]:.2f}, {fit[1]:.3f})':>15} {asymmetry_at(fit):>7.3f} {r68.size:>9.3f} "
              f"{r95.size:>9.3f} {r95.size / regions['exact'][1].size:>11.2f} {inside:>12} "
              f"{expected[name].size / expected['exact'].size:>18.2f}")

    # 5. coverage of the surrogate whose expected region comes closest to the exact one
    best = min(surrogates, key=lambda name: abs(expected[name].size / expected["exact"].size - 1))
    print(f"\ncoverage of {best}'s 95% region at θ_true ({toys} toy data sets of {N_OBS} observations, "
          f"{toy_grid}×{toy_grid} θ grid):")
    # one identified direction: q follows χ²₁, not χ²₂, and exact Wilks regions cover P(χ²₁ ≤ 5.99)
    for method, meaning in [("neyman", "thresholds from toys: 0.95 by construction, whatever the surrogate"),
                            ("wilks", "χ²₂ thresholds: 0.986 expected here, as only A(θ) is measured")]:
        c = gm.inference.coverage(models[best], THETA_TRUE, N_OBS, 0.95, method, toys=toys, grid=toy_grid)
        print(f"   {method:7s} {c['coverage']:.3f} ± {c['stderr']:.3f}   ({meaning})")
    print(f"\nplot: {plot}\ndata: {path}\nfinished in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
