"""Fisher information: the truth is the variance of the score; rate ≤ histogram ≤ truth; profiling."""

import pytest
import torch

from goldmine.physics.fisher import ellipse, ellipse_area, fisher_information

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def sources(eft_sources):
    return eft_sources(3000)


def _psd(a):
    return bool(torch.linalg.eigvalsh(a).min() > -1e-9 * float(a.abs().max()))


def test_truth_is_the_score_variance_plus_the_rate(sources):
    sim, plain, _ = sources
    theta = torch.tensor([0.3, -0.2], dtype=torch.float64)
    truth = fisher_information(plain, theta, 100.0)
    # the exact shape score of the sample's distribution, by autograd through log_prob
    th = theta.expand(len(plain.x), 2).clone().requires_grad_(True)
    t = torch.autograd.grad(plain.log_prob(plain.x, th).sum(), th)[0]
    assert torch.allclose(fisher_information(plain, theta, 100.0, "score", score=lambda x: t), truth, rtol=1e-9)
    rate = fisher_information(plain, theta, 100.0, "rate")
    hist = fisher_information(plain, theta, 100.0, "histogram", observables=(0, 1), bins=4)
    assert _psd(truth - hist) and _psd(hist - rate)              # binning and integrating lose information
    assert torch.allclose(fisher_information(plain, theta, 200.0), 2 * truth)
    assert ellipse_area(truth) < ellipse_area(hist)
    contour = ellipse(truth, theta)
    d = contour - theta
    assert torch.allclose(((d @ truth) * d).sum(-1), torch.full((len(d),), 5.991464547107979, dtype=torch.float64))


def test_profiled_nuisances_lose_information(sources):
    _, plain, with_nuisances = sources
    theta = torch.tensor([0.0, 0.0], dtype=torch.float64)
    fixed = fisher_information(plain, theta, 100.0)
    profiled = fisher_information(with_nuisances, theta, 100.0)
    full = fisher_information(with_nuisances, theta, 100.0, profile=False)
    assert profiled.shape == (2, 2) and full.shape == (4, 4)
    assert torch.allclose(full[:2, :2], fixed)
    assert _psd(fixed - profiled) and not torch.allclose(fixed, profiled)
    with pytest.raises(ValueError, match="kind"):
        fisher_information(plain, theta, 1.0, "sally")
