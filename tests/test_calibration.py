"""Expected coverage and SBC ranks (goldmine.inference.calibration) of exact and deliberately wrong posteriors."""

import math

import pytest
import torch
from scipy import stats

import goldmine as gm
from goldmine.inference.calibration import LEVELS, Calibration, expected_coverage
from goldmine.simulators import box_prior

POISSON = gm.simulators.Poisson()
PROBLEMS = 100
# Short chains (8 × 100 draws after 60 warm-up steps, bulk ESS ≈ 200) are enough for 50 nearly
# independent draws per problem; every posterior then warns about its ESS, which is counted.
# the calibration machinery, not the sampler, is under test here: the cheapest sampler
SHORT = dict(chains=8, warmup=60, steps=100, sampler="metropolis")


class Laplace:
    """The Laplace approximation of the Poisson posterior with its sd scaled by `widen` (normal in θ,
    cut to nothing: it may leak outside the prior, which only makes it more wrong)."""

    def __init__(self, x, widen: float):
        total = float(x.sum())
        self.mean = math.log(max(total, 0.5) / len(x))
        self.sd = widen / math.sqrt(max(total, 0.5))

    def sample(self, n, generator=None):
        return self.mean + self.sd * torch.randn(n, 1, generator=generator, dtype=torch.float64)

    def log_prob(self, theta):
        return torch.distributions.Normal(self.mean, self.sd).log_prob(torch.as_tensor(theta)[:, 0])


@pytest.mark.slow
def test_exact_mcmc_posterior_is_calibrated():
    with pytest.warns(RuntimeWarning, match=f"{PROBLEMS} of {PROBLEMS} posteriors issued warnings"):
        result = expected_coverage(POISSON, POISSON, n_obs=5, problems=PROBLEMS, samples=50, seed=0,
                                   progress=False, **SHORT)
    assert isinstance(result, Calibration) and result.problems == PROBLEMS and result.warned == PROBLEMS
    assert result.ranks.shape == (PROBLEMS, 1) and result.ranks.min() >= 0 and result.ranks.max() <= 50
    assert result.levels.shape == result.coverage.shape == result.stderr.shape == (len(LEVELS),)
    assert torch.equal(result.covered.double().mean(0), result.coverage)
    assert POISSON.prior.support.check(result.theta).all()
    # Under calibration the coverage at level α is Binomial(100, α)/100; 4 standard errors at each of
    # the 20 levels (measured max |z| 1.8–2.4 over seeds 0–2)
    z = (result.coverage - result.levels) / result.stderr
    assert z.abs().max() < 4, z
    # c* is uniform on the 51 values k/50 (a step of 0.02 from U(0, 1), far below the KS critical
    # value 0.19 at p = 1e-3 for 100 problems), and so are the ranks in 0..50
    assert stats.kstest(result.credibility.numpy(), "uniform").pvalue > 1e-3
    assert result.rank_pvalue().min() > 1e-3, result.rank_histogram()


def test_overconfident_and_underconfident_posteriors_are_caught():
    # Shrinking the posterior's sd threefold drops the 90% coverage to about P(|Z| < 1.645/3) = 0.42;
    # widening it threefold raises the 50% coverage to about P(|Z| < 3·0.674) = 0.96. Both are more
    # than 9 standard errors away.
    narrow = expected_coverage(lambda x: Laplace(x, 1 / 3), POISSON, n_obs=5, problems=PROBLEMS, levels=(0.5, 0.9),
                               samples=200, progress=False)
    assert narrow.coverage[1] < 0.9 - 6 * narrow.stderr[1], narrow.coverage
    assert narrow.rank_pvalue() < 1e-6  # ranks pile up at 0 and 200
    wide = expected_coverage(lambda x: Laplace(x, 3.0), POISSON, n_obs=5, problems=PROBLEMS, levels=(0.5, 0.9),
                             samples=200, progress=False)
    assert wide.coverage[0] > 0.5 + 6 * wide.stderr[0], wide.coverage
    # the Laplace approximation itself is close to calibrated with 5 counts (it knows the truth's shape)
    fair = expected_coverage(lambda x: Laplace(x, 1.0), POISSON, n_obs=5, problems=PROBLEMS, levels=(0.5, 0.9),
                             samples=200, progress=False)
    assert ((fair.coverage - fair.levels).abs() < 4 * fair.stderr).all(), fair.coverage


def test_rank_histogram_counts_every_problem():
    result = expected_coverage(lambda x: Laplace(x, 1.0), POISSON, problems=30, samples=9, levels=(0.5,),
                               progress=False)
    counts, expected = result.rank_histogram(bins=4)
    assert counts.shape == (4, 1) and int(counts.sum()) == 30
    # the 10 rank values 0..9 fall into groups of 3, 3, 2, 2
    assert torch.allclose(expected, torch.tensor([9.0, 9.0, 6.0, 6.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="bins"):
        result.rank_histogram(bins=11)


def test_reproducible():
    run = dict(problems=10, samples=20, levels=(0.5,), seed=3, progress=False)
    a = expected_coverage(lambda x: Laplace(x, 1.0), POISSON, **run)
    b = expected_coverage(lambda x: Laplace(x, 1.0), POISSON, **run)
    assert torch.equal(a.credibility, b.credibility) and torch.equal(a.ranks, b.ranks)


def test_bad_input_is_refused():
    def make(x):
        return Laplace(x, 1.0)

    with pytest.raises(TypeError, match="Simulator"):
        expected_coverage(make, "poisson")
    with pytest.raises(ValueError, match=r"shape \(1,\)"):
        expected_coverage(make, POISSON, prior=box_prior([0.0, 0.0], [1.0, 1.0]))
    for bad in (dict(problems=0), dict(n_obs=0), dict(samples=2.5)):
        with pytest.raises(ValueError, match="positive integer"):
            expected_coverage(make, POISSON, progress=False, **bad)
    for levels in ((0.5, 1.0), (), (0.0,)):
        with pytest.raises(ValueError, match="levels"):
            expected_coverage(make, POISSON, levels=levels, progress=False)
    with pytest.raises(TypeError, match="only apply when make_posterior is a model"):
        expected_coverage(make, POISSON, chains=4, progress=False)

    class Wrong(Laplace):
        def sample(self, n, generator=None):
            return super().sample(n + 1, generator)

    with pytest.raises(ValueError, match="returned shape"):
        expected_coverage(lambda x: Wrong(x, 1.0), POISSON, problems=2, progress=False)
