"""Fast Neyman toys for continuous x: the windowed statistic, pooled toys, and the plan that picks them.

Against exact likelihoods: a 1-D Gaussian (x = θ + N(0, 1)), where the windowed statistic's threshold
is known in closed form, and Weinberg, where the coverage of the default construction is measured.
"""

import math

import pytest
import torch
from scipy.stats import chi2, norm

from goldmine.executor import seeded_generator
from goldmine.inference.intervals import confidence_region
from goldmine.inference.model import Model
from goldmine.inference.toys import (NEYMAN_WINDOW, POOL_BIAS, Window, neyman_plan, neyman_thresholds, pool_size,
                                     pooled_statistic, thresholds_at, toy_quantile)
from goldmine.simulators import GaltonBoard, Weinberg
from goldmine.simulators.base import DTYPE




def observed(sim, theta, n, seed=0):
    theta = torch.as_tensor(theta, dtype=DTYPE).reshape(1, -1)
    return sim.sample(theta.expand(n, -1), generator=torch.Generator().manual_seed(seed)).x


def exact(sim) -> Model:
    model = Model(sim)
    model.progress = False
    return model


def test_window_statistic_on_a_parabola_is_the_profile_inside_and_the_slope_beyond():
    grid = torch.linspace(-2, 2, 41, dtype=DTYPE)[:, None]
    h, n, top = 0.1, 25.0, 0.537  # ℓ = −n (θ − θ̂)²/2
    log_lik = -0.5 * n * (grid[:, 0] - top) ** 2
    q, edge = Window(grid, 2).statistic(log_lik[None])
    profile = n * (grid[:, 0] - top) ** 2
    a = 2 * h * math.sqrt(n)  # the window's reach in standard errors
    z = (grid[:, 0] - top).abs() * math.sqrt(n)
    near = (grid[:, 0] - top).abs() < 1.5 * h  # θ̂ inside the window, off its edge: refined exactly
    assert torch.allclose(q[0, near], profile[near], atol=1e-9)
    far = (grid[:, 0] - top).abs() > 2 * h
    assert torch.allclose(q[0, far], 2 * z[far] * a - a ** 2, atol=1e-9)
    assert bool(edge[0, far].all()) and not bool(edge[0, near].any())


def test_window_needs_an_even_mesh():
    with pytest.raises(ValueError, match="even Cartesian"):
        Window(torch.tensor([[0.0], [0.1], [0.5]], dtype=DTYPE), 1)


def test_pool_size_keeps_the_coverage_shift_at_its_share_of_the_toys_error():
    level, toys, n, d = 0.95, 1000, 100, 2
    t = chi2.ppf(level, d)
    m = pool_size(toys, n, d, level)
    shift = d * n / m * 0.5 * (chi2.sf(t, d + 2) - (1 - level))
    assert shift == pytest.approx(POOL_BIAS * math.sqrt(level * (1 - level) / toys), rel=1e-3)
    assert pool_size(1, 5, 2, level) == 5  # no fewer than toys · n: independent toys
    # few runs per toy: the pool's spread decides, its error of the threshold POOL_BIAS times the toys'
    level, toys, n, d = 0.9, 600, 16, 1
    t, m = chi2.ppf(level, d), pool_size(toys, n, d, level)
    moved = t * math.sqrt(2 / (d * m))  # in q
    own = math.sqrt(level * (1 - level) / toys) / chi2.pdf(t, d)
    assert moved == pytest.approx(POOL_BIAS * own, rel=1e-3)


def test_plan_keeps_the_profile_for_discrete_x_and_windows_continuous_x():
    galton = GaltonBoard()
    assert neyman_plan(galton, Model(galton).grid(11), 0.9, 100, 50, 0) == (None, None)
    sim = Weinberg()
    window, pool = neyman_plan(sim, Model(sim).grid(5), 0.9, 100, 50, 0)
    assert window == NEYMAN_WINDOW and pool == pool_size(100, 50, 2, 0.9)
    assert neyman_plan(sim, Model(sim).grid(5), 0.9, 1, 5, 0) == (NEYMAN_WINDOW, None)  # no smaller pool


def test_window_thresholds_match_the_gaussian_closed_form(shift):
    """For x = θ + N(0, 1) the window's q_w is 2·z·a − a² beyond half a step (z = √n|θ̂ − θ|, a = √n·h),
    so its level-quantile is 2·z_α·a − a², z_α the two-sided normal quantile: pooled toys must give it."""
    sim, level, toys, n = shift, 0.9, 600, 16
    model = exact(sim)
    grid = model.grid(41)
    window, pool = neyman_plan(sim, grid, level, toys, n, 0)
    assert (window, pool) == (NEYMAN_WINDOW, pool_size(toys, n, 1, level))
    indices = [12, 16, 20, 24, 28]  # interior points: the window and the toys' θ̂ stay inside the box
    t = torch.tensor(thresholds_at(model, sim, grid, level, toys, n, 3, window, pool, indices))
    a = math.sqrt(n) * float(grid[1, 0] - grid[0, 0]) * window
    z = norm.ppf(0.5 + level / 2)
    expected = 2 * z * a - a ** 2
    # the quantile's error: sqrt(l(1 − l)/T) in probability over the density of q_w there, 2φ(z)/(2a),
    # widened by the pool's share (its variance as large again at most); averaged over the points
    se = math.sqrt(level * (1 - level) / toys) * a / norm.pdf(z) * math.sqrt(2 / len(indices))
    assert abs(float(t.mean()) - expected) < 4 * se
    assert float((t - expected).abs().max()) < 4 * se * math.sqrt(len(indices))


def test_windowed_interval_on_a_gaussian_is_the_exact_interval(shift):
    """q_w is increasing in |θ̂ − θ| beyond the window, so the Neyman region is {√n|θ̂ − θ| ≤ z_α}."""
    sim, level, toys, n = shift, 0.9, 400, 16
    x = observed(sim, [0.3], n, seed=5)
    region = confidence_region(sim, x, level, method="neyman", grid=41, toys=toys, progress=False)
    assert region.window == NEYMAN_WINDOW and region.pool == pool_size(toys, n, 1, level)
    centre, half = float(x.mean()), norm.ppf(0.5 + level / 2) / math.sqrt(n)
    low, high = region.interval
    # an endpoint moves by the threshold's error, sqrt(l(1 − l)/T)·a/φ(z_α), over the slope of q_w, 2a√n per unit θ
    se = math.sqrt(level * (1 - level) / toys) / (2 * norm.pdf(norm.ppf(0.5 + level / 2)) * math.sqrt(n))
    assert abs(low - (centre - half)) < 4 * math.sqrt(2) * se + 1e-3
    assert abs(high - (centre + half)) < 4 * math.sqrt(2) * se + 1e-3
    # off the grid the region uses the same statistic: contains() agrees with the refined endpoints
    inside = region.contains(torch.tensor([[low + 0.01], [high - 0.01], [low - 0.01], [high + 0.01]]))
    assert inside.tolist() == [True, True, False, False]
    assert torch.equal(region.contains(region.grid), region.inside)


def test_default_neyman_covers_on_weinberg_with_the_exact_likelihood():
    """Coverage of the default (windowed, pooled) thresholds: data sets drawn at grid points, their q_w
    from ℓ on the window's points (as `Window.statistic` takes it from the grid), against the thresholds."""
    sim, level, toys, n, datasets = Weinberg(), 0.9, 400, 20, 400
    model = exact(sim)
    grid = model.grid(7)
    window, pool = neyman_plan(sim, grid, level, toys, n, 0)
    assert window == NEYMAN_WINDOW and pool is not None and pool < toys * n
    indices = [8, 17, 24, 31, 40]
    thresholds = thresholds_at(model, sim, grid, level, toys, n, 0, window, pool, indices)
    win = Window(grid, window)
    covered = []
    for i, j in enumerate(indices):
        x = sim.sample(grid[j].expand(datasets * n, -1), generator=seeded_generator(99, j)).x
        points = win.neighbours[j]
        values = torch.full((datasets, len(points)), -math.inf, dtype=DTYPE)
        values[:, points >= 0] = model.terms(grid[points[points >= 0]], x).reshape(-1, datasets, n).sum(-1).T
        top, _ = win.maximum(values)
        q = 2 * (top - values[:, win.centre])
        covered.append((q <= thresholds[i]).double())
    coverage = float(torch.cat(covered).mean())
    # binomial error of the data sets plus the thresholds' own (their quantile error, and the pool's share)
    k = len(indices)
    se = math.sqrt(level * (1 - level) * (1 / (k * datasets) + (1 + 2 * POOL_BIAS) / (k * toys)))
    assert abs(coverage - level) < 3 * se, (coverage, se)


@pytest.mark.slow
def test_windowed_region_agrees_with_the_profile_region_but_at_its_edge():
    sim = Weinberg()
    x = observed(sim, sim.reference, 50, seed=1)
    fast = confidence_region(sim, x, 0.9, method="neyman", grid=7, toys=200, progress=False)
    profile = confidence_region(sim, x, 0.9, method="neyman", grid=7, toys=200, progress=False, window=None)
    assert fast.window == NEYMAN_WINDOW and profile.window is None and profile.pool == fast.pool
    assert torch.equal(fast.q, Window(fast.grid, NEYMAN_WINDOW).statistic(fast.mle.grid_log_likelihood[None])[0][0])
    differ = (fast.inside != profile.inside).reshape(7, 7)
    # every disagreement sits on the profile region's boundary: a neighbour on the other side
    inside = profile.inside.reshape(7, 7)
    padded = torch.nn.functional.pad(inside[None, None].double(), (1, 1, 1, 1), mode="replicate")[0, 0]
    neighbours = torch.stack([padded[1 + di:8 + di, 1 + dj:8 + dj] for di in (-1, 0, 1) for dj in (-1, 0, 1)])
    boundary = (neighbours != inside.double()).any(0)
    assert bool((~differ | boundary).all())
    assert int(differ.sum()) <= 0.2 * int(profile.inside.sum()) + 1
    assert bool(fast.contains(sim.reference[None])[0]) == bool(profile.contains(sim.reference[None])[0])
    assert f"window ±{NEYMAN_WINDOW} steps" in repr(fast)


@pytest.mark.slow
def test_discrete_x_keeps_the_profile_with_independent_toys():
    galton = GaltonBoard()
    x = observed(galton, [0.3], 30)
    default = confidence_region(galton, x, 0.9, method="neyman", grid=7, toys=20, progress=False)
    plain = confidence_region(galton, x, 0.9, method="neyman", grid=7, toys=20, progress=False, window=None,
                              pool=None)
    assert default.window is None and default.pool is None
    assert torch.equal(default.threshold, plain.threshold) and torch.equal(default.inside, plain.inside)


def test_explicit_pool_and_window_on_discrete_x_share_each_distinct_value():
    galton = GaltonBoard()
    model = exact(galton)
    grid = model.grid(11)
    q = pooled_statistic(model, galton, grid, Window(grid, 2), 30, 40, 500, seeded_generator(0, 5), 5)
    assert q.shape == (30,) and torch.isfinite(q).all() and (q >= 0).all()
    assert toy_quantile(q, 0.9) >= 0


@pytest.mark.parametrize("kwargs, match", [({"window": 0}, "window"), ({"pool": -3}, "pool")])
def test_bad_window_or_pool(kwargs, match):
    sim = Weinberg()
    with pytest.raises(ValueError, match=match):
        confidence_region(sim, observed(sim, sim.reference, 5), method="neyman", grid=3, toys=5, progress=False,
                          **kwargs)


def test_thresholds_do_not_depend_on_the_batching():
    sim = Weinberg()
    model = exact(sim)
    grid = model.grid(5)
    whole = neyman_thresholds(model, sim, grid, 0.9, 40, 10, 2, progress=False, window=1, pool=200)
    parts = [thresholds_at(model, sim, grid, 0.9, 40, 10, 2, 1, 200, [j]) for j in (0, 12, 24)]
    assert [float(whole[j]) for j in (0, 12, 24)] == pytest.approx([p[0] for p in parts], abs=1e-9)


def test_infer_reports_the_window_and_its_edge_note():
    from goldmine.workflow import infer, region_notes

    sim = Weinberg()
    x = observed(sim, sim.reference, 30, seed=2)
    result = infer(sim, sim, x, method="neyman", toys=40, grid_points=5, progress=False)
    assert result["window"] == NEYMAN_WINDOW and result["pool"] == pool_size(40, 30, 2, 0.95)
    notes = region_notes(result)
    assert any("window's edge" in note for note in notes) == (result["window_edge"] > 0)


@pytest.mark.parametrize("hidden, activation, n, m", [((128, 128, 128), "silu", 5000, 3),  # s in several blocks
                                                      ((16, 8), "tanh", 7, 300),  # several θ per block
                                                      ((), "silu", 50, 4)])  # g one affine layer
def test_the_split_first_layer_table_is_the_pairwise_network(hidden, activation, n, m):
    from goldmine.estimators.ratio import RatioNetwork

    torch.manual_seed(0)
    net = RatioNetwork(2, 3, torch.zeros(2), hidden, activation).eval()
    net.x_norm.mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
    net.theta_norm.std.copy_(torch.tensor([0.3, 2.0]))
    s, theta = net.features(torch.randn(n, 3)), torch.randn(m, 2)
    with torch.no_grad():
        pairwise = net._h(s.repeat(m, 1), theta.repeat_interleave(n, 0)).reshape(m, n)
        table = net.table(s, theta)
    # the same sums in another order: float32 rounding of terms of order one
    assert table.shape == (m, n) and torch.allclose(table, pairwise, rtol=1e-5, atol=1e-5)
