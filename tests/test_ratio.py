"""RatioEstimator on the Galton board against its exact likelihood ratio."""

import pytest
import torch

import goldmine as gm
from goldmine.evaluate import log_ratio_error

SIM = gm.simulators.GaltonBoard()
FAST = dict(epochs=30, batch_size=128, lr=2e-3, hidden=(64, 64), progress=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return gm.simulate(SIM, 4000, tmp_path_factory.mktemp("ratio") / "g.h5", seed=0, progress=False)


class Trivial:
    """log r̂ = 0."""

    theta_dim_, x_dim_, reference_ = 1, 1, torch.zeros(1)

    def log_ratio(self, x, theta):
        return torch.zeros(len(x))


@pytest.fixture(scope="module")
def trivial_error():
    return log_ratio_error(Trivial(), SIM)["mse"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::goldmine.estimators.base.UnusedRunsWarning")  # pair data on purpose
@pytest.mark.parametrize("method", ["carl", "rolr", "alice", "cascal", "rascal", "alices", "nre"])
def test_every_method_beats_the_trivial_estimator(data, trivial_error, method):
    est = gm.RatioEstimator(method, seed=1, **FAST).fit(data)
    error = log_ratio_error(est, SIM)["mse"]
    assert error < 0.5 * trivial_error, (method, error, trivial_error)
    torch.testing.assert_close(est.log_ratio(torch.arange(10.0, 20.0), torch.zeros(1)), torch.zeros(10))


@pytest.mark.slow
@pytest.mark.parametrize("simulator, runs, methods", [
    (gm.simulators.Weinberg, 2000, ("alices", "rascal")),
    (gm.simulators.GaltonBoard, 3000, ("alices",)),
])
def test_gold_beats_carl_at_a_small_budget(tmp_path, simulator, runs, methods):
    """Over four data sets of a few thousand runs, the gold methods (default settings) have a clearly
    smaller mean error than carl.

    Single fits at this budget scatter by factors of 2-5 around their mean, for every method, so the
    claim is about the mean over seeds. On the Galton board rascal is not in it: since carl re-pairs its
    reference rows with fresh θ every epoch, the two are level there (mean error 0.040 against 0.044 at
    3000 runs), while on Weinberg rascal's error is about a twentieth of carl's.
    """
    sim = simulator()
    errors = {m: [] for m in ("carl",) + methods}
    for seed in range(4):
        data = gm.simulate(sim, runs, tmp_path / f"d{seed}.h5", seed=seed, progress=False)
        for method in errors:
            est = gm.RatioEstimator(method, seed=seed, progress=False).fit(data)
            errors[method].append(log_ratio_error(est, sim)["mse"])
    carl = torch.tensor(errors["carl"]).mean()
    for method in methods:
        assert torch.tensor(errors[method]).mean() < 0.7 * carl, errors


def test_carl_pairs_reference_rows_with_the_theta_of_a_neighbour():
    """Rows drawn at θ_ref take the θ of the previous row of the batch; rows drawn at θ keep their own."""
    from goldmine.estimators.ratio import _repaired

    batch = {"theta": torch.tensor([[0.1], [0.2], [0.3], [0.4]]), "label": torch.tensor([0.0, 1.0, 1.0, 0.0])}
    torch.testing.assert_close(_repaired(batch), torch.tensor([[0.1], [0.1], [0.2], [0.4]]))


def test_score_methods_differentiate_only_the_rows_drawn_at_theta():
    """The score term reads ∇_θ log r̂ on rows drawn at θ only: those rows get the full gradient, every row
    its log r̂, and rows drawn at θ_ref a zero score (they carry no score term)."""
    from goldmine.estimators.ratio import RatioNetwork, _with_score
    from goldmine.nn import with_theta_gradient

    torch.manual_seed(0)
    net = RatioNetwork(2, 1, torch.zeros(2), (16, 16), "silu")
    est = gm.RatioEstimator("alices")
    batch = {"x": torch.randn(6, 1), "theta": torch.randn(6, 2), "label": torch.tensor([0.0, 1, 1, 0, 0, 1])}
    value, score = _with_score(est, net, batch)
    full_value, full_score = with_theta_gradient(net, batch["x"], batch["theta"], create_graph=False)
    at_theta = batch["label"] == 0
    torch.testing.assert_close(value, full_value)
    torch.testing.assert_close(score[at_theta], full_score[at_theta])
    assert (score[~at_theta] == 0).all()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::goldmine.estimators.base.UnusedRunsWarning")  # pair data on purpose
def test_nre_gives_the_posterior(tmp_path):
    """Bayesian nre: prior × exp(log r̂(x, θ)) normalised on a θ grid is the exact posterior p(θ|x).

    Compared by posterior mean and standard deviation for the common slots 12..18 (tolerance 0.1 in θ,
    a fifth of the prior's standard deviation of 0.58, for 10,000 runs).
    """
    data = gm.simulate(SIM, 10_000, tmp_path / "g.h5", seed=4, progress=False)
    est = gm.RatioEstimator("nre", seed=0, progress=False).fit(data)
    grid = torch.linspace(-1, 1, 201, dtype=torch.float64)[:, None]
    for slot in range(12, 19):
        x = torch.full((201, 1), float(slot))
        exact = SIM.log_prob(x, grid).exp()
        approx = est.log_ratio_evidence(x, grid).double().exp()
        exact, approx = exact / exact.sum(), approx / approx.sum()
        mean_e, mean_a = (exact * grid[:, 0]).sum(), (approx * grid[:, 0]).sum()
        sd_e = ((exact * (grid[:, 0] - mean_e) ** 2).sum()).sqrt()
        sd_a = ((approx * (grid[:, 0] - mean_a) ** 2).sum()).sqrt()
        assert abs(mean_a - mean_e) < 0.1 and abs(sd_a - sd_e) < 0.1, (slot, mean_a, mean_e, sd_a, sd_e)
    with pytest.raises(ValueError, match="method='nre'"):
        gm.RatioEstimator("carl", epochs=1, progress=False).fit(data).log_ratio_evidence(x, grid)


def test_save_load_gives_identical_outputs(data, tmp_path):
    est = gm.RatioEstimator("alices", seed=2, **{**FAST, "epochs": 2}).fit(data)
    x, theta = torch.arange(5.0, 26.0)[:, None], torch.linspace(-1, 1, 21)[:, None]
    folder = est.save(tmp_path / "model")
    again = gm.load(folder)
    assert isinstance(again, gm.RatioEstimator) and again.method == "alices" and again.alpha == est.alpha
    torch.testing.assert_close(again.log_ratio(x, theta), est.log_ratio(x, theta), rtol=0, atol=0)
    torch.testing.assert_close(again.score(x, theta), est.score(x, theta), rtol=0, atol=0)
    assert again.history_["best_epoch"] == est.history_["best_epoch"]


def test_load_rejects_missing_corrupt_and_incompatible_folders(data, tmp_path):
    folder = gm.RatioEstimator("carl", **{**FAST, "epochs": 1}).fit(data).save(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="config.json"):
        gm.load(tmp_path / "nowhere")
    (folder / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        gm.load(folder)
    (folder / "config.json").write_text('{"goldmine_format": 99}')
    with pytest.raises(ValueError, match="format 99"):
        gm.load(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        gm.load(folder)


def test_bad_input(data, tmp_path):
    with pytest.raises(ValueError, match=r"unknown method 'sall'.*carl, rolr, alice, cascal, rascal, alices, nre"):
        gm.RatioEstimator("sall")
    bb = gm.simulators.BlackBoxSimulator(lambda t: t, gm.simulators.box_prior([-1], [1]))
    goldless = gm.simulate(bb, 200, tmp_path / "bb.h5", progress=False)
    with pytest.raises(ValueError, match=r"\['log_r', 'score'\].*black-box"):
        gm.RatioEstimator("rascal").fit(goldless)
    est = gm.RatioEstimator("carl", **{**FAST, "epochs": 1}).fit(data)
    with pytest.raises(ValueError, match=r"x has shape \(3, 1\) and theta has shape \(2, 1\)"):
        est.log_ratio(torch.zeros(3, 1), torch.zeros(2, 1))
    with pytest.raises(ValueError, match=r"x must have shape \(n, 1\)"):
        est.log_ratio(torch.zeros(3, 2), torch.zeros(3, 1))
    with pytest.raises(RuntimeError, match="not fitted"):
        gm.RatioEstimator("carl").log_ratio(torch.zeros(1, 1), torch.zeros(1, 1))


def test_ratio_weighting_turns_the_cross_entropy_into_the_metric():
    """With w = 1 + r̂ (not differentiated) the expected cross-entropy between x ~ p(x|θ) and x ~ p(x|θ_ref)
    keeps its minimiser, the true log r, and its curvature in log r̂(x) there is p(x|θ): the weight that
    `log_ratio_error` gives the squared error of log r̂ at x (unweighted it is p(x|θ)/(1 + r(x|θ)))."""
    from goldmine.estimators.ratio import ratio_weight

    x = torch.arange(32.0, dtype=torch.float64)[:, None]
    theta = torch.full((32, 1), -1.0, dtype=torch.float64)
    p, p_ref = SIM.log_prob(x, theta).exp(), SIM.log_prob(x, torch.zeros_like(theta)).exp()
    seen = (p > 1e-6) & (p_ref > 1e-6)
    p, p_ref = p[seen], p_ref[seen]
    log_r = (p / p_ref).log()

    def expected(a, weighted):
        rows = p * gm.losses.carl(a, torch.zeros_like(a)) + p_ref * gm.losses.carl(a, torch.ones_like(a))
        return (rows * (ratio_weight(a, 10.0) if weighted else 1)).sum()

    a = log_r.clone().requires_grad_(True)
    for weighted, curvature in ((True, p), (False, p / (1 + log_r.exp()))):
        (grad,) = torch.autograd.grad(expected(a, weighted), a, create_graph=True)
        torch.testing.assert_close(grad, torch.zeros_like(grad), rtol=0, atol=1e-12)  # the minimiser stays
        hessian = torch.stack([torch.autograd.grad(g, a, retain_graph=True)[0][i] for i, g in enumerate(grad)])
        torch.testing.assert_close(hessian, curvature, rtol=1e-9, atol=0)


def test_weighting_defaults_per_method_and_survives_save_load(data, tmp_path):
    assert gm.RatioEstimator("alice").weighting == "ratio" and gm.RatioEstimator("alices").weighting == "ratio"
    assert all(gm.RatioEstimator(m).weighting == "none" for m in ("carl", "rolr", "cascal", "rascal", "nre"))
    assert gm.RatioEstimator("carl", weighting="ratio").weighting == "ratio"
    est = gm.RatioEstimator(**{**FAST, "epochs": 1}).fit(data)  # the default method on gold: alice, weighted
    assert est.method == "alice" and est.weighting == "ratio" and est.params["weighting"] == "ratio"
    again = gm.load(est.save(tmp_path / "m"))
    assert again.weighting == "ratio"
    x, theta = torch.arange(5.0, 26.0)[:, None], torch.linspace(-1, 1, 21)[:, None]
    torch.testing.assert_close(again.log_ratio(x, theta), est.log_ratio(x, theta), rtol=0, atol=0)
    unweighted = gm.RatioEstimator("alice", weighting="none", **{**FAST, "epochs": 1}).fit(data)
    assert not torch.equal(unweighted.log_ratio(x, theta), est.log_ratio(x, theta))  # the weight reaches the loss
