"""Fisher information (exact and from sally) and the Cramér–Rao bound against the MLE's spread."""

import math

import pytest
import torch
from scipy.stats import chi2

import goldmine as gm
from goldmine import evaluate
from goldmine.inference.fisher import ONE_SIGMA, cramer_rao, fisher_information

GALTON = gm.simulators.GaltonBoard()


def test_exact_fisher_information_of_the_poisson_counts():
    sim = gm.simulators.Poisson()
    info = fisher_information(sim, torch.tensor([2.0]), n_obs=10)
    torch.testing.assert_close(info, torch.full((1, 1), 10 * math.exp(2.0), dtype=torch.float64))
    # the default point is the reference, and a Model of the simulator gives the same
    exact = evaluate.exact_fisher_information(sim, sim.reference)
    torch.testing.assert_close(fisher_information(gm.inference.Model(sim)), exact)
    with pytest.raises(ValueError, match="n_obs"):
        fisher_information(sim, n_obs=0)
    with pytest.raises(ValueError, match="only used with a score estimator"):
        fisher_information(sim, x=torch.zeros(3, 1))


@pytest.mark.slow
def test_sally_fisher_information_matches_the_exact_one(tmp_path):
    """E[t̂ t̂ᵀ] of a small sally over fresh runs at θ_ref is the exact I(θ_ref) within the Monte-Carlo
    error (4 standard errors of the mean of t̂²) plus 5% for the surrogate."""
    data = gm.simulate(GALTON, 20_000, tmp_path / "galton.h5", seed=0, progress=False)
    sally = gm.ScoreEstimator("sally", epochs=20, hidden=(64, 64), seed=0, progress=False).fit(data)
    x = GALTON.sample(GALTON.reference.expand(50_000, 1), generator=torch.Generator().manual_seed(1)).x
    exact = fisher_information(GALTON)[0, 0]
    estimate = fisher_information(sally, x=x)[0, 0]
    stderr = sally.score(x).double()[:, 0].pow(2).std() / math.sqrt(len(x))
    assert abs(estimate - exact) < 4 * stderr + 0.05 * exact, (float(estimate), float(exact), float(stderr))
    assert torch.allclose(fisher_information(sally, x=x, n_obs=7), 7 * fisher_information(sally, x=x))
    # the training set's own rows at θ_ref give an estimate too
    assert abs(fisher_information(sally, x=data)[0, 0] - exact) < 0.15 * exact
    with pytest.raises(ValueError, match="only at its reference"):
        fisher_information(sally, theta=torch.tensor([0.5]), x=x)
    with pytest.raises(ValueError, match="needs x"):
        fisher_information(sally)


def test_cramer_rao_is_reached_by_the_poisson_mle_for_large_n():
    """θ̂ = log x̄ for Poisson counts with log-rate θ; over 20000 toys of n = 200 its variance is
    1/(n e^θ) up to O(1/(n e^θ)²) = 0.07%, within 4 standard errors of the sample variance."""
    sim, theta, n, toys = gm.simulators.Poisson(), 2.0, 200, 20_000
    bound = cramer_rao(fisher_information(sim, torch.tensor([theta])), n_obs=n)
    # the sum of n counts is Poisson(n λ): draw it directly
    sums = torch.poisson(torch.full((toys,), n * math.exp(theta), dtype=torch.float64),
                         generator=torch.Generator().manual_seed(0))
    mle = (sums / n).log()
    variance = mle.var()
    stderr = variance * math.sqrt(2 / (toys - 1))
    assert abs(variance - bound.covariance[0, 0]) < 4 * stderr, (float(variance), float(bound.covariance[0, 0]))
    # log x̄ is the MLE that gm.inference.mle finds numerically
    x = sim.sample(torch.full((n, 1), theta), generator=torch.Generator().manual_seed(1)).x
    assert abs(float(gm.inference.mle(sim, x).theta) - math.log(float(x.mean()))) < 1e-4


def test_galton_mle_spread_exceeds_the_bound_at_small_n():
    """With n = 20 observations the exact MLE (on a fine θ grid) of the Galton board scatters more
    than the Cramér–Rao bound allows an efficient estimator: about 30% more."""
    theta, n, toys = 0.3, 20, 2000
    grid = torch.linspace(-1, 1, 2001, dtype=torch.float64)[:, None]
    probs = GALTON.slot_probs(grid)  # (g, 32); slots no ball reaches have p = 0 and zero counts
    log_p = torch.where(probs > 0, probs, torch.ones(())).log()
    x = GALTON.sample(torch.full((toys * n, 1), theta), generator=torch.Generator().manual_seed(0)).x
    counts = torch.nn.functional.one_hot(x[:, 0].long(), 32).reshape(toys, n, 32).sum(1).double()
    mle = grid[(counts @ log_p.T).argmax(1), 0]
    assert abs(float(gm.inference.mle(GALTON, x[:n]).theta) - float(mle[0])) < 2e-3  # one grid step
    bound = cramer_rao(fisher_information(GALTON, torch.tensor([theta])), n_obs=n).covariance[0, 0]
    variance = mle.var()
    assert variance > bound * (1 + 3 * math.sqrt(2 / (toys - 1))), (float(variance), float(bound))


def test_cramer_rao_geometry():
    info = torch.tensor([[4.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    bound = cramer_rao(info, n_obs=5, center=[42.0, 0.9])
    torch.testing.assert_close(bound.covariance, torch.linalg.inv(5 * info))
    torch.testing.assert_close(bound.std, bound.covariance.diagonal().sqrt())
    interval = bound.interval(0.95)
    torch.testing.assert_close(interval[:, 1] - bound.center, 1.959964 * bound.std, rtol=1e-5, atol=0)
    for level in (ONE_SIGMA, 0.95):
        points = bound.ellipse(level, points=50) - bound.center
        radius = (points @ torch.linalg.inv(bound.covariance) * points).sum(1)
        torch.testing.assert_close(radius, torch.full((50,), chi2.ppf(level, 2), dtype=torch.float64))
    scalar = cramer_rao(7.0, n_obs=2)
    assert scalar.covariance.shape == (1, 1) and math.isclose(float(scalar.covariance), 1 / 14)


def test_cramer_rao_rejects_bad_matrices():
    weinberg = gm.simulators.Weinberg()
    # A(θ) is the only combination of (E, G_f) that x measures: the exact information has rank 1
    with pytest.raises(ValueError, match="singular"):
        cramer_rao(fisher_information(weinberg), n_obs=100)
    with pytest.raises(ValueError, match="symmetric"):
        cramer_rao(torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="square"):
        cramer_rao(torch.ones(2, 3))
    with pytest.raises(ValueError, match="level"):
        cramer_rao(torch.eye(2)).ellipse(1.5)
    with pytest.raises(ValueError, match="dims"):
        cramer_rao(torch.eye(2)).ellipse(dims=(0, 0))
