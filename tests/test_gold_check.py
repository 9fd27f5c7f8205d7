"""gm.check_gold on simulators written in the tests (not built-ins): correct gold passes, a wrong score fails,
naming the identity and the size of the miss in standard errors."""

import sys
from pathlib import Path

import pytest

import goldmine as gm

sys.path.insert(0, str(Path(__file__).parent))  # the tests' own simulators, as a user's module
from newcomer_sims import HandScored, OneDim, Smeared, WrongOffset, WrongScale


@pytest.mark.parametrize("sim", [Smeared(), HandScored(), OneDim()], ids=lambda s: type(s).__name__)
def test_correct_gold_passes(sim):
    report = gm.check_gold(sim, runs=8000, verbose=False)
    assert report.passed, report.table()
    names = {i.name for i in report.identities}
    assert any("E[t_mu" in n for n in names) or any("E[t_shift" in n for n in names)  # named components
    assert any(n.startswith("E[(r(x,z) − r(x))") for n in names)  # the conditional identities: it has log_prob


def test_a_score_of_the_wrong_scale_fails_where_only_its_scale_can_show():
    report = gm.check_gold(WrongScale(), runs=8000, verbose=False)
    assert not report.passed
    failed = {i.name for i in report.failures}
    assert "hand-written joint_score = autograd of joint_log_prob" in failed
    assert any(n.startswith("E[(t_mu(x,z|θ) − t_mu(x|θ))·t_mu(x|θ)]") for n in failed)
    assert not any(n.startswith("E[t_mu(x,z|θ)] = 0") for n in failed)  # the plain mean still vanishes
    worst = report.worst("·t_mu")
    assert abs(worst.z) > report.threshold and worst.se > 0
    table = report.table()
    assert "FAILED" in table and f"{worst.z:+.2f} se" in table


def test_an_offset_score_fails_the_dataset_identity_without_log_prob():
    report = gm.check_gold(WrongOffset(), runs=8000, verbose=False)
    assert any("no exact log_prob" in s for s in report.skipped)
    failed = [i for i in report.failures if i.name.startswith("E[t_log_s(x,z|θ)] = 0")]
    assert failed, report.table()
    # the miss is 0.2 in the mean; in standard errors it is 0.2 / se, which the report states
    for identity in failed:
        assert identity.mean == pytest.approx(0.2, abs=5 * identity.se)
        assert identity.z == pytest.approx(identity.mean / identity.se)


def test_check_gold_reads_a_data_set(tmp_path):
    sim = Smeared()
    data = gm.simulate(sim, 4000, tmp_path / "d.h5", progress=False)
    report = gm.check_gold(sim, data=data, bins=2, verbose=False)
    assert report.passed, report.table()
    assert sum(i.runs for i in report.identities if i.name.startswith("E[t_mu(x,z|θ)] = 0") and "mu ∈" in i.where) \
        == 2000


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="runs must be even"):
        gm.check_gold(Smeared(), runs=7)
    black = gm.simulators.BlackBoxSimulator(lambda t: t, gm.simulators.box_prior([0.0], [1.0]))
    with pytest.raises(NotImplementedError, match="black-box"):
        gm.check_gold(black)


def test_goldmine_check_prints_the_table_and_exits_1_on_a_failure(capsys):
    from goldmine.cli import main

    assert main(["check", "newcomer_sims:HandScored", "--runs", "4000", "--bins", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "gold of smeared" in out and "identities tested hold" in out and "mu ∈" in out
    assert main(["check", "newcomer_sims:WrongScale", "--runs", "4000", "--bins", "2", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "hand-written joint_score = autograd of joint_log_prob" in out
