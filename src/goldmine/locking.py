"""An exclusive OS lock on a file that one process writes: a second writer is refused, not queued.

The lock is held on a sibling file `<name>.lock` (the data file itself is created under another name
and renamed into place, so it cannot carry the lock from the start), with flock(2) on POSIX and
msvcrt.locking on Windows. The kernel releases it when the holder ends, even by kill -9, so a lock
file left behind by a killed run never blocks the next one. The holder writes its pid and its name into
the lock file, so that a refused caller can name it, and removes the file when done.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

__all__ = ["Busy", "exclusive", "holder"]


class Busy(OSError):
    """The file is being written by another process (or by another call in this one)."""


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of `path`: `<path>.lock`."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


@contextmanager
def exclusive(path: str | os.PathLike, what: str):
    """Holds the exclusive lock of `path` for the body; raises `Busy` naming the holder if another has it.

    Arguments:
        path: the file to be written.
        what: the writer, for the refusal message (e.g. "goldmine.simulate").
    """
    name = lock_path(path)
    while True:
        fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(fd)
        except OSError:
            owner = _owner(fd)
            os.close(fd)
            raise Busy(f"{path} is being written by {owner}; wait for it to finish, or write to another path.") from None
        if _still_named(fd, name):
            break
        os.close(fd)  # the previous holder removed this lock file after we opened it: take the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {what}".encode())
        yield
    finally:
        try:
            os.unlink(name)  # while still holding it; a waiter on the old file sees it is no longer named
        except OSError:
            pass  # Windows keeps an open file; the next writer takes the lock on it
        os.close(fd)


def holder(path: str | os.PathLike) -> str | None:
    """"process <pid> (<what>)" when a writer holds the lock of `path`, else None."""
    if fcntl is None:
        return None
    try:
        fd = os.open(lock_path(path), os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _owner(fd)
    else:
        return None
    finally:
        os.close(fd)


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)


def _owner(fd: int) -> str:
    """"process <pid> (<what>)" from the lock file, as far as the holder has written it."""
    try:
        pid, _, what = os.pread(fd, 1024, 0).decode().partition(" ") if hasattr(os, "pread") else ("", "", "")
    except (OSError, UnicodeDecodeError):
        pid, what = "", ""
    if not pid.isdigit():
        return "another process"
    return f"process {pid}" + (f" ({what})" if what else "")


def _still_named(fd: int, name: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(name)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
