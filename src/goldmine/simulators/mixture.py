"""A Gaussian mixture around θ, as in the sbi benchmark's `gaussian_mixture` task.

θ ∈ R^d (d = 2..5), prior U(−10, 10)^d, θ_ref = 0. Each run picks a component k ∈ {0, 1} with
probability 1/2 and draws x = θ + σ_k·ε, ε ~ N(0, I), with σ_0 = 1 and σ_1 = 0.1. The latent z is k:

    log p(x, z|θ) = log ½ + log N(x; θ, σ_k² I),    t(x, z|θ) = (x − θ)/σ_k²,
    log p(x|θ) = log Σ_k ½·N(x; θ, σ_k² I).

The simulator is defined for every θ ∈ R^d, not only on the prior's support.

References:
    Lueckmann, Boelts, Greenberg, Gonçalves, Macke, "Benchmarking simulation-based inference",
    AISTATS 2021, https://arxiv.org/abs/2101.04653
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import checks
from .base import DTYPE, Draws, Simulator, box_prior

SCALES = (1.0, 0.1)  # σ_k of the two components, each with weight 1/2


class GaussianMixture(Simulator):
    """x = θ + ε, ε ~ ½·N(0, I) + ½·N(0, 0.1² I); θ ∈ R^dim with prior U(−10, 10)^dim, θ_ref = 0.

    z is the component index, (n,) long (0: σ = 1, 1: σ = 0.1).

    Arguments:
        dim: the dimension of θ and of x, 2 to 5.

    Example:
        >>> sim = GaussianMixture(dim=3)
        >>> draws = sim.sample(torch.zeros(4, 3), generator=torch.Generator().manual_seed(0))
        >>> draws.x.shape, draws.z.shape, sim.log_prob(draws.x, torch.zeros(4, 3)).shape
        (torch.Size([4, 3]), torch.Size([4]), torch.Size([4]))
    """

    name = "mixture"
    defined_outside_prior = True

    def __init__(self, dim: int = 2):
        self.dim = dim = checks.int_between(dim, "dim", 2, 5)
        self.theta_dim = self.x_dim = dim
        self.prior = box_prior([-10.0] * dim, [10.0] * dim)
        self.reference = torch.zeros(dim, dtype=DTYPE)
        self._scales = torch.tensor(SCALES, dtype=DTYPE)

    def config(self) -> dict:
        return {"dim": self.dim}

    def sample(self, theta, generator=None) -> Draws:
        theta = self.check_theta(theta).detach()
        n = theta.shape[0]
        k = (torch.rand(n, generator=generator, dtype=DTYPE) < 0.5).long()
        eps = torch.randn(n, self.dim, generator=generator, dtype=DTYPE)
        return Draws(theta + self._scales[k][:, None] * eps, k)

    def _component_log_probs(self, x: Tensor, theta: Tensor) -> Tensor:
        """log ½ + log N(x; θ, σ_k² I) for both components: (n, 2)."""
        sq = ((x - theta) ** 2).sum(dim=1, keepdim=True)  # (n, 1)
        s = self._scales
        return math.log(0.5) - self.dim * (torch.log(s) + 0.5 * math.log(2 * math.pi)) - sq / (2 * s**2)

    def _component(self, draws: Draws, n: int) -> Tensor:
        if draws.z is None:
            raise ValueError("draws.z is None: mixture replays need the component index recorded by sample().")
        k = torch.as_tensor(draws.z).reshape(-1).long()
        if k.shape[0] != n or bool(((k != 0) & (k != 1)).any()):
            raise ValueError(f"draws.z must hold {n} component indices in {{0, 1}}; got {draws.z!r}.")
        return k

    def joint_log_prob(self, draws: Draws, theta) -> Tensor:
        x, theta = self.check_x(draws.x, "draws.x"), self.check_theta(theta)
        k = self._component(draws, x.shape[0])
        return self._component_log_probs(x, theta).gather(1, k[:, None])[:, 0]

    def joint_score(self, draws: Draws, theta) -> Tensor:
        """t(x, z|θ) = (x − θ)/σ_z²: (n, dim)."""
        x, theta = self.check_x(draws.x, "draws.x"), self.check_theta(theta).detach()
        k = self._component(draws, x.shape[0])
        return (x - theta) / self._scales[k][:, None] ** 2

    def log_prob(self, x, theta) -> Tensor:
        x, theta = self.check_x(x), self.check_theta(theta)
        return torch.logsumexp(self._component_log_probs(x, theta), dim=1)
