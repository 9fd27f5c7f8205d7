"""SLCP, "simple likelihood, complex posterior": four Gaussian draws whose posterior has four modes.

θ ∈ [−3, 3]^5 (uniform prior), θ_ref = (0, 0, 1, 1, 0). Each run draws four points x_j ∈ R² i.i.d. from

    N(m, S),   m = (θ_0, θ_1),   S = [[s_1², ρ s_1 s_2], [ρ s_1 s_2, s_2²]],   s_1 = θ_2², s_2 = θ_3², ρ = tanh θ_4,

and x = (x_1, …, x_4) ∈ R⁸. The likelihood is a closed-form Gaussian, but s_1 and s_2 are even in
θ_2 and θ_3, so the posterior has four modes of equal mass, at (±θ_2, ±θ_3): the benchmark on
which samplers that do not cross between modes fail. There is no latent path beyond the Gaussian
draws, so the joint likelihood is the likelihood: the gold is exact.

References:
    Papamakarios, Sterratt, Murray, "Sequential neural likelihood", AISTATS 2019,
    https://arxiv.org/abs/1805.07226
    Lueckmann, Boelts, Greenberg, Gonçalves, Macke, "Benchmarking simulation-based inference",
    AISTATS 2021, https://arxiv.org/abs/2101.04653 (task "slcp")
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import DTYPE, Draws, Simulator, box_prior

POINTS = 4  # Gaussian draws per run


class SLCP(Simulator):
    """Four 2-D Gaussian draws per run (x (n, 8)), θ ∈ [−3, 3]^5; z = the standard normal draws (n, 4, 2).

    Example:
        >>> sim = SLCP()
        >>> draws = sim.sample(torch.zeros(3, 5) + 0.5, generator=torch.Generator().manual_seed(0))
        >>> draws.x.shape, sim.log_prob(draws.x, torch.zeros(3, 5) + 0.5).shape
        (torch.Size([3, 8]), torch.Size([3]))
    """

    name = "slcp"
    theta_dim = 5
    x_dim = 2 * POINTS

    def __init__(self):
        self.prior = box_prior([-3.0] * 5, [3.0] * 5)
        self.reference = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0], dtype=DTYPE)

    @staticmethod
    def _moments(theta: Tensor):
        return theta[:, 0:1], theta[:, 1:2], theta[:, 2:3] ** 2, theta[:, 3:4] ** 2, torch.tanh(theta[:, 4:5])

    def sample(self, theta, generator=None) -> Draws:
        theta = self.check_theta(theta).detach()
        m1, m2, s1, s2, rho = self._moments(theta)
        eps = torch.randn(len(theta), POINTS, 2, dtype=DTYPE, generator=generator)
        x1 = m1 + s1 * eps[..., 0]
        x2 = m2 + s2 * (rho * eps[..., 0] + torch.sqrt(1 - rho ** 2) * eps[..., 1])
        return Draws(torch.stack([x1, x2], -1).reshape(len(theta), self.x_dim), eps)

    def log_prob(self, x, theta) -> Tensor:
        """Σ_j log N(x_j; m, S): x (n, 8), θ (n, 5) → (n,)."""
        x, theta = self.check_x(x), self.check_theta(theta)
        m1, m2, s1, s2, rho = self._moments(theta)
        pts = x.reshape(len(x), POINTS, 2)
        z1, z2 = (pts[..., 0] - m1) / s1, (pts[..., 1] - m2) / s2
        one_minus = 1 - rho ** 2
        quad = (z1 ** 2 - 2 * rho * z1 * z2 + z2 ** 2) / one_minus
        log_norm = -math.log(2 * math.pi) - torch.log(s1 * s2) - 0.5 * torch.log(one_minus)
        return (log_norm - 0.5 * quad).sum(1)

    def joint_log_prob(self, draws: Draws, theta) -> Tensor:
        """log p(x|θ): x is a Gaussian of θ with no further latent variables, so the joint is the likelihood."""
        return self.log_prob(draws.x, theta)
