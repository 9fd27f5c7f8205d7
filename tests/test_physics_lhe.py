"""Les Houches files: the built-in process writes them, pylhe reads them back into weighted events."""

import pytest
import torch

import goldmine as gm
from goldmine.physics.lhe import declared_weights, lhe_source, read_lhe, write_lhe
from goldmine.physics.process import EXPONENTS, EFTProcess

pytest.importorskip("pylhe")
torch.set_num_threads(1)

OBSERVABLES = {"m_ll": "(p[0] + p[1]).m / 1000", "cos_theta": "collins_soper(p[0], p[1])",
               "y_ll": "(p[0] + p[1]).rapidity", "pt_1": lambda p: p[0].pt / 1000}
BENCHMARKS = [[0, 0], [0.8, 0], [0, 0.8], [0.8, 0.8], [-0.8, 0], [0, -0.8]]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    sim = EFTProcess("parton")
    events = sim.weighted_events(400, BENCHMARKS, seed=1)
    path = write_lhe(tmp_path_factory.mktemp("lhe") / "eft.lhe", events.parton, events.weights, events.benchmarks)
    return sim, events, path


def test_the_reweighting_block_and_the_events_read_back(written):
    sim, events, path = written
    assert list(declared_weights(path)) == [f"b{b}" for b in range(6)]
    read = read_lhe(path, OBSERVABLES, [f"b{b}" for b in range(6)])
    assert torch.equal(read.benchmarks, torch.tensor(BENCHMARKS, dtype=torch.float64))
    assert torch.allclose(read.weights, events.weights, rtol=1e-15, atol=0)
    assert torch.allclose(read.x[:, :3], events.parton, rtol=0, atol=1e-12)
    assert read.observables == tuple(OBSERVABLES)


def test_smearing_and_cuts_act_on_the_observables(written):
    sim, events, path = written
    read = read_lhe(path, OBSERVABLES, {"b0": [0, 0], "b3": [0.8, 0.8]}, cuts=["m_ll > 0.3", lambda v: v["y_ll"] < 1],
                    smearing={"m_ll": lambda m, g: m * (1 + 0.05 * torch.randn(m.shape, generator=g, dtype=m.dtype))})
    assert read.weights.shape == (int(read.passed.sum()), 2) and (read.x[:, 0] > 0.3).all() and (read.x[:, 2] < 1).all()
    kept = events.parton[read.passed]
    assert not torch.allclose(read.x[:, 0], kept[:, 0])                     # smeared
    assert (read.x[:, 0] / kept[:, 0] - 1).std() == pytest.approx(0.05, rel=0.25)
    assert torch.allclose(read.x[:, 1], kept[:, 1], atol=1e-12)


def test_a_missing_reweighting_block_is_named(written, tmp_path):
    sim, events, path = written
    with pytest.raises(ValueError, match="no reweighting weight 'b9'.*declares"):
        read_lhe(path, OBSERVABLES, ["b0", "b9"])
    bare = tmp_path / "bare.lhe"
    text = path.read_text()
    start, end = text.index("<initrwgt>"), text.index("</initrwgt>") + len("</initrwgt>")
    bare.write_text(text[:start] + text[end:])
    with pytest.raises(ValueError, match="no reweighting block at all"):
        read_lhe(bare, OBSERVABLES, ["b0"])
    with pytest.raises(ValueError, match="observable 'bad'"):
        read_lhe(path, {"bad": "p[7].pt"}, ["b0"])


def test_a_file_becomes_an_event_source_that_mines_gold(written, tmp_path):
    sim, events, path = written
    read = read_lhe(path, OBSERVABLES, [f"b{b}" for b in range(6)])
    source = lhe_source(read, EXPONENTS, sim.prior, sim.reference)
    theta = gm.simulators.draw_prior(sim.prior, 20, seed=2)
    assert torch.allclose(source.event_weights(theta).T, sim.event_weights(events.parton, theta), rtol=1e-10, atol=0)
    data = gm.simulate(source, 100, tmp_path / "lhe.h5", seed=0)
    assert torch.isfinite(data.tensors(["log_r", "score"])["score"]).all()
    with pytest.raises(ValueError, match="at least 6 benchmark"):
        lhe_source(read_lhe(path, OBSERVABLES, ["b0", "b1"]), EXPONENTS, sim.prior, sim.reference)
