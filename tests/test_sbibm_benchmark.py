"""benchmarks/sbibm.py's bookkeeping (no sbi needed): which sbi method a goldmine method is compared with."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import sbibm as bench  # noqa: E402  (benchmarks/sbibm.py, not the sbibm package)
from sbibm_nle import parse_options  # noqa: E402


def entry(method, value, k=1, task="gaussian_linear", budget=1000):
    return {"task": task, "budget": budget, "method": method, "observation": k, "c2st": value}


def test_one_round_methods_through_infer_are_compared_with_sbis_method_of_their_family():
    assert [bench.twin(m) for m in ("npe", "npe1", "nle1", "nre1", "nle")] == [
        "sbi_npe", "sbi_npe", "sbi_nle", "sbi_nre", "sbi_nle"]
    entries = [entry("nle1", 0.6), entry("nle1", 0.8, k=2), entry("sbi_nle", 0.65), entry("sbi_nle", 0.65, k=2),
               entry("npe1", 0.7), entry("sbi_npe", 0.6)]
    verdict = bench.targets(entries)["goldmine's C2ST no worse than sbi's, same family, every task and budget run"]
    assert verdict["gaussian_linear 1000 nle1"]["goldmine"]["c2st"] == 0.7  # the mean over both observations
    assert verdict["gaussian_linear 1000 nle1"]["met"] is False  # 0.7 against sbi's 0.65
    assert verdict["gaussian_linear 1000 npe1"]["met"] is False
    assert verdict["met"] is False
    assert not any(k.startswith("gaussian_linear 1000 sbi_") for k in verdict)  # sbi is no goldmine method


def test_the_study_reads_estimator_options_from_a_variant_name():
    assert parse_options("flow=maf,transforms=5,hidden=50x50,lr=0.0005") == {
        "flow": "maf", "transforms": 5, "hidden": (50, 50), "lr": 0.0005}
    assert parse_options("") == {}
    assert parse_options("batch_size=None,patience=None") == {"batch_size": None, "patience": None}
