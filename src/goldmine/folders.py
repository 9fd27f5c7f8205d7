"""Folders that goldmine owns: the marker it writes into them, and a model folder replaced whole.

goldmine removes or overwrites only what it wrote itself. A folder it writes into (a saved model,
the output of a study) carries a marker, the file `.goldmine` holding
`{"written_by": "goldmine", "kind": KIND}`. A folder that exists, is not empty and carries no marker
of the kind wanted is refused, whatever files it holds: a file name such as config.json says nothing
about who wrote it.

`claim(folder, kind)` makes a folder goldmine's (creating or marking it) or refuses it; `replacing`
writes a new model into a fresh hidden sibling folder and swaps it in only once it is complete,
removing afterwards only the files of the old model that goldmine wrote.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import warnings
from pathlib import Path

MARKER = ".goldmine"
__all__ = ["MARKER", "claim", "foreign", "mark", "marked", "marker", "replacing", "writable"]


def mark(folder, kind: str, **extra) -> Path:
    """Writes the marker of `kind` (with `extra` fields) into `folder` (which exists)."""
    path = Path(folder) / MARKER
    path.write_text(json.dumps({"written_by": "goldmine", "kind": kind, **extra}) + "\n")
    return path


def marker(folder) -> dict:
    """The marker of `folder`, or {} when it carries none of goldmine's."""
    try:
        record = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) and record.get("written_by") == "goldmine" else {}


def marked(folder, kind: str) -> bool:
    """Whether `folder` carries goldmine's marker of `kind`."""
    return marker(folder).get("kind") == kind


def foreign(folder, known) -> list[str]:
    """The entries of `folder` that are neither the marker nor among the file names `known`."""
    return sorted(p.name for p in Path(folder).iterdir()
                  if p.name != MARKER and not (p.name in known and p.is_file() and not p.is_symlink()))


def writable(path) -> Path:
    """`path` resolved (so `inner/..` is the folder it means), once its nearest existing ancestor is a
    folder this process may write into.

    Raises:
        NotADirectoryError: a file stands where a folder on the way to `path` should be.
        PermissionError: that folder is not writable.
    """
    path = Path(path).resolve()
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(f"cannot write {path}: {ancestor} is a file, not a folder; choose another output.")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {path}: the folder {ancestor} is not writable; choose another output.")
    return path


def _refuse(folder: Path, kind: str, fix: str) -> FileExistsError:
    if not folder.is_dir():
        return FileExistsError(f"{folder} is a file, not a folder: {fix}.")
    other = marker(folder).get("kind")
    if other:
        return FileExistsError(f"{folder} is a goldmine {other}, not a {kind}: {fix}.")
    return FileExistsError(f"{folder} is not empty and is not a goldmine {kind} (it has no {MARKER} marker "
                           f"that goldmine writes): goldmine writes only into folders it created; {fix}.")


def claim(folder, kind: str, fix: str = "choose another output folder") -> Path:
    """The folder `folder`, resolved, created or marked as goldmine's `kind`; an empty folder is marked.

    Raises:
        FileExistsError: `folder` is a file, or a folder that is not empty and carries no marker of `kind`
            (`fix` says what to do).
        NotADirectoryError, PermissionError: it cannot be written (see `writable`).
    """
    folder = writable(folder)
    if folder.exists() and not (folder.is_dir() and (marked(folder, kind) or not any(folder.iterdir()))):
        raise _refuse(folder, kind, fix)
    folder.mkdir(parents=True, exist_ok=True)
    if not marked(folder, kind):
        mark(folder, kind)
    return folder


def check_replaceable(folder: Path, kind: str, known) -> None:
    """Raises a FileExistsError unless `folder` is absent, empty, or marked `kind` and holding only `known` files."""
    if not folder.exists():
        return
    fix = "choose another output folder"
    if not folder.is_dir() or not (marked(folder, kind) or not any(folder.iterdir())):
        raise _refuse(folder, kind, fix)
    others = foreign(folder, known)
    if others and marked(folder, kind):
        raise FileExistsError(f"{folder} is a goldmine {kind} that also holds {', '.join(others[:5])}"
                              f"{', ...' if len(others) > 5 else ''}, which goldmine did not write: move "
                              f"{'it' if len(others) == 1 else 'them'} away, or {fix}.")


@contextlib.contextmanager
def replacing(folder, kind: str, known, last: str | None = None):
    """Yields a fresh hidden folder beside `folder` to write into; on success it becomes `folder`.

    Before anything is written, `folder` must be absent, empty, or marked `kind` holding only the file
    names `known`, and its parent writable; the checks happen on entering, so a long computation inside
    the block fails early. On success the new folder is swapped in: into an empty folder its files move
    (`last` moved last, so the folder looks finished only once complete); a previous folder is renamed
    away, the new one renamed in, and the old one's `known` files and marker removed. On an error the
    hidden folder and any parent folders created here are removed and `folder` is left as it was.

    The hidden folder's marker names this process; one left behind by a process that was killed (on this
    machine, and no longer running) is removed by the next call for the same `folder`.

    Raises:
        FileExistsError, NotADirectoryError, PermissionError: see `claim` and `writable`.
    """
    folder = writable(folder)
    check_replaceable(folder, kind, known)
    created = []
    parent = folder.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    partial = folder.with_name(f".{folder.name}.{secrets.token_hex(4)}.partial")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        partial.mkdir()  # a fresh name, created here: nothing of anyone else's is in it
        mark(partial, kind, pid=os.getpid(), host=socket.gethostname())
    except OSError as err:
        _remove_empty(created)
        raise PermissionError(f"cannot write {folder}: {err}; choose another output folder.") from None
    _remove_abandoned(folder, kind, known, partial)
    try:
        yield partial
        check_replaceable(folder, kind, known)  # again: the block may have run for hours
        mark(partial, kind)
        if not folder.exists():
            os.rename(partial, folder)
        elif not any(folder.iterdir()):
            names = sorted(p.name for p in partial.iterdir())
            for name in sorted(names, key=lambda n: (n == last, n != MARKER)):
                os.replace(partial / name, folder / name)
            partial.rmdir()
        else:
            old = folder.with_name(f".{folder.name}.{secrets.token_hex(4)}.old")
            os.rename(folder, old)
            try:
                os.rename(partial, folder)
            except BaseException:
                os.rename(old, folder)  # the previous model back in its place
                raise
            _remove_owned(old, kind, known)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # created in this call: goldmine's own
        _remove_empty(created)
        raise


def _remove_owned(old: Path, kind: str, known) -> None:
    """Removes the `known` files and the marker of a replaced folder, then the folder if nothing else is left;
    warns (and leaves it) when that fails."""
    try:
        if marked(old, kind):
            for name in known:
                path = old / name
                if path.is_file() and not path.is_symlink():
                    path.unlink()
            (old / MARKER).unlink()
        old.rmdir()
    except OSError as err:
        warnings.warn(f"{old} (a replaced {kind}) was left in place: {err}.", stacklevel=3)


def _remove_abandoned(folder: Path, kind: str, known, mine: Path) -> None:
    """Removes the hidden folders that a killed process left beside `folder` (see `replacing`)."""
    if os.name != "posix":  # no harmless way to ask whether a process still runs
        return
    prefix, host = f".{folder.name}.", socket.gethostname()
    for path in folder.parent.iterdir():
        if path == mine or not (path.name.startswith(prefix) and path.name.endswith(".partial")):
            continue
        record = marker(path)
        if record.get("kind") != kind or record.get("host") != host or not isinstance(record.get("pid"), int):
            continue
        try:
            os.kill(record["pid"], 0)
        except ProcessLookupError:  # gone: nobody writes there any more (a kill may have left a .tmp file)
            _remove_owned(path, kind, [*known, *(f"{name}.tmp" for name in known)])
        except OSError:  # alive (another user's process) or unknown: leave it
            pass


def _remove_empty(folders: list[Path]) -> None:
    for path in folders:  # innermost first
        try:
            path.rmdir()
        except OSError:
            return
