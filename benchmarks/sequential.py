"""Sequential against single-round npe at equal simulator runs, by C2ST to the exact posterior.

The task is a narrow posterior in a wide prior, where rounds that simulate near the observation
should pay: x = θ + N(0, σ² I) in two dimensions, σ = 0.05, under the uniform prior on [−3, 3]²,
whose posterior for an x_o inside the box is N(x_o, σ² I) (the box cuts off less than 1e-30 of it).
For each budget N, `gm.infer(..., method="npe", budget=N, rounds=k)` runs with its default settings
for k in ROUNDS (k = 1 is plain npe; k > 1 the truncated rounds of `goldmine.sequential`), and 1000
of its posterior draws are compared with 1000 exact draws by the classifier two-sample test
(`goldmine.evaluate.c2st`: 0.5 is perfect, 1 useless), for each of three fixed observations.

Usage:
    python benchmarks/sequential.py [--budgets N ...] [--rounds K ...] [--seeds S] [--out DIR] [--quick]

DIR/sequential.json is rewritten after every entry and a rerun skips the finished ones;
DIR/sequential.png plots C2ST against the budget per number of rounds. torch runs on one thread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import goldmine as gm  # noqa: E402
from goldmine.evaluate import c2st  # noqa: E402
from sample_efficiency import resume, write  # noqa: E402

SIGMA = 0.05
PRIOR = gm.simulators.box_prior([-3.0, -3.0], [3.0, 3.0])
X_OBS = ((0.5, -0.3), (-1.2, 2.0), (2.1, 0.4))
DRAWS = 1000


def shift(theta):
    return theta + SIGMA * torch.randn(theta.shape, dtype=theta.dtype)


def entry(budget: int, rounds: int, seed: int) -> dict:
    values, seconds = [], []
    for i, x in enumerate(X_OBS):
        x_o = torch.tensor([x], dtype=torch.float64)
        start = time.perf_counter()
        result = gm.infer(shift, PRIOR, x_o, method="npe", budget=budget, rounds=rounds, seed=seed, progress=False)
        seconds.append(time.perf_counter() - start)
        draws = result.sample(DRAWS, generator=torch.Generator().manual_seed(seed))
        exact = x_o + SIGMA * torch.randn(DRAWS, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(99 + i))
        values.append(c2st(draws, exact, seed=0))
    return {"budget": budget, "rounds": rounds, "seed": seed, "c2st": values, "mean_c2st": statistics.mean(values),
            "seconds": seconds}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[1000, 3000])
    parser.add_argument("--rounds", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/sequential")
    parser.add_argument("--quick", action="store_true", help="budget 600, rounds 1 and 2: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.budgets, args.rounds = [600], [1, 2]
    torch.set_num_threads(1)
    path = Path(args.out) / "sequential.json"
    results = resume(path, task="shift2d", sigma=SIGMA)
    done = {(e["budget"], e["rounds"], e["seed"]) for e in results["entries"]}
    for budget in args.budgets:
        for rounds in args.rounds:
            for seed in range(args.seeds):
                if (budget, rounds, seed) in done:
                    continue
                results["entries"].append(entry(budget, rounds, seed))
                write(results, path)
                e = results["entries"][-1]
                print(f"budget {budget:>6}  rounds {rounds}  seed {seed}  C2ST {e['mean_c2st']:.3f}  "
                      f"({', '.join(f'{v:.3f}' for v in e['c2st'])})  {sum(e['seconds']):.0f} s", flush=True)
    plot(results, path.with_name("sequential.png"))
    print(f"\n{'budget':>8} " + " ".join(f"{f'rounds={k}':>10}" for k in sorted({e['rounds'] for e in results['entries']})))
    for budget in sorted({e["budget"] for e in results["entries"]}):
        cells = []
        for k in sorted({e["rounds"] for e in results["entries"]}):
            vals = [e["mean_c2st"] for e in results["entries"] if e["budget"] == budget and e["rounds"] == k]
            cells.append(f"{statistics.mean(vals):>10.3f}" if vals else f"{'—':>10}")
        print(f"{budget:>8} " + " ".join(cells))


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for k in sorted({e["rounds"] for e in results["entries"]}):
        rows = sorted((e["budget"], e["mean_c2st"]) for e in results["entries"] if e["rounds"] == k)
        ax.plot([r[0] for r in rows], [r[1] for r in rows], "o-", label=f"npe, {k} round{'s' * (k > 1)}")
    ax.set(xscale="log", xlabel="simulator runs", ylabel="C2ST to the exact posterior", ylim=(0.45, 1.02))
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
