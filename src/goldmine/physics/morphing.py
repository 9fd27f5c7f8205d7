"""Morphing: event weights at any θ from the weights at a few benchmark points.

When the squared matrix element is a polynomial in the parameters (dimension-six EFT coefficients
enter the amplitude linearly, hence |M|² quadratically),

    |M|²(z|θ) = Σ_c m_c(θ) F_c(z),    m_c(θ) = Π_k θ_k^{n_ck},

with C monomials (the rows n_c of `components`), then the weights w_b(z) = |M|²(z|θ_b) of an event at
B ≥ C benchmark points θ_b fix every F_c(z) = Σ_b (M⁺)_cb w_b(z), with M_bc = m_c(θ_b) and M⁺ its
(pseudo-)inverse, and so the weight at any θ:

    w(z|θ) = Σ_b α_b(θ) w_b(z),    α_b(θ) = Σ_c m_c(θ) (M⁺)_cb,

and σ(θ) = Σ_b α_b(θ) σ_b. The joint score follows from ∇_θ α_b(θ) = Σ_c ∇_θ m_c(θ) (M⁺)_cb:

    t(x, z|θ) = ∇_θ w(z|θ)/w(z|θ) − ∇_θ σ(θ)/σ(θ).

The morphing weights α_b(θ) can be large and of both signs when the benchmarks sit badly; the
statistical error of a morphed quantity then grows like (Σ_b α_b²)^{1/2}, so `choose_benchmarks`
picks benchmarks that keep the mean of Σ_b α_b(θ)² over the prior small (`Morphing.spread`).

References:
    Brehmer, Cranmer, Kling, Plehn, "Better Higgs boson measurements through information
    geometry", Phys. Rev. D 95 (2017) 073002, https://arxiv.org/abs/1612.05261 (morphing);
    Brehmer, Kling, Espejo, Cranmer, "MadMiner: Machine learning-based inference for particle
    physics", Comput. Softw. Big Sci. 4 (2020) 3, https://arxiv.org/abs/1907.10621
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from ..simulators.base import DTYPE, draw_prior

#: condition number of the morphing matrix above which the benchmarks count as degenerate
MAX_CONDITION = 1e10


def components(theta_dim: int, max_power=2, max_overall_power: int | None = None) -> Tensor:
    """The monomial exponents n_c of a polynomial in θ: (C, theta_dim) int64.

    Arguments:
        theta_dim: the number of coefficients.
        max_power: the highest power of each coefficient (an int, or one per coefficient).
        max_overall_power: the highest total degree Σ_k n_ck; `max(max_power)` by default (an
            amplitude linear in every coefficient gives a squared one of total degree 2).

    Example:
        >>> components(2).tolist()
        [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [2, 0]]
    """
    powers = [int(max_power)] * theta_dim if isinstance(max_power, int) else [int(p) for p in max_power]
    if len(powers) != theta_dim or min(powers) < 0:
        raise ValueError(f"max_power must be a non-negative int or {theta_dim} of them; got {max_power!r}.")
    overall = max(powers) if max_overall_power is None else int(max_overall_power)
    rows = [n for n in itertools.product(*[range(p + 1) for p in powers]) if sum(n) <= overall]
    return torch.tensor(rows, dtype=torch.int64)


def monomials(theta: Tensor, exponents: Tensor) -> Tensor:
    """m_c(θ) = Π_k θ_k^{n_ck}: θ (n, d), exponents (C, d) → (n, C), differentiable in θ."""
    return torch.prod(theta[:, None, :] ** exponents[None, :, :].to(theta.dtype), dim=-1)


def monomial_gradients(theta: Tensor, exponents: Tensor) -> Tensor:
    """∇_θ m_c(θ): θ (n, d), exponents (C, d) → (n, d, C), in closed form (no division by θ_k)."""
    n, d = theta.shape
    e = exponents.to(theta.dtype)
    out = []
    for k in range(d):
        lowered = e.clone()
        lowered[:, k] = (lowered[:, k] - 1).clamp(min=0)
        out.append(e[:, k] * monomials(theta, lowered))
    return torch.stack(out, dim=1)


class Morphing:
    """The morphing of weights between benchmark points (see the module docstring).

    Arguments:
        exponents: (C, d) the monomials' exponents (`components`).
        benchmarks: (B, d) the benchmark points θ_b, B ≥ C.

    Attributes:
        matrix: M, (B, C), M_bc = m_c(θ_b); inverse: M⁺, (C, B).

    Raises:
        ValueError: fewer benchmarks than components, or benchmarks that do not fix the polynomial
            (M of rank < C or badly conditioned), naming the fix.

    Example:
        >>> m = Morphing(components(1), torch.tensor([[-1.0], [0.0], [1.0]]))
        >>> [round(a, 12) for a in m.weights(torch.tensor([[0.5]]))[0].tolist()]
        [-0.125, 0.75, 0.375]
    """

    def __init__(self, exponents, benchmarks):
        self.exponents = torch.as_tensor(exponents, dtype=torch.int64)
        self.benchmarks = torch.as_tensor(benchmarks, dtype=DTYPE)
        if self.exponents.ndim != 2 or self.benchmarks.ndim != 2 or \
                self.exponents.shape[1] != self.benchmarks.shape[1]:
            raise ValueError(
                f"exponents (C, d) and benchmarks (B, d) must share d; got {tuple(self.exponents.shape)} "
                f"and {tuple(self.benchmarks.shape)}.")
        n_b, n_c = self.benchmarks.shape[0], self.exponents.shape[0]
        if n_b < n_c:
            raise ValueError(
                f"{n_b} benchmarks cannot fix a polynomial of {n_c} monomials: give at least {n_c} "
                "benchmark points (goldmine.physics.choose_benchmarks picks good ones).")
        self.matrix = monomials(self.benchmarks, self.exponents)
        s = torch.linalg.svdvals(self.matrix)
        condition = float(s[0] / s[-1]) if float(s[-1]) > 0 else float("inf")
        if condition > MAX_CONDITION:
            raise ValueError(
                f"the {n_b} benchmarks are degenerate for these {n_c} monomials (condition number of the "
                f"morphing matrix {condition:.3g}): points on a common line or curve, or repeated points, "
                "cannot tell the monomials apart. Move them apart (goldmine.physics.choose_benchmarks).")
        self.condition = condition
        self.inverse = torch.linalg.pinv(self.matrix)

    @property
    def theta_dim(self) -> int:
        return self.exponents.shape[1]

    def weights(self, theta: Tensor) -> Tensor:
        """α_b(θ): θ (n, d) → (n, B), differentiable in θ."""
        return monomials(torch.as_tensor(theta, dtype=DTYPE), self.exponents) @ self.inverse

    def weight_gradients(self, theta: Tensor) -> Tensor:
        """∇_θ α_b(θ): θ (n, d) → (n, d, B)."""
        return monomial_gradients(torch.as_tensor(theta, dtype=DTYPE), self.exponents) @ self.inverse

    def coefficients(self, benchmark_weights: Tensor) -> Tensor:
        """F_c of events from their benchmark weights: (N, B) → (N, C)."""
        return benchmark_weights @ self.inverse.T

    def spread(self, theta: Tensor) -> Tensor:
        """Σ_b α_b(θ)²: θ (n, d) → (n,); 1 at a benchmark, large where morphing amplifies errors."""
        return (self.weights(theta) ** 2).sum(-1)


def choose_benchmarks(exponents, prior, n_benchmarks: int | None = None, candidates: int = 200,
                      points: int = 1000, seed: int = 0, fixed=None) -> Morphing:
    """Benchmarks drawn from the prior that keep the mean morphing-weight spread E_θ[Σ_b α_b(θ)²] small.

    A random search: `candidates` sets of benchmarks from the prior, each scored by the mean of
    `Morphing.spread` over `points` draws of the prior; the best set is returned.

    Arguments:
        exponents: (C, d) the monomials (`components`).
        prior: a torch distribution over θ with event shape (d,).
        n_benchmarks: B; C by default.
        fixed: (k, d) benchmarks that must be among them (e.g. the reference point).

    Returns:
        the `Morphing` of the best set; its `mean_spread` attribute holds the score.
    """
    exponents = torch.as_tensor(exponents, dtype=torch.int64)
    n_b = exponents.shape[0] if n_benchmarks is None else int(n_benchmarks)
    fixed = torch.zeros(0, exponents.shape[1], dtype=DTYPE) if fixed is None else \
        torch.as_tensor(fixed, dtype=DTYPE).reshape(-1, exponents.shape[1])
    g = torch.Generator().manual_seed(seed)
    thetas = draw_prior(prior, points, g)
    best, best_score = None, float("inf")
    for _ in range(candidates):
        drawn = draw_prior(prior, max(n_b - len(fixed), 1), g)[: n_b - len(fixed)]
        try:
            morph = Morphing(exponents, torch.cat([fixed, drawn]))
        except ValueError:
            continue
        score = float(morph.spread(thetas).mean())
        if score < best_score:
            best, best_score = morph, score
    if best is None:
        raise ValueError("no set of benchmarks drawn from the prior fixes the morphing: widen the prior "
                         "or give more benchmarks.")
    best.mean_spread = best_score
    return best
