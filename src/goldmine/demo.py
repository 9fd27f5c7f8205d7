"""`make demo`: simulate and mine a Galton-board data set, check the gold identities, plot.

Run as `python -m goldmine.demo [--rows N] [--out DIR]`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import goldmine as gm
from goldmine.evaluate import log_prob_and_score
from goldmine.plots import gold_scores_per_slot


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--out", default="demo-output")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sim = gm.simulators.GaltonBoard()

    path = out / "galton.h5"
    path.unlink(missing_ok=True)
    start = time.perf_counter()
    data = gm.simulate(sim, args.rows, path, seed=0)
    seconds = time.perf_counter() - start
    print(data.summary())
    print(f"simulated and mined {len(data):,} rows in {seconds:.2f} s: {len(data) / seconds:,.0f} rows/s")

    # gold identities, row by row against the exact likelihood: E[r(x,z|θ,θ_ref) − r(x|θ,θ_ref)] = 0 over rows
    # drawn at θ_ref, and E[t(x,z|θ) − ∂θ log p(x|θ)] = 0 over rows drawn at θ
    t = data.tensors(dtype=torch.float64)
    ref_rows, theta_rows = t["label"] == 1, t["label"] == 0
    theta = t["theta"][ref_rows]
    exact_r = (sim.log_prob(theta, t["x"][ref_rows]) - sim.log_prob(torch.zeros_like(theta), t["x"][ref_rows])).exp()
    diff_r = t["log_r"][ref_rows].exp() - exact_r
    exact_t = log_prob_and_score(sim, t["theta"][theta_rows], t["x"][theta_rows])[1][:, 0]
    diff_t = t["score"][theta_rows][:, 0] - exact_t
    print("gold identities (mean difference to the exact value, in standard errors; |z| < 4 expected):")
    for name, d in [("joint ratio r(x,z|θ,θ_ref) at θ_ref", diff_r), ("joint score t(x,z|θ) at θ", diff_t)]:
        z = d.mean() / (d.std() / len(d) ** 0.5)
        print(f"  {name:38s} mean diff {d.mean():+.4f} ± {d.std() / len(d) ** 0.5:.4f}  z = {z:+.2f}  {'ok' if abs(z) < 4 else 'FAILED'}")

    panels = []
    for value in (-0.5, 0.5):
        gold = gm.mine(sim, torch.full((50_000, 1), value), generator=torch.Generator().manual_seed(1))
        slots = torch.arange(32.0)[:, None]
        log_p, exact = log_prob_and_score(sim, torch.full((32, 1), value), slots)
        reachable = log_p.isfinite()
        exact = exact[:, 0]
        panels.append(dict(theta=value, x=gold.x[:, 0], score=gold.score[:, 0],
                           slots=torch.arange(32)[reachable], exact=exact[reachable]))
    figure = gold_scores_per_slot(panels, out / "galton_scores.png")
    print(f"plot: {figure}")


if __name__ == "__main__":
    main()
