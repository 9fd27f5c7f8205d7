"""Which weights a fit keeps (Trainer keep=, validation monitors, the history's record of why) and the data
layout "prior" (every run at θ ~ prior) for the methods that read no run at θ_ref."""

import pytest
import torch
from torch import nn

import goldmine as gm
from goldmine.estimators.registry import layout_for, methods
from goldmine.training import Trainer


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return gm.simulate(gm.simulators.GaltonBoard(), 2000, tmp_path_factory.mktemp("ms") / "g.h5", seed=0,
                       progress=False)


def regression_loss(net, batch):
    return ((net(batch["x"]) - batch["score"]) ** 2).mean()


def abs_loss(net, batch):
    return (net(batch["x"]) - batch["score"]).abs().mean()


def net():
    torch.manual_seed(0)
    return nn.Linear(1, 1)


def test_the_default_keeps_the_final_weights_and_says_why(data):
    trainer = Trainer(epochs=4, batch_size=64, lr=1e-2, progress=False)
    history = trainer.fit(net(), regression_loss, data, ("x", "score"), monitors={"abs": abs_loss})
    assert history["kept"] == "final" and history["kept_epoch"] == 4 and history["kept_by"] is None
    assert "final" in history["kept_why"] and "benchmarks/README.md" in history["kept_why"]
    assert history["kept_val_loss"] == history["val_loss"][-1]
    assert len(history["val_abs"]) == 4
    assert history["best_epochs"]["abs"] == 1 + min(range(4), key=history["val_abs"].__getitem__)
    assert history["best_epochs"]["loss"] == history["best_epoch"]


def test_keep_a_monitor_restores_its_best_epoch(data):
    trainer = Trainer(epochs=4, batch_size=64, lr=1e-2, keep="abs", progress=False)
    model = net()
    history = trainer.fit(model, regression_loss, data, ("x", "score"), monitors={"abs": abs_loss})
    assert history["kept_by"] == "abs" and history["kept"] == "best"
    _, val = data.split(0.1)
    again = abs_loss(model, val.tensors(["x", "score"])).item()
    assert abs(again - min(history["val_abs"])) < 1e-5  # the same computation on the same rows


def test_keep_names_an_unknown_monitor(data):
    with pytest.raises(ValueError, match="names no validation monitor"):
        Trainer(epochs=1, keep="xent", progress=False).fit(net(), regression_loss, data, ("x", "score"))
    with pytest.raises(ValueError, match="keep must be"):
        Trainer(keep="")


def test_ratio_estimator_records_the_gold_free_cross_entropy(data):
    est = gm.RatioEstimator("alice", epochs=2, keep="xent", progress=False).fit(data)
    assert len(est.history_["val_xent"]) == 2
    assert est.history_["kept_by"] == "xent"
    assert est.history_["kept_epoch"] == 1 + min(range(2), key=est.history_["val_xent"].__getitem__)


def test_layout_prior_has_every_run_at_a_prior_theta(tmp_path):
    sim = gm.simulators.GaltonBoard()
    pairs = gm.simulate(sim, 400, tmp_path / "a.h5", seed=1, progress=False)
    prior = gm.simulate(sim, 400, tmp_path / "b.h5", seed=1, progress=False, layout="prior")
    assert pairs.layout == "pairs" and prior.layout == "prior" and "layout" not in pairs.meta
    t = prior.tensors()
    assert (t["label"] == 0).all() and len(t["theta"].unique()) == 400
    # the same seed gives the same data again, and a pairs file the same arrays as before the option existed
    again = gm.simulate(sim, 400, tmp_path / "c.h5", seed=1, progress=False, layout="prior").tensors()
    assert all(torch.equal(t[k], again[k]) for k in t)
    with pytest.raises(ValueError, match="different data set"):
        gm.simulate(sim, 400, tmp_path / "a.h5", seed=1, progress=False, layout="prior")
    with pytest.raises(ValueError, match="layout must be"):
        gm.simulate(sim, 400, tmp_path / "d.h5", layout="ref")


def test_layout_prior_trains_the_methods_that_need_no_reference_runs(tmp_path):
    data = gm.simulate(gm.simulators.GaltonBoard(), 400, tmp_path / "p.h5", progress=False, layout="prior")
    assert gm.RatioEstimator(epochs=1, progress=False).fit(data).method == "nre"
    with pytest.raises(ValueError, match="needs runs drawn at θ_ref"):
        gm.RatioEstimator("alices", epochs=1, progress=False).fit(data)
    assert layout_for(["npe", "nre", "nle", "scandal"]) == "prior"
    assert layout_for(["npe", "carl"]) == "pairs"
    assert {m for m, spec in methods().items() if spec.from_data and not spec.needs_reference_runs} == {
        "nre", "nres", "npe", "nle", "scandal"}


def test_a_method_on_rows_at_theta_warns_of_the_runs_at_theta_ref_it_leaves_unused(tmp_path):
    import warnings

    from goldmine.estimators.base import UnusedRunsWarning

    sim = gm.simulators.GaltonBoard()
    pairs = gm.simulate(sim, 400, tmp_path / "pairs.h5", progress=False)
    prior = gm.simulate(sim, 400, tmp_path / "prior.h5", progress=False, layout="prior")
    with pytest.warns(UnusedRunsWarning, match=r"200 of the 400 runs .* layout='prior'"):
        gm.RatioEstimator("nre", epochs=1, progress=False).fit(pairs)
    with pytest.warns(UnusedRunsWarning, match="200 of the 400"):
        gm.PosteriorEstimator(epochs=1, progress=False).fit(pairs)
    theta, x = prior.tensors(["theta", "x"]).values()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnusedRunsWarning)
        gm.RatioEstimator("nre", epochs=1, progress=False).fit(prior)  # every run at θ ~ prior: nothing unused
        gm.RatioEstimator("nre", epochs=1, progress=False).fit((theta, x))  # (θ, x) in memory: rows at θ only
        gm.RatioEstimator("carl", epochs=1, progress=False).fit(pairs)  # carl reads both halves
        gm.LikelihoodEstimator("nle", epochs=1, progress=False).fit(pairs)  # nle reads a run at θ_ref as (θ, x)


def test_the_command_shows_a_warning_as_one_plain_line(tmp_path, capsys):
    import sys
    import warnings

    from goldmine.cli import main

    data = gm.simulate(gm.simulators.GaltonBoard(), 400, tmp_path / "pairs.h5", progress=False)
    before = warnings.formatwarning
    with warnings.catch_warnings():  # Python's own showing (pytest records warnings instead), restored after
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: sys.stderr.write(
            warnings.formatwarning(message, category, filename, lineno, line))
        assert main(["train", "nre", str(data.path), "-o", str(tmp_path / "m"), "--epochs", "1", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "goldmine: warning: nre reads only the runs drawn at θ ~ prior: 200 of the 400 runs" in err
    assert "UnusedRunsWarning" not in err and ".py:" not in err  # no file and line of goldmine's code
    assert warnings.formatwarning is before  # restored after the command
