"""The observations to infer from: read from a file, or simulated at a true θ."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .. import checks
from ..simulators.base import DTYPE, Simulator


def load_observed(path) -> np.ndarray:
    """Observations (n, x_dim) from .npy, .csv / .txt (one row per observation; a header line is
    skipped) or .h5 / .hdf5 (the dataset `x`, as in a goldmine data set, or the file's only dataset)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no observations at {path}: give a .npy, .csv or .h5 file of shape (n, x_dim).")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise ValueError(f"{path} is not a plain numeric .npy array ({err}).") from None
    elif suffix in (".csv", ".txt", ".tsv", ".dat"):
        delimiter = "," if suffix == ".csv" else None
        try:
            x = np.loadtxt(path, delimiter=delimiter, ndmin=2)
        except ValueError:
            try:
                x = np.loadtxt(path, delimiter=delimiter, ndmin=2, skiprows=1)
            except ValueError as err:
                raise ValueError(f"{path} is not a table of numbers, one observation per row ({err}).") from None
    elif suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            names = [k for k in f if isinstance(f[k], h5py.Dataset)]
            if "x" not in names and len(names) != 1:
                raise ValueError(f"{path} holds the datasets {names}: put the observations in one named 'x'.")
            x = f["x" if "x" in names else names[0]][:]
    else:
        raise ValueError(f"cannot read observations from a {suffix or 'suffix-less'} file ({path}): give .npy, "
                         ".csv or .h5.")
    x = np.asarray(x, dtype=np.float64)
    return x[:, None] if x.ndim == 1 else x


def generate_observed(sim: Simulator, theta, n_obs: int, seed: int = 0) -> Tensor:
    """n_obs runs of the simulator at one θ (theta_dim,), from a generator seeded by `seed`: (n_obs, x_dim)."""
    n_obs = checks.positive_int(n_obs, "n_obs")
    given = torch.as_tensor(theta, dtype=DTYPE).reshape(-1)
    if given.numel() != sim.theta_dim:
        raise ValueError(f"the true θ of {sim.name} has {sim.theta_dim} component(s); got {given.tolist()}.")
    theta = sim.check_theta(given[None], "the true θ")
    return sim.sample(theta.expand(n_obs, -1), generator=torch.Generator().manual_seed(seed)).x.detach()
