"""Small simulators written as a newcomer would write them (not built-ins), for the tests of issue 21.

`Smeared`: a latent z ~ N(μ, 1), observed through noise of width s = exp(log_s): x = z + s·ε, so that
x is a deterministic function of (z, ε) and log p(x, z|θ) = log N(z; μ, 1) + log N(x; z, s); exactly,
x ~ N(μ, √(1 + s²)). θ = (μ, log_s) ∈ [−1, 1] × [−1, 0.5], θ_ref = (0, 0).
"""

import math

import torch

from goldmine.simulators import Draws, Simulator, box_prior

LOG_2PI = math.log(2 * math.pi)


def normal_log_prob(value, mean, log_sd):
    return -0.5 * ((value - mean) / log_sd.exp()) ** 2 - log_sd - 0.5 * LOG_2PI


class Smeared(Simulator):
    name = "smeared"
    theta_dim = 2
    x_dim = 1
    theta_names = ("mu", "log_s")

    def __init__(self):
        self.prior = box_prior([-1.0, -1.0], [1.0, 0.5])
        self.reference = torch.tensor([0.0, 0.0], dtype=torch.float64)

    def sample(self, theta, generator=None):
        theta = self.check_theta(theta)
        z = theta[:, 0] + torch.randn(len(theta), dtype=torch.float64, generator=generator)
        x = z + theta[:, 1].exp() * torch.randn(len(theta), dtype=torch.float64, generator=generator)
        return Draws(x[:, None], z[:, None])

    def joint_log_prob(self, draws, theta):
        theta = self.check_theta(theta)
        x, z = draws.x[:, 0], draws.z[:, 0]
        zero = torch.zeros_like(z)
        return normal_log_prob(z, theta[:, 0], zero) + normal_log_prob(x, z, theta[:, 1])

    def log_prob(self, x, theta):
        x, theta = self.check_x(x), self.check_theta(theta)
        return normal_log_prob(x[:, 0], theta[:, 0], 0.5 * torch.log1p((2 * theta[:, 1]).exp()))


class HandScored(Smeared):
    """With a hand-written joint score (correct)."""

    def joint_score(self, draws, theta):
        theta = self.check_theta(theta)
        x, z = draws.x[:, 0], draws.z[:, 0]
        u = (x - z) / theta[:, 1].exp()
        return torch.stack([z - theta[:, 0], u**2 - 1], dim=1)


class WrongScale(HandScored):
    """The μ component of the score twice what it is: every mean still vanishes, its scale does not."""

    def joint_score(self, draws, theta):
        return super().joint_score(draws, theta) * torch.tensor([2.0, 1.0], dtype=torch.float64)


class WrongOffset(HandScored):
    """The log_s component of the score off by 0.2, and no exact likelihood to compare with."""

    log_prob = Simulator.log_prob

    def joint_score(self, draws, theta):
        return super().joint_score(draws, theta) + torch.tensor([0.0, 0.2], dtype=torch.float64)


class OneDim(Simulator):
    """One parameter, the shift of a latent walk: z_k ~ N(θ/4, 1) for k = 1..4, x = Σ z_k + N(0, 1)."""

    name = "walk"
    theta_dim = 1
    x_dim = 1
    theta_names = ("shift",)

    def __init__(self):
        self.prior = box_prior([-1.0], [1.0])
        self.reference = torch.tensor([0.0], dtype=torch.float64)

    def sample(self, theta, generator=None):
        theta = self.check_theta(theta)
        z = theta / 4 + torch.randn(len(theta), 4, dtype=torch.float64, generator=generator)
        x = z.sum(1, keepdim=True) + torch.randn(len(theta), 1, dtype=torch.float64, generator=generator)
        return Draws(x, z)

    def joint_log_prob(self, draws, theta):
        theta = self.check_theta(theta)
        zero = torch.zeros(len(theta), dtype=torch.float64)
        walk = normal_log_prob(draws.z, theta / 4, zero[:, None]).sum(1)
        return walk + normal_log_prob(draws.x[:, 0], draws.z.sum(1), zero)

    def log_prob(self, x, theta):
        x, theta = self.check_x(x), self.check_theta(theta)
        return normal_log_prob(x[:, 0], theta[:, 0], torch.full((len(x),), 0.5 * math.log(5.0), dtype=torch.float64))
