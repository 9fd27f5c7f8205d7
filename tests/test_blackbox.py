"""BlackBoxSimulator: plain numpy / torch functions as reproducible, validated simulators."""

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

import goldmine as gm
from goldmine.simulators import BlackBoxSimulator, box_prior
from goldmine.estimators.registry import goldless
from goldmine.simulators.base import DTYPE

MIX = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])


def numpy_fn(theta: np.ndarray) -> np.ndarray:
    """x = θ·MIX + N(0, 1): (n, 2) → (n, 3)."""
    assert isinstance(theta, np.ndarray) and theta.dtype == np.float64
    return theta @ MIX + np.random.normal(size=(theta.shape[0], 3))


def torch_fn(theta: torch.Tensor) -> torch.Tensor:
    """x = θ_0 + θ_1 + N(0, 1) as a float32 vector: (n, 2) → (n,)."""
    assert isinstance(theta, torch.Tensor)
    return (theta.sum(dim=1) + torch.randn(theta.shape[0], dtype=theta.dtype)).float()


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


PRIOR = box_prior([-1.0, 0.0], [1.0, 2.0])


def prior_theta(n: int, seed: int) -> torch.Tensor:
    """n points of PRIOR, (n, 2), from a fixed seed."""
    return torch.tensor([-1.0, 0.0], dtype=DTYPE) + 2 * torch.rand(n, 2, generator=gen(seed), dtype=DTYPE)


@pytest.fixture(params=["numpy", "torch"])
def sim(request):
    if request.param == "numpy":
        return BlackBoxSimulator(numpy_fn, PRIOR)
    return BlackBoxSimulator(torch_fn, PRIOR, numpy=False, name="torch-box")


def test_shapes_and_attributes(sim):
    assert sim.theta_dim == 2 and sim.has_gold is False
    assert sim.x_dim == (3 if sim.numpy else 1)
    torch.testing.assert_close(sim.reference, torch.tensor([0.0, 1.0], dtype=DTYPE))
    draws = sim.sample(prior_theta(50, 10), generator=gen(0))
    assert draws.x.shape == (50, sim.x_dim) and draws.x.dtype == torch.float64 and draws.z is None
    assert json.loads(json.dumps(sim.config()))["fn"] in {"numpy_fn", "torch_fn"}
    assert repr(sim).startswith("BlackBoxSimulator(")


def test_noise_has_the_stated_distribution(sim):
    n = 4000
    theta = torch.tensor([[0.5, 1.5]], dtype=DTYPE).expand(n, 2)
    x = sim.sample(theta, generator=gen(1)).x
    mean = theta[:1].numpy() @ MIX if sim.numpy else theta[:1].sum(1, keepdim=True).numpy()
    noise = (x.numpy() - mean).ravel()
    # float32 output of the torch function rounds x by ~1e-7, far below the test's resolution
    assert stats.kstest(noise, "norm").pvalue > 1e-3


def test_reproducible_with_seeded_generator(sim):
    theta = prior_theta(100, 11)
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    a, b, c = (sim.sample(theta, generator=gen(s)).x for s in (3, 3, 4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # the global generators that the function draws from are left as they were
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert all(np.array_equal(u, v) for u, v in zip(np.random.get_state(), numpy_state))


def test_unvectorized_numpy_function_matches_vectorized():
    rowwise = BlackBoxSimulator(lambda t: numpy_fn(t[None])[0], PRIOR, vectorized=False)
    assert rowwise.x_dim == 3
    theta = prior_theta(20, 12)
    # one numpy stream, seeded once per call, feeds the rows in order: the runs are the same
    vectorized = BlackBoxSimulator(numpy_fn, PRIOR)
    torch.testing.assert_close(rowwise.sample(theta, generator=gen(5)).x, vectorized.sample(theta, generator=gen(5)).x)


def test_unvectorized_torch_function_draws_independent_rows():
    def one_run(row):
        assert row.shape == (2,)
        return row.sum() + torch.randn((), dtype=row.dtype)  # a scalar per run

    sim = BlackBoxSimulator(one_run, PRIOR, numpy=False, vectorized=False)
    n = 2000
    x = sim.sample(torch.tensor([[0.0, 1.0]], dtype=DTYPE).expand(n, 2), generator=gen(6)).x
    assert x.shape == (n, 1)
    assert stats.kstest(x[:, 0].numpy() - 1.0, "norm").pvalue > 1e-3


@pytest.mark.parametrize("method", ["joint_log_prob", "joint_score"])
def test_no_gold(sim, method):
    draws = sim.sample(torch.zeros(3, 2) + torch.tensor([0.0, 1.0]), generator=gen(7))
    with pytest.raises(NotImplementedError) as info:
        getattr(sim, method)(draws, torch.zeros(3, 2))
    assert {"carl", "nre", "nle", "npe", "abc", "alfi"} <= set(goldless())  # the registry's answer
    for name in goldless():
        assert name in str(info.value)


@pytest.mark.parametrize(
    "fn",
    [
        lambda t: np.zeros((t.shape[0] + 1, 2)),  # one run too many
        lambda t: np.zeros((t.shape[0], 0, 2)),  # an x of no elements
        lambda t: np.float64(0.0),  # a scalar
    ],
)
def test_bad_function_output_shape(fn):
    with pytest.raises(ValueError, match=r"must return one x per row of θ: \(n, x_dim\), \(n,\), or \(n, \*x_shape\)"):
        BlackBoxSimulator(fn, PRIOR)


def test_bad_function_output_shape_at_sample_time():
    sim = BlackBoxSimulator(lambda t: np.zeros((1, 2)), PRIOR)  # ignores the batch
    with pytest.raises(ValueError, match=r"returned shape \(1, 2\) for θ of shape \(4, 2\)"):
        sim.sample(torch.tensor([[0.0, 1.0]]).expand(4, 2))


def test_output_dimension_must_not_change():
    sim = BlackBoxSimulator(lambda t: np.zeros((t.shape[0], t.shape[0])), PRIOR)  # x_dim = n
    with pytest.raises(ValueError, match=r"returned x of shape \(n, 3\), but \(n, 1\) when probed.*must not change"):
        sim.sample(torch.tensor([[0.0, 1.0]]).expand(3, 2))


def test_theta_that_requires_grad():
    sim = BlackBoxSimulator(numpy_fn, PRIOR)
    theta = torch.tensor([[0.0, 1.0]], dtype=DTYPE, requires_grad=True)
    assert sim.sample(theta, generator=gen(8)).x.shape == (1, 3)


@pytest.mark.parametrize(
    "theta, match",
    [
        (torch.zeros(3, 1), r"shape \(n, 2\)"),
        (torch.zeros(3), r"shape \(n, 2\).* or \(2,\) for one point; got \(3,\)"),
        (torch.zeros(0, 2), "empty"),
        (torch.tensor([[0.0, 1.0], [math.nan, 1.0]]), "NaN.*row 1"),
        (torch.tensor([[0.0, 1.0], [0.0, math.inf]]), "infinite.*row 1"),
        (torch.tensor([[0.0, 1.0], [0.0, 2.5]]), "row 1.*outside the support"),
    ],
)
def test_bad_theta(sim, theta, match):
    with pytest.raises(ValueError, match=match):
        sim.sample(theta, generator=gen(9))


def image_fn(theta: np.ndarray) -> np.ndarray:
    """Images (n, 1, 8, 8): θ_0 times a ramp plus θ_1 plus N(0, 0.5²) per pixel."""
    ramp = np.linspace(-1, 1, 8)[:, None] * np.ones(8)[None, :]
    mean = theta[:, 0, None, None, None] * ramp + theta[:, 1, None, None, None]
    return mean + 0.5 * np.random.normal(size=(theta.shape[0], 1, 8, 8))


def test_a_function_of_images_gives_x_of_its_shape_through_simulate_and_an_embedding(tmp_path):
    """A function returning (n, 1, 8, 8): x_shape recorded from the probe, kept by sample and simulate (the data
    set's x_shape), trained by carl through the cnn embedding, and images of another shape refused."""
    sim = BlackBoxSimulator(image_fn, PRIOR)
    assert sim.x_shape == (1, 8, 8) and sim.x_dim == 64
    x = sim.sample(prior_theta(5, 12), generator=gen(2)).x
    assert x.shape == (5, 1, 8, 8) and x.dtype == torch.float64
    assert torch.equal(x, sim.sample(prior_theta(5, 12), generator=gen(2)).x)
    data = gm.simulate(sim, 128, tmp_path / "images.h5", seed=0, progress=False)
    assert data.x_shape == (1, 8, 8) and data.meta["format"] == 2
    est = gm.RatioEstimator("carl", embedding={"name": "cnn", "channels": [4], "out": 4}, hidden=(16,),
                            epochs=1, progress=False).fit(data)
    images = data.tensors(["x"])["x"][:4]
    assert est.x_shape_ == (1, 8, 8) and est.log_ratio(images, torch.tensor([0.0, 1.0])).shape == (4,)
    with pytest.raises(ValueError, match=r"x_shape"):
        est.log_ratio(torch.zeros(4, 1, 4, 4), torch.tensor([0.0, 1.0]))


def test_a_function_whose_image_shape_changes_is_refused():
    sim = BlackBoxSimulator(lambda t: np.zeros((len(t), 1, len(t), 2)), PRIOR)  # the shape follows n
    assert sim.x_shape == (1, 1, 2)
    with pytest.raises(ValueError, match=r"returned x of shape \(n, 1, 3, 2\), but \(n, 1, 1, 2\).*must not change"):
        sim.sample(prior_theta(3, 1))
