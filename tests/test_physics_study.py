"""The EFT study file: LHE in, limits with systematics out, at a tiny scale."""

import json
import re
import warnings
from pathlib import Path

import pytest

from goldmine.physics.study import load_eft_study, run_eft_study

pytest.importorskip("pylhe")
pytest.importorskip("pyhf")
EXAMPLE = Path(__file__).parent.parent / "examples" / "eft.toml"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*regions cover the reference")  # one epoch on 400 runs: too tight, as toys say
def test_the_example_study_runs_from_lhe_to_limits_at_a_tiny_scale(tmp_path):
    text = EXAMPLE.read_text()
    for big, small in (("generate = 10000", "generate = 600"), ("runs = 10000", "runs = 400"),
                       ('seed = 0\n\n[limits]', 'seed = 0\nepochs = 1\n\n[limits]'), ("grid = 11", "grid = 3"),
                       ("toys = 100", "toys = 3")):
        assert big in text
        text = text.replace(big, small)
    study = tmp_path / "eft.toml"
    study.write_text(text)
    from goldmine.cli import main

    assert main(["run", str(study), "--quiet"]) == 0  # goldmine run knows an EFT study by its [events]
    out = tmp_path / "eft-study"
    record = json.loads((out / "limits.json").read_text())
    assert (tmp_path / "eft-study.lhe").exists() and (out / "limits.png").exists()
    assert (out / ".goldmine").exists()  # marked as a study's folder, so a rerun may write there again
    assert record["nuisances"] == ["normalisation", "scale"] and 0 < record["events"] <= 600
    for tag in ("systematics", "none"):
        assert set(record["areas"][tag]) == {"truth", "rate only", "alices", "carl", "pyhf"}
    assert set(record["toys"]) == {"truth", "alices", "carl"}  # the rate alone and pyhf have no shape model
    assert all(entry["toys"] == 3 and set(entry["coverage"]) == {"0.68", "0.95"} for entry in record["toys"].values())
    truth = record["areas"]
    assert truth["none"]["truth"]["0.95"] <= truth["systematics"]["truth"]["0.95"]   # profiling only widens


def test_a_study_file_missing_keys_or_with_unknown_sections_is_refused(tmp_path):
    study = tmp_path / "eft.toml"
    study.write_text(EXAMPLE.read_text() + "\n[inference]\nn_obs = 3\n")
    with pytest.raises(ValueError, match=r"unknown section\(s\) \['inference'\]"):
        load_eft_study(study)
    study.write_text(EXAMPLE.read_text().replace('names = ["c1", "c2"]', ""))
    with pytest.raises(ValueError, match="needs 'names'"):
        load_eft_study(study)


def test_a_folder_that_goldmine_did_not_write_is_refused_before_anything_is_made(tmp_path):
    study = tmp_path / "eft.toml"
    study.write_text(EXAMPLE.read_text())
    (tmp_path / "eft-study").mkdir()
    (tmp_path / "eft-study" / "data.h5").write_text("the user's own file")
    with pytest.raises(FileExistsError, match="choose another output folder"):
        run_eft_study(study)
    assert (tmp_path / "eft-study" / "data.h5").read_text() == "the user's own file"
    assert not (tmp_path / "eft-study.lhe").exists()


def test_toys_report_bands_and_coverage_and_warn_when_the_regions_are_too_tight(eft_likelihood):
    """The truth's regions cover near their level; a likelihood whose shape terms are 4× too steep (an
    overconfident surrogate) gives regions too small, and the study warns, naming the method and the level."""
    import copy

    import torch

    from goldmine.physics.study import _toy_record, _toys

    src, full, grid = eft_likelihood
    theta = src.reference
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        truth = _toy_record("truth", _toys(full, grid, src, theta, 40, (0.68, 0.95), None, False), (0.68, 0.95))
    assert truth["toys"] == 40 and set(truth["bands"]) == {"0.68", "0.95"}
    b = truth["bands"]["0.95"]
    assert b["-2σ"] <= b["-1σ"] <= b["median"] <= b["+1σ"] <= b["+2σ"]
    coverage, stderr = truth["coverage"]["0.95"]
    assert abs(coverage - 0.95) < 3 * (0.95 * 0.05 / 40) ** 0.5 + 1 / 40 and stderr >= 0
    steep = copy.copy(full)
    steep.shape_terms = lambda params, x: 4 * full.shape_terms(params, x)
    with pytest.warns(RuntimeWarning) as caught:
        tight = _toy_record("steep", _toys(steep, grid, src, theta, 40, (0.68, 0.95), None, False), (0.68, 0.95))
    said = " ".join(str(w.message) for w in caught)
    for level in ("68%", "95%"):
        assert re.search(rf"steep's {level} regions cover .* too few for {level}.* Neyman", said)
    assert tight["coverage"]["0.95"][0] < coverage and torch.isfinite(torch.tensor(tight["coverage"]["0.95"])).all()
