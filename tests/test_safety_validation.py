"""Mistakes caught where they are made: every estimator option at construction, a study file whole before
any stage, malformed data and model files with one-line errors that name the file, ragged observation
tables refused, and observations outside the range of the training x warned about."""

import json
import math
import os
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest
import torch

import goldmine as gm
from goldmine import locking, workflow
from goldmine.cli import main
from goldmine.estimators.alfi import ALFI
from goldmine.inference import Model, confidence_region, expected_limits
from goldmine.study import load_study, run

INF, NAN = math.inf, math.nan


@pytest.fixture(scope="module")
def galton(tmp_path_factory):
    """A small Galton data set (gold included)."""
    path = tmp_path_factory.mktemp("data") / "galton.h5"
    return gm.simulate(gm.simulators.GaltonBoard(), 400, path, progress=False)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("goldmine"), err
    return lines[0]


# -- 7. every option is checked when the estimator is built ------------------------------------------

BUILD = {
    "ratio": lambda **kw: gm.RatioEstimator(**{"method": "rolr", **kw}),
    "score": lambda **kw: gm.ScoreEstimator(**kw),
    "likelihood": lambda **kw: gm.LikelihoodEstimator(**kw),
    "posterior": lambda **kw: gm.PosteriorEstimator(**kw),
    "alfi": lambda **kw: ALFI(**kw),
    "histogram": lambda **kw: gm.HistogramRatio(**kw),
}
NEURAL = ("ratio", "score", "likelihood", "posterior", "alfi")
# (option, bad value): the Trainer's settings, which every neural estimator takes
TRAINING = [("epochs", 0), ("epochs", -1), ("epochs", 2.5), ("epochs", True), ("batch_size", 0), ("lr", -1e-3),
            ("lr", 0), ("lr", INF), ("lr", NAN), ("lr_final", -5), ("lr_final", 1.5), ("lr_final", NAN),
            ("weight_decay", -1), ("weight_decay", NAN), ("validation", 0), ("validation", 1.0),
            ("patience", 0), ("clip_grad", 0), ("clip_grad", -1), ("clip_grad", NAN), ("seed", -1),
            ("seed", 1.5), ("seed", 2**40), ("in_memory_rows", -1), ("progress", "yes")]
OWN = {
    "ratio": [("method", "rolrr"), ("alpha", -1), ("alpha", INF), ("alpha", NAN), ("hidden", 0), ("hidden", -5),
              ("hidden", [0]), ("hidden", [-5]), ("hidden", [64.5]), ("hidden", "64"), ("activation", "relu"),
              ("clip", -1), ("clip", 0), ("clip", INF), ("weighting", "metric"), ("weighting", 1)],
    "score": [("method", "sallyy"), ("hidden", 0), ("hidden", [0, 4]), ("activation", "relu")],
    "likelihood": [("method", "nlee"), ("alpha", -1), ("alpha", INF), ("flow", "realnvp"), ("transforms", 0),
                   ("hidden", 0), ("hidden", [-5]), ("bins", 0), ("activation", "relu"), ("noise", -1)],
    "posterior": [("method", "npee"), ("prior", ([1.0], [0.0])), ("flow", "realnvp"), ("transforms", 0),
                  ("hidden", 0), ("hidden", [16, -5]), ("bins", 0), ("activation", "relu")],
    "alfi": [("steps", 0), ("thetas", 0), ("runs", 0), ("n_obs", 0), ("problems", 0), ("problems", 1),
             ("sigma", 0), ("sigma", INF), ("init", "zero"), ("bound", -1), ("beta", INF), ("hidden", 0),
             ("features", 0), ("state", 0), ("activation", "relu"), ("standardize", "robust")],
    "histogram": [("theta_bins", 0), ("theta_bins", 2.5), ("x_bins", 0), ("low", [1.0]), ("low", [NAN])],
}
CASES = [(est, option, value) for est in NEURAL for option, value in TRAINING]
CASES += [(est, option, value) for est, bad in OWN.items() for option, value in bad]


@pytest.mark.parametrize("estimator, option, value", CASES, ids=[f"{e}-{o}={v!r}" for e, o, v in CASES])
def test_a_bad_option_fails_at_construction_naming_it(estimator, option, value):
    kwargs = {option: value}
    if estimator == "histogram" and option == "low":
        kwargs["high"] = [0.0]  # a box with low ≥ high, or a NaN bound
    with pytest.raises(ValueError) as caught:
        BUILD[estimator](**kwargs)
    assert option in str(caught.value), str(caught.value)


def test_edge_values_that_make_sense_are_accepted():
    for build in (BUILD[k] for k in NEURAL):
        build(lr_final=0, clip_grad=INF, in_memory_rows=0, weight_decay=0, patience=None, seed=2**32 - 1,
              progress=np.bool_(False))
    assert gm.RatioEstimator(hidden=[]).hidden == ()  # no hidden layer: a linear g(x, θ)
    assert gm.RatioEstimator(hidden=np.array([8, 8])).params["hidden"] == [8, 8]
    assert gm.LikelihoodEstimator(hidden_features=[8]).hidden == (8,)  # the former name still works


def test_an_unknown_option_names_the_estimator_and_its_settings():
    with pytest.raises(TypeError, match=r"RatioEstimator has no option 'epoch'; its training settings are epochs"):
        gm.RatioEstimator(epoch=3)


def test_the_command_line_refuses_a_bad_option_before_training(galton, tmp_path, capsys):
    for argv, message in [(["--hidden", "0"], "hidden must be a list of positive layer widths, e.g. [64, 64]; got [0]"),
                          (["--option", "weight_decay=-1"], "weight_decay must be a finite number ≥ 0; got -1"),
                          (["--option", "lr_final=-5"], "lr_final must be a number from 0 to 1; got -5"),
                          (["--seed", "-1"], "seed must be an integer from 0 to 4294967295")]:
        out = tmp_path / "model"
        assert main(["train", "carl", str(galton.path), "-o", str(out), "--epochs", "1", "--quiet", *argv]) == 2
        assert message in one_line(capsys.readouterr().err)
        assert not out.exists()
    assert main(["train", "rolr", str(galton.path), "-o", str(tmp_path / "m"), "--quiet", "--option", "clip=-1"]) == 2
    assert "clip must be a finite positive number; got -1" in one_line(capsys.readouterr().err)


# -- 7. a study file is checked whole before the first stage ---------------------------------------

STUDY = """\
simulator = "galton"
[data]
n = 400
[train]
methods = ["carl", "histogram"]
epochs = 1
hidden = [8]
[train.carl]
clip = 5.0
[evaluate]
seed = 0
[inference]
true_theta = 0.3
n_obs = 20
"""


@pytest.mark.parametrize("edit, where", [
    (("n = 400", "n = 401"), "[data] n must be an even number"),
    (("n = 400", "n = 0"), "[data] n must be a positive integer"),
    (("n = 400", "n = 400\nseed = -1"), "[data] seed must be an integer from 0"),
    (("n = 400", "n = 400\nworkers = 0"), "[data] workers must be a positive integer"),
    (("n = 400", "n = 400\nchunk = -3"), "[data] chunk must be a positive integer"),
    (("epochs = 1", "epochs = -1"), "[train] epochs must be a positive integer; got -1"),
    (("epochs = 1", "epochs = 1\nlr_final = -5"), "[train] lr_final must be a number from 0 to 1; got -5"),
    (("hidden = [8]", "hidden = [0]"), "[train] hidden must be a list of positive layer widths"),
    (("clip = 5.0", "clip = -1.0"), "[train.carl] clip must be a finite positive number; got -1.0"),
    (("clip = 5.0", "weight_decay = -1"), "[train.carl] weight_decay must be a finite number ≥ 0; got -1"),
    (("clip = 5.0", "activation = \"relu\""), "[train.carl] unknown activation 'relu'"),
    (("[evaluate]\nseed = 0", "[evaluate]\nseed = -2"), "[evaluate] seed must be an integer from 0"),
    (("n_obs = 20", "n_obs = 0"), "[inference] n_obs must be a positive integer; got 0"),
    (("n_obs = 20", "n_obs = 20\ntoys = -5"), "[inference] toys must be a positive integer; got -5"),
    (("n_obs = 20", "n_obs = 20\ngrid = 0"), "[inference] grid must be an integer ≥ 2; got 0"),
    (("n_obs = 20", "n_obs = 20\ngrid = 1"), "[inference] grid must be an integer ≥ 2; got 1"),
    (("n_obs = 20", "n_obs = 20\nlevel = 1.5"), "[inference] level must be a probability in (0, 1)"),
    (("n_obs = 20", "n_obs = 20\nworkers = 0"), "[inference] workers must be a positive integer"),
])
def test_a_study_is_checked_whole_before_any_stage(tmp_path, edit, where):
    path = tmp_path / "study.toml"
    path.write_text(STUDY.replace(*edit))
    assert STUDY.replace(*edit) != STUDY
    with pytest.raises(ValueError) as caught:
        load_study(path)
    assert str(caught.value).startswith(f"study.toml: {where}"), str(caught.value)
    out = tmp_path / "out"
    with pytest.raises(ValueError):
        run(path, output=out, progress=False, echo=lambda line: None)
    assert not (out / "data.h5").exists()  # nothing was simulated


def test_a_good_study_still_loads(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(STUDY.replace("n_obs = 20", "n_obs = 20\ngrid = 2\ntoys = 10"))
    study = load_study(path)
    assert study.methods["carl"] == {"epochs": 1, "hidden": [8], "clip": 5.0}
    assert study.inference["grid"] == 2


def test_inference_refuses_a_grid_of_fewer_than_two_points(galton):
    sim = gm.simulators.GaltonBoard()
    x = torch.tensor([[15.0]])
    with pytest.raises(ValueError, match="grid must be an integer ≥ 2; got 0"):
        workflow.infer(sim, sim, x, grid_points=0)
    with pytest.raises(ValueError, match="grid points per axis must be an integer ≥ 2; got 1"):
        Model(sim).grid(1)


# -- 8. malformed data files ---------------------------------------------------------------------------


def copy_of(data, folder, name="copy.h5"):
    path = folder / name
    path.write_bytes(data.path.read_bytes())
    return path


def edit_header(path, **changes):
    with h5py.File(path, "r+") as f:
        meta = json.loads(f.attrs["goldmine"])
        for key, value in changes.items():
            if value is None:
                meta.pop(key)
            else:
                meta[key] = value
        f.attrs["goldmine"] = json.dumps(meta)


@pytest.mark.parametrize("change, message", [
    (dict(x_dim=None), "corrupt header: it lacks 'x_dim'"),
    (dict(simulator=None), "corrupt header: it lacks 'simulator'"),
    (dict(theta_dim="one"), "corrupt header: theta_dim = 'one'"),
    (dict(reference=[0.0, 1.0]), "reference [0.0, 1.0] does not have theta_dim = 1"),
    (dict(x_dim=2), r"field 'x' has rows of shape (1,), but its header says (2,)"),
])
def test_a_malformed_header_is_named(galton, tmp_path, change, message):
    path = copy_of(galton, tmp_path)
    edit_header(path, **change)
    with pytest.raises(ValueError) as caught:
        gm.Dataset(path)
    assert str(path) in str(caught.value) and message in str(caught.value), str(caught.value)


def test_a_header_that_is_not_an_object_or_lacks_rows_done_is_named(galton, tmp_path):
    for attribute, value, message in [("goldmine", "[1, 2]", "a JSON list, not an object"),
                                      ("goldmine", "{not json", "is not JSON"),
                                      ("rows_done", None, "rows_done = None"),
                                      ("rows_done", "many", "rows_done = 'many'")]:
        path = copy_of(galton, tmp_path)
        with h5py.File(path, "r+") as f:
            if value is None:
                del f.attrs[attribute]
            else:
                f.attrs[attribute] = value
        for read in (gm.Dataset, lambda p: gm.simulate(gm.simulators.GaltonBoard(), 400, p, progress=False)):
            with pytest.raises(ValueError) as caught:
                read(path)
            assert str(path) in str(caught.value) and message in str(caught.value), str(caught.value)


def test_a_folder_a_device_an_empty_and_a_locked_file_are_told_apart_from_a_corrupt_one(galton, tmp_path):
    with pytest.raises(IsADirectoryError, match=f"{tmp_path} is a folder, not a data set"):
        gm.Dataset(tmp_path)
    if os.path.exists("/dev/null"):
        with pytest.raises(ValueError, match="/dev/null is not a regular file"):
            gm.Dataset("/dev/null")
    (tmp_path / "empty.h5").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.h5 is empty \(0 bytes\)"):
        gm.Dataset(tmp_path / "empty.h5")
    (tmp_path / "garbage.h5").write_bytes(b"not hdf5" * 100)
    with pytest.raises(ValueError, match="corrupt or truncated") as caught:
        gm.Dataset(tmp_path / "garbage.h5")
    assert "\n" not in str(caught.value)
    # a file that another process (not goldmine.simulate) holds open for writing: HDF5's own lock
    path = copy_of(galton, tmp_path, "held.h5")
    code = "import sys, time, h5py; f = h5py.File(sys.argv[1], 'r+'); print('open', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        try:
            gm.Dataset(path)
        except locking.Busy as err:
            assert f"{path} is locked by another process" in str(err)
        else:
            pytest.skip("HDF5 file locking is off here (HDF5_USE_FILE_LOCKING)")
    finally:
        holder.kill()
        holder.wait()


def test_the_command_line_names_a_malformed_data_file(galton, tmp_path, capsys):
    path = copy_of(galton, tmp_path)
    edit_header(path, x_dim=None)
    assert main(["train", "histogram", str(path), "-o", str(tmp_path / "m"), "--quiet"]) == 2
    assert f"{path} has a corrupt header: it lacks 'x_dim'" in one_line(capsys.readouterr().err)
    assert main(["train", "histogram", str(tmp_path), "-o", str(tmp_path / "m"), "--quiet"]) == 2
    assert f"{tmp_path} is a folder, not a data set" in one_line(capsys.readouterr().err)


# -- 8. malformed model folders -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(galton, tmp_path_factory):
    """A saved HistogramRatio and a saved (one-epoch) RatioEstimator."""
    folder = tmp_path_factory.mktemp("models")
    histogram = gm.HistogramRatio(theta_bins=4).fit(galton).save(folder / "histogram")
    ratio = gm.RatioEstimator("carl", hidden=[4], epochs=1, progress=False).fit(galton).save(folder / "carl")
    return {"histogram": histogram, "carl": ratio}


def copy_model(source, target):
    target.mkdir()
    for file in source.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    return target


def edit_config(folder, edit):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(edit(config)))


@pytest.mark.parametrize("name", ["histogram", "carl"])
@pytest.mark.parametrize("edit, error, message", [
    (lambda c: [c], ValueError, "config.json holds a JSON list, not a saved estimator's settings"),
    (lambda c: {k: v for k, v in c.items() if k != "params"}, ValueError, "config.json lacks the key 'params'"),
    (lambda c: {**c, "params": []}, ValueError, "config.json: params must be a JSON object; got []"),
    (lambda c: {**c, "class": 7}, ValueError, "config.json: class must be a JSON string; got 7"),
    (lambda c: {**c, "fitted": {**c["fitted"], "x_dim": "1"}}, ValueError, "config.json: fitted x_dim must be"),
    (lambda c: {**c, "fitted": {k: v for k, v in c["fitted"].items() if k != "theta_dim"}}, ValueError,
     "config.json lacks fitted theta_dim"),
    (lambda c: {**c, "params": {**c["params"], "theta_bins": 0, "hidden": 0}}, ValueError, "config.json: "),
    (lambda c: {**c, "params": {**c["params"], "bogus": 1}}, ValueError, "config.json: "),
])
def test_a_malformed_config_is_named(models, tmp_path, name, edit, error, message):
    folder = copy_model(models[name], tmp_path / "model")
    edit_config(folder, edit)
    with pytest.raises(error) as caught:
        gm.load(folder)
    assert message in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


def test_files_and_folders_in_the_wrong_place(models, tmp_path):
    folder = copy_model(models["carl"], tmp_path / "model")
    with pytest.raises(NotADirectoryError, match="config.json is a file, not a model folder"):
        gm.load(folder / "config.json")
    (folder / "history.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="history.json is corrupt"):
        gm.load(folder)
    (folder / "history.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="history.json holds a JSON list"):
        gm.load(folder)
    (folder / "history.json").unlink()
    assert gm.load(folder).history_ == {}  # the history is optional
    (folder / "config.json").unlink()
    (folder / "config.json").mkdir()
    with pytest.raises(IsADirectoryError, match="config.json is a folder, not a file"):
        gm.load(folder)


def test_the_command_line_names_a_malformed_model(models, tmp_path, capsys):
    folder = copy_model(models["histogram"], tmp_path / "model")
    edit_config(folder, lambda c: [c])
    assert main(["evaluate", str(folder), "--simulator", "galton", "--quiet"]) == 2
    assert f"{folder / 'config.json'} holds a JSON list" in one_line(capsys.readouterr().err)
    assert main(["infer", str(folder), "--true-theta", "0.3", "--simulator", "galton", "--quiet"]) == 2
    assert f"{folder / 'config.json'} holds a JSON list" in one_line(capsys.readouterr().err)


# -- 9. ragged observation tables ---------------------------------------------------------------------


@pytest.mark.parametrize("text, line", [("1\n2,3\n4,5\n", 2), ("1,2\n3\n4,5\n", 2), ("x1,x2\n1,2\n3,4,5\n", 3),
                                        ("1,2\n3,four\n", 2), ("x1,x2\nx3,x4\n1,2\n", 2)])
def test_a_ragged_table_is_refused_naming_the_line(tmp_path, text, line):
    path = tmp_path / "obs.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"obs.csv, line {line}: "):
        workflow.load_observed(path)


def test_a_header_is_skipped_only_when_it_is_not_numeric(tmp_path):
    for text in ("x1,x2\n1,2\n3,4\n", "# comment\n\n1,2\n3,4\n", "1,2\n3,4\n"):
        (tmp_path / "obs.csv").write_text(text)
        np.testing.assert_array_equal(workflow.load_observed(tmp_path / "obs.csv"), [[1, 2], [3, 4]])
    (tmp_path / "obs.txt").write_text("slot\n14\n15.5\n-1e3\n")
    np.testing.assert_array_equal(workflow.load_observed(tmp_path / "obs.txt"), [[14], [15.5], [-1000]])
    (tmp_path / "names.csv").write_text("x1,x2\n")
    with pytest.raises(ValueError, match="holds no rows of numbers"):
        workflow.load_observed(tmp_path / "names.csv")


def test_the_command_line_refuses_a_ragged_table(models, tmp_path, capsys):
    (tmp_path / "obs.csv").write_text("14\n15,16\n")
    assert main(["infer", str(models["histogram"]), "--observed", str(tmp_path / "obs.csv"), "--simulator", "galton",
                 "--quiet"]) == 2
    assert "obs.csv, line 2: 2 value(s), but line 1 has 1" in one_line(capsys.readouterr().err)


# -- 9. observations outside the training range -------------------------------------------------------


def outside_warnings(record) -> list[str]:
    return [str(w.message) for w in record if "outside the range of x" in str(w.message)]


def test_observations_far_outside_the_training_range_are_warned_about(galton, models):
    sim = gm.simulators.GaltonBoard()
    histogram = gm.load(models["histogram"])
    low, high = float(histogram.x_low_[0]), float(histogram.x_high_[0])
    assert 0 <= low < high <= 31  # the slots the data reached, saved and loaded
    far = torch.tensor([[1000.0], [15.0]])
    with pytest.raises(ValueError, match="impossible"):  # the exact likelihood refuses x = 1000
        confidence_region(sim, far)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        confidence_region(Model(histogram, prior=sim), far)  # a surrogate answers: warned, once
    assert len(outside_warnings(record)) == 1, outside_warnings(record)
    message = outside_warnings(record)[0]
    assert "1 of 2 observations" in message and f"x in [{low:.4g}, {high:.4g}] (e.g. 1000)" in message
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        confidence_region(Model(histogram, prior=sim), torch.tensor([[low], [high]]))
        expected_limits(Model(histogram, prior=sim), [0.3], n_obs=50)  # an Asimov grid is no observation
    assert outside_warnings(record) == []


def test_every_estimator_records_the_training_range(galton, models, tmp_path):
    carl = gm.load(models["carl"])
    expected = galton.x_range()
    assert torch.equal(carl.x_low_, expected[0]) and torch.equal(carl.x_high_, expected[1])
    with pytest.warns(RuntimeWarning, match=r"1 of 1 observations lie outside the range of x that carl"):
        workflow.infer(carl, gm.simulators.GaltonBoard(), torch.tensor([[1000.0]]))
    sally = gm.ScoreEstimator("sally", hidden=[4], epochs=1, progress=False).fit(galton)
    assert torch.equal(sally.x_low_, expected[0])
    assert torch.equal(sally.likelihood_surrogate(galton, theta_bins=2).x_high_, expected[1])
    # a model saved before goldmine recorded the range loads, and warns about nothing
    old = copy_model(models["carl"], tmp_path / "old")
    edit_config(old, lambda c: {**c, "fitted": {k: v for k, v in c["fitted"].items() if k not in ("x_low", "x_high")}})
    again = gm.load(old)
    assert again.x_low_ is None
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        workflow.infer(again, gm.simulators.GaltonBoard(), torch.tensor([[1000.0]]))
    assert outside_warnings(record) == []
