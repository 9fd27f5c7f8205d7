"""Coverage of confidence regions: nominal for Wilks and Neyman on the exact Galton likelihood, the
fast per-toy statistic against the full fit, and bad input."""

import math

import pytest
import torch
from scipy.stats import chi2

from goldmine.executor import seeded_generator
from goldmine.inference.diagnostics import coverage
from goldmine.inference.intervals import confidence_region
from goldmine.inference.toys import draw_toys, toy_statistic
from goldmine.inference.model import Model
from goldmine.simulators import GaltonBoard

DTYPE = torch.float64


@pytest.fixture(scope="module")
def galton():
    return GaltonBoard()


@pytest.mark.parametrize("method", ["wilks", "neyman"])
@pytest.mark.parametrize("level", [0.68, 0.95])
def test_regions_cover_the_truth_at_the_nominal_rate(galton, level, method):
    toys = 400
    out = coverage(galton, [0.3], n_obs=100, level=level, method=method, toys=toys, seed=11)
    assert (out["toys"], out["level"], out["method"]) == (toys, level, method)
    # binomial error of the checked toys, plus for Neyman that of the threshold's own 400 toys
    variance = level * (1 - level) / toys * (2 if method == "neyman" else 1)
    assert abs(out["coverage"] - level) < 3.5 * math.sqrt(variance)
    assert out["stderr"] == pytest.approx(math.sqrt(out["coverage"] * (1 - out["coverage"]) / toys
                                                    + (variance / 2 if method == "neyman" else 0)))
    if method == "wilks":
        assert out["threshold"] == chi2.ppf(level, 1)
    else:  # Wilks holds here, so the calibrated threshold is near the χ² quantile
        assert abs(out["threshold"] - chi2.ppf(level, 1)) < 0.5 * chi2.ppf(level, 1)


@pytest.mark.slow
def test_fast_toy_statistic_matches_the_full_fit_and_the_region(galton):
    theta = torch.tensor([[-0.4]], dtype=DTYPE)
    model, toys, threshold = Model(galton), 6, chi2.ppf(0.68, 1)
    x = draw_toys(galton, theta[0], toys, 100, seeded_generator(3, 0))
    fast = toy_statistic(model, x, model.grid(), theta)
    for k in range(toys):
        region = confidence_region(model, x[k], level=0.68)  # θ̂ by grid and Brent (mle)
        full = float(region.mle.q(model.log_likelihood(theta, x[k])))
        # the grid maximum refined by a quadratic is within ~1e-4 of Brent's in ℓ
        assert abs(float(fast[k]) - full) < 2e-3
        if abs(full - threshold) > 2e-3:
            assert bool(region.contains(theta)) == bool(fast[k] <= threshold)


def test_coverage_is_reproducible_and_seeded(galton):
    a = coverage(galton, [0.0], n_obs=50, toys=100, seed=1)
    assert coverage(galton, [0.0], n_obs=50, toys=100, seed=1) == a
    assert 0 <= a["coverage"] <= 1 and a["stderr"] > 0


@pytest.mark.parametrize("kwargs, match", [
    ({"level": 1.2}, "level must be a probability"),
    ({"method": "bootstrap"}, "unknown method 'bootstrap': choose one of 'wilks', 'neyman'"),
    ({"toys": 0}, "toys must be a positive integer"),
    ({"method": "neyman", "calibration_toys": -1}, "calibration_toys must be a positive integer"),
    ({"n_obs": 0}, "n_obs must be a positive integer"),
    ({"theta_true": [1.5]}, "outside the prior"),
    ({"theta_true": [[0.1], [0.2]]}, "one point"),
])
def test_bad_input_names_the_fix(galton, kwargs, match):
    args = {"theta_true": [0.3], "n_obs": 100} | kwargs
    with pytest.raises(ValueError, match=match):
        coverage(galton, **args)


def test_coverage_without_a_simulator_says_how_to_give_one(galton):
    class Oracle:
        theta_dim_, x_dim_ = 1, 1

        def log_ratio(self, x, theta):
            return galton.log_prob(x, theta)

    with pytest.raises(ValueError, match="pass simulator=sim"):
        coverage(Model(Oracle(), prior=galton.prior), [0.3], n_obs=100)
    out = coverage(Model(Oracle(), prior=galton.prior), [0.3], n_obs=100, toys=50, simulator=galton)
    assert out["coverage"] == coverage(galton, [0.3], n_obs=100, toys=50)["coverage"]
