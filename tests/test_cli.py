"""The goldmine command: every subcommand end to end in its own process on tiny budgets, and its
answers to mistakes (exit code 2 and one line on stderr that names the fix).

The processes start in three waves (independent commands together, then train, then evaluate and
infer on the trained model), since each pays the import of torch; details and mistakes run
in-process through `main`, which returns the exit code.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import goldmine as gm
from goldmine import locking
from goldmine.cli import main

ENTRY = Path(sys.executable).with_name("goldmine")  # the console script that pyproject.toml declares
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

MYSIMS = """\
from goldmine.simulators import GaltonBoard

def board(block_size=16384):
    sim = GaltonBoard()
    sim.block_size = block_size
    return sim
"""

STUDY = """\
simulator = "galton"
output = "study-out"
[data]
n = 400
[train]
methods = ["carl", "histogram"]
epochs = 1
hidden = [16]
[inference]
true_theta = 0.2
n_obs = 30
"""

ECHO = """\
import json, sys
print(json.dumps(sys.argv[1:]))
sys.exit(3 if "--fail" in sys.argv else 0)
"""


def command() -> list[str]:
    return [str(ENTRY)] if ENTRY.exists() else [sys.executable, "-m", "goldmine.cli"]


def parallel(cwd: Path, commands: dict[str, list[str]], env=None) -> dict[str, subprocess.CompletedProcess]:
    """Runs goldmine with each argument list in its own process, all at once; waits for all."""
    procs = {name: subprocess.Popen([*command(), *args], cwd=cwd, env={**ENV, **(env or {})}, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for name, args in commands.items()}
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        out[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return out


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{' '.join(result.args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """Runs every subcommand in its own process: train on a data set simulated here, while simulate
    itself runs beside it; then evaluate and infer on the trained model."""
    work = tmp_path_factory.mktemp("cli")
    (work / "mysims.py").write_text(MYSIMS)
    (work / "study.toml").write_text(STUDY)
    (work / "bench").mkdir()
    (work / "bench" / "echo_args.py").write_text(ECHO)
    gm.simulate(gm.simulators.GaltonBoard(), 600, work / "train.h5", seed=0, progress=False)
    runs = parallel(work, {
        "list": ["list"],
        "simulate": ["simulate", "mysims:board", "--sim-option", "block_size=100", "-n", "600", "-o", "data/data.h5",
                     "--chunk", "200"],
        "train": ["train", "alices", "train.h5", "-o", "model", "--epochs", "2", "--hidden", "16,16", "--seed", "1"],
        "run": ["run", "study.toml", "--quiet"],
        "benchmark": ["benchmark", "echo_args", "--quick", "-n", "3"],
        "missing_file": ["train", "carl", "nothing.h5", "-o", "model2"],
    }, env={"GOLDMINE_BENCHMARKS": str(work / "bench"), "PYTHONPATH": os.pathsep.join(  # mysims: PYTHONPATH=.
        [str(work), *filter(None, [os.environ.get("PYTHONPATH")])])})
    runs |= parallel(work, {"evaluate": ["evaluate", "model", "--quiet"],
                            "infer": ["infer", "model", "--true-theta", "0.3", "--n-obs", "50", "--quiet"]})
    return work, runs


@pytest.mark.slow
def test_list(session):
    _, runs = session
    out = ok(runs["list"])
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  ")}
    assert rows["galton"][1:5] == ["1", "1", "U(-1,", "1)"]
    assert rows["weinberg"][1:3] == ["2", "1"] and rows["lotka_volterra"][1:3] == ["4", "9"]
    for method in ("carl", "rolr", "alice", "cascal", "rascal", "alices", "nre", "nres", "sally", "sallino", "nle",
                   "scandal", "npe", "histogram", "alfi"):
        assert method in out.split(), method
    assert "echo_args" in out  # the benchmarks of $GOLDMINE_BENCHMARKS


def test_list_finds_the_repository_benchmarks(monkeypatch, capsys):
    monkeypatch.delenv("GOLDMINE_BENCHMARKS", raising=False)
    assert main(["list", "benchmarks"]) == 0
    assert "sample_efficiency" in capsys.readouterr().out  # found from the package's location


def test_list_one_method(capsys):
    assert main(["list", "alices"]) == 0
    out = capsys.readouterr().out
    assert "alpha = 1.0" in out and "epochs = 50" in out and "needs gold" in out


@pytest.mark.slow
def test_simulate_with_an_import_path_and_options(session, monkeypatch, capsys):
    work, runs = session
    out = ok(runs["simulate"])
    assert "600 rows" in out and "next: goldmine train alice " in out
    data = gm.Dataset(work / "data" / "data.h5")
    assert len(data) == 600 and data.complete and data.has_gold
    assert data.meta["block_size"] == 100  # --sim-option reached the factory mysims:board
    # the same command again reuses the finished file
    before = (work / "data" / "data.h5").stat().st_ino
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(work)  # as PYTHONPATH=. would
    assert main(["simulate", "mysims:board", "--sim-option", "block_size=100", "-n", "600", "-o", "data/data.h5",
                 "--quiet"]) == 0
    assert "reused" in capsys.readouterr().out
    assert (work / "data" / "data.h5").stat().st_ino == before and len(gm.Dataset(work / "data" / "data.h5")) == 600


def test_simulate_refuses_a_file_that_is_being_written(tmp_path, capsys):
    path = tmp_path / "data.h5"
    with locking.exclusive(path, "goldmine.simulate"):
        assert main(["simulate", "galton", "-n", "100", "-o", str(path), "--quiet"]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"{path} is being written by process {os.getpid()} (goldmine.simulate)" in line, line
    assert not path.exists()


@pytest.mark.slow
def test_train(session):
    work, runs = session
    out = ok(runs["train"])
    assert "RatioEstimator alices" in out and "2 epochs" in out
    record = json.loads((work / "model" / "trained_on.json").read_text())
    assert record["method"] == "alices" and record["epochs"] == 2 and record["rows"] == 600
    assert record["data"] == str(work / "train.h5")
    assert record["options"] == {"epochs": 2, "hidden": [16, 16], "seed": 1}
    assert gm.load(work / "model").hidden == (16, 16)
    assert not list(work.glob(".model*"))  # the hidden folder it was written to is gone


@pytest.mark.slow
def test_evaluate(session):
    work, runs = session
    out = ok(runs["evaluate"])
    result = json.loads((work / "model" / "evaluation.json").read_text())
    assert result["metric"] == "log_ratio_mse" and result["mse"] > 0 and len(result["per_theta"]) == 101
    # log r̂ = 0 on the Galton board scores E_θ E_x[(log r)²] = 1.19 (benchmarks/README.md)
    assert result["trivial_mse"] == pytest.approx(1.19, abs=0.01)
    assert "mse(log r)" in out


@pytest.mark.slow
def test_infer_at_a_true_theta(session):
    work, runs = session
    out = ok(runs["infer"])
    result = json.loads((work / "model" / "inference.json").read_text())
    assert result["observed"] == {"true_theta": [0.3], "n_obs": 50, "seed": 0}
    assert set(result["results"]) == {"alices", "exact"}
    exact = result["results"]["exact"]
    low, high = exact["interval"]
    assert -1 <= low < exact["mle"][0] < high <= 1 and exact["level"] == 0.95
    assert low < 0.3 < high  # this seed's 95% interval covers the truth
    assert (work / "model" / "inference.png").stat().st_size > 0
    assert "exact" in out and "95% wilks" in out
    # each Wilks region is checked by toys at its θ̂ and around it, and the true θ is said to be inside or not
    assert "checking each Wilks region by 200 toy data sets" in out
    for name, entry in result["results"].items():
        c = entry["calibration"]
        assert c["toys"] == 200 and 0 <= c["coverage"] <= 1 and entry["mle_on_edge"] in (True, False)
        assert f"{name}: lowest coverage {c['coverage']:.3f} ± {c['stderr']:.3f} at " in out and "by 200 toys" in out
        where = "inside" if entry["true_theta_inside"] else "outside"
        assert f"{name}: the true θ is {where} the region" in out
    assert exact["true_theta_inside"] and not exact["calibration"]["under_covers"]
    assert all(abs(p["coverage"] - 0.95) < 3 * (0.95 * 0.05 / p["toys"]) ** 0.5 for p in exact["calibration"]["points"])


@pytest.mark.slow
def test_infer_from_a_file(session, capsys):
    work, _ = session
    x = gm.simulators.GaltonBoard().sample(torch.full((40, 1), -0.4), torch.Generator().manual_seed(2)).x.numpy()
    np.savetxt(work / "obs.csv", x, delimiter=",", header="slot", comments="")
    out = work / "from_csv.json"
    assert main(["infer", str(work / "model"), "--observed", str(work / "obs.csv"), "-o", str(out), "--no-exact",
                 "--no-check", "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert result["observed"] == {"file": str(work / "obs.csv"), "n_obs": 40} and set(result["results"]) == {"alices"}
    assert "calibration" not in result["results"]["alices"] and "true_theta_inside" not in result["results"]["alices"]
    assert "checking" not in capsys.readouterr().out
    np.save(work / "wide.npy", np.zeros((5, 2)))
    assert main(["infer", str(work / "model"), "--observed", str(work / "wide.npy"), "--quiet"]) == 2
    assert "x_obs must have shape (n, 1)" in capsys.readouterr().err


@pytest.mark.slow
def test_run(session):
    work, runs = session
    out = ok(runs["run"])
    results = json.loads((work / "study-out" / "results.json").read_text())
    assert set(results["methods"]) == {"carl", "histogram"} and "exact" in results
    assert results["methods"]["carl"]["train"]["epochs"] == 1
    assert results["observed"]["n_obs"] == 30
    assert (work / "study-out" / "llr.png").is_file() and "output folder" in out


@pytest.mark.slow
def test_benchmark(session, monkeypatch, capsys):
    work, runs = session
    assert json.loads(ok(runs["benchmark"])) == ["--quick", "-n", "3"]
    monkeypatch.setenv("GOLDMINE_BENCHMARKS", str(work / "bench"))
    assert main(["benchmark", "echo-args", "--fail"]) == 3  # the script's exit code comes back
    assert main(["benchmark"]) == 0 and "echo_args" in capsys.readouterr().out
    assert main(["benchmark", "nosuch"]) == 2
    assert "the benchmarks are echo_args" in capsys.readouterr().err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("goldmine"), err
    return lines[0]


@pytest.mark.slow
def test_a_mistake_in_a_process(session):
    _, runs = session
    assert runs["missing_file"].returncode == 2, runs["missing_file"].stderr
    assert "no data set at nothing.h5: simulate one first with goldmine simulate" in one_line(runs["missing_file"].stderr)


@pytest.mark.slow
@pytest.mark.parametrize("argv, fix", [
    (["train"], "the following arguments are required: METHOD, DATA.h5, -o/--output"),
    (["train", "carl", "{work}/nothing.h5", "-o", "m"], "simulate one first with goldmine simulate"),
    (["train", "nosuch", "{data}", "-o", "m"], "(goldmine list methods)"),
    (["train", "histogram", "{data}", "-o", "m", "--epochs", "3"], "its options are theta_bins, x_bins"),
    (["train", "carl", "{data}", "-o", "m", "--epochs", "x"], "--epochs: must be a positive integer"),
    (["train", "carl", "{data}", "-o", "m", "--option", "bogus=1"], "(goldmine list carl)"),
    (["train", "carl", "{data}", "-o", "{work}/data"], "is not a goldmine model (it has no .goldmine marker"),
    (["simulate", "nosuch", "-n", "10", "-o", "x.h5"], "package.module:Class"),
    (["simulate", "galton", "-n", "11", "-o", "x.h5"], "positive even number"),
    (["simulate", "nomodule:Sim", "-n", "10", "-o", "x.h5"], "add that folder to PYTHONPATH"),
    (["simulate", "weinberg", "--sim-option", "sigmaa=1", "-n", "10", "-o", "x.h5"], "it takes: sigma=0.1"),
    (["simulate", "galton", "-n", "10", "-o", "x.h5", "--sim-option", "oops"], "is not KEY=VALUE"),
    (["evaluate", "{work}/nothing"], "train one with goldmine train"),
    (["evaluate", "{work}/data"], "give the folder that goldmine train -o wrote"),
    (["infer", "{model}"], "one of the arguments --observed --true-theta is required"),
    (["infer", "{model}", "--true-theta", "3"], "Draw θ from sim.prior"),
    (["infer", "{model}", "--true-theta", "0.1,0.2"], "has 1 component(s)"),
    (["infer", "{model}", "--observed", "{work}/nothing.npy"], "give a .npy, .csv or .h5 file"),
    (["infer", "{model}", "--true-theta", "0.1", "--level", "95"], "e.g. 0.95"),
    (["run", "{work}/nothing.toml"], "examples/study.toml"),
    (["list", "nosuch"], "goldmine list alices"),
    (["frobnicate"], "choose from 'list', 'simulate'"),
])
def test_mistakes(session, capsys, argv, fix):
    work, _ = session
    paths = {"work": work, "data": work / "data" / "data.h5", "model": work / "model"}
    argv = [a.format(**paths) for a in argv]
    assert main([*argv, "--quiet"] if argv[0] in ("train", "infer") else argv) == 2
    line = one_line(capsys.readouterr().err)
    assert fix in line, line


@pytest.mark.slow
def test_debug_shows_the_exception(session):
    work, _ = session
    with pytest.raises(ValueError, match="unknown method"):
        main(["train", "nosuch", str(work / "data" / "data.h5"), "-o", str(work / "m"), "--debug"])


@pytest.mark.slow
def test_a_model_without_its_record_needs_the_simulator(session, tmp_path, capsys):
    work, _ = session
    folder = tmp_path / "bare"
    gm.load(work / "model").save(folder)  # saved from Python: no trained_on.json
    assert main(["evaluate", str(folder)]) == 2
    assert "name it with --simulator" in one_line(capsys.readouterr().err)
    assert main(["evaluate", str(folder), "--simulator", "galton"]) == 0


def test_usage_text(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for name in ("list", "simulate", "train", "evaluate", "infer", "run", "benchmark"):
        assert f"    {name}" in text


@pytest.mark.parametrize("argv", [["simulate", "galton", "-n", "2", "-o", "x.h5"], ["evaluate", "model"],
                                  ["infer", "model", "--true-theta", "0.3"], ["check", "galton"],
                                  ["posterior", "galton", "--true-theta", "0.3"]])
def test_every_sim_option_reads_key_values_and_json_objects(argv):
    from goldmine.cli import build_parser, merged

    args = build_parser().parse_args([*argv, "--sim-option", '{"sigma": 0.2}', "--sim-option", "block_size=3"])
    assert merged(args.sim_option) == {"sigma": 0.2, "block_size": 3}


def test_sim_option_has_one_help_text(capsys):
    helps = set()
    for command in ("simulate", "evaluate", "infer", "check", "posterior"):
        assert main([command, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        start = text.index("--sim-option KEY=VALUE a constructor")
        helps.add(text[start:text.index("of them", start)].replace("--simulator", "the simulator"))
    assert len(helps) == 1, helps
