"""Training data sets: simulated, mined and written chunk by chunk to one HDF5 file.

Row layout. Rows come in pairs that share one θ_i ~ prior: row 2i is drawn at θ_i
(label 0), row 2i+1 at θ_ref (label 1). Every row stores θ_i, x, its label and, when the simulator
has gold, log_r = log r(x, z|θ_i, θ_ref), score = t(x, z|θ_i) and score_ref = t(x, z|θ_ref).
Every method reads the rows it needs from the same file, so a budget means the same for all; the
table of which method reads which rows and fields is in docs/architecture.md.

A second layout, `simulate(..., layout="prior")`, spends every run at θ ~ prior (label 0, no run at
θ_ref): for the methods that never read a run at θ_ref (npe, nre, nres, nle, scandal; `layout_for`
in `goldmine.estimators.registry` chooses the layout from the methods), which then learn from every
run. Its header records "layout": "prior"; a file without the key has the pairs above.

Reproducibility. Rows are drawn in blocks of `sim.block_size` rows; block b is drawn from a
generator seeded by (seed, b) alone. A chunk, the unit of work and of writing, is a run of whole
blocks, so the same seed gives bit-identical arrays whatever the number of workers, the chunk size
or the backend. A killed run leaves every completed chunk in the file (`rows_done` is updated and
flushed after each one) and the same call resumes after the last of them.

Safety. Chunks run through `goldmine.executor` (here, in local processes that die with their parent,
or on a Dask cluster). While it writes, `simulate` holds an OS lock on the file (`goldmine.locking`),
so a second writer on the same path is refused rather than interleaved. A row whose x or gold is NaN
or infinite is counted as invalid, and reads skip it when they use the non-finite field; an infinite
log_r is valid (`valid_values`): the joint ratio of a run outside the support of θ or of θ_ref is 0 or ∞.
"""

from __future__ import annotations

import json
import math
import os
import threading
from contextlib import closing
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from . import checks, locking
from .executor import map_in_order, one_thread, refuse_while_bootstrapping, seeded_generator
from .mining import augment, reference_of
from .simulators.base import Simulator, draw_prior, seed_from, shape_of_x
from .simulators.describe import describe

FORMAT_VERSION = 1
#: the data-set formats this goldmine reads: 1 (x a vector, (n, x_dim)) and 2 (x of any shape (n, *x_shape),
#: the header's x_shape); a vector x is still written in format 1, so that such files stay as they were
FORMATS = (1, 2)
GOLD_FIELDS = ("log_r", "score", "score_ref")
BASE_FIELDS = ("theta", "x", "label")


# -- drawing one chunk (runs in a worker) ------------------------------------------------------
#
# A block's fields come as tensors, each in one or two parts (the rows at θ_i and those at θ_ref), and are
# written straight into the chunk's arrays, allocated once: one copy per value, with no stacking of the
# parts and no concatenation of the blocks.


def _pair_fields(sim: Simulator, rows: int, generator: torch.Generator, reference: Tensor) -> dict[str, tuple]:
    """A block of `rows` (even) rows in the layout of this module's docstring, each field as (its rows at θ_i,
    its rows at θ_ref): rows 2i and 2i + 1 of the block."""
    pairs = rows // 2
    theta = draw_prior(sim.prior, pairs, seed=seed_from(generator))
    ref = reference.expand(pairs, -1)
    at_theta = sim.sample(theta, generator=generator)
    at_ref = sim.sample(ref, generator=generator)
    fields = {
        "theta": (theta, theta),
        "label": (torch.zeros(pairs, dtype=torch.int8), torch.ones(pairs, dtype=torch.int8)),
        "x": (at_theta.x, at_ref.x),
    }
    if sim.has_gold:
        gold = augment(sim, at_theta, theta, reference), augment(sim, at_ref, theta, reference)
        fields.update({key: (gold[0][key], gold[1][key]) for key in gold[0]})
    return fields


def _prior_fields(sim: Simulator, rows: int, generator: torch.Generator, reference: Tensor) -> dict[str, tuple]:
    """A block of `rows` rows of the layout "prior", every run at its own θ ~ prior (label 0), each field in one part."""
    theta = draw_prior(sim.prior, rows, seed=seed_from(generator))
    draws = sim.sample(theta, generator=generator)
    fields = {"theta": (theta,), "label": (torch.zeros(rows, dtype=torch.int8),), "x": (draws.x,)}
    if sim.has_gold:
        fields.update({key: (value,) for key, value in augment(sim, draws, theta, reference).items()})
    return fields


def _assemble(blocks, rows: int) -> dict[str, np.ndarray]:
    """The numpy arrays of `rows` rows from the blocks' fields, in order; a field in k parts is interleaved,
    row k·i + j of a block holding row i of part j."""
    out, start = None, 0
    for fields in blocks:
        if out is None:
            out = {key: np.empty((rows, *parts[0].shape[1:]),
                                 dtype=np.result_type(*(p.detach().numpy().dtype for p in parts)))
                   for key, parts in fields.items()}
        size = sum(len(p) for p in fields["theta"])
        for key, parts in fields.items():
            k, into = len(parts), out[key][start : start + size]
            for j, part in enumerate(parts):
                part = np.ascontiguousarray(part.detach().numpy())
                if part.dtype == into.dtype:  # whole rows as opaque items: a strided copy of a few numbers a row is slow
                    _as_items(into)[j::k] = _as_items(part)
                else:
                    into[j::k] = part
        start += size
    if out is None or start != rows:
        raise ValueError(f"the blocks hold {start} rows, {rows} asked.")
    return out


def _as_items(a: np.ndarray) -> np.ndarray:
    """A C-contiguous array (n, ...) viewed as n opaque items, one row each, (n, 1)."""
    a = a.reshape(len(a), -1)
    return a.view(np.dtype((np.void, a.shape[1] * a.itemsize)))


def draw_block(sim: Simulator, rows: int, generator: torch.Generator, reference: Tensor) -> dict[str, np.ndarray]:
    """Draws `rows` (even) rows in the layout of this module's docstring, as numpy arrays."""
    return _assemble([_pair_fields(sim, rows, generator, reference)], rows)


def draw_prior_block(sim: Simulator, rows: int, generator: torch.Generator, reference: Tensor) -> dict[str, np.ndarray]:
    """Draws `rows` rows of the layout "prior": every run at its own θ ~ prior (label 0), as numpy arrays."""
    return _assemble([_prior_fields(sim, rows, generator, reference)], rows)


def _draw(fields, sim: Simulator, reference: Tensor, seed: int, blocks: list[tuple[int, int]]) -> dict[str, np.ndarray]:
    """The blocks [(index, rows), ...] of a chunk, block b from `seeded_generator(seed, b)`, in one set of
    arrays. Torch runs on one thread here, in a worker or in the calling process alike."""
    with one_thread():
        return _assemble((fields(sim, rows, seeded_generator(seed, b), reference) for b, rows in blocks),
                         sum(rows for _, rows in blocks))


def draw_prior_chunk(sim: Simulator, reference: Tensor, seed: int, blocks: list[tuple[int, int]]) -> dict[str, np.ndarray]:
    """`draw_chunk` for the layout "prior"."""
    return _draw(_prior_fields, sim, reference, seed, blocks)


#: the row layouts of a data set, and the function that draws a chunk of each
LAYOUTS = ("pairs", "prior")


def draw_chunk(sim: Simulator, reference: Tensor, seed: int, blocks: list[tuple[int, int]]) -> dict[str, np.ndarray]:
    """Draws the blocks [(index, rows), ...] of a chunk, block b from `seeded_generator(seed, b)`, as one set of
    numpy arrays. Torch runs on one thread here, in a worker or in the calling process alike."""
    return _draw(_pair_fields, sim, reference, seed, blocks)


# -- the file -----------------------------------------------------------------------------------


def _meta(sim: Simulator, n: int, seed: int, reference: Tensor) -> dict:
    x_shape = shape_of_x(sim)
    return {
        "format": FORMAT_VERSION if len(x_shape) == 1 else 2,
        **describe(sim),  # simulator, simulator_class, simulator_config
        "theta_dim": sim.theta_dim,
        "x_dim": sim.x_dim,
        **({} if len(x_shape) == 1 else {"x_shape": list(x_shape)}),
        "n": n,
        "seed": seed,
        "reference": reference.tolist(),
        "block_size": sim.block_size,
        "gold": sim.has_gold,
    }


def _open(path: Path, mode: str = "r") -> h5py.File:
    """Opens a goldmine data set; a folder, a device, a file locked by a writer and a corrupt file each get
    their own one-line error naming the file."""
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a data set: give the HDF5 file that goldmine.simulate "
                                "wrote.")
    if path.exists() and not path.is_file():
        raise ValueError(f"{path} is not a regular file (a device or a pipe): give the HDF5 file that "
                         "goldmine.simulate wrote.")
    try:
        f = h5py.File(path, mode)
    except FileNotFoundError:
        raise FileNotFoundError(f"no data set at {path}: create it with goldmine.simulate(sim, n, path=...).") from None
    except PermissionError:
        raise PermissionError(f"cannot {'read' if mode == 'r' else 'write'} {path}: permission denied.") from None
    except OSError as err:
        holder = locking.holder(path)
        if holder is not None:  # HDF5 refuses to open a file that another process is writing
            raise locking.Busy(f"{path} is being written by {holder}: wait for it to finish.") from None
        if "unable to lock file" in str(err):  # HDF5's own lock, taken by a writer that is not goldmine.simulate
            raise locking.Busy(f"{path} is locked by another process that has it open for writing: wait for it to "
                               "close the file.") from None
        if path.stat().st_size == 0:
            raise ValueError(f"{path} is empty (0 bytes), not a data set: delete it and run goldmine.simulate "
                             "again.") from None
        reason = " ".join(str(err).split())
        raise ValueError(
            f"{path} is not a readable HDF5 file ({reason}). It is corrupt or truncated; delete it "
            "and run goldmine.simulate again."
        ) from None
    if "goldmine" not in f.attrs:
        f.close()
        raise ValueError(f"{path} is an HDF5 file but not a goldmine data set (no 'goldmine' header).")
    return f


#: the header of a data set: each key and the check of its value
HEADER = {
    "simulator": lambda v: isinstance(v, str),
    "theta_dim": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
    "x_dim": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
    "n": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "reference": lambda v: isinstance(v, list) and all(isinstance(u, (int, float)) for u in v),
    "gold": lambda v: isinstance(v, bool),
}


def holds_x_dim(shape, x_dim: int) -> bool:
    """Whether a recorded x_shape (a data set's header, a saved estimator's config) is a non-empty list of
    positive integers with x_dim elements in all."""
    return (isinstance(shape, list) and bool(shape) and all(checks._is_int(d) and d >= 1 for d in shape)
            and math.prod(shape) == x_dim)


def _read_meta(f: h5py.File) -> dict:
    """The header of an open data set, checked: a ValueError naming the file and the key otherwise."""
    name = f.filename
    try:
        meta = json.loads(f.attrs["goldmine"])
    except (TypeError, ValueError):  # not text, or not JSON
        raise ValueError(f"{name} has a corrupt header (its 'goldmine' attribute is not JSON): simulate it "
                         "again.") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{name} has a corrupt header (a JSON {type(meta).__name__}, not an object): simulate it "
                         "again.")
    if meta.get("format") not in FORMATS:
        raise ValueError(
            f"{name} has data-set format {meta.get('format')}, this goldmine reads formats "
            f"{', '.join(map(str, FORMATS))}: simulate it again with this version."
        )
    for key, valid in HEADER.items():
        if key not in meta:
            raise ValueError(f"{name} has a corrupt header: it lacks {key!r}. Simulate it again.")
        if not valid(meta[key]):
            raise ValueError(f"{name} has a corrupt header: {key} = {meta[key]!r}. Simulate it again.")
    if meta.get("layout", "pairs") not in LAYOUTS:
        raise ValueError(f"{name} has a corrupt header: layout = {meta['layout']!r}. Simulate it again.")
    shape = meta.get("x_shape", [meta["x_dim"]])
    if not holds_x_dim(shape, meta["x_dim"]):
        raise ValueError(f"{name} has a corrupt header: x_shape = {shape!r} does not hold x_dim = {meta['x_dim']} "
                         "elements. Simulate it again.")
    if len(meta["reference"]) != meta["theta_dim"]:
        raise ValueError(f"{name} has a corrupt header: reference {meta['reference']} does not have theta_dim = "
                         f"{meta['theta_dim']} components. Simulate it again.")
    return meta


def _rows_done(f: h5py.File) -> int:
    """The rows written so far (the attribute rows_done), checked."""
    value = f.attrs.get("rows_done")
    if value is None or not np.issubdtype(np.asarray(value).dtype, np.integer) or int(value) < 0:
        raise ValueError(f"{f.filename} has a corrupt header: rows_done = {value!r} (the rows written) is "
                         "missing or not a count. Simulate it again.")
    return int(value)


def _check_fields(f: h5py.File, meta: dict, rows: int) -> tuple[str, ...]:
    """The stored fields, checked against the header: present (theta, x, label), with the header's widths and
    at least `rows` rows."""
    theta_dim, x_dim = meta["theta_dim"], meta["x_dim"]
    shapes = {"theta": (theta_dim,), "x": tuple(meta.get("x_shape", [x_dim])), "label": (), "log_r": (),
              "score": (theta_dim,), "score_ref": (theta_dim,)}
    for key in BASE_FIELDS:
        if key not in f:
            raise ValueError(f"{f.filename} is corrupt: it lacks the field {key!r}. Simulate it again.")
    fields = tuple(k for k in (*BASE_FIELDS, *GOLD_FIELDS) if k in f)
    for key in fields:
        item = f[key]
        if not isinstance(item, h5py.Dataset):
            raise ValueError(f"{f.filename} is corrupt: {key!r} is a group, not an array. Simulate it again.")
        if item.shape[1:] != shapes[key]:
            raise ValueError(f"{f.filename} is corrupt: field {key!r} has rows of shape {item.shape[1:]}, but its "
                             f"header says {shapes[key]} (theta_dim = {theta_dim}, x of shape {shapes['x']}). "
                             "Simulate it again.")
        if item.shape[0] < rows:
            raise ValueError(f"{f.filename} is truncated: field {key!r} holds fewer rows than its header says.")
    return fields


def _create(path: Path, meta: dict, first: dict[str, np.ndarray]) -> h5py.File:
    tmp = path.with_name(path.name + ".creating")
    f = h5py.File(tmp, "w")
    f.attrs["goldmine"] = json.dumps(meta)
    f.attrs["rows_done"] = 0
    f.attrs["invalid_rows"] = 0
    for key, arr in first.items():
        rows = max(1, min(8192, meta["n"]))
        if key == "x" and arr.ndim > 2:  # x with more axes (images, series): one row per chunk, read whole
            rows = 1
        f.create_dataset(key, shape=(0, *arr.shape[1:]), maxshape=(None, *arr.shape[1:]), dtype=arr.dtype,
                         chunks=(rows, *arr.shape[1:]))
    f.close()
    os.replace(tmp, path)  # the file appears whole, with its header, or not at all
    return h5py.File(path, "r+")


def valid_values(key: str, array: np.ndarray, rows: int) -> np.ndarray:
    """Which of the `rows` rows of one field are valid → (rows,) bool: finite, or for log_r not NaN.

    log r(x, z|θ, θ_ref) = ±∞ is a correct label, not a failure: a run drawn at θ outside the support of
    p(·|θ_ref) has r = ∞, one drawn at θ_ref outside that of p(·|θ) has r = 0 (a simulator whose support moves
    with θ, such as two_moons). The ratio losses read r only through sigmoid(−log r) or log r clipped to
    [−clip, clip], both finite there (`goldmine.losses`)."""
    flat = array.reshape(rows, -1)
    return ~np.isnan(flat).any(axis=1) if key == "log_r" else np.isfinite(flat).all(axis=1)


def invalid_rows(arrays: dict[str, np.ndarray], rows: int) -> int:
    """How many of the `rows` rows of `arrays` are invalid: x or its gold NaN or infinite (log_r: NaN only,
    `valid_values`).

    A finite sum of a whole field shows at once that every value is finite (a NaN or an infinity makes the sum
    NaN or infinite); the rows are looked at one by one only when some sum is not finite (a non-finite value, or
    finite values whose sum overflows).
    """
    keys = [k for k in ("x", *GOLD_FIELDS) if k in arrays]
    with np.errstate(over="ignore", invalid="ignore"):
        if all(not np.issubdtype(arrays[k].dtype, np.inexact) or np.isfinite(arrays[k].sum()) for k in keys):
            return 0
    bad = np.zeros(rows, dtype=bool)
    for key in keys:
        bad |= ~valid_values(key, arrays[key], rows)
    return int(bad.sum())


def _append(f: h5py.File, chunk: dict[str, np.ndarray]) -> None:
    done = int(f.attrs["rows_done"])
    rows = len(chunk["theta"])
    for key, arr in chunk.items():
        f[key].resize(done + rows, axis=0)
        f[key][done:] = arr
    f.attrs["invalid_rows"] = int(f.attrs.get("invalid_rows", 0)) + invalid_rows(chunk, rows)
    f.attrs["rows_done"] = done + rows
    f.flush()


def _check_resumable(path: Path, meta: dict) -> tuple[int, bool]:
    """Rows already in an existing file made by the same call, and whether it is complete; raises if
    it was another call's."""
    with _open(path) as f:
        old = _read_meta(f)
        done = _rows_done(f)
        complete = bool(f.attrs.get("complete", False))
    differ = [k for k in meta if old.get(k) != meta[k]]
    if differ:
        detail = ", ".join(f"{k}: file has {old.get(k)!r}, call has {meta[k]!r}" for k in differ)
        raise ValueError(
            f"{path} already holds a different data set ({detail}). Choose another path, or delete "
            "the file to simulate anew; the same call on the same path resumes or reuses it."
        )
    return done, complete


# -- simulate -----------------------------------------------------------------------------------


def simulate(
    sim: Simulator,
    n: int,
    path: str | os.PathLike,
    *,
    seed: int = 0,
    workers: int = 1,
    cluster=None,
    chunk_size: int | None = None,
    reference=None,
    progress: bool = True,
    layout: str = "pairs",
) -> "Dataset":
    """Simulates (and mines, when the simulator has gold) a training data set into one HDF5 file.

    Arguments:
        sim: the simulator.
        n: the number of rows (simulator runs), even: half at θ ~ prior, half at θ_ref.
        path: the HDF5 file. If it exists and was made by the same call (simulator, n, seed,
            reference), the call resumes it (or just opens it for reading when complete). While
            the call writes it holds the lock `<path>.lock`; another writer is refused.
        seed: the seed; the same seed gives bit-identical arrays for any workers or chunk_size.
        workers: local processes that simulate chunks in parallel (this process simulates until the first
            has started, which takes seconds).
        cluster: a Dask scheduler address ("tcp://host:port") or a `dask.distributed.Client`;
            chunks then run on that cluster and `workers` is ignored.
        chunk_size: rows per task and per write, rounded up to whole blocks of `sim.block_size`;
            by default a few chunks per worker, at most 16 blocks.
        reference: θ_ref; the simulator's own by default.
        progress: show a progress bar (rows done, rows per second).
        layout: "pairs" (the default): half the runs at θ ~ prior, half at θ_ref, in pairs that share a
            θ (every method can train on it); "prior": every run at θ ~ prior, for methods that read
            no run at θ_ref (npe, nre, nres, nle, scandal), which then learn from all n runs instead of
            n/2 (nle, scandal: instead of n/2 at one θ_ref). `goldmine.estimators.registry.layout_for(methods)`
            chooses it; a method that needs runs at θ_ref refuses a "prior" data set.

    Returns:
        The data set, opened.

    Raises:
        goldmine.locking.Busy (an OSError): another process (or call) is writing `path`.

    Example:
        >>> import goldmine as gm, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "galton.h5")
        >>> data = gm.simulate(gm.simulators.GaltonBoard(), 1000, path, progress=False)
        >>> len(data), data.fields
        (1000, ('theta', 'x', 'label', 'log_r', 'score', 'score_ref'))
    """
    if not isinstance(sim, Simulator):
        raise TypeError(f"sim must be a goldmine Simulator, got {type(sim).__name__}.")
    refuse_while_bootstrapping("goldmine.simulate")  # a worker re-running an unguarded script: one line, not the lock
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0 or n % 2:
        raise ValueError(f"n must be a positive even number of rows (half at θ, half at θ_ref); got {n!r}.")
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer; got {workers!r}.")
    if layout not in LAYOUTS:
        raise ValueError(f'layout must be "pairs" (runs at θ ~ prior and at θ_ref) or "prior" (every run at θ ~ '
                         f'prior); got {layout!r}.')
    n, path, ref = int(n), Path(path), reference_of(sim, reference)
    meta = _meta(sim, n, int(seed), ref)
    if layout != "pairs":  # files of the pairs layout keep the header they always had
        meta["layout"] = layout
    block = sim.block_size
    if block % 2:
        raise ValueError(f"{sim.name}.block_size must be even; got {block}.")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be positive; got {chunk_size}.")
    if path.exists() and _check_resumable(path, meta) == (n, True):
        return Dataset(path)  # complete: opened for reading only, so a read-only file is reused too
    with locking.exclusive(path, "goldmine.simulate"):  # a second writer is refused, not interleaved
        done = _check_resumable(path, meta)[0] if path.exists() else 0  # again: another call may have written
        if done % block and done != n:
            raise ValueError(f"{path} ends inside a block ({done} rows): delete it and simulate again.")
        first = -(-n // block) if done == n else done // block  # all rows done: only the mark is missing
        blocks = [(b, min(block, n - b * block)) for b in range(first, -(-n // block))]
        if chunk_size is None:
            per_chunk = max(1, min(16, len(blocks) // (4 * workers) or 1))
        else:
            per_chunk = -(-int(chunk_size) // block)
        chunks = [blocks[i : i + per_chunk] for i in range(0, len(blocks), per_chunk)]
        _write(path, meta, chunks, (sim, ref, int(seed)), workers, cluster,
               draw=draw_chunk if layout == "pairs" else draw_prior_chunk, bar=
               tqdm(total=n, initial=done, unit="rows", unit_scale=True, desc=f"simulate {sim.name}",
                    disable=not progress, dynamic_ncols=True))
    return Dataset(path)


def _write(path: Path, meta: dict, chunks: list, shared: tuple, workers: int, cluster, bar=None, *,
           draw=draw_chunk) -> None:
    """Draws the chunks and appends them in order, then marks the file complete."""
    f = h5py.File(path, "r+") if path.exists() else None
    bar.set_postfix_str(f"{meta['block_size']:,}-row blocks", refresh=False)  # why it moves in steps
    stop = threading.Event()  # the elapsed time ticks while a block is drawn, so a slow one shows it is alive
    threading.Thread(target=_tick, args=(bar, stop), name="goldmine-simulate-bar", daemon=True).start()
    shape = tuple(meta.get("x_shape", [meta["x_dim"]]))
    try:
        with closing(map_in_order(draw, chunks, shared, workers=workers, cluster=cluster,
                                  what="goldmine.simulate")) as results:
            for chunk in results:
                if chunk["x"].shape[1:] != shape:
                    raise ValueError(f"{meta['simulator']} returned x of shape {chunk['x'].shape}, but its x_shape "
                                     f"says rows of {shape}: make sample return x (n, *x_shape) and set x_shape "
                                     "(and x_dim) to the shape of one x.")
                if f is None:
                    f = _create(path, meta, chunk)
                _append(f, chunk)
                bar.update(len(chunk["theta"]))
        f.attrs["complete"] = True
    finally:
        stop.set()
        bar.close()
        if f is not None:
            f.close()


def _tick(bar, stop: threading.Event, period: float = 1.0) -> None:
    """Redraws the progress bar every `period` seconds until `stop` is set."""
    while not stop.wait(period):
        bar.refresh()


# -- reading ------------------------------------------------------------------------------------


class Dataset:
    """A goldmine data set in an HDF5 file, read in chunks so that it never has to fit in memory.

    Arguments:
        path: the HDF5 file written by `goldmine.simulate`.
        start, stop: a range of rows (a view on the file, as made by `split`).

    Attributes:
        simulator: the simulator's name; reference: θ_ref (theta_dim,); theta_dim, x_dim;
        fields: the stored fields; has_gold; complete: whether the simulation finished;
        invalid_rows: rows whose x or gold is NaN or infinite (reads skip them where they use those).
    """

    def __init__(self, path: str | os.PathLike, start: int = 0, stop: int | None = None):
        self.path = Path(path)
        with _open(self.path) as f:
            self.meta = _read_meta(f)
            rows = _rows_done(f)
            self.complete = bool(f.attrs.get("complete", False))
            self.invalid_rows = int(f.attrs.get("invalid_rows", 0))
            self.fields = _check_fields(f, self.meta, rows)
        stop = rows if stop is None else min(stop, rows)
        if not 0 <= start <= stop:
            raise ValueError(f"row range [{start}, {stop}) is not inside the {rows} rows of {self.path}.")
        self.start, self.stop, self.rows_in_file = start, stop, rows
        self.simulator = self.meta["simulator"]
        self.reference = torch.tensor(self.meta["reference"], dtype=torch.float64)
        self.theta_dim, self.x_dim = self.meta["theta_dim"], self.meta["x_dim"]
        #: the shape of one x: (x_dim,) for a vector, e.g. (1, 64, 64) for images
        self.x_shape = tuple(self.meta.get("x_shape", [self.x_dim]))
        self.has_gold = self.meta["gold"]
        #: "pairs" (runs at θ ~ prior and at θ_ref) or "prior" (every run at θ ~ prior): `simulate`'s layout
        self.layout = self.meta.get("layout", "pairs")

    def __len__(self) -> int:
        return self.stop - self.start

    def __repr__(self) -> str:
        state = "complete" if self.complete else f"incomplete: {self.meta['n']} rows asked"
        view = "" if (self.start, self.stop) == (0, self.rows_in_file) else f", rows [{self.start}, {self.stop})"
        return (
            f"Dataset('{self.path}': {len(self)} rows of {self.simulator}{view}, θ_ref={self.reference.tolist()}, "
            f"fields {', '.join(self.fields)}, {state}"
            + ("" if self.layout == "pairs" else f", layout {self.layout}: every run at θ ~ prior")
            + (f", {self.invalid_rows} rows with non-finite x or gold" if self.invalid_rows else "")
            + ")"
        )

    def require(self, *fields: str, method: str = "this method") -> None:
        """Raises a ValueError naming the missing fields and how to get them."""
        missing = [k for k in fields if k not in self.fields]
        if not missing:
            return
        from .estimators.registry import goldless_text  # the estimators import this module

        how = (
            "It was simulated from a black-box simulator, which yields no gold; use a method that needs "
            f"none ({goldless_text()}), or give the simulator a joint_log_prob and simulate again."
            if not self.has_gold
            else "Simulate it again with this version of goldmine."
        )
        raise ValueError(f"{method} needs the fields {missing}, which {self.path} lacks. {how}")

    def split(self, validation: float = 0.1) -> tuple["Dataset", "Dataset"]:
        """Splits off the last `validation` fraction of rows (whole pairs) as a validation set.

        Rows are independent draws, so a contiguous tail is a random sample of the same law.
        """
        checks.fraction(validation, "validation")
        cut = self.start + 2 * round(len(self) * (1 - validation) / 2)
        if cut <= self.start or cut >= self.stop:
            raise ValueError(f"{len(self)} rows are too few to split off a validation fraction of {validation}.")
        return Dataset(self.path, self.start, cut), Dataset(self.path, cut, self.stop)

    def _read(self, f: h5py.File, fields, lo: int, hi: int, label, dtype, drop_invalid) -> dict[str, Tensor]:
        arrays = {k: f[k][lo:hi] for k in fields}
        keep = np.ones(hi - lo, dtype=bool)
        if label is not None:
            keep &= f["label"][lo:hi] == label
        if drop_invalid:  # rows with non-finite x, or non-finite gold among the fields read
            keep &= np.isfinite((arrays["x"] if "x" in arrays else f["x"][lo:hi]).reshape(hi - lo, -1)).all(axis=1)
            for k in GOLD_FIELDS:
                if k in arrays:
                    keep &= valid_values(k, arrays[k], hi - lo)
        out = {}
        for k, a in arrays.items():
            t = torch.from_numpy(a[keep])
            out[k] = t.to(dtype) if t.is_floating_point() else t.long()
        return out

    def _fields(self, fields) -> tuple[str, ...]:
        fields = self.fields if fields is None else tuple(fields)
        self.require(*fields)
        return fields

    def tensors(self, fields=None, label: int | None = None, dtype=torch.float32, drop_invalid: bool = True,
                max_rows: int = 10_000_000) -> dict[str, Tensor]:
        """Loads the fields of every row (of one label, if given) as tensors, for small sets."""
        fields = self._fields(fields)
        if len(self) > max_rows:
            raise ValueError(f"{len(self)} rows exceed max_rows={max_rows}: iterate with batches() instead.")
        with _open(self.path) as f:
            return self._read(f, fields, self.start, self.stop, label, dtype, drop_invalid)

    def batches(self, batch_size: int, fields=None, *, label: int | None = None, shuffle: bool = True,
                seed: int = 0, dtype=torch.float32, drop_invalid: bool = True, chunk_rows: int | None = None):
        """Iterates once over the rows in mini-batches, reading `chunk_rows` rows at a time.

        With `shuffle`, chunks are visited in a random order and rows are shuffled within a buffer of
        two chunks, so memory stays bounded by the chunk size whatever the file's size. `chunk_rows`
        is 65536 by default, fewer for large rows (`scan_rows`), so that a chunk holds at most ~2²² values.

        Yields:
            dicts field → tensor with a leading batch dimension of at most batch_size.
        """
        fields = self._fields(fields)
        # x is read for the check of finite rows even when not asked for
        chunk_rows = self.scan_rows((*fields, "x") if drop_invalid and "x" not in fields else fields) \
            if chunk_rows is None else chunk_rows
        rng = np.random.default_rng(seed)
        starts = np.arange(self.start, self.stop, chunk_rows)
        if shuffle:
            rng.shuffle(starts)
        buffer: dict[str, Tensor] | None = None
        with _open(self.path) as f:
            for i, lo in enumerate(starts):
                part = self._read(f, fields, lo, min(lo + chunk_rows, self.stop), label, dtype, drop_invalid)
                buffer = part if buffer is None else {k: torch.cat([buffer[k], part[k]]) for k in fields}
                if shuffle:
                    perm = torch.from_numpy(rng.permutation(len(buffer[fields[0]])))
                    buffer = {k: v[perm] for k, v in buffer.items()}
                last = i == len(starts) - 1
                size = len(buffer[fields[0]])
                # shuffled: keep up to one chunk in the buffer to mix with the next chunk
                keep = max(0, size - chunk_rows) if shuffle else size
                emit = size if last else keep // batch_size * batch_size
                for b in range(0, emit, batch_size):
                    yield {k: v[b : b + batch_size] for k, v in buffer.items()}
                buffer = {k: v[emit:] for k, v in buffer.items()}

    def values_per_row(self, fields=None) -> int:
        """The numbers one row holds in `fields` (every field by default): x_dim for x, theta_dim for θ, ..."""
        shapes = {"theta": (self.theta_dim,), "x": self.x_shape, "score": (self.theta_dim,),
                  "score_ref": (self.theta_dim,)}
        return sum(int(np.prod(shapes.get(k, ()))) for k in (self.fields if fields is None else fields))

    def scan_rows(self, fields=("x",)) -> int:
        """Rows per chunk for reading `fields`: 65536, or fewer when a row holds many values (images), so
        that a chunk holds at most 2²² values."""
        return max(1, min(65536, 2**22 // max(self.values_per_row(fields), 1)))

    def x_range(self) -> tuple[Tensor, Tensor] | None:
        """The per-dimension minimum and maximum of the finite x in the rows: two (x_dim,) float64 tensors, or
        None when no row has a finite x. Estimators record it at fit (inference warns beyond it)."""
        low = high = None
        for batch in self.batches(self.scan_rows(), ["x"], shuffle=False, dtype=torch.float64):
            x = batch["x"]
            if len(x) == 0:
                continue
            lo, hi = x.amin(0), x.amax(0)
            low = lo if low is None else torch.minimum(low, lo)
            high = hi if high is None else torch.maximum(high, hi)
        return None if low is None else (low, high)

    def summary(self) -> str:
        """A few lines on the data set: rows, fields, θ range and, with gold, the label ranges."""
        lines = [repr(self)]
        if len(self) and len(self) <= 10_000_000:
            t = self.tensors(dtype=torch.float64)
            lines.append(f"  θ in [{t['theta'].min(0).values.tolist()}, {t['theta'].max(0).values.tolist()}]")
            if self.has_gold:
                lr = t["log_r"]
                lines.append(f"  log_r in [{lr.min():.3g}, {lr.max():.3g}], |score| mean {t['score'].norm(dim=1).mean():.3g}")
        return "\n".join(lines)

