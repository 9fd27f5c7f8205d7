"""Posterior checks (goldmine.inference.predictive): predictive p-values against a right and a wrong posterior,
the report with coverage, its figure, bad input."""

import json
import warnings

import pytest
import torch

import goldmine as gm
from goldmine.inference.predictive import posterior_checks, predictive_check
from goldmine.simulators import Poisson
from goldmine.simulators.base import DTYPE

SIM = Poisson()
X = SIM.sample(torch.full((30, 1), 2.0), generator=torch.Generator().manual_seed(0)).x


class GridPosterior:
    """The exact Poisson posterior (uniform prior) on a fine grid, optionally shifted in θ: draws only."""

    def __init__(self, x, shift=0.0):
        self.x_obs = x
        self.grid = torch.linspace(0.2, 7.0, 6801, dtype=DTYPE)
        log_p = gm.inference.Model(SIM).log_likelihood(self.grid[:, None], x)
        self.p = torch.softmax(log_p, 0)
        self.shift = shift

    def sample(self, n, generator=None):
        pick = torch.multinomial(self.p, n, replacement=True, generator=generator)
        return (self.grid[pick] + self.shift).clamp(0.2, 7.0)[:, None]


def test_a_right_posterior_reproduces_the_data_and_a_wrong_one_is_flagged():
    right = predictive_check(GridPosterior(X), SIM, replicates=400, seed=1)
    assert right.names == ["mean x[0]", "std x[0]"] and right.replicated.shape == (400, 2)
    assert right.flagged == [], right.two_sided
    # e^2.5 against e^2: the replicated means lie far above the observed one
    wrong = predictive_check(GridPosterior(X, shift=0.5), SIM, replicates=400, seed=1)
    assert "mean x[0]" in wrong.flagged and float(wrong.p_value[0]) > 0.99


@pytest.mark.slow
def test_the_report_holds_both_checks_as_numbers_text_and_a_figure(tmp_path):
    def make_posterior(x):
        return gm.inference.posterior(SIM, x, sampler="importance", chains=4, steps=500, progress=False)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        report = posterior_checks(GridPosterior(X), SIM, model=make_posterior, problems=20, n_obs=30, samples=50,
                                  levels=(0.5, 0.9), seed=0)
    numbers = json.loads(json.dumps(report.numbers()))
    assert set(numbers) == {"predictive", "coverage"} and numbers["coverage"]["problems"] == 20
    text = report.summary()
    assert "posterior predictive check" in text and "50%" in text and "90%" in text
    png = gm.plots.posterior_checks(report, path=tmp_path / "checks.png")
    assert png.exists() and png.stat().st_size > 1000


def test_bad_input_is_refused():
    post = GridPosterior(X)
    with pytest.raises(ValueError, match="replicates"):
        predictive_check(post, SIM, replicates=1)
    with pytest.raises(ValueError, match="alpha"):
        predictive_check(post, SIM, alpha=1.5)
    with pytest.raises(TypeError, match="Simulator"):
        predictive_check(post, "poisson")
    with pytest.raises(ValueError, match="needs model="):
        posterior_checks(post, SIM, problems=5)
