"""The inference Model interface and the maximum-likelihood estimate, against exact likelihoods."""

import math

import pytest
import torch

import goldmine as gm
from goldmine.inference import Model, mle, test_statistic


def draws(sim, theta, n, seed):
    theta = torch.as_tensor(theta, dtype=torch.float64).reshape(1, -1).expand(n, -1)
    return sim.sample(theta, generator=torch.Generator().manual_seed(seed)).x


def test_poisson_mle_is_the_closed_form_estimate():
    # x ~ Poisson(exp(θ)) per run, so θ̂ = log(mean x) when that lies inside the prior
    sim = gm.simulators.Poisson()
    x = draws(sim, 2.0, 500, 0)
    fit = mle(sim, x)
    assert fit.theta.item() == pytest.approx(math.log(x.mean().item()), abs=1e-4)
    assert fit.n_obs == 500


@pytest.mark.slow
def test_galton_mle_is_unbiased_over_toys():
    # the MLE over 40 toys of 100 runs scatters around θ_true with the Cramér–Rao spread
    sim = gm.simulators.GaltonBoard()
    truth = 0.3
    estimates = torch.tensor([mle(sim, draws(sim, truth, 100, seed)).theta.item() for seed in range(40)])
    info = gm.evaluate.exact_fisher_information(sim, torch.tensor([truth]))[0, 0].item()
    spread = 1 / math.sqrt(100 * info)
    assert abs(estimates.mean().item() - truth) < 4 * spread / math.sqrt(40) + 0.01
    assert 0.6 * spread < estimates.std().item() < 1.5 * spread


def test_mle_finds_the_global_optimum_of_a_bimodal_likelihood():
    # a likelihood with two optima: the grid stage must keep the better one, which sits far from the grid's argmax
    class TwoPeaks:
        theta_dim_, x_dim_ = 1, 1

        def log_ratio(self, x, theta):
            t = torch.as_tensor(theta, dtype=torch.float64)[:, 0]
            return torch.logaddexp(-((t + 0.6) / 0.004) ** 2, -((t - 0.5) / 0.3) ** 2 - 0.5) + 0 * torch.as_tensor(x)[:, 0]

    model = Model(TwoPeaks(), prior=gm.simulators.box_prior([-1.0], [1.0]))
    fit = mle(model, torch.zeros(1, 1), grid=torch.linspace(-1, 1, 21)[:, None])
    assert fit.theta.item() == pytest.approx(-0.6, abs=1e-3)


@pytest.mark.slow
def test_weinberg_two_dimensional_mle_and_q():
    sim = gm.simulators.Weinberg()
    truth = torch.tensor([45.0, 0.9])
    x = draws(sim, truth, 2000, 1)
    fit = mle(sim, x)
    assert (fit.theta - truth).abs().lt(torch.tensor([2.0, 0.2])).all()
    q = test_statistic(sim, torch.stack([fit.theta, truth]), x, fit=fit)
    assert q[0].item() == pytest.approx(0.0, abs=1e-6)
    assert 0 <= q[1].item() < 20  # a 2-dof χ² value at the truth, rarely above 14


def test_weights_make_an_asimov_data_set():
    # integer weights give the same ℓ as repeating the observations
    sim = gm.simulators.GaltonBoard()
    model = Model(sim)
    theta = torch.tensor([[-0.3], [0.2]])
    x = torch.tensor([[12.0], [16.0]])
    repeated = torch.tensor([[12.0], [12.0], [12.0], [16.0]])
    assert torch.allclose(model.log_likelihood(theta, x, weights=[3, 1]), model.log_likelihood(theta, repeated))


def test_surrogates_and_the_truth_share_one_code_path(tmp_path):
    sim = gm.simulators.GaltonBoard()
    data = gm.simulate(sim, 2000, tmp_path / "g.h5", seed=0)
    est = gm.RatioEstimator("alices", epochs=2, hidden=(16,)).fit(data)
    model = Model(est, prior=sim)
    assert model.kind == "ratio" and model.simulator is sim
    x = draws(sim, 0.2, 50, 3)
    grid = model.grid(11)
    expected = torch.stack([est.log_ratio(x, t).double().sum() for t in grid])
    assert torch.allclose(model.log_likelihood(grid, x), expected, atol=1e-4)
    assert -1 <= mle(model, x).theta.item() <= 1


def test_bad_input_names_the_fix():
    sim = gm.simulators.Weinberg()
    model = Model(sim)
    with pytest.raises(ValueError, match="empty"):
        model.check_x_obs(torch.zeros(0, 1))
    with pytest.raises(ValueError, match=r"shape \(n, 1\)"):
        mle(sim, torch.zeros(5, 3))
    with pytest.raises(ValueError, match="NaN"):
        mle(sim, torch.tensor([[0.1], [float("nan")]]))
    with pytest.raises(ValueError, match="outside the prior"):
        mle(sim, torch.zeros(3, 1), grid=torch.tensor([[30.0, 0.9]]))
    with pytest.raises(ValueError, match="event shape"):
        Model(sim, prior=gm.simulators.box_prior([0.0], [1.0]))
    with pytest.raises(NotImplementedError, match="no exact likelihood"):
        Model(gm.simulators.LotkaVolterra())
    with pytest.raises(ValueError, match="no prior and no bounds"):  # a Model without prior gives ℓ, not grids
        mle(Model(_FittedStub()), torch.zeros(3, 1))
    with pytest.raises(TypeError, match="not a surrogate"):
        Model(object(), prior=sim)


class _FittedStub:
    theta_dim_, x_dim_ = 2, 1

    def log_ratio(self, x, theta):
        return torch.zeros(len(x))


def test_likelihood_estimators_enter_through_their_density(tmp_path):
    # ℓ from log p̂(x|θ) differs from ℓ from log r̂(x|θ, θ_ref) only by a constant in θ
    sim = gm.simulators.Weinberg()
    data = gm.simulate(sim, 1000, tmp_path / "w.h5", seed=0, progress=False)
    est = gm.LikelihoodEstimator("nle", epochs=1, progress=False).fit(data)
    model = Model(est, prior=sim)
    assert model.kind == "likelihood"
    x = draws(sim, [45.0, 0.9], 20, 2)
    grid = model.grid(5)
    via_ratio = torch.stack([est.log_ratio(x, t).double().sum() for t in grid])
    shift = model.log_likelihood(grid, x) - via_ratio
    assert torch.allclose(shift, shift[0].expand_as(shift), atol=1e-3)
