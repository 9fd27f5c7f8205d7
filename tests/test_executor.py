"""goldmine.executor: results in order from local processes, errors stop the workers, a worker's
death is named, the __main__ guard check, and Dask as an optional extra."""

import multiprocessing
import os
import sys
import textwrap

import pytest
import torch

from goldmine import executor
from goldmine.executor import map_in_order, seeded_generator

TASKS = textwrap.dedent(
    """
    import os, pathlib, time

    STARTED = pathlib.Path(__file__).with_name("a-worker-started")
    WORKER = os.getpid() != PARENT  # PARENT: the test's process, written above by the fixture
    if WORKER:  # a worker imports this module as it starts
        STARTED.touch()

    def until_a_worker_starts():  # the calling process runs tasks itself until then
        while not WORKER and not STARTED.exists():
            time.sleep(0.01)

    def slow_square(delay, item):
        until_a_worker_starts()
        time.sleep(delay * (5 - item % 5))  # early items finish last
        return item * item, os.getpid()

    def fail_at(bad, item):
        if item == bad:
            raise ValueError(f"task {item} failed")
        return item

    def die(item):
        until_a_worker_starts()
        if WORKER:
            os._exit(3)
        time.sleep(0.05)
    """
)


@pytest.fixture
def tasks(tmp_path, monkeypatch):
    (tmp_path / "executor_tasks.py").write_text(f"PARENT = {os.getpid()}\n" + TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers get this process's sys.path
    import executor_tasks

    yield executor_tasks
    sys.modules.pop("executor_tasks", None)


def test_seeded_generator_depends_on_the_seed_and_the_index_alone():
    draw = [torch.rand(3, generator=seeded_generator(s, i)) for s, i in [(0, 0), (0, 0), (0, 1), (1, 0)]]
    assert torch.equal(draw[0], draw[1])
    assert not torch.equal(draw[0], draw[2]) and not torch.equal(draw[0], draw[3])


@pytest.mark.slow
def test_local_workers_keep_the_order_and_stop_on_an_error(tasks):
    results = list(map_in_order(tasks.slow_square, range(20), (0.05,), workers=2))
    assert [r for r, _ in results] == [i * i for i in range(20)]
    pids = [pid for _, pid in results]
    assert pids[0] == os.getpid() and set(pids) - {os.getpid()}  # here until a worker started, then the workers
    assert multiprocessing.active_children() == []
    with pytest.raises(ValueError, match="task 3 failed"):
        list(map_in_order(tasks.fail_at, range(50), (3,), workers=2))
    assert multiprocessing.active_children() == []  # the workers were stopped, not left to finish


@pytest.mark.slow
def test_a_worker_that_dies_is_named(tasks):
    with pytest.raises(RuntimeError, match="a worker process ended abruptly"):
        list(map_in_order(tasks.die, range(50), workers=2))
    assert multiprocessing.active_children() == []


def test_in_process_and_an_empty_list():
    assert list(map_in_order(pow, [1, 2, 3], (2,))) == [2, 4, 8]
    assert list(map_in_order(pow, [], (2,), workers=4)) == []


def test_the_guard_check_sees_the_guard(tmp_path, monkeypatch):
    script = tmp_path / "script.py"
    script.write_text('import os\n\nif __name__ == "__main__":\n    x = 1\nelse:\n    y = 2\n')
    main = type(sys)("__main__")
    main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main)

    def at(line):  # runs the check as if called from the main script's top level at `line`
        code = compile("\n" * (line - 1) + "where = check()", str(script), "exec")
        namespace = vars(main)
        namespace["check"] = executor.unguarded_main_call
        exec(code, namespace)
        return namespace["where"]

    assert at(4) is None  # inside `if __name__ == "__main__":`
    assert at(1) == f"{script}:1" and at(6) == f"{script}:6"  # outside it, and in its else branch
    # the script edited while it runs (the guard gone): the check keeps the text the running code came from
    script.write_text("import os\n\nx = 1\n")
    assert at(4) is None


def test_a_cluster_without_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # as if dask were not installed
    with pytest.raises(ImportError, match=r"pip install goldmine\[cluster\]"):
        list(map_in_order(pow, [1], (2,), cluster="tcp://localhost:8786"))

