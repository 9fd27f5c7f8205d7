"""Today's baseline: the binned HistFactory analysis of one or two observables, with pyhf.

The expected counts in bin b at the parameters θ are s_b(θ) = L Σ_i w_i(θ) 1(x_i ∈ b), from the
weighted events. For each θ of a grid, a HistFactory model (`pyhf`) holds these counts as its one
sample, a normalisation nuisance as `normsys` (hi = 1 + δ, lo = 1/(1 + δ): exponential interpolation,
the same log-normal as `goldmine.physics.nuisance`) and a shape nuisance as `histosys` (the counts at
ν = ±1, interpolated piecewise linearly, as physicists' analyses do), each with its Gaussian
constraint. The profile likelihood ratio of the observed (or Asimov) counts, q(θ) = 2 NLL(θ, ν̂) −
min over the grid, gives the limits as for every other method (`goldmine.physics.limits`).

References:
    Cranmer, Lewis, Moneta, Shibata, Verkerke, "HistFactory: a tool for creating statistical
    models for use with RooFit and RooStats", CERN-OPEN-2012-016;
    Heinrich, Feickert, Stark, Cranmer, "pyhf: pure-Python implementation of HistFactory statistical
    models", J. Open Source Softw. 6 (2021) 2823, https://doi.org/10.21105/joss.02823
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from ..simulators.base import DTYPE
from .limits import Limits, Profile, wilks_limits


def _pyhf():
    try:
        import pyhf
    except ImportError as error:
        raise ImportError("the histogram baseline needs pyhf: pip install 'goldmine[physics]'") from error
    return pyhf


def quantile_bins(x: Tensor, weights: Tensor, observables, bins: int) -> Tensor:
    """The bin of every event: equal expected counts per observable (bins edges at weighted
    quantiles), a product of `bins` per observable for two: x (N, x_dim) → (N,) int64."""
    index = torch.zeros(x.shape[0], dtype=torch.int64)
    w = weights.clamp(min=0)
    for obs in observables:
        values = x[:, obs].contiguous()
        order = torch.argsort(values)
        cdf = torch.cumsum(w[order], 0) / w.sum()
        edges = torch.stack([values[order][int(torch.searchsorted(cdf, q / bins).clamp(max=len(cdf) - 1))]
                             for q in range(1, bins)])
        index = index * bins + torch.bucketize(values, edges, right=True)
    return index


def binned_counts(source, theta: Tensor, bin_of: Tensor, n_bins: int, luminosity: float) -> Tensor:
    """s_b(θ) = L Σ_i w_i(θ) 1(bin_i = b) at every point: θ (m, d + K) → (m, n_bins)."""
    w = luminosity * source.event_weights(theta)
    out = torch.zeros(w.shape[0], n_bins, dtype=DTYPE)
    return out.index_add_(1, bin_of, w)


def histogram_profile(source, grid, observed_counts: Tensor, bin_of: Tensor, n_bins: int, luminosity: float,
                      systematics: bool = True) -> Profile:
    """The profile likelihood of binned counts with pyhf at every θ of the grid (m, d).

    Arguments:
        source: `WeightedEvents` (with its nuisances).
        observed_counts: (n_bins,) the observed or Asimov counts.
        bin_of: (N,) the bin of every event (`quantile_bins`).
        systematics: whether the nuisances enter (normsys and histosys) or are left out.
    """
    pyhf = _pyhf()
    pyhf.set_backend("numpy")
    grid = torch.as_tensor(grid, dtype=DTYPE).reshape(-1, source.poi_dim)
    k = source.theta_dim - source.poi_dim
    nominal = binned_counts(source, torch.cat([grid, torch.zeros(len(grid), k, dtype=DTYPE)], -1), bin_of, n_bins,
                            luminosity)
    log_l, nuisances = [], []
    for j in range(len(grid)):
        modifiers = [{"name": "mu", "type": "normfactor", "data": None}]
        if systematics:
            for q, nu in enumerate(source.nuisances):
                if nu.normalisation is not None:
                    modifiers.append({"name": nu.name, "type": "normsys",
                                      "data": {"hi": 1.0 + nu.normalisation, "lo": 1.0 / (1.0 + nu.normalisation)}})
                    continue
                shifted = torch.zeros(2, source.theta_dim, dtype=DTYPE)
                shifted[:, : source.poi_dim] = grid[j]
                shifted[0, source.poi_dim + q], shifted[1, source.poi_dim + q] = 1.0, -1.0
                hi, lo = binned_counts(source, shifted, bin_of, n_bins, luminosity)
                modifiers.append({"name": nu.name, "type": "histosys",
                                  "data": {"hi_data": hi.tolist(), "lo_data": lo.tolist()}})
        spec = {"channels": [{"name": "signal_region", "samples": [
            {"name": "eft", "data": nominal[j].tolist(), "modifiers": modifiers}]}]}
        model = pyhf.Model(spec, poi_name="mu")
        data = list(observed_counts.tolist()) + list(model.config.auxdata)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            best, twice_nll = pyhf.infer.mle.fixed_poi_fit(1.0, data, model, return_fitted_val=True)
        log_l.append(-0.5 * float(np.asarray(twice_nll)))
        names = [m["name"] for m in modifiers[1:]]
        nuisances.append([float(best[model.config.par_slice(name)][0]) for name in names] + [0.0] * (k - len(names)))
    return Profile(grid, torch.tensor(log_l, dtype=DTYPE), torch.tensor(nuisances, dtype=DTYPE).reshape(len(grid), k))


def histogram_limits(source, grid, theta_true, luminosity: float, observables=(0,), bins: int = 10,
                     systematics: bool = True, levels=(0.68, 0.95)) -> Limits:
    """The median expected limits of the binned analysis: Asimov counts at θ_true (d,) in bins of
    equal expected count at θ_true for one observable (`bins`) or two (`bins`² cells)."""
    k = source.theta_dim - source.poi_dim
    truth = torch.cat([torch.as_tensor(theta_true, dtype=DTYPE).reshape(-1), torch.zeros(k, dtype=DTYPE)])[None]
    w_true = source.event_weights(truth)[0]
    observables = (observables,) if isinstance(observables, int) else tuple(observables)
    bin_of = quantile_bins(source.x, w_true, observables, bins)
    n_bins = bins ** len(observables)
    counts = binned_counts(source, truth, bin_of, n_bins, luminosity)[0]
    return wilks_limits(histogram_profile(source, grid, counts, bin_of, n_bins, luminosity, systematics), levels)
