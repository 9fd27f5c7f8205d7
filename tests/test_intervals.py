"""Confidence regions: Wilks and Neyman on the exact Galton likelihood, a 2-D Wilks region on the
exact Weinberg likelihood, expected limits, backends, bad input."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import chi2

from goldmine.executor import seeded_generator
from goldmine.inference.grid import Mesh
from goldmine.inference.intervals import confidence_region, expected_limits
from goldmine.inference.toys import ASIMOV_RUNS, draw_toys, toy_log_likelihood, toy_sizes
from goldmine.inference.model import Model
from goldmine.simulators import GaltonBoard, Weinberg
from goldmine.simulators.weinberg import asymmetry

DTYPE = torch.float64


class Oracle:
    """The exact log-ratio log p(x|θ) − log p(x|θ_ref) as a fitted surrogate (no simulator attached)."""

    def __init__(self, sim):
        self.sim, self.theta_dim_, self.x_dim_ = sim, sim.theta_dim, sim.x_dim

    def log_ratio(self, x, theta):
        return self.sim.log_prob(x, theta) - self.sim.log_prob(x, self.sim.reference.expand(len(x), -1))


def observed(sim, theta, n, seed=0):
    theta = torch.as_tensor(theta, dtype=DTYPE).reshape(1, -1)
    return sim.sample(theta.expand(n, -1), generator=torch.Generator().manual_seed(seed)).x


@pytest.fixture(scope="module")
def galton():
    return GaltonBoard()


@pytest.fixture(scope="module")
def x_galton(galton):
    return observed(galton, [0.3], 100)


@pytest.mark.parametrize("level", [0.68, 0.95])
def test_wilks_endpoints_are_refined_off_the_grid(galton, x_galton, level):
    region = confidence_region(galton, x_galton, level=level)
    low, high = region.interval
    threshold = chi2.ppf(level, 1)
    assert region.method == "wilks" and region.threshold.eq(threshold).all()
    assert region.segments == [(low, high)] and region.size == pytest.approx(high - low)
    # q crosses the threshold at the endpoints, which are not grid points
    q = region.mle.q(Model(galton).log_likelihood(torch.tensor([[low], [high]], dtype=DTYPE), x_galton))
    torch.testing.assert_close(q, torch.full((2,), threshold, dtype=DTYPE), rtol=0, atol=1e-6)
    assert (region.grid[:, 0] - low).abs().min() > 1e-6
    # so the size is not quantised by the grid: a 5x coarser grid gives the same interval
    coarse = confidence_region(galton, x_galton, level=level, grid=21)
    assert coarse.interval == pytest.approx((low, high), abs=1e-6)
    assert low < float(region.mle.theta) < high
    inner, outer = torch.tensor([[low + 1e-4], [high - 1e-4]]), torch.tensor([[low - 1e-4], [high + 1e-4], [-1.5]])
    assert region.contains(inner).all() and not region.contains(outer).any()


def test_a_surrogate_gives_the_exact_region(galton, x_galton):
    exact = confidence_region(galton, x_galton)
    surrogate = confidence_region(Oracle(galton), x_galton, prior=galton.prior)
    assert surrogate.interval == pytest.approx(exact.interval, abs=1e-7)
    torch.testing.assert_close(surrogate.q, exact.q, rtol=0, atol=1e-8)


@pytest.mark.slow
def test_neyman_thresholds_are_chi2_where_wilks_holds_and_lower_at_the_edges(galton, x_galton):
    level, toys = 0.68, 200
    region = confidence_region(galton, x_galton, level=level, method="neyman", toys=toys, progress=False)
    theta, t = region.grid[:, 0], region.threshold
    assert region.method == "neyman" and region.toys == toys and t.shape == (101,)
    # Wilks holds for 100 Galton runs (coverage within 0.007 of nominal in 20000 toys): in the interior
    # the toy quantiles scatter around the χ² quantile, independently from point to point
    interior = t[theta.abs() <= 0.6]
    se = float(interior.std()) / math.sqrt(len(interior))
    assert abs(float(interior.mean()) - chi2.ppf(level, 1)) < 4 * se + 0.05
    # at the box's edges θ̂ sticks to the boundary half of the time: q is χ̄², not χ²
    assert t[[0, -1]].max() < 0.6 * chi2.ppf(level, 1)
    wilks = confidence_region(galton, x_galton, level=level)
    assert region.interval == pytest.approx(wilks.interval, abs=0.03)
    low, high = region.interval
    assert region.contains(torch.tensor([[0.5 * (low + high)]])).all()


def test_neyman_judges_the_observation_by_its_toys_statistic(galton, x_galton):
    """q_obs takes ℓ's maximum as the toys' q does (the grid's, refined by its quadratic), not from the MLE's own
    search: the thresholds are quantiles of that statistic, so the observation is judged by the same one."""
    region = confidence_region(galton, x_galton, level=0.68, method="neyman", grid=21, toys=20, progress=False)
    ell = region.mle.grid_log_likelihood
    top = float(Mesh(region.grid).maximum(ell[None])[0])
    assert region.top == top
    torch.testing.assert_close(region.q, (2 * (top - ell)).clamp(min=0.0), rtol=0, atol=0)
    # off the grid the same statistic: at the grid points contains() is the region's own verdict
    assert torch.equal(region.contains(region.grid), region.inside)
    assert confidence_region(galton, x_galton, level=0.68).top is None  # Wilks keeps the MLE's maximum


@pytest.mark.slow
def test_neyman_does_not_depend_on_workers_or_backend(galton):
    Client = pytest.importorskip("dask.distributed").Client

    x = observed(galton, [-0.2], 30, seed=3)
    kwargs = {"level": 0.68, "method": "neyman", "grid": 9, "toys": 20, "seed": 7, "progress": False}
    serial = confidence_region(galton, x, **kwargs)
    parallel = confidence_region(galton, x, workers=2, **kwargs)
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        dask = confidence_region(galton, x, cluster=client, **kwargs)
    torch.testing.assert_close(parallel.threshold, serial.threshold, rtol=0, atol=1e-12)
    torch.testing.assert_close(dask.threshold, serial.threshold, rtol=0, atol=1e-12)
    other = confidence_region(galton, x, **{**kwargs, "seed": 8})
    assert not torch.equal(other.threshold, serial.threshold)


@pytest.mark.slow
def test_two_dimensional_wilks_region_on_weinberg():
    sim = Weinberg()
    truth = sim.reference
    areas = {}
    for n in (100, 400):
        region = confidence_region(sim, observed(sim, truth, n), level=0.95)
        assert region.contains(truth[None]).all()
        assert region.q.shape == region.inside.shape == (41 * 41,)
        box = float((sim.prior.base_dist.high - sim.prior.base_dist.low).prod())
        assert 0 < region.size < 0.5 * box
        # p(x|θ) depends on θ only through the asymmetry A(θ), and ℓ is concave in A: the region
        # is the band of grid points whose A lies in one interval
        a = asymmetry(region.grid)[0]
        a_in = a[region.inside]
        assert not (~region.inside & (a > a_in.min()) & (a < a_in.max())).any()
        asimov = expected_limits(sim, truth, n, level=0.95)
        assert 0.5 < region.size / asimov.size < 2.0
        areas[n] = asimov.size
    # the band's width in A scales as 1/√n; the box clips its length a little
    assert 1.4 < areas[100] / areas[400] < 2.3
    with pytest.raises(ValueError, match="one-dimensional"):
        _ = region.interval


def test_neyman_in_two_dimensions_runs_on_a_small_grid():
    sim = Weinberg()
    region = confidence_region(sim, observed(sim, sim.reference, 20), level=0.68, method="neyman", grid=5, toys=20,
                               progress=False)
    assert region.threshold.shape == (25,) and torch.isfinite(region.threshold).all()
    assert (region.threshold >= 0).all() and region.size > 0


@pytest.mark.parametrize("theta, level", [(0.3, 0.95), (-0.5, 0.68)])
def test_asimov_expected_limit_is_the_median_toy_limit(galton, theta, level):
    toys, seed = 201, 4
    model = Model(galton)
    theta = torch.tensor([theta], dtype=DTYPE)
    asimov = expected_limits(galton, theta, 100, level=level)
    assert asimov.mle.theta.item() == pytest.approx(theta.item(), abs=1e-4)  # the Asimov data set's θ̂ is θ
    median = expected_limits(galton, theta, 100, level=level, method="toys", toys=toys, seed=seed)
    # the same toys, drawn from the same seed
    x = draw_toys(galton, theta, toys, 100, seeded_generator(seed, 0))
    grid = model.grid()
    log_lik = toy_log_likelihood(model, x, grid)
    sizes = toy_sizes(grid, (2 * (Mesh(grid).maximum(log_lik)[:, None] - log_lik)).clamp(min=0), chi2.ppf(level, 1))
    assert median.size == pytest.approx(np.median(sizes), rel=1e-3)  # refined vs interpolated endpoints
    # the sample median's standard error, 1.25 σ/√T, plus the O(1/n) gap between Asimov and median
    se = 1.2533 * sizes.std() / math.sqrt(toys)
    assert abs(asimov.size - np.median(sizes)) < 4 * se + 0.02 * asimov.size


def test_asimov_without_an_x_grid_simulates_a_large_sample(galton):
    class NoGrid(GaltonBoard):
        def x_grid(self):
            raise NotImplementedError

    theta = torch.tensor([-0.5], dtype=DTYPE)
    exact = expected_limits(galton, theta, 100, level=0.68)
    sampled = expected_limits(Model(galton, simulator=NoGrid()), theta, 100, level=0.68)
    # 10⁵ runs shift θ̂, and the interval with it, by about the 68% half-width at n = 100 times √(100/10⁵)
    shift = 0.5 * exact.size * math.sqrt(100 / ASIMOV_RUNS)
    assert sampled.interval == pytest.approx(exact.interval, abs=4 * shift)


@pytest.mark.parametrize("kwargs, match", [
    ({"level": 1.0}, "level must be a probability in \\(0, 1\\)"),
    ({"level": 0.0}, "level must be a probability"),
    ({"level": 95}, "level must be a probability"),
    ({"method": "bayes"}, "unknown method 'bayes': choose one of 'wilks', 'neyman'"),
    ({"method": "neyman", "toys": 0}, "toys must be a positive integer"),
    ({"workers": 0}, "workers must be a positive integer"),
    ({"grid": torch.tensor([[0.0], [1.5]])}, "outside the prior"),
    ({"grid": 1}, "at least 2 points"),
])
def test_bad_input_names_the_fix(galton, x_galton, kwargs, match):
    with pytest.raises(ValueError, match=match):
        confidence_region(galton, x_galton, **kwargs)


def test_bad_observations_and_missing_simulator(galton, x_galton):
    with pytest.raises(ValueError, match="empty"):
        confidence_region(galton, torch.zeros(0, 1))
    with pytest.raises(ValueError, match=r"shape \(n, 1\)"):
        confidence_region(galton, torch.zeros(5, 2))
    model = Model(Oracle(galton), prior=galton.prior)
    with pytest.raises(ValueError, match="pass simulator=sim"):
        confidence_region(model, x_galton, method="neyman")
    with pytest.raises(ValueError, match="pass simulator=sim"):
        expected_limits(model, [0.0], 100)
    with pytest.raises(ValueError, match="unknown method 'median': choose one of 'asimov', 'toys'"):
        expected_limits(galton, [0.0], 100, method="median")
    with pytest.raises(ValueError, match="n_obs must be a positive integer"):
        expected_limits(galton, [0.0], 0)
    with pytest.raises(ValueError, match="outside the prior"):
        expected_limits(galton, [2.0], 100)
