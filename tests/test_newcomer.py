"""What a newcomer's numbers say (issue 21): named parameters in plots, summaries and messages, a region's
size with its units, the validation loss of the weights kept."""

import sys
from pathlib import Path

import pytest
import torch

import goldmine as gm
from goldmine import workflow
from goldmine.inference import Model, confidence_region, posterior

sys.path.insert(0, str(Path(__file__).parent))  # the tests' own simulators, as a user's module
from newcomer_sims import OneDim, Smeared


@pytest.fixture
def x_obs():
    return Smeared().sample(torch.tensor([[0.2, -0.3]]).expand(50, 2), generator=torch.Generator().manual_seed(1)).x


def test_named_parameters_in_the_region_summary_and_its_size_in_units(x_obs):
    region = confidence_region(Model(Smeared()), x_obs, 0.95, "wilks")
    text = region.summary(true_theta=[0.2, -0.3])
    assert "mu = " in text and "log_s = " in text
    assert f"area {region.size:.4g} (in units of mu × log_s)" in text
    assert "the true θ (mu = 0.2, log_s = -0.3) is inside the region" in text
    with pytest.raises(ValueError, match="use size or contains"):
        region.interval
    assert "area=" in repr(region)


@pytest.mark.slow  # matplotlib's import and two grids of exact likelihoods
def test_named_parameters_in_the_plot_axes(x_obs, tmp_path, monkeypatch):
    from goldmine import plots

    labels = {}
    save = plots._save

    def capture(fig, path):
        ax = fig.axes[0]
        labels[Path(path).stem] = (ax.get_xlabel(), ax.get_ylabel())
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", capture)
    sim = Smeared()
    result = workflow.infer(sim, sim, x_obs, grid_points=15, true_theta=[0.2, -0.3])
    assert result["theta_names"] == ["mu", "log_s"] and result["size_kind"] == "area"
    assert "(in units of mu × log_s)" in workflow.region_text(result) and "mu = " in workflow.region_text(result)
    workflow.plot_inference({"exact": result}, tmp_path / "two.png", [0.2, -0.3])
    assert labels["two"] == ("mu", "log_s")
    one = OneDim()
    x1 = one.sample(torch.full((20, 1), 0.3), generator=torch.Generator().manual_seed(0)).x
    workflow.plot_inference({"exact": workflow.infer(one, one, x1)}, tmp_path / "one.png")
    assert labels["one"][0] == "shift"


def test_named_parameters_in_the_posterior_summary(x_obs):
    with pytest.warns(RuntimeWarning, match="may not represent the posterior"):  # short chains: only the names matter here
        post = posterior(Model(Smeared()), x_obs, chains=4, warmup=100, steps=100, progress=False)
    rows = post.summary().splitlines()
    assert any(r.split()[0] == "mu" for r in rows) and any(r.split()[0] == "log_s" for r in rows)


def test_builtins_name_their_parameters_and_others_get_subscripts():
    assert Model(gm.simulators.Weinberg()).theta_names == ("E", "G_f")
    assert Model(gm.simulators.GaussianMixture(2)).theta_names == ("θ₀", "θ₁")
    assert Model(gm.simulators.GaltonBoard()).theta_names == ("θ",)


def test_a_wrong_number_of_components_shows_the_syntax():
    with pytest.raises(ValueError, match=r"2 component\(s\) \(mu, log_s\); got 1 .*--true-theta 0,0"):
        workflow.generate_observed(Smeared(), [0.3], 10)


def test_the_validation_loss_printed_is_that_of_the_weights_kept():
    net = torch.nn.Linear(1, 1)
    x = torch.linspace(-1, 1, 200)[:, None]
    batches = [{"x": x[i : i + 20], "y": 3 * x[i : i + 20]} for i in range(0, 200, 20)]

    def loss(network, batch):
        return ((network(batch["x"]) - batch["y"]) ** 2).mean()

    final = gm.Trainer(epochs=5, lr=0.5, progress=False).fit_batches(net, loss, batches[:8], batches[8:])
    assert final["kept"] == "final" and final["kept_val_loss"] == final["val_loss"][-1]
    best = gm.Trainer(epochs=5, lr=0.5, patience=2, progress=False).fit_batches(net, loss, batches[:8], batches[8:])
    assert best["kept"] == "best" and best["kept_val_loss"] == min(best["val_loss"])


# -- feedback on long steps ---------------------------------------------------------------------------------


class SlowExact(OneDim):
    """An exact likelihood slow enough to want a progress bar."""

    def log_prob(self, x, theta):
        import time

        time.sleep(0.01 if len(x) > 1000 else 0.0)  # the grid's blocks, not the refinement's single points
        return super().log_prob(x, theta)


def test_a_slow_exact_likelihood_shows_a_progress_bar(monkeypatch, capsys):
    from goldmine.inference import mle, model as model_module

    monkeypatch.setattr(model_module, "PROGRESS_DELAY", 0.0)
    sim = SlowExact()
    x = sim.sample(torch.full((300, 1), 0.2), generator=torch.Generator().manual_seed(0)).x
    fit = mle(Model(sim), x)  # 101 θ × 300 observations: two blocks of the exact likelihood's size
    assert abs(float(fit.theta[0]) - 0.2) < 0.3
    assert "ℓ(θ) exact" in capsys.readouterr().err
    quiet = Model(sim)
    quiet.progress = False
    mle(quiet, x)
    assert "ℓ(θ)" not in capsys.readouterr().err


def test_coverage_and_simulate_show_progress(tmp_path, capsys):
    from goldmine.inference import coverage

    out = coverage(OneDim(), [0.2], n_obs=10, toys=40, grid=torch.linspace(-1, 1, 21)[:, None])
    assert 0 <= out["coverage"] <= 1
    assert "coverage wilks" in capsys.readouterr().err
    gm.simulate(OneDim(), 200, tmp_path / "d.h5")
    assert "16,384-row blocks" in capsys.readouterr().err


def test_the_cost_of_the_exact_likelihood_is_estimated():
    sim = OneDim()
    x = sim.sample(torch.full((30, 1), 0.2), generator=torch.Generator().manual_seed(0)).x
    cost = workflow.exact_cost(sim, x, "wilks", check=200)
    assert cost["pairs"] == 101 * 30 + 200 * 30 * 102 and cost["seconds"] > 0 and cost["per_second"] > 0
    assert workflow.duration(5) == "5 s" and workflow.duration(600) == "10 min" and workflow.duration(9000) == "2.5 h"


# -- evaluation without a quadrature grid ----------------------------------------------------------------------


class Shifted:
    """A ratio surrogate off the exact one by 0.3·sin(x)·θ₀, and a constant score: errors known by quadrature."""

    def __init__(self, sim):
        self.sim = sim
        self.theta_dim_, self.x_dim_, self.reference_ = sim.theta_dim, sim.x_dim, sim.reference

    def log_ratio(self, x, theta):
        ref = self.sim.reference.expand(len(x), -1)
        return self.sim.log_prob(x, theta) - self.sim.log_prob(x, ref) + 0.3 * torch.sin(x[:, 0]) * theta[:, 0]

    def score(self, x):
        return torch.full((len(x), self.theta_dim_), 0.1, dtype=torch.float64)


@pytest.mark.parametrize("sim", [gm.simulators.Weinberg(), gm.simulators.Poisson()], ids=lambda s: s.name)
def test_monte_carlo_agrees_with_quadrature_within_its_standard_error(sim):
    from goldmine.evaluate import log_ratio_error, score_error

    exact, mc = log_ratio_error(Shifted(sim), sim), log_ratio_error(Shifted(sim), sim, samples=100, seed=3)
    assert exact["integration"] == "quadrature" and exact["stderr"] == 0
    assert mc["integration"] == "monte carlo" and mc["samples"] == 100 and mc["stderr"] > 0
    assert abs(mc["mse"] - exact["mse"]) < 4 * mc["stderr"], (mc["mse"], exact["mse"], mc["stderr"])
    exact, mc = score_error(Shifted(sim), sim), score_error(Shifted(sim), sim, samples=4000, seed=3)
    assert abs(mc["mse"] - exact["mse"]) < 4 * mc["stderr"], (mc["mse"], exact["mse"], mc["stderr"])


def test_a_simulator_without_a_grid_is_evaluated_by_monte_carlo_and_without_log_prob_by_toys():
    from goldmine.workflow.evaluation import calibration_by_toys

    sim = OneDim()  # log_prob, no x_grid
    result = workflow.evaluate_model(Shifted(sim), sim)
    assert result["integration"] == "monte carlo" and result["stderr"] > 0 and result["mse"] > 0
    assert "± " in workflow.metric_text(result) and "Monte Carlo" in workflow.metric_text(result)

    class Exact:  # the exact ratio of OneDim, judged as if the simulator had no log_prob
        capabilities = frozenset({"likelihood", "ratio"})
        theta_dim_, x_dim_, reference_ = 1, 1, sim.reference

        def log_ratio(self, x, theta):
            return sim.log_prob(x, theta) - sim.log_prob(x, torch.zeros_like(theta))

        def log_likelihood_terms(self, x, theta):
            return self.log_ratio(x, theta)

    out = calibration_by_toys(Exact(), sim)
    assert out["metric"] == "coverage" and abs(out["coverage"] - out["level"]) < 4 * out["stderr"]
    assert "coverage of 68% Wilks regions" in workflow.metric_text(out)
