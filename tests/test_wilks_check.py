"""The calibration check of a Wilks region (goldmine.inference.wilks_check): its multiple-testing rule keeps a
calibrated region's false alarms at FALSE_ALARM, the exact likelihood's regions warn no more often than that, and
surrogates that are too steep everywhere, or wrong only away from θ̂, warn with the coverage they measured."""

import math
import warnings

import pytest
import torch
from scipy.stats import binom, chi2

from goldmine.inference import CalibrationWarning, Model, confidence_region, coverage
from goldmine.inference.intervals import trust_notes
from goldmine.inference.wilks_check import (CHECK_BATCH, FALSE_ALARM, certain_verdict, check_points, check_region,
                                           reach_level, under_covers, warning_count)
from goldmine.simulators import GaltonBoard, Weinberg

DTYPE = torch.float64


class Scaled:
    """The exact log-likelihood times `scale`: q is `scale` times the true one, at every θ."""

    kind = "ratio"

    def __init__(self, sim, scale):
        self.sim, self.scale, self.theta_dim_, self.x_dim_ = sim, scale, sim.theta_dim, sim.x_dim

    def log_likelihood_terms(self, x, theta):
        return self.scale * self.sim.log_prob(x, theta)


class Penalised:
    """The exact Galton likelihood with a per-run error −a·(θ − knee)² above the knee: right below the knee, far too
    steep above it, as a surrogate that learned log r well only where θ̂ lies."""

    kind = "ratio"

    def __init__(self, sim, a, knee):
        self.sim, self.a, self.knee, self.theta_dim_, self.x_dim_ = sim, a, knee, sim.theta_dim, sim.x_dim

    def log_likelihood_terms(self, x, theta):
        return self.sim.log_prob(x, theta) - self.a * (theta[:, 0] - self.knee).clamp(min=0) ** 2


def observed(sim, theta, n, seed=0):
    theta = torch.as_tensor(theta, dtype=DTYPE).reshape(1, -1)
    return sim.sample(theta.expand(n, -1), generator=torch.Generator().manual_seed(seed)).x


def checked(model, x, toys=200, seed=0, **kwargs):
    """The region with its check, and the messages of the CalibrationWarnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CalibrationWarning)
        region = confidence_region(model, x, check=toys, seed=seed, progress=False, **kwargs)
    return region, [str(w.message) for w in caught if issubclass(w.category, CalibrationWarning)]


@pytest.mark.parametrize("toys", [100, 200, 300])
@pytest.mark.parametrize("points", [1, 3, 5])
def test_a_calibrated_region_warns_with_probability_at_most_false_alarm_whatever_the_points(toys, points):
    """Exactly, by the binomial law: each point's covering toys ~ Binomial(T_i, level) at a calibrated threshold
    (coverage exactly the level: the worst case), independent between points."""
    level = 0.95
    silent = 1.0
    for t in [toys] * points:
        warned = sum(binom.pmf(k, t, level) for k in range(t + 1) if under_covers(k / t, level, t, points))
        silent *= 1 - warned
    assert 1 - silent <= FALSE_ALARM
    # and the rule is no stricter than it needs to be: one covering toy more at a warning count would be allowed
    # beyond the budget (the largest warning count has a p-value below Šidák's bound, the next above it)
    t = toys
    largest = max(k for k in range(t + 1) if under_covers(k / t, level, t, points))
    bound = 1 - (1 - FALSE_ALARM) ** (1 / points)
    assert binom.cdf(largest, t, level) < bound <= binom.cdf(largest + 1, t, level)


def test_the_points_are_the_mle_and_the_ends_of_the_wider_region_along_each_axis():
    sim = GaltonBoard()
    x = observed(sim, [0.3], 100)
    region = confidence_region(sim, x)
    points = check_points(region)
    assert points.shape == (3, 1) and points[0, 0] == region.mle.theta[0]
    wide = confidence_region(sim, x, level=reach_level(0.95))
    assert reach_level(0.95) == pytest.approx(0.99)
    step = float(region.grid[1, 0] - region.grid[0, 0])
    assert abs(float(points[1, 0]) - wide.interval[0]) < step and abs(float(points[2, 0]) - wide.interval[1]) < step
    own = check_points(region, reach=0.95)  # the region's own ends
    assert abs(float(own[1, 0]) - region.interval[0]) < step and abs(float(own[2, 0]) - region.interval[1]) < step

    sim = Weinberg()
    region = confidence_region(sim, observed(sim, sim.reference, 100), grid=21)
    points = check_points(region)
    assert points.shape == (5, 2) and torch.equal(points[0], region.mle.theta.to(DTYPE))
    wide = region.q <= chi2.ppf(0.99, 2)
    for j in range(2):  # the lowest and highest θ_j of the 99% region, in this order per axis
        assert points[1 + 2 * j, j] == region.grid[wide, j].min() and points[2 + 2 * j, j] == region.grid[wide, j].max()
    assert all(bool(wide[((region.grid - p).abs().sum(1) < 1e-9)].all()) for p in points[1:])


def test_a_likelihood_scaled_by_two_warns_and_names_its_coverage():
    """q twice the true one: the χ²₁ threshold covers P(χ²₁ ≤ χ²₁(0.95)/2) = 0.834 at every θ."""
    sim, level = GaltonBoard(), 0.95
    expected = chi2.cdf(chi2.ppf(level, 1) / 2, 1)
    region, messages = checked(Model(Scaled(sim, 2.0), prior=sim, simulator=sim), observed(sim, [0.3], 100))
    c = region.calibration
    assert c["under_covers"] and len(messages) == 1 and f"lowest coverage {c['coverage']:.3f}" in messages[0]
    assert c["p_value"] < FALSE_ALARM and c["false_alarm"] == FALSE_ALARM
    for p in c["points"]:  # the check stops at the first certain warning: points after it may be unmeasured
        assert p["toys"] == 0 or abs(p["coverage"] - expected) < 4 * math.sqrt(expected * (1 - expected) / p["toys"])


def test_a_surrogate_wrong_only_away_from_the_mle_passes_at_the_mle_and_warns_where_it_is_wrong():
    """The blind spot of a check at θ̂ alone: the penalised likelihood covers at θ̂ (over-covers: the penalty lowers
    the toys' maxima above the knee), and under-covers at the truth 0.45 just above the knee; the check at the wider
    region's upper end sees it and names that θ."""
    sim, level = GaltonBoard(), 0.95
    model = Model(Penalised(sim, 20.0, 0.4), prior=sim, simulator=sim)
    x = observed(sim, [0.45], 100, seed=0)
    region, messages = checked(model, x, seed=0)
    at_mle = coverage(model, region.mle.theta, 100, level, toys=200, seed=0, progress=False)
    assert at_mle["coverage"] >= level  # the check of the earlier release (θ̂ only) was silent
    truth = coverage(model, [0.45], 100, level, toys=200, seed=1, progress=False)
    assert truth["coverage"] < 0.5 and not bool(region.contains(torch.tensor([[0.45]], dtype=DTYPE))[0])
    c = region.calibration
    assert c["under_covers"] and len(messages) == 1
    assert c["theta"][0] > 0.4 and f"at θ = {c['theta'][0]:.4g}" in messages[0]


@pytest.mark.slow
def test_the_exact_likelihood_warns_no_more_often_than_the_rule_allows():
    """40 regions of the exact Galton likelihood (two true θ, 20 data seeds), each checked by 200 toys: the warnings
    are at most Binomial(40, FALSE_ALARM), so more than its 0.999 quantile fails."""
    sim, regions = GaltonBoard(), 40
    warned = 0
    for k in range(regions):
        region, messages = checked(sim, observed(sim, [0.3 if k % 2 else -0.5], 100, seed=100 + k), seed=k)
        warned += region.calibration["under_covers"]
        assert bool(messages) == region.calibration["under_covers"]
    assert warned <= binom.ppf(0.999, regions, FALSE_ALARM)


@pytest.mark.slow
def test_a_two_dimensional_likelihood_scaled_by_two_warns():
    """Weinberg, q twice the true one: the χ²₂ threshold covers P(χ²₂ ≤ χ²₂(0.95)/2) = 0.78 asymptotically (more
    where the 99% region meets the prior's edge: with 100 runs θ is poorly identified), and the exact likelihood's
    region from the same data does not warn; 100 toys at each of the 5 points."""
    sim = Weinberg()
    x = observed(sim, sim.reference, 100)
    region, messages = checked(Model(Scaled(sim, 2.0), prior=sim, simulator=sim), x, toys=100, grid=21)
    assert region.calibration["under_covers"] and len(region.calibration["points"]) == 5 and len(messages) == 1
    exact, messages = checked(sim, x, toys=100, grid=21)
    assert not exact.calibration["under_covers"] and not messages


@pytest.mark.parametrize("toys, points", [(50, 1), (200, 3), (300, 5)])
def test_a_curtailed_verdict_is_the_verdict_of_all_the_toys(toys, points):
    """On random covering sequences around the warning count: the first certain verdict, after any batch, is the
    rule's verdict on the whole sequence, and the whole sequence always has one."""
    level, g = 0.95, torch.Generator().manual_seed(0)
    warn = warning_count(toys, level, points)  # the rule, by count: it warns up to this many covering toys
    assert all(under_covers(k / toys, level, toys, points) == (k <= warn) for k in range(warn - 3, warn + 4))
    stopped = 0
    for k in range(400):
        c = 0.80 + 0.18 * k / 400  # from clearly under-covering to calibrated
        covers = (torch.rand(toys, generator=g) < c).long().cumsum(0).tolist()  # covering toys among the first
        full = under_covers(covers[-1] / toys, level, toys, points)
        assert certain_verdict(covers[-1], toys, toys, level, points) == ("under-covers" if full else "covers")
        for batch in (1, CHECK_BATCH):
            for done in range(batch, toys + 1, batch):
                verdict = certain_verdict(covers[done - 1], done, toys, level, points)
                if verdict is not None:
                    assert verdict == ("under-covers" if full else "covers")
                    stopped += done < toys
                    break
    assert stopped > 0


def exact_ratio(sim, scale=1.0):
    return Model(Scaled(sim, scale), prior=sim, simulator=sim)




@pytest.mark.parametrize("name, scale, theta", [("galton", 2.0, [0.3]), ("shift", 1.0, [0.3]), ("shift", 2.0, [0.3]),
                                               pytest.param("galton", 1.0, [0.3], marks=pytest.mark.slow),
                                               pytest.param("galton", 1.4, [-0.5], marks=pytest.mark.slow),
                                               pytest.param("shift", 1.3, [-0.5], marks=pytest.mark.slow)])
def test_the_curtailed_check_has_the_full_checks_verdict_with_fewer_toys(name, scale, theta, shift):
    """Real checks (the exact likelihood scaled: 1 calibrated, above 1 too steep; discrete and continuous x): the
    same verdict as every toy at every point; each point's count is a prefix of its full count; with continuous x a
    clear warning stops early and the warning names the toys its coverage is measured by."""
    sim, toys = GaltonBoard() if name == "galton" else shift, 200
    region = confidence_region(exact_ratio(sim, scale), observed(sim, theta, 100, seed=3), grid=101, progress=False)
    full = check_region(region, sim, toys, seed=1, curtail=False)
    cut = check_region(region, sim, toys, seed=1)
    assert cut["under_covers"] == full["under_covers"] and full["evaluated"] == toys * len(full["points"])
    assert cut["evaluated"] <= full["evaluated"]
    for p, q in zip(cut["points"], full["points"]):
        assert p["theta"] == q["theta"] and q["toys"] == toys
        assert p["covered"] <= q["covered"] <= p["covered"] + toys - p["toys"]
        assert p["verdict"] in (q["verdict"], None) and (p["verdict"] is not None or cut["under_covers"])
    if scale == 2.0 and name == "shift":  # far below the level: the warning is certain long before the last toy
        assert cut["evaluated"] < full["evaluated"] / 2 and cut["coverage_toys"] < toys
    if full["under_covers"]:
        assert sum(p["verdict"] == "under-covers" for p in cut["points"]) == 1
        note = trust_notes((), cut)[0]
        assert f"lowest coverage {cut['coverage']:.3f}" in note
        assert (f"the first {cut['coverage_toys']} of them" in note) == (cut["coverage_toys"] < toys)
    else:
        assert all(p["verdict"] == "covers" for p in cut["points"])
