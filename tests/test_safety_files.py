"""goldmine removes or overwrites only what it wrote itself.

`goldmine train -o DIR` replaces DIR only when it is a model goldmine saved (its `.goldmine` marker)
holding nothing but goldmine's files; a folder that merely has a config.json, reached directly or as
`inner/..`, is refused before any work and keeps every file. `est.save` refuses a folder of other
files too, and marks what it writes, so that a model saved from Python can be replaced. A study
writes only into a folder it created or marked. The hidden folder a training writes into has a fresh
name: a folder of the user's that happens to be called `.model.partial` is never touched.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

import goldmine as gm
from goldmine import folders, workflow
from goldmine.cli import main
from goldmine.study import run


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("goldmine: error: "), err
    return lines[0]


def snapshot(folder) -> dict:
    """Every file under `folder` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return gm.simulate(gm.simulators.GaltonBoard(), 200, tmp_path_factory.mktemp("data") / "data.h5", seed=0,
                       progress=False).path


def train(data, out, *extra) -> int:
    return main(["train", "histogram", str(data), "-o", str(out), "--quiet", *extra])


# -- goldmine train -o ------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["folder", "inner/.."])
def test_train_refuses_a_folder_that_only_has_a_config_json(data, tmp_path, capsys, via):
    work = tmp_path / "work"
    (work / "inner").mkdir(parents=True)
    (work / "config.json").write_text('{"my": "settings"}')
    (work / "data.h5").write_bytes(data.read_bytes())  # the training data itself
    (work / "notes.txt").write_text("three months of notes")
    before = snapshot(work)
    out = work if via == "folder" else work / "inner" / ".."
    assert train(work / "data.h5", out) == 2
    line = one_line(capsys.readouterr().err)
    assert f"{work} is not empty and is not a goldmine model" in line and "choose another output folder" in line
    assert snapshot(work) == before and (work / "inner").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]  # nothing written beside it either


def test_train_refuses_a_file(data, tmp_path, capsys):
    target = tmp_path / "model"
    target.write_text("not a folder")
    assert train(data, target) == 2
    assert "is a file, not a folder" in one_line(capsys.readouterr().err)
    assert target.read_text() == "not a folder"


def test_train_replaces_a_model_it_wrote(data, tmp_path, capsys):
    model = tmp_path / "model"
    assert train(data, model, "--option", "theta_bins=5") == 0
    assert folders.marked(model, "model") and "replaced" not in capsys.readouterr().out
    (model / "evaluation.json").write_text("{}")  # as goldmine evaluate writes it
    assert train(data, model, "--option", "theta_bins=7") == 0
    assert "(replaced the model that was there)" in capsys.readouterr().out
    assert gm.load(model).theta_bins == 7 and not (model / "evaluation.json").exists()  # the old one's is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no hidden folder left beside it
    assert sorted(p.name for p in model.iterdir()) == [".goldmine", "config.json", "history.json", "trained_on.json",
                                                       "weights.safetensors"]


def test_train_refuses_a_model_that_holds_other_files(data, tmp_path, capsys):
    model = tmp_path / "model"
    assert train(data, model) == 0
    (model / "notes.txt").write_text("mine")
    before = snapshot(model)
    assert train(data, model) == 2
    line = one_line(capsys.readouterr().err)
    assert "is a goldmine model that also holds notes.txt, which goldmine did not write: move it away" in line
    assert snapshot(model) == before


def test_a_swap_that_fails_puts_the_previous_model_back(data, tmp_path, monkeypatch, capsys):
    model = tmp_path / "model"
    assert train(data, model) == 0
    before = snapshot(model)
    rename = os.rename

    def failing(src, dst):
        if str(src).endswith(".partial"):
            raise OSError("disk full")
        rename(src, dst)

    monkeypatch.setattr(os, "rename", failing)
    assert train(data, model, "--option", "theta_bins=3") == 2
    assert "disk full" in one_line(capsys.readouterr().err)
    assert snapshot(model) == before and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_train_into_an_empty_folder_keeps_that_folder(data, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    inode = model.stat().st_ino
    assert train(data, model) == 0
    assert model.stat().st_ino == inode and gm.load(model).theta_bins > 0  # filled, not replaced (a mount point)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_train_never_touches_a_folder_named_like_its_hidden_one(data, tmp_path):
    mine = tmp_path / ".model.partial"  # the fixed name a training used to remove first
    mine.mkdir()
    (mine / "thesis.tex").write_text("chapter 1")
    assert train(data, tmp_path / "model") == 0
    assert (mine / "thesis.tex").read_text() == "chapter 1"


def test_a_killed_trainings_hidden_folder_is_removed_by_the_next(data, tmp_path):
    """The hidden folder of a process that no longer runs is removed; that of a running one is not."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, alive = tmp_path / ".model.1a2b3c4d.partial", tmp_path / ".model.5e6f7a8b.partial"
    for folder, pid in ((dead, int(gone.stdout)), (alive, os.getpid())):
        folder.mkdir()
        folders.mark(folder, "model", pid=pid, host=socket.gethostname())
        (folder / "weights.safetensors").write_bytes(b"half")
    assert train(data, tmp_path / "model") == 0
    assert not dead.exists() and (alive / "weights.safetensors").is_file()


def test_a_failed_training_leaves_no_folders_behind(data, tmp_path, monkeypatch):
    est_class = workflow.estimator_class("histogram")

    def fail(self, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(est_class, "fit", fail)
    assert train(data, tmp_path / "a" / "b" / "model") == 130
    assert list(tmp_path.iterdir()) == []  # neither the hidden folder nor the parents made for it


# -- est.save ---------------------------------------------------------------------------------------


def test_save_refuses_a_folder_of_other_files_and_marks_its_own(data, tmp_path):
    est = workflow.make_estimator("histogram").fit(data)
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="is not empty and is not a goldmine model"):
        est.save(other)
    assert sorted(p.name for p in other.iterdir()) == ["config.json"]
    saved = tmp_path / "saved"
    est.save(saved)
    est.save(saved)  # its own folder: saved again in place
    assert folders.marked(saved, "model")
    # a model saved from Python is goldmine's, so goldmine train may replace it
    assert train(data, saved, "--option", "theta_bins=3") == 0 and gm.load(saved).theta_bins == 3


# -- studies ----------------------------------------------------------------------------------------

STUDY = """\
simulator = "galton"
output = "."
[data]
n = 200
[train]
methods = ["histogram"]
"""


def test_a_study_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    study = tmp_path / "study.toml"
    study.write_text(STUDY)
    (tmp_path / "results.json").write_text('{"mine": true}')
    before = snapshot(tmp_path)
    assert main(["run", str(study), "--quiet"]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"{tmp_path} is not empty and is not a goldmine study" in line and "goldmine run -o" in line
    assert snapshot(tmp_path) == before
    with pytest.raises(FileExistsError, match="is a goldmine model, not a study"):  # nor a model folder
        model = tmp_path / "model"
        model.mkdir()
        folders.mark(model, "model")
        run(study, output=model, progress=False)


def test_claim(tmp_path):
    fresh = folders.claim(tmp_path / "a" / ".." / "new", "study")
    assert fresh == tmp_path / "new" and folders.marked(fresh, "study")
    assert folders.claim(fresh, "study") == fresh  # its own again
    empty = tmp_path / "empty"
    empty.mkdir()
    assert folders.marked(folders.claim(empty, "study"), "study")
    with pytest.raises(FileExistsError, match="is a goldmine study, not a model"):
        folders.claim(fresh, "model")  # a study's folder is no model
    (tmp_path / "forged").mkdir()
    (tmp_path / "forged" / folders.MARKER).write_text(json.dumps({"kind": "study"}))  # not goldmine's
    with pytest.raises(FileExistsError):
        folders.claim(tmp_path / "forged", "study")
