"""gm.infer in one call and sequential rounds (issue 18, items 3 and 4).

The simulator is x = θ + N(0, σ²) in two dimensions under the uniform prior on [−2, 2]², whose
posterior for an x_o well inside the box is N(x_o, σ²) per dimension up to a truncation of
less than 1e-30 of its mass.
"""

import math

import pytest
import torch

import goldmine as gm
from goldmine.sequential import SEQUENTIAL_METHODS

SIGMA = 0.2
PRIOR = gm.simulators.box_prior([-2.0, -2.0], [2.0, 2.0])
X_O = torch.tensor([[0.5, -0.3]])
MCMC = {"chains": 8, "warmup": 100, "steps": 200}


def shift(theta):
    """A float32 simulator as sbi users write them: torch in, torch out, global randomness."""
    return theta.float() + SIGMA * torch.randn(theta.shape)


def test_bad_calls_name_the_fix():
    with pytest.raises(ValueError, match="needs the observation"):
        gm.infer(shift, PRIOR)
    with pytest.raises(ValueError, match="needs its prior"):
        gm.infer(shift, None, X_O)
    with pytest.raises(ValueError, match="one observation"):
        gm.infer(shift, PRIOR, torch.zeros(3, 2), progress=False)
    with pytest.raises(ValueError, match="does not learn from simulations"):
        gm.infer(shift, PRIOR, X_O, method="abc", progress=False)
    with pytest.raises(NotImplementedError, match="black-box"):
        gm.infer(shift, PRIOR, X_O, method="alices", progress=False)
    with pytest.raises(ValueError, match="no option 'epoch'"):
        gm.infer(shift, PRIOR, X_O, epoch=3, progress=False)
    with pytest.raises(ValueError, match="sequential rounds take"):
        gm.infer("galton", None, torch.tensor([[10.0]]), method="sally", rounds=2, progress=False)
    with pytest.raises(ValueError, match="at least 20 per round"):
        gm.infer(shift, PRIOR, X_O, budget=50, rounds=3, progress=False)
    with pytest.raises(TypeError, match="does not implement log_prob"):
        gm.infer(shift, _NoDensity(), X_O, progress=False)


def test_a_proposal_outside_the_prior_is_refused():
    class Wide:
        def sample(self, n):
            return 3 * torch.ones(n, 2)

    with pytest.raises(ValueError, match="outside the prior's support"):
        gm.infer(shift, PRIOR, X_O, method="nre", budget=100, proposal=Wide(), progress=False)


class _NoDensity(torch.distributions.Distribution):
    arg_constraints = {}

    def __init__(self):
        super().__init__(event_shape=(2,), validate_args=False)

    def sample(self, sample_shape=()):
        return torch.rand(*sample_shape, 2)


class _ExactGaussian:
    """q(θ|x_o) = N(x_o, σ²I) exactly, with the estimator's sample and log_prob."""

    def sample(self, x, n, generator=None):
        return x.double() + SIGMA * torch.randn(n, 2, generator=generator, dtype=torch.float64)

    def log_prob(self, theta, x):
        return torch.distributions.Normal(x.double(), SIGMA).log_prob(theta.double()).sum(-1)


def test_the_truncated_prior_keeps_the_region_of_all_but_the_truncation_of_the_posterior():
    from goldmine.sequential import THRESHOLD_DRAWS, TRUNCATION, truncated_prior

    theta, acceptance = truncated_prior(_ExactGaussian(), PRIOR, X_O, 3000, seed=0)
    # the region is the disc of radius² r² = −2 ln(TRUNCATION)·σ² (the mass of N(x_o, σ²I) outside radius r is
    # exp(−r²/2σ²)); τ from THRESHOLD_DRAWS draws puts TRUNCATION ± se of the mass outside, which moves r²/σ² by
    # 2·se/TRUNCATION; 4 of those are allowed, on the area (the acceptance, a fraction of the 4 × 4 box) and the radius
    r2 = -2 * math.log(TRUNCATION)
    se = 2 * math.sqrt(TRUNCATION * (1 - TRUNCATION) / THRESHOLD_DRAWS) / TRUNCATION
    assert acceptance == pytest.approx(math.pi * r2 * SIGMA**2 / 16, rel=4 * se / r2)
    radius2 = ((theta - X_O.double()) ** 2).sum(1) / SIGMA**2
    assert theta.shape == (3000, 2) and float(radius2.max()) < r2 + 4 * se and PRIOR.support.check(theta).all()
    # inside the disc the truncated prior is uniform: a quarter of the draws within half the radius
    assert float((radius2 < radius2.max() / 4).double().mean()) == pytest.approx(0.25, abs=4 * math.sqrt(0.25 * 0.75 / 3000))


@pytest.mark.slow
def test_npe_in_one_call_is_simulate_fit_and_sample(tmp_path):
    quick = dict(epochs=8, lr=2e-3, batch_size=64)  # a short fixed schedule (npe's default trains to convergence)
    result = gm.infer(shift, PRIOR, X_O[0], budget=600, seed=0, progress=False, **quick)
    assert result.simulations == 600 == len(result.data) and result.method == "npe"
    again = gm.PosteriorEstimator(prior=PRIOR, seed=0, progress=False, **quick).fit(result.data)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    assert torch.equal(again.sample(X_O, 100, generator=g()), result.estimator.sample(X_O, 100, generator=g()))
    draws = result.sample((4000,), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(draws.mean(0), X_O[0].double(), atol=1.5 * SIGMA)  # loose: 8 epochs on 540 rows
    assert bool(torch.isfinite(result.log_prob(X_O.double())).all())
    assert "npe: 600 simulator runs in 1 round(s)" in result.summary()
    assert result.plot(tmp_path / "post.png").stat().st_size > 0


@pytest.mark.slow
def test_sequential_npe_truncates_the_prior_and_counts_every_run():
    result = gm.infer(shift, PRIOR, X_O, budget=800, rounds=2, seed=0, progress=False, epochs=8)
    assert [r["proposal"] for r in result.rounds] == ["prior", "truncated prior"]
    assert [r["start"] for r in result.rounds] == ["fresh", "previous round's weights"]
    assert result.simulations == 800 == len(result.data)
    assert 0 < result.rounds[1]["acceptance"] < 1  # the region leaves part of the box out
    theta = result.data.tensors(["theta"], dtype=torch.float64)["theta"]
    assert PRIOR.support.check(theta).all()
    draws = result.sample((4000,), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(draws.mean(0), X_O[0].double(), atol=1.5 * SIGMA)  # loose: 8 epochs


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:the MCMC chains")
def test_sequential_nle_and_nre_propose_from_the_posterior():
    for method in ("nle", "nre"):
        result = gm.infer(shift, PRIOR, X_O, method=method, budget=400, rounds=2, seed=0, progress=False,
                          epochs=3, mcmc=MCMC)
        assert [r["proposal"] for r in result.rounds] == ["prior", "posterior"]
        assert result.simulations == 400 == len(result.data)
        assert result.posterior.kind == "mcmc" and result.sample(10).shape == (10, 2)
    assert set(SEQUENTIAL_METHODS) == {"npe", "nle", "nre"}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:the MCMC chains")
def test_sequential_gold_draws_pairs_at_the_posterior():
    sim = gm.simulators.GaltonBoard()
    x_obs = sim.sample(torch.full((20, 1), 0.3), generator=torch.Generator().manual_seed(0)).x
    result = gm.infer(sim, None, x_obs, method="rolr", budget=1000, rounds=2, seed=0, progress=False, epochs=5,
                      mcmc=MCMC)
    assert [r["proposal"] for r in result.rounds] == ["prior", "posterior"]
    assert result.simulations == 1000 == len(result.data) and result.data.has_gold
    rows = result.data.tensors(["theta", "label"], dtype=torch.float64)
    assert torch.equal(rows["label"][::2], torch.zeros(500, dtype=torch.long))  # whole pairs, shuffled
    assert torch.equal(rows["theta"][::2], rows["theta"][1::2])
    # half the pairs from the prior U(−1, 1) (mean 0 ± 0.026 over 500 rows), half from the posterior of 20 runs
    # at θ = 0.3 (its mean here is 0.57, exactly), so the θ of all rows average well above 0
    assert float(rows["theta"].mean()) > 0.15


@pytest.mark.slow
def test_goldmine_posterior_on_the_command_line(tmp_path, capsys):
    from goldmine.cli import main

    out = tmp_path / "post.json"
    assert main(["posterior", "poisson", "--true-theta", "2.0", "--budget", "400", "--option", "epochs=2",
                 "--quiet", "-o", str(out)]) == 0
    summary = __import__("json").loads(out.read_text())
    assert summary["simulations"] == 400 and summary["method"] == "npe" and len(summary["mean"]) == 1
    assert out.with_suffix(".png").exists() and "npe: 400 simulator runs" in capsys.readouterr().out
    assert main(["posterior", "poisson", "--true-theta", "2.0", "--method", "abc", "--quiet"]) == 2
    assert "does not learn from simulations" in capsys.readouterr().err


def test_a_later_round_continues_from_the_weights_of_the_round_before():
    from goldmine.sequential import _fit_round

    g = torch.Generator().manual_seed(0)
    theta = 4 * torch.rand(300, 2, generator=g, dtype=torch.float64) - 2
    data = gm.memory.InMemoryData((theta, theta + SIGMA * torch.randn(300, 2, generator=g, dtype=torch.float64)))
    small = dict(prior=PRIOR, transforms=1, hidden=(8,), epochs=1, progress=False)
    first = _fit_round(lambda: gm.PosteriorEstimator(seed=0, **small), data, None, None)
    # a step size of 1e-12 leaves the weights where training starts: the first round's, or a fresh seed's
    still = lambda: gm.PosteriorEstimator(seed=1, lr=1e-12, **small)  # noqa: E731
    flow = lambda est: torch.cat([p.detach().flatten() for p in est.network_.flow.parameters()])  # noqa: E731
    torch.testing.assert_close(flow(_fit_round(still, data, first, None)), flow(first), rtol=0, atol=1e-6)
    assert not torch.allclose(flow(_fit_round(still, data, None, None)), flow(first), atol=1e-3)
