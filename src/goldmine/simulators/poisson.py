"""A counting experiment: one Poisson count per run, θ the log of its rate.

    x ~ Poisson(λ),    λ = e^θ,    log p(x|θ) = x·θ − e^θ − log x!,    ∇_θ log p(x|θ) = x − e^θ.

There is no latent path (z = None), so the joint likelihood is the likelihood itself: the "gold" is
exact, r(x|θ, θ_ref) and t(x|θ) with no noise. It is the simplest exponential family
(`goldmine.simulators.ExponentialFamily`): T(x) = (x, 1, −log x!), η(θ) = (θ, −e^θ, 1), so it is
mined from x itself. It is the sanity check of every method: a surrogate
trained on it must reproduce a closed form.

References:
    Cranmer, Brehmer, Louppe, "The frontier of simulation-based inference", PNAS 117 (2020) 30055,
    https://arxiv.org/abs/1911.01429
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import DTYPE, Draws, ExponentialFamily, box_prior


class Poisson(ExponentialFamily):
    """Poisson counts with log-rate θ ∈ [0.2, 7] (prior uniform), θ_ref = 3.6 (the prior's midpoint).

    x: (n, 1), counts stored as float64.

    Example:
        >>> sim = Poisson()
        >>> draws = sim.sample(torch.full((2, 1), 1.0), generator=torch.Generator().manual_seed(0))
        >>> draws.x.shape, draws.z is None
        (torch.Size([2, 1]), True)
    """

    name = "poisson"
    theta_dim = 1
    x_dim = 1

    def __init__(self):
        self.prior = box_prior([0.2], [7.0])
        self.reference = torch.tensor([3.6], dtype=DTYPE)

    def sample(self, theta, generator=None) -> Draws:
        theta = self.check_theta(theta).detach()
        return Draws(torch.poisson(theta.exp(), generator=generator), None)

    def log_prob(self, x, theta) -> Tensor:
        """x·θ − e^θ − log x!: x (n, 1), θ (n, 1) → (n,); −inf where x is not a count."""
        x, theta = self.check_x(x), self.check_theta(theta)
        count = (x >= 0) & (x == x.round())
        k = torch.where(count, x, torch.zeros_like(x))
        out = k * theta - theta.exp() - torch.lgamma(k + 1.0)
        return torch.where(count, out, torch.full_like(out, -math.inf))[:, 0]

    def x_grid(self) -> tuple[Tensor, Tensor]:
        """The counts 0..K, (K + 1, 1), weight 1, with K = ⌈λ_max + 12·√λ_max⌉ for the largest rate
        λ_max = e^7 of the prior: the mass beyond K is below 1e-27 anywhere on the prior (Chernoff)."""
        rate = math.exp(float(self.prior.base_dist.high.max()))
        k = math.ceil(rate + 12.0 * math.sqrt(rate))
        return torch.arange(k + 1, dtype=DTYPE)[:, None], torch.ones(k + 1, dtype=DTYPE)

    def natural_parameters(self, theta) -> Tensor:
        """η(θ) = (θ, −e^θ, 1): (n, 1) → (n, 3)."""
        return torch.cat([theta, -theta.exp(), torch.ones_like(theta)], dim=1)

    def sufficient_statistics(self, draws: Draws) -> Tensor:
        """T(x) = (x, 1, −log x!) from the counts: (n, 3); the last is −inf where x is not a count, as is
        `log_prob`. η(θ)·T summed in this order is `log_prob` bit for bit."""
        x = self.check_x(draws.x, "draws.x")
        count = (x >= 0) & (x == x.round())
        k = torch.where(count, x, torch.zeros_like(x))
        base = torch.where(count, -torch.lgamma(k + 1.0), torch.full_like(x, -math.inf))
        return torch.cat([k, torch.ones_like(x), base], dim=1)

    def joint_score(self, draws: Draws, theta) -> Tensor:
        """t(x|θ) = x − e^θ: (n, 1)."""
        theta, x = self.check_theta(theta).detach(), self.check_x(draws.x, "draws.x")
        return x - theta.exp()
