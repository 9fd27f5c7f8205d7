"""A built-in EFT process: q q̄ → ℓ⁻ℓ⁺ with two dimension-six-like coefficients, and a detector.

Parton level. The pair has invariant mass m ∈ [m_lo, m_hi] (TeV), lepton angle c = cos θ* in its
rest frame and rapidity y. With ŝ = m² and Λ = 1 TeV, two helicity amplitudes are linear in the
coefficients θ = (c₁, c₂), the first growing with energy in both helicities:

    A₁ = (1 + c)(g₁ + c₁ ŝ/Λ²),    A₂ = (1 − c)(g₂ + c₂ ŝ/Λ²) + κ c₁ ŝ/Λ²,

so |M|² = A₁² + A₂² is a quadratic polynomial in θ with all six monomials 1, c₂, c₂², c₁, c₁c₂,
c₁². With a parton luminosity L(m) = m^(−p) and y ~ N(0, σ_y²) independent of θ,

    p(m, c, y|θ) = L(m) |M|²(m, c; θ) N(y; 0, σ_y²) / σ(θ),   σ(θ) = ∫ L(m) |M|² dm dc,

and σ(θ) = Σ_c m_c(θ) σ_c in closed form (∫ m^(2j−p) dm and ∫ polynomials in c). At `level="parton"`
x = (m, c, y) and the likelihood is exact.

Detector level (`level="detector"`), latent steps that make p(x|θ) intractable: initial-state
radiation gives the pair a transverse momentum (exponential, mean 0.01 + 0.02 m TeV, a recoil jet);
the leptons decay isotropically in azimuth and are boosted to the lab; each radiates a collinear
photon that is lost with probability 1/4 (energy fraction 0.3 U²); each is found with efficiency
0.9 − 0.08 |η| and its momentum smeared by σ/p_T = 0.01 ⊕ 0.05 p_T/TeV; the jet is smeared by 10%
and seen above 30 GeV within |η| < 4.5. Events pass when both leptons are found with p_T > 25 GeV,
|η| < 2.5 and m_ℓℓ > 150 GeV; x holds the 14 observables of `OBSERVABLES`.

The joint likelihood of a detector-level run replays only the parton step, where θ enters:

    log p(x, z|θ) = log L(m) + log |M|²(m, c; θ) + log N(y) − log σ_fid(θ) + (terms free of θ),

the detector's own densities being the same at every θ (they cancel in r and drop out of t, as
in matrix-element reweighting). The fiducial cross section σ_fid(θ) = Σ_c m_c(θ) σ_fid,c is again a
polynomial in θ; its six components are Monte Carlo integrals over `fiducial_events` parton events
run through the detector once, when the process is built (seeded, so the same every time).

References:
    Brehmer, Cranmer, Louppe, Pavez, "Constraining effective field theories with machine
    learning", Phys. Rev. Lett. 121 (2018) 111801, https://arxiv.org/abs/1805.00013;
    Collins, Soper, "Angular distribution of dileptons in high-energy hadron collisions",
    Phys. Rev. D 16 (1977) 2219.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import checks
from ..simulators.base import DTYPE, Draws, Simulator, box_prior
from .kinematics import FourMomenta, collins_soper, delta_phi
from .morphing import components, monomials

G1, G2, KAPPA = 1.0, 0.6, 0.5
POWER = 3.0
SIGMA_Y = 0.8
#: the monomials of |M|², in `components(2)` order: 1, c₂, c₂², c₁, c₁c₂, c₁²
EXPONENTS = components(2)
PARTON_OBSERVABLES = ("m_ll", "cos_theta", "y_ll")
OBSERVABLES = ("pt_l1", "eta_l1", "pt_l2", "eta_l2", "dphi_ll", "m_ll", "pt_ll", "y_ll", "cos_theta_cs",
               "pt_j", "eta_j", "n_j", "met", "ht")
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
#: σ_fid components already integrated in this process, by (m_range, fiducial_events)
_FIDUCIAL_CACHE: dict = {}


def amplitudes_squared(m: Tensor, c: Tensor, theta: Tensor) -> Tensor:
    """|M|² = A₁² + A₂² from the amplitudes: m, c (n,), θ (n, 2) → (n,)."""
    s = m**2
    a1 = (1.0 + c) * (G1 + theta[:, 0] * s)
    a2 = (1.0 - c) * (G2 + theta[:, 1] * s) + KAPPA * theta[:, 0] * s
    return a1**2 + a2**2


def matrix_element_components(m: Tensor, c: Tensor) -> Tensor:
    """F_c(m, c) with |M|² = Σ_c m_c(θ) F_c: (n,), (n,) → (n, 6), in `EXPONENTS` order."""
    s = m**2
    up, down = (1.0 + c) ** 2, (1.0 - c) ** 2
    return torch.stack([
        G1**2 * up + G2**2 * down,                     # 1
        2.0 * G2 * s * down,                           # c₂
        s**2 * down,                                   # c₂²
        s * (2.0 * G1 * up + 2.0 * KAPPA * G2 * (1.0 - c)),   # c₁
        s**2 * 2.0 * KAPPA * (1.0 - c),                # c₁ c₂
        s**2 * (up + KAPPA**2),                        # c₁²
    ], dim=-1)


@dataclass(frozen=True)
class EventSample:
    """Weighted events of the process (`EFTProcess.weighted_events`).

    Attributes:
        parton: (N, 3) the parton kinematics (m, c, y).
        x: (N, 14) detector-level observables (NaN where the event fails the cuts).
        passed: (N,) whether the event passes the detector's efficiencies and cuts.
        weights: (N, B) the event weights at the benchmarks: Σ_i w_ib = σ(θ_b) in expectation.
        benchmarks: (B, 2).
    """

    parton: Tensor
    x: Tensor
    passed: Tensor
    weights: Tensor
    benchmarks: Tensor


class EFTProcess(Simulator):
    """q q̄ → ℓ⁻ℓ⁺ with two EFT coefficients θ ∈ [−1, 1]², θ_ref = (0, 0) (the Standard Model).

    Arguments:
        level: "parton" (x = (m, c, y), exact likelihood) or "detector" (x: 14 observables).
        m_range: (m_lo, m_hi) in TeV.
        fiducial_events: parton events run through the detector for σ_fid(θ) (detector level).

    Example:
        >>> sim = EFTProcess("parton")
        >>> d = sim.sample(torch.zeros(3, 2), torch.Generator().manual_seed(0))
        >>> d.x.shape, sim.log_prob(d.x, torch.zeros(3, 2)).shape
        (torch.Size([3, 3]), torch.Size([3]))
    """

    theta_dim = 2

    def __init__(self, level: str = "detector", m_range=(0.2, 1.0), fiducial_events: int = 400_000):
        if level not in ("parton", "detector"):
            raise ValueError(f"level must be 'parton' or 'detector'; got {level!r}.")
        lo, hi = (float(v) for v in m_range)
        if not 0.0 < lo < hi:
            raise ValueError(f"m_range must be (m_lo, m_hi) with 0 < m_lo < m_hi (TeV); got {m_range!r}.")
        self.level, self.m_range = level, (lo, hi)
        self.fiducial_events = checks.positive_int(fiducial_events, "fiducial_events")
        self.name = f"eft_{level}"
        self.x_dim = 3 if level == "parton" else len(OBSERVABLES)
        self.observables = PARTON_OBSERVABLES if level == "parton" else OBSERVABLES
        self.prior = box_prior([-1.0, -1.0], [1.0, 1.0])
        self.reference = torch.zeros(2, dtype=DTYPE)
        self.exponents = EXPONENTS
        self.luminosity_integral = self._mass_integral(0)
        self.sigma_components = self._parton_sigma_components()
        if level == "detector":
            key = (self.m_range, self.fiducial_events)
            if key not in _FIDUCIAL_CACHE:
                _FIDUCIAL_CACHE[key] = self._fiducial_components()
            self.fiducial_components = _FIDUCIAL_CACHE[key].clone()
        else:
            self.fiducial_components = self.sigma_components

    def config(self) -> dict:
        return {"level": self.level, "m_range": list(self.m_range), "fiducial_events": self.fiducial_events}

    # -- parton level -------------------------------------------------------------------------

    def _mass_integral(self, j: int) -> float:
        """∫ m^(2j − p) dm over the mass range."""
        lo, hi = self.m_range
        e = 2 * j - POWER + 1.0
        return math.log(hi / lo) if e == 0 else (hi**e - lo**e) / e

    def _parton_sigma_components(self) -> Tensor:
        """σ_c = ∫ L(m) F_c(m, c) dm dc in closed form: (6,)."""
        i0, i1, i2 = (self._mass_integral(j) for j in range(3))
        sq = 8.0 / 3.0  # ∫ (1 ± c)² dc
        return torch.tensor([(G1**2 + G2**2) * sq * i0, 2 * G2 * sq * i1, sq * i2,
                             (2 * G1 * sq + 4 * KAPPA * G2) * i1, 4 * KAPPA * i2, (sq + 2 * KAPPA**2) * i2],
                            dtype=DTYPE)

    def cross_section(self, theta, fiducial: bool | None = None) -> Tensor:
        """σ(θ) (or σ_fid(θ) after the detector's efficiencies and cuts): θ (n, 2) → (n,), in units of
        ∫ L dm (arbitrary; ratios are what matter). By default the cross section of the events x
        describes: fiducial at detector level, total at parton level."""
        theta = self.check_theta(theta)
        fiducial = self.level == "detector" if fiducial is None else fiducial
        comps = self.fiducial_components if fiducial else self.sigma_components
        return monomials(theta, self.exponents) @ comps

    def _masses(self, u: Tensor) -> Tensor:
        """m ~ L(m)/∫L by the inverse CDF of m^(−p) on the range."""
        lo, hi = self.m_range
        e = 1.0 - POWER
        return (lo**e + u * (hi**e - lo**e)) ** (1.0 / e)

    def _proposal(self, n: int, generator) -> Tensor:
        """(m, c, y) with m ~ L(m)/∫L, c ~ U(−1, 1), y ~ N(0, σ_y²): (n, 3)."""
        m = self._masses(torch.rand(n, generator=generator, dtype=DTYPE))
        c = 2.0 * torch.rand(n, generator=generator, dtype=DTYPE) - 1.0
        y = SIGMA_Y * torch.randn(n, generator=generator, dtype=DTYPE)
        return torch.stack([m, c, y], dim=-1)

    def _bound(self, theta: Tensor) -> Tensor:
        """An upper bound of |M|² over the range at each θ (n, 2) → (n,)."""
        s = self.m_range[1] ** 2
        a1 = 2.0 * (abs(G1) + theta[:, 0].abs() * s)
        a2 = 2.0 * (abs(G2) + theta[:, 1].abs() * s) + KAPPA * theta[:, 0].abs() * s
        return a1**2 + a2**2

    def sample_parton(self, theta: Tensor, generator=None) -> Tensor:
        """(m, c, y) ~ p(m, c, y|θ) exactly, by rejection from the proposal: θ (n, 2) → (n, 3)."""
        theta = self.check_theta(theta).detach()
        out = torch.empty(theta.shape[0], 3, dtype=DTYPE)
        todo = torch.arange(theta.shape[0])
        bound = self._bound(theta)
        while len(todo):
            z = self._proposal(len(todo), generator)
            u = torch.rand(len(todo), generator=generator, dtype=DTYPE)
            accept = u * bound[todo] < amplitudes_squared(z[:, 0], z[:, 1], theta[todo])
            out[todo[accept]] = z[accept]
            todo = todo[~accept]
        return out

    def _parton_log_density(self, parton: Tensor, theta: Tensor, fiducial: bool) -> Tensor:
        m, c, y = parton[:, 0], parton[:, 1], parton[:, 2]
        lo, hi = self.m_range
        inside = (m >= lo) & (m <= hi) & (c.abs() <= 1.0)
        msq = amplitudes_squared(torch.where(inside, m, torch.full_like(m, lo)), c.clamp(-1.0, 1.0), theta)
        comps = self.fiducial_components if fiducial else self.sigma_components
        log_p = -POWER * torch.log(m.clamp(min=lo)) + torch.log(msq) - torch.log(monomials(theta, self.exponents) @ comps) \
            - 0.5 * (y / SIGMA_Y) ** 2 - math.log(SIGMA_Y) - _LOG_SQRT_2PI
        return torch.where(inside, log_p, torch.full_like(log_p, -math.inf))

    # -- detector level -------------------------------------------------------------------------

    def detector(self, parton: Tensor, generator=None) -> tuple[Tensor, Tensor]:
        """Radiation, decay, photon loss, efficiencies, smearing and cuts of parton events (n, 3) →
        x (n, 14) (NaN where the event fails) and passed (n,) bool."""
        n = parton.shape[0]
        m, c, y = parton[:, 0], parton[:, 1], parton[:, 2]

        def uniform():
            return torch.rand(n, generator=generator, dtype=DTYPE)

        def normal():
            return torch.randn(n, generator=generator, dtype=DTYPE)

        pt = -(0.01 + 0.02 * m) * torch.log(uniform())                       # initial-state radiation
        phi_r = 2.0 * math.pi * uniform()
        mt = torch.sqrt(m**2 + pt**2)
        pair = FourMomenta(mt * torch.cosh(y), pt * torch.cos(phi_r), pt * torch.sin(phi_r), mt * torch.sinh(y))
        phi_star = 2.0 * math.pi * uniform()                                   # the decay
        sin = torch.sqrt((1.0 - c**2).clamp(min=0.0))
        half = m / 2.0
        rest = FourMomenta(half, half * sin * torch.cos(phi_star), half * sin * torch.sin(phi_star), half * c)
        anti = FourMomenta(half, -rest.px, -rest.py, -rest.pz)
        leptons = []
        found = torch.ones(n, dtype=torch.bool)
        for p in (rest.boosted(pair), anti.boosted(pair)):
            lost = torch.where(uniform() < 0.25, 0.3 * uniform() ** 2, torch.zeros(n, dtype=DTYPE))  # photon
            p = p.scaled(1.0 - lost)
            found &= uniform() < (0.9 - 0.08 * p.eta.abs()).clamp(min=0.0)     # efficiency
            resolution = torch.sqrt(0.01**2 + (0.05 * p.pt) ** 2)             # smearing
            p = p.scaled((1.0 + resolution * normal()).clamp(min=1e-3))
            leptons.append(p)
        lep, alep = leptons
        jet_pt = pt * (1.0 + 0.1 * normal()).clamp(min=0.0)
        jet_eta = y + 1.5 * normal()
        has_jet = (jet_pt > 0.03) & (jet_eta.abs() < 4.5)
        jet_pt, jet_eta = torch.where(has_jet, jet_pt, 0.0), torch.where(has_jet, jet_eta, 0.0)
        jet_px, jet_py = -jet_pt * torch.cos(phi_r), -jet_pt * torch.sin(phi_r)
        dilepton = lep + alep  # the recoil jet points opposite the pair's φ_r; what is not seen is missing
        met = torch.hypot(dilepton.px + jet_px, dilepton.py + jet_py)
        ht = lep.pt + alep.pt + jet_pt
        passed = found & (lep.pt > 0.025) & (alep.pt > 0.025) & (lep.eta.abs() < 2.5) & (alep.eta.abs() < 2.5) \
            & (dilepton.m > 0.15)
        x = torch.stack([lep.pt, lep.eta, alep.pt, alep.eta, delta_phi(lep.phi, alep.phi), dilepton.m, dilepton.pt,
                         dilepton.rapidity, collins_soper(lep, alep), jet_pt, jet_eta, has_jet.to(DTYPE), met, ht], -1)
        x = torch.where(passed[:, None], x, torch.full_like(x, math.nan))
        return x, passed

    def _fiducial_components(self) -> Tensor:
        """σ_fid,c = 2 ∫L · E_proposal[F_c(m, c) 1(pass)], from `fiducial_events` seeded events: (6,)."""
        g = torch.Generator().manual_seed(20_181_801)
        total = torch.zeros(6, dtype=DTYPE)
        for start in range(0, self.fiducial_events, 200_000):
            n = min(200_000, self.fiducial_events - start)
            z = self._proposal(n, g)
            _, passed = self.detector(z, g)
            total += (matrix_element_components(z[:, 0], z[:, 1]) * passed[:, None]).sum(0)
        return 2.0 * self.luminosity_integral * total / self.fiducial_events

    # -- the protocol -------------------------------------------------------------------------

    def sample(self, theta, generator=None) -> Draws:
        theta = self.check_theta(theta).detach()
        if self.level == "parton":
            parton = self.sample_parton(theta, generator)
            return Draws(parton.clone(), {"parton": parton})
        x = torch.empty(theta.shape[0], self.x_dim, dtype=DTYPE)
        parton = torch.empty(theta.shape[0], 3, dtype=DTYPE)
        todo = torch.arange(theta.shape[0])
        while len(todo):  # events that fail the cuts are not recorded: draw again
            z = self.sample_parton(theta[todo], generator)
            xs, passed = self.detector(z, generator)
            x[todo[passed]], parton[todo[passed]] = xs[passed], z[passed]
            todo = todo[~passed]
        return Draws(x, {"parton": parton})

    def joint_log_prob(self, draws: Draws, theta) -> Tensor:
        """log p(x, z|θ) up to terms free of θ (the detector's), θ (n, 2) → (n,) (see the module docstring)."""
        theta = self.check_theta(theta)
        if not isinstance(draws.z, dict) or "parton" not in draws.z:
            raise ValueError("draws.z must hold the 'parton' kinematics (n, 3) that EFTProcess.sample records.")
        return self._parton_log_density(torch.as_tensor(draws.z["parton"], dtype=DTYPE), theta,
                                        fiducial=self.level == "detector")

    def log_prob(self, x, theta) -> Tensor:
        """Exact log p(x|θ) at parton level: x (n, 3) = (m, c, y), θ (n, 2) → (n,)."""
        if self.level != "parton":
            raise NotImplementedError("the detector-level likelihood is intractable; use EFTProcess('parton').")
        return self._parton_log_density(self.check_x(x), self.check_theta(theta), fiducial=False)

    # -- weighted events, as a generator writes them ---------------------------------------------

    def event_weights(self, parton: Tensor, theta) -> Tensor:
        """The weight of proposal events at θ: 2 ∫L |M|²(m, c; θ)/N per event: (N, 3), θ (k, 2) → (N, k)."""
        theta = torch.as_tensor(theta, dtype=DTYPE).reshape(-1, 2)
        n = parton.shape[0]
        m, c = parton[:, 0], parton[:, 1]
        cols = [amplitudes_squared(m, c, t.expand(n, 2)) for t in theta]
        return 2.0 * self.luminosity_integral * torch.stack(cols, -1) / n

    def weighted_events(self, n: int, benchmarks, seed: int = 0) -> EventSample:
        """n weighted events drawn from the proposal, with their weights at each benchmark and their
        detector-level observables: Σ_i w_ib estimates σ(θ_b) (σ_fid(θ_b) over the passed events)."""
        n = checks.positive_int(n, "n")
        g = torch.Generator().manual_seed(seed)
        parton = self._proposal(n, g)
        x, passed = self.detector(parton, g)
        benchmarks = torch.as_tensor(benchmarks, dtype=DTYPE).reshape(-1, 2)
        return EventSample(parton, x, passed, self.event_weights(parton, benchmarks), benchmarks)
