"""Dark-matter substructure from strong-lensing images: carl against alices, both with a CNN, on (f_sub, β).

1. simulate and mine lensed images (`gm.simulators.StrongLensing`: an SIE host with shear lensing a Sérsic
   source, plus a Poisson population of subhalos whose abundance f_sub and mass-function slope β are θ);
   the gold comes from the subhalo population alone, exactly, without differentiating the renderer;
2. plot sample images with their subhalos marked (area ∝ mass);
3. train carl (no gold) and alices (joint ratios and scores) with the same built-in CNN embedding
   (`embedding="cnn"`), otherwise at their defaults but the epochs;
4. population inference: n lenses share θ, so ℓ(θ) = Σ_i log r̂(x_i|θ). For 100 observed lenses at
   θ_true the MLE and the 95% Wilks region of each method, and the expected 95% region (the median over
   toy data sets at θ_true) with its area.

Run as `python examples/lensing.py [--quick] [--size 32] [--images N] [--out DIR]`: about ten minutes on two
cores with the defaults (4000 images of 32 × 32, 10 epochs); about 30 s with --quick (16 × 16, 400 images,
2 epochs, 4 toys: a smoke test whose numbers mean little). `benchmarks/lensing.py` compares the methods
over budgets, with coverage.
"""

import argparse
import time
from pathlib import Path

import torch

import goldmine as gm

THETA_TRUE, N_OBS = torch.tensor([0.1, -1.9], dtype=torch.float64), 100


def plot_images(sim, path: Path, n: int = 8) -> None:
    """Images at θ_ref with their subhalos (area ∝ mass) and the host's Einstein radius."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    draws = sim.sample(sim.reference.expand(n, 2), generator=torch.Generator().manual_seed(3))
    images = draws.x.reshape(n, sim.size, sim.size)
    z, half = draws.z, sim.fov / 2
    fig, axes = plt.subplots(2, n // 2, figsize=(2.6 * n // 2, 5.4))
    for i, ax in enumerate(axes.flat):
        ax.imshow(images[i].numpy(), origin="lower", extent=(-half, half, -half, half), cmap="magma")
        mask = z["mask"][i]
        pos, mass = z["position"][i][mask], z["mass"][i][mask]
        ax.scatter(pos[:, 0], pos[:, 1], s=40 * mass / sim.m_max, facecolors="none", edgecolors="cyan", lw=0.7)
        ring = plt.Circle(z["center"][i].tolist(), float(z["theta_e"][i]), fill=False, color="w", ls=":", lw=0.6)
        ax.add_patch(ring)
        ax.set(xticks=[], yticks=[], title=f"{int(z['n_sub'][i])} subhalos")
    fig.suptitle(f"StrongLensing at θ_ref = (f_sub, β) = {sim.reference.tolist()} (circles: subhalos, area ∝ mass)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_regions(regions: dict, theta_true, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for (name, region), color in zip(regions.items(), ("C0", "C1", "C2", "C3")):
        g = int(round(len(region.grid) ** 0.5))
        f = region.grid[:, 0].reshape(g, g).numpy()
        b = region.grid[:, 1].reshape(g, g).numpy()
        ax.contour(f, b, (region.q - region.threshold).reshape(g, g).numpy(), levels=[0.0], colors=color)
        ax.plot(*region.mle.theta.tolist(), "x", color=color, label=f"{name} (area {region.size:.4f})")
    ax.plot(*theta_true.tolist(), "k*", ms=10, label="θ_true")
    ax.set(xlabel="f_sub", ylabel="β", title=f"expected 95% regions, {N_OBS} lenses")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 16×16, 400 images, 2 epochs, 4 toys")
    parser.add_argument("--size", type=int, default=32, help="pixels per side (64 as in the paper; slower)")
    parser.add_argument("--images", type=int, default=4000, help="training images (simulator runs)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--toys", type=int, default=10, help="toy data sets of the expected regions")
    parser.add_argument("--out", default=Path(__file__).parent / "lensing-output", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.size, args.images, args.epochs, args.toys = 16, 400, 2, 4
    torch.set_num_threads(1)
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)

    # 1. simulate and mine
    sim = gm.simulators.StrongLensing(size=args.size)
    path = args.out / "lensing.h5"
    path.unlink(missing_ok=True)
    data = gm.simulate(sim, args.images, path, seed=0, progress=False)
    print(data.summary())

    # 2. what the images look like
    plot_images(sim, args.out / "lensing_images.png")

    # 3. carl and alices with the same CNN embedding
    surrogates = {method: gm.RatioEstimator(method, embedding="cnn", epochs=args.epochs, seed=0,
                                            progress=False).fit(data) for method in ("carl", "alices")}

    # 4. 100 observed lenses at θ_true; each method's MLE, Wilks region and expected region
    x_obs = sim.sample(THETA_TRUE.expand(N_OBS, 2), generator=torch.Generator().manual_seed(1)).x  # (100, 1, H, W)
    grid = 7 if args.quick else 15
    expected = {}
    print(f"\n{N_OBS} lenses at θ_true = (f_sub, β) = {THETA_TRUE.tolist()}")
    print(f"{'method':>8}  {'MLE (f_sub, β)':>20}  {'95% area':>9}  {'expected 95% area':>18}")
    for name, est in surrogates.items():
        model = gm.inference.Model(est, prior=sim)
        region = gm.inference.confidence_region(model, x_obs, 0.95, grid=grid, progress=False)
        expected[name] = gm.inference.expected_limits(model, THETA_TRUE, n_obs=N_OBS, method="toys",
                                                      toys=args.toys, grid=grid)
        mle = ", ".join(f"{v:.3g}" for v in region.mle.theta.tolist())
        print(f"{name:>8}  {mle:>20}  {region.size:>9.4f}  {expected[name].size:>18.4f}")
    plot_regions(expected, THETA_TRUE, args.out / "lensing_regions.png")
    box = float((sim.prior.base_dist.high - sim.prior.base_dist.low).prod())
    print(f"\nthe prior's box has area {box:.3f}; wrote {args.out / 'lensing_images.png'} and "
          f"{args.out / 'lensing_regions.png'}\nfinished in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
