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
                                             "activation": "silu", "symmetric": False}
    assert config["fitted"]["x_shape"] == [1, 16, 16]
    again = gm.load(tmp_path / "m")
    assert torch.equal(again.log_ratio(x, torch.tensor([[1.5]])), before)
    assert torch.equal(again.log_ratio(x.flatten(1), torch.tensor([[1.5]])), before)  # flat rows are read too


class Events(Simulator):
    """Test-only sets of k = 8 events of 2 features, x_ij ~ N(θ·(1, −1)_j, 1): x of shape (8, 2), read as a set
    (deepset), as a series of 8 steps of 2 channels (gru) or 8 channels of 2 steps (cnn1d)."""

    name = "events"
    theta_dim = 1
    x_shape = (8, 2)
    block_size = 64
    prior = box_prior([-1.0], [1.0])
    reference = torch.tensor([0.0], dtype=torch.float64)

    def _mean(self, theta):
        return theta[:, :, None] * torch.tensor([1.0, -1.0], dtype=torch.float64)  # (n, 1, 2), broadcast over k

    def sample(self, theta, generator=None):
        theta = self.check_theta(theta)
        noise = torch.randn(len(theta), 8, 2, dtype=torch.float64, generator=generator)
        return Draws(self._mean(theta) + noise, None)

    def joint_log_prob(self, draws, theta):
        return torch.distributions.Normal(self._mean(theta), 1.0).log_prob(draws.x).flatten(1).sum(1)


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    return gm.simulate(Events(), 512, tmp_path_factory.mktemp("emb") / "events.h5", seed=0, progress=False)


def test_a_class_with_x_shape_alone_gets_its_x_dim():
    assert Events.x_dim == 16


def test_vector_data_sets_are_still_written_in_format_1(tmp_path):
    data = gm.simulate(gm.simulators.GaltonBoard(), 64, tmp_path / "g.h5", progress=False)
    assert data.meta["format"] == 1 and "x_shape" not in data.meta and data.x_shape == (1,)


@pytest.mark.slow
@pytest.mark.parametrize("name, source", [("mlp", "images"), ("cnn", "images"), ("deepset", "events"),
                                          ("cnn1d", "events"), ("gru", "events")])
def test_every_builtin_trains_a_ratio_estimator_and_round_trips(request, tmp_path, name, source):
    data = request.getfixturevalue(source)
    est = gm.RatioEstimator("alices", embedding={"name": name, "out": 6}, **FAST).fit(data)
    assert all(torch.isfinite(torch.tensor(v)).all() for v in est.history_["train_loss"])
    assert est.params["embedding"]["name"] == name and est.params["embedding"]["out"] == 6
    x = data.tensors(["x"])["x"][:16]
    theta = torch.linspace(data.reference.item() - 0.4, data.reference.item() + 0.4, 16)[:, None]
    est.save(tmp_path / name)
    assert torch.equal(gm.load(tmp_path / name).log_ratio(x, theta), est.log_ratio(x, theta))


def test_the_deepset_summary_ignores_the_order_of_events():
    from goldmine.embeddings import build_embedding, embedding_spec

    net, shared, out = build_embedding(embedding_spec("deepset"), (8, 2))
    x = torch.randn(5, 8, 2)
    assert shared == (0,) and out == 32
    torch.testing.assert_close(net(x), net(x[:, torch.randperm(8)]))


class TinyCNN(nn.Module):
    """A user's own embedding network."""

    def __init__(self, out: int = 5):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.SiLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                                 nn.Linear(12, out))

    def forward(self, x):
        return self.net(x)


def test_a_users_module_is_saved_without_its_code_and_taken_again_at_load(images, tmp_path):
    est = gm.RatioEstimator("carl", embedding=TinyCNN(), **FAST).fit(images)
    est.save(tmp_path / "m")
    record = json.loads((tmp_path / "m" / "config.json").read_text())["params"]["embedding"]
    assert record == {"name": "module", "class": f"{__name__}.TinyCNN"}
    with pytest.raises(ValueError, match=r"gm\.load\(path, embedding=|goldmine\.load\(path, embedding="):
        gm.load(tmp_path / "m")
    x, theta = images.tensors(["x"])["x"][:10], torch.tensor([[1.2]])
    again = gm.load(tmp_path / "m", embedding=TinyCNN())
    assert torch.equal(again.log_ratio(x, theta), est.log_ratio(x, theta))
    with pytest.raises(ValueError, match="does not fit"):  # another architecture than the saved weights
        gm.load(tmp_path / "m", embedding=TinyCNN(out=7))
    gm.RatioEstimator(**FAST).fit(images).save(tmp_path / "plain")
    with pytest.raises(ValueError, match="without embedding="):
        gm.load(tmp_path / "plain", embedding=TinyCNN())


def test_an_ensemble_of_members_with_a_users_module_round_trips(images, tmp_path):
    ens = gm.Ensemble(gm.RatioEstimator("carl", embedding=TinyCNN(), **FAST), 2).fit(images)
    ens.save(tmp_path / "e")
    x, theta = images.tensors(["x"])["x"][:10], torch.tensor([[0.8]])
    assert torch.equal(gm.load(tmp_path / "e", embedding=TinyCNN()).log_ratio(x, theta), ens.log_ratio(x, theta))


class Unflat(nn.Module):
    def forward(self, x):
        return x[:, 0, :4, :4]


@pytest.mark.parametrize("embedding, match", [
    (Unflat(), r"must return features \(n, k\).*nn\.Flatten"),
    ({"name": "gru"}, r"gru embedding takes series .* choose another embedding .*'cnn' for images"),
    (nn.Linear(3, 4), r"fails on x of shape \(n, 1, 16, 16\)"),
])
def test_an_embedding_that_does_not_fit_the_data_is_refused_naming_the_fix(images, embedding, match):
    with pytest.raises(ValueError, match=match):
        gm.RatioEstimator(embedding=embedding, **FAST).fit(images)


@pytest.mark.parametrize("embedding, match", [
    ("resnet", "unknown network 'resnet'; the built-ins are mlp, cnn"),
    ({"name": "cnn", "chanels": [4]}, "no setting 'chanels'; its settings are channels="),
    ({"name": "cnn", "channels": [0]}, "channels must be a list of positive layer widths"),
    (3, "must be the name of a built-in"),
])
def test_bad_embedding_settings_are_refused_when_the_estimator_is_built(embedding, match):
    with pytest.raises((ValueError, TypeError), match=match):
        gm.RatioEstimator(embedding=embedding)


@pytest.mark.parametrize("method, instead", [
    ("nle", r"train nre \(RatioEstimator\('nre', embedding=\.\.\.\)\) or npe \(PosteriorEstimator\(embedding="),
    ("scandal", r"train alices or rascal \(RatioEstimator\('alices', embedding=\.\.\.\)\), which use the same gold"),
    (None, r"train a ratio method .*npe .*sally"),
])
def test_the_likelihood_flows_take_no_embedding_and_say_why_and_what_does(method, instead):
    """x is the flow's variable, not its input: the refusal says so, and names the methods that read x through an
    embedding (the ones with gold for scandal, the goldless ones for nle)."""
    with pytest.raises(ValueError, match=r"density p\(x\|θ\) of x itself.*squeezing s to a point.*" + instead):
        gm.LikelihoodEstimator(method, embedding="cnn")
    with pytest.raises(ValueError, match="takes no embedding"):
        gm.LikelihoodEstimator(method, embedding=TinyCNN())


@pytest.fixture(scope="module")
def cnn_ratio(images):
    return gm.RatioEstimator("alices", embedding=CNN, **FAST).fit(images)


def test_images_of_the_wrong_shape_at_inference_are_refused_naming_the_shape(cnn_ratio):
    model = gm.inference.Model(cnn_ratio, prior=Blobs().prior)
    for bad in (torch.zeros(3, 1, 32, 32), torch.zeros(3, 16, 16)):
        with pytest.raises(ValueError, match=r"shape \(n, 1, 16, 16\).*resize or crop"):
            cnn_ratio.log_ratio(bad, torch.tensor([[1.0]]))
        with pytest.raises(ValueError, match=r"x_obs must have shape \(n, 1, 16, 16\)"):
            model.log_likelihood(torch.tensor([[1.0]]), bad)


def test_streaming_training_and_inference_on_images(images, cnn_ratio):
    streamed = gm.RatioEstimator("alices", embedding=CNN, in_memory_rows=0, **FAST).fit(images)
    assert all(torch.isfinite(torch.tensor(v)).all() for v in streamed.history_["train_loss"])
    sim = Blobs()
    x_obs = sim.sample(torch.full((6, 1), 1.5), generator=torch.Generator().manual_seed(1)).x
    model = gm.inference.Model(streamed, prior=sim.prior)
    grid = torch.linspace(0.5, 2.0, 7)[:, None]
    ll = model.log_likelihood(grid, x_obs)
    assert ll.shape == (7,) and torch.isfinite(ll).all()
    # images or their flat rows: the same numbers; and the terms are the estimator's own log r̂, summed
    torch.testing.assert_close(model.log_likelihood(grid, x_obs.flatten(1)), ll)
    direct = torch.stack([streamed.log_ratio(x_obs, t).double().sum() for t in grid])
    torch.testing.assert_close(ll, direct, rtol=1e-5, atol=1e-4)


@pytest.mark.filterwarnings("ignore::goldmine.estimators.base.UnusedRunsWarning")  # pair data on purpose
def test_npe_and_sally_read_images_through_an_embedding_and_round_trip(images, tmp_path):
    x = images.tensors(["x"])["x"][:1]
    npe = gm.PosteriorEstimator(embedding=CNN, epochs=1, hidden=(16,), transforms=1, progress=False).fit(images)
    assert npe.sample(x, 5, generator=torch.Generator().manual_seed(0)).shape == (5, 1)
    post = gm.inference.posterior(npe, x[0])  # one image (1, 16, 16), through inference
    assert post.samples.shape[1] == 1 and torch.isfinite(post.log_prob(post.samples[:3])).all()
    npe.save(tmp_path / "npe")
    theta = torch.tensor([[0.7], [1.1], [1.9]])
    torch.testing.assert_close(gm.load(tmp_path / "npe").network_(theta, x.expand(3, -1, -1, -1)),
                               npe.network_(theta, x.expand(3, -1, -1, -1)), rtol=0, atol=0)
    sally = gm.ScoreEstimator(embedding=CNN, **FAST).fit(images)
    sally.save(tmp_path / "sally")
    assert torch.equal(gm.load(tmp_path / "sally").score(x), sally.score(x))


class ExactEvents(Events):
    """Events with its exact likelihood: x has no latent variables, so log p(x|θ) = log p(x, z|θ)."""

    name = "exact-events"

    def log_prob(self, x, theta):
        return self.joint_log_prob(Draws(x, None), theta)


def test_the_exact_likelihood_of_a_simulator_of_shaped_x_goes_through_model():
    sim = ExactEvents()
    x = sim.sample(torch.full((30, 1), 0.4), generator=torch.Generator().manual_seed(0)).x
    theta = torch.tensor([[-0.5], [0.0], [0.4], [0.9]])
    model = gm.inference.Model(sim)
    expected = torch.stack([sim.log_prob(x, t.expand(30, 1)).sum() for t in theta])
    torch.testing.assert_close(model.log_likelihood(theta, x), expected)
    # the MLE of a Gaussian mean from 30·8 events of two features ±θ: the mean of x_1 − x_2 over 2
    mean = (x[..., 0] - x[..., 1]).mean() / 2
    assert abs(gm.inference.mle(model, x).theta.item() - mean.item()) < 1e-3


def exact_log_likelihood(sim: Blobs, x, theta):
    """log p(x|θ) of Blobs summed over the images x (n, 1, size, size), the centre z integrated on a grid of
    0.2 pixels over its uniform prior: θ (m, 1) → (m,)."""
    g = torch.linspace(2, sim.size - 2, 5 * (sim.size - 4) + 1, dtype=torch.float64)
    blobs = sim._blob(torch.cartesian_prod(g, g)).flatten(1)  # (k, pixels)
    x = x.flatten(1)
    out = []
    for t in theta[:, 0].tolist():
        # Σ_pixels log N(x; θ b, σ²) up to a constant in θ and z: (x·θb − θ²b²/2)/σ²
        ll = (t * x @ blobs.T - 0.5 * t**2 * (blobs**2).sum(1)) / sim.sigma**2
        out.append(torch.logsumexp(ll, 1).sum())
    return torch.stack(out)


@pytest.mark.slow
def test_alices_with_the_cnn_finds_the_mle_of_the_exact_likelihood(tmp_path):
    """On 50 images at θ = 1.5 the CNN-embedded alices' θ̂ lies within 3 standard errors of the exact θ̂ (the
    standard error from the curvature of the exact log-likelihood)."""
    sim = Blobs()
    data = gm.simulate(sim, 4000, tmp_path / "blobs.h5", seed=0, progress=False)
    est = gm.RatioEstimator("alices", embedding="cnn", epochs=10, progress=False).fit(data)
    x = sim.sample(torch.full((50, 1), 1.5), generator=torch.Generator().manual_seed(100)).x
    grid = torch.linspace(1.0, 2.0, 201, dtype=torch.float64)[:, None]
    exact = exact_log_likelihood(sim, x, grid)
    best = int(exact.argmax())
    step = float(grid[1] - grid[0])
    curvature = -(exact[best + 1] - 2 * exact[best] + exact[best - 1]) / step**2
    se = float(curvature) ** -0.5
    theta_hat = gm.inference.mle(est, x, prior=sim.prior).theta.item()
    assert abs(theta_hat - grid[best].item()) < 3 * se, (theta_hat, grid[best].item(), se)


@pytest.mark.parametrize("method", ["nle", "scandal"])
def test_the_likelihood_flows_read_images_flattened_round_trip_and_refuse_another_shape(tmp_path, method):
    """Without an embedding the likelihood flow's variable is the flat image: it records x_shape, samples images,
    survives save and load (no pickle: config.json and safetensors) with the same numbers, and refuses images of
    another shape naming the one it was fitted on."""
    data = gm.simulate(Blobs(size=6), 256, tmp_path / "small.h5", seed=1, progress=False)
    nle = gm.LikelihoodEstimator(method, hidden=(16,), transforms=1, bins=4, epochs=1, progress=False).fit(data)
    x = data.tensors(["x"])["x"][:4]
    assert nle.x_shape_ == (1, 6, 6) and nle.log_prob(x, torch.tensor([[1.0]])).shape == (4,)
    assert nle.sample(torch.tensor([1.0]), 3, generator=torch.Generator().manual_seed(0)).shape == (3, 1, 6, 6)
    nle.save(tmp_path / "nle")
    assert json.loads((tmp_path / "nle" / "config.json").read_text())["fitted"]["x_shape"] == [1, 6, 6]
    again = gm.load(tmp_path / "nle")
    assert torch.equal(again.log_prob(x, torch.tensor([[1.0]])), nle.log_prob(x, torch.tensor([[1.0]])))
    with pytest.raises(ValueError, match=r"shape \(n, 1, 6, 6\)"):
        nle.log_prob(torch.zeros(4, 1, 8, 8), torch.tensor([[1.0]]))
