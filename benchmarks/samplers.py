"""Which posterior sampler finds every mode: measured on exact likelihoods whose posteriors have known modes.

Targets (exact likelihoods, so the sampler is the only thing judged):

- slcp (`gm.simulators.SLCP`): θ ∈ [−3, 3]^5; one run as the observation. The posterior has four
  modes of exactly equal mass, one per sign pair (sign θ_2, sign θ_3) (the likelihood is even in
  both). Observations at θ* = (0.7, −2.9, −1.0, −0.9, 0.6), (−1.5, 0.5, 2.0, 1.2, −0.4) and
  (0.2, 1.1, −0.6, 1.8, 1.1), one run each (seeds 1, 2, 3).
- two_moons (`gm.simulators.TwoMoons`): θ ∈ [−1, 1]²; one run. The posterior has two modes of
  exactly equal mass, mirrored in θ_0 + θ_1 = 0 (the likelihood depends on |θ_0 + θ_1|).
  Observations at θ* = (0.3, 0.5), (−0.6, 0.2), (0.1, −0.8) (seeds 1, 2, 3).

For each sampler (`gm.inference.posterior(..., sampler=...)`, 32 chains, warm-up and steps as
given; importance sampling draws chains × steps prior points) it records the share of the kept
draws in each mode, the largest deviation from the exact share in units of the standard error
√(p(1−p)/ESS) (with the sampler's own smallest bulk ESS), the split R-hat and ESS, the surrogate
evaluations, wall seconds, and whether `posterior` warned. torch runs on one thread.

Usage:
    python benchmarks/samplers.py [--samplers tempered metropolis ...] [--tasks slcp two_moons]
                                  [--warmup 1000] [--steps 2000] [--out DIR]

DIR/samplers.json is rewritten after every entry; a rerun into the same DIR skips finished entries.
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import goldmine as gm  # noqa: E402
from mining_speed import machine_info  # noqa: E402
from sample_efficiency import resume, write  # noqa: E402

SAMPLERS = ("tempered", "metropolis", "slice", "hmc", "importance")
TASKS = {
    "slcp": (gm.simulators.SLCP, ((0.7, -2.9, -1.0, -0.9, 0.6), (-1.5, 0.5, 2.0, 1.2, -0.4), (0.2, 1.1, -0.6, 1.8, 1.1))),
    "two_moons": (gm.simulators.TwoMoons, ((0.3, 0.5), (-0.6, 0.2), (0.1, -0.8))),
}


def mode_of(task: str, draws: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The mode index of each draw and the number of modes."""
    if task == "slcp":
        return (draws[:, 2] > 0).long() * 2 + (draws[:, 3] > 0).long(), 4
    return (draws[:, 0] + draws[:, 1] > 0).long(), 2


def run_one(task: str, k: int, sampler: str, warmup: int, steps: int) -> dict:
    cls, thetas = TASKS[task]
    sim = cls()
    theta = torch.tensor([thetas[k]], dtype=torch.float64)
    x = sim.sample(theta, generator=torch.Generator().manual_seed(k + 1)).x
    start = time.time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post = gm.inference.posterior(sim, x, sampler=sampler, warmup=warmup, steps=steps, progress=False, seed=0)
    seconds = time.time() - start
    modes, count = mode_of(task, post.samples)
    share = torch.bincount(modes, minlength=count).double() / len(modes)
    p = 1.0 / count
    ess = float(post.ess.min())
    stderr = math.sqrt(p * (1 - p) / max(ess, 1.0))
    return {"task": task, "observation": k, "theta_true": list(thetas[k]), "sampler": sampler,
            "warmup": warmup, "steps": steps, "shares": share.tolist(),
            "max_share_error": float((share - p).abs().max()),
            "max_share_error_in_se": float((share - p).abs().max()) / stderr,
            "rhat_max": None if post.rhat is None else float(post.rhat.max()), "ess_min": ess,
            "acceptance": post.acceptance, "evaluations": post.evaluations, "seconds": seconds,
            "warned": [str(w.message)[:200] for w in caught]}


def line(e: dict) -> str:
    rhat = "-" if e["rhat_max"] is None else f"{e['rhat_max']:.3f}"
    shares = " ".join(f"{s:.3f}" for s in e["shares"])
    return (f"{e['task']:>9} {e['observation']:>3} {e['sampler']:>10} {shares:>27} {e['max_share_error_in_se']:>7.1f} "
            f"{rhat:>7} {e['ess_min']:>7.0f} {e['evaluations']:>9} {e['seconds']:>7.1f} {'yes' if e['warned'] else 'no':>6}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--observations", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "samplers")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    path = args.out / "samplers.json"
    results = resume(path)
    results["machine"] = machine_info()
    done = {(e["task"], e["observation"], e["sampler"], e["warmup"], e["steps"]) for e in results["entries"]}
    print(f"{'task':>9} {'obs':>3} {'sampler':>10} {'mode shares':>27} {'dev/se':>7} {'R-hat':>7} {'ESS':>7} "
          f"{'evals':>9} {'seconds':>7} {'warned':>6}")
    for task in args.tasks:
        for k in range(args.observations):
            for sampler in args.samplers:
                key = (task, k, sampler, args.warmup, args.steps)
                if key not in done:
                    results["entries"].append(run_one(task, k, sampler, args.warmup, args.steps))
                    results["updated"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
                    write(results, path)
                entry = next(e for e in results["entries"] if (e["task"], e["observation"], e["sampler"], e["warmup"],
                                                                e["steps"]) == key)
                print(line(entry), flush=True)


if __name__ == "__main__":
    main()
