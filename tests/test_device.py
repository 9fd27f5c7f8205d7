"""device= for training and inference: the CPU by default, the same numbers with device="cpu", one clear error for
a device this machine lacks, and saved models that hold CPU tensors whatever device trained them."""

import pytest
import torch
from torch import nn

import goldmine as gm
from goldmine import checks
from goldmine.training import Trainer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

NO_CUDA = not torch.cuda.is_available()


@pytest.fixture(scope="module")
def rows():
    """In-memory runs of a Gaussian location model x ~ N(θ, 1), θ ~ U(−2, 2): (θ, x), 400 rows each."""
    g = torch.Generator().manual_seed(0)
    theta = 4 * torch.rand(400, 1, generator=g, dtype=torch.float64) - 2
    return theta, theta + torch.randn(400, 1, generator=g, dtype=torch.float64)


def fitted(cls, rows, **fit):
    method = {gm.RatioEstimator: {"method": "nre"}, gm.LikelihoodEstimator: {"method": "nle"}}.get(cls, {})
    return cls(**method, epochs=2, progress=False).fit(rows, **fit)


@pytest.mark.parametrize("cls", [gm.RatioEstimator, gm.PosteriorEstimator, gm.LikelihoodEstimator])
def test_device_cpu_gives_the_default_result(rows, cls):
    default, on_cpu = fitted(cls, rows), fitted(cls, rows, device="cpu")
    x, theta = torch.tensor([[0.3]]).expand(5, 1), torch.linspace(-1, 1, 5)[:, None]
    if cls is gm.RatioEstimator:
        assert torch.equal(default.log_ratio(x, theta), on_cpu.log_ratio(x, theta))
    elif cls is gm.LikelihoodEstimator:
        assert torch.equal(default.log_prob(x, theta), on_cpu.log_prob(x, theta))
    else:
        assert torch.equal(default.log_prob(theta, x[:1]), on_cpu.log_prob(theta, x[:1]))
    assert default.history_["val_loss"] == on_cpu.history_["val_loss"]
    assert on_cpu.device_ == torch.device("cpu")


def test_auto_is_an_accelerator_when_present_else_the_cpu():
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else "cpu")
    assert checks.device("auto").type == expected
    assert checks.device(None) == checks.device("cpu") == torch.device("cpu")


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
def test_an_unavailable_device_raises_one_clear_error(rows, tmp_path):
    est = gm.RatioEstimator("nre", epochs=1, progress=False)
    with pytest.raises(ValueError, match='no CUDA device: pass device="cpu", or device="auto"'):
        est.fit(rows, device="cuda")
    assert est.network_ is None  # refused before training: nothing half-done
    with pytest.raises(ValueError, match="no CUDA device"):
        Trainer(epochs=1, progress=False).fit_batches(nn.Linear(1, 1), lambda n, b: n(b).sum(), [torch.ones(2, 1)],
                                                      [torch.ones(2, 1)], device="cuda")
    est = fitted(gm.RatioEstimator, rows)
    with pytest.raises(ValueError, match="no CUDA device"):
        est.to("cuda")
    est.save(tmp_path / "m")
    with pytest.raises(ValueError, match="no CUDA device"):
        gm.load(tmp_path / "m", device="cuda")
    with pytest.raises(ValueError, match='device must be "cpu"'):
        checks.device("gpu please")


@pytest.mark.parametrize("cls", [gm.RatioEstimator, gm.PosteriorEstimator])
def test_save_load_after_training_on_a_device_is_exact(rows, cls, tmp_path):
    est = fitted(cls, rows, device="cpu")
    est.save(tmp_path / "m")
    for loaded in (gm.load(tmp_path / "m"), gm.load(tmp_path / "m", device="cpu").to("auto" if NO_CUDA else "cpu")):
        assert loaded.device_ == torch.device("cpu")
        x, theta = torch.tensor([[0.1], [0.5]]), torch.tensor([[0.0], [1.0]])
        if cls is gm.RatioEstimator:
            assert torch.equal(est.log_ratio(x, theta), loaded.log_ratio(x, theta))
        else:
            assert torch.equal(est.log_prob(theta, x[:1]), loaded.log_prob(theta, x[:1]))


def test_inference_reads_the_surrogate_through_its_device(rows):
    """Model (MLE, MCMC) reads the surrogate's terms as CPU float64 whatever the surrogate's device."""
    est = fitted(gm.RatioEstimator, rows, device="cpu")
    prior = torch.distributions.Independent(torch.distributions.Uniform(torch.tensor([-2.0]).double(),
                                                                        torch.tensor([2.0]).double()), 1)
    model = gm.inference.Model(est, prior=prior)
    ll = model.log_likelihood(torch.tensor([[0.0], [0.5]], dtype=torch.float64), torch.tensor([[0.2], [0.4]]))
    assert ll.dtype == torch.float64 and ll.device.type == "cpu" and torch.isfinite(ll).all()


def test_infer_trains_on_the_device_given():
    prior = gm.simulators.box_prior([-2.0, -2.0], [2.0, 2.0])

    def shift(theta):
        return theta.float() + 0.2 * torch.randn(theta.shape)

    x_o = torch.tensor([[0.5, -0.3]])
    runs = [gm.infer(shift, prior, x_o, budget=200, epochs=2, progress=False, **device) for device in ({}, {"device": "cpu"})]
    assert runs[1].estimator.device_ == torch.device("cpu")
    g = [torch.Generator().manual_seed(0) for _ in runs]
    assert torch.equal(runs[0].sample(20, generator=g[0]), runs[1].sample(20, generator=g[1]))
    if NO_CUDA:
        with pytest.raises(ValueError, match="no CUDA device"):
            gm.infer(shift, prior, x_o, budget=200, device="cuda", progress=False)


@pytest.fixture(scope="module")
def galton_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("device") / "galton.h5"
    gm.simulate(gm.simulators.GaltonBoard(), 400, path, seed=0, progress=False)
    return path


def test_cli_train_on_the_cpu_gives_the_default_model(galton_data, tmp_path):
    from goldmine.cli import main

    for name, extra in (("default", []), ("cpu", ["--device", "cpu"])):
        assert main(["train", "carl", str(galton_data), "-o", str(tmp_path / name), "--epochs", "2", "--seed", "0",
                     "--quiet", *extra]) == 0
    default, on_cpu = gm.load(tmp_path / "default"), gm.load(tmp_path / "cpu", device="cpu")
    x, theta = torch.zeros(4, 1), torch.linspace(-0.5, 0.5, 4)[:, None]
    assert torch.equal(default.log_ratio(x, theta), on_cpu.log_ratio(x, theta))


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
def test_cli_device_mistakes_end_with_the_fix(galton_data, tmp_path, capsys):
    from goldmine.cli import main

    assert main(["train", "carl", str(galton_data), "-o", str(tmp_path / "m"), "--device", "cuda", "--quiet"]) == 2
    assert 'no CUDA device: pass device="cpu"' in capsys.readouterr().err
    assert not (tmp_path / "m").exists()  # refused before anything was written
    assert main(["train", "histogram", str(galton_data), "-o", str(tmp_path / "h"), "--device", "mps", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "mps" in err and not (tmp_path / "h").exists()
    assert main(["train", "carl", str(galton_data), "-o", str(tmp_path / "w"), "--device", "gpu", "--quiet"]) == 2
    assert "device must be" in capsys.readouterr().err


def test_a_method_without_a_network_refuses_an_accelerator_but_takes_the_cpu(monkeypatch):
    from goldmine.workflow import training

    hist = gm.HistogramRatio()
    assert training.fit_device(hist, "histogram", "cpu") == {} and training.fit_device(hist, "histogram", None) == {}
    assert training.fit_device(gm.RatioEstimator("carl"), "carl", "cpu") == {"device": torch.device("cpu")}
    # an accelerator as this machine would have it: the histogram is refused with the fix, before any training
    monkeypatch.setattr(training.checks, "device", lambda value: torch.device("cuda"))
    with pytest.raises(ValueError, match="histogram trains no network .* leave out --device"):
        training.fit_device(hist, "histogram", "cuda")
