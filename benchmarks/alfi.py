"""ALFI against the exact maximum-likelihood estimate, rascal + MLE and SMC-ABC (Poisson, Weinberg).

For each simulator an ALFI machine (`goldmine.estimators.alfi.ALFI`) is meta-trained on problems
θ* ~ prior with n = 100 observed runs each; its cost is recorded in simulator runs and wall time.
Then 100 held-out problems (θ* ~ prior, n = 100 runs at θ*, from a generator that meta-training
never used) are solved by:

    alfi      the machine's final proposal mean μ_T; T·K·M simulator runs per problem
    mle       the exact maximum-likelihood estimate, `gm.inference.mle(sim, x_obs)` (no simulations)
    rascal    `gm.RatioEstimator("rascal")` trained on `gm.simulate(sim, N)` with N = T·K·M, the
              runs ALFI spends on one problem (one data set serves every problem), then
              `gm.inference.mle(est, x_obs, prior=sim)`
    smc_abc   `gm.inference.abc.smc_abc(sim, x_obs, budget=T·K·M)`, the weighted mean of the
              particles; each proposal simulates a set of n runs, so the budget buys T·K·M / n
              proposals

The error of an estimate is its squared distance to θ*, per θ component in units of the prior's
standard deviation and summed over the components (for Poisson, the squared error over 3.85, the
prior's variance); the JSON also holds the raw squared errors per component. The issue's target:

    alfi_vs_mle   ALFI's mean error over the problems ≤ 2 × the exact MLE's, on each simulator,
                  with ≤ 10⁴ simulator runs per problem at inference time.

Usage:
    python benchmarks/alfi.py [--simulators poisson weinberg] [--problems 100] [--out DIR] [--quick]
    python benchmarks/alfi.py --replot [--out DIR]     # redraw the PNG from the JSON

Writes DIR/alfi.json and DIR/alfi.png (the mean error of μ_t against the step t beside the other
methods' errors, and Weinberg trajectories over the exact log-likelihood contours). torch runs on
one thread.

References:
    Pesah, Wehenkel, Louppe, "Recurrent machines for likelihood-free inference",
    https://arxiv.org/abs/1811.12932
    Brehmer, Louppe, Pavez, Cranmer, PNAS 117 (2020) 5242, https://arxiv.org/abs/1805.12244 (rascal)
    Beaumont, Cornuet, Marin, Robert, Biometrika 96 (2009) 983, https://arxiv.org/abs/0805.2256 (SMC-ABC)
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mining_speed import machine_info
from sample_efficiency import write

import goldmine as gm
from goldmine.estimators.alfi import ALFI
from goldmine.simulators.base import draw_prior

N_OBS = 100
PROBLEMS = 100
TEST_SEED = 20_251_122  # the held-out problems; meta-training draws from the machine's own seed
#: the paper's machine (hidden 50, encodings 60, GRU state 40, T = 15, K = 8, M = 64) with σ_0 = 1
#: from the prior's mean, a bound of 0.3 and a shorter meta-training (5 passes over 2000 problems)
ALFI_SETTINGS = {"n_obs": N_OBS, "problems": 2000, "epochs": 5, "lr": 1e-3, "init": "mean", "bound": 0.3,
                 "validation": 0.05, "seed": 0}
QUICK = {"problems": 300, "epochs": 2}
RASCAL_SETTINGS = {"alpha": 1.0, "hidden": (64, 64), "epochs": 50, "batch_size": 128, "lr": 2e-3, "seed": 0}
TARGET_FACTOR, TARGET_CALLS = 2.0, 10_000
TRAJECTORIES = 4  # Weinberg problems drawn over their log-likelihood contours


def held_out(sim, problems: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """θ* (P, d) from the prior and x_obs (P, n, x_dim), n runs at each θ*."""
    g = torch.Generator().manual_seed(seed)
    theta = draw_prior(sim.prior, problems, seed=seed)
    x = sim.sample(theta.repeat_interleave(n, dim=0), generator=g).x
    return theta, x.reshape(problems, n, sim.x_dim)


def prior_std(sim) -> torch.Tensor:
    return sim.prior.stddev.to(torch.float64).reshape(-1)


def errors(estimates: torch.Tensor, theta: torch.Tensor, std: torch.Tensor) -> dict:
    """The mean error (squared distance in prior standard deviations) with its standard error, and the
    raw mean squared error per component."""
    per_problem = (((estimates - theta) / std) ** 2).sum(1)
    return {
        "error": float(per_problem.mean()),
        "standard_error": float(per_problem.std() / math.sqrt(len(per_problem))),
        "mse_per_component": ((estimates - theta) ** 2).mean(0).tolist(),
    }


def run_alfi(sim, theta, x, settings: dict) -> dict:
    start = time.perf_counter()
    machine = ALFI(**settings).fit(sim)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = machine.infer(x, seed=1)
    std = prior_std(sim)
    step_errors = (((result.mu - theta[:, None]) / std) ** 2).sum(-1)  # (P, T + 1)
    return {
        "estimates": result.theta,
        "mu": result.mu,
        "fit_seconds": fit_seconds,
        "inference_seconds": time.perf_counter() - start,
        "meta_training_simulator_calls": machine.history_["simulator_calls"],
        "calls_per_problem": result.simulator_calls,
        "epochs": len(machine.history_["train_loss"]),
        "val_loss": machine.history_["val_loss"],
        "error_per_step": step_errors.mean(0).tolist(),
        "final_sigma_mean": result.sigma.mean(0).tolist(),
        "settings": machine.params | machine.training,
    }


def run_mle(model, x, **kwargs) -> torch.Tensor:
    """One refinement from the best grid point: 100 observations give a single maximum or, for
    Weinberg, a ridge of equal maxima, where more starts would not change the error."""
    return torch.stack([gm.inference.mle(model, xi, starts=1, **kwargs).theta.reshape(-1) for xi in x])


def run_rascal(sim, x, budget: int, folder: Path) -> dict:
    start = time.perf_counter()
    data = gm.simulate(sim, 2 * math.ceil(budget / 2), folder / f"{sim.name}.h5", seed=0, progress=False)
    est = gm.RatioEstimator("rascal", progress=False, **RASCAL_SETTINGS).fit(data)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model = gm.inference.Model(est, prior=sim)
    grid = model.grid(101 if sim.theta_dim == 1 else 21)  # the refinement then runs on the surrogate
    estimates = run_mle(model, x, grid=grid)
    return {"estimates": estimates, "fit_seconds": fit_seconds, "inference_seconds": time.perf_counter() - start,
            "runs": len(data)}


def run_abc(sim, x, budget: int) -> dict:
    """SMC-ABC within the budget, or the reason it cannot run."""
    if importlib.util.find_spec("goldmine.inference.abc") is None:
        return {"unavailable": "goldmine.inference.abc is not there yet"}
    from goldmine.inference.abc import smc_abc

    proposals = budget // x.shape[1]
    particles = max(4, proposals // 4)  # generation 0 takes 2 × particles, later ones the rest
    start, estimates, calls = time.perf_counter(), [], []
    for i, xi in enumerate(x):
        result = smc_abc(sim, xi, n_particles=particles, generations=None, budget=budget, seed=i, progress=False)
        estimates.append((result.weights[:, None] * result.samples).sum(0))
        calls.append(result.simulator_calls)
    return {"estimates": torch.stack(estimates), "inference_seconds": time.perf_counter() - start,
            "particles": particles, "mean_calls": sum(calls) / len(calls), "max_calls": max(calls)}


def study(sim, problems: int, settings: dict, folder: Path) -> dict:
    theta, x = held_out(sim, problems, N_OBS, TEST_SEED)
    std = prior_std(sim)
    print(f"{sim.name}: meta-training ALFI ...", flush=True)
    alfi = run_alfi(sim, theta, x, settings)
    budget = alfi["calls_per_problem"]
    print(f"{sim.name}: exact MLE, rascal + MLE, SMC-ABC at {budget} runs per problem ...", flush=True)
    start = time.perf_counter()
    mle = {"estimates": run_mle(sim, x), "inference_seconds": time.perf_counter() - start}
    rascal = run_rascal(sim, x, budget, folder)
    abc = run_abc(sim, x, budget)
    methods = {"alfi": alfi, "mle": mle, "rascal": rascal, "smc_abc": abc}
    out = {"theta": theta.tolist(), "methods": {}}
    for name, m in methods.items():
        entry = {k: v for k, v in m.items() if k not in ("estimates", "mu")}
        if "estimates" in m:
            entry |= errors(m["estimates"], theta, std)
            entry["estimates"] = m["estimates"].tolist()
        out["methods"][name] = entry
    out["alfi_trajectories"] = alfi["mu"][:TRAJECTORIES].tolist()
    ratio = out["methods"]["alfi"]["error"] / out["methods"]["mle"]["error"]
    out["target"] = {"alfi_over_mle": ratio, "calls_per_problem": budget,
                     "met": ratio <= TARGET_FACTOR and budget <= TARGET_CALLS}
    return out


def table(results: dict) -> str:
    head = ("simulator", "method", "error", "± se", "runs/problem", "fit s", "infer s")
    lines = [" ".join(f"{h:>{w}}" for h, w in zip(head, (9, 8, 10, 8, 13, 7, 8)))]
    for name, r in results["simulators"].items():
        for method, m in r["methods"].items():
            if "unavailable" in m:
                lines.append(f"{name:>9} {method:>8}  unavailable: {m['unavailable']}")
                continue
            runs = {"alfi": m.get("calls_per_problem"), "mle": 0, "rascal": m.get("runs"),
                    "smc_abc": m.get("mean_calls")}[method]
            fit = m.get("fit_seconds")
            lines.append(f"{name:>9} {method:>8} {m['error']:>10.4g} {m['standard_error']:>8.2g} "
                         f"{runs:>13.0f} {'-' if fit is None else f'{fit:.0f}':>7} {m['inference_seconds']:>8.1f}")
        a = r["methods"]["alfi"]
        t = r["target"]
        lines.append(f"{'':>9} ALFI meta-training: {a['meta_training_simulator_calls']:.3g} simulator runs, "
                     f"{a['fit_seconds']:.0f} s; ALFI / MLE = {t['alfi_over_mle']:.2f} "
                     f"(target ≤ {TARGET_FACTOR}: {'met' if t['met'] else 'NOT met'})")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sims = results["simulators"]
    fig = plt.figure(figsize=(14, 7.5))
    grid = fig.add_gridspec(2, TRAJECTORIES)
    colours = {"mle": "k", "rascal": "tab:orange", "smc_abc": "tab:green"}
    width = TRAJECTORIES // 2
    for i, (name, r) in enumerate(sims.items()):
        ax = fig.add_subplot(grid[0, width * i:width * (i + 1)])
        curve = r["methods"]["alfi"]["error_per_step"]
        ax.semilogy(range(len(curve)), curve, "o-", color="tab:blue", ms=4, label="ALFI μ_t")
        for method, colour in colours.items():
            m = r["methods"][method]
            if "error" in m:
                ax.axhline(m["error"], color=colour, ls="--", label=method)
        ax.axhline(TARGET_FACTOR * r["methods"]["mle"]["error"], color="k", ls=":", label="2 × MLE (target)")
        ax.set(xlabel="step t", ylabel="mean Σ_j ((θ_j − θ*_j)/s_j)²",
               title=f"{name}: error of μ_t over {len(r['theta'])} held-out problems")
        ax.legend(fontsize=8)
    if "weinberg" in sims:
        r = sims["weinberg"]
        sim = gm.simulators.Weinberg()
        _, x = held_out(sim, len(r["theta"]), N_OBS, TEST_SEED)
        e = torch.linspace(40, 50, 81, dtype=torch.float64)
        g = torch.linspace(0.5, 1.2, 81, dtype=torch.float64)
        points = torch.cartesian_prod(e, g)
        for j, path_j in enumerate(r["alfi_trajectories"][:TRAJECTORIES]):
            ax = fig.add_subplot(grid[1, j])
            ll = gm.inference.Model(sim).log_likelihood(points, x[j]).reshape(81, 81)
            levels = ll.max() - torch.tensor([50.0, 20.0, 8.0, 3.0, 0.5])
            ax.contour(e, g, ll.T, levels=levels.tolist(), colors="0.6", linewidths=0.8)
            mu = torch.tensor(path_j)
            ax.plot(mu[:, 0], mu[:, 1], "o-", color="tab:blue", ms=3, label="ALFI μ_t")
            truth, mle = r["theta"][j], r["methods"]["mle"]["estimates"][j]
            ax.plot(*truth, "r*", ms=12, label="θ*")
            ax.plot(*mle, "kx", ms=9, label="exact MLE")
            ax.set(xlim=(40, 50), ylim=(0.5, 1.2), xlabel="E", ylabel="G_f" if j == 0 else None,
                   title=f"Weinberg problem {j}")
            if j == 0:
                ax.legend(fontsize=8, loc="lower left")
        fig.text(0.5, 0.01, "grey: contours of the exact log-likelihood ℓ(θ) of each problem's 100 observations "
                 "at ℓ_max − 0.5, 3, 8, 20, 50", ha="center", fontsize=9)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--simulators", nargs="+", default=["poisson", "weinberg"], choices=["poisson", "weinberg"])
    parser.add_argument("--problems", type=int, default=PROBLEMS)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "alfi")
    parser.add_argument("--quick", action="store_true", help="a short meta-training: a smoke test, not the study")
    parser.add_argument("--replot", action="store_true", help="redraw DIR/alfi.png from DIR/alfi.json and stop")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.replot:
        results = json.loads((args.out / "alfi.json").read_text())
        plot(results, args.out / "alfi.png")
        print(table(results))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    settings = ALFI_SETTINGS | (QUICK if args.quick else {}) | {"progress": False}
    load = list(os.getloadavg())
    start = time.perf_counter()
    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine_info(),
               "n_obs": N_OBS, "quick": args.quick, "alfi_settings": settings, "rascal_settings": RASCAL_SETTINGS,
               "load_average_before": load, "simulators": {}}
    sims = {"poisson": gm.simulators.Poisson(), "weinberg": gm.simulators.Weinberg()}
    with tempfile.TemporaryDirectory() as folder:
        for name in args.simulators:
            results["simulators"][name] = study(sims[name], args.problems, settings, Path(folder))
            write(results, args.out / "alfi.json")
    results["seconds"] = time.perf_counter() - start
    results["load_average_after"] = list(os.getloadavg())
    results["targets"] = {"alfi_vs_mle": all(r["target"]["met"] for r in results["simulators"].values())}
    write(results, args.out / "alfi.json")
    plot(results, args.out / "alfi.png")
    print(table(results))
    print(f"total {results['seconds']:.0f} s; wrote {args.out / 'alfi.json'} and {args.out / 'alfi.png'}")


if __name__ == "__main__":
    main()
