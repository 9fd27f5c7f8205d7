"""Two moons (the sbi benchmark's `two_moons`): a crescent of x that moves with θ, with latent draws.

θ ∈ [−1, 1]² (uniform prior), θ_ref = 0. Each run draws an angle a ~ U(−π/2, π/2) and a radius
r ~ N(0.1, 0.01²), and returns

    x = (r cos a + 0.25 − |θ_0 + θ_1|/√2,  r sin a + (θ_1 − θ_0)/√2).

At fixed θ the map (a, r) → x is a bijection onto the half-plane u = x_0 − 0.25 + |θ_0 + θ_1|/√2 > 0
(r > 0), with inverse r = |(u, v)|, a = atan2(v, u), v = x_1 − (θ_1 − θ_0)/√2, and Jacobian r. So the
joint density of x and the latent draws is the likelihood, by the change of variables:

    log p(x, z|θ) = log p(x|θ) = −log π + log N(r; 0.1, 0.01²) − log r     (u > 0; −inf otherwise).

The gold is therefore exact: t(x, z|θ) = ∇_θ log p(x|θ). Its θ enters through |θ_0 + θ_1|, so the
posterior of one observation is a pair of crescents mirrored in θ_0 + θ_1 = 0 (two modes), and the
likelihood has a hard edge: the support is the half-plane x_0 > b(θ) = 0.25 − |θ_0 + θ_1|/√2, which
moves with θ, and the density does not vanish at it (it is (1/π)·N(|v|; 0.1, 0.01²)/|v| there). So:

- A run drawn at θ left of θ_ref's edge (x_0 ≤ 0.25 for θ_ref = 0: about 92% of the runs at θ ~ prior)
  has p(x|θ_ref) = 0 and log r(x, z|θ, θ_ref) = +∞ exactly; one drawn at θ_ref left of θ's edge would
  have log r = −∞ (none here: θ_ref = 0 has the rightmost edge). No choice of latent variables or of
  θ_ref in the prior makes these finite: where p(x|θ_ref) = 0, p(x, z|θ_ref) = 0 for almost every z.
  They are correct labels (r = ∞ or 0), which data sets keep (`goldmine.data.valid_values`) and the
  ratio losses read finitely (ALICE's soft label 1/(1 + r) = 0; rolr clips log r); the scores are finite.
- E_{θ_ref}[r(x, z|θ, θ_ref)] = 1 holds only with the runs of r = ∞ counted, as `check_gold` does
  (E_{θ_ref}[r·1{r ≤ c}] + P_θ(r > c) = 1).
- E_θ[t(x, z|θ)] is not 0 but the boundary term of the moving support, ∂b/∂θ · ∫ p(b, x_1|θ) dx_1 =
  ∓(1/√2)·(2/π)·E[1/ρ] ≈ ∓4.5 per component for θ_0 + θ_1 ≷ 0 (ρ ~ N(0.1, 0.01²)), small against the
  score's spread (about 70 per run). The regression target of the score losses, E[t|x, θ] = ∇_θ log p(x|θ),
  is unaffected: it holds run by run.

sbibm's `_likelihood` keeps only the Gaussian term in r; the density here also has −log r and
−log π, the Jacobian and the angle's density, so that it integrates to one over x.

References:
    Greenberg, Nonnenmacher, Macke, "Automatic posterior transformation for likelihood-free
    inference", ICML 2019, https://arxiv.org/abs/1905.07488
    Lueckmann, Boelts, Greenberg, Gonçalves, Macke, "Benchmarking simulation-based inference",
    AISTATS 2021, https://arxiv.org/abs/2101.04653 (task "two_moons")
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import DTYPE, Draws, Simulator, box_prior

OFFSET, R_LOC, R_SCALE = 0.25, 0.1, 0.01


class TwoMoons(Simulator):
    """The two-moons simulator, x (n, 2); z = {"a": angles (n,), "r": radii (n,)}.

    Example:
        >>> sim = TwoMoons()
        >>> draws = sim.sample(torch.full((3, 2), 0.3), generator=torch.Generator().manual_seed(0))
        >>> draws.x.shape, sim.log_prob(draws.x, torch.full((3, 2), 0.3)).shape
        (torch.Size([3, 2]), torch.Size([3]))
    """

    name = "two_moons"
    theta_dim = 2
    x_dim = 2

    def __init__(self):
        self.prior = box_prior([-1.0, -1.0], [1.0, 1.0])
        self.reference = torch.zeros(2, dtype=DTYPE)

    @staticmethod
    def _shift(theta: Tensor) -> Tensor:
        return torch.stack([-torch.abs(theta[:, 0] + theta[:, 1]) / math.sqrt(2),
                            (theta[:, 1] - theta[:, 0]) / math.sqrt(2)], 1)

    def sample(self, theta, generator=None) -> Draws:
        theta = self.check_theta(theta).detach()
        n = len(theta)
        a = (torch.rand(n, dtype=DTYPE, generator=generator) - 0.5) * math.pi
        r = R_LOC + R_SCALE * torch.randn(n, dtype=DTYPE, generator=generator)
        p = torch.stack([r * torch.cos(a) + OFFSET, r * torch.sin(a)], 1)
        return Draws(p + self._shift(theta), {"a": a, "r": r})

    def log_prob(self, x, theta) -> Tensor:
        """log p(x|θ) by the change of variables from (a, r): x (n, 2), θ (n, 2) → (n,)."""
        x, theta = self.check_x(x), self.check_theta(theta)
        p = x - self._shift(theta)
        u, v = p[:, 0] - OFFSET, p[:, 1]
        r = torch.sqrt(u ** 2 + v ** 2)
        log_r = (-0.5 * ((r - R_LOC) / R_SCALE) ** 2 - math.log(R_SCALE * math.sqrt(2 * math.pi))
                 - torch.log(r) - math.log(math.pi))
        return torch.where(u > 0, log_r, torch.full_like(log_r, -math.inf))

    def joint_log_prob(self, draws: Draws, theta) -> Tensor:
        """log p(x, z|θ) = log p(x|θ): x is a bijective function of the latent (a, r) at every θ (see the module)."""
        return self.log_prob(draws.x, theta)
