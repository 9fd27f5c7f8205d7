"""Embedding networks (goldmine.embeddings) and x of any shape (n, *x_shape) through simulate, training,
saving and inference, on a small image simulator with gold."""

import json

import pytest
import torch
from torch import nn

import goldmine as gm
from goldmine.simulators.base import Draws, Simulator, box_prior


class Blobs(Simulator):
    """Test-only images: a Gaussian blob of brightness θ at a uniform random centre z, plus pixel noise.

    x = θ·b(z) + σ·ε on a size × size grid, one channel; z ~ U(2, size − 2)² does not depend on θ, so
    log p(x, z|θ) = Σ_pixels log N(x; θ·b(z), σ²) + const, and the gold is exact.
    """

    name = "blobs"
    theta_dim = 1
    block_size = 64

    def __init__(self, size: int = 16, sigma: float = 0.5):
        self.size, self.sigma = size, sigma
        self.x_shape = (1, size, size)
        self.x_dim = size * size
        self.prior = box_prior([0.5], [2.0])
        self.reference = torch.tensor([1.0], dtype=torch.float64)

    def config(self):
        return {"size": self.size, "sigma": self.sigma}

    def _blob(self, z):
        grid = torch.arange(self.size, dtype=torch.float64)
        dy = (grid[None, :] - z[:, 0:1]) ** 2
        dx = (grid[None, :] - z[:, 1:2]) ** 2
        return torch.exp(-(dy[:, :, None] + dx[:, None, :]) / 4.0)[:, None]  # (n, 1, size, size)

    def sample(self, theta, generator=None):
        theta = self.check_theta(theta)
        n = len(theta)
        z = 2 + (self.size - 4) * torch.rand(n, 2, dtype=torch.float64, generator=generator)
        noise = torch.randn(n, 1, self.size, self.size, dtype=torch.float64, generator=generator)
        return Draws(theta[:, :, None, None] * self._blob(z) + self.sigma * noise, z)

    def joint_log_prob(self, draws, theta):
        mean = theta[:, :, None, None] * self._blob(draws.z)
        return torch.distributions.Normal(mean, self.sigma).log_prob(draws.x).flatten(1).sum(1)


FAST = dict(epochs=1, hidden=(32,), progress=False)
CNN = {"name": "cnn", "channels": [4, 8], "out": 8}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return gm.simulate(Blobs(), 512, tmp_path_factory.mktemp("emb") / "blobs.h5", seed=0, progress=False)


def test_images_through_simulate_keep_their_shape_one_row_per_chunk(images):
    import h5py

    assert images.x_shape == (1, 16, 16) and images.x_dim == 256
    x = images.tensors(["x"])["x"]
    assert x.shape == (512, 1, 16, 16)
    with h5py.File(images.path) as f:
        assert f["x"].chunks == (1, 1, 16, 16)
        assert json.loads(f.attrs["goldmine"])["x_shape"] == [1, 16, 16]
    streamed = torch.cat([b["x"] for b in images.batches(100, ["x"], shuffle=False, chunk_rows=64)])
    assert torch.equal(streamed, x)


def test_cnn_ratio_estimator_round_trips_through_save_and_load(images, tmp_path):
    est = gm.RatioEstimator("alices", embedding=CNN, **FAST).fit(images)
    x = images.tensors(["x"])["x"][:20]
    before = est.log_ratio(x, torch.tensor([[1.5]]))
    est.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["params"]["embedding"] == {"name": "cnn", "channels": [4, 8], "kernel": 3, "out": 8,
                                             "activation": "silu"}
    assert config["fitted"]["x_shape"] == [1, 16, 16]
    again = gm.load(tmp_path / "m")
    assert torch.equal(again.log_ratio(x, torch.tensor([[1.5]])), before)
    assert torch.equal(again.log_ratio(x.flatten(1), torch.tensor([[1.5]])), before)  # flat rows are read too
