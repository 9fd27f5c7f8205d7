"""ALFI: a recurrent machine that learns, across many problems, how to move a proposal towards θ*.

Meta-trains a small ALFI machine on the Poisson simulator (no gold, no data set: it simulates its own
problems), then runs it on held-out problems and compares its estimates with the exact
maximum-likelihood estimates from the same observations, and plots a few trajectories μ_t.
About a minute on two cores (`--quick`: a few seconds, a weaker machine).

    python examples/alfi.py [--quick] [--out DIR]

Reference: Pesah, Wehenkel, Louppe, "Recurrent machines for likelihood-free inference",
https://arxiv.org/abs/1811.12932
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import goldmine as gm

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true")
parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "alfi-output")
args = parser.parse_args()
torch.set_num_threads(1)
args.out.mkdir(parents=True, exist_ok=True)

sim = gm.simulators.Poisson()
n_obs, problems = 100, 50
settings = dict(steps=8, thetas=4, runs=16, n_obs=n_obs, problems=320, hidden=32, features=32, state=32,
                bound=0.4, init="mean", epochs=3 if args.quick else 40, lr=3e-3, seed=0)
machine = gm.ALFI(**settings).fit(sim)
machine.save(args.out / "machine")

# held-out problems: θ* from the prior, 100 observations each
g = torch.Generator().manual_seed(2024)
theta_star = 0.2 + 6.8 * torch.rand(problems, 1, generator=g, dtype=torch.float64)  # the prior U(0.2, 7)
x = sim.sample(theta_star.repeat_interleave(n_obs, 0), generator=g).x.reshape(problems, n_obs, 1)
result = gm.load(args.out / "machine").infer(x, simulator=sim, seed=1)
exact = torch.stack([gm.inference.mle(sim, x[i], starts=1).theta for i in range(problems)])

alfi_mse = ((result.theta - theta_star) ** 2).mean().item()
mle_mse = ((exact - theta_star) ** 2).mean().item()
per_step = ((result.mu - theta_star[:, None]) ** 2).mean((0, 2))
print(f"{problems} held-out Poisson problems, {n_obs} observations each")
print(f"{'estimator':>12} {'MSE of θ':>10}")
print(f"{'ALFI μ_T':>12} {alfi_mse:>10.5f}")
print(f"{'exact MLE':>12} {mle_mse:>10.5f}")
print(f"ALFI / MLE = {alfi_mse / mle_mse:.2f}; simulator calls per problem at inference: "
      f"{result.simulator_calls}")
print("MSE of μ_t by step:", " ".join(f"{v:.3g}" for v in per_step.tolist()))

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
left.semilogy(per_step.numpy(), marker="o", label="ALFI μ_t")
left.axhline(mle_mse, color="k", ls="--", label="exact MLE")
left.set(xlabel="step t", ylabel="mean squared error", title="error over the steps")
left.legend()
for i in range(5):
    (line,) = right.plot(result.mu[i, :, 0].numpy(), marker=".")
    right.axhline(theta_star[i, 0].item(), color=line.get_color(), ls=":")
right.set(xlabel="step t", ylabel="μ_t (dotted: θ*)", title="five trajectories")
fig.tight_layout()
fig.savefig(args.out / "alfi.png", dpi=110)
print(f"plot: {args.out / 'alfi.png'}\nmachine: {args.out / 'machine'}")
