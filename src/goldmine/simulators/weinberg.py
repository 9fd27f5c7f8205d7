"""The Weinberg problem: the forward-backward asymmetry of e⁺e⁻ → μ⁺μ⁻ near the Z pole.

θ = (E, G_f): the beam energy and the Fermi constant. The cosine c ∈ [−1, 1] of the true scattering
angle has the density

    f(c|θ) = (3/8)·(1 + c² + A·c),    A(θ) = 2·tanh((2E − 90)/90 · 10)·G_f,

(|A| < 2 on the prior, so f > 0), and the detector measures x = c + N(0, σ²). The latent z is c, and

    log p(x, z|θ) = log f(c|θ) + log N(x; c, σ²).

The smearing term does not depend on θ: it cancels in the joint ratio and drops out of the joint
score, as in matrix-element reweighting, so r(x, z|θ, θ_ref) = f(c|θ)/f(c|θ_ref) and
t(x, z|θ) = c/(1 + c² + A·c)·∇_θA. It is kept so that `joint_log_prob` is a true log-density.

The likelihood is exact: with w = (c − x)/σ on [α, β] = [(−1 − x)/σ, (1 − x)/σ],

    p(x|θ) = (3/8)·M₀·E_T[1 + c² + A·c],    M₀ = Φ(β) − Φ(α),

where E_T is the mean under N(x, σ²) truncated to [−1, 1]. We evaluate log M₀ with log Φ and write
1 + c² + A·c = (c + A/2)² + (1 − A²/4), a sum of non-negative terms, so that log p(x|θ) stays
accurate far into the tails (it is finite, and very negative, for any finite x).

Sampling is exact: F(c) = u is a cubic with a single real root (F' = f > 0), solved in closed form
(the hyperbolic form of Cardano's formula) and polished by Newton steps.

References:
    Louppe, Hermans, Cranmer, "Adversarial variational optimization of non-differentiable
    simulators", AISTATS 2019, https://arxiv.org/abs/1707.07113
    Brehmer, Louppe, Pavez, Cranmer, "Mining gold from implicit models to improve likelihood-free
    inference", PNAS 117 (2020) 5242, https://arxiv.org/abs/1805.12244
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import checks
from .base import DTYPE, Draws, Simulator, box_prior

_LOG_3_8 = math.log(3.0 / 8.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def asymmetry(theta: Tensor) -> tuple[Tensor, Tensor]:
    """A(θ) and ∇_θA: (n, 2) → (n,), (n, 2)."""
    energy, g_f = theta[:, 0], theta[:, 1]
    s = torch.tanh((2.0 * energy - 90.0) / 90.0 * 10.0)
    a = 2.0 * s * g_f
    grad = torch.stack([2.0 * g_f * (1.0 - s**2) * (20.0 / 90.0), 2.0 * s], dim=1)
    return a, grad


def angle_cdf(a: Tensor, c: Tensor) -> Tensor:
    """F(c|A) = (3/8)·[(c + 1) + (c³ + 1)/3 + A·(c² − 1)/2] on [−1, 1]."""
    return 0.375 * ((c + 1.0) + (c**3 + 1.0) / 3.0 + a * (c**2 - 1.0) / 2.0)


def angle_icdf(a: Tensor, u: Tensor, newton_steps: int = 2) -> Tensor:
    """The c ∈ [−1, 1] with F(c|A) = u, for |A| < 2 and u ∈ [0, 1] (broadcast).

    With c = t − A/2, F(c) = u reads t³ + p·t + q = 0 with p = 3(1 − A²/4) > 0 and
    q = A³/4 − 3A + 4 − 8u, whose one real root is t = −2√(p/3)·sinh(asinh(3q/(2p)·√(3/p))/3).
    """
    p = 3.0 * (1.0 - a**2 / 4.0)
    q = a**3 / 4.0 - 3.0 * a + 4.0 - 8.0 * u
    t = -2.0 * torch.sqrt(p / 3.0) * torch.sinh(torch.asinh(1.5 * q / p * torch.sqrt(3.0 / p)) / 3.0)
    c = (t - a / 2.0).clamp(-1.0, 1.0)
    for _ in range(newton_steps):  # rounding in the closed form costs a few ulps; Newton restores them
        c = (c - (angle_cdf(a, c) - u) / (0.375 * (1.0 + c**2 + a * c))).clamp(-1.0, 1.0)
    return c


def _log1mexp(d: Tensor) -> Tensor:
    """log(1 − e^d) for d < 0, accurate on both sides of −log 2."""
    return torch.where(d > -math.log(2.0), torch.log(-torch.expm1(d)), torch.log1p(-torch.exp(d)))


def truncated_moments(x: Tensor, sigma: float) -> tuple[Tensor, Tensor, Tensor]:
    """log M₀, the mean and the variance of N(x, σ²) truncated to [−1, 1]: (n,) → three (n,).

    M₀ = Φ(β) − Φ(α) is taken on the side of the origin where both tails are small (using
    Φ(β) − Φ(α) = Φ(−α) − Φ(−β)), and the Mills ratios φ/M₀ are formed in log space.
    """
    alpha, beta = (-1.0 - x) / sigma, (1.0 - x) / sigma
    flip = alpha > 0
    lo, hi = torch.where(flip, -beta, alpha), torch.where(flip, -alpha, beta)
    log_hi = torch.special.log_ndtr(hi)
    log_m0 = log_hi + _log1mexp(torch.special.log_ndtr(lo) - log_hi)
    r_alpha = torch.exp(-0.5 * alpha**2 - _LOG_SQRT_2PI - log_m0)  # φ(α)/M₀
    r_beta = torch.exp(-0.5 * beta**2 - _LOG_SQRT_2PI - log_m0)
    mean = x + sigma * (r_alpha - r_beta)
    var = sigma**2 * (1.0 + alpha * r_alpha - beta * r_beta - (r_alpha - r_beta) ** 2)
    return log_m0, mean, var.clamp(min=0.0)


class Weinberg(Simulator):
    """The Weinberg simulator: θ = (E, G_f) ∈ [40, 50] × [0.5, 1.2], θ_ref = (42, 0.9), x: (n, 1).

    θ_ref is the point used by Louppe et al. (AVO). z is the true cos angle c: (n, 1).

    Arguments:
        sigma: the detector resolution σ > 0 on cos θ.

    Example:
        >>> sim = Weinberg()
        >>> draws = sim.sample(sim.reference.expand(3, 2), generator=torch.Generator().manual_seed(0))
        >>> draws.x.shape, draws.z.shape, sim.joint_score(Draws(draws.x[:1], draws.z[:1]), sim.reference[None]).shape
        (torch.Size([3, 1]), torch.Size([3, 1]), torch.Size([1, 2]))
    """

    name = "weinberg"
    theta_dim = 2
    theta_names = ("E", "G_f")  # the beam energy and the Fermi constant
    x_dim = 1

    def __init__(self, sigma: float = 0.1):
        self.sigma = checks.positive_float(sigma, "sigma")
        self.prior = box_prior([40.0, 0.5], [50.0, 1.2])
        self.reference = torch.tensor([42.0, 0.9], dtype=DTYPE)

    def config(self) -> dict:
        return {"sigma": self.sigma}

    def sample(self, theta, generator=None) -> Draws:
        theta = self.check_theta(theta).detach()
        n = theta.shape[0]
        a, _ = asymmetry(theta)
        u = torch.rand(n, generator=generator, dtype=DTYPE)
        c = angle_icdf(a, u)
        x = c + self.sigma * torch.randn(n, generator=generator, dtype=DTYPE)
        return Draws(x[:, None], c[:, None])

    def _angle(self, draws: Draws) -> tuple[Tensor, Tensor]:
        """x and c of recorded runs, both (n,)."""
        if draws.z is None:
            raise ValueError("draws.z is None: Weinberg replays need the true angle c recorded by sample().")
        x = self.check_x(draws.x, "draws.x")[:, 0]
        c = torch.as_tensor(draws.z, dtype=DTYPE).reshape(-1)
        if c.shape[0] != x.shape[0]:
            raise ValueError(f"draws.z must have shape ({x.shape[0]}, 1) like draws.x; got {tuple(draws.z.shape)}.")
        return x, c

    def joint_log_prob(self, draws: Draws, theta) -> Tensor:
        """log f(c|θ) + log N(x; c, σ²): n runs, θ (n, 2) → (n,). Only the first term depends on θ."""
        theta = self.check_theta(theta)
        x, c = self._angle(draws)
        a, _ = asymmetry(theta)
        inside = c.abs() <= 1.0
        log_f = _LOG_3_8 + torch.log(torch.where(inside, 1.0 + c**2 + a * c, torch.ones_like(a)))
        log_f = torch.where(inside, log_f, torch.full_like(log_f, -math.inf))
        log_smear = -0.5 * ((x - c) / self.sigma) ** 2 - math.log(self.sigma) - _LOG_SQRT_2PI
        return log_f + log_smear

    def joint_score(self, draws: Draws, theta) -> Tensor:
        """t(x, z|θ) = c/(1 + c² + A·c)·∇_θA: (n, 2), no autograd graph."""
        theta = self.check_theta(theta).detach()
        _, c = self._angle(draws)
        a, grad_a = asymmetry(theta)
        return (c / (1.0 + c**2 + a * c))[:, None] * grad_a

    def _smeared(self, x: Tensor, theta: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """log M₀, E_T[c], E_T[1 + c² + A·c] and ∇_θA for validated θ and x: (n,) ×3, (n, 2)."""
        a, grad_a = asymmetry(theta)
        log_m0, mean, var = truncated_moments(x[:, 0], self.sigma)
        bracket = var + (mean + a / 2.0) ** 2 + (1.0 - a**2 / 4.0)
        return log_m0, mean, bracket, grad_a

    def log_prob(self, x, theta) -> Tensor:
        """Exact log p(x|θ): x (n, 1), θ (n, 2) → (n,), differentiable in θ."""
        x, theta = self.check_x(x), self.check_theta(theta)
        log_m0, _, bracket, _ = self._smeared(x, theta)
        return _LOG_3_8 + log_m0 + torch.log(bracket)

    def score(self, x, theta) -> Tensor:
        """Exact ∇_θ log p(x|θ) = E_T[c]/E_T[1 + c² + A·c]·∇_θA: x (n, 1), θ (n, 2) → (n, 2)."""
        x, theta = self.check_x(x), self.check_theta(theta).detach()
        _, mean, bracket, grad_a = self._smeared(x, theta)
        return (mean / bracket)[:, None] * grad_a

    def x_grid(self) -> tuple[Tensor, Tensor]:
        """Simpson's rule on [−1 − 8σ, 1 + 8σ] with spacing at most σ/20: nodes (m, 1), weights (m,).

        p(x|θ) is smooth on the scale σ and its mass beyond 8σ outside [−1, 1] is below 1e-15, so
        Σ_i w_i p(x_i|θ) = 1 to about 1e-12.
        """
        lo, hi = -1.0 - 8.0 * self.sigma, 1.0 + 8.0 * self.sigma
        intervals = 2 * math.ceil((hi - lo) / (self.sigma / 20.0) / 2.0)  # Simpson needs an even number
        x = torch.linspace(lo, hi, intervals + 1, dtype=DTYPE)
        w = torch.full((intervals + 1,), 2.0, dtype=DTYPE)
        w[1::2] = 4.0
        w[0] = w[-1] = 1.0
        return x[:, None], w * (hi - lo) / intervals / 3.0
