"""Training data held in memory: tensors (θ, x), or a dict with labels and gold, as a row source.

Every estimator's `fit` takes, besides a `goldmine.Dataset` (an HDF5 file written by
`goldmine.simulate`), the simulations of another tool as they are:

    est.fit((theta, x))                                   # n joint draws θ ~ p(θ), x ~ p(x|θ)
    est.fit({"theta": theta, "x": x, "label": label,     # goldmine's pair layout, with gold
             "log_r": log_r, "score": score, "score_ref": score_ref}, )

A pair (θ, x) is a row drawn at θ (label 0), which is what npe, nre and nle train on. Rows drawn at
θ_ref (label 1: the carl family's denominators, sally's rows) need the dict with its `label` and
θ_ref given as `InMemoryData(..., reference=theta_ref)`; the row layout is docs/architecture.md's
("A data set"). `InMemoryData` reads like a `Dataset` (`tensors`, `batches`, `split`, `require`,
`x_range`), so the Trainer (`goldmine.training.RowSource`) and every estimator use it unchanged.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor

from . import checks
from .data import BASE_FIELDS, GOLD_FIELDS, Dataset, invalid_rows

DTYPE = torch.float64
FIELDS = (*BASE_FIELDS, *GOLD_FIELDS)

__all__ = ["Bootstrap", "InMemoryData", "as_data", "resample"]


class InMemoryData:
    """Rows of θ, x (and labels and gold) held as tensors: a row source for every estimator's `fit`.

    Arguments:
        data: a pair (theta, x) of arrays (n, theta_dim) and (n, x_dim) ((n,) for a dimension of one),
            every row drawn at its θ; or a dict with "theta" and "x" and optionally "label" (0: drawn at
            θ, 1: drawn at θ_ref; 0 by default), "log_r" (n,), "score" and "score_ref" (n, theta_dim).
            Any float dtype; the values are kept in float64.
        reference: θ_ref (theta_dim,), the denominator of the ratio family's log r̂(x|θ, θ_ref); by
            default the mean of the θ of the rows. Required when some rows are drawn at θ_ref (label 1).
        name: how messages name these rows.

    Raises:
        ValueError: arrays of different lengths or wrong shapes, a field of unknown name, labels other
            than 0 and 1, rows at θ_ref without `reference`, or no rows.

    Example:
        >>> theta = torch.rand(100, 2)
        >>> data = InMemoryData((theta, theta + 0.1 * torch.randn(100, 2)))
        >>> len(data), data.theta_dim, data.x_dim, data.fields
        (100, 2, 2, ('theta', 'x', 'label'))
    """

    complete = True
    simulator = "in-memory"

    def __init__(self, data, reference=None, *, name: str | None = None, _rows: dict | None = None):
        if _rows is not None:  # a view made by split
            self._rows, self.reference, self.path = _rows, reference, name
        else:
            self._rows = _rows_of(data)
            n = len(self._rows["theta"])
            self.path = name or f"the in-memory data ({n} rows)"
            theta_dim = self._rows["theta"].shape[1]
            at_ref = bool((self._rows["label"] == 1).any())
            if reference is None:
                if at_ref:
                    raise ValueError("some rows are drawn at θ_ref (label 1), so the data need θ_ref: pass "
                                     "InMemoryData(data, reference=theta_ref).")
                reference = self._rows["theta"].mean(0)
            self.reference = checks.rows(reference, theta_dim, "reference").reshape(-1)
        self.theta_dim = self._rows["theta"].shape[1]
        self.x_shape = tuple(self._rows["x"].shape[1:])  # (x_dim,) for vectors; images keep their shape
        self.x_dim = int(np.prod(self.x_shape))
        self.fields = tuple(k for k in FIELDS if k in self._rows)
        self.has_gold = all(k in self._rows for k in GOLD_FIELDS)
        self.meta = {"simulator": self.simulator, "theta_dim": self.theta_dim, "x_dim": self.x_dim,
                     "n": len(self), "reference": self.reference.tolist(), "gold": self.has_gold}
        self.invalid_rows = invalid_rows({k: v.numpy() for k, v in self._rows.items()}, len(self))

    def __len__(self) -> int:
        return len(self._rows["theta"])

    def __repr__(self) -> str:
        return (f"InMemoryData({len(self)} rows, theta_dim={self.theta_dim}, x_dim={self.x_dim}, fields "
                f"{', '.join(self.fields)})")

    def require(self, *fields: str, method: str = "this method") -> None:
        """Raises a ValueError naming the missing fields and how to give them."""
        missing = [k for k in fields if k not in self.fields]
        if missing:
            raise ValueError(f"{method} needs the fields {missing}, which {self.path} lacks: pass a dict with "
                             f"them (InMemoryData), or use a method that reads only {list(self.fields)}.")

    def _view(self, index) -> "InMemoryData":
        return InMemoryData(None, self.reference, name=self.path, _rows={k: v[index] for k, v in self._rows.items()})

    def split(self, validation: float = 0.1) -> tuple["InMemoryData", "InMemoryData"]:
        """The first rows and the last `validation` fraction (whole pairs when some rows are at θ_ref), as `Dataset`."""
        checks.fraction(validation, "validation")
        n = len(self)
        paired = bool((self._rows["label"] == 1).any())
        cut = 2 * round(n * (1 - validation) / 2) if paired else round(n * (1 - validation))
        if cut <= 0 or cut >= n:
            raise ValueError(f"{n} rows are too few to split off a validation fraction of {validation}.")
        return self._view(slice(0, cut)), self._view(slice(cut, n))

    def resample(self, validation: float, seed: int) -> "InMemoryData":
        """A bootstrap resample of the training rows, as `resample(self, validation, seed)`."""
        return resample(self, validation, seed)

    def _select(self, fields, label, dtype, drop_invalid) -> dict[str, Tensor]:
        fields = self.fields if fields is None else tuple(fields)
        self.require(*fields)
        # Dataset's reading of rows (label, non-finite rows, dtype) applied to the rows in memory as numpy views
        arrays = {k: v.numpy() for k, v in self._rows.items()}
        return Dataset._read(self, arrays, fields, 0, len(self), label, dtype, drop_invalid)

    def tensors(self, fields=None, label: int | None = None, dtype=torch.float32, drop_invalid: bool = True,
                max_rows: int | None = None) -> dict[str, Tensor]:
        """The fields of every row (of one label, if given) as tensors, as `Dataset.tensors`."""
        return self._select(fields, label, dtype, drop_invalid)

    def batches(self, batch_size: int, fields=None, *, label: int | None = None, shuffle: bool = True,
                seed: int = 0, dtype=torch.float32, drop_invalid: bool = True, chunk_rows: int | None = None):
        """One pass over the rows (of `label`) in batches of at most `batch_size`, as `Dataset.batches`."""
        rows = self._select(fields, label, dtype, drop_invalid)
        first = next(iter(rows.values()))
        order = (torch.from_numpy(np.random.default_rng(seed).permutation(len(first))) if shuffle
                 else torch.arange(len(first)))
        for b in range(0, len(first), batch_size):
            yield {k: v[order[b:b + batch_size]] for k, v in rows.items()}

    def values_per_row(self, fields=None) -> int:
        """The numbers one row holds in `fields` (every field by default), as `Dataset.values_per_row`."""
        fields = self.fields if fields is None else fields
        return sum(int(np.prod(self._rows[k].shape[1:])) for k in fields if k in self._rows)

    scan_rows = Dataset.scan_rows  # rows per batch from `values_per_row`, the same rule as a Dataset's

    def x_range(self) -> tuple[Tensor, Tensor] | None:
        """The per-dimension minimum and maximum of the finite x (two (x_dim,) float64), or None."""
        x = self._rows["x"].reshape(len(self), -1)
        x = x[torch.isfinite(x).all(1)]
        return None if len(x) == 0 else (x.amin(0), x.amax(0))

    def summary(self) -> str:
        """A few lines on the rows, as `Dataset.summary`."""
        theta = self._rows["theta"]
        return f"{self!r}\n  θ in [{theta.amin(0).tolist()}, {theta.amax(0).tolist()}]"


# -- the bootstrap ------------------------------------------------------------------------------


def resample(data, validation: float, seed: int):
    """A bootstrap resample of the training rows of a row source (a `Dataset` or `InMemoryData`), the rows an
    ensemble's member trains on: the rows before the validation cut of `data.split(validation)` drawn with
    replacement, as many as there are, in whole pairs when the rows come in pairs (a row at θ_ref beside
    each row at θ, sharing its θ), seeded by `seed`. Its `split(validation)` gives (the resample, the original
    validation rows), so that a model is validated on rows it never trained on.

    Arguments:
        data: the rows. validation: the validation fraction of the Trainer that will fit on them.
        seed: seeds the draw (the same seed, the same resample).

    Returns:
        A `Bootstrap` of a `Dataset`, or an `InMemoryData` of the chosen rows.
    """
    data = as_data(data)
    if isinstance(data, Dataset):
        return Bootstrap(data, validation, seed)
    train, index, held_out = _draw(data, validation, seed)
    out = train._view(torch.from_numpy(index))
    out.split = lambda fraction=validation: _fixed_split(out, held_out, validation, fraction)
    return out


def _draw(data, validation: float, seed: int):
    """(the training rows, the indices of the resample among them, the validation rows) of `resample`."""
    train, held_out = data.split(validation)
    return train, bootstrap_rows(len(train), _paired(data), seed), held_out


def bootstrap_rows(rows: int, paired: bool, seed: int) -> np.ndarray:
    """`rows` row indices in [0, rows) drawn with replacement, sorted: whole pairs (2i, 2i + 1) when `paired`."""
    unit = 2 if paired else 1
    units = rows // unit
    chosen = np.sort(np.random.default_rng(seed).integers(0, units, units))
    return (unit * chosen[:, None] + np.arange(unit)).reshape(-1)


def _paired(data) -> bool:
    """Whether the rows come in pairs that share θ: a data set of the layout "pairs", rows in memory with a label 1."""
    if isinstance(data, InMemoryData):
        return bool((data._rows["label"] == 1).any())
    return getattr(data, "layout", "pairs") != "prior"


class Bootstrap(Dataset):
    """A bootstrap resample of a data set's training rows (`resample`), read from its file.

    Reads go through the file in sorted row order, a chunk at a time, as `Dataset`'s do; `split(validation)`
    (the fraction it was made with) gives (the resample, the original validation rows).

    Arguments:
        data: the data set.
        validation: the validation fraction of the Trainer that will fit on it.
        seed: seeds the resample.
    """

    def __init__(self, data: Dataset, validation: float, seed: int):
        train, index, held_out = _draw(data, validation, seed)
        self.__dict__.update(vars(train))
        self.rows = train.start + index
        self.start, self.stop = 0, len(self.rows)
        self.validation, self.held_out = validation, held_out

    def __repr__(self) -> str:
        return f"Bootstrap({len(self)} rows resampled from {self.path})"

    def split(self, validation: float = 0.1) -> tuple[Dataset, Dataset]:
        return _fixed_split(self, self.held_out, self.validation, validation)

    def _read(self, f, fields, lo: int, hi: int, label, dtype, drop_invalid) -> dict[str, Tensor]:
        """Rows lo..hi of the resample: the file's rows `self.rows[lo:hi]` (sorted, with repeats)."""
        idx = self.rows[lo:hi]
        first = int(idx[0]) if len(idx) else 0
        last = int(idx[-1]) + 1 if len(idx) else 0
        picked = {k: f[k][first:last][idx - first] for k in {*fields, "x", "label"}}
        return super()._read(picked, fields, 0, len(idx), label, dtype, drop_invalid)


def _fixed_split(train, held_out, validation, fraction):
    if fraction != validation:
        raise ValueError(f"this bootstrap resample was cut at validation={validation}; got {fraction}.")
    return train, held_out


def _rows_of(data) -> dict[str, Tensor]:
    """The checked tensors of a pair (theta, x) or a dict of fields, float64, label int8."""
    if isinstance(data, dict):
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise ValueError(f"in-memory data hold unknown fields {unknown}; the fields are {list(FIELDS)}.")
        if "theta" not in data or "x" not in data:
            raise ValueError("in-memory data need at least 'theta' and 'x'.")
        given = dict(data)
    else:
        try:
            theta, x = data
        except (TypeError, ValueError):
            raise TypeError(f"in-memory data must be a pair (theta, x) or a dict of fields; got "
                            f"{type(data).__name__}.") from None
        given = {"theta": theta, "x": x}
    rows = {}
    for k, v in given.items():
        t = torch.as_tensor(np.asarray(v) if not isinstance(v, Tensor) else v).detach()
        if k == "label":
            rows[k] = t.to(torch.int8).reshape(-1)
        else:
            if not (t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64,
                                                          torch.uint8, torch.bool)):
                raise ValueError(f"{k} must hold real numbers; got dtype {t.dtype}.")
            t = t.to(DTYPE)
            rows[k] = t if k == "log_r" else (t[:, None] if t.ndim == 1 else t)
    n = len(rows["theta"])
    if n == 0:
        raise ValueError("in-memory data hold no rows: pass at least two.")
    rows.setdefault("label", torch.zeros(n, dtype=torch.int8))
    for k, t in rows.items():
        if len(t) != n:
            raise ValueError(f"in-memory data: {k} has {len(t)} rows, theta has {n}; give one row per simulation.")
    if rows["theta"].ndim != 2:
        raise ValueError(f"theta must have shape (n, theta_dim) or (n,); got {tuple(rows['theta'].shape)}.")
    d = rows["theta"].shape[1]
    if rows["x"].ndim < 2 or 0 in rows["x"].shape[1:]:
        raise ValueError(f"x must have shape (n, x_dim), (n,) or (n, *x_shape); got {tuple(rows['x'].shape)}.")
    if not torch.isfinite(rows["theta"]).all():
        raise ValueError("theta holds NaN or infinite values: drop those rows.")
    for k, shape in (("log_r", (n,)), ("score", (n, d)), ("score_ref", (n, d))):
        if k in rows and tuple(rows[k].shape) != shape:
            raise ValueError(f"{k} must have shape {shape}; got {tuple(rows[k].shape)}.")
    if not bool(((rows["label"] == 0) | (rows["label"] == 1)).all()):
        raise ValueError("label must be 0 (drawn at θ) or 1 (drawn at θ_ref) in every row.")
    return rows


def as_data(data) -> Dataset | InMemoryData:
    """What an estimator's `fit` takes, as a row source: a `Dataset` or a path (the HDF5 file of
    `goldmine.simulate`), an `InMemoryData`, a pair (theta, x) or a dict of fields (→ `InMemoryData`).

    Raises:
        TypeError: anything else, naming what is accepted.
    """
    if isinstance(data, (Dataset, InMemoryData)):
        return data
    if isinstance(data, (str, os.PathLike)):
        return Dataset(data)
    if isinstance(data, (tuple, list, dict)):
        return InMemoryData(data)
    raise TypeError(f"fit takes a data set (a goldmine.Dataset or the path of its HDF5 file), tensors (theta, x), "
                    f"or a dict of fields; got {type(data).__name__}.")
