"""benchmarks/neyman_grid.py: Neyman thresholds from toys shared by every model, with overflowed runs redrawn, and
the regions they give, checked on a Gaussian with an exact likelihood whose runs overflow (NaN x) at random and
always beyond θ₀ = 0.9 (as Lotka–Volterra's runs overflow its event cap)."""

import math
import sys
from pathlib import Path

import torch

import goldmine as gm
from goldmine.simulators import Draws, Simulator, box_prior

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from neyman_grid import draw_finite, neyman_thresholds, observed_region  # noqa: E402

LEVEL = 0.95
SIGMA = 0.5


class Overflowing(Simulator):
    """x ~ N(θ, σ²·I₂), θ ∈ [−1, 1]²; a run overflows (NaN x) with probability 0.3, and always when θ₀ > 0.9.
    Given that it is finite, x ~ N(θ, σ²·I₂): `log_prob` is the likelihood of the finite runs."""

    name = "overflowing"
    theta_dim = 2
    x_dim = 2

    def __init__(self):
        self.prior = box_prior([-1.0, -1.0], [1.0, 1.0])
        self.reference = torch.zeros(2, dtype=torch.float64)

    def sample(self, theta, generator=None):
        theta = self.check_theta(theta)
        x = theta + SIGMA * torch.randn(theta.shape, dtype=torch.float64, generator=generator)
        lost = (torch.rand(len(theta), dtype=torch.float64, generator=generator) < 0.3) | (theta[:, 0] > 0.9)
        x = x.masked_fill(lost[:, None], math.nan)
        return Draws(x, x.clone())

    def log_prob(self, x, theta):
        x, theta = self.check_x(x), self.check_theta(theta)
        return (-0.5 * ((x - theta) / SIGMA) ** 2).sum(1) - 2 * math.log(SIGMA) - math.log(2 * math.pi)


def test_neyman_thresholds_and_regions_cover_at_the_level_with_overflowing_runs():
    sim = Overflowing()
    model = gm.inference.Model(sim)
    axis = torch.linspace(-1.0, 1.0, 5, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    toys, n = 60, 4

    # overflowed runs are redrawn; a point whose runs always overflow yields none
    runs = draw_finite(sim, torch.tensor([0.0, 0.0]), 50, torch.Generator().manual_seed(0))
    assert runs.shape == (50, 2) and bool(torch.isfinite(runs).all())
    assert len(draw_finite(sim, torch.tensor([1.0, 0.0]), 4, torch.Generator().manual_seed(0))) == 0

    # thresholds at the grid: the toys of a point are seeded by the point, whatever the chunks; two models share them
    c, drawn, seconds = neyman_thresholds({"exact": model, "again": model}, sim, grid, toys, n, 1, LEVEL, chunk=3,
                                          log=lambda *_: None)
    c8, _, _ = neyman_thresholds({"exact": model}, sim, grid, toys, n, 1, LEVEL, chunk=8, log=lambda *_: None)
    assert torch.equal(c["exact"], c8["exact"]) and torch.equal(c["exact"], c["again"])
    assert set(seconds) == {"simulate", "exact", "again"}
    edge = grid[:, 0] > 0.9  # every run overflows there: outside every region
    assert bool(torch.isinf(c["exact"][edge]).all()) and bool((c["exact"][edge] < 0).all())
    assert bool((drawn[edge] == 0).all()) and bool((drawn[~edge] == toys).all())
    # ℓ is exactly quadratic, so q is χ²₂ inside the box (less where the box cuts the MLE off): c ≈ 5.99 at the centre
    inner = (grid.abs() < 0.6).all(1)
    assert 3.5 < float(c["exact"][inner].median()) < 9.0

    # the coverage of θ* ~ prior (observable part) by its own toy threshold: k/(T + 1) ≥ 95% by exchangeability
    k = 120
    thetas = torch.rand(k, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 1.8 - 1.0
    generator = torch.Generator().manual_seed(6)
    x_obs = [draw_finite(sim, theta, n, generator) for theta in thetas]
    c_theta, _, _ = neyman_thresholds({"exact": model}, sim, grid, toys, n, 2, LEVEL, points=thetas,
                                      log=lambda *_: None)
    regions = [observed_region(model, x, grid, theta, c["exact"], float(c_theta["exact"][i]))
               for i, (theta, x) in enumerate(zip(thetas, x_obs))]
    coverage = sum(r["covered"] for r in regions) / k
    expected = math.ceil(LEVEL * (toys + 1)) / (toys + 1)
    assert abs(coverage - expected) <= 3 * math.sqrt(expected * (1 - expected) / k), coverage
    # the regions exclude the unobservable points, and hold the MLE's neighbourhood
    assert not any(bool(r["inside"][edge].any()) for r in regions)
    assert sum(int(r["inside"].sum()) for r in regions) / k > 1
