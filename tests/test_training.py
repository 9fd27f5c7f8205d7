"""The Trainer: early stopping with the best weights, the NaN guard, determinism, streaming, history."""

import pytest
import torch
from torch import nn

import goldmine as gm
from goldmine.training import Trainer


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("train") / "g.h5"
    return gm.simulate(gm.simulators.GaltonBoard(), 4000, path, seed=0, progress=False)


def mean_model():
    torch.manual_seed(0)
    return nn.Linear(1, 1)


def regression_loss(net, batch):
    """A linear fit of the score on x: its optimum is known in closed form."""
    return ((net(batch["x"]) - batch["score"]) ** 2).mean()


def test_history_and_best_weights(data):
    trainer = Trainer(epochs=5, batch_size=64, lr=1e-2, patience=100, progress=False)
    net = mean_model()
    history = trainer.fit(net, regression_loss, data, ("x", "score"))
    assert len(history["train_loss"]) == len(history["val_loss"]) == 5
    assert history["best_val_loss"] == min(history["val_loss"])
    # the weights kept are those of the best epoch: re-evaluating them gives the best validation loss
    _, val = data.split(0.1)
    v = val.tensors(["x", "score"])
    assert abs(regression_loss(net, v).item() - history["best_val_loss"]) < 1e-4


def test_without_patience_the_final_weights_are_kept(data):
    trainer = Trainer(epochs=4, batch_size=64, lr=1e-2, progress=False)
    net = mean_model()
    history = trainer.fit(net, regression_loss, data, ("x", "score"))
    _, val = data.split(0.1)
    assert abs(regression_loss(net, val.tensors(["x", "score"])).item() - history["val_loss"][-1]) < 1e-4


def test_early_stopping(data):
    history = Trainer(epochs=200, batch_size=512, lr=5e-2, patience=2, progress=False).fit(
        mean_model(), regression_loss, data, ("x", "score"))
    assert len(history["val_loss"]) < 200 and history["stop_reason"].startswith("early stopping")


def test_same_seed_same_weights_in_memory_and_streamed(data):
    nets = []
    for in_memory_rows in (10**9, 10**9, 0):
        net = mean_model()
        Trainer(epochs=2, batch_size=128, seed=3, in_memory_rows=in_memory_rows, progress=False).fit(
            net, regression_loss, data, ("x", "score"))
        nets.append(torch.cat([p.flatten() for p in net.parameters()]))
    torch.testing.assert_close(nets[0], nets[1], rtol=0, atol=0)
    # the streamed path shuffles differently but reaches the same optimum of this convex problem
    torch.testing.assert_close(nets[0], nets[2], rtol=0.05, atol=0.05)


def test_non_finite_loss_stops_and_keeps_the_last_good_weights(data):
    calls = {"n": 0}

    def exploding(net, batch):
        calls["n"] += 1
        value = regression_loss(net, batch)
        return value * float("nan") if calls["n"] > 40 else value

    net = mean_model()
    with pytest.warns(RuntimeWarning, match="loss became nan.*kept"):
        history = Trainer(epochs=20, batch_size=256, progress=False).fit(net, exploding, data, ("x", "score"))
    assert "non-finite" in history["stop_reason"]
    assert all(torch.isfinite(p).all() for p in net.parameters())


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(batch_size=-1), dict(lr=0.0), dict(validation=1.0)])
def test_bad_settings(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        Trainer(**bad)
