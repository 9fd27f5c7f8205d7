"""The Trainer: early stopping with the best weights, the NaN guard, determinism, streaming, history,
row sources of one's own and plain batch iterables."""

import numpy as np
import pytest
import torch
from torch import nn

import goldmine as gm
from goldmine.training import RowSource, StreamingRowSource, Trainer, TrainingError


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


def test_non_finite_loss_raises_with_the_step_and_the_fix(data):
    calls = {"n": 0}

    def exploding(net, batch):
        calls["n"] += 1
        value = regression_loss(net, batch)
        return value * float("nan") if calls["n"] > 40 else value

    trainer = Trainer(epochs=20, batch_size=256, progress=False)
    with pytest.raises(TrainingError, match=r"loss became nan at epoch \d+, step \d+.*Lower the learning rate") as err:
        trainer.fit(mean_model(), exploding, data, ("x", "score"))
    assert err.value.rows is None and "non-finite" in err.value.history["stop_reason"]
    # 16 loss calls per epoch (15 steps and one validation batch): the 41st, the first NaN, falls in epoch 3
    assert len(err.value.history["train_loss"]) == 2 and "epoch 3, step 9" in err.value.history["stop_reason"]


class Table:
    """A row source of one's own: rows in memory, no file, no labels (the RowSource protocol only)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def split(self, validation):
        cut = round(len(self) * (1 - validation))
        return Table(self.x[:cut], self.y[:cut]), Table(self.x[cut:], self.y[cut:])

    def tensors(self, fields, label=None):
        return {k: {"x": self.x, "y": self.y}[k] for k in fields}

    def __str__(self):
        return "my table"


def line_loss(net, batch):
    return ((net(batch["x"]) - batch["y"]) ** 2).mean()


def test_a_row_source_of_ones_own_trains_and_a_dataset_is_one(data):
    """Rows y = 3x − 1 (no noise): the linear network reaches the line, and the Dataset satisfies both protocols."""
    x = torch.linspace(-1, 1, 400)[torch.randperm(400, generator=torch.Generator().manual_seed(0))][:, None]
    table = Table(x, 3 * x - 1)
    assert isinstance(table, RowSource) and not isinstance(table, StreamingRowSource)
    assert isinstance(data, StreamingRowSource)
    net = mean_model()
    history = Trainer(epochs=60, batch_size=32, lr=5e-2, progress=False).fit(net, line_loss, table, ("x", "y"))
    assert history["val_loss"][-1] < 1e-3
    torch.testing.assert_close(net.weight.detach(), torch.tensor([[3.0]]), atol=0.05, rtol=0)
    with pytest.raises(TypeError, match="row source.*fit_batches"):
        Trainer(progress=False).fit(net, line_loss, [{"x": x, "y": x}], ("x", "y"))


def test_non_finite_rows_raise_before_training_with_the_count_and_the_field():
    x = torch.linspace(-1, 1, 400)[:, None]
    y = 3 * x - 1
    y[[5, 390]] = float("nan")  # one row in the training part, one in the validation part
    x[7] = float("inf")
    net = mean_model()
    before = net.weight.detach().clone()
    with pytest.raises(TrainingError, match=r"3 of 400 rows that line trains on hold NaN or infinite values "
                                            r"\(x in 1 rows, y in 2 rows\) in my table") as err:
        Trainer(progress=False).fit(net, line_loss, Table(x, y), ("x", "y"), desc="line")
    assert err.value.rows == 3 and torch.equal(net.weight, before)
    # fields declared as allowed to be non-finite are not checked
    with pytest.raises(TrainingError, match=r"1 of 400 rows .*\(y in 1 rows\)"):
        Trainer(progress=False).fit(net, line_loss, Table(x, torch.where(x.isinf(), torch.nan, 3 * x - 1)),
                                    ("x", "y"), finite=("y",))


def test_a_dataset_skips_rows_with_non_finite_gold_in_memory_and_streamed(data, tmp_path):
    """A Dataset's reads skip the rows whose non-finite value lies in a field they read (as for x), so the
    Trainer sees finite rows only, whether it holds them in memory or streams them."""
    import shutil

    import h5py

    path = tmp_path / "bad.h5"
    shutil.copy(data.path, path)
    with h5py.File(path, "r+") as f:
        f["score"][[10, 3990]] = np.nan
    bad = gm.Dataset(path)
    assert len(bad.tensors(["x", "score"])["score"]) == len(bad) - 2
    for in_memory_rows in (10**9, 0):
        history = Trainer(epochs=2, progress=False, in_memory_rows=in_memory_rows).fit(
            mean_model(), regression_loss, bad, ("x", "score"))
        assert np.isfinite(history["train_loss"]).all() and np.isfinite(history["val_loss"]).all()


def test_batch_iterables_train_and_validate_with_their_own_loss():
    """fit_batches: lists (or DataLoaders) of batches, iterated afresh every epoch; val_loss scores validation."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(512, 1, generator=g)
    train = [{"x": x[i : i + 64], "y": 3 * x[i : i + 64] - 1} for i in range(0, 448, 64)]
    val = [{"x": x[448:], "y": 3 * x[448:] - 1}]
    seen = []

    def mae(net, batch):
        seen.append(net.training)
        return (net(batch["x"]) - batch["y"]).abs().mean()

    net = mean_model()
    history = Trainer(epochs=15, lr=0.2, progress=False).fit_batches(net, line_loss, train, val, val_loss=mae)
    assert len(history["train_loss"]) == 15 and len(seen) == 15 and not any(seen)
    assert history["val_loss"][-1] < 0.05 and not net.training
    torch.testing.assert_close(net.weight.detach(), torch.tensor([[3.0]]), atol=0.05, rtol=0)
    # a DataLoader is a re-iterable collection of batches too
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, 3 * x - 1), batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    tuple_loss = lambda net, b: ((net(b[0]) - b[1]) ** 2).mean()  # noqa: E731
    history = Trainer(epochs=15, lr=0.2, progress=False).fit_batches(mean_model(), tuple_loss, loader, loader)
    assert history["val_loss"][-1] < 1e-3
    with pytest.raises(TypeError, match="iterator"):
        Trainer(progress=False).fit_batches(net, line_loss, iter(train), val)
    with pytest.raises(ValueError, match="no batches"):
        Trainer(progress=False).fit_batches(net, line_loss, train, [])


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(batch_size=-1), dict(lr=0.0), dict(validation=1.0)])
def test_bad_settings(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        Trainer(**bad)
