"""goldmine.checks (argument validation, the shape rule) and draw_prior (reproducible prior draws)."""

import math

import numpy as np
import pytest
import torch

from goldmine import checks
from goldmine.simulators.base import box_prior, draw_prior, seed_from


def test_integers_are_ints_and_not_bools():
    assert checks.positive_int(3, "n") == 3 and checks.positive_int(np.int64(3), "n") == 3
    assert checks.non_negative_int(0, "warmup") == 0
    for bad in (0, -1, 2.0, True, "3", None):
        with pytest.raises(ValueError, match="n must be a positive integer"):
            checks.positive_int(bad, "n")
    with pytest.raises(ValueError, match="warmup must be a non-negative integer"):
        checks.non_negative_int(-1, "warmup")
    assert checks.int_between(5, "dim", 2, 5) == 5
    with pytest.raises(ValueError, match="dim must be an integer from 2 to 5"):
        checks.int_between(6, "dim", 2, 5)


def test_fractions_levels_and_floats():
    assert checks.fraction(0.25, "quantile") == 0.25 and checks.level(np.float32(0.5)) == 0.5
    for bad in (0, 1, -0.1, math.nan, True, "0.5"):
        with pytest.raises(ValueError, match="quantile must be a fraction strictly between 0 and 1"):
            checks.fraction(bad, "quantile")
        with pytest.raises(ValueError, match=r"level must be a probability in \(0, 1\)"):
            checks.level(bad)
    assert checks.positive_float(2, "sigma") == 2.0 and checks.non_negative_float(0.0, "noise") == 0.0
    for bad in (0.0, math.inf, math.nan, False):
        with pytest.raises(ValueError, match="sigma must be a finite positive number"):
            checks.positive_float(bad, "sigma")
    with pytest.raises(ValueError, match="unknown method 'x': choose one of 'wilks', 'neyman'"):
        checks.choice("x", ("wilks", "neyman"), "method")


def test_widths_seeds_flags_and_bounded_numbers():
    assert checks.widths([64, np.int64(32)], "hidden") == (64, 32) and checks.widths((), "hidden") == ()
    for bad in (0, 64, [0], [-5], [64.0], [True], "64", None):
        with pytest.raises(ValueError, match=r"hidden must be a list of positive layer widths, e.g. \[64, 64\]"):
            checks.widths(bad, "hidden")
    assert checks.seed(0) == 0 and checks.seed(2**32 - 1) == 2**32 - 1
    for bad in (-1, 2**32, 1.0, True):
        with pytest.raises(ValueError, match=r"seed must be an integer from 0 to 4294967295"):
            checks.seed(bad)
    assert checks.flag(np.bool_(True), "progress") is True
    for bad in (0, 1, "yes", None):
        with pytest.raises(ValueError, match="progress must be true or false"):
            checks.flag(bad, "progress")
    assert checks.positive_float(math.inf, "clip_grad", infinite=True) == math.inf
    with pytest.raises(ValueError, match=r"clip_grad must be a positive number \(inf: no bound\); got nan"):
        checks.positive_float(math.nan, "clip_grad", infinite=True)
    assert checks.real_between(0, "lr_final", 0, 1) == 0.0 and checks.finite(-2, "beta") == -2.0
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="lr_final must be a number from 0 to 1"):
            checks.real_between(bad, "lr_final", 0, 1)
    with pytest.raises(ValueError, match="beta must be a finite number"):
        checks.finite(math.inf, "beta")
    assert checks.int_at_least(2, "grid", 2) == 2
    with pytest.raises(ValueError, match="grid must be an integer ≥ 2; got 1"):
        checks.int_at_least(1, "grid", 2)


def test_the_shape_rule():
    # a vector is n scalar points when the dimension is 1, one point otherwise; a scalar one point of dimension 1
    assert checks.rows(torch.tensor([1.0, 2.0, 3.0]), 1, "x").shape == (3, 1)
    assert checks.rows(torch.tensor([1.0, 2.0]), 2, "theta").shape == (1, 2)
    assert checks.rows(0.5, 1, "theta").shape == (1, 1)
    assert checks.rows(torch.zeros(4, 2), 2, "theta", dtype=torch.float32).dtype == torch.float32
    with pytest.raises(ValueError, match=r"theta must have shape \(n, 2\) or \(2,\) for one point; got \(3,\)"):
        checks.rows(torch.zeros(3), 2, "theta")
    with pytest.raises(ValueError, match=r"x must have shape \(n, 1\) or \(n,\); got \(3, 2\)"):
        checks.rows(torch.zeros(3, 2), 1, "x")
    with pytest.raises(ValueError, match=r"NaN or infinite values \(first in row 1"):
        checks.rows(torch.tensor([[0.0], [math.inf]]), 1, "x")
    assert checks.rows(torch.tensor([[math.nan]]), 1, "x", finite=False).isnan().all()
    theta = torch.zeros(2, 1, requires_grad=True)
    assert checks.rows(theta, 1, "theta").requires_grad


def test_draw_prior_is_reproducible_and_leaves_the_global_generator_alone():
    box = box_prior([-1.0, 0.0], [1.0, 5.0])
    normal = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(2), 1.0), 1)
    state = torch.get_rng_state()
    for prior in (box, normal):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(7)
            expected = prior.sample((5,)).double()
        # seed=: exactly prior.sample after torch.manual_seed(seed)
        assert torch.equal(draw_prior(prior, 5, seed=7), expected)
        a = draw_prior(prior, 5, torch.Generator().manual_seed(3))
        b = draw_prior(prior, 5, torch.Generator().manual_seed(3))
        assert a.shape == (5, 2) and a.dtype == torch.float64 and torch.equal(a, b)
    # generator=: a box straight from the generator; any other prior from a seed drawn from it
    g = torch.Generator().manual_seed(3)
    low, high = torch.tensor([-1.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 5.0], dtype=torch.float64)
    u = torch.rand(4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert torch.equal(draw_prior(box, 4, g), low + (high - low) * u)
    seed = seed_from(torch.Generator().manual_seed(3))
    assert torch.equal(draw_prior(normal, 4, torch.Generator().manual_seed(3)), draw_prior(normal, 4, seed=seed))
    assert torch.equal(torch.get_rng_state(), state)
    with pytest.raises(ValueError, match="exactly one"):
        draw_prior(box, 4)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        draw_prior(box, 0, seed=0)
