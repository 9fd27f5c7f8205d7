"""Training never saves garbage.

Two of the rows drawn at θ_ref get a NaN score and score_ref (a simulator whose gold fails on some
runs). Reads skip a row whose non-finite value lies in a field they use, as they do for non-finite x,
so sally, alices, rascal and cascal train on the other rows and give finite outputs. A fit whose loss
turns non-finite (here an absurd learning rate) raises a TrainingError and keeps nothing, and
`goldmine train` then exits 1 and leaves the previous model in place, byte for byte.
"""

import shutil

import h5py
import numpy as np
import pytest
import torch

import goldmine as gm
from goldmine.cli import main
from goldmine.estimators import RatioEstimator, ScoreEstimator
from goldmine.training import TrainingError

ROWS = 2000
BAD = [101, 1901]  # label-1 rows (odd indices), one in the training part, one in the validation tail


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    folder = tmp_path_factory.mktemp("safety")
    good = gm.simulate(gm.simulators.GaltonBoard(), ROWS, folder / "good.h5", seed=0, progress=False).path
    bad = folder / "bad.h5"
    shutil.copy(good, bad)
    with h5py.File(bad, "r+") as f:
        assert (f["label"][BAD] == 1).all()
        for key in ("score", "score_ref"):
            values = f[key][:]
            values[BAD] = np.nan
            f[key][:] = values
    return good, bad


def estimator(method: str, **options):
    cls = ScoreEstimator if method == "sally" else RatioEstimator
    return cls(method, epochs=1, progress=False, **options)


@pytest.mark.parametrize("method", ["sally", "alices", "rascal", "cascal"])
def test_rows_with_non_finite_gold_are_skipped_and_the_fit_is_finite(paths, method):
    _, bad = paths
    est = estimator(method).fit(bad)
    assert np.isfinite(est.history_["val_loss"]).all()
    x = torch.arange(0.0, 31.0)[:, None]
    out = est.score(x) if method == "sally" else est.log_ratio(x, torch.full((31, 1), 0.5))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("method", ["sally", "alices", "rascal", "cascal"])
def test_a_diverging_fit_raises_and_keeps_nothing(paths, method):
    good, _ = paths
    est = estimator(method, lr=1e30)
    with pytest.raises(TrainingError, match=rf"^{method}: the training loss became nan .* kept no weights"):
        est.fit(good)
    with pytest.raises(RuntimeError, match="not fitted yet"):  # no half-trained weights to use by mistake
        est.score(torch.zeros(1, 1)) if method == "sally" else est.log_ratio(torch.zeros(1, 1), torch.zeros(1, 1))


def test_a_method_that_reads_no_gold_trains_on_the_same_data(paths):
    _, bad = paths
    est = RatioEstimator("carl", epochs=1, progress=False).fit(bad)
    assert np.isfinite(est.history_["val_loss"]).all()


@pytest.mark.parametrize("method", ["sally", "alices", "rascal", "cascal"])
def test_goldmine_train_keeps_the_previous_model(paths, tmp_path, method):
    good, bad = paths
    model = tmp_path / "model"
    assert main(["train", method, str(good), "-o", str(model), "--epochs", "1", "--quiet"]) == 0
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    assert main(["train", method, str(good), "-o", str(model), "--epochs", "1", "--lr", "1e30", "--quiet"]) == 1
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no half-written folder beside it
