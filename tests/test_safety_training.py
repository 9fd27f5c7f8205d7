"""Training never saves garbage: rows with a non-finite field the loss reads stop the fit before it starts.

Two of the rows drawn at θ_ref get a NaN score and score_ref (a simulator whose gold fails on some
runs). sally reads score_ref on those rows, alices, rascal and cascal read score on every row: each
fit raises a TrainingError that counts the 2 rows, and `goldmine train` leaves the previous model in
place. carl reads no gold and trains as before.
"""

import shutil

import h5py
import numpy as np
import pytest

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


@pytest.mark.parametrize("method", ["sally", "alices", "rascal", "cascal"])
def test_fit_raises_with_the_count_of_non_finite_rows(paths, method):
    _, bad = paths
    cls = ScoreEstimator if method == "sally" else RatioEstimator
    est = cls(method, epochs=1, progress=False)
    field = "score_ref" if method == "sally" else "score"
    with pytest.raises(TrainingError, match=rf"^2 of [\d,]+ rows that {method} trains on hold NaN or infinite values "
                                            rf"\({field} in 2 rows\) in .*bad.h5.*nothing was kept") as err:
        est.fit(bad)
    assert err.value.rows == 2


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
    assert main(["train", method, str(bad), "-o", str(model), "--epochs", "1", "--quiet"]) == 1
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no half-written folder beside it
