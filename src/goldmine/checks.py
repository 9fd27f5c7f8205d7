"""Validation of arguments at the public boundary: one check per kind of argument.

Every check takes the value first and the argument's name second, returns the value in its
canonical type, and raises a ValueError that names the argument, what it must be and what it got.

Shapes follow one rule. Points of a d-dimensional quantity (θ, x) are rows of a matrix (n, d);
a 1-D array is read as n points of a scalar when d = 1 and as one point when d > 1 (its length
must then be d); a scalar is one point when d = 1.

Example:
    >>> rows(torch.tensor([0.1, 0.2, 0.3]), 1, "theta").shape   # three scalar points
    torch.Size([3, 1])
    >>> rows(torch.tensor([42.0, 0.9]), 2, "theta").shape      # one point of dimension 2
    torch.Size([1, 2])
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import torch
from torch import Tensor

DTYPE = torch.float64

#: the margin, as a fraction of the training range's width, beyond which x counts as outside it
RANGE_MARGIN = 0.1


def outside_training(surrogate, x: torch.Tensor) -> torch.Tensor | None:
    """Where x (n, x_dim) lies outside the surrogate's training range widened by `RANGE_MARGIN` of its width on
    each side (of |x_low_|, at least 1, where the range has no width): (n, x_dim) bool; None when the
    surrogate records no range."""
    low, high = getattr(surrogate, "x_low_", None), getattr(surrogate, "x_high_", None)
    if low is None or high is None:
        return None
    low, high = torch.as_tensor(low, dtype=torch.float64), torch.as_tensor(high, dtype=torch.float64)
    width = high - low
    margin = RANGE_MARGIN * torch.where(width > 0, width, low.abs().clamp(min=1.0))
    x = torch.as_tensor(x).detach().to(torch.float64).reshape(len(x), -1)
    return (x < low - margin) | (x > high + margin)


def warn_outside_training(surrogate, x: torch.Tensor, stacklevel: int = 2) -> int:
    """Warns (RuntimeWarning) when observations x (n, x_dim) lie outside the range of x the surrogate was
    trained on (`outside_training`), naming how many, the range and an example; returns how many."""
    outside = outside_training(surrogate, x)
    count = 0 if outside is None else int(outside.any(1).sum())
    if not count:
        return 0
    name = getattr(surrogate, "method", None) or type(surrogate).__name__
    low, high = surrogate.x_low_.tolist(), surrogate.x_high_.tolist()
    x = torch.as_tensor(x).detach().to(torch.float64).reshape(len(x), -1)
    label = (lambda j: "x") if len(low) == 1 else (lambda j: f"x_{j + 1}")
    where = ", ".join(f"{label(j)} in [{low[j]:.4g}, {high[j]:.4g}] (e.g. {float(x[outside[:, j], j][0]):.4g})"
                      for j in range(len(low)) if outside[:, j].any())
    warnings.warn(
        f"{count} of {len(x)} observations lie outside the range of x that {name} was trained on, by more than "
        f"{RANGE_MARGIN:.0%} of its width: {where}. There it extrapolates what it never learned from data, so its "
        "answer may look confident and be wrong: check the observations against the simulator, or train on data "
        "that covers them.", RuntimeWarning, stacklevel=stacklevel + 1)
    return count


__all__ = ["RANGE_MARGIN", "theta_names", "outside_training", "warn_outside_training", "positive_int", "sample_count", "non_negative_int", "int_between", "int_at_least", "seed", "fraction", "level",
           "positive_float", "non_negative_float", "real_between", "finite", "flag", "choice", "widths", "rows"]

#: the largest seed goldmine takes: every generator it seeds (numpy's, torch's, and derived seeds such
#: as the Trainer's seed·100003 + epoch) accepts the seeds from 0 to SEED_MAX
SEED_MAX = 2**32 - 1


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    if isinstance(value, Tensor):  # a 0-d tensor, e.g. a quantile computed in torch
        return value.ndim == 0 and value.dtype != torch.bool and not value.is_complex()
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_int(value, name: str) -> int:
    """An integer ≥ 1 (Python or numpy; a bool is not one)."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def sample_count(value, name: str = "n") -> int:
    """The number of draws asked: an integer ≥ 1, or a sample shape of one such integer, (n,) or
    torch.Size([n]), as sbi and torch.distributions write it."""
    if isinstance(value, (tuple, list, torch.Size)):
        if len(value) != 1:
            raise ValueError(f"{name} must be a number of draws n or a sample shape (n,); got {tuple(value)!r}: "
                             "goldmine draws (n, theta_dim), so reshape the draws for other shapes.")
        value = value[0]
    return positive_int(value, name)


def non_negative_int(value, name: str) -> int:
    """An integer ≥ 0 (Python or numpy; a bool is not one)."""
    if not _is_int(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer; got {value!r}.")
    return int(value)


def int_between(value, name: str, low: int, high: int, high_text: str | None = None) -> int:
    """An integer in [low, high]; `high_text` names the upper bound in the message (e.g. "samples + 1 = 101")."""
    if not _is_int(value) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high_text or high}; got {value!r}.")
    return int(value)


def int_at_least(value, name: str, low: int) -> int:
    """An integer ≥ low."""
    if not _is_int(value) or value < low:
        raise ValueError(f"{name} must be an integer ≥ {low}; got {value!r}.")
    return int(value)


def seed(value, name: str = "seed") -> int:
    """A seed: an integer from 0 to SEED_MAX = 2**32 − 1."""
    if not _is_int(value) or not 0 <= value <= SEED_MAX:
        raise ValueError(f"{name} must be an integer from 0 to {SEED_MAX} (2**32 − 1); got {value!r}.")
    return int(value)


def fraction(value, name: str) -> float:
    """A real number strictly between 0 and 1."""
    if not _is_real(value) or not 0 < value < 1:
        raise ValueError(f"{name} must be a fraction strictly between 0 and 1; got {value!r}.")
    return float(value)


def level(value, name: str = "level") -> float:
    """A confidence or credibility level: a probability strictly between 0 and 1."""
    if not _is_real(value) or not 0 < value < 1:
        raise ValueError(f"{name} must be a probability in (0, 1), e.g. 0.95 for a 95% region; got {value!r}.")
    return float(value)


def positive_float(value, name: str, *, infinite: bool = False) -> float:
    """A finite real number > 0; with `infinite`, +inf too (e.g. a bound that inf turns off)."""
    if not _is_real(value) or not (0 < value < math.inf or (infinite and value == math.inf)):
        what = "a positive number (inf: no bound)" if infinite else "a finite positive number"
        raise ValueError(f"{name} must be {what}; got {value!r}.")
    return float(value)


def non_negative_float(value, name: str) -> float:
    """A finite real number ≥ 0."""
    if not _is_real(value) or not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number ≥ 0; got {value!r}.")
    return float(value)


def real_between(value, name: str, low: float, high: float) -> float:
    """A real number in the closed interval [low, high]."""
    if not _is_real(value) or not low <= value <= high:
        raise ValueError(f"{name} must be a number from {low} to {high}; got {value!r}.")
    return float(value)


def finite(value, name: str) -> float:
    """A finite real number."""
    if not _is_real(value) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value!r}.")
    return float(value)


def flag(value, name: str) -> bool:
    """True or False (a Python or numpy bool; not 0, 1 or a string)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false; got {value!r}.")
    return bool(value)


def widths(value, name: str) -> tuple[int, ...]:
    """The widths of hidden layers: a list or tuple of positive integers, e.g. [64, 64] (empty: no hidden layer)."""
    items = value.tolist() if isinstance(value, np.ndarray) and value.ndim == 1 else value
    if not isinstance(items, (list, tuple)) or not all(_is_int(w) and w >= 1 for w in items):
        raise ValueError(f"{name} must be a list of positive layer widths, e.g. [64, 64]; got {value!r}.")
    return tuple(int(w) for w in items)


def choice(value, known, name: str):
    """One of the `known` values."""
    if value not in known:
        raise ValueError(f"unknown {name} {value!r}: choose one of {', '.join(map(repr, known))}.")
    return value


def device(value, name: str = "device") -> torch.device:
    """A device to train or infer on: None or "cpu" (the default: the CPU), "cuda", "cuda:1", "mps", a
    torch.device, or "auto": the first accelerator present (CUDA, then Apple's MPS), else the CPU.

    Raises:
        ValueError: not a device name, or a device this machine (or this build of torch) does not have; the
            message names the fix.

    Example:
        >>> device(None), device("cpu")
        (device(type='cpu'), device(type='cpu'))
    """
    if value is None:
        return torch.device("cpu")
    if isinstance(value, str) and value.strip().lower() == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f'{name} must be "cpu", "cuda", "cuda:<index>", "mps", "auto" or a torch.device; got '
                         f"{value!r}.") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (dev.index or 0) >= count:
            have = "no CUDA device" if count == 0 else f"{count} CUDA device(s)"
            raise ValueError(f"{name}={value!r}, but this machine and torch {torch.__version__} see {have}: pass "
                             f'{name}="cpu", or {name}="auto" to use an accelerator only when one is present (or '
                             "install a CUDA build of torch on a machine with a GPU).")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f'{name}={value!r}, but Apple\'s MPS is not available here: pass {name}="cpu", or '
                             f'{name}="auto" to use an accelerator only when one is present.')
    elif dev.type != "cpu":
        raise ValueError(f'{name}={value!r}: goldmine trains and infers on "cpu", "cuda" or "mps"; pass one of '
                         'them or "auto".')
    return dev


def rows(value, dim: int, name: str, dtype: torch.dtype = DTYPE, finite: bool = True, hint: str = "") -> Tensor:
    """Points of a `dim`-dimensional quantity as a matrix (n, dim) of `dtype` (the module's shape rule).

    Arguments:
        value: (n, dim); or (n,) when dim = 1; or one point (dim,) when dim > 1; or a scalar when dim = 1.
        dim: the dimension of one point.
        name: the argument's name, for the message.
        dtype: the returned dtype. Gradients are kept.
        finite: also reject NaN and infinite values.
        hint: appended to the shape message, e.g. " for galton (theta_dim=1)".

    Returns:
        (n, dim), n ≥ 0.
    """
    given = torch.as_tensor(value)
    out = given.to(dtype)
    if out.ndim == 0 and dim == 1:
        out = out.reshape(1, 1)
    elif out.ndim == 1:
        out = out[:, None] if dim == 1 else out[None]
    if out.ndim != 2 or out.shape[1] != dim:
        one = "(n,)" if dim == 1 else f"({dim},) for one point"
        raise ValueError(f"{name} must have shape (n, {dim}){hint} or {one}; got {tuple(given.shape)}.")
    if finite and out.is_floating_point() and not bool(torch.isfinite(out).all()):
        row = int((~torch.isfinite(out.detach())).any(1).nonzero()[0, 0])
        raise ValueError(f"{name} holds NaN or infinite values (first in row {row}: {out[row].tolist()}): "
                         "drop or fix them.")
    return out


def shaped_rows(value, shape: tuple[int, ...], name: str, dtype: torch.dtype = DTYPE, finite: bool = True,
                hint: str = "") -> Tensor:
    """Points of any shape (an image (C, H, W), a series, a set) as (n, *shape) of `dtype`.

    Arguments:
        value: (n, *shape); or flat rows (n, size) with size the number of elements of one point; or one
            point (shape).
        shape: the shape of one point.
        name, dtype, finite, hint: as in `rows`.

    Returns:
        (n, *shape), n ≥ 0.
    """
    shape = tuple(int(d) for d in shape)
    size = int(np.prod(shape))
    given = torch.as_tensor(value)
    out = given.to(dtype)
    if tuple(out.shape) == shape:
        out = out[None]
    elif out.ndim == 2 and out.shape[1] == size:
        out = out.reshape(len(out), *shape)
    if tuple(out.shape[1:]) != shape:
        dims = ", ".join(map(str, shape))
        raise ValueError(f"{name} must have shape (n, {dims}){hint}, or flat rows (n, {size}), or one point ({dims}); "
                         f"got {tuple(given.shape)}. Give x of the shape the model was trained on (resize or crop "
                         "images to it).")
    if finite and out.is_floating_point() and not bool(torch.isfinite(out).all()):
        row = int((~torch.isfinite(out.detach())).flatten(1).any(1).nonzero()[0, 0])
        raise ValueError(f"{name} holds NaN or infinite values (first in row {row}): drop or fix them.")
    return out


SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def full_names(names, dim: int) -> tuple[str, ...] | None:
    """`names` as a tuple when it is a list or tuple of `dim` strings (one per component of θ), else None."""
    if names is not None and not isinstance(names, str) and len(names) == dim and all(isinstance(n, str) for n in names):
        return tuple(names)
    return None


def theta_names(source, dim: int) -> tuple[str, ...]:
    """The names of θ's components: `source` itself (a list or tuple), `source.theta_names` (a simulator's,
    a Model's) or `source.theta_names_` (a fitted surrogate's) when it names all `dim` of them, else θ for one dimension and θ₀, θ₁, … for more.

    Example:
        >>> theta_names(None, 2)
        ('θ₀', 'θ₁')
    """
    if isinstance(source, (list, tuple)):
        names = source
    else:
        names = getattr(source, "theta_names", None) or getattr(source, "theta_names_", None)
    names = full_names(names, dim)
    if names is not None:
        return names
    return ("θ",) if dim == 1 else tuple(f"θ{str(j).translate(SUBSCRIPTS)}" for j in range(dim))
