"""ConditionalFlow, the one flow of nle, scandal and npe: a density of raw v given raw c, and its sampler."""

import math

import pytest
import torch

from goldmine.nn import ConditionalFlow


@pytest.mark.parametrize("flow", ["nsf", "maf"])
def test_density_integrates_to_one_and_samples_follow_it(flow):
    """With standardisations far from unit scale (v: mean 5, std 10; c: mean −3, std 0.1), the density of
    raw v integrates to 1 and the mean of 20,000 draws matches its first moment within 5 standard errors."""
    torch.manual_seed(0)
    net = ConditionalFlow(1, 2, flow, transforms=2, hidden=(16, 16), bins=8, activation="silu", names=("x", "theta"))
    assert net.v_norm is net.x_norm and net.c_norm is net.theta_norm
    net.x_norm.mean.fill_(5.0)
    net.x_norm.std.fill_(10.0)
    net.theta_norm.mean.fill_(-3.0)
    net.theta_norm.std.fill_(0.1)
    c = torch.tensor([[-3.05, -2.9]])
    v = torch.linspace(-195, 205, 40_001)[:, None]  # ±20 standard deviations of v
    with torch.no_grad():
        density = net.log_prob(v, c.expand(len(v), -1)).double().exp()
    step = float(v[1] - v[0])
    mass = float(density.sum() * step)
    assert abs(mass - 1) < 1e-3, mass
    mean = float((density * v[:, 0].double()).sum() * step)
    sd = math.sqrt(float((density * (v[:, 0].double() - mean) ** 2).sum() * step))
    draws = net.sample(c.expand(20_000, -1), generator=torch.Generator().manual_seed(1))
    assert draws.shape == (20_000, 1)
    assert abs(float(draws.mean()) - mean) < 5 * sd / math.sqrt(20_000), (float(draws.mean()), mean)
    torch.testing.assert_close(net(v[:5], c.expand(5, -1)), net.log_prob(v[:5], c.expand(5, -1)))
