"""Profiled toys on a table of the shape terms at Chebyshev nodes in ν, against the exact profile of every toy."""

import pytest
import torch

from goldmine.physics import limits as lim
from goldmine.physics import pooled_toys as pt

torch.set_num_threads(1)


def test_the_lagrange_basis_reproduces_polynomials_of_its_degree():
    nodes = pt.chebyshev_nodes(5, 3.0)
    assert torch.allclose(nodes, -nodes.flip(0)) and float(nodes[2]) == pytest.approx(0.0, abs=1e-15)  # ν = 0 a node
    grid = pt.node_grid(nodes, 2)
    g = torch.Generator().manual_seed(0)
    coef = torch.randn(5, 5, generator=g, dtype=torch.float64)  # degree ≤ 4 in each of ν₁, ν₂

    def poly(nu):
        powers = [nu[:, k, None] ** torch.arange(5, dtype=torch.float64) for k in range(2)]
        return torch.einsum("mi,ij,mj->m", powers[0], coef, powers[1])

    nu = 6 * torch.rand(50, 2, generator=g, dtype=torch.float64) - 3
    basis = pt.lagrange_basis(nu, nodes)
    assert basis.shape == (50, 25)
    assert torch.allclose(basis.sum(-1), torch.ones(50, dtype=torch.float64))
    assert torch.allclose(basis @ poly(grid), poly(nu), atol=1e-9)


def test_pooled_toys_with_nu_fixed_are_the_toys_of_toy_limits(eft_likelihood):
    src, full, grid = eft_likelihood
    exact = lim.toy_limits(full, grid, src, src.reference, 8, seed=5, systematics=False, progress=False)
    pooled = pt.pooled_toy_limits(full, grid, src, src.reference, 8, seed=5, systematics=False, progress=False)
    assert torch.equal(pooled.counts, exact.counts)
    for level in (0.68, 0.95):
        assert torch.equal(pooled.areas[level], exact.areas[level])
        assert torch.equal(pooled.covered[level], exact.covered[level])


@pytest.mark.slow
def test_pooled_profiles_follow_the_exact_profile_of_every_toy(eft_likelihood):
    """With ν profiled the shape term is interpolated in ν; q must agree with profiling the toy exactly to far
    below the spacing of the χ² thresholds, the error must fall with the nodes (it is the interpolation's),
    and ν̂ must move (the test can tell a profile from ν = 0)."""
    src, full, grid = eft_likelihood
    grid = grid[::2]
    data = lim.toy(src, src.reference, full.luminosity, seed=7)
    exact = lim.profile(full, grid, data)
    assert float(exact.nuisances.abs().max()) > 0.1
    errors = {}
    for nodes in (3, pt.NODES):
        values, node_1d = pt.toy_shape_tables(full, grid, [data], True, nodes)
        log_sigma = pt.log_sigma_table(full, grid, True, nodes)
        pooled = lim.profile(pt._InterpolatedToy(full, values[0], log_sigma, node_1d), grid, data)
        errors[nodes] = float((pooled.q - exact.q).abs().max())
    assert errors[pt.NODES] < 0.01 and errors[3] > errors[pt.NODES]


def test_the_asimov_profile_shares_the_toys_table(eft_likelihood):
    """`also=(asimov,)` profiles the Asimov data from the toys' table (its events join the distinct events): the
    same profile as tabulating it alone, and the same toys, to the float error of summing in another order."""
    import copy

    src, full, grid = eft_likelihood
    surrogate = copy.copy(full)
    surrogate.values_only = True  # profiled on interpolated shape terms, as a network's
    data = lim.asimov(src, src.reference, full.luminosity)
    alone = pt.interpolated_profile(surrogate, grid, data)
    toys = pt.pooled_toy_limits(surrogate, grid, src, src.reference, 3, seed=5, progress=False)
    shared = pt.pooled_toy_limits(surrogate, grid, src, src.reference, 3, seed=5, progress=False, also=(data,))
    (profiled,) = shared.also
    assert torch.allclose(profiled.q, alone.q, atol=1e-6) and float(alone.q.max()) > 1.0
    assert torch.equal(shared.counts, toys.counts)
    for level in (0.68, 0.95):
        assert torch.allclose(shared.areas[level], toys.areas[level]) and toys.also == []


def test_a_rate_only_likelihood_is_refused(eft_likelihood):
    src, full, grid = eft_likelihood
    rate = lim.ExtendedLikelihood(None, src.cross_section, full.luminosity, 2, nuisance_dim=2)
    with pytest.raises(ValueError, match="toy_limits"):
        pt.pooled_toy_limits(rate, grid, src, src.reference, 2, progress=False)


def test_toy_coverage_carries_its_binomial_standard_error():
    covered = torch.tensor([True] * 45 + [False] * 5)
    toys = lim.ToyLimits(torch.zeros(2), (0.95,), {0.95: torch.ones(50)}, {0.95: covered}, torch.ones(50))
    p, stderr = toys.coverage(0.95)
    assert p == pytest.approx(0.9) and stderr == pytest.approx((0.9 * 0.1 / 50) ** 0.5)
