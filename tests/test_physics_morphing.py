"""Morphing, weighted events as a simulator, and the EFT process's parton-level truth."""

import math

import pytest
import torch

import goldmine as gm
from goldmine.physics.events import WeightedEvents
from goldmine.physics.morphing import Morphing, choose_benchmarks, components, monomial_gradients, monomials
from goldmine.physics.process import (EXPONENTS, EFTProcess, amplitudes_squared, matrix_element_components)
from goldmine.simulators.base import Draws

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def parton():
    return EFTProcess("parton")


@pytest.fixture(scope="module")
def morphing(parton):
    return choose_benchmarks(EXPONENTS, parton.prior, candidates=50, points=200, seed=0, fixed=parton.reference)


def test_components_are_the_monomials_of_a_quadratic():
    assert components(2).tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [2, 0]]
    assert len(components(3, max_power=2)) == 10
    assert len(components(2, max_power=[1, 2], max_overall_power=3)) == 6


def test_monomial_gradients_are_autograd():
    theta = torch.tensor([[0.3, -0.7], [0.0, 0.5]], dtype=torch.float64, requires_grad=True)
    m = monomials(theta, EXPONENTS)
    auto = torch.stack([torch.autograd.grad(m[:, c].sum(), theta, retain_graph=True)[0] for c in range(6)], -1)
    assert torch.allclose(monomial_gradients(theta.detach(), EXPONENTS), auto, rtol=0, atol=1e-14)


def test_the_components_of_the_matrix_element_sum_to_it():
    g = torch.Generator().manual_seed(1)
    m, c = 0.2 + 0.8 * torch.rand(100, generator=g, dtype=torch.float64), 2 * torch.rand(100, generator=g, dtype=torch.float64) - 1
    theta = 2 * torch.rand(100, 2, generator=g, dtype=torch.float64) - 1
    direct = amplitudes_squared(m, c, theta)
    assert torch.allclose((monomials(theta, EXPONENTS) * matrix_element_components(m, c)).sum(-1), direct,
                          rtol=1e-13, atol=0)


def test_morphing_reproduces_direct_weights_at_20_random_theta(parton, morphing):
    """w(z|θ) = Σ_b α_b(θ) w_b(z) to float64 precision."""
    events = parton.weighted_events(2000, morphing.benchmarks, seed=3)
    theta = gm.simulators.draw_prior(parton.prior, 20, seed=5)
    morphed = events.weights @ morphing.weights(theta).T          # (N, 20)
    direct = parton.event_weights(events.parton, theta)
    assert torch.allclose(morphed, direct, rtol=1e-11, atol=0)
    assert torch.allclose(morphing.weights(morphing.benchmarks), torch.eye(6, dtype=torch.float64), atol=1e-11)
    # the morphed cross section is the closed form's (the weights estimate it)
    sigma = morphed.sum(0)
    exact = parton.cross_section(theta)
    se = (direct * len(direct)).std(0) / math.sqrt(len(direct))
    assert ((sigma - exact).abs() < 4 * se).all()


def test_benchmarks_are_chosen_for_a_small_spread(parton, morphing):
    theta = gm.simulators.draw_prior(parton.prior, 500, seed=1)
    chosen = float(morphing.spread(theta).mean())
    assert chosen == pytest.approx(morphing.mean_spread, rel=0.5)
    crowded = Morphing(EXPONENTS, [[0, 0], [0.1, 0], [0, 0.1], [0.1, 0.1], [-0.1, 0.05], [0.05, -0.1]])
    assert float(crowded.spread(theta).mean()) > 10 * chosen


def test_too_few_or_degenerate_benchmarks_are_refused():
    with pytest.raises(ValueError, match="at least 6 benchmark"):
        Morphing(EXPONENTS, torch.zeros(5, 2))
    with pytest.raises(ValueError, match="degenerate"):  # all on the line c₂ = 0 cannot fix c₂ terms
        Morphing(EXPONENTS, [[-1, 0], [-0.5, 0], [0, 0], [0.5, 0], [1, 0], [0.2, 0]])
    with pytest.raises(ValueError, match="degenerate"):  # a repeated point
        Morphing(components(1), [[0.0], [0.5], [0.5]])


def test_parton_sampler_matches_its_exact_likelihood(parton):
    """Means of m and c from the rejection sampler against the proposal reweighted by p(z|θ)/q(z)."""
    theta = torch.tensor([[0.6, -0.4]], dtype=torch.float64)
    n = 20000
    x = parton.sample(theta.expand(n, 2), torch.Generator().manual_seed(0)).x
    q = parton._proposal(n, torch.Generator().manual_seed(1))
    w = parton.event_weights(q, theta)[:, 0] * n / parton.cross_section(theta)  # p/q, mean 1
    assert float(w.mean()) == pytest.approx(1.0, abs=4 * float(w.std()) / math.sqrt(n))
    for k in (0, 1):
        target = (w * q[:, k]).mean()
        se = math.sqrt(float(x[:, k].var()) / n + float((w * q[:, k]).var()) / n)
        assert abs(float(x[:, k].mean() - target)) < 4 * se


@pytest.mark.parametrize("level", ["parton", pytest.param("detector", marks=pytest.mark.slow)])
def test_gold_identities_hold(level, parton):
    """E[r(x, z|θ, θ_ref)] = 1 over runs at θ_ref, E[t(x, z|θ)] = 0 over runs at θ, in standard errors."""
    sim = parton if level == "parton" else EFTProcess("detector")
    n = 20000 if level == "parton" else 8000
    theta = torch.tensor([0.5, -0.5], dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    at_ref = sim.sample(sim.reference.expand(n, 2), g)
    r = torch.exp(sim.joint_log_prob(at_ref, theta.expand(n, 2)) - sim.joint_log_prob(at_ref, sim.reference.expand(n, 2)))
    assert abs(float(r.mean()) - 1.0) < 4 * float(r.std()) / math.sqrt(n)
    at_theta = sim.sample(theta.expand(n, 2), g)
    t = sim.joint_score(at_theta, theta.expand(n, 2))
    assert (t.mean(0).abs() < 4 * t.std(0) / math.sqrt(n)).all()


def test_parton_score_is_the_exact_score(parton):
    theta = torch.tensor([[0.2, 0.3]], dtype=torch.float64).expand(5, 2)
    d = parton.sample(theta, torch.Generator().manual_seed(0))
    x = d.x.clone()
    th = theta.clone().requires_grad_(True)
    exact = torch.autograd.grad(parton.log_prob(x, th).sum(), th)[0]
    assert torch.allclose(parton.joint_score(d, theta), exact, atol=1e-12)


def test_weighted_events_are_mined_like_a_simulator(parton, morphing, tmp_path):
    events = parton.weighted_events(20000, morphing.benchmarks, seed=4)
    source = WeightedEvents(events.parton, events.weights, morphing, parton.prior, parton.reference, name="eft_events")
    theta = torch.tensor([[0.7, 0.2]], dtype=torch.float64)
    # unweighting at θ: the mean of x is the weighted mean
    n = 20000
    d = source.sample(theta.expand(n, 2), torch.Generator().manual_seed(0))
    w = source.event_weights(theta)[0]
    target = (w[:, None] * source.x).sum(0) / w.sum()
    se = d.x.std(0) / math.sqrt(n)
    assert ((d.x.mean(0) - target).abs() < 4 * se).all()
    # exact gold for the sample: E_ref[r] = 1 and the score by autograd is the closed form
    at_ref = source.sample(source.reference.expand(n, 2), torch.Generator().manual_seed(1))
    r = torch.exp(source.joint_log_prob(at_ref, theta.expand(n, 2)) - source.joint_log_prob(at_ref, source.reference.expand(n, 2)))
    assert abs(float(r.mean()) - 1.0) < 4 * float(r.std()) / math.sqrt(n)
    few = Draws(d.x[:4], {k: v[:4] for k, v in d.z.items()})
    alpha_grad = morphing.weight_gradients(theta.expand(4, 2))  # (4, 2, B)
    wb = events.weights[d.z["index"][:4].long()]                # (4, B)
    w_here = (wb * morphing.weights(theta.expand(4, 2))).sum(-1)
    sigma_b = events.weights.sum(0)
    closed = (alpha_grad @ wb[:, :, None])[..., 0] / w_here[:, None] \
        - (alpha_grad @ sigma_b) / (morphing.weights(theta) @ sigma_b)
    assert torch.allclose(source.joint_score(few, theta.expand(4, 2)), closed, rtol=1e-9, atol=1e-12)
    data = gm.simulate(source, 200, tmp_path / "events.h5", seed=0)
    fields = data.tensors(["theta", "x", "log_r", "score"])
    assert fields["x"].shape == (200, 3) and torch.isfinite(fields["log_r"]).all()
    assert float(source.morphing_spread(theta)[0]) >= 1.0 / 6


def test_weighted_events_refuse_mismatched_input(parton, morphing):
    with pytest.raises(ValueError, match="one column per benchmark"):
        WeightedEvents(torch.zeros(3, 2), torch.ones(3, 5), morphing, parton.prior, parton.reference)
    with pytest.raises(ValueError, match="same N"):
        WeightedEvents(torch.zeros(3, 2), torch.ones(4, 6), morphing, parton.prior, parton.reference)


@pytest.mark.slow
def test_the_detector_level_process_is_mined_like_any_simulator(tmp_path):
    sim = EFTProcess("detector")
    data = sim.sample(torch.zeros(500, 2), torch.Generator().manual_seed(0))
    assert data.x.shape == (500, 14) and torch.isfinite(data.x).all()
    assert (data.x[:, 0] > 0.025).all() and (data.x[:, 1].abs() < 2.5).all() and (data.x[:, 5] > 0.15).all()
    # the fiducial cross section is a fraction of the total, the same polynomial structure
    theta = gm.simulators.draw_prior(sim.prior, 5, seed=0)
    ratio = sim.cross_section(theta) / sim.cross_section(theta, fiducial=False)
    assert ((ratio > 0.3) & (ratio < 0.9)).all()
    mined = gm.simulate(sim, 200, tmp_path / "eft.h5", seed=0)
    fields = mined.tensors(["x", "log_r", "score", "score_ref"])
    assert fields["x"].shape == (200, 14) and torch.isfinite(fields["score"]).all()
