"""Data in memory, simulators in their own dtype and sbi's sample shapes (issue 18, item 5)."""

import numpy as np
import pytest
import torch
from torch.distributions import Independent, Uniform

import goldmine as gm
from goldmine.data import draw_chunk
from goldmine.memory import InMemoryData, as_data

FAST = {"epochs": 2, "progress": False}


def _pairs(n=600, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(n, 2, generator=g, dtype=dtype) * 2 - 1
    return theta, theta + 0.2 * torch.randn(n, 2, generator=g, dtype=dtype)


def test_pairs_become_rows_drawn_at_theta():
    theta, x = _pairs()
    data = InMemoryData((theta, x))
    assert (len(data), data.theta_dim, data.x_dim, data.fields) == (600, 2, 2, ("theta", "x", "label"))
    assert not data.has_gold and data.invalid_rows == 0
    assert torch.allclose(data.reference, theta.double().mean(0))
    rows = data.tensors(["theta", "x"], label=0, dtype=torch.float64)
    assert torch.equal(rows["x"], x.double()) and data.tensors(["x"], label=1)["x"].shape == (0, 2)
    train, val = data.split(0.1)
    assert (len(train), len(val)) == (540, 60)
    assert torch.equal(torch.cat([b["theta"] for b in data.batches(64, ["theta"], shuffle=False)]), theta)
    one_d = InMemoryData((np.linspace(0, 1, 10), np.arange(10)))  # (n,) arrays of any dtype
    assert (one_d.theta_dim, one_d.x_dim) == (1, 1)


@pytest.mark.slow
def test_in_memory_rows_train_as_the_file_of_the_same_draws(tmp_path):
    """The same rows in a file and in memory give the same training, loss for loss."""
    sim = gm.simulators.GaltonBoard()
    data = gm.simulate(sim, 1000, tmp_path / "g.h5", seed=3, progress=False)
    rows = draw_chunk(sim, sim.reference, 3, [(0, 1000)])
    memory = InMemoryData(rows, reference=sim.reference)
    assert memory.has_gold and memory.fields == data.fields
    a = gm.RatioEstimator("rolr", **{**FAST, "epochs": 1}).fit(data)
    b = gm.RatioEstimator("rolr", **{**FAST, "epochs": 1}).fit(memory)
    assert a.history_["train_loss"] == b.history_["train_loss"]
    assert a.history_["val_loss"] == b.history_["val_loss"]


@pytest.mark.parametrize("make", [lambda: gm.PosteriorEstimator(**FAST), lambda: gm.LikelihoodEstimator("nle", **FAST),
                                  lambda: gm.RatioEstimator("nre", **FAST)])
def test_every_sbi_method_fits_tensors_and_saves(make, tmp_path):
    theta, x = _pairs()
    est = make().fit((theta, x))
    assert len(est.history_["val_loss"]) == 2
    est.save(tmp_path / "m")
    again = gm.load(tmp_path / "m")
    t, xs = theta[:5], x[:5]
    if hasattr(est, "log_ratio"):
        assert torch.equal(est.log_ratio(xs, t), again.log_ratio(xs, t))
    else:
        assert torch.equal(est.network_(t, xs), again.network_(t, xs))


@pytest.mark.slow
def test_images_in_memory_train_through_an_embedding():
    g = torch.Generator().manual_seed(0)
    theta = torch.rand(200, 2, generator=g)
    images = theta[:, :, None, None].repeat(1, 1, 8, 8)[:, :1] + 0.1 * torch.randn(200, 1, 8, 8, generator=g)
    data = InMemoryData((theta, images))
    assert (data.x_shape, data.x_dim) == ((1, 8, 8), 64)
    est = gm.PosteriorEstimator(embedding="cnn", epochs=1, progress=False).fit(data)
    assert est.sample(images[:1], 3).shape == (3, 2)


def test_dicts_with_gold_and_ensembles_in_memory():
    sim = gm.simulators.GaltonBoard()
    rows = {k: torch.from_numpy(v) for k, v in draw_chunk(sim, sim.reference, 0, [(0, 400)]).items()}
    data = InMemoryData(rows, reference=sim.reference)
    est = gm.Ensemble(gm.RatioEstimator("carl", **{**FAST, "epochs": 1}), 2).fit(data)
    assert len(est.members_) == 2 and est.log_ratio_std(torch.tensor([[10.0]]), torch.tensor([[0.2]])).shape == (1,)
    boot = data.resample(0.1, seed=0)
    assert len(boot) == len(data.split(0.1)[0]) and boot.split(0.1)[1] is not None
    assert torch.equal(boot.tensors(["label"])["label"][::2], torch.zeros(len(boot) // 2, dtype=torch.long))


def test_bad_in_memory_data_names_the_fix():
    theta, x = _pairs(10)
    with pytest.raises(ValueError, match="x has 9 rows"):
        InMemoryData((theta, x[:9]))
    with pytest.raises(ValueError, match="unknown fields"):
        InMemoryData({"theta": theta, "x": x, "weights": x})
    with pytest.raises(ValueError, match="need θ_ref"):
        InMemoryData({"theta": theta, "x": x, "label": torch.arange(10) % 2})
    with pytest.raises(ValueError, match="0 .* or 1"):
        InMemoryData({"theta": theta, "x": x, "label": torch.full((10,), 2)}, reference=[0.0, 0.0])
    with pytest.raises(ValueError, match="NaN"):
        InMemoryData((theta.masked_fill(theta > 0.5, float("nan")), x))
    with pytest.raises(TypeError, match="pair"):
        InMemoryData((theta,))
    with pytest.raises(TypeError, match="tensors \\(theta, x\\)"):
        as_data(42)
    with pytest.raises(ValueError, match="lacks"):  # carl needs rows at θ_ref, which pairs (θ, x) do not hold
        gm.RatioEstimator("alices", **FAST).fit((theta, x))


class _Float32Net:
    """A simulator in float32 only, as sbi's are: float64 θ would fail in the matrix product."""

    weight = torch.tensor([[1.0, 0.5], [0.0, 1.0]])

    def __call__(self, theta):
        return theta @ self.weight + 0.1 * torch.randn(theta.shape)


def test_a_float32_simulator_runs_in_float32(tmp_path):
    prior = Independent(Uniform(-torch.ones(2), torch.ones(2)), 1)  # float32, as sbi's BoxUniform
    with pytest.raises(RuntimeError):
        _Float32Net()(torch.zeros(1, 2, dtype=torch.float64))
    sim = gm.simulators.BlackBoxSimulator(_Float32Net(), prior, numpy=False)
    assert sim.dtype == torch.float32 and sim.x_dim == 2
    x = sim.sample(torch.zeros(4, 2), generator=torch.Generator().manual_seed(0)).x
    assert x.dtype == torch.float64 and x.shape == (4, 2)
    data = gm.simulate(sim, 200, tmp_path / "f32.h5", progress=False)
    assert data.tensors(["x"])["x"].shape == (200, 2)


def test_sample_takes_sbi_shapes():
    theta, x = _pairs()
    npe = gm.PosteriorEstimator(**FAST).fit((theta, x))
    x0 = x[:1]
    a = npe.sample(x0, 7, generator=torch.Generator().manual_seed(1))
    b = npe.sample((7,), x=x0, generator=torch.Generator().manual_seed(1))
    c = npe.sample(x0, torch.Size([7]), torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.equal(a, c) and a.shape == (7, 2)
    post = gm.inference.posterior(npe, x0)
    assert post.sample((5,)).shape == (5, 2)
    with pytest.raises(ValueError, match="sample shape"):
        post.sample((5, 2))
    with pytest.raises(TypeError, match="needs the observation"):
        npe.sample()


@pytest.mark.parametrize("layout", ["pairs", "prior"])
def test_one_bootstrap_for_files_and_memory(tmp_path, layout):
    """goldmine.memory.resample draws the same rows of a data set and of the same rows in memory: whole pairs
    when the rows come in pairs, single rows when every run is at θ ~ prior (layout "prior")."""
    from goldmine.memory import bootstrap_rows, resample

    data = gm.simulate(gm.simulators.GaltonBoard(), 400, tmp_path / "g.h5", progress=False, layout=layout)
    rows = data.tensors(drop_invalid=False, dtype=torch.float64)
    memory = InMemoryData(rows, reference=data.reference)
    from_file, in_memory = resample(data, 0.1, seed=3), resample(memory, 0.1, seed=3)
    train = data.split(0.1)[0]
    expected = bootstrap_rows(len(train), layout == "pairs", 3)
    np.testing.assert_array_equal(from_file.rows, expected)
    if layout == "prior":
        assert (expected % 2 == 1).any() and not (expected[1::2] == expected[::2] + 1).all()
    for key in ("theta", "x", "label"):
        torch.testing.assert_close(from_file.tensors([key], drop_invalid=False, dtype=torch.float64)[key],
                                   in_memory.tensors([key], drop_invalid=False, dtype=torch.float64)[key])
    assert from_file.split(0.1)[1].start == train.stop and len(in_memory.split(0.1)[1]) == len(data) - len(train)
