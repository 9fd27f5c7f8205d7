"""benchmarks/region_coverage.py's verdicts, and the calibration check's warning on a deliberately biased surrogate:
it names the coverage the check measured."""

import math
import re
import sys
import warnings
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import goldmine as gm  # noqa: E402
from goldmine.inference import Model, confidence_region  # noqa: E402
from goldmine.inference.intervals import CalibrationWarning  # noqa: E402

import region_coverage as bench  # noqa: E402

DTYPE = torch.float64


def entry(method, seed, covs, warned, error=0.01):
    points = [dict(theta=[t], coverage=c, stderr=math.sqrt(c * (1 - c) / 250), toys=250,
                   check=dict(coverage=0.8 if w else 0.95, toys=200, warned=w, names_coverage=w))
              for t, c, w in zip((0.3, -0.5), covs, warned)]
    return dict(simulator="galton", budget=1000, seed=seed, method=method, grid=101, error=error, points=points)


def test_a_method_within_two_points_meets_the_target_and_a_silent_under_coverage_does_not():
    entries = [entry("good", s, (0.94, 0.96), (False, False)) for s in range(5)]
    entries += [entry("silent", s, (0.80, 0.95), (s > 0, False)) for s in range(5)]  # seed 0's case not warned
    entries += [entry("warned", s, (0.80, 0.95), (True, False)) for s in range(5)]
    rows = {r["method"]: r for r in bench.summary(entries)}
    assert rows["good"]["met"] and rows["good"]["verdict"] == "within 2 points"
    assert rows["good"]["coverage"] == pytest.approx(0.95) and rows["good"]["toys"] == 2500
    assert rows["silent"]["under_cases"] == 5 and rows["silent"]["under_warned"] == 4 and not rows["silent"]["met"]
    assert rows["silent"]["verdict"] == "under-covers, 1 of 5 cases silently"
    assert rows["warned"]["met"] and rows["warned"]["verdict"] == "under-covers, every case warned"


def test_the_spread_target_reads_the_default_methods_errors_over_five_seeds():
    tight = [entry("alice", s, (0.95, 0.95), (False, False), error=0.01 * (1 + 0.2 * s)) for s in range(5)]
    loose = [dict(e, method="carl", error=0.01 * 3 ** e["seed"]) for e in tight]
    rows = bench.summary(tight + loose)
    spread = bench.targets(rows, "alice")["spread"]
    assert spread["met"] is True and spread["checks"]["galton/1000/alice"]["spread"] == pytest.approx(1.8)
    assert bench.targets(rows, "carl")["spread"]["met"] is False
    assert bench.targets(bench.summary(tight[:3]), "alice")["spread"]["met"] is None  # fewer than 5 seeds


class Shifted:
    """The exact Galton likelihood at θ + shift: a surrogate whose MLE is off by the shift, so its Wilks regions
    miss where the data put θ."""

    kind = "ratio"

    def __init__(self, sim, shift):
        self.sim, self.shift, self.theta_dim_, self.x_dim_ = sim, shift, sim.theta_dim, sim.x_dim

    def log_likelihood_terms(self, x, theta):
        return self.sim.log_prob(x, (theta + self.shift).clamp(-1.0, 1.0))


def test_the_warning_of_a_biased_surrogate_names_the_coverage_it_measured():
    sim, toys, level = gm.simulators.GaltonBoard(), 100, 0.95
    x = sim.sample(torch.full((50, 1), 0.3, dtype=DTYPE), generator=torch.Generator().manual_seed(0)).x
    model = Model(Shifted(sim, 0.3), prior=sim, simulator=sim)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CalibrationWarning)
        region = confidence_region(model, x, level, grid=31, check=toys, seed=0, progress=False)
    c = region.calibration
    messages = [str(w.message) for w in caught if issubclass(w.category, CalibrationWarning)]
    assert c["under_covers"] and len(messages) == 1
    # far below the level: more than 5 binomial standard errors of 100 toys
    assert c["coverage"] < level - 5 * math.sqrt(level * (1 - level) / toys)
    measured = re.search(r"lowest coverage (\d\.\d{3}) ± (\d\.\d{3}) at (θ̂|θ = -?[\d.]+), of 3 points .* checked by "
                         r"(\d+) toys", messages[0])
    assert measured, messages[0]
    assert float(measured[1]) == pytest.approx(c["coverage"], abs=5e-4)
    assert float(measured[2]) == pytest.approx(c["stderr"], abs=5e-4) and int(measured[4]) == toys
    where = "θ̂" if c["theta"] == c["points"][0]["theta"] else f"θ = {c['theta'][0]:.4g}"
    assert measured[3] == where


def check_of(points):
    """A stored check at several points: (covered, toys) per point."""
    return dict(points=[dict(covered=k, toys=t) for k, t in points])


def test_the_benchmark_scores_checks_at_several_points_by_the_current_rule_and_old_ones_by_theirs():
    se = math.sqrt(0.95 * 0.05 / 200)
    # the rule before: 1.5 binomial standard errors below the level at θ̂ alone
    assert bench.warns(dict(check=dict(coverage=0.925, toys=200)))  # 1.6 se below
    assert not bench.warns(dict(check=dict(coverage=0.93, toys=200)))  # 1.3 se below
    assert bench.warns_before(dict(coverage=0.95 - 1.51 * se, toys=200))
    assert not bench.warns_before(dict(coverage=0.95 - 1.49 * se, toys=200))
    # now: Šidák over the points; 3 points of 67 toys: P(Bin(67, 0.95) ≤ 58) = 0.006 < 1 − 0.95^(1/3) = 0.017
    assert bench.warns(dict(check=check_of([(67, 67), (58, 67), (66, 66)])))
    assert not bench.warns(dict(check=check_of([(67, 67), (59, 67), (66, 66)])))  # P(≤ 59) = 0.018
    assert bench.warns(dict(check=check_of([(67, 67), (59, 67), (66, 66)])), false_alarm=0.1)  # 1 − 0.9^(1/3) = 0.0345


def test_the_recheck_counts_set_the_check_before_beside_the_current_one():
    def rechecked(method, truth, before, now):
        point = dict(theta=[0.3], coverage=truth, stderr=0.01, toys=250, check_before=dict(coverage=before, toys=200),
                     check=check_of(now))
        return dict(simulator="galton", budget=1000, seed=0, method=method, grid=101, error=0.01, points=[point])

    calibrated, low = [(190, 200)] * 3, [(190, 200), (170, 200), (190, 200)]
    entries = [rechecked("alice", 0.80, 0.97, low),  # under-covers at the truth: silent before, warned now
               rechecked("carl", 0.80, 0.90, low),  # warned by both
               rechecked("rolr", 0.95, 0.97, low),  # covers at the truth, under-covers at a point of the region
               rechecked("exact", 0.95, 0.95, calibrated)]
    rows = {r["simulator"]: r for r in bench.recheck_counts(entries)}
    row = rows["galton"]
    assert (row["under"], row["under_before"], row[f"under_now_{bench.FALSE_ALARM:g}"]) == (2, 1, 2)
    assert (row["fine"], row["fine_before"], row[f"fine_now_{bench.FALSE_ALARM:g}"]) == (1, 0, 1)
    assert (row["exact"], row["exact_before"], row[f"exact_now_{bench.FALSE_ALARM:g}"]) == (1, 0, 0)
    assert rows["all"]["under"] == 2 and "| galton | 1000 | 2 | 1 | 2 |" in bench.recheck_table(list(rows.values()))


def test_variants_name_their_option_and_stay_out_of_the_targets():
    assert bench.variant("carl") == ("carl", {})
    assert bench.variant("carl+bal") == ("carl", {"balance": bench.PAPER_BALANCE})
    assert bench.variant("nre+bal10") == ("nre", {"balance": 10.0})
    assert bench.variant("carl+ens5") == ("carl", {"ensemble": 5})
    with pytest.raises(ValueError, match="unknown variant"):
        bench.variant("carl+xyz")
    exact = [entry("exact", s, (0.95, 0.95), (False, False)) for s in range(5)]
    wide = [entry("carl+bal", s, (1.0, 1.0), (False, False)) for s in range(5)]
    for e in exact + wide:  # the variant's regions twice the exact likelihood's on the same observed data
        for p in e["points"]:
            p["check"]["size"] = 0.2 * (2 if e["method"] == "carl+bal" else 1)
    rows = {r["method"]: r for r in bench.summary(exact + wide)}
    assert rows["carl+bal"]["size_ratio"] == pytest.approx(2.0) and rows["exact"]["size_ratio"] == pytest.approx(1.0)
    assert "galton/1000/carl+bal" not in bench.targets(list(rows.values()), "alice")["coverage"]["checks"]
