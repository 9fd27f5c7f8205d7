"""The observations to infer from: read from a file, or simulated at a true θ."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .. import checks
from ..simulators.base import DTYPE, Simulator


def load_observed(path) -> np.ndarray:
    """Observations (n, x_dim) from .npy, .csv / .txt (one row per observation; see `read_table`) or .h5 /
    .hdf5 (the dataset `x`, as in a goldmine data set, or the file's only dataset)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder: give a .npy, .csv or .h5 file of observations, shape (n, x_dim).")
    if not path.is_file():
        raise FileNotFoundError(f"no observations at {path}: give a .npy, .csv or .h5 file of shape (n, x_dim).")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except (ValueError, EOFError) as err:
            raise ValueError(f"{path} is not a plain numeric .npy array ({err}).") from None
    elif suffix in (".csv", ".txt", ".tsv", ".dat"):
        x = read_table(path, "," if suffix == ".csv" else None)
    elif suffix in (".h5", ".hdf5"):
        import h5py

        try:
            f = h5py.File(path, "r")
        except OSError as err:
            raise ValueError(f"{path} is not a readable HDF5 file ({' '.join(str(err).split())}).") from None
        with f:
            names = [k for k in f if isinstance(f[k], h5py.Dataset)]
            if "x" not in names and len(names) != 1:
                raise ValueError(f"{path} holds the datasets {names}: put the observations in one named 'x'.")
            x = f["x" if "x" in names else names[0]][:]
    else:
        raise ValueError(f"cannot read observations from a {suffix or 'suffix-less'} file ({path}): give .npy, "
                         ".csv or .h5.")
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{path} does not hold numbers (its array has dtype {x.dtype}).") from None
    if x.ndim not in (1, 2):
        raise ValueError(f"{path} holds an array of shape {x.shape}: give one observation per row, (n, x_dim).")
    return x[:, None] if x.ndim == 1 else x


def read_table(path: Path, delimiter: str | None) -> np.ndarray:
    """A text table of numbers, one observation per row: (n, x_dim) float64.

    Values are separated by `delimiter` (None: whitespace). Blank lines and lines starting with # are
    skipped, and so is the first line when it holds a value that is not a number (a header such as
    "x1,x2"); every other line must hold as many numbers as the first row of data.

    Raises:
        ValueError: a row with another number of values (a ragged table) or a value that is not a number,
            naming the line; or no rows at all.
    """
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text file: give a table of numbers, one observation per row.") from None
    rows, width, first, header = [], None, None, True
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        fields = [v.strip() for v in text.split(delimiter)]
        try:
            values = [float(v) for v in fields]
        except ValueError:
            if header:  # a header line of names, before any row of numbers
                header = False
                continue
            bad = next(v for v in fields if not _is_number(v))
            raise ValueError(f"{path}, line {number}: {bad!r} is not a number; give a table of numbers, one "
                             "observation per row (a header line is allowed only first).") from None
        header = False
        if width is None:
            width, first = len(values), number
        elif len(values) != width:
            raise ValueError(f"{path}, line {number}: {len(values)} value(s), but line {first} has {width}: every row "
                             "must be one observation with the same number of values (x_dim).")
        rows.append(values)
    if not rows:
        raise ValueError(f"{path} holds no rows of numbers: give one observation per row.")
    return np.array(rows, dtype=np.float64)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def generate_observed(sim: Simulator, theta, n_obs: int, seed: int = 0) -> Tensor:
    """n_obs runs of the simulator at one θ (theta_dim,), from a generator seeded by `seed`: (n_obs, x_dim)."""
    n_obs = checks.positive_int(n_obs, "n_obs")
    given = torch.as_tensor(theta, dtype=DTYPE).reshape(-1)
    if given.numel() != sim.theta_dim:
        names = checks.theta_names(sim, sim.theta_dim)
        example = ",".join(f"{v:g}" for v in sim.reference.tolist())
        raise ValueError(f"the true θ of {sim.name} has {sim.theta_dim} component(s) ({', '.join(names)}); got "
                         f"{len(given)} ({given.tolist()}): give them comma-separated, e.g. --true-theta {example} "
                         f"(in a study file, true_theta = [{example.replace(',', ', ')}]).")
    theta = sim.check_theta(given[None], "the true θ")
    return sim.sample(theta.expand(n_obs, -1), generator=torch.Generator().manual_seed(seed)).x.detach()
