"""Every loss on small cases computed by hand."""

import math

import torch

from goldmine import losses

T = torch.tensor


def close(a, b):
    torch.testing.assert_close(a, torch.as_tensor(b, dtype=a.dtype), rtol=1e-6, atol=1e-9)


def test_carl_is_binary_cross_entropy_of_s_hat():
    # r̂ = e^a; ŝ = 1/(1+r̂): y = 1 costs −log ŝ = log(1+r̂), y = 0 costs −log(1−ŝ) = log(1+1/r̂)
    a = T([0.0, math.log(3.0), math.log(3.0)])
    y = T([1.0, 1.0, 0.0])
    close(losses.carl(a, y), [math.log(2), math.log(4), math.log(4 / 3)])


def test_carl_is_minimised_by_the_true_ratio():
    # for a mixture of p(x|θ) (weight 1−q) and p(x|θ_ref) (weight q) at one x with r = 2, q = ½
    a = torch.linspace(-2, 3, 5001)
    expected = 0.5 * losses.carl(a, torch.ones_like(a)) * 1 + 0.5 * losses.carl(a, torch.zeros_like(a)) * 2
    assert abs(a[expected.argmin()] - math.log(2)) < 2e-3


def test_rolr_squares_r_at_reference_and_inverse_r_at_theta():
    a, b = T([math.log(2.0), math.log(2.0)]), T([math.log(3.0), math.log(4.0)])
    y = T([1.0, 0.0])
    close(losses.rolr(a, b, y), [(2 - 3) ** 2, (1 / 2 - 1 / 4) ** 2])


def test_rolr_clips_log_ratios():
    a, b, y = T([50.0]), T([0.0]), T([1.0])
    close(losses.rolr(a, b, y, clip=2.0), [(math.e**2 - 1) ** 2])
    assert torch.isfinite(losses.rolr(T([200.0]), T([-300.0]), T([0.0]))).all()


def test_alice_uses_soft_labels():
    a, b = T([0.0, math.log(2.0)]), T([math.log(3.0), 0.0])
    s = torch.tensor([1 / 4, 1 / 2])
    s_hat = torch.tensor([1 / 2, 1 / 3])
    close(losses.alice(a, b), -(s * s_hat.log() + (1 - s) * (1 - s_hat).log()))


def test_score_terms_count_only_rows_drawn_at_theta():
    t_hat, t = T([[1.0, 2.0], [0.0, 0.0]]), T([[0.0, 0.0], [5.0, 5.0]])
    y = T([0.0, 1.0])
    close(losses.score_term(t_hat, t, y), [5.0, 0.0])
    a, b = T([0.0, 0.0]), T([0.0, 0.0])
    close(losses.cascal(a, t_hat, t, y, alpha=2.0), losses.carl(a, y) + T([10.0, 0.0]))
    close(losses.rascal(a, t_hat, b, t, y, alpha=2.0), T([10.0, 0.0]))
    close(losses.alices(a, t_hat, b, t, y, alpha=0.5), losses.alice(a, b) + T([2.5, 0.0]))


def test_a_weight_scales_the_cross_entropy_and_not_the_score_term():
    a, b, y, w = T([0.5, -1.0]), T([1.0, 0.0]), T([0.0, 1.0]), T([3.0, 0.5])
    t_hat, t = T([[1.0], [0.0]]), T([[0.0], [0.0]])
    close(losses.carl(a, y, w), w * losses.carl(a, y))
    close(losses.alice(a, b, w), w * losses.alice(a, b))
    close(losses.cascal(a, t_hat, t, y, alpha=2.0, weight=w), w * losses.carl(a, y) + T([2.0, 0.0]))
    close(losses.alices(a, t_hat, b, t, y, alpha=2.0, weight=w), w * losses.alice(a, b) + T([2.0, 0.0]))


def test_sally_nle_scandal():
    close(losses.sally(T([[1.0, -1.0]]), T([[0.0, 1.0]])), [5.0])
    close(losses.nle(T([-1.5])), [1.5])
    close(losses.scandal(T([-1.5]), T([[1.0]]), T([[3.0]]), alpha=0.1), [1.5 + 0.4])
