"""Training data sets: simulated, mined and written chunk by chunk to one HDF5 file.

Row layout (DESIGN.md). Rows come in pairs that share one θ_i ~ prior: row 2i is drawn at θ_i
(label 0), row 2i+1 at θ_ref (label 1). Every row stores θ_i, x, its label and, when the simulator
has gold, log_r = log r(x, z|θ_i, θ_ref), score = t(x, z|θ_i) and score_ref = t(x, z|θ_ref).
Every method reads the rows it needs from the same file, so a budget means the same for all.

Reproducibility. Rows are drawn in blocks of `sim.block_size` rows; block b is drawn from a
generator seeded by (seed, b) alone. A chunk, the unit of work and of writing, is a run of whole
blocks, so the same seed gives bit-identical arrays whatever the number of workers, the chunk size
or the backend. A killed run leaves every completed chunk in the file (`rows_done` is updated and
flushed after each one) and the same call resumes after the last of them.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from . import checks
from .mining import augment, reference_of
from .simulators.base import Simulator, draw_prior, seed_from

FORMAT_VERSION = 1
GOLD_FIELDS = ("log_r", "score", "score_ref")
BASE_FIELDS = ("theta", "x", "label")


# -- drawing one chunk (runs in a worker) ------------------------------------------------------


def block_generator(seed: int, block: int) -> torch.Generator:
    """The generator of block `block` of a data set with seed `seed`: a function of both alone."""
    state = np.random.SeedSequence([seed, block]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def draw_block(sim: Simulator, rows: int, generator: torch.Generator, reference: Tensor) -> dict[str, np.ndarray]:
    """Draws `rows` (even) rows in the layout of this module's docstring, as numpy arrays."""
    pairs = rows // 2
    theta = draw_prior(sim.prior, pairs, seed=seed_from(generator))
    ref = reference.expand(pairs, -1)
    at_theta = sim.sample(theta, generator=generator)
    at_ref = sim.sample(ref, generator=generator)
    parts = [{"x": at_theta.x}, {"x": at_ref.x}]
    if sim.has_gold:
        parts[0].update(augment(sim, at_theta, theta, reference))
        parts[1].update(augment(sim, at_ref, theta, reference))
    out = {
        "theta": theta.repeat_interleave(2, dim=0),
        "label": torch.tensor([0, 1], dtype=torch.int8).repeat(pairs),
    }
    for key in parts[0]:
        out[key] = torch.stack([parts[0][key], parts[1][key]], dim=1).reshape(rows, *parts[0][key].shape[1:])
    return {k: v.detach().numpy() for k, v in out.items()}


def draw_chunk(sim: Simulator, seed: int, blocks: list[tuple[int, int]], reference: Tensor,
               threads: int | None = None) -> dict[str, np.ndarray]:
    """Draws the blocks [(index, rows), ...] of a chunk and concatenates them.

    In a worker process, `threads=1` keeps the workers from competing for the cores.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    parts = [draw_block(sim, rows, block_generator(seed, b), reference) for b, rows in blocks]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# -- the file -----------------------------------------------------------------------------------


def _meta(sim: Simulator, n: int, seed: int, reference: Tensor) -> dict:
    return {
        "format": FORMAT_VERSION,
        "simulator": sim.name,
        "simulator_class": f"{type(sim).__module__}.{type(sim).__qualname__}",
        "simulator_config": sim.config(),
        "theta_dim": sim.theta_dim,
        "x_dim": sim.x_dim,
        "n": n,
        "seed": seed,
        "reference": reference.tolist(),
        "block_size": sim.block_size,
        "gold": sim.has_gold,
    }


def _open(path: Path, mode: str = "r") -> h5py.File:
    try:
        f = h5py.File(path, mode)
    except FileNotFoundError:
        raise FileNotFoundError(f"no data set at {path}: create it with goldmine.simulate(sim, n, path=...).") from None
    except OSError as err:
        raise ValueError(
            f"{path} is not a readable HDF5 file ({err}). It is corrupt or truncated; delete it "
            "and run goldmine.simulate again."
        ) from None
    if "goldmine" not in f.attrs:
        f.close()
        raise ValueError(f"{path} is an HDF5 file but not a goldmine data set (no 'goldmine' header).")
    return f


def _read_meta(f: h5py.File) -> dict:
    meta = json.loads(f.attrs["goldmine"])
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"{f.filename} has data-set format {meta.get('format')}, this goldmine reads format "
            f"{FORMAT_VERSION}: simulate it again with this version."
        )
    return meta


def _create(path: Path, meta: dict, first: dict[str, np.ndarray]) -> h5py.File:
    tmp = path.with_name(path.name + ".creating")
    f = h5py.File(tmp, "w")
    f.attrs["goldmine"] = json.dumps(meta)
    f.attrs["rows_done"] = 0
    f.attrs["invalid_rows"] = 0
    for key, arr in first.items():
        rows = max(1, min(8192, meta["n"]))
        f.create_dataset(key, shape=(0, *arr.shape[1:]), maxshape=(None, *arr.shape[1:]), dtype=arr.dtype,
                         chunks=(rows, *arr.shape[1:]))
    f.close()
    os.replace(tmp, path)  # the file appears whole, with its header, or not at all
    return h5py.File(path, "r+")


def _append(f: h5py.File, chunk: dict[str, np.ndarray]) -> None:
    done = int(f.attrs["rows_done"])
    rows = len(chunk["theta"])
    for key, arr in chunk.items():
        f[key].resize(done + rows, axis=0)
        f[key][done:] = arr
    bad = ~np.isfinite(chunk["x"]).all(axis=1)
    f.attrs["invalid_rows"] = int(f.attrs["invalid_rows"]) + int(bad.sum())
    f.attrs["rows_done"] = done + rows
    f.flush()


def _check_resumable(path: Path, meta: dict) -> int:
    """Rows already in an existing file made by the same call; raises if it was another call's."""
    with _open(path) as f:
        old = _read_meta(f)
        done = int(f.attrs["rows_done"])
    differ = [k for k in meta if old.get(k) != meta[k]]
    if differ:
        detail = ", ".join(f"{k}: file has {old.get(k)!r}, call has {meta[k]!r}" for k in differ)
        raise ValueError(
            f"{path} already holds a different data set ({detail}). Choose another path, or delete "
            "the file to simulate anew; the same call on the same path resumes or reuses it."
        )
    return done


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
) -> "Dataset":
    """Simulates (and mines, when the simulator has gold) a training data set into one HDF5 file.

    Arguments:
        sim: the simulator.
        n: the number of rows (simulator runs), even: half at θ ~ prior, half at θ_ref.
        path: the HDF5 file. If it exists and was made by the same call (simulator, n, seed,
            reference), the call resumes it (or just opens it when complete).
        seed: the seed; the same seed gives bit-identical arrays for any workers or chunk_size.
        workers: local processes that simulate chunks in parallel.
        cluster: a Dask scheduler address ("tcp://host:port") or a `dask.distributed.Client`;
            chunks then run on that cluster and `workers` is ignored.
        chunk_size: rows per task and per write, rounded up to whole blocks of `sim.block_size`;
            by default a few chunks per worker, at most 16 blocks.
        reference: θ_ref; the simulator's own by default.
        progress: show a progress bar (rows done, rows per second).

    Returns:
        The data set, opened.

    Example:
        >>> import goldmine as gm, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "galton.h5")
        >>> data = gm.simulate(gm.simulators.GaltonBoard(), 1000, path, progress=False)
        >>> len(data), data.fields
        (1000, ('theta', 'x', 'label', 'log_r', 'score', 'score_ref'))
    """
    if not isinstance(sim, Simulator):
        raise TypeError(f"sim must be a goldmine Simulator, got {type(sim).__name__}.")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0 or n % 2:
        raise ValueError(f"n must be a positive even number of rows (half at θ, half at θ_ref); got {n!r}.")
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer; got {workers!r}.")
    n, path, ref = int(n), Path(path), reference_of(sim, reference)
    meta = _meta(sim, n, int(seed), ref)
    block = sim.block_size
    if block % 2:
        raise ValueError(f"{sim.name}.block_size must be even; got {block}.")
    done = _check_resumable(path, meta) if path.exists() else 0
    if done % block and done != n:
        raise ValueError(f"{path} ends inside a block ({done} rows): delete it and simulate again.")

    first = -(-n // block) if done == n else done // block  # a complete file has nothing left to draw
    blocks = [(b, min(block, n - b * block)) for b in range(first, -(-n // block))]
    if chunk_size is None:
        per_chunk = max(1, min(16, len(blocks) // (4 * workers) or 1))
    else:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive; got {chunk_size}.")
        per_chunk = -(-int(chunk_size) // block)
    chunks = [blocks[i : i + per_chunk] for i in range(0, len(blocks), per_chunk)]

    bar = tqdm(total=n, initial=done, unit="rows", unit_scale=True, desc=f"simulate {sim.name}",
               disable=not progress, dynamic_ncols=True)
    f = h5py.File(path, "r+") if path.exists() else None
    try:
        for chunk in _run(sim, int(seed), chunks, ref, workers, cluster):
            if f is None:
                f = _create(path, meta, chunk)
            _append(f, chunk)
            bar.update(len(chunk["theta"]))
        f.attrs["complete"] = True
    finally:
        bar.close()
        if f is not None:
            f.close()
    return Dataset(path)


def _run(sim, seed, chunks, ref, workers, cluster):
    """Yields the chunks' arrays in order, computing at most a few chunks ahead."""
    if not chunks:
        return
    if cluster is not None:
        yield from _run_dask(sim, seed, chunks, ref, cluster)
    elif workers == 1:
        for chunk in chunks:
            yield draw_chunk(sim, seed, chunk, ref)
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            yield from _in_order([lambda c=c: pool.submit(draw_chunk, sim, seed, c, ref, 1) for c in chunks],
                                 ahead=2 * workers)


def _run_dask(sim, seed, chunks, ref, cluster):
    from dask.distributed import Client

    client = Client(cluster) if isinstance(cluster, str) else cluster
    try:
        ahead = 2 * max(1, sum(client.nthreads().values()))
        [sim_future] = client.scatter([sim], broadcast=True)
        yield from _in_order(
            [lambda c=c: client.submit(draw_chunk, sim_future, seed, c, ref, 1, pure=False) for c in chunks],
            ahead=ahead,
        )
    finally:
        if isinstance(cluster, str):
            client.close()


def _in_order(submits, ahead):
    """Runs the submit callables at most `ahead` at a time and yields their results in order."""
    pending = [submit() for submit in submits[:ahead]]
    for i in range(len(submits)):
        result = pending.pop(0).result()
        if i + ahead < len(submits):
            pending.append(submits[i + ahead]())
        yield result


# -- reading ------------------------------------------------------------------------------------


class Dataset:
    """A goldmine data set in an HDF5 file, read in chunks so that it never has to fit in memory.

    Arguments:
        path: the HDF5 file written by `goldmine.simulate`.
        start, stop: a range of rows (a view on the file, as made by `split`).

    Attributes:
        simulator: the simulator's name; reference: θ_ref (theta_dim,); theta_dim, x_dim;
        fields: the stored fields; has_gold; complete: whether the simulation finished.
    """

    def __init__(self, path: str | os.PathLike, start: int = 0, stop: int | None = None):
        self.path = Path(path)
        with _open(self.path) as f:
            self.meta = _read_meta(f)
            rows = int(f.attrs["rows_done"])
            self.complete = bool(f.attrs.get("complete", False))
            self.invalid_rows = int(f.attrs["invalid_rows"])
            self.fields = tuple(k for k in (*BASE_FIELDS, *GOLD_FIELDS) if k in f)
            for key in self.fields:
                if f[key].shape[0] < rows:
                    raise ValueError(f"{self.path} is truncated: field {key!r} holds fewer rows than its header says.")
        stop = rows if stop is None else min(stop, rows)
        if not 0 <= start <= stop:
            raise ValueError(f"row range [{start}, {stop}) is not inside the {rows} rows of {self.path}.")
        self.start, self.stop, self.rows_in_file = start, stop, rows
        self.simulator = self.meta["simulator"]
        self.reference = torch.tensor(self.meta["reference"], dtype=torch.float64)
        self.theta_dim, self.x_dim = self.meta["theta_dim"], self.meta["x_dim"]
        self.has_gold = self.meta["gold"]

    def __len__(self) -> int:
        return self.stop - self.start

    def __repr__(self) -> str:
        state = "complete" if self.complete else f"incomplete: {self.meta['n']} rows asked"
        view = "" if (self.start, self.stop) == (0, self.rows_in_file) else f", rows [{self.start}, {self.stop})"
        return (
            f"Dataset('{self.path}': {len(self)} rows of {self.simulator}{view}, θ_ref={self.reference.tolist()}, "
            f"fields {', '.join(self.fields)}, {state}"
            + (f", {self.invalid_rows} rows with non-finite x" if self.invalid_rows else "")
            + ")"
        )

    def require(self, *fields: str, method: str = "this method") -> None:
        """Raises a ValueError naming the missing fields and how to get them."""
        missing = [k for k in fields if k not in self.fields]
        if not missing:
            return
        how = (
            "It was simulated from a black-box simulator, which yields no gold; use a method that needs "
            "none (carl/nre, nle, npe, abc, alfi), or give the simulator a joint_log_prob and simulate again."
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
        if drop_invalid:
            keep &= np.isfinite(arrays["x"] if "x" in arrays else f["x"][lo:hi]).all(axis=1)
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
                seed: int = 0, dtype=torch.float32, drop_invalid: bool = True, chunk_rows: int = 65536):
        """Iterates once over the rows in mini-batches, reading `chunk_rows` rows at a time.

        With `shuffle`, chunks are visited in a random order and rows are shuffled within a buffer of
        two chunks, so memory stays bounded by the chunk size whatever the file's size.

        Yields:
            dicts field → tensor with a leading batch dimension of at most batch_size.
        """
        fields = self._fields(fields)
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
                # keep up to one chunk in the buffer to mix with the next chunk
                emit = size if last else max(0, size - chunk_rows) // batch_size * batch_size
                for b in range(0, emit, batch_size):
                    yield {k: v[b : b + batch_size] for k, v in buffer.items()}
                buffer = {k: v[emit:] for k, v in buffer.items()}

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

