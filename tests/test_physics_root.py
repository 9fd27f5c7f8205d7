"""ROOT files: a TTree that uproot writes is read back into weighted events, with clear errors."""

import numpy as np
import pytest
import torch

from goldmine.physics import lhe_source, read_root, variation_nuisances
from goldmine.physics.process import EXPONENTS, EFTProcess

uproot = pytest.importorskip("uproot")
torch.set_num_threads(1)

BENCHMARKS = [[0, 0], [0.8, 0], [0, 0.8], [0.8, 0.8], [-0.8, 0], [0, -0.8]]
WEIGHTS = {f"w_b{b}": point for b, point in enumerate(BENCHMARKS)}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    sim = EFTProcess("parton")
    events = sim.weighted_events(300, BENCHMARKS, seed=2)
    tilt = (events.parton[:, 0] / 0.35) ** 0.3
    branches = {"m_ll": events.parton[:, 0].numpy(), "cos_theta": events.parton[:, 1].numpy(),
                "y_ll": events.parton[:, 2].numpy(), "w_up": (events.weights[:, 0] * tilt).numpy(),
                "w_down": (events.weights[:, 0] / tilt).numpy()}
    branches |= {name: events.weights[:, b].numpy() for b, name in enumerate(WEIGHTS)}
    path = tmp_path_factory.mktemp("root") / "eft.root"
    with uproot.recreate(path) as f:  # a TTree, as detector simulations write them
        f.mktree("events", {k: np.float64 for k in branches}).extend(branches)
    return sim, events, tilt, path


def test_branches_read_back_into_weighted_events(written):
    sim, events, tilt, path = written
    read, ratios = read_root(path, "events", {"m_ll": "m_ll", "cos_theta": "cos_theta", "y_ll": "y_ll",
                                              "m_gev": "m_ll * 1000"}, WEIGHTS, variations={"scale": ("w_up", "w_down")})
    assert torch.equal(read.x[:, :3], events.parton) and torch.equal(read.x[:, 3], events.parton[:, 0] * 1000)
    assert torch.equal(read.weights, events.weights) and read.benchmarks.tolist() == BENCHMARKS
    assert torch.allclose(ratios["scale"][0], tilt, rtol=1e-12) and torch.allclose(ratios["scale"][1], 1 / tilt, rtol=1e-12)
    source = lhe_source(read, EXPONENTS, sim.prior, sim.reference, nuisances=variation_nuisances(ratios))
    theta = torch.tensor([[0.3, -0.45, 1.0]], dtype=torch.float64)
    direct = sim.event_weights(events.parton, theta[:, :2])[:, 0] * tilt      # the weights at θ, ν_scale = 1
    assert torch.allclose(source.event_weights(theta)[0], direct, rtol=1e-9)


def test_cuts_keep_the_events_that_pass(written):
    _, events, _, path = written
    read, _ = read_root(path, "events", ["m_ll", "cos_theta"], WEIGHTS, cuts=["m_ll > 0.4", lambda v: v["cos_theta"] > 0])
    keep = (events.parton[:, 0] > 0.4) & (events.parton[:, 1] > 0)
    assert torch.equal(read.passed, keep) and read.x.shape == (int(keep.sum()), 2)


def test_missing_trees_and_branches_are_named(written):
    _, _, _, path = written
    with pytest.raises(ValueError, match="no TTree 'tree'.*'events'"):
        read_root(path, "tree", ["m_ll"], WEIGHTS)
    with pytest.raises(ValueError, match="no branch 'pt_l1', 'w_b9'.*its branches: .*'m_ll'"):
        read_root(path, "events", {"pt": "pt_l1 / 1000", "m": "m_ll"}, {"w_b0": [0, 0], "w_b9": [1, 1]})
    with pytest.raises(ValueError, match="no branch 'w_nope'"):
        read_root(path, "events", ["m_ll"], WEIGHTS, variations={"scale": ("w_up", "w_nope")})
    with pytest.raises(ValueError, match="do not have 2 values"):
        read_root(path, "events", ["m_ll"], {"w_b0": [0.0]})
    with pytest.raises(ValueError, match="does not exist"):
        read_root(path.with_name("absent.root"), "events", ["m_ll"], WEIGHTS)
