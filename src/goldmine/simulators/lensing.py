"""Strong gravitational lensing with dark-matter substructure: images of lensed galaxies, with gold.

A galaxy-scale lens bends the light of a background galaxy into arcs and rings; subhalos of the lens's
dark-matter halo perturb them. θ = (f_sub, β) describes the subhalo population: the substructure mass
fraction and the slope of the subhalo mass function. Everything else is latent and drawn from fixed
distributions. Angles are in arcseconds, the field is the square [−L, L]² (L = fov/2), sampled at the
centres of size × size pixels.

**Host**: a singular isothermal ellipsoid (SIE) with axis ratio q, position angle φ, centre c and
Einstein radius θ_E, plus an external shear (γ₁, γ₂). In the frame of its major axis (x′, y′), with
ψ = √(q²x′² + y′²) and e = √(1 − q²), its convergence and deflection are (Kormann, Schneider,
Bartelmann 1994; Keeton 2001)

    κ = θ_E / (2√(q x′² + y′²/q)) = θ_E √q / (2ψ),
    α_x′ = θ_E √q / e · atan(e x′/ψ),   α_y′ = θ_E √q / e · atanh(e y′/ψ),

the singular isothermal sphere α = θ_E x/|x| at q = 1; the shear deflects by (γ₁x + γ₂y, γ₂x − γ₁y).

**Subhalos**: truncated singular isothermal spheres (pseudo-Jaffe profiles) of Einstein radius b and
truncation radius a,

    κ(r) = (b/2)·(1/r − 1/√(r² + a²)),   α(r) = b·(1 − r/(√(r² + a²) + a))  (radial),

whose total lensing mass is π·b·a arcsec² (in units of the critical density). A subhalo of mass m
(M_sun) has the lensing mass π·m/M₁ with M₁ = `MASS_UNIT` = 10¹¹ M_sun, the mass whose point-lens
Einstein radius is 1″ (about right for a lens at z ≈ 0.5 and a source at z ≈ 1), and is tidally
truncated at a = √(b·θ_E) (the tidal radius of an isothermal subhalo in an isothermal host; Metcalf &
Madau 2001), so b = (m / (M₁ √θ_E))^(2/3).

**The population** (θ enters only here):

    N ~ Poisson(λ),   λ = f_sub · M_field / E_β[m],   M_field = 4 asinh(1) θ_E L · M₁/π,
    m_k ~ p(m|β) = m^β / Z(β) on [m_min, m_max],   positions uniform on the field,

M_field being the mass of the host (as an isothermal sphere of radius θ_E) inside the field, so f_sub is
the fraction of it in subhalos on average. The joint density of a run factorises as

    p(x, z|θ) = p(x|z) · p(host, source) · p(N|θ, θ_E) · Π_k p(m_k|β) / (2L)²,

and only the population depends on θ, so the joint log-ratio and the joint score come from

    log p(z_sub|θ) = N log λ − λ − log N! + Σ_k [β log m_k − log Z(β)] − N log (2L)²,

which is what `joint_log_prob` returns: log p(x, z|θ) up to terms free of θ (the noise, the host and
the source). The gold is therefore exact, and the renderer never needs differentiating.

**log f_sub** (``log_f_sub=True``): θ = (log f_sub, β), natural log, with a prior uniform in log f_sub over
the same range of f_sub. Then λ = e^(θ₀) M_field / E_β[m] and the count's score is

    ∂/∂ log f_sub log p(z_sub|θ) = N − λ,

of standard deviation √λ, where in f_sub it is (N − λ)/f_sub, of standard deviation √λ / f_sub, which
grows like 1/√f_sub towards small f_sub (λ ∝ f_sub). The β component is the same in both.

**Source**: an elliptical Sérsic profile I(r) = I_e exp(−b_n((r/R_e)^(1/n) − 1)), r² = q_s x″² + y″²/q_s,
b_n = 2n − 1/3 + 4/(405n) + 46/(25515n²) (Ciotti & Bertin 1999), whose flux is
2π n R_e² I_e e^(b_n) Γ(2n)/b_n^(2n).

**Image**: every pixel centre is shot back to the source plane, β = x − α_host(x) − α_shear(x) −
Σ_k α_k(x), the source is evaluated there (surface brightness is conserved), the image is convolved
with a Gaussian PSF (torch conv2d, zero padding) and Gaussian noise of standard deviation `noise` is
added per pixel.

References:
    Brehmer, Mishra-Sharma, Hermans, Louppe, Cranmer, "Mining for dark matter substructure:
    inferring subhalo population properties from strong lenses with machine learning", ApJ 886
    (2019) 49, https://arxiv.org/abs/1909.02005
    Keeton, "A catalog of mass models for gravitational lensing", arXiv:astro-ph/0102341
    Kormann, Schneider, Bartelmann, "Isothermal elliptical gravitational lens models", A&A 284 (1994) 285
    Metcalf, Madau, "Compound gravitational lensing as a probe of dark matter substructure within
    galaxy halos", ApJ 563 (2001) 9, https://arxiv.org/abs/astro-ph/0108224
    Ciotti, Bertin, "Analytical properties of the R^(1/m) law", A&A 352 (1999) 447
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import checks
from .base import DTYPE, Draws, Simulator, box_prior

#: the mass (M_sun) whose point-lens Einstein radius is 1 arcsec: lensing mass π·m/MASS_UNIT arcsec²
MASS_UNIT = 1e11

#: the fixed distributions of the host and the source: name → (low, high) of a uniform draw
HOST = {"theta_e": (1.0, 1.5), "q": (0.6, 0.95), "phi": (0.0, math.pi), "center": (-0.1, 0.1),
        "shear": (-0.05, 0.05)}
SOURCE = {"center": (-0.3, 0.3), "r_e": (0.15, 0.4), "n": (0.7, 1.5), "q": (0.5, 1.0), "phi": (0.0, math.pi),
          "amp": (0.5, 1.5)}

#: the range of the substructure fraction f_sub in the prior
F_SUB = (0.001, 0.2)

#: (subhalo, pixel) pairs evaluated at once while rendering
PAIRS = 1 << 16
#: images rendered at once (bounds the memory of a large batch)
IMAGES = 64


# -- the subhalo population -------------------------------------------------------------------------


def _log_expm1_over(s: Tensor, span: float) -> Tensor:
    """log((e^(s·span) − 1)/s) > −∞ for any real s (its limit log(span) at s = 0), differentiable."""
    small = s.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(s), s)
    exact = torch.log(torch.expm1(safe * span) / safe)
    series = math.log(span) + s * span / 2.0 + (s * span) ** 2 / 24.0
    return torch.where(small, series, exact)


def mass_log_norm(beta: Tensor, m_min: float, m_max: float) -> Tensor:
    """log Z(β) = log ∫_{m_min}^{m_max} m^β dm: (n,) → (n,)."""
    s = 1.0 + beta
    return s * math.log(m_min) + _log_expm1_over(s, math.log(m_max / m_min))


def mean_mass(beta: Tensor, m_min: float, m_max: float) -> Tensor:
    """E_β[m] = Z(β + 1)/Z(β): (n,) → (n,)."""
    return torch.exp(mass_log_norm(beta + 1.0, m_min, m_max) - mass_log_norm(beta, m_min, m_max))


def sample_masses(beta: Tensor, u: Tensor, m_min: float, m_max: float) -> Tensor:
    """The inverse CDF of p(m|β) ∝ m^β on [m_min, m_max] at u ∈ [0, 1] (broadcast):
    log m = log m_min + log(1 + u·(e^(sL) − 1))/s, s = 1 + β, L = log(m_max/m_min)."""
    span = math.log(m_max / m_min)
    s = 1.0 + beta
    small = s.abs() < 1e-9
    safe = torch.where(small, torch.ones_like(s), s)
    log_w = torch.where(small, u * span, torch.log1p(u * torch.expm1(safe * span)) / safe)
    return m_min * torch.exp(log_w.clamp(0.0, span))


# -- lensing ------------------------------------------------------------------------------------------


def sie_deflection(x: Tensor, y: Tensor, theta_e: Tensor, q: Tensor, phi: Tensor,
                   center: Tensor) -> tuple[Tensor, Tensor]:
    """The SIE's deflection at the points (x, y), (P,), for n lenses (params (n,), centre (n, 2)) → two (n, P).

    q = 1 is the singular isothermal sphere (taken where 1 − q < 1e-8)."""
    dx = x[None] - center[:, :1]
    dy = y[None] - center[:, 1:]
    cos, sin = torch.cos(phi)[:, None], torch.sin(phi)[:, None]
    xr, yr = cos * dx + sin * dy, -sin * dx + cos * dy
    q = q[:, None]
    psi = torch.sqrt(q**2 * xr**2 + yr**2).clamp(min=1e-300)
    round_ = (1.0 - q) < 1e-8
    e = torch.sqrt((1.0 - q**2).clamp(min=1e-16))
    scale = theta_e[:, None] * torch.sqrt(q) / e
    ax = torch.where(round_, theta_e[:, None] * xr / psi, scale * torch.atan(e * xr / psi))
    ay = torch.where(round_, theta_e[:, None] * yr / psi, scale * torch.atanh(e * yr / psi))
    return cos * ax - sin * ay, sin * ax + cos * ay


def shear_deflection(x: Tensor, y: Tensor, shear: Tensor) -> tuple[Tensor, Tensor]:
    """External shear (γ₁, γ₂) (n, 2) at the points (P,) → two (n, P)."""
    g1, g2 = shear[:, :1], shear[:, 1:]
    return g1 * x[None] + g2 * y[None], g2 * x[None] - g1 * y[None]


def subhalo_deflection(x: Tensor, y: Tensor, position: Tensor, b: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
    """Truncated isothermal spheres at `position` (S, 2) with Einstein radii b and truncation radii a
    (S,) at the points (P,) → two (S, P)."""
    dx = x[None] - position[:, :1]
    dy = y[None] - position[:, 1:]
    r2 = dx * dx
    r2.addcmul_(dy, dy).clamp_(min=1e-300)  # in place: this loop is most of the rendering time
    inner = (r2 + (a * a)[:, None]).sqrt_().add_(a[:, None]).reciprocal_()  # 1/(√(r² + a²) + a)
    f = r2.rsqrt_().sub_(inner).mul_(b[:, None])  # b·(1/r − 1/(√(r² + a²) + a))
    return f * dx, f.mul_(dy)


def sersic_b(n: Tensor) -> Tensor:
    """b_n of the Sérsic profile (Ciotti & Bertin 1999, to O(n⁻³))."""
    return 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n**2)


def sersic(x: Tensor, y: Tensor, center: Tensor, r_e: Tensor, n: Tensor, q: Tensor, phi: Tensor, amp: Tensor) -> Tensor:
    """Surface brightness of n elliptical Sérsic sources at source-plane points x, y (n, P) → (n, P)."""
    dx, dy = x - center[:, :1], y - center[:, 1:]
    cos, sin = torch.cos(phi)[:, None], torch.sin(phi)[:, None]
    xr, yr = cos * dx + sin * dy, -sin * dx + cos * dy
    q = q[:, None]
    r = torch.sqrt(q * xr**2 + yr**2 / q)
    b, n = sersic_b(n)[:, None], n[:, None]
    return amp[:, None] * torch.exp(-b * ((r / r_e[:, None]).pow(1.0 / n) - 1.0))


def sersic_flux(r_e: Tensor, n: Tensor, amp: Tensor) -> Tensor:
    """Total flux 2π n R_e² I_e e^(b_n) Γ(2n) / b_n^(2n) of a Sérsic profile (any q)."""
    b = sersic_b(n)
    return 2.0 * math.pi * n * r_e**2 * amp * torch.exp(b + torch.lgamma(2.0 * n) - 2.0 * n * torch.log(b))


def gaussian_kernel(sigma_pixels: float) -> Tensor | None:
    """A normalised Gaussian kernel (1, 1, k, k), k = 2⌈4σ⌉ + 1, or None for σ = 0."""
    if sigma_pixels <= 0:
        return None
    half = max(1, math.ceil(4.0 * sigma_pixels))
    t = torch.arange(-half, half + 1, dtype=DTYPE)
    g = torch.exp(-0.5 * (t / sigma_pixels) ** 2)
    k = g[:, None] * g[None, :]
    return (k / k.sum())[None, None]


class StrongLensing(Simulator):
    """Images of a galaxy-scale strong lens with a population of subhalos: θ = (f_sub, β).

    Prior uniform on f_sub ∈ [0.001, 0.2] × β ∈ [−2.5, −1.5], θ_ref = (0.05, −1.9); with
    ``log_f_sub=True``, θ = (log f_sub, β), uniform on [log 0.001, log 0.2] × [−2.5, −1.5], θ_ref =
    (log 0.05, −1.9). The physics and the joint density are in the module docstring; the host and source
    distributions in `HOST` and `SOURCE`.

    x is the image: (n, 1, size, size) (`x_shape`), or (n, size·size) flattened row by row with
    ``flatten=True`` (for networks without an embedding). Row i of an image is y, from −L upwards; column j
    is x, from −L rightwards.
    z is a dict of tensors with first dimension n: the subhalos padded to the batch's largest count,
    ``n_sub`` (n,) int64, ``mask`` (n, K) bool, ``mass`` (n, K) in M_sun (1 where masked),
    ``position`` (n, K, 2) in arcsec; the host ``theta_e``, ``q``, ``phi`` (n,), ``center``,
    ``shear`` (n, 2); the source ``source_center`` (n, 2), ``source_r_e``, ``source_n``, ``source_q``,
    ``source_phi``, ``source_amp`` (n,).

    Arguments:
        size: pixels per side (≥ 4).
        fov: the side of the square field, arcsec.
        psf_sigma: the Gaussian PSF's standard deviation, arcsec (0: none).
        noise: the standard deviation of the Gaussian noise per pixel (0: none).
        m_min, m_max: the bounds of the subhalo mass function, M_sun.
        flatten: x as (n, size·size) rows rather than (n, 1, size, size) images.
        log_f_sub: θ's first component is log f_sub (natural log) rather than f_sub.

    Example:
        >>> sim = StrongLensing(size=16, flatten=True)
        >>> draws = sim.sample(sim.reference[None], generator=torch.Generator().manual_seed(0))
        >>> draws.x.shape, sim.joint_score(draws, sim.reference[None]).shape
        (torch.Size([1, 256]), torch.Size([1, 2]))
    """

    name = "lensing"
    theta_dim = 2
    theta_names = ("f_sub", "beta")  # the substructure fraction and the slope of the subhalo mass function
    block_size = 256  # rows per seed: a block is rendered in pieces of IMAGES images anyway

    def __init__(self, size: int = 64, fov: float = 6.4, psf_sigma: float = 0.08, noise: float = 0.05,
                 m_min: float = 1e8, m_max: float = 1e10, flatten: bool = False, log_f_sub: bool = False):
        self.size = checks.positive_int(size, "size")
        if self.size < 4:
            raise ValueError(f"size must be at least 4 pixels per side; got {size}.")
        self.fov = checks.positive_float(fov, "fov")
        self.psf_sigma = float(psf_sigma)
        self.noise = float(noise)
        if not (math.isfinite(self.psf_sigma) and self.psf_sigma >= 0):
            raise ValueError(f"psf_sigma must be a finite number ≥ 0 (arcsec); got {psf_sigma!r}.")
        if not (math.isfinite(self.noise) and self.noise >= 0):
            raise ValueError(f"noise must be a finite number ≥ 0; got {noise!r}.")
        self.m_min, self.m_max = checks.positive_float(m_min, "m_min"), checks.positive_float(m_max, "m_max")
        if not self.m_min < self.m_max:
            raise ValueError(f"m_min must be below m_max; got m_min={m_min}, m_max={m_max}.")
        if not isinstance(flatten, bool):
            raise ValueError(f"flatten must be True or False; got {flatten!r}.")
        self.flatten = flatten
        self.x_shape = None if flatten else (1, self.size, self.size)  # None: a vector of x_dim
        self.x_dim = self.size * self.size
        if not isinstance(log_f_sub, bool):
            raise ValueError(f"log_f_sub must be True or False; got {log_f_sub!r}.")
        self.log_f_sub = log_f_sub
        f = (lambda v: math.log(v)) if log_f_sub else (lambda v: v)
        self.prior = box_prior([f(F_SUB[0]), -2.5], [f(F_SUB[1]), -1.5])
        self.reference = torch.tensor([f(0.05), -1.9], dtype=DTYPE)
        if log_f_sub:
            self.theta_names = ("log_f_sub", "beta")
        half = self.fov / 2.0
        pixel = self.fov / self.size
        axis = -half + pixel * (torch.arange(self.size, dtype=DTYPE) + 0.5)
        yy, xx = torch.meshgrid(axis, axis, indexing="ij")  # row i is y (bottom to top), column j is x
        self.grid = (xx.reshape(-1), yy.reshape(-1))
        self.pixel = pixel
        self.kernel = gaussian_kernel(self.psf_sigma / pixel)

    def config(self) -> dict:
        return {"size": self.size, "fov": self.fov, "psf_sigma": self.psf_sigma, "noise": self.noise,
                "m_min": self.m_min, "m_max": self.m_max, "flatten": self.flatten,
                **({"log_f_sub": True} if self.log_f_sub else {})}

    # -- the population --------------------------------------------------------------------------------

    def f_sub(self, theta: Tensor) -> Tensor:
        """The substructure fraction of θ (n, 2): its first component, or e^(θ₀) with ``log_f_sub`` → (n,)."""
        return theta[:, 0].exp() if self.log_f_sub else theta[:, 0]

    def expected_count(self, theta: Tensor, theta_e: Tensor) -> Tensor:
        """λ = f_sub · M_field(θ_E) / E_β[m]: θ (n, 2), θ_E (n,) → (n,)."""
        m_field = 4.0 * math.asinh(1.0) * theta_e * (self.fov / 2.0) * MASS_UNIT / math.pi
        return self.f_sub(theta) * m_field / mean_mass(theta[:, 1], self.m_min, self.m_max)

    def sample_latent(self, theta, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """The latent z of n runs at θ (n, 2) (the dict described in the class docstring), without images."""
        theta = self.check_theta(theta).detach()
        n = theta.shape[0]

        def uniform(bounds, *shape):
            lo, hi = bounds
            return lo + (hi - lo) * torch.rand(n, *shape, dtype=DTYPE, generator=generator)

        z = {"theta_e": uniform(HOST["theta_e"]), "q": uniform(HOST["q"]), "phi": uniform(HOST["phi"]),
             "center": uniform(HOST["center"], 2), "shear": uniform(HOST["shear"], 2)}
        for key, bounds in SOURCE.items():
            z["source_" + key] = uniform(bounds, 2) if key == "center" else uniform(bounds)
        lam = self.expected_count(theta, z["theta_e"])
        count = torch.poisson(lam, generator=generator).long()
        k = int(count.max()) if n else 0
        total = int(count.sum())
        owner = torch.repeat_interleave(torch.arange(n), count)
        slot = torch.arange(total) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
        u = torch.rand(total, dtype=DTYPE, generator=generator)
        half = self.fov / 2.0
        pos = -half + self.fov * torch.rand(total, 2, dtype=DTYPE, generator=generator)
        mask = torch.zeros(n, k, dtype=torch.bool)
        mask[owner, slot] = True
        mass = torch.ones(n, k, dtype=DTYPE)
        mass[owner, slot] = sample_masses(theta[owner, 1], u, self.m_min, self.m_max)
        position = torch.zeros(n, k, 2, dtype=DTYPE)
        position[owner, slot] = pos
        z.update(n_sub=count, mask=mask, mass=mass, position=position)
        return z

    # -- rendering ----------------------------------------------------------------------------------------

    def render(self, z: dict, generator: torch.Generator | None = None, noise: bool = True) -> Tensor:
        """Images of the runs z (the dict of `sample_latent`) → (n, 1, size, size) float64, with the PSF and,
        when `noise`, the noise (drawn from `generator`)."""
        n = int(z["theta_e"].shape[0])
        out = torch.empty(n, 1, self.size, self.size, dtype=DTYPE)
        for s in range(0, n, IMAGES):
            part = {key: value[s:s + IMAGES] for key, value in z.items()}
            out[s:s + IMAGES] = self._render(part)
        if noise and self.noise > 0:
            out += self.noise * torch.randn(out.shape, dtype=DTYPE, generator=generator)
        return out

    def _render(self, z: dict) -> Tensor:
        x, y = self.grid
        n = int(z["theta_e"].shape[0])
        ax, ay = sie_deflection(x, y, z["theta_e"], z["q"], z["phi"], z["center"])
        sx, sy = shear_deflection(x, y, z["shear"])
        ax, ay = ax + sx, ay + sy
        owner, slot = z["mask"].nonzero(as_tuple=True)
        if len(owner):
            theta_e = z["theta_e"][owner]
            b = (z["mass"][owner, slot] / (MASS_UNIT * torch.sqrt(theta_e))) ** (2.0 / 3.0)
            a = torch.sqrt(b * theta_e)
            position = z["position"][owner, slot]
            step = max(1, PAIRS // len(x))
            for s in range(0, len(owner), step):
                dax, day = subhalo_deflection(x, y, position[s:s + step], b[s:s + step], a[s:s + step])
                ax.index_add_(0, owner[s:s + step], dax)
                ay.index_add_(0, owner[s:s + step], day)
        image = sersic(x[None] - ax, y[None] - ay, z["source_center"], z["source_r_e"], z["source_n"],
                       z["source_q"], z["source_phi"], z["source_amp"])
        image = image.reshape(n, 1, self.size, self.size)
        if self.kernel is not None:
            image = F.conv2d(image, self.kernel, padding=self.kernel.shape[-1] // 2)
        return image

    # -- the protocol ---------------------------------------------------------------------------------------

    def sample(self, theta, generator: torch.Generator | None = None) -> Draws:
        z = self.sample_latent(theta, generator)
        x = self.render(z, generator)
        return Draws(x.reshape(len(x), -1) if self.flatten else x, z)

    def joint_log_prob(self, draws: Draws, theta) -> Tensor:
        """log p(z_sub|θ) (the module docstring): log p(x, z|θ) up to terms free of θ; θ (n, 2) → (n,),
        differentiable in θ. Reads only draws.z."""
        theta = self.check_theta(theta)
        z = self._population(draws, theta)
        count = z["n_sub"].to(DTYPE)
        lam = self.expected_count(theta, z["theta_e"].to(DTYPE))
        log_count = count * torch.log(lam) - lam - torch.lgamma(count + 1.0)
        beta = theta[:, 1]
        log_m = torch.where(z["mask"], torch.log(z["mass"].to(DTYPE)), torch.zeros((), dtype=DTYPE))
        log_mass = beta * log_m.sum(1) - count * mass_log_norm(beta, self.m_min, self.m_max)
        log_position = -count * 2.0 * math.log(self.fov)
        return log_count + log_mass + log_position

    def joint_score(self, draws: Draws, theta) -> Tensor:
        """t = ∇_θ log p(z_sub|θ), by hand: with λ ∝ f_sub / E_β[m],
        ∂/∂f_sub = (N − λ)/f_sub (∂/∂ log f_sub = N − λ with ``log_f_sub``) and
        ∂/∂β = −(N − λ)·∂_β log E_β[m] + Σ_k log m_k − N ∂_β log Z(β),
        where ∂_β log Z(β) = E_β[log m] and ∂_β log E_β[m] = E_{β+1}[log m] − E_β[log m]."""
        theta = self.check_theta(theta).detach()
        z = self._population(draws, theta)
        count = z["n_sub"].to(DTYPE)
        lam = self.expected_count(theta, z["theta_e"].to(DTYPE))
        beta = theta[:, 1]
        mean_log = self._mean_log_mass(beta)
        log_m = torch.where(z["mask"], torch.log(z["mass"].to(DTYPE)), torch.zeros((), dtype=DTYPE))
        d_f = (count - lam) if self.log_f_sub else (count - lam) / theta[:, 0]
        d_beta = -(count - lam) * (self._mean_log_mass(beta + 1.0) - mean_log) + log_m.sum(1) - count * mean_log
        return torch.stack([d_f, d_beta], dim=1)

    @staticmethod
    def _population(draws: Draws, theta: Tensor) -> dict:
        """draws.z, checked to hold the population of as many runs as θ has rows."""
        z = draws.z
        if not isinstance(z, dict) or not {"n_sub", "mask", "mass", "theta_e"} <= set(z):
            raise ValueError("draws.z must be the dict that StrongLensing.sample recorded (n_sub, mask, mass, "
                             "theta_e, ...): replay the runs this simulator drew.")
        if z["n_sub"].shape[0] != theta.shape[0]:
            raise ValueError(f"θ has {theta.shape[0]} rows but draws.z holds {z['n_sub'].shape[0]} runs.")
        return z

    def _mean_log_mass(self, beta: Tensor) -> Tensor:
        """E_β[log m] = ∂_β log Z(β), by autograd of the closed form: (n,) → (n,)."""
        with torch.enable_grad():
            b = beta.detach().clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(mass_log_norm(b, self.m_min, self.m_max).sum(), b)
        return grad
