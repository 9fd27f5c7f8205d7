"""Classical baselines that learn no network.

HistogramRatio: the likelihood ratio from histograms of x, one per bin of θ. Rows drawn at θ
(label 0) fill the histogram of their θ bin t, rows drawn at θ_ref (label 1) the reference
histogram; with add-half smoothing of the counts c over the K bins of x,

    p̂(b|t) = (c_tb + ½) / (N_t + K/2),    log r̂(x|θ, θ_ref) = log p̂(b(x)|t(θ)) − log p̂(b(x)|ref),

which is finite everywhere. Both histograms share the bins of x, so the bin widths cancel: the
ratio of bin probabilities is the ratio of densities. It is the method the gold methods beat: its
bins multiply with the dimension, and it needs many rows per θ bin.

References:
    Brehmer, Louppe, Pavez, Cranmer, "Mining gold from implicit models to improve likelihood-free
    inference", PNAS 117 (2020) 5242, https://arxiv.org/abs/1805.12244 (histograms as baseline)
    Freedman, Diaconis, "On the histogram as a density estimator: L2 theory", Z. Wahrscheinlichkeits-
    theorie verw. Gebiete 57 (1981) 453 (the default number of bins for continuous x)
"""

from __future__ import annotations

import math
import os

import torch
from torch import Tensor

from .. import checks
from ..data import Dataset
from ..memory import as_data
from .base import data_theta_names, names_record, range_record, register, restore_names, restore_range, write_folder
from .registry import Method, register_method

DTYPE = torch.float64
SMOOTHING = 0.5  # pseudo-count added to every bin
QUANTILES = (0.001, 0.999)  # continuous x: even bins between these quantiles, overflow bins outside
MAX_INTEGER_BINS = 10_000  # integer x spanning more values than this is binned as continuous
SAMPLE_ROWS = 1_000_000  # rows whose x set the quantiles of continuous x
CHUNK = 65_536


@register
class HistogramRatio:
    """Log-ratio estimator from per-θ-bin histograms of x, for d_θ ∈ {1, 2} and d_x = 1.

    Arguments:
        theta_bins: bins per θ dimension, evenly spaced over [low, high].
        x_bins: even bins of continuous x between its 0.1% and 99.9% quantiles (plus an
            underflow and an overflow bin). By default the Freedman–Diaconis rule,
            width = 2·IQR·n^(−1/3), with n the mean number of label-0 rows per θ bin (clipped to
            1..1000 bins). Integer-valued x gets one bin per integer instead and ignores x_bins.
        low, high: the θ box (d_θ values each); by default the range of θ in the data. θ outside
            the box falls into the edge bins.

    Attributes (after fit):
        theta_dim_, x_dim_, reference_ (θ_ref, (d_θ,)), theta_low_ and theta_high_ (d_θ,),
        x_edges_ (B + 1,) inner edges of x (bins: (−∞, e_0), [e_0, e_1), ..., [e_B, ∞)),
        discrete_ (bool), counts_ (theta_bins^d_θ, B + 2), ref_counts_ (B + 2,), x_low_ and x_high_ (1,),
        the range of the finite x it counted.

    Example:
        >>> import goldmine as gm, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "galton.h5")
        >>> data = gm.simulate(gm.simulators.GaltonBoard(), 2000, path, progress=False)
        >>> est = HistogramRatio(theta_bins=5).fit(data)
        >>> est.log_ratio(torch.tensor([[14.0], [16.0]]), torch.tensor([[0.5], [0.5]])).shape
        torch.Size([2])
    """

    kind = "ratio"
    capabilities = frozenset({"likelihood", "ratio"})

    def __init__(self, theta_bins: int = 20, x_bins: int | None = None, low=None, high=None):
        checks.positive_int(theta_bins, "theta_bins")
        if x_bins is not None:
            checks.positive_int(x_bins, "x_bins")
        if (low is None) != (high is None):
            raise ValueError("give both low and high (the θ box), or neither to take it from the data.")
        if low is not None:
            _check_box(low, high)
        self.theta_bins, self.x_bins, self.low, self.high = theta_bins, x_bins, low, high

    def config(self) -> dict:
        """The constructor's arguments as plain JSON values."""
        box = lambda v: None if v is None else torch.as_tensor(v, dtype=DTYPE).reshape(-1).tolist()  # noqa: E731
        return {"theta_bins": self.theta_bins, "x_bins": self.x_bins, "low": box(self.low), "high": box(self.high)}

    def __repr__(self) -> str:
        return f"HistogramRatio({', '.join(f'{k}={v!r}' for k, v in self.config().items())})"

    # -- fitting ---------------------------------------------------------------------------------

    def fit(self, dataset: Dataset | str | os.PathLike) -> "HistogramRatio":
        """Counts the rows of a data set (streamed in chunks) into the histograms; returns self."""
        data = as_data(dataset)
        if data.theta_dim not in (1, 2) or data.x_dim != 1:
            raise ValueError(
                f"HistogramRatio supports θ of dimension 1 or 2 and one-dimensional x; {data.path} has "
                f"θ of shape (n, {data.theta_dim}) and x of shape (n, {data.x_dim}). Histograms in more "
                "dimensions are mostly empty bins: use a neural ratio estimator (gm.RatioEstimator)."
            )
        d = data.theta_dim
        scan = self._scan(data)
        if scan["rows"][0] == 0 or scan["rows"][1] == 0:
            raise ValueError(
                f"{data.path} needs rows drawn at θ (label 0) and at θ_ref (label 1); it has "
                f"{scan['rows'][0]} and {scan['rows'][1]}."
            )
        low, high = self._box(scan, d)
        per_bin = scan["rows"][0] / self.theta_bins**d
        discrete, edges = _x_edges(scan, self.x_bins, per_bin)

        self.theta_dim_, self.x_dim_ = d, 1
        self.x_low_ = torch.tensor([scan["x_min"]], dtype=DTYPE)
        self.x_high_ = torch.tensor([scan["x_max"]], dtype=DTYPE)
        self.reference_ = data.reference.to(DTYPE).clone()
        self.theta_names_ = data_theta_names(data)
        self.theta_low_, self.theta_high_ = low, high
        self.discrete_, self.x_edges_ = discrete, edges
        k = len(edges) + 1
        counts = torch.zeros(self.theta_bins**d * k, dtype=DTYPE)
        ref_counts = torch.zeros(k, dtype=DTYPE)
        for batch in _stream(data):
            xb = self._x_bin(batch["x"])
            at = batch["label"] == 0
            counts += torch.bincount(self._theta_bin(batch["theta"][at]) * k + xb[at], minlength=len(counts))
            ref_counts += torch.bincount(xb[~at], minlength=k)
        self.counts_ = counts.reshape(-1, k)
        self.ref_counts_ = ref_counts
        return self

    def _scan(self, data: Dataset) -> dict:
        """One pass: θ range, label counts, whether x is integer-valued, x range, a sample of x."""
        lo = hi = None
        rows, integer, x_min, x_max, sample, kept = [0, 0], True, math.inf, -math.inf, [], 0
        for batch in _stream(data):
            theta, x = batch["theta"], batch["x"][:, 0]
            lo = theta.min(0).values if lo is None else torch.minimum(lo, theta.min(0).values)
            hi = theta.max(0).values if hi is None else torch.maximum(hi, theta.max(0).values)
            ones = int(batch["label"].sum())
            rows[0] += len(x) - ones
            rows[1] += ones
            integer = integer and bool((x == x.round()).all())
            x_min, x_max = min(x_min, float(x.min())), max(x_max, float(x.max()))
            if kept < SAMPLE_ROWS:  # rows are independent draws, so the first ones are a fair sample
                sample.append(x[: SAMPLE_ROWS - kept])
                kept += len(sample[-1])
        if lo is None:
            raise ValueError(f"{data.path} holds no rows with finite x: nothing to fit.")
        return {"rows": rows, "theta_min": lo, "theta_max": hi, "integer": integer, "x_min": x_min,
                "x_max": x_max, "sample": torch.cat(sample)}

    def _box(self, scan: dict, d: int) -> tuple[Tensor, Tensor]:
        if self.low is None:
            low, high = scan["theta_min"].clone(), scan["theta_max"].clone()
            flat = high <= low  # all rows at one θ: any box around it will do
            return low - flat.to(DTYPE), high + flat.to(DTYPE)
        low = torch.as_tensor(self.low, dtype=DTYPE).reshape(-1)
        high = torch.as_tensor(self.high, dtype=DTYPE).reshape(-1)
        if low.shape != (d,) or high.shape != (d,) or not bool((low < high).all()):
            raise ValueError(
                f"low and high must each hold {d} value(s) (one per θ dimension) with low < high; "
                f"got low={low.tolist()}, high={high.tolist()}."
            )
        return low, high

    # -- evaluation -----------------------------------------------------------------------------

    def _theta_bin(self, theta: Tensor) -> Tensor:
        return theta_bin_index(theta, self.theta_low_, self.theta_high_, self.theta_bins)

    def _x_bin(self, x: Tensor) -> Tensor:
        """The x-bin index (n,) of x: (n, 1); 0 and B + 1 are the under- and overflow bins."""
        return torch.bucketize(x[:, 0].contiguous(), self.x_edges_, right=True)

    def log_ratio(self, x, theta) -> Tensor:
        """log r̂(x|θ, θ_ref): x (n, 1), θ (n, d_θ) (or one point (d_θ,) for all rows) → (n,) float64."""
        if not hasattr(self, "counts_"):
            raise RuntimeError("this HistogramRatio is not fitted yet: call fit(dataset) first.")
        x, theta = self._check(x, theta)
        k = self.counts_.shape[1]
        norm = self.counts_.sum(1) + SMOOTHING * k  # (T,)
        xb, tb = self._x_bin(x), self._theta_bin(theta)
        log_p = (self.counts_[tb, xb] + SMOOTHING).log() - norm[tb].log()
        log_ref = (self.ref_counts_[xb] + SMOOTHING).log() - math.log(float(self.ref_counts_.sum()) + SMOOTHING * k)
        return log_p - log_ref

    def log_likelihood_terms(self, x, theta) -> Tensor:
        """log p̂(x|θ) up to a constant in θ: log r̂(x|θ, θ_ref), (n,) (`goldmine.inference.surrogate`)."""
        return self.log_ratio(x, theta)

    STATE = ("counts_", "ref_counts_", "x_edges_", "theta_low_", "theta_high_", "reference_")

    def save(self, path) -> "os.PathLike":
        """Writes the histograms like every estimator: config.json and weights.safetensors (no pickle)."""
        if not hasattr(self, "counts_"):
            raise RuntimeError("this HistogramRatio is not fitted yet: call fit(dataset) first.")
        config = {"class": "HistogramRatio", "params": self.config(), "training": {},
                  "fitted": {"theta_dim": self.theta_dim_, "x_dim": self.x_dim_, "discrete": self.discrete_,
                             **names_record(self), **range_record(self)}}
        return write_folder(path, config, {k: getattr(self, k) for k in self.STATE}, {})

    @classmethod
    def _restore(cls, config: dict, state: dict[str, Tensor]) -> "HistogramRatio":
        est = cls(**config["params"])
        est.theta_dim_, est.x_dim_ = config["fitted"]["theta_dim"], config["fitted"]["x_dim"]
        est.discrete_ = config["fitted"]["discrete"]
        est.theta_names_ = restore_names(config["fitted"])
        restore_range(est, config["fitted"])
        for key in cls.STATE:
            setattr(est, key, state[key])
        return est

    def _check(self, x, theta) -> tuple[Tensor, Tensor]:
        d = self.theta_dim_
        x = torch.as_tensor(x).detach().to(DTYPE)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != 1:
            raise ValueError(f"x must have shape (n, 1) (the data's x_dim); got {tuple(x.shape)}.")
        theta = torch.as_tensor(theta).detach().to(DTYPE)
        if theta.ndim == 1:
            theta = theta[None] if d > 1 or len(theta) == 1 else theta[:, None]
        if theta.ndim != 2 or theta.shape[1] != d or theta.shape[0] not in (1, len(x)):
            raise ValueError(
                f"x has shape {tuple(x.shape)} and theta has shape {tuple(theta.shape)}: theta must be "
                f"(n, {d}) with the same n as x, or a single point ({d},)."
            )
        if not (torch.isfinite(x).all() and torch.isfinite(theta).all()):
            raise ValueError("x or theta holds NaN or infinite values.")
        return x, theta.expand(len(x), d)


def _check_box(low, high) -> None:
    """Raises a ValueError unless low and high are finite numbers (one per θ dimension) with low < high."""
    try:
        lo = torch.as_tensor(low, dtype=DTYPE).reshape(-1)
        hi = torch.as_tensor(high, dtype=DTYPE).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"low and high must be numbers, one per θ dimension; got low={low!r}, high={high!r}.") from None
    if lo.shape != hi.shape or len(lo) == 0 or not (torch.isfinite(lo).all() and torch.isfinite(hi).all()) \
            or not bool((lo < hi).all()):
        raise ValueError(f"low and high must hold as many finite numbers each (one per θ dimension) with low < high; "
                         f"got low={lo.tolist()}, high={hi.tolist()}.")


def theta_bin_index(theta: Tensor, low: Tensor, high: Tensor, bins: int) -> Tensor:
    """The flat index (n,) of θ: (n, d_θ) in an even grid of `bins` per dimension over the box
    [low, high]; θ outside the box falls into the nearest edge bin."""
    unit = (theta - low) / (high - low).clamp(min=1e-12)
    idx = (unit * bins).floor().clamp(0, bins - 1).long()
    flat = torch.zeros(len(theta), dtype=torch.long)
    for j in range(idx.shape[1]):
        flat = flat * bins + idx[:, j]
    return flat


def _stream(data: Dataset):
    return data.batches(CHUNK, ("theta", "x", "label"), shuffle=False, dtype=DTYPE, chunk_rows=CHUNK)


def _x_edges(scan: dict, x_bins: int | None, per_bin: float) -> tuple[bool, Tensor]:
    """Whether x is binned per integer, and the inner bin edges of x (B + 1,)."""
    if scan["integer"] and scan["x_max"] - scan["x_min"] < MAX_INTEGER_BINS:
        return True, torch.arange(scan["x_min"] - 0.5, scan["x_max"] + 1.0, 1.0, dtype=DTYPE)
    sample = scan["sample"]
    lo, hi = torch.quantile(sample[: 2**24 - 1], torch.tensor(QUANTILES, dtype=DTYPE)).tolist()  # quantile's size cap
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    if x_bins is None:
        q1, q3 = torch.quantile(sample[: 2**24 - 1], torch.tensor([0.25, 0.75], dtype=DTYPE)).tolist()
        if q3 > q1:
            x_bins = math.ceil((hi - lo) / (2.0 * (q3 - q1) * max(per_bin, 1.0) ** (-1.0 / 3.0)))
        else:  # a spike at one value: fall back to the square-root rule
            x_bins = math.ceil(math.sqrt(max(per_bin, 1.0)))
        x_bins = min(max(x_bins, 1), 1000)
    return False, torch.linspace(lo, hi, x_bins + 1, dtype=DTYPE)


register_method(Method("histogram", "baseline", HistogramRatio, "histograms of x per θ bin (no network)",
                       "Brehmer, Louppe, Pavez, Cranmer, arXiv:1805.12244 (as baseline)",
                       fields=("theta", "x", "label"), neural=False))
register_method(Method("abc", "baseline", None, "rejection and SMC ABC, in gm.inference (no network)",
                       "Beaumont, Cornuet, Marin, Robert, arXiv:0805.2256", from_data=False, neural=False))

__all__ = ["HistogramRatio"]
