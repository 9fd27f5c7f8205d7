"""Nuisance parameters, the extended likelihood, profiling (torch against iminuit) and Asimov limits."""

import pytest
import torch

from goldmine.physics import limits as lim
from goldmine.physics.nuisance import Nuisance

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup(eft_likelihood):
    src, full, grid = eft_likelihood
    return src, full, lim.asimov(src, src.reference, full.luminosity), grid


def test_nuisances_vary_the_weights_as_given(setup):
    src, *_ = setup
    theta = torch.tensor([[0.2, -0.1, 0.0, 0.0], [0.2, -0.1, 1.0, 0.0], [0.2, -0.1, 0.0, -1.0]], dtype=torch.float64)
    w = src.event_weights(theta)
    assert torch.allclose(w[1] / w[0], torch.full_like(w[0], 1.1), rtol=1e-12)
    tilt = (src.x[:, 0] / 0.35) ** 0.3
    assert torch.allclose(w[2] / w[0], 1 / tilt, rtol=1e-12)
    assert src.theta_dim == 4 and src.reference.tolist() == [0, 0, 0, 0]


def test_a_nuisance_without_a_constraint_is_refused():
    with pytest.raises(ValueError, match="no constraint term.*constraint='normal'"):
        Nuisance("scale", up=torch.ones(3), down=torch.ones(3), constraint=None)
    with pytest.raises(ValueError, match="either up= and down="):
        Nuisance("both", up=torch.ones(3), down=torch.ones(3), normalisation=0.1)


@pytest.mark.slow
def test_torch_and_iminuit_profiles_agree(setup):
    pytest.importorskip("iminuit")
    src, full, data, grid = setup
    grid = grid[::3]
    by_torch = lim.profile(full, grid, data, minimizer="torch")
    by_minuit = lim.profile(full, grid, data, minimizer="iminuit")
    assert torch.allclose(by_torch.q, by_minuit.q, atol=1e-5)
    assert torch.allclose(by_torch.nuisances, by_minuit.nuisances, atol=1e-3)


def test_profiling_widens_and_shape_narrows_the_asimov_limits(setup):
    src, full, data, grid = setup
    profiled = lim.profile(full, grid, data)
    fixed = lim.profile(full, grid, data, systematics=False)
    centre = int(((grid - 0.0) ** 2).sum(-1).argmin())
    assert float(profiled.q[centre]) == pytest.approx(0.0, abs=1e-9)       # Asimov: the truth is the best fit
    assert (profiled.q <= fixed.q + 1e-9).all()                              # profiling only relaxes
    rate = lim.ExtendedLikelihood(None, src.cross_section, full.luminosity, poi_dim=2, nuisance_dim=2)
    rate_only = lim.profile(rate, grid, data, systematics=False)
    assert (rate_only.q <= fixed.q + 1e-9).all()                             # the shape adds information
    limits = lim.wilks_limits(profiled)
    assert limits.contains([0.0, 0.0]) and limits.areas[0.68] <= limits.areas[0.95]
    assert lim.wilks_limits(fixed).areas[0.95] <= limits.areas[0.95]


def test_extended_likelihood_refuses_bad_settings(setup):
    src, full, data, grid = setup
    with pytest.raises(ValueError, match="luminosity"):
        lim.ExtendedLikelihood(src, src.cross_section, 0.0, poi_dim=2)
    with pytest.raises(ValueError, match="poi_dim"):
        lim.ExtendedLikelihood(src, src.cross_section, 1.0, poi_dim=5)
    with pytest.raises(ValueError, match="minimizer"):
        lim.profile(full, grid, data, minimizer="scipy")


def test_the_joint_score_with_nuisances_is_per_row(setup):
    """Rows that share θ share σ(θ, ν) in the computation, but each keeps its own gradient."""
    src, *_ = setup
    theta = torch.tensor([[0.1, -0.2, 0.3, -0.4]], dtype=torch.float64).expand(6, 4)
    d = src.sample(theta, torch.Generator().manual_seed(0))
    together = src.joint_score(d, theta)
    one_by_one = torch.cat([src.joint_score(type(d)(d.x[i:i + 1], {k: v[i:i + 1] for k, v in d.z.items()}),
                                            theta[:1]) for i in range(6)])
    assert torch.allclose(together, one_by_one, rtol=1e-10, atol=1e-12)


def test_toys_are_poisson_pseudo_experiments_with_observed_limits(setup):
    src, full, data, grid = setup
    toys = [lim.toy(src, src.reference, full.luminosity, seed=s) for s in range(40)]
    counts = torch.tensor([t.count for t in toys])
    assert abs(float(counts.mean()) - data.count) < 4 * (data.count / 40) ** 0.5     # E[n] = L σ(SM) = 300
    aux = torch.stack([t.auxiliary for t in toys])                                   # a ~ N(ν = 0, 1) per nuisance
    assert aux.shape == (40, 2) and (aux.mean(0).abs() < 4 / 40**0.5).all() and (aux.std(0) - 1).abs().max() < 0.5
    one = lim.toy(src, src.reference, full.luminosity, seed=0)
    assert one.x.shape == (int(one.count), 3) and torch.equal(one.weights, torch.ones(int(one.count), dtype=torch.float64))
    region = lim.wilks_limits(lim.profile(full, grid, one, systematics=False))
    assert region.areas[0.68] <= region.areas[0.95] and bool(region.inside[0.95].any())


class ValuesOnly:
    """The exact likelihood as a fitted surrogate gives it: values in float32, without a graph."""

    kind, capabilities = "ratio", frozenset({"likelihood"})

    def __init__(self, src):
        self.src, self.theta_dim_, self.x_dim_ = src, src.theta_dim, src.x_dim

    def log_likelihood_terms(self, x, theta):
        with torch.no_grad():
            return self.src.log_prob(x, theta).float()

    def log_likelihood_table(self, x, theta):
        with torch.no_grad():
            return self.src.log_prob_table(x, theta).float()


def test_a_surrogate_without_gradients_is_profiled_like_the_exact_likelihood(eft_sources):
    """The shape term of a surrogate has no graph while the rate term has one: the profile over ν must still
    follow the whole likelihood (it once followed the rate and constraint alone, and was overconfident)."""
    src = eft_sources(400)[2]
    luminosity = 300.0 / float(src.cross_section(src.reference[None])[0])
    full = lim.ExtendedLikelihood(src, src.cross_section, luminosity, poi_dim=2)
    data = lim.asimov(src, src.reference, luminosity)
    grid = torch.tensor([[0.0, 0.0], [0.3, 0.0], [-0.3, 0.3], [0.0, -0.3]], dtype=torch.float64)
    surrogate = lim.ExtendedLikelihood(ValuesOnly(src), src.cross_section, luminosity, 2, prior=src.prior)
    exact, learned = lim.profile(full, grid, data), lim.profile(surrogate, grid, data)
    assert torch.allclose(learned.nuisances, exact.nuisances, atol=1e-2)   # ν̂ to the stopping tolerance
    assert torch.allclose(learned.q, exact.q, atol=1e-3)
    assert float(exact.nuisances.abs().max()) > 0.1   # the shape pulls ν away from 0: the test can tell


@pytest.mark.slow
def test_toy_limits_of_the_exact_likelihood_cover_and_band_the_asimov_limits(setup):
    """Without systematics the exact likelihood's Wilks regions cover θ at their level within 3 binomial
    standard errors, and the Asimov area lies inside the toys' ±2σ band."""
    src, full, data, _ = setup
    ax = torch.linspace(-0.4, 0.4, 9, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(ax, ax, indexing="ij"), -1).reshape(-1, 2)
    toys = lim.toy_limits(full, grid, src, src.reference, 60, seed=100, systematics=False, progress=False)
    asimov_area = lim.wilks_limits(lim.profile(full, grid, data, systematics=False)).areas[0.68]
    for level in (0.68, 0.95):
        p, stderr = toys.coverage(level)
        assert abs(p - level) <= 3 * (level * (1 - level) / 60) ** 0.5 and stderr > 0
    band = toys.bands(0.68)
    assert band["-2σ"] <= band["-1σ"] <= band["median"] <= band["+1σ"] <= band["+2σ"]
    assert band["-2σ"] <= asimov_area <= band["+2σ"]
