"""The method registry: the README's table agrees with it, everything else reads it, and a ratio method
registered in one place is found by `goldmine list`, a study, training and inference."""

import ast
import re
from pathlib import Path

import pytest
import torch

import goldmine as gm
from goldmine import losses
from goldmine.cli import main
from goldmine.estimators import registry
from goldmine.estimators.ratio import ratio_method
from goldmine.estimators.registry import Method, get_method, goldless, methods, register_method, registered
from goldmine.study import load_study, run

ROOT = Path(__file__).resolve().parents[1]


# -- the README and the registry --------------------------------------------------------------------


def readme_rows() -> list[list[str]]:
    """The cells of the table under '## Methods' in the README, header first."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Methods\n", 1)[1]
    rows = []
    for line in section.strip().splitlines():
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows.append([c.strip().replace("\\|", "|") for c in cells])
    return rows


def test_the_readme_table_is_the_registry():
    rows = readme_rows()
    assert rows[0] == ["method", "family", "needs", "what it learns", "loss", "reference"]
    body = {row[0]: row for row in rows[2:]}
    assert list(body) == list(methods()), "README methods differ from the registry's"
    for name, m in methods().items():
        assert body[name][1:] == [m.family, m.needs, m.about, f"`{registry.loss_name(m)}`" if m.loss else "—",
                                  m.reference], name
    table = registry.markdown_table()
    assert table in (ROOT / "README.md").read_text(), f"paste this table into the README:\n{table}"


def test_gold_and_rows_follow_from_the_fields():
    assert get_method("rascal").gold == ("log_r", "score") and get_method("rascal").theta_gradient
    assert get_method("carl").fields == ("theta", "x", "label") and not get_method("carl").needs_gold
    assert get_method("carl").repaired and not get_method("rolr").repaired
    assert get_method("nre").needs == "x, θ (rows at θ)" and not get_method("nre").anchored
    assert get_method("sally").needs == "x, score_ref (rows at θ_ref)" and get_method("sally").label == 1
    assert get_method("rascal").defaults["alpha"] == 10.0 and get_method("alices").defaults["alpha"] == 1.0
    assert goldless() == ["carl", "nre", "nle", "npe", "histogram", "abc", "alfi"]
    assert goldless(trainable=True) == ["carl", "nre", "nle", "npe", "histogram"]
    # the families list their methods in one place each, with the estimator that trains them
    assert list(methods("ratio")) == ["carl", "rolr", "alice", "cascal", "rascal", "alices", "nre", "nres"]
    assert {m.estimator for m in methods("ratio").values()} == {gm.RatioEstimator}


def test_the_messages_without_gold_come_from_the_registry(tmp_path):
    sim = gm.simulators.BlackBoxSimulator(lambda t: t + 0.1, gm.simulators.box_prior([-1], [1]))
    with pytest.raises(NotImplementedError) as info:
        sim.joint_log_prob(torch.zeros(2, 1), None)
    assert registry.goldless_text() in str(info.value)
    data = gm.simulate(sim, 20, tmp_path / "b.h5", progress=False)
    with pytest.raises(ValueError, match=re.escape(registry.goldless_text())):
        gm.RatioEstimator("alices").fit(data)


def test_bad_registrations_name_the_fix():
    with pytest.raises(ValueError, match="unknown method 'nosuch'; the methods are carl"):
        get_method("nosuch")
    with pytest.raises(ValueError, match="registered already"):
        register_method(ratio_method("carl", losses.carl, "again", "nobody"))
    with pytest.raises(ValueError, match="RATIO_INPUTS"):
        ratio_method("odd", lambda log_r_hat, weights: log_r_hat, "odd", "nobody")
    with pytest.raises(ValueError, match="no output of the network"):
        ratio_method("blind", lambda y: y, "blind", "nobody")
    with pytest.raises(ValueError, match="unknown fields"):
        Method("bad", "ratio", None, "bad", "nobody", fields=("theta", "gold"))
    with pytest.raises(ValueError, match="unknown method 'nle' for RatioEstimator; known: carl"):
        gm.RatioEstimator("nle")


def test_no_isinstance_over_estimator_classes_outside_the_registry():
    """Code asks the registry or a surrogate's capabilities what an estimator does, not its class."""
    classes = {"Estimator", "RatioEstimator", "ScoreEstimator", "LikelihoodEstimator", "PosteriorEstimator",
               "HistogramRatio", "SummaryHistogram", "ALFI"}
    found = []
    for path in (ROOT / "src" / "goldmine").rglob("*.py"):
        if path.name == "registry.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("isinstance", "issubclass"):
                names = {n.id if isinstance(n, ast.Name) else getattr(n, "attr", None) for n in ast.walk(node.args[1])}
                if names & classes:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found


# -- a toy ratio method, registered in one place ------------------------------------------------------


def brier(log_r_hat, y):
    """(ŝ − y)², ŝ = 1/(1 + r̂): the Brier score of the classifier, minimised by the true ratio too."""
    return (torch.sigmoid(-log_r_hat) - y) ** 2


def brier_with_score(log_r_hat, score_hat, score, y, alpha):
    """brier + α·(1 − y)·‖t̂ − t‖²."""
    return brier(log_r_hat, y) + alpha * losses.score_term(score_hat, score, y)


TOY = ratio_method("toy", brier, "Brier score of ŝ = 1/(1+r̂)", "Brier, Mon. Weather Rev. 78 (1950) 1")
TOY_STUDY = """\
simulator = "galton"
[data]
n = 400
[train]
methods = ["toy"]
epochs = 1
hidden = [8]
[inference]
true_theta = 0.3
n_obs = 20
grid = 21
"""


def test_a_toy_ratio_method_is_listed_studied_trained_and_inferred_with(tmp_path, capsys):
    with registered(TOY):
        assert main(["list", "methods"]) == 0
        row = next(line for line in capsys.readouterr().out.splitlines() if " toy " in line)
        assert row.split()[:3] == ["ratio", "toy", "no"] and "Brier score" in row and "+ training" in row
        assert main(["list", "toy"]) == 0
        assert "alpha = 1.0" in capsys.readouterr().out

        (tmp_path / "toy.toml").write_text(TOY_STUDY)
        assert load_study(tmp_path / "toy.toml").methods["toy"]["epochs"] == 1
        results = run(tmp_path / "toy.toml", progress=False, echo=lambda line: None)
        entry = results["methods"]["toy"]
        assert entry["train"]["epochs"] == 1 and entry["evaluation"]["metric"] == "log_ratio_mse"
        assert entry["inference"]["kind"] == "ratio" and -1 <= entry["inference"]["mle"][0] <= 1

        sim, data = gm.simulators.GaltonBoard(), gm.Dataset(tmp_path / "toy-output" / "data.h5")
        est = gm.RatioEstimator("toy", epochs=2, hidden=(8,), progress=False).fit(data)
        x_obs = sim.sample(torch.full((30, 1), 0.3), generator=torch.Generator().manual_seed(1)).x
        fit = gm.inference.mle(gm.inference.Model(est, prior=sim), x_obs)
        assert -1 <= fit.theta.item() <= 1 and est.history_["train_loss"][-1] < 0.5
    assert "toy" not in methods()
    with pytest.raises(ValueError, match="unknown method 'toy'"):
        gm.RatioEstimator("toy")


def test_a_toy_loss_with_a_score_term_reads_gold_and_the_gradient(tmp_path):
    data = gm.simulate(gm.simulators.GaltonBoard(), 400, tmp_path / "g.h5", seed=0, progress=False)
    with registered(ratio_method("toy_scored", brier_with_score, "Brier + α·score term", "nobody")) as toy:
        assert toy.needs_gold and toy.theta_gradient and toy.fields == ("theta", "x", "label", "score")
        est = gm.RatioEstimator("toy_scored", alpha=0.5, epochs=1, hidden=(8,), progress=False).fit(data)
        assert est.score(torch.tensor([[10.0]]), torch.tensor([[0.2]])).shape == (1, 1)


def test_one_default_method_for_estimators_and_the_command_line(tmp_path, capsys):
    """RatioEstimator() and LikelihoodEstimator() train the registry's default_method, and goldmine simulate
    suggests the same one."""
    from goldmine.estimators.registry import default_method

    assert [default_method("ratio", True), default_method("ratio", False), default_method("ratio", True, "prior"),
            default_method("likelihood", True), default_method("likelihood", False, "prior")] == \
        ["alice", "carl", "nre", "scandal", "nle"]
    with pytest.raises(ValueError, match="no default method"):
        default_method("posterior", True)
    theta = torch.rand(40, 1)
    data = gm.InMemoryData((theta, theta + 0.1 * torch.randn(40, 1)))
    for est, family in ((gm.RatioEstimator(epochs=1, progress=False), "ratio"),
                        (gm.LikelihoodEstimator(epochs=1, progress=False), "likelihood")):
        assert est.fit(data).method == default_method(family, data.has_gold)
    for layout in ("pairs", "prior"):
        path = tmp_path / f"{layout}.h5"
        assert main(["simulate", "galton", "-n", "20", "-o", str(path), "--layout", layout, "--quiet"]) == 0
        expected = default_method("ratio", True, layout)
        assert f"next: goldmine train {expected} " in capsys.readouterr().out
