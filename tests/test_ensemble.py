"""Ensembles (goldmine.estimators.ensemble) and the gold-or-goldless default method of the estimators."""

import json
import warnings

import numpy as np
import pytest
import torch

import goldmine as gm
from goldmine.cli import main
from goldmine.estimators.ensemble import Bootstrap
from goldmine.inference.ensemble_check import member_spread
from goldmine.simulators import BlackBoxSimulator, GaltonBoard, box_prior
from goldmine.workflow.training import make_estimator, method_options

SMALL = {"epochs": 3, "hidden": (16, 16), "progress": False}
X = torch.arange(0.0, 31.0, dtype=torch.float64)[:, None]


@pytest.fixture(scope="module")
def galton(tmp_path_factory):
    path = tmp_path_factory.mktemp("ens") / "galton.h5"
    return gm.simulate(GaltonBoard(), 1000, path, seed=3, progress=False)


@pytest.fixture(scope="module")
def ensemble(galton):
    return gm.Ensemble(gm.RatioEstimator("carl", **SMALL), 3).fit(galton)


def line(theta: float) -> torch.Tensor:
    return torch.full((len(X), 1), theta, dtype=torch.float64)


# -- bootstrap rows, no training ----------------------------------------------------------------------


def test_bootstrap_resamples_whole_pairs_of_the_training_rows(galton):
    boot = Bootstrap(galton, 0.1, seed=0)
    train, val = galton.split(0.1)
    assert len(boot) == len(train) and boot.split(0.1) == (boot, boot.held_out)
    assert (boot.held_out.start, boot.held_out.stop) == (val.start, val.stop)
    rows = boot.rows.reshape(-1, 2)
    assert (rows[:, 0] % 2 == 0).all() and (rows[:, 1] == rows[:, 0] + 1).all() and rows.max() < train.stop
    assert len(np.unique(rows[:, 0])) < len(rows)  # with replacement: some pairs repeat (1 − e^-1 unique)
    read = boot.tensors(["theta", "label"], drop_invalid=False)
    full = galton.tensors(["theta", "label"], drop_invalid=False)
    torch.testing.assert_close(read["theta"], full["theta"][torch.from_numpy(boot.rows)])
    chunked = torch.cat([b["theta"] for b in boot.batches(100, ["theta"], shuffle=False, chunk_rows=128)])
    torch.testing.assert_close(chunked, read["theta"])
    assert (boot.tensors(["label"], label=1)["label"] == 1).all()
    with pytest.raises(ValueError, match="validation=0.1"):
        boot.split(0.2)


def test_constructor_refuses_what_is_no_likelihood_estimator():
    with pytest.raises(TypeError, match="RatioEstimator"):
        gm.Ensemble("alices", 3)
    with pytest.raises(TypeError, match="likelihood"):
        gm.Ensemble(gm.ScoreEstimator(), 3)
    with pytest.raises(ValueError, match="members"):
        gm.Ensemble(gm.RatioEstimator("carl"), 0)


def test_the_option_ensemble_of_the_ratio_and_likelihood_methods():
    assert method_options("alices")["ensemble"] == 1 and method_options("nle")["ensemble"] == 1
    assert "ensemble" not in method_options("sally") and "ensemble" not in method_options("npe")
    assert isinstance(make_estimator("carl", {"ensemble": 1}), gm.RatioEstimator)  # k = 1: the plain estimator
    est = make_estimator("scandal", {"ensemble": 4, "epochs": 2})
    assert isinstance(est, gm.Ensemble) and est.k == 4 and est.template.method == "scandal"
    with pytest.raises(ValueError, match="ensemble must be a positive integer"):
        make_estimator("carl", {"ensemble": 0})


def test_list_shows_the_option(capsys):
    assert main(["list", "alices"]) == 0
    assert "ensemble" in capsys.readouterr().out


# -- a fitted ensemble -------------------------------------------------------------------------------


@pytest.mark.slow
def test_mean_and_spread_of_the_members(ensemble):
    assert len(ensemble.members_) == 3 and ensemble.capabilities >= {"likelihood", "ratio", "score", "ensemble"}
    theta = line(0.4)
    members = torch.stack([m.log_ratio(X, theta) for m in ensemble.members_])
    assert torch.equal(ensemble.log_ratio(X, theta), members.mean(0))
    assert torch.equal(ensemble.log_likelihood_terms(X, theta), ensemble.member_terms(X, theta).mean(0))
    assert torch.equal(ensemble.log_ratio_std(X, theta), members.std(0))
    std = ensemble.log_ratio_std(X, theta)
    assert (std >= 0).all() and (std > 0).any()
    assert torch.equal(ensemble.log_ratio_std(X, line(0.0)), torch.zeros(len(X)))  # every member is 0 at θ_ref
    seeds = [m.trainer.seed for m in ensemble.members_]
    assert seeds == [0, 1, 2] and not torch.equal(members[0], members[1])
    assert ensemble.score(X, theta).shape == (len(X), 1)


def test_the_table_of_every_pair_is_forwarded(ensemble):
    grid = torch.linspace(-0.8, 0.8, 4)[:, None]
    table = ensemble.log_likelihood_table(X, grid)
    assert table.shape == (4, len(X))
    for j, theta in enumerate(grid):  # the same terms as pair by pair, up to float rounding of other batch shapes
        torch.testing.assert_close(table[j], ensemble.log_likelihood_terms(X, theta[None]).float(), rtol=1e-5,
                                   atol=1e-5)
    assert gm.Ensemble(gm.RatioEstimator("carl", **SMALL), 2).log_likelihood_table is None  # not fitted


@pytest.mark.slow
def test_save_load_is_exact(ensemble, tmp_path):
    ensemble.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["class"] == "Ensemble" and config["params"]["members"] == 3
    loaded = gm.load(tmp_path / "m")
    theta = line(-0.3)
    assert isinstance(loaded, gm.Ensemble) and loaded.method == "carl"
    assert torch.equal(loaded.log_ratio(X, theta), ensemble.log_ratio(X, theta))
    assert torch.equal(loaded.log_ratio_std(X, theta), ensemble.log_ratio_std(X, theta))
    assert len(loaded.history_["members"]) == 3


@pytest.mark.slow
def test_inference_with_an_ensemble(ensemble):
    sim = GaltonBoard()
    x = sim.sample(torch.full((200, 1), 0.3, dtype=torch.float64), generator=torch.Generator().manual_seed(1)).x
    fit = gm.inference.mle(ensemble, x, prior=sim)
    assert -1 <= float(fit.theta[0]) <= 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        region = gm.inference.confidence_region(ensemble, x, level=0.68, prior=sim)
    spread = region.members
    assert spread.q.shape == (3, len(region.grid)) and spread.sizes.shape == (3,)
    assert spread.union_size >= float(spread.sizes.max()) and spread.excess >= 0
    assert bool((spread.union | ~spread.inside.any(0)).all())
    assert spread.boundary_spread >= 0
    plain = gm.inference.confidence_region(ensemble.members_[0], x, level=0.68, prior=sim)
    assert plain.members is None


def test_members_that_disagree_warn():
    """Two members with likelihood surfaces peaked at opposite ends: the union is twice their mean size."""

    class Peaked:
        capabilities, theta_dim_, x_dim_ = frozenset({"likelihood"}), 1, 1

        def __init__(self, centre):
            self.centre = centre

        def log_likelihood_terms(self, x, theta):
            return -50.0 * (theta[:, 0] - self.centre) ** 2

    class Pair:
        capabilities, theta_dim_, x_dim_ = frozenset({"likelihood", "ensemble"}), 1, 1
        members_ = [Peaked(-0.5), Peaked(0.5)]

        def log_likelihood_terms(self, x, theta):
            return torch.stack([m.log_likelihood_terms(x, theta) for m in self.members_]).mean(0)

    prior = box_prior([-1.0], [1.0])
    with pytest.warns(RuntimeWarning, match="members of the ensemble disagree"):
        region = gm.inference.confidence_region(Pair(), torch.zeros(1, 1), level=0.68, prior=prior)
    assert region.members.excess == pytest.approx(1.0, abs=0.05) and region.members.boundary_spread > 0
    model = gm.inference.Model(Peaked(0.0), prior=prior)
    assert member_spread(model, model.grid(), torch.zeros(1, 1), None, torch.ones(101)) is None


@pytest.mark.slow
def test_likelihood_ensemble_and_cli(galton, tmp_path):
    est = gm.Ensemble(gm.LikelihoodEstimator("nle", epochs=2, hidden=(8,), progress=False), 2).fit(galton)
    theta = line(0.2)
    assert est.kind == "likelihood"
    means = torch.stack([m.log_prob(X, theta) for m in est.members_]).mean(0)
    assert torch.equal(est.log_prob(X, theta), means)
    out = tmp_path / "model"
    assert main(["train", "carl", str(galton.path), "-o", str(out), "--option", "ensemble=2", "--epochs", "1",
                 "--hidden", "8", "--quiet"]) == 0
    loaded = gm.load(out)
    assert isinstance(loaded, gm.Ensemble) and loaded.k == 2
    assert json.loads((out / "trained_on.json").read_text())["options"]["ensemble"] == 2


# -- the default method: gold when there is gold --------------------------------------------------------


def box_fn(theta: np.ndarray) -> np.ndarray:
    return theta + np.random.normal(size=theta.shape)


@pytest.fixture(scope="module")
def goldless_data(tmp_path_factory):
    sim = BlackBoxSimulator(box_fn, box_prior([-1.0], [1.0]))
    return gm.simulate(sim, 200, tmp_path_factory.mktemp("box") / "box.h5", seed=0, progress=False)


def test_default_method_follows_the_gold(galton, goldless_data, tmp_path):
    quick = {"epochs": 1, "hidden": (8,), "progress": False}
    assert gm.RatioEstimator(**quick).method is None
    assert gm.RatioEstimator(**quick).fit(goldless_data).method == "carl"
    ratio = gm.RatioEstimator(**quick).fit(galton)
    assert ratio.method == "alice" and ratio.params["method"] == "alice" and ratio.alpha == 1.0
    ratio.save(tmp_path / "r")
    assert gm.load(tmp_path / "r").method == "alice"
    flow = {"epochs": 1, "hidden": (8,), "progress": False}
    assert gm.LikelihoodEstimator(**flow).fit(goldless_data).params["method"] == "nle"
    assert gm.LikelihoodEstimator(**flow).fit(galton).method == "scandal"
    assert gm.RatioEstimator("rascal").alpha == 10.0  # a named method keeps its own defaults
