"""One way to run independent, seeded tasks: in this process, in local processes, or on a Dask cluster.

`map_in_order(fn, items, shared, workers=k, cluster=c)` yields fn(*shared, item) for every item in
the order of `items`, keeping at most a few tasks ahead of the consumer so that memory stays bounded.
A task draws its random numbers from `seeded_generator(seed, index)`, a function of the seed and the
task's own index alone, so its result does not depend on where or in which order it runs: the same
seed gives bit-identical results with one process, k processes or a cluster. `goldmine.simulate` and
the Neyman toys of `goldmine.inference` both run this way.

Local workers are spawned processes (a fork would copy torch's thread pools and locks in whatever
state they are), which receive `shared` once when they start. Each worker
  - runs torch on one thread, so that k workers do not compete for the cores;
  - ignores Ctrl-C (it starts with SIGINT blocked, and ignores it from its first task on): the
    parent stops the workers and raises KeyboardInterrupt once;
  - exits as soon as its parent dies, even by kill -9: a watchdog thread waits on the pipe that only
    the parent holds open (multiprocessing's parent sentinel, which reads end-of-file when the parent
    is gone) and also checks the parent's pid.
Starting a worker takes seconds (it imports torch; tens of seconds on a loaded machine), so until the
first one has started this process runs the tasks itself, in order, on one torch thread as the workers
do; the workers take the tasks left from then on. When every result is in, the idle workers exit
cleanly (ending them at once instead leaves their queues' semaphores to the resource tracker, which
warns of a leak at exit).
A script whose top level starts workers outside `if __name__ == "__main__":` would start them again
in every worker (spawned processes import the main script); that is caught before any process starts,
and the work runs in this process with a warning instead.

Dask is optional (`pip install goldmine[cluster]`) and imported only when `cluster=` is given.
"""

from __future__ import annotations

import ast
import collections
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import wait

import numpy as np
import torch

__all__ = ["map_in_order", "seeded_generator", "one_thread"]

#: tasks kept in flight per worker (or per Dask thread) ahead of the consumer
AHEAD_PER_WORKER = 2
#: seconds between the watchdog's checks of the parent's pid (the sentinel wakes it at once)
WATCHDOG_PERIOD = 1.0
#: what to do when a spawned worker, importing the main script, would start workers again
GUARD_FIX = ("the main script starts worker processes at its top level, which every worker imports again: put the "
             "call under `if __name__ == \"__main__\":` (or use workers=1).")


def seeded_generator(seed: int, index: int) -> torch.Generator:
    """The generator of task `index` of a run with seed `seed`: a function of both alone."""
    state = np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


@contextmanager
def one_thread():
    """Runs torch on one intra-op thread inside the block, as the workers do, and restores the count after.

    Simulation works on many small tensors, where waking a thread pool costs more than it saves and,
    on a busy machine, a parallel kernel waits for threads the OS has not scheduled; in-process
    chunks of `goldmine.simulate` run this way (the same arithmetic as in the workers).
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def map_in_order(fn: Callable, items: Iterable, shared: tuple = (), *, workers: int = 1, cluster=None,
                 what: str = "goldmine") -> Iterator:
    """Yields fn(*shared, item) for every item, in the order of `items`.

    Arguments:
        fn: a module-level function (local workers and Dask import it by name).
        items: the tasks' own arguments, one per task.
        shared: arguments common to every task, sent to each worker once.
        workers: local processes; 1 runs the tasks here, one after the other.
        cluster: a Dask scheduler address ("tcp://host:port") or a `dask.distributed.Client`; then
            `workers` is ignored.
        what: the caller's name, for messages.

    Close the generator (or exhaust it) to release the workers; an exception, KeyboardInterrupt or
    closing it early stops the workers and cancels the tasks not yet done.
    """
    items = list(items)
    if not items:
        return iter(())
    if cluster is not None:
        return _on_dask(fn, items, shared, cluster)
    if workers > 1:
        refuse_while_bootstrapping(what)
        where = unguarded_main_call()
        if where is None:
            return _on_processes(fn, items, shared, workers)
        warnings.warn(
            f"{what}: workers={workers} starts new Python processes, and each imports the main script, whose "
            f"top level makes this call ({where}) outside `if __name__ == \"__main__\":` and would make it "
            "again. Running in this process instead; put the call under that guard to use workers.",
            RuntimeWarning, stacklevel=_caller_level(),
        )
    return (fn(*shared, item) for item in items)


# -- local processes ----------------------------------------------------------------------------


def _on_processes(fn, items, shared, workers: int) -> Iterator:
    with _sigint_blocked():
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker, initargs=(os.getpid(), fn, shared))

    def submit(*args):
        with _sigint_blocked():  # submit starts the workers
            return pool.submit(*args)

    try:
        started = [submit(_started) for _ in range(workers)]  # starts the workers; each probe ends once one has
        done = 0
        while done < len(items) and not any(probe.done() for probe in started):  # until a worker has started,
            with one_thread():  # this process works, on one thread as they do (importing torch takes them seconds)
                result = fn(*shared, items[done])
            done += 1
            yield result
        yield from _in_order(submit, _run_task, items[done:], AHEAD_PER_WORKER * workers)
        for probe in started:
            probe.result()  # a worker that could not start is reported even when this process did every task
    except BrokenProcessPool:
        _stop(pool)
        raise RuntimeError(
            "a worker process ended abruptly: it was killed (out of memory?), it could not rebuild the task "
            "(a simulator or model class defined in an interactive session or with `python -c` cannot be sent "
            "to spawned processes: define it in a module), or the main script starts workers outside "
            "`if __name__ == \"__main__\":` (put the call under it). Any error of the worker is printed above; "
            "workers=1 runs the task in this process."
        ) from None
    except BaseException:  # KeyboardInterrupt, an error of a task or of the consumer, or closed early
        _stop(pool)
        raise
    pool.shutdown(wait=True)  # every result is in: a clean exit, so that no semaphore is left to the resource tracker


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancels the tasks not started and ends the workers now, without waiting for the running ones."""
    terminate = getattr(pool, "terminate_workers", None)  # public from Python 3.14
    if terminate is not None:
        terminate()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown forgets them
    for process in processes:
        if process.is_alive():
            process.terminate()
    manager = getattr(pool, "_executor_manager_thread", None)  # it joins the workers of a broken pool
    pool.shutdown(wait=False, cancel_futures=True)
    if manager is not None:
        manager.join(timeout=10)
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():  # SIGTERM not acted on within 5 s (a loaded machine): SIGKILL cannot be ignored
            process.kill()
            process.join(timeout=5)


@contextmanager
def _sigint_blocked():
    """Blocks SIGINT in this thread, so that processes started meanwhile inherit the block and a
    Ctrl-C during their start (importing torch takes seconds) leaves them alone; a Ctrl-C meanwhile
    reaches this process when the block ends."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


# what a worker process keeps from its start: the function and its shared arguments
_task: tuple[Callable, tuple] | None = None


def _start_worker(parent: int, fn: Callable, shared: tuple) -> None:
    """Runs once in each worker process, before its first task."""
    global _task
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="goldmine-watchdog", daemon=True).start()
    _task = (fn, shared)


def _started() -> None:
    """A task that does nothing: its end shows that a worker has started."""


def _run_task(item):
    fn, shared = _task
    return fn(*shared, item)


def _watch_parent(parent: int) -> None:
    """Ends this worker process when its parent is gone (exit status 1, no cleanup: nobody is left to read)."""
    handle = multiprocessing.parent_process()
    sentinel = None if handle is None else handle.sentinel
    while True:
        if sentinel is not None:
            gone = bool(wait([sentinel], timeout=WATCHDOG_PERIOD))
        else:
            threading.Event().wait(WATCHDOG_PERIOD)
            gone = False
        if gone or os.getppid() != parent:
            os._exit(1)


# -- a Dask cluster -----------------------------------------------------------------------------


def _on_dask(fn, items, shared, cluster) -> Iterator:
    try:
        from dask.distributed import Client
    except ImportError:
        raise ImportError("cluster= runs the tasks on a Dask cluster, which needs dask.distributed: "
                          "pip install goldmine[cluster]") from None
    client = Client(cluster) if isinstance(cluster, str) else cluster
    try:
        ahead = AHEAD_PER_WORKER * max(1, sum(client.nthreads().values()))
        [common] = client.scatter([shared], broadcast=True)
        yield from _in_order(client.submit, _run_dask_task, items, ahead, fn, common, pure=False)
    finally:
        if isinstance(cluster, str):
            client.close()


def _run_dask_task(fn, shared, item):
    torch.set_num_threads(1)
    return fn(*shared, item)


# -- the order ----------------------------------------------------------------------------------


def _in_order(submit, task, items, ahead: int, *args, **kwargs) -> Iterator:
    """Submits submit(task, *args, item, **kwargs) at most `ahead` at a time; yields the results in
    order. Leaving early (an error, or the consumer closing the generator) cancels the rest."""
    todo = iter(items)
    pending = collections.deque(submit(task, *args, item, **kwargs) for item in itertools.islice(todo, ahead))
    try:
        while pending:
            result = pending[0].result()
            pending.popleft()
            pending.extend(submit(task, *args, item, **kwargs) for item in itertools.islice(todo, 1))
            yield result
    finally:
        for future in pending:
            future.cancel()


# -- the __main__ guard -------------------------------------------------------------------------


def refuse_while_bootstrapping(what: str = "goldmine") -> None:
    """Ends this process with one line naming the fix when it is a spawned worker still importing the main
    script (multiprocessing's bootstrapping phase) and that import has reached a goldmine call: the script
    makes the call outside `if __name__ == "__main__":` and `unguarded_main_call` did not see it. Without this,
    the worker would fail on the file lock or with Python's long bootstrapping traceback."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise SystemExit(f"{what}: {GUARD_FIX}")


def unguarded_main_call() -> str | None:
    """"file:line" when the main script's top level, outside `if __name__ == "__main__":`, is
    running this call (spawned workers import the main script and would run it again), else None."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not path or not str(path).endswith(".py"):
        return None  # an interactive session or `python -c`: workers do not run the main script
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_globals is vars(main) and frame.f_code.co_name == "<module>"):
        frame = frame.f_back
    if frame is None:
        return None
    line = frame.f_lineno
    text = remember_main_source()
    if text is None:
        return None
    try:
        tree = ast.parse(text, path)
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_test(node.test) and node.body:
            if node.body[0].lineno <= line <= (node.body[-1].end_lineno or node.body[-1].lineno):
                return None
    return f"{path}:{line}"


def remember_main_source() -> str | None:
    """The main script's text, read once and kept (from `import goldmine` on): the running code is what was
    read at start, so an edit of the file while the script runs must not change what the guard check sees."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if not path or not str(path).endswith(".py"):
        return None
    if str(path) not in _MAIN_SOURCES:
        try:
            with open(path, encoding="utf-8") as source:
                _MAIN_SOURCES[str(path)] = source.read()
        except (OSError, ValueError):
            return None
    return _MAIN_SOURCES[str(path)]


_MAIN_SOURCES: dict[str, str] = {}
remember_main_source()


def _caller_level() -> int:
    """The stack level, for warnings.warn in the function that calls this, of the first caller outside goldmine."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _is_main_test(test: ast.expr) -> bool:
    """Whether `test` is `__name__ == "__main__"` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    texts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(texts) == 1
