"""ScoreEstimator (sally, sallino) against the exact Galton score at θ_ref."""

import pytest
import torch

import goldmine as gm

SIM = gm.simulators.GaltonBoard()


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    data = gm.simulate(SIM, 20_000, tmp_path_factory.mktemp("score") / "g.h5", seed=0, progress=False)
    return gm.ScoreEstimator("sally", epochs=40, hidden=(64, 64), seed=0, progress=False).fit(data), data


def exact_score_and_probs():
    x = torch.arange(32.0)[:, None]
    theta = torch.zeros(32, 1, dtype=torch.float64, requires_grad=True)
    probs = SIM.slot_probs(torch.zeros(1, 1))[0]
    reachable = probs > 1e-12
    (score,) = torch.autograd.grad(SIM.log_prob(x, theta)[reachable].sum(), theta)
    return x[reachable], score[reachable, 0], probs[reachable]


@pytest.mark.slow
def test_sally_matches_the_exact_score(fitted):
    """E_{x~p(x|θ_ref)}(t̂ − t)² is small against the score's variance, the Fisher information."""
    est, _ = fitted
    x, score, probs = exact_score_and_probs()
    error = (probs * (est.score(x)[:, 0].double() - score) ** 2).sum()
    fisher = (probs * score**2).sum()
    assert error < 0.05 * fisher, (error, fisher)


@pytest.mark.slow
def test_fisher_information(fitted):
    est, data = fitted
    x, score, probs = exact_score_and_probs()
    fisher = (probs * score**2).sum()
    x_ref = data.tensors(["x"], label=1)["x"]
    estimate = est.fisher_information_at_reference(x_ref)[0, 0]
    # sampling error of the mean of t̂² over n rows, plus the surrogate's bias: 10 % of I
    assert abs(estimate - fisher) < 0.1 * fisher, (estimate, fisher)


@pytest.mark.slow
def test_sallino_summary_and_save_load(fitted, tmp_path):
    est, data = fitted
    x = torch.arange(10.0, 20.0)[:, None]
    assert est.summary(x).shape == (10, 1)
    lino = gm.ScoreEstimator("sallino", epochs=1, progress=False).fit(data)
    h = lino.summary(x, torch.tensor([0.5]))
    torch.testing.assert_close(h, 0.5 * lino.score(x)[:, 0])
    with pytest.raises(ValueError, match="needs theta"):
        lino.summary(x)
    again = gm.load(est.save(tmp_path / "sally"))
    torch.testing.assert_close(again.score(x), est.score(x), rtol=0, atol=0)


def test_unknown_method():
    with pytest.raises(ValueError, match="known: sally, sallino"):
        gm.ScoreEstimator("saly")


@pytest.mark.slow
def test_summary_histogram_likelihood(fitted):
    """The histogram of sally's summary per θ bin is a ratio estimator far better than log r̂ = 0."""
    from goldmine.estimators.score import SummaryHistogram
    from goldmine.evaluate import log_ratio_error

    est, data = fitted
    hist = SummaryHistogram(est, theta_bins=10).fit(data)
    error = log_ratio_error(hist, SIM)["mse"]
    trivial = log_ratio_error(type("Zero", (), {"theta_dim_": 1, "x_dim_": 1, "reference_": torch.zeros(1),
                                                "log_ratio": lambda self, x, t: torch.zeros(len(x))})(), SIM)["mse"]
    assert error < 0.15 * trivial, (error, trivial)
