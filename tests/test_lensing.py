"""Tests of the strong-lensing simulator: its subhalo population (gold), its lens equation and its renderer."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

import goldmine as gm
from goldmine.simulators.base import DTYPE, Draws, Simulator
from goldmine.simulators.lensing import (
    StrongLensing, mass_log_norm, mean_mass, sample_masses, sersic_flux, shear_deflection, sie_deflection,
    subhalo_deflection,
)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def latent_draws(sim, theta, n, seed):
    """n runs' latent z at θ, as Draws (the population needs no image)."""
    theta = torch.as_tensor(theta, dtype=DTYPE).expand(n, 2)
    return Draws(torch.zeros(n, 0, dtype=DTYPE), sim.sample_latent(theta, gen(seed)))


@pytest.mark.parametrize("log_f_sub", [False, True])
def test_gold_identities_hold_on_average(log_f_sub):
    """E[r(x, z|θ, θ_ref)] = 1 over runs at θ_ref and E[t(x, z|θ)] = 0 over runs at θ, within 5 standard errors,
    with θ = (f_sub, β) and with θ = (log f_sub, β)."""
    sim = StrongLensing(size=8, log_f_sub=log_f_sub)
    n = 20_000
    ref = sim.reference[None].expand(n, 2)
    theta = torch.tensor([[math.log(0.06) if log_f_sub else 0.06, -1.8]], dtype=DTYPE).expand(n, 2)
    at_ref = latent_draws(sim, sim.reference, n, 0)
    r = torch.exp(sim.joint_log_prob(at_ref, theta) - sim.joint_log_prob(at_ref, ref))
    assert abs(float(r.mean()) - 1) < 5 * float(r.std()) / math.sqrt(n)
    at_theta = latent_draws(sim, theta[0], n, 1)
    t = sim.joint_score(at_theta, theta)
    assert (t.mean(0).abs() < 5 * t.std(0) / math.sqrt(n)).all()


def test_log_f_sub_is_a_reparametrisation():
    """θ = (log f_sub, β) draws the same runs as θ = (f_sub, β) from the same seed; its joint log-density is the
    same; its joint score is the chain rule's (f_sub·t_f, t_β), whose f component N − λ has the Poisson
    variance λ (within 5 standard errors) instead of λ/f_sub²."""
    lin, log = StrongLensing(size=8), StrongLensing(size=8, log_f_sub=True)
    assert log.theta_names == ("log_f_sub", "beta") and lin.theta_names == ("f_sub", "beta")
    assert log.config()["log_f_sub"] is True and "log_f_sub" not in lin.config()
    assert math.isclose(float(log.reference[0]), math.log(0.05)) and float(log.reference[1]) == -1.9
    n = 2000
    theta = torch.tensor([0.02, -2.1], dtype=DTYPE).expand(n, 2)
    theta_log = torch.stack([theta[:, 0].log(), theta[:, 1]], 1)
    a, b = latent_draws(lin, theta[0], n, 7), latent_draws(log, theta_log[0], n, 7)
    assert torch.equal(a.z["n_sub"], b.z["n_sub"]) and torch.equal(a.z["mass"], b.z["mass"])
    torch.testing.assert_close(log.joint_log_prob(b, theta_log), lin.joint_log_prob(a, theta), rtol=1e-12, atol=1e-9)
    t_lin, t_log = lin.joint_score(a, theta), log.joint_score(b, theta_log)
    torch.testing.assert_close(t_log, t_lin * torch.stack([theta[:, 0], torch.ones(n, dtype=DTYPE)], 1),
                               rtol=1e-9, atol=1e-9)
    lam = log.expected_count(theta_log, b.z["theta_e"])
    # Var(N − λ) = E[Var(N|λ)] = E[λ]; the sample variance of a Poisson(λ) count has relative error
    # √(2/n + 1/(nλ))
    ratio = float(t_log[:, 0].var() / lam.mean())
    assert abs(ratio - 1) < 5 * math.sqrt(2 / n + 1 / (n * float(lam.mean())))
    assert float(t_lin[:, 0].std()) > 20 * float(t_log[:, 0].std())  # 1/f_sub = 50 times wider in f_sub


def test_population_follows_its_distributions():
    """Counts have the Poisson mean λ and variance λ; masses follow the power law (KS test)."""
    sim = StrongLensing(size=8)
    n = 4000
    theta = torch.tensor([0.1, -2.2], dtype=DTYPE)
    z = latent_draws(sim, theta, n, 2).z
    lam = sim.expected_count(theta.expand(n, 2), z["theta_e"])
    resid = (z["n_sub"].to(DTYPE) - lam) / lam.sqrt()
    assert abs(float(resid.mean())) < 5 / math.sqrt(n) and abs(float(resid.var()) - 1) < 5 * math.sqrt(2 / n)
    assert torch.equal(z["mask"].sum(1), z["n_sub"])
    masses = z["mass"][z["mask"]].numpy()
    beta, lo, hi = -2.2, sim.m_min, sim.m_max

    def cdf(m):
        return (m ** (1 + beta) - lo ** (1 + beta)) / (hi ** (1 + beta) - lo ** (1 + beta))

    assert stats.kstest(masses, cdf).pvalue > 1e-3
    pos = z["position"][z["mask"]]
    assert (pos.abs() <= sim.fov / 2).all()


def test_mass_function_closed_forms():
    """Z(β), E_β[m] and the inverse CDF against quadrature, across β = −1 and −2 where they have removable
    singularities."""
    lo, hi = 1e8, 1e10
    for b in (-2.5, -2.0, -1.9, -1.0, -1.5):
        beta = torch.tensor([b], dtype=DTYPE)
        m = np.geomspace(lo, hi, 200_001)
        w = m**b
        z = np.trapezoid(w, m)
        assert math.isclose(float(mass_log_norm(beta, lo, hi)), math.log(z), rel_tol=0, abs_tol=1e-6)
        assert math.isclose(float(mean_mass(beta, lo, hi)), np.trapezoid(w * m, m) / z, rel_tol=1e-6)
        u = torch.tensor([0.0, 0.3, 1.0], dtype=DTYPE)
        q = sample_masses(beta, u, lo, hi).numpy()
        assert np.allclose([q[0], q[2]], [lo, hi], rtol=1e-12)
        frac = np.trapezoid(w[m <= q[1]], m[m <= q[1]]) / z
        assert abs(frac - 0.3) < 1e-4


@pytest.mark.parametrize("log_f_sub", [False, True])
def test_joint_score_matches_autograd_and_finite_differences(log_f_sub):
    sim = StrongLensing(size=8, log_f_sub=log_f_sub)
    n = 200
    theta = gm.simulators.draw_prior(sim.prior, n, seed=3)
    draws = Draws(torch.zeros(n, 0, dtype=DTYPE), sim.sample_latent(theta, gen(4)))
    score = sim.joint_score(draws, theta)
    assert torch.allclose(score, Simulator.joint_score(sim, draws, theta), rtol=1e-9, atol=1e-7)
    h = 1e-6
    inner = ((theta - h > sim.prior.base_dist.low) & (theta + h < sim.prior.base_dist.high)).all(1)
    for j in range(2):
        step = torch.zeros(2, dtype=DTYPE)
        step[j] = h
        sub = Draws(draws.x[inner], {k: v[inner] for k, v in draws.z.items()})
        fd = (sim.joint_log_prob(sub, theta[inner] + step) - sim.joint_log_prob(sub, theta[inner] - step)) / (2 * h)
        assert torch.allclose(score[inner, j], fd, rtol=1e-5, atol=1e-4 * (1 + score[inner, j].abs().max()))


def _div_curl(field, x, y, h=1e-5):
    """Divergence and curl of a deflection field at points (P,) by central differences."""
    axp, _ = field(x + h, y)
    axm, _ = field(x - h, y)
    _, ayp = field(x, y + h)
    _, aym = field(x, y - h)
    _, ay_xp = field(x + h, y)
    _, ay_xm = field(x - h, y)
    ax_yp, _ = field(x, y + h)
    ax_ym, _ = field(x, y - h)
    div = (axp - axm + ayp - aym) / (2 * h)
    curl = (ay_xp - ay_xm - ax_yp + ax_ym) / (2 * h)
    return div, curl


def test_deflections_solve_the_lens_equation_for_their_convergence():
    """∇·α = 2κ and ∇×α = 0 (α is the gradient of the lensing potential) for the SIE, the shear and the subhalo."""
    g = gen(5)
    x = 4 * torch.rand(500, dtype=DTYPE, generator=g) - 2
    y = 4 * torch.rand(500, dtype=DTYPE, generator=g) - 2
    theta_e, q, phi, c = 1.2, 0.7, 0.6, torch.tensor([[0.1, -0.05]], dtype=DTYPE)
    t = lambda v: torch.tensor([v], dtype=DTYPE)  # noqa: E731

    def sie(px, py):
        ax, ay = sie_deflection(px, py, t(theta_e), t(q), t(phi), c)
        return ax[0], ay[0]

    dx, dy = x - c[0, 0], y - c[0, 1]
    xr = math.cos(phi) * dx + math.sin(phi) * dy
    yr = -math.sin(phi) * dx + math.cos(phi) * dy
    far = (dx**2 + dy**2).sqrt() > 0.05
    kappa = theta_e / (2 * torch.sqrt(q * xr**2 + yr**2 / q))
    div, curl = _div_curl(sie, x, y)
    assert torch.allclose(div[far], 2 * kappa[far], rtol=1e-5)
    assert curl[far].abs().max() < 1e-5

    def shear(px, py):
        ax, ay = shear_deflection(px, py, torch.tensor([[0.03, -0.02]], dtype=DTYPE))
        return ax[0], ay[0]

    div, curl = _div_curl(shear, x, y)
    assert div.abs().max() < 1e-8 and curl.abs().max() < 1e-8

    pos, b, a = torch.tensor([[0.3, 0.2]], dtype=DTYPE), t(0.05), t(0.25)

    def sub(px, py):
        ax, ay = subhalo_deflection(px, py, pos, b, a)
        return ax[0], ay[0]

    r = ((x - 0.3) ** 2 + (y - 0.2) ** 2).sqrt()
    kappa = 0.05 / 2 * (1 / r - 1 / (r**2 + 0.25**2).sqrt())
    div, curl = _div_curl(sub, x, y)
    far = r > 0.05
    assert torch.allclose(div[far], 2 * kappa[far], rtol=1e-4, atol=1e-7)
    assert curl[far].abs().max() < 1e-6
    # far away the subhalo deflects like a point of its total lensing mass π·b·a
    ax, ay = subhalo_deflection(torch.tensor([1e4], dtype=DTYPE), torch.tensor([0.2], dtype=DTYPE), pos, b, a)
    assert math.isclose(float(ax[0, 0]) * (1e4 - 0.3), 0.05 * 0.25, rel_tol=1e-3)


def _single_lens(theta_e=1.0, beta=0.3, r_e=0.03):
    """The z of one SIS lens (no shear, no subhalos) and a compact circular Gaussian (Sérsic n = 1/2) source
    at (β, 0)."""
    one = lambda v: torch.tensor([v], dtype=DTYPE)  # noqa: E731
    return {"theta_e": one(theta_e), "q": one(1.0), "phi": one(0.0), "center": torch.zeros(1, 2, dtype=DTYPE),
            "shear": torch.zeros(1, 2, dtype=DTYPE), "source_center": torch.tensor([[beta, 0.0]], dtype=DTYPE),
            "source_r_e": one(r_e), "source_n": one(0.5), "source_q": one(1.0), "source_phi": one(0.0),
            "source_amp": one(1.0), "n_sub": torch.zeros(1, dtype=torch.long),
            "mask": torch.zeros(1, 0, dtype=torch.bool),
            "mass": torch.ones(1, 0, dtype=DTYPE), "position": torch.zeros(1, 0, 2, dtype=DTYPE)}


def test_singular_isothermal_sphere_makes_two_images_where_theory_puts_them():
    """A compact source at β < θ_E behind an SIS has two images on its axis, at θ_E + β and −(θ_E − β), with
    magnifications |θ/(θ − θ_E)| = (θ_E + β)/β and (θ_E − β)/β, so the flux ratio is (θ_E + β)/(θ_E − β) and the
    total magnification 2θ_E/β; surface brightness is conserved, so the image's flux is μ times the source's."""
    theta_e, beta = 1.0, 0.3
    sim = StrongLensing(size=256, fov=4.0, psf_sigma=0.0, noise=0.0)
    z = _single_lens(theta_e, beta)
    image = sim.render(z, noise=False)[0, 0]
    x, y = (g.reshape(sim.size, sim.size) for g in sim.grid)
    pixel_area = sim.pixel**2
    plus, minus = x > 0, x < 0
    flux = {k: float(image[m].sum()) * pixel_area for k, m in (("+", plus), ("-", minus))}
    for side, mask, expected in (("+", plus, theta_e + beta), ("-", minus, -(theta_e - beta))):
        w = image * mask
        cx, cy = float((w * x).sum() / w.sum()), float((w * y).sum() / w.sum())
        assert abs(cx - expected) < sim.pixel and abs(cy) < sim.pixel, (side, cx, cy)
        peak = int(torch.argmax(w))
        assert abs(float(x.reshape(-1)[peak]) - expected) < sim.pixel
    # the finite source changes magnifications at order (size/β)², about 1% here
    assert abs(flux["+"] / flux["-"] / ((theta_e + beta) / (theta_e - beta)) - 1) < 0.02
    source = float(sersic_flux(z["source_r_e"], z["source_n"], z["source_amp"])[0])
    assert abs((flux["+"] + flux["-"]) / source / (2 * theta_e / beta) - 1) < 0.02
    # a source outside the Einstein radius has one image (on its side), magnified by (β + θ_E)/β
    far = sim.render(_single_lens(0.5, 0.8), noise=False)[0, 0]
    assert float(far[minus].sum()) < 1e-6 * float(far[plus].sum())
    assert abs(float(far.sum()) * pixel_area / source / ((0.8 + 0.5) / 0.8) - 1) < 0.02


def test_subhalos_psf_and_noise_change_the_image_as_they_should():
    sim = StrongLensing(size=32, psf_sigma=0.0, noise=0.0)
    z = _single_lens()
    clean = sim.render(z, noise=False)
    with_sub = dict(z, n_sub=torch.tensor([1]), mask=torch.ones(1, 1, dtype=torch.bool),
                    mass=torch.tensor([[1e10]], dtype=DTYPE), position=torch.tensor([[[1.3, 0.0]]], dtype=DTYPE))
    assert (sim.render(with_sub, noise=False) - clean).abs().max() > 0.05
    blurred = StrongLensing(size=32, psf_sigma=0.2, noise=0.0).render(z, noise=False)
    assert math.isclose(float(blurred.sum()), float(clean.sum()), rel_tol=1e-3)  # the PSF keeps the flux
    assert float(blurred.max()) < float(clean.max())
    noisy = StrongLensing(size=32, psf_sigma=0.0, noise=0.1).render(z, gen(0))
    resid = (noisy - clean).reshape(-1)
    assert abs(float(resid.std()) - 0.1) < 5 * 0.1 / math.sqrt(2 * resid.numel())


def test_shapes_reproducibility_and_records(tmp_path):
    sim = StrongLensing(size=16, flatten=True)
    theta = gm.simulators.draw_prior(sim.prior, 6, seed=0)
    a, b = sim.sample(theta, gen(1)), sim.sample(theta, gen(1))
    assert a.x.shape == (6, 256) and torch.equal(a.x, b.x) and sim.x_dim == 256 and sim.x_shape is None
    assert all(torch.equal(a.z[k], b.z[k]) for k in a.z)
    image = StrongLensing(size=16).sample(theta, gen(1)).x
    assert image.shape == (6, 1, 16, 16) and torch.equal(image.reshape(6, -1), a.x)
    from goldmine.workflow.simulators import make_simulator

    assert make_simulator("lensing", {"size": 16, "flatten": True}).config() == sim.config()
    small = StrongLensing(size=8)
    small.block_size = 8
    one = gm.simulate(small, 32, tmp_path / "a.h5", seed=3, chunk_size=8, progress=False).tensors(dtype=DTYPE)
    two = gm.simulate(small, 32, tmp_path / "b.h5", seed=3, chunk_size=32, progress=False).tensors(dtype=DTYPE)
    assert set(one) == {"theta", "x", "label", "log_r", "score", "score_ref"} and one["x"].shape == (32, 1, 8, 8)
    assert all(torch.equal(one[k], two[k]) for k in one)


def test_bad_input_raises():
    for kwargs in ({"size": 3}, {"size": 2.5}, {"noise": -1.0}, {"psf_sigma": math.nan}, {"m_min": 1e10, "m_max": 1e9},
                   {"flatten": "yes"}, {"fov": 0.0}):
        with pytest.raises(ValueError):
            StrongLensing(**kwargs)
    sim = StrongLensing(size=8)
    for theta in ([[0.0, -2.0]], [[0.1, -1.0]], [[0.1]]):
        with pytest.raises(ValueError):
            sim.sample(torch.tensor(theta, dtype=DTYPE))
    with pytest.raises(ValueError, match="StrongLensing.sample"):
        sim.joint_log_prob(Draws(torch.zeros(1, 64, dtype=DTYPE), None), sim.reference[None])
    draws = sim.sample(sim.reference[None], gen(0))
    for replay in (sim.joint_log_prob, sim.joint_score):
        with pytest.raises(ValueError, match="rows"):
            replay(draws, sim.reference[None].expand(2, 2))
        with pytest.raises(ValueError, match="StrongLensing.sample"):
            replay(Draws(draws.x, {"n_sub": draws.z["n_sub"]}), sim.reference[None])


@pytest.mark.slow
def test_population_inference_from_many_images(tmp_path):
    """n lenses share θ: ℓ(θ) = Σ_i log r̂(x_i|θ) through Model, with the CNN embedding evaluated once per image;
    MLE, Wilks region, expected limits (Asimov runs capped for images) and coverage run on image observations."""
    from goldmine.inference.toys import asimov_runs

    torch.manual_seed(0)
    sim = StrongLensing(size=8)
    data = gm.simulate(sim, 512, tmp_path / "lenses.h5", seed=0, progress=False)
    est = gm.RatioEstimator("alices", embedding={"name": "cnn", "channels": [4], "out": 8}, hidden=(16,), epochs=2,
                            batch_size=128, progress=False).fit(data)
    x_obs = sim.sample(torch.tensor([[0.1, -2.0]], dtype=DTYPE).expand(30, 2), gen(9)).x  # (30, 1, 8, 8)
    model = gm.inference.Model(est, prior=sim)
    theta = torch.tensor([[0.05, -1.9], [0.15, -2.2], [0.01, -1.6]], dtype=DTYPE)
    direct = torch.stack([est.log_ratio(x_obs, t.expand(30, 2)).to(DTYPE).sum() for t in theta])
    assert torch.allclose(model.log_likelihood(theta, x_obs), direct, rtol=1e-4, atol=1e-3)
    again = model.log_likelihood(theta, x_obs)  # served from the remembered embedding: the same computation
    assert torch.equal(again, model.log_likelihood(theta, x_obs.reshape(30, -1)))  # flat rows are the same x
    grid = model.grid(9)
    fit = gm.inference.mle(model, x_obs, grid=grid)
    assert float(fit.log_likelihood) >= float(fit.grid_log_likelihood.max()) - 1e-6
    region = gm.inference.confidence_region(model, x_obs, 0.95, grid=grid)
    assert bool(region.contains(fit.theta[None])[0])
    assert asimov_runs(StrongLensing()) == 4096 and asimov_runs(gm.simulators.GaltonBoard()) == 100_000
    limits = gm.inference.expected_limits(model, [0.1, -2.0], n_obs=30, grid=grid, method="toys", toys=4)
    assert 0 < limits.size <= float((model.high - model.low).prod()) + 1e-9
    cover = gm.inference.coverage(model, [0.1, -2.0], n_obs=30, toys=8, grid=grid)
    assert 0.0 <= cover["coverage"] <= 1.0 and cover["toys"] == 8
