"""Fault injection on simulate: workers outlive a killed parent, two writers on one path, Ctrl-C,
a script without the __main__ guard, non-finite gold, a read-only complete file."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import goldmine as gm
import goldmine.data
from goldmine import locking
from goldmine.simulators import GaltonBoard

# argv: path, marker file, seconds of sleep per sample call, rows, workers. Each call appends the
# process id to the marker; from the third call on, calls wait while the file `<marker>.hold` exists.
SLOW = textwrap.dedent(
    """
    import os, sys, time
    import goldmine as gm
    from goldmine.simulators import GaltonBoard

    class SlowGalton(GaltonBoard):
        block_size = 100

        def sample(self, theta, generator=None):
            with open(sys.argv[2], "a") as marker:
                marker.write(f"{os.getpid()} ")
            time.sleep(float(sys.argv[3]))
            while os.path.exists(sys.argv[2] + ".hold") and len(open(sys.argv[2]).read().split()) > 2:
                time.sleep(0.05)
            return super().sample(theta, generator)

    if __name__ == "__main__":
        gm.simulate(SlowGalton(), int(sys.argv[4]), sys.argv[1], seed=5, workers=int(sys.argv[5]), chunk_size=100,
                    progress=False)
        print("done")
    """
)


def environment(folder: Path) -> dict:
    """This process's environment with `folder` first on the path (the sources under test stay on it)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}


def start(tmp_path: Path, path: Path, sleep: float, rows: int, workers: int, **popen) -> subprocess.Popen:
    script = tmp_path / "slow.py"
    script.write_text(SLOW)
    return subprocess.Popen([sys.executable, str(script), str(path), str(tmp_path / "calls"), str(sleep), str(rows),
                             str(workers)], env=environment(tmp_path), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **popen)


def wait_for_calls(tmp_path: Path, count: int, proc: subprocess.Popen, processes: int = 1,
                   timeout: float = 60) -> None:
    """Waits until the simulator has been called `count` times, by at least `processes` processes."""
    marker = tmp_path / "calls"
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        calls = marker.read_text().split() if marker.exists() else []
        if len(calls) >= count and len(set(calls)) >= processes:
            return
        time.sleep(0.05)
    raise AssertionError(f"the simulation made fewer than {count} calls: {proc.poll()=}")


def children(pid: int) -> list[int]:
    """The live worker processes (multiprocessing's spawned children) of `pid`, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and alive(int(entry.name)):
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if ppid == pid and b"spawn_main" in cmdline:
                out.append(int(entry.name))
    return out


def wait_for_workers(pid: int, count: int, timeout: float = 60) -> list[int]:
    deadline = time.time() + timeout
    while len(found := children(pid)) < count and time.time() < deadline:
        time.sleep(0.05)
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped by its new parent, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def arrays(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][:] for k in f.keys()}


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds worker processes in /proc")


@pytest.mark.slow
@needs_proc
def test_workers_exit_when_their_parent_is_killed(tmp_path):
    proc = start(tmp_path, tmp_path / "d.h5", 0.2, 4000, 2)
    workers = []
    try:
        wait_for_calls(tmp_path, 3, proc, processes=2)  # both workers are simulating
        workers = wait_for_workers(proc.pid, 2)
        assert len(workers) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait()  # not communicate: orphaned workers would hold its pipes open
        deadline = time.time() + 5
        while time.time() < deadline and any(alive(w) for w in workers):
            time.sleep(0.05)
        assert not [w for w in workers if alive(w)], "workers outlived their parent"
    finally:
        proc.kill()
        proc.wait()
        for w in workers:
            if alive(w):
                os.kill(w, signal.SIGKILL)
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.slow
@needs_proc
def test_ctrl_c_stops_the_workers_with_one_message(tmp_path):
    # a terminal's Ctrl-C sends SIGINT to every process of the foreground group
    path = tmp_path / "d.h5"
    # 20,000 rows take two workers about 20 s: the run cannot end before the Ctrl-C on a loaded machine
    proc = start(tmp_path, path, 0.2, 20_000, 2, start_new_session=True)
    wait_for_calls(tmp_path, 3, proc, processes=2)
    deadline = time.time() + 60
    while not path.exists() and time.time() < deadline:  # the first chunk is written
        time.sleep(0.05)
    workers = wait_for_workers(proc.pid, 2)
    assert len(workers) == 2
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "done" not in stdout
    assert stderr.count("Traceback") == 1 and stderr.rstrip().endswith("KeyboardInterrupt"), stderr
    assert "SpawnProcess" not in stderr and "concurrent.futures" not in stderr, stderr
    assert not [w for w in workers if alive(w)]
    data = gm.Dataset(path)  # the chunks written before Ctrl-C are kept
    assert not data.complete and len(data) % 100 == 0


@pytest.mark.slow
def test_a_second_writer_is_refused_and_nothing_is_lost(tmp_path):
    path = tmp_path / "d.h5"
    hold = tmp_path / "calls.hold"
    hold.touch()
    first = start(tmp_path, path, 0.0, 2000, 1)
    wait_for_calls(tmp_path, 3, first)  # the first chunk is written; the first writer waits in its second
    # the same call in a second process: refused, naming the path and the first process
    second = subprocess.run([*first.args[:5], "2000", "1"], env=environment(tmp_path), text=True, capture_output=True,
                            timeout=60)
    assert second.returncode != 0 and "done" not in second.stdout
    assert f"{path} is being written by process {first.pid}" in second.stderr, second.stderr
    # a reader is told the file is being written, not that it is corrupt
    try:
        partial = gm.Dataset(path)
    except locking.Busy as err:  # HDF5's own lock keeps readers out while it is open for writing
        assert f"{path} is being written by process {first.pid} (goldmine.simulate)" in str(err)
    else:
        assert not partial.complete and len(partial) == 100
    hold.unlink()
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0 and "done" in stdout, stderr
    sim = GaltonBoard()
    sim.block_size = 100
    whole = gm.simulate(sim, 2000, tmp_path / "whole.h5", seed=5, chunk_size=100, progress=False)
    assert gm.Dataset(path).complete
    expected, got = arrays(whole.path), arrays(path)
    assert expected.keys() == got.keys()
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    assert not locking.lock_path(path).exists()  # the lock file goes with the writer


def test_a_held_lock_is_named_and_released(tmp_path):
    path = tmp_path / "d.h5"
    sim = GaltonBoard()
    sim.block_size = 100
    with locking.exclusive(path, "a test"):
        with pytest.raises(locking.Busy, match=rf"{path} is being written by process {os.getpid()} \(a test\)"):
            gm.simulate(sim, 200, path, progress=False)
        assert not path.exists()
    assert len(gm.simulate(sim, 200, path, progress=False)) == 200
    # a lock file left by a killed writer holds no lock: the next writer takes it
    locking.lock_path(path).write_text("999999\n")
    assert len(gm.simulate(sim, 400, tmp_path / "e.h5", progress=False)) == 400
    with locking.exclusive(path, "again"):
        pass
    assert not locking.lock_path(path).exists()


UNGUARDED = textwrap.dedent(
    """
    import sys
    import goldmine as gm
    from goldmine.simulators import GaltonBoard

    data = gm.simulate(GaltonBoard(), 200, sys.argv[1], workers=2, progress=False)
    print(len(data))
    """
)


def test_a_script_without_the_main_guard_runs_in_one_process(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "d.h5")], env=environment(tmp_path), text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["200"], done.stderr
    assert "bootstrapping" not in done.stderr and "BrokenProcessPool" not in done.stderr
    assert 'outside `if __name__ == "__main__":`' in done.stderr and f"{script}:6" in done.stderr, done.stderr


MISSED = textwrap.dedent(
    """\
    import sys
    import goldmine as gm
    import goldmine.executor
    from goldmine.simulators import GaltonBoard

    goldmine.executor.unguarded_main_call = lambda: None  # as if the static check missed this script
    gm.simulate(GaltonBoard(), 200, sys.argv[1], workers=2, progress=False)
    """
)


@pytest.mark.slow
def test_a_missed_guard_ends_in_one_line_per_worker_not_the_bootstrapping_traceback(tmp_path):
    script = tmp_path / "missed.py"
    script.write_text(MISSED)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "d.h5")], env=environment(tmp_path), text=True,
                          capture_output=True, timeout=120)
    assert done.returncode != 0
    assert "bootstrapping phase" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    # each worker says it in one line, and the calling process's error names the guard among the causes
    assert lines[0].startswith("goldmine.simulate: the main script starts worker processes at its top level"), lines
    assert 'put the call under `if __name__ == "__main__":`' in lines[0]
    assert lines[-1].startswith("RuntimeError: a worker process ended abruptly") and '__name__ == "__main__"' in lines[-1]


def test_non_finite_gold_counts_as_invalid(tmp_path, monkeypatch):
    real = goldmine.data.augment

    def broken(sim, theta, draws, reference):  # a simulator whose score is NaN on every 7th run
        gold = real(sim, theta, draws, reference)
        gold["score"][::7] = float("nan")
        return gold

    monkeypatch.setattr(goldmine.data, "augment", broken)
    sim = GaltonBoard()
    sim.block_size = 100
    data = gm.simulate(sim, 1000, tmp_path / "d.h5", progress=False)
    everything = data.tensors(drop_invalid=False)
    bad = ~torch.isfinite(everything["score"]).all(1)
    assert data.invalid_rows == int(bad.sum()) > 0
    assert f"{data.invalid_rows} rows with non-finite x or gold" in repr(data)
    # methods that read the score skip those rows; methods that do not, keep them
    assert len(data.tensors(["x", "theta", "score"])["x"]) == 1000 - data.invalid_rows
    assert len(data.tensors(["x", "theta", "label"])["x"]) == 1000


def test_a_complete_data_set_is_reused_read_only(tmp_path, monkeypatch):
    sim = GaltonBoard()
    sim.block_size = 100
    path = tmp_path / "d.h5"
    first = gm.simulate(sim, 400, path, progress=False)
    modes = []
    real = h5py.File

    def spy(name, mode="r", *args, **kwargs):
        modes.append(mode)
        return real(name, mode, *args, **kwargs)

    def no_lock(*args, **kwargs):
        raise AssertionError("a complete file needs no write lock")

    monkeypatch.setattr(goldmine.data.h5py, "File", spy)
    monkeypatch.setattr(goldmine.data.locking, "exclusive", no_lock)
    path.chmod(0o444)  # a read-only file (root writes it anyway: the modes above are the check)
    again = gm.simulate(sim, 400, path, progress=False)
    assert set(modes) == {"r"} and len(again) == len(first) == 400
