"""Fitted estimators keep the names of θ's components of their data's simulator (theta_names_), save and load
them with the model, and inference names θ by them when no simulator is given."""

import json

import pytest
import torch

import goldmine as gm
from goldmine.inference import Model


@pytest.fixture(scope="module")
def weinberg(tmp_path_factory):
    sim = gm.simulators.Weinberg()
    return sim, gm.simulate(sim, 200, tmp_path_factory.mktemp("w") / "w.h5", progress=False)


def test_theta_names_round_trip_and_name_theta_in_inference(weinberg, tmp_path):
    sim, data = weinberg
    est = gm.RatioEstimator("carl", epochs=1, hidden=(8,), progress=False).fit(data)
    assert est.theta_names_ == sim.theta_names == ("E", "G_f")
    est.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["fitted"]["theta_names"] == ["E", "G_f"]
    loaded = gm.load(tmp_path / "m")
    assert loaded.theta_names_ == ("E", "G_f")
    assert Model(loaded, prior=sim.prior).theta_names == ("E", "G_f")  # no simulator passed


def test_an_ensemble_keeps_its_members_names(weinberg, tmp_path):
    _, data = weinberg
    est = gm.Ensemble(gm.RatioEstimator("carl", epochs=1, hidden=(8,), progress=False), 2).fit(data)
    assert est.theta_names_ == ("E", "G_f")
    assert gm.load(est.save(tmp_path / "e")).theta_names_ == ("E", "G_f")


def test_rows_without_a_simulator_give_no_names_and_load_checks_them(tmp_path):
    theta = torch.rand(40, 2)
    est = gm.RatioEstimator("nre", epochs=1, hidden=(8,), progress=False).fit((theta, theta + 0.1))
    assert est.theta_names_ is None
    est.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert "theta_names" not in config["fitted"]  # a model without names is saved as before
    assert gm.load(tmp_path / "m").theta_names_ is None
    assert Model(gm.load(tmp_path / "m")).theta_names == ("θ₀", "θ₁")
    config["fitted"]["theta_names"] = ["only one"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="theta_names"):
        gm.load(tmp_path / "m")


def test_histograms_keep_the_names(weinberg, tmp_path):
    sim, data = weinberg
    histogram = gm.HistogramRatio(theta_bins=2).fit(data)
    assert histogram.theta_names_ == ("E", "G_f")
    assert gm.load(histogram.save(tmp_path / "h")).theta_names_ == ("E", "G_f")
    sallino = gm.ScoreEstimator("sallino", epochs=1, hidden=(8,), progress=False).fit(data)
    assert sallino.theta_names_ == ("E", "G_f")
    assert Model(sallino.likelihood_surrogate(data), prior=sim.prior).theta_names == ("E", "G_f")
