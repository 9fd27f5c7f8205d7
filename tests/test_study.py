"""Studies: the study file's validation, a whole run, reruns that skip what is finished, edits that
redo only what depends on them, resumption after a kill, and the workflow's pieces."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch

import goldmine as gm
from goldmine import workflow
from goldmine.folders import MARKER
from goldmine.study import load_study, run

GALTON = """\
simulator = "galton"
[data]
n = 600
[train]
methods = ["carl", "histogram", "sally"]
epochs = 2
hidden = [16, 16]
[train.histogram]
theta_bins = 10
[inference]
true_theta = 0.3
n_obs = 40
seed = 3
"""

BLACK_BOX = """\
import numpy as np
from goldmine.simulators import BlackBoxSimulator, box_prior

def noisy(scale=1.0):
    return BlackBoxSimulator(lambda t: t + scale * np.random.normal(size=t.shape), box_prior([-1], [1]), name="noisy")
"""


def write(folder, text: str, name: str = "study.toml"):
    path = folder / name
    path.write_text(text)
    return path


class Lines(list):
    """Collects the lines a run prints; `stage(name)` is what it said about one stage."""

    def stage(self, name: str) -> str:
        return next(line[20:].strip() for line in self if line.startswith(f"{name:<20} "))


# -- the study file ---------------------------------------------------------------------------------


@pytest.mark.parametrize("edit, error, fix", [
    (("simulator =", "simulatr ="), ValueError, "the known keys are name, output, simulator, data"),
    (("[data]\nn = 600", "[data]\nrows = 600"), ValueError, "[data] has no key 'rows'; the known keys are n, seed"),
    (("n = 600", "n = 600\nseed = 0"), None, None),
    (("n = 600", 'n = "many"'), ValueError, "[data] n must be an integer"),
    (('"sally"]', '"sallly"]'), ValueError, "unknown method 'sallly'; the methods are carl, rolr"),
    (('"sally"]', '"alfi"]'), NotImplementedError, "learns from the simulator itself"),
    (("epochs = 2", "epoch = 2"), ValueError, "[train] has no option 'epoch'"),
    (("theta_bins = 10", "theta_bins = 10\nepochs = 3"), ValueError, "[train.histogram] histogram has no option 'epochs'"),
    (("[train.histogram]", "[train.alices]"), ValueError, "[train.alices] configures alices, which is not in"),
    (("seed = 3", 'seed = 3\nobserved = "x.npy"'), ValueError, "needs either observed"),
    (("true_theta = 0.3\nn_obs = 40", 'observed = "x.npy"'), FileNotFoundError, "relative to the study file"),
    (("true_theta = 0.3", "true_theta = 3.0"), ValueError, "lies outside the support of galton's prior"),
    (("true_theta = 0.3", "true_theta = [0.3, 0.1]"), ValueError, "true_theta must hold 1 number(s)"),
    (("seed = 3", 'seed = 3\nmethod = "bayes"'), ValueError, 'method must be "wilks" or "neyman"'),
    (("[inference]", "[inference"), ValueError, "is not valid TOML"),
    (('simulator = "galton"', 'simulator = "galtonn"'), ValueError, "the built-ins are galton, weinberg"),
    (('simulator = "galton"\n', ""), ValueError, "needs 'simulator'"),
    (("[data]\nn = 600\n", ""), ValueError, "needs 'data': a [data] table with n"),
])
def test_validation(tmp_path, edit, error, fix):
    path = write(tmp_path, GALTON.replace(*edit))
    if error is None:
        assert load_study(path).data["seed"] == 0
        return
    with pytest.raises(error) as caught:
        load_study(path)
    assert fix in str(caught.value) and "study.toml" in str(caught.value)


def test_options_merge_and_gold(tmp_path, monkeypatch):
    s = load_study(write(tmp_path, GALTON.replace('"sally"]', '"sally", "scandal"]')))
    # shared settings go to the methods that have them (the flows' widths are hidden too)
    assert s.methods["carl"] == {"epochs": 2, "hidden": [16, 16]}
    assert s.methods["histogram"] == {"theta_bins": 10}
    assert s.methods["scandal"] == {"epochs": 2, "hidden": [16, 16]}
    assert s.output == tmp_path / "study-output" and s.name == "study"
    write(tmp_path, BLACK_BOX, "blackbox.py")
    monkeypatch.syspath_prepend(tmp_path)  # as PYTHONPATH=. would
    text = GALTON.replace('simulator = "galton"', '[simulator]\nname = "blackbox:noisy"\noptions = {scale = 0.5}')
    with pytest.raises(ValueError, match="sally needs gold, but noisy is a black box"):
        load_study(write(tmp_path, text))
    s = load_study(write(tmp_path, text.replace('"sally"]', '"nle"]')))
    assert s.sim.name == "noisy" and not s.sim.has_gold and list(s.methods) == ["carl", "histogram", "nle"]


# -- running ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_run_rerun_and_edits(tmp_path):
    path = write(tmp_path, GALTON)
    out = tmp_path / "study-output"
    lines = Lines()
    results = run(path, progress=False, echo=lines.append)
    assert set(results["methods"]) == {"carl", "histogram", "sally"}
    for method, entry in results["methods"].items():
        assert entry["evaluation"]["mse"] > 0 and (out / "models" / method / "config.json").is_file()
        assert entry["inference"]["kind"] == "ratio" and -1 <= entry["inference"]["mle"][0] <= 1
    assert results["methods"]["sally"]["evaluation"]["metric"] == "score_mse"
    exact = results["exact"]["inference"]
    assert exact["interval"][0] < 0.3 < exact["interval"][1]  # this seed's 95% interval covers the truth
    assert np.load(out / "observed.npy").shape == (40, 1) and (out / "llr.png").stat().st_size > 0
    assert (out / "summary.txt").read_text().splitlines()[0].split()[:2] == ["method", "train"]
    assert (out / "study.toml").read_text() == GALTON
    assert all(e["status"] == "done" for e in json.loads((out / "stages.json").read_text()).values())
    # every stage records the seconds it took, and the exact likelihood was announced with its cost
    assert all(e["seconds"] >= 0 for e in json.loads((out / "stages.json").read_text()).values())
    assert any("evaluations of log p(x|θ), about" in line for line in lines), lines

    # a rerun skips every stage and touches no file
    files = sorted(p for p in out.rglob("*") if p.is_file())
    stamps = [p.stat().st_mtime_ns for p in files]
    lines = Lines()
    assert run(path, progress=False, echo=lines.append) == results
    stages = [line for line in lines[: lines.index("")]]
    assert len(stages) == 13 and all(line.endswith("done earlier") or "done earlier:" in line for line in stages)
    assert [p.stat().st_mtime_ns for p in files] == stamps

    # one method's options changed: only that method is trained, evaluated and inferred again
    data = (out / "data.h5").stat().st_mtime_ns
    edited = GALTON.replace("theta_bins = 10", "theta_bins = 8")
    path.write_text(edited)
    lines = Lines()
    run(path, progress=False, echo=lines.append)
    redone = {line[:20].strip() for line in lines[: lines.index("")] if "done earlier" not in line}
    assert redone == {"train histogram", "evaluate histogram", "infer histogram", "report"}
    assert gm.load(out / "models" / "histogram").theta_bins == 8
    assert (out / "data.h5").stat().st_mtime_ns == data

    # other observations: the models and their evaluations stay, inference is redone
    path.write_text(edited.replace("n_obs = 40", "n_obs = 20"))
    lines = Lines()
    results = run(path, progress=False, echo=lines.append)
    redone = {line[:20].strip() for line in lines[: lines.index("")] if "done earlier" not in line}
    assert redone == {"observe", "infer carl", "infer histogram", "infer sally", "infer exact", "report"}
    assert lines.stage("observe").startswith("20 runs at θ = [0.3]") and results["exact"]["inference"]["n_obs"] == 20

    # a method dropped from the list: nothing to compute, but the report no longer shows it
    path.write_text(edited.replace("n_obs = 40", "n_obs = 20").replace(', "sally"', ""))
    lines = Lines()
    results = run(path, progress=False, echo=lines.append)
    redone = {line[:20].strip() for line in lines[: lines.index("")] if "done earlier" not in line}
    assert redone == {"report"} and set(results["methods"]) == {"carl", "histogram"}


BOARDS = """\
from goldmine.simulators import GaltonBoard

def board(block_size=16384):
    sim = GaltonBoard()
    sim.block_size = block_size
    return sim
"""


def test_resumes_an_interrupted_simulation(tmp_path, monkeypatch):
    write(tmp_path, BOARDS, "boards.py")
    monkeypatch.syspath_prepend(tmp_path)  # as PYTHONPATH=. would
    text = GALTON.replace('"carl", "histogram", "sally"', '"histogram"').split("[inference]")[0]
    text = text.replace('simulator = "galton"', '[simulator]\nname = "boards:board"\noptions = {block_size = 100}')
    path = write(tmp_path, text.replace("n = 600", "n = 600\nchunk = 200"))
    full = run(path, output=tmp_path / "whole", progress=False, echo=lambda line: None)
    # cut the finished data set back to its first chunk, as a kill during the second one leaves it
    out = tmp_path / "cut"
    out.mkdir()
    shutil.copy(tmp_path / "whole" / MARKER, out / MARKER)  # a study's output folder, as goldmine marks it
    partial = out / "data.h5"
    partial.write_bytes((tmp_path / "whole" / "data.h5").read_bytes())
    with h5py.File(partial, "r+") as f:
        for key in ("theta", "x", "label", "log_r", "score", "score_ref"):
            f[key].resize(200, axis=0)
        f.attrs["rows_done"] = 200
        del f.attrs["complete"]
    stages = json.loads((tmp_path / "whole" / "stages.json").read_text())
    workflow.write_json(out / "stages.json", {"simulate": {**stages["simulate"], "status": "running"}})
    lines = Lines()
    resumed = run(path, output=out, progress=False, echo=lines.append)
    assert lines.stage("simulate").startswith("resuming the interrupted simulation")
    with h5py.File(partial) as f, h5py.File(tmp_path / "whole" / "data.h5") as g:
        assert int(f.attrs["rows_done"]) == 600
        for key in g:
            np.testing.assert_array_equal(f[key][:], g[key][:], err_msg=key)
    assert resumed["methods"]["histogram"]["evaluation"] == full["methods"]["histogram"]["evaluation"]


@pytest.mark.slow
def test_kill_during_training_then_resume(tmp_path):
    text = GALTON.replace('"carl", "histogram", "sally"', '"carl"').replace("n = 600", "n = 2000")
    text = text.replace("[train.histogram]\ntheta_bins = 10\n", "")
    path = write(tmp_path, text.replace("epochs = 2", "epochs = 25"))
    out = tmp_path / "study-output"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "goldmine.cli", "run", str(path), "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                entry = json.loads((out / "stages.json").read_text()).get("train/carl", {})
            except (FileNotFoundError, json.JSONDecodeError):
                entry = {}
            if entry.get("status") == "running":
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    proc.stderr.close()
    assert gm.Dataset(out / "data.h5").complete
    assert not (out / "models" / "carl").exists()  # a killed training leaves no model that looks finished
    data = (out / "data.h5").stat()

    lines = Lines()
    results = run(path, progress=False, echo=lines.append)
    assert lines.stage("simulate").startswith("done earlier")
    assert lines.stage("train carl").startswith("the last training was interrupted")
    assert (out / "data.h5").stat().st_mtime_ns == data.st_mtime_ns and (out / "data.h5").stat().st_ino == data.st_ino
    assert results["methods"]["carl"]["train"]["epochs"] == 25 and not list((out / "models").glob(".*"))


def test_two_dimensional_theta_from_an_observed_file(tmp_path):
    sim = gm.simulators.Weinberg()
    x = sim.sample(torch.tensor([[45.0, 0.8]]).expand(200, 2), torch.Generator().manual_seed(0)).x.numpy()
    np.savetxt(tmp_path / "obs.csv", x, delimiter=",")
    text = """\
        [simulator]
        name = "weinberg"
        options = { sigma = 0.1 }
        [data]
        n = 4000
        [train]
        methods = ["histogram"]
        [train.histogram]
        theta_bins = 5
        [inference]
        observed = "obs.csv"
        grid = 21
        """
    results = run(write(tmp_path, "\n".join(line.strip() for line in text.splitlines())), progress=False,
                  echo=lambda line: None)
    exact, histogram = results["exact"]["inference"], results["methods"]["histogram"]["inference"]
    assert results["observed"]["n_obs"] == 200 and exact["n_obs"] == 200
    assert 0 < exact["size"] < 10 * 0.7  # 200 runs pin θ down to part of the prior's box
    assert histogram["size"] > 0 and "interval" not in exact
    assert results["methods"]["histogram"]["evaluation"]["mse"] > 0
    assert (tmp_path / "study-output" / "llr.png").stat().st_size > 0


# -- the pieces -------------------------------------------------------------------------------------


def test_make_simulator(tmp_path, monkeypatch):
    assert isinstance(workflow.make_simulator("Lotka-Volterra"), gm.simulators.LotkaVolterra)
    assert workflow.make_simulator("GaltonBoard").name == "galton"
    assert workflow.make_simulator("goldmine.simulators:GaussianMixture", {"dim": 3}).theta_dim == 3
    write(tmp_path, BLACK_BOX + "\nINSTANCE = noisy()\nNUMBER = 3\n", "instances.py")
    monkeypatch.syspath_prepend(tmp_path)  # as PYTHONPATH=. would
    assert workflow.make_simulator("instances:INSTANCE").name == "noisy"
    with pytest.raises(ValueError, match="takes no options"):
        workflow.make_simulator("instances:INSTANCE", {"scale": 2})
    with pytest.raises(TypeError, match="name a Simulator class"):
        workflow.make_simulator("instances:NUMBER")
    with pytest.raises(ValueError, match="it takes: scale=1.0"):
        workflow.make_simulator("instances:noisy", {"sigma": 2})
    with pytest.raises(ValueError, match="not an import path"):
        workflow.make_simulator("instances:")


def test_load_observed(tmp_path):
    x = np.arange(6.0).reshape(3, 2)
    np.save(tmp_path / "a.npy", x)
    np.savetxt(tmp_path / "a.txt", x)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["x"] = x
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f["first"], f["second"] = x, x
    for name in ("a.npy", "a.txt", "a.h5"):
        np.testing.assert_array_equal(workflow.load_observed(tmp_path / name), x)
    np.save(tmp_path / "v.npy", np.arange(4.0))
    assert workflow.load_observed(tmp_path / "v.npy").shape == (4, 1)  # a vector is n scalar observations
    with pytest.raises(ValueError, match="put the observations in one named 'x'"):
        workflow.load_observed(tmp_path / "b.h5")
    (tmp_path / "a.json").write_text("[]")
    with pytest.raises(ValueError, match="give .npy, .csv or .h5"):
        workflow.load_observed(tmp_path / "a.json")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::goldmine.estimators.base.UnusedRunsWarning")  # pair data on purpose
def test_a_study_of_methods_without_reference_runs_simulates_every_run_at_the_prior(tmp_path):
    """layout "prior" when every method can use rows at θ ~ prior only, pairs as soon as one needs θ_ref; the
    data stage's fingerprint of a pairs study is the one it had before layouts were chosen."""
    text = 'simulator = "galton"\n[data]\nn = 200\n[train]\nmethods = ["nre"]\nepochs = 1\nhidden = [8]\n' \
        '[evaluate]\nenabled = false\n'
    lines = Lines()
    run(write(tmp_path, text), output=tmp_path / "prior", progress=False, echo=lines.append)
    data = gm.Dataset(tmp_path / "prior" / "data.h5")
    assert data.layout == "prior" and (data.tensors(["label"])["label"] == 0).all()
    assert "layout prior" in lines.stage("simulate")
    both = text.replace('"nre"', '"nre", "carl"')
    run(write(tmp_path, both, "both.toml"), output=tmp_path / "pairs", progress=False, echo=lambda line: None)
    assert gm.Dataset(tmp_path / "pairs" / "data.h5").layout == "pairs"
    from goldmine.study import fingerprint

    fp = json.loads((tmp_path / "pairs" / "stages.json").read_text())["simulate"]["fingerprint"]
    assert fp == fingerprint({"simulator": "galton", "options": {}, "n": 200, "seed": 0})
