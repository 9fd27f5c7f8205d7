"""The command line runs no code behind the user's back and fails before the work, not after it.

A model folder or a data file that names a class of a module (here `evil.Sim`, whose module leaves a
file when imported) never imports it: evaluate and infer say which class to pass and how, train
npe goes on with the box of the data's θ and says so. A module named on the command line is
imported as Python imports it, from Python's path: goldmine adds the working folder to it only under
`python -m goldmine`, as Python does. A class named with --simulator that is the recorded one gets
the recorded options. An output that cannot be written, or a seed that is no integer, is refused
before training; a reader that stops early (`| head -1`) ends the command quietly.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

import goldmine as gm
from goldmine import workflow
from goldmine.cli import main
from goldmine.simulators.describe import describe
from goldmine.study import load_study

EVIL = """\
from pathlib import Path
Path(__file__).with_name("IMPORTED").write_text("evil ran")
from goldmine.simulators import GaltonBoard


class Sim(GaltonBoard):
    pass
"""

SHIFTED = """\
from goldmine.simulators import GaltonBoard


class Shifted(GaltonBoard):
    def __init__(self, shift=0.0):
        super().__init__()
        self.shift = shift

    def config(self):
        return {"shift": self.shift}


def make():
    return Shifted()
"""


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("goldmine"), err
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return gm.simulate(gm.simulators.GaltonBoard(), 200, tmp_path_factory.mktemp("data") / "data.h5", seed=0,
                       progress=False).path


@pytest.fixture
def evil(data, tmp_path, monkeypatch):
    """A working folder with evil.py on Python's path (so an import would succeed), a data set whose header
    names evil.Sim, and a model trained on it."""
    (tmp_path / "evil.py").write_text(EVIL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    named = tmp_path / "evil.h5"
    named.write_bytes(data.read_bytes())
    with h5py.File(named, "r+") as f:
        meta = json.loads(f.attrs["goldmine"])
        meta.update(simulator="evil", simulator_class="evil.Sim", simulator_config={})
        f.attrs["goldmine"] = json.dumps(meta)
    assert main(["train", "histogram", str(named), "-o", "model", "--quiet"]) == 0
    assert json.loads((tmp_path / "model" / "trained_on.json").read_text())["simulator_class"] == "evil.Sim"
    yield tmp_path
    sys.modules.pop("evil", None)


@pytest.mark.parametrize("argv", [["evaluate", "model"], ["infer", "model", "--true-theta", "0.1", "--quiet"]])
def test_a_model_that_names_a_module_does_not_import_it(evil, capsys, argv):
    assert main(argv) == 2
    line = one_line(capsys.readouterr().err)
    assert "records the simulator 'evil' of class evil.Sim, which is not built into goldmine" in line
    assert "--simulator evil:Sim" in line
    assert not (evil / "IMPORTED").exists() and "evil" not in sys.modules
    # named by the user, it is imported (and built with the recorded options)
    assert type(workflow.model_simulator(evil / "model", "evil:Sim")).__name__ == "Sim"
    assert (evil / "IMPORTED").exists()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::goldmine.estimators.base.UnusedRunsWarning")  # pair data on purpose
def test_train_npe_on_data_that_names_a_module_does_not_import_it(evil, capsys):
    assert main(["train", "npe", "evil.h5", "-o", "npe", "--epochs", "1", "--quiet"]) == 0
    assert "note: the prior of npe is the box of the data's θ: the data's simulator evil.Sim is not built into " \
           "goldmine" in capsys.readouterr().out
    assert not (evil / "IMPORTED").exists() and "evil" not in sys.modules


def test_a_module_in_the_working_folder_is_imported_only_from_pythons_path(tmp_path, monkeypatch, capsys):
    (tmp_path / "evil_here.py").write_text(EVIL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    path = list(sys.path)
    assert main(["simulate", "evil_here:Sim", "-n", "10", "-o", "x.h5"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "the working folder holds evil_here" in line and "python -m goldmine" in line and "PYTHONPATH=." in line
    assert sys.path == path and "evil_here" not in sys.modules and not (tmp_path / "IMPORTED").exists()


@pytest.mark.slow
def test_python_m_goldmine_imports_from_the_working_folder(tmp_path):
    (tmp_path / "mysims.py").write_text(SHIFTED)
    proc = subprocess.run([sys.executable, "-m", "goldmine", "simulate", "mysims:make", "-n", "10", "-o", "x.h5",
                           "--quiet"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert gm.Dataset(tmp_path / "x.h5").meta["simulator_class"] == "mysims.Shifted"


def test_a_named_simulator_of_the_recorded_class_gets_the_recorded_options(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    workflow.write_json(folder / "trained_on.json", describe(gm.simulators.Weinberg(sigma=0.2)))
    assert workflow.model_simulator(folder, "weinberg").config() == {"sigma": 0.2}
    assert workflow.model_simulator(folder, "weinberg", {"sigma": 0.3}).config() == {"sigma": 0.3}
    assert workflow.model_simulator(folder, "galton").name == "galton"  # another class: its own defaults
    # a class of the user's, recorded from a script as __main__.Shifted, named as module:Class
    (tmp_path / "shifted_mod.py").write_text(SHIFTED)
    monkeypatch.syspath_prepend(str(tmp_path))
    workflow.write_json(folder / "trained_on.json", {"simulator": "galton", "simulator_class": "__main__.Shifted",
                                                     "simulator_config": {"shift": 0.5}})
    assert workflow.model_simulator(folder, "shifted_mod:Shifted").shift == 0.5
    assert workflow.model_simulator(folder, "shifted_mod:make").shift == 0.0  # a function: its own defaults
    sys.modules.pop("shifted_mod", None)


# -- refused before the work ------------------------------------------------------------------------


def refuse_training(monkeypatch):
    def fit(self, data):
        raise AssertionError("trained before checking the arguments")

    monkeypatch.setattr(workflow.estimator_class("carl"), "fit", fit)


def test_an_output_under_a_file_is_refused_before_training(data, tmp_path, monkeypatch, capsys):
    refuse_training(monkeypatch)
    (tmp_path / "somefile").write_text("x")
    assert main(["train", "carl", str(data), "-o", str(tmp_path / "somefile" / "model"), "--quiet"]) == 2
    assert f"{tmp_path / 'somefile'} is a file, not a folder" in one_line(capsys.readouterr().err)


def test_an_unwritable_output_is_refused_before_training(data, tmp_path, monkeypatch, capsys):
    refuse_training(monkeypatch)
    locked = tmp_path / "locked"
    locked.mkdir()
    access = os.access  # the tests run as root, who may write anywhere: the folder says it is read-only
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != locked and access(path, mode, **kw))
    assert main(["train", "carl", str(data), "-o", str(locked / "model"), "--quiet"]) == 2
    assert f"the folder {locked} is not writable" in one_line(capsys.readouterr().err)
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize("argv, fix", [
    (["train", "carl", "{data}", "-o", "{out}", "--seed", "1.5"], "--seed: must be an integer, e.g. 0; got '1.5'"),
    (["train", "carl", "{data}", "-o", "{out}", "--option", "seed=1.5"], "seed must be an integer from 0 to 4294967295 (2**32 − 1); got 1.5"),
    (["train", "carl", "{data}", "-o", "{out}", "--option", "seed=true"], "seed must be an integer from 0 to 4294967295 (2**32 − 1); got True"),
    (["simulate", "galton", "-n", "10", "-o", "{out}", "--seed", "1.5"], "--seed: must be an integer"),
])
def test_a_seed_is_an_integer(data, tmp_path, monkeypatch, capsys, argv, fix):
    refuse_training(monkeypatch)
    out = tmp_path / "out"
    assert main([a.format(data=data, out=out) for a in argv]) == 2
    assert fix in one_line(capsys.readouterr().err)
    assert not out.exists()


def test_a_study_seed_is_an_integer(tmp_path):
    study = tmp_path / "study.toml"
    study.write_text('simulator = "galton"\n[data]\nn = 200\n[train]\nmethods = ["carl"]\nseed = 1.5\n')
    with pytest.raises(ValueError, match=r"study.toml: \[train\] seed must be an integer"):
        load_study(study)  # before anything is simulated


@pytest.mark.slow
def test_a_reader_that_stops_early_ends_the_command_quietly():
    read, write = os.pipe()
    os.close(read)  # as `| head -1` has once it has its line: every write now fails
    try:
        proc = subprocess.run([sys.executable, "-m", "goldmine", "list"], stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=300)
    finally:
        os.close(write)
    assert proc.stderr == "" and proc.returncode == 141  # 128 + SIGPIPE, as `yes | head -1` ends
