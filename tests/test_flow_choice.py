"""flow="auto" of npe and nle: both flows trained, the one of the lower validation loss kept; npe's converging schedule."""

import pytest
import torch

import goldmine as gm
from goldmine.estimators.likelihood import LikelihoodEstimator
from goldmine.estimators.posterior import CONVERGE, PosteriorEstimator
from goldmine.estimators.flow_choice import flow_candidates, pick_flow
from goldmine.nn import AUTO_FLOWS, flow_activation

SETTINGS = dict(epochs=3, transforms=1, hidden=(8,), progress=False, seed=0)


def gaussian_rows(n=300, seed=0):
    """(θ, x) with θ ~ N(0, I₂) and x = θ + 0.3·ε: every row at θ ~ prior, a conditional Gaussian both ways."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(n, 2, generator=g, dtype=torch.float64)
    return theta, theta + 0.3 * torch.randn(n, 2, generator=g, dtype=torch.float64)


def estimator(kind, **options):
    return (PosteriorEstimator if kind == "npe" else LikelihoodEstimator)(
        **({} if kind == "npe" else {"method": "nle"}), **SETTINGS, **options)


def log_q(est, theta, x):
    """log q(θ|x) of npe at one x (its mass in the box is estimated once per x), log p̂(x|θ) of nle."""
    return est.log_prob(theta, x[:1]) if isinstance(est, PosteriorEstimator) else est.log_prob(x, theta)


def test_pick_flow_keeps_the_lowest_validation_loss_and_the_first_without_one():
    assert pick_flow([("nsf", {"kept_val_loss": 1.0}), ("maf", {"kept_val_loss": 0.5})]) == 1
    assert pick_flow([("nsf", {"kept_val_loss": 0.5}), ("maf", {"kept_val_loss": 0.5})]) == 0
    assert pick_flow([("nsf", {"kept_val_loss": None}), ("maf", {"kept_val_loss": 0.5})]) == 0
    assert flow_candidates("auto", None) == tuple(f for f, _ in AUTO_FLOWS)
    assert flow_candidates("auto", "maf") == ("maf",) and flow_candidates("nsf", None) == ("nsf",)
    assert flow_activation("auto", "maf", None) == "tanh" and flow_activation("maf", "maf", None) == "silu"
    assert flow_activation("auto", "maf", "elu") == "elu"


@pytest.mark.parametrize("kind", ["npe", "nle"])
def test_auto_is_the_named_flow_of_the_lower_validation_loss(kind, tmp_path):
    rows = gaussian_rows()
    auto = estimator(kind).fit(rows)
    named = {flow: estimator(kind, flow=flow, activation=act).fit(rows) for flow, act in AUTO_FLOWS}
    losses = {flow: est.history_["kept_val_loss"] for flow, est in named.items()}
    assert auto.flow_ == min(losses, key=losses.get)
    theta, x = gaussian_rows(20, seed=1)
    assert torch.equal(log_q(auto, theta, x), log_q(named[auto.flow_], theta, x))  # the same fit, kept
    assert auto.params["flow"] == "auto" and auto.history_["val_loss"] == named[auto.flow_].history_["val_loss"]
    loaded = gm.load(auto.save(tmp_path / kind))  # the chosen flow is rebuilt, the settings stay as given
    assert (loaded.flow, loaded.flow_, loaded.params["flow"]) == ("auto", auto.flow_, "auto")
    assert torch.equal(log_q(loaded, theta, x), log_q(auto, theta, x))


@pytest.mark.parametrize("kind", ["npe", "nle"])
def test_a_continued_fit_keeps_the_flow_it_starts_from(kind):
    rows = gaussian_rows()
    first = estimator(kind, flow="maf").fit(rows)
    assert estimator(kind).start_from(first).fit(rows).flow_ == "maf"  # the weights fit only their own flow


def test_nle_tries_the_affine_flow_only_where_it_trains_to_convergence():
    # the pair layout (runs at θ_ref, x noise) keeps its schedule and the spline flow of before, to the weight
    theta, x = gaussian_rows()
    label = torch.arange(len(theta)) % 2
    paired = gm.memory.InMemoryData({"theta": torch.where(label[:, None] == 1, 0.0, theta), "x": x, "label": label},
                                    reference=torch.zeros(2, dtype=torch.float64))
    auto, nsf = estimator("nle").fit(paired), estimator("nle", flow="nsf").fit(paired)
    assert auto.flow_ == "nsf" and auto.trainer.patience is None
    t, v = gaussian_rows(20, seed=1)
    assert torch.equal(auto.log_prob(v, t), nsf.log_prob(v, t))


def test_npe_trains_to_convergence_unless_told_otherwise():
    rows = gaussian_rows()
    est = estimator("npe", flow="maf").fit(rows)
    assert (est.trainer.patience, est.trainer.lr, est.trainer.batch_size) == (
        CONVERGE["patience"], CONVERGE["lr"], CONVERGE["batch_size"])
    assert est.trainer.epochs == 3 and est.history_["kept"] == "best"  # epochs given: kept
    mine = estimator("npe", flow="maf", lr=2e-3, patience=None, batch_size=64).fit(rows)
    assert (mine.trainer.patience, mine.trainer.lr, mine.trainer.batch_size) == (None, 2e-3, 64)
