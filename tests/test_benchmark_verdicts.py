"""The decision rule of benchmarks/sample_efficiency.py: is a method no worse than its peer?"""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from sample_efficiency import no_worse  # noqa: E402


def entries(ratios, peer_error=0.1):
    out = []
    for seed, r in enumerate(ratios):
        out.append(dict(simulator="s", budget=100, seed=seed, method="ours", error=peer_error * r))
        out.append(dict(simulator="s", budget=100, seed=seed, method="peer", error=peer_error))
    return out


def test_a_consistent_deficit_is_not_met_and_a_consistent_gain_is_met():
    worse = no_worse(entries([1.9, 2.1, 2.0, 1.8, 2.2]), "s", 100, "ours", "peer")
    assert worse["met"] is False and math.isclose(worse["ratio"], 2.0, rel_tol=0.02)
    better = no_worse(entries([0.5, 0.45, 0.55, 0.5]), "s", 100, "ours", "peer")
    assert better["met"] is True and better["z"] < -1.645


def test_a_tie_is_met_only_with_the_power_to_see_a_twofold_deficit():
    tight = no_worse(entries([1.05, 0.95] * 5), "s", 100, "ours", "peer")
    assert tight["met"] is True
    loose = no_worse(entries([4.0, 0.25, 3.0, 0.33]), "s", 100, "ours", "peer")  # scatter of factors of 3-4
    assert loose["met"] is None and abs(loose["z"]) < 1.645


def test_fewer_than_three_seeds_cannot_decide():
    assert no_worse(entries([0.5, 0.5]), "s", 100, "ours", "peer")["met"] is None


def test_ensemble_defaults_seeds_k_1_as_the_first_member():
    """benchmarks/ensemble_defaults.py: the k = 1 fit has the training seed s, member j of the ensemble s + j."""
    from ensemble_defaults import estimator

    assert estimator("carl", 1, 7).training["seed"] == 7
    ensemble = estimator("carl", 3, 7)
    assert [ensemble._member(j).training["seed"] for j in range(3)] == [7, 8, 9]
