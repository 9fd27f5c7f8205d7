"""Exact metrics: quadrature grids, ratio and score errors, Fisher information, bad input."""

import math

import pytest
import torch

from goldmine.evaluate import THRESHOLD, default_theta_grid, exact_fisher_information, log_ratio_error, score_error
from goldmine.simulators import BlackBoxSimulator, GaltonBoard, GaussianMixture, Poisson, Weinberg, box_prior

SIMULATORS = [GaltonBoard(), Poisson(), Weinberg(), Weinberg(sigma=0.03)]


class Oracle:
    """The exact surrogates, from sim.log_prob, optionally shifted by a constant offset."""

    def __init__(self, sim, offset=0.0):
        self.sim, self.offset = sim, offset
        self.theta_dim_, self.x_dim_, self.reference_ = sim.theta_dim, sim.x_dim, sim.reference

    def log_ratio(self, x, theta):
        ref = self.reference_.expand(len(x), -1)
        return self.sim.log_prob(x, theta) - self.sim.log_prob(x, ref) + self.offset

    def score(self, x):
        theta = self.reference_.expand(len(x), -1).clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.sim.log_prob(x, theta).sum(), theta)
        return grad + self.offset


@pytest.mark.parametrize("sim", SIMULATORS, ids=lambda s: repr(s))
def test_x_grid_integrates_the_likelihood_to_one(sim):
    x, w = sim.x_grid()
    assert x.dtype == w.dtype == torch.float64 and x.shape == (len(w), 1)
    low, high = sim.prior.base_dist.low, sim.prior.base_dist.high
    theta = torch.cat([low[None], high[None], low + (high - low) * torch.rand(8, sim.theta_dim, dtype=torch.float64,
                                                                             generator=torch.Generator().manual_seed(0))])
    g, m = len(theta), len(x)
    p = sim.log_prob(x.repeat(g, 1), theta.repeat_interleave(m, 0)).exp().reshape(g, m)
    torch.testing.assert_close((p * w).sum(1), torch.ones(g, dtype=torch.float64), rtol=0, atol=1e-9)


def test_x_grid_of_the_galton_board_is_its_slots():
    x, w = GaltonBoard().x_grid()
    assert x[:, 0].tolist() == list(range(32)) and w.eq(1).all()


def test_simulators_without_a_grid_say_so():
    with pytest.raises(NotImplementedError, match="x_grid"):
        GaussianMixture(2).x_grid()


@pytest.mark.parametrize("sim", SIMULATORS[:3], ids=lambda s: s.name)
def test_oracle_has_zero_error_and_an_offset_costs_its_square(sim):
    assert log_ratio_error(Oracle(sim), sim)["mse"] < 1e-20
    c = 0.3
    out = log_ratio_error(Oracle(sim, offset=c), sim)
    # Σ_x w p(x|θ) over the nodes above THRESHOLD is 1 up to ~1e-9 (test above)
    torch.testing.assert_close(out["per_theta"], torch.full_like(out["per_theta"], c**2), rtol=1e-8, atol=0)
    assert out["mse"] == pytest.approx(c**2, rel=1e-8)


def test_galton_error_matches_a_hand_computed_sum():
    """log r̂ = log r + θ·x/31: per θ the error is Σ_x p(x|θ)·(θx/31)², summed slot by slot."""
    sim = GaltonBoard()

    class Tilted(Oracle):
        def log_ratio(self, x, theta):
            return super().log_ratio(x, theta) + theta[:, 0] * x[:, 0] / 31

    grid = torch.tensor([[-0.8], [0.1], [0.5]], dtype=torch.float64)
    out = log_ratio_error(Tilted(sim), sim, theta_grid=grid)
    probs = sim.slot_probs(grid)
    expected = [sum(float(probs[i, k]) * (float(grid[i, 0]) * k / 31) ** 2 for k in range(32)
                    if probs[i, k] > THRESHOLD) for i in range(3)]
    torch.testing.assert_close(out["per_theta"], torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)
    assert out["mse"] == pytest.approx(sum(expected) / 3, rel=1e-12)
    assert torch.equal(out["theta_grid"], grid)


def test_default_theta_grids():
    g = default_theta_grid(GaltonBoard())
    torch.testing.assert_close(g[:, 0], torch.linspace(-1, 1, 101, dtype=torch.float64))
    w = default_theta_grid(Weinberg())
    assert w.shape == (441, 2) and w.min(0).values.tolist() == [40, 0.5] and w.max(0).values.tolist() == [50, 1.2]
    assert len(w.unique(dim=0)) == 441
    with pytest.raises(ValueError, match="theta_grid"):
        default_theta_grid(GaussianMixture(3))


@pytest.mark.parametrize("sim", SIMULATORS[:3], ids=lambda s: s.name)
def test_score_error_of_oracle_is_zero_and_offset_costs_c2_d(sim):
    assert score_error(Oracle(sim), sim)["mse"] < 1e-20
    c = 0.2
    out = score_error(Oracle(sim, offset=c), sim)
    assert out["mse"] == pytest.approx(c**2 * sim.theta_dim, rel=1e-8)


def test_score_error_agrees_with_the_closed_form_weinberg_score():
    """Autograd through log_prob (used by score_error) against Weinberg's hand-written score."""
    sim = Weinberg()

    class ClosedForm(Oracle):
        def score(self, x):
            return self.sim.score(x, self.reference_.expand(len(x), -1))

    out = score_error(ClosedForm(sim), sim)
    assert out["mse"] < 1e-20 and out["relative"] < 1e-19  # tr I(θ_ref) ≈ 0.29


def test_trivial_score_has_relative_error_one_and_mse_trace_fisher():
    sim = Weinberg()

    class Zero(Oracle):
        def score(self, x):
            return torch.zeros(len(x), 2)

    out = score_error(Zero(sim), sim)
    assert out["relative"] == pytest.approx(1.0, rel=1e-12)
    assert out["mse"] == pytest.approx(float(exact_fisher_information(sim, sim.reference).trace()), rel=1e-10)


def test_fisher_information_of_poisson_is_the_rate():
    theta = torch.tensor([[0.2], [1.0], [3.6], [7.0]], dtype=torch.float64)
    info = exact_fisher_information(Poisson(), theta)
    assert info.shape == (4, 1, 1)
    torch.testing.assert_close(info[:, 0, 0], theta[:, 0].exp(), rtol=1e-12, atol=0)
    assert exact_fisher_information(Poisson(), torch.tensor([2.0])).shape == (1, 1)


def test_fisher_information_of_weinberg_matches_monte_carlo():
    sim, n = Weinberg(), 200_000
    theta = torch.tensor([46.0, 0.7], dtype=torch.float64)
    x = sim.sample(theta.expand(n, 2), generator=torch.Generator().manual_seed(5)).x
    t = sim.score(x, theta.expand(n, 2))
    outer = (t[:, :, None] * t[:, None, :]).reshape(n, 4)
    mean, se = outer.mean(0), outer.std(0) / math.sqrt(n)
    info = exact_fisher_information(sim, theta)
    assert info.shape == (2, 2) and torch.allclose(info, info.T)
    assert ((info.reshape(4) - mean).abs() < 5 * se).all(), (info, mean, se)


class Zero:
    def __init__(self, theta_dim, x_dim):
        self.theta_dim_, self.x_dim_, self.reference_ = theta_dim, x_dim, torch.zeros(theta_dim)

    def log_ratio(self, x, theta):
        return torch.zeros(len(x))

    def score(self, x):
        return torch.zeros(len(x), self.theta_dim_)


def test_mismatched_dimensions_name_both_shapes():
    with pytest.raises(ValueError, match=r"θ of shape \(n, 2\).*x of shape \(n, 1\).*θ of shape \(n, 1\)"):
        log_ratio_error(Zero(2, 1), GaltonBoard())
    with pytest.raises(ValueError, match=r"x of shape \(n, 3\)"):
        score_error(Zero(1, 3), GaltonBoard())


def test_simulators_without_exact_likelihood_are_refused():
    sim = BlackBoxSimulator(lambda t: t + 1.0, box_prior([-1.0], [1.0]))
    with pytest.raises(NotImplementedError, match="exact likelihood"):
        log_ratio_error(Zero(1, 1), sim)
    with pytest.raises(NotImplementedError, match="exact likelihood"):
        exact_fisher_information(sim, torch.zeros(1))
    # an exact likelihood without a quadrature grid: Monte Carlo over x instead (tests/test_newcomer.py)
    assert score_error(Zero(2, 2), GaussianMixture(2), samples=200)["integration"] == "monte carlo"


def test_unfitted_or_malformed_estimators_are_refused():
    class Unfitted:
        def log_ratio(self, x, theta):
            return torch.zeros(len(x))

    with pytest.raises(ValueError, match="fit it"):
        log_ratio_error(Unfitted(), GaltonBoard())

    class Wide(Zero):
        def log_ratio(self, x, theta):
            return torch.zeros(len(x), 2)

    with pytest.raises(ValueError, match=r"returned shape \(\d+, 2\)"):
        log_ratio_error(Wide(1, 1), GaltonBoard())
    with pytest.raises(TypeError, match="score"):
        score_error(object(), GaltonBoard())
    with pytest.raises(ValueError, match="theta_grid"):
        log_ratio_error(Zero(1, 1), GaltonBoard(), theta_grid=torch.zeros(3, 2))
