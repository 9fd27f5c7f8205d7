"""Lotka–Volterra: a Bayesian posterior for the four log-rates of a predator–prey model, from 2000 runs.

1. simulate 2000 Gillespie runs (half at θ ~ U(−5, 2)⁴, half at θ_ref = log(0.01, 0.5, 1, 0.01)) in
   two processes; runs whose event count overflows have NaN x and are left out of training;
2. train npe (a flow on the posterior q(θ|x)) and nle (a flow on the likelihood p̂(x|θ));
3. observe one data set at θ_ref: x = 9 summary statistics of the two populations;
4. the posterior: npe samples it directly, nle through MCMC on prior × p̂(x|θ) (with R-hat and
   effective sample sizes); a corner plot of both with the truth, and their means and stds;
5. the 95% Wilks confidence region of nle's likelihood, and whether the true θ lies inside.

There is no exact likelihood for this simulator, so nothing here is compared with the truth beyond
where the true θ falls: judge the posteriors by their agreement, the MCMC diagnostics and, at
larger budgets, by calibration (gm.inference.expected_coverage).

Run as `python examples/lotka_volterra_posterior.py [--quick] [--out DIR]`: about two minutes on two
cores (with numba, `pip install 'goldmine[fast]'`, simulating takes seconds; without it the torch engine
manages 10–60 runs per second per core; training and MCMC take the rest);
under 20 s with --quick (200 runs, 5 epochs, short chains: a smoke test whose numbers mean little).
"""

import argparse
import time
from pathlib import Path

import torch

import goldmine as gm
import goldmine.plots  # gm.plots: not imported by `import goldmine`

LABELS = ("log c₀ predator birth", "log c₁ predator death", "log c₂ prey birth", "log c₃ prey eaten")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 200 runs, 5 epochs, short chains")
    parser.add_argument("--out", default=Path(__file__).parent / "lotka_volterra_posterior-output", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)  # small networks: a second thread only waits on a shared machine
    start = time.perf_counter()
    # simulations come in blocks of 1000 runs, one per process: 200 runs keep a single process busy
    runs, workers, epochs, warmup, steps = (200, 1, 5, 100, 100) if args.quick else (2000, 2, 100, 1000, 2000)
    args.out.mkdir(parents=True, exist_ok=True)

    # 1. simulate: the worker processes re-import this file, hence main() and the __name__ guard below
    sim = gm.simulators.LotkaVolterra()
    path = args.out / "lotka_volterra.h5"
    path.unlink(missing_ok=True)
    data = gm.simulate(sim, runs, path, seed=0, workers=workers, progress=False)
    print(f"{data}\nsimulated in {time.perf_counter() - start:.0f} s; {data.invalid_rows} runs overflowed "
          "(NaN x) and are left out of training")

    # 2. two surrogates from the same runs (npe reads the runs at θ ~ prior, nle every run)
    training = {"epochs": epochs, "lr": 1e-3, "batch_size": 64, "seed": 0, "progress": False}
    npe = gm.PosteriorEstimator("npe", prior=sim, **training).fit(data)
    nle = gm.LikelihoodEstimator("nle", **training).fit(data)

    # 3. one observed data set at θ_ref; the first of a few runs whose x is finite (no overflow)
    runs_at_ref = sim.sample(sim.reference.expand(5, 4), generator=torch.Generator().manual_seed(1)).x
    x_obs = runs_at_ref[torch.isfinite(runs_at_ref).all(1)][:1]

    # 4. posteriors: npe directly, nle by adaptive Metropolis with convergence diagnostics
    post_npe = gm.inference.posterior(npe, x_obs)
    post_nle = gm.inference.posterior(gm.inference.Model(nle, prior=sim), x_obs, chains=32, warmup=warmup,
                                      steps=steps, progress=False)
    print(f"\n{post_npe.summary()}\n\n{post_nle.summary()}")
    samples = {"npe": post_npe.samples, "nle + MCMC": post_nle.samples}
    plot = gm.plots.corner(samples, truth=sim.reference, labels=LABELS, path=args.out / "lotka_volterra_corner.png")

    print("\nposterior mean ± std given one observation at θ_ref (prior U(−5, 2): mean −1.5, std 2.02)")
    print(f"{'parameter':>22} {'truth':>7} " + " ".join(f"{name:>17}" for name in samples))
    for j, label in enumerate(LABELS):
        cells = " ".join(f"{f'{s[:, j].mean():.2f} ± {s[:, j].std():.2f}':>17}" for s in samples.values())
        print(f"{label:>22} {sim.reference[j]:>7.2f} {cells}")
    # 5. a frequentist answer from the same surrogate: the 95% Wilks region of nle on a 7⁴ grid over the prior box
    region = gm.inference.confidence_region(gm.inference.Model(nle, prior=sim), x_obs, 0.95, "wilks", progress=False)
    print(f"\n{region.summary(sim.reference)}\n  {float(region.inside.double().mean()):.1%} of the prior box is inside")
    print(f"\nplot: {plot}\ndata: {path}\nfinished in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
