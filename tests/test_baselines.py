"""The histogram baseline: its counts by hand, its error against the exact ratio, bad input."""

import math

import numpy as np
import pytest
import torch

import goldmine as gm
from goldmine.estimators.baselines import HistogramRatio
from goldmine.evaluate import log_ratio_error
from goldmine.simulators import GaltonBoard, GaussianMixture, Poisson, Weinberg


class Trivial:
    """log r̂ = 0: the error scale to beat."""

    def __init__(self, sim):
        self.theta_dim_, self.x_dim_, self.reference_ = sim.theta_dim, sim.x_dim, sim.reference

    def log_ratio(self, x, theta):
        return torch.zeros(len(x))


@pytest.fixture(scope="module")
def galton(tmp_path_factory):
    return gm.simulate(GaltonBoard(), 200_000, tmp_path_factory.mktemp("g") / "g.h5", progress=False)


@pytest.fixture(scope="module")
def poisson(tmp_path_factory):
    return gm.simulate(Poisson(), 4000, tmp_path_factory.mktemp("p") / "p.h5", seed=3, progress=False)


def test_galton_histogram_beats_the_trivial_estimator(galton):
    sim = GaltonBoard()
    est = HistogramRatio().fit(galton)
    assert est.discrete_ and est.counts_.shape[0] == 20
    assert est.counts_.sum() == est.ref_counts_.sum() == 100_000  # every row counted once
    error, trivial = log_ratio_error(est, sim)["mse"], log_ratio_error(Trivial(sim), sim)["mse"]
    assert error < 0.25 * trivial, (error, trivial)


def test_small_galton_set_gives_finite_ratios_everywhere(tmp_path):
    sim = GaltonBoard()
    est = HistogramRatio().fit(gm.simulate(sim, 2000, tmp_path / "small.h5", progress=False))
    slots = torch.arange(-3.0, 36.0)[:, None]  # includes slots never seen and values off the board
    assert torch.isfinite(est.log_ratio(slots, torch.full((len(slots), 1), 0.7))).all()
    out = log_ratio_error(est, sim)
    assert math.isfinite(out["mse"]) and torch.isfinite(out["per_theta"]).all()


def test_log_ratio_is_the_smoothed_count_ratio(poisson):
    """Recount a small Poisson set by hand (numpy) and compare with the add-half formula."""
    est = HistogramRatio(theta_bins=4, low=[0.2], high=[7.0]).fit(poisson)
    t = poisson.tensors(["theta", "x", "label"], dtype=torch.float64)
    theta, x, label = t["theta"][:, 0].numpy(), t["x"][:, 0].numpy().astype(int), t["label"].numpy()
    lo, hi = x.min(), x.max()
    k = hi - lo + 1 + 2  # one bin per integer in the data, plus under- and overflow
    assert est.discrete_ and est.counts_.shape == (4, k)
    tbin = np.clip(np.floor((theta - 0.2) / 6.8 * 4), 0, 3).astype(int)
    query_x = np.array([lo, lo + 3, hi, hi + 10, lo - 1])
    query_t = np.array([0.3, 2.0, 6.99, 4.0, 7.0])
    for qx, qt in zip(query_x, query_t):
        b = int(np.clip(np.floor((qt - 0.2) / 6.8 * 4), 0, 3))
        at = (label == 0) & (tbin == b)
        num = ((x[at] == qx).sum() + 0.5) / (at.sum() + 0.5 * k)
        ref = ((x[label == 1] == qx).sum() + 0.5) / ((label == 1).sum() + 0.5 * k)
        got = est.log_ratio(torch.tensor([[float(qx)]]), torch.tensor([[qt]]))
        assert got.item() == pytest.approx(math.log(num / ref), rel=1e-12)


def test_continuous_x_on_weinberg(tmp_path):
    sim = Weinberg()
    data = gm.simulate(sim, 100_000, tmp_path / "w.h5", progress=False)
    est = HistogramRatio(theta_bins=6).fit(data)
    assert not est.discrete_ and len(est.x_edges_) >= 3
    # the inner edges span the 0.1% and 99.9% quantiles of x: 0.1% of the rows lie in each overflow bin
    n = len(data)
    assert (est.counts_[:, 0].sum() + est.ref_counts_[0]) / n == pytest.approx(0.001, abs=2 / n)
    assert (est.counts_[:, -1].sum() + est.ref_counts_[-1]) / n == pytest.approx(0.001, abs=2 / n)
    out = est.log_ratio(torch.tensor([[-5.0], [0.0], [5.0]]), sim.reference)
    assert out.shape == (3,) and torch.isfinite(out).all()
    error, trivial = log_ratio_error(est, sim)["mse"], log_ratio_error(Trivial(sim), sim)["mse"]
    assert error < 0.25 * trivial, (error, trivial)
    assert HistogramRatio(theta_bins=6, x_bins=7).fit(data).counts_.shape == (36, 9)


def test_theta_outside_the_box_uses_the_edge_bins(poisson):
    est = HistogramRatio(theta_bins=3, low=[1.0], high=[4.0]).fit(poisson)
    x = torch.full((2, 1), 20.0)
    torch.testing.assert_close(est.log_ratio(x, torch.tensor([[0.2], [1.5]])).diff(), torch.zeros(1, dtype=torch.float64))
    torch.testing.assert_close(est.log_ratio(x, torch.tensor([[7.0], [3.9]])).diff(), torch.zeros(1, dtype=torch.float64))


def test_config_and_fitted_state(poisson):
    est = HistogramRatio(theta_bins=5, x_bins=None, low=[0.2], high=[7.0])
    assert HistogramRatio(**est.config()).config() == est.config() == {
        "theta_bins": 5, "x_bins": None, "low": [0.2], "high": [7.0]}
    assert est.fit(poisson) is est
    assert (est.theta_dim_, est.x_dim_) == (1, 1) and torch.equal(est.reference_, poisson.reference)
    for name in ("counts_", "ref_counts_", "x_edges_", "theta_low_", "theta_high_"):
        assert isinstance(getattr(est, name), torch.Tensor)


def test_bad_input(poisson, tmp_path):
    with pytest.raises(ValueError, match="theta_bins"):
        HistogramRatio(theta_bins=0)
    with pytest.raises(ValueError, match="x_bins"):
        HistogramRatio(x_bins=2.5)
    with pytest.raises(ValueError, match="both low and high"):
        HistogramRatio(low=[0.0])
    with pytest.raises(ValueError, match="low < high"):
        HistogramRatio(low=[1.0, 2.0], high=[3.0, 4.0]).fit(poisson)
    with pytest.raises(RuntimeError, match="fit"):
        HistogramRatio().log_ratio(torch.zeros(2, 1), torch.zeros(2, 1))
    mixture = gm.simulate(GaussianMixture(3), 200, tmp_path / "m.h5", progress=False)
    with pytest.raises(ValueError, match=r"dimension 1 or 2.*\(n, 3\).*\(n, 3\)"):
        HistogramRatio().fit(mixture)
    est = HistogramRatio(theta_bins=2).fit(poisson)
    with pytest.raises(ValueError, match=r"theta must be"):
        est.log_ratio(torch.zeros(3, 1), torch.zeros(2, 1))
    with pytest.raises(ValueError, match=r"x must have shape \(n, 1\)"):
        est.log_ratio(torch.zeros(3, 2), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="NaN"):
        est.log_ratio(torch.tensor([[math.nan]]), torch.zeros(1, 1))


def test_histogram_save_load_roundtrip(tmp_path):
    data = gm.simulate(gm.simulators.GaltonBoard(), 2000, tmp_path / "g.h5", progress=False)
    est = HistogramRatio(theta_bins=5).fit(data)
    again = gm.load(est.save(tmp_path / "hist"))
    x, theta = torch.arange(5.0, 26.0)[:, None], torch.linspace(-1, 1, 21)[:, None]
    torch.testing.assert_close(again.log_ratio(x, theta), est.log_ratio(x, theta), rtol=0, atol=0)
    assert again.config() == est.config()
