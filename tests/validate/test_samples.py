"""The default profile over every real sample, validated as a source (converted on the fly): what fires, and why."""

from __future__ import annotations

from collections import Counter

from rdstd.validate import Report, Severity, validate
from tests.conftest import sample


def _loud(report: Report) -> Counter[str]:
    return Counter(f.check for f in report.findings if f.severity != Severity.INFO)


def test_bridge_val_repeats_train_and_the_duplicate_check_says_so() -> None:
    report = validate(sample("rlds/bridge_debug/bridge_dataset/1.0.0"))
    dups = [f for f in report.findings if f.check == "RDV802"]
    assert len(dups) == 25 and all(f.severity == Severity.ERROR for f in dups)
    assert all("split val repeats train" in f.message for f in dups)
    assert {f.episode_index for f in dups} == set(range(25, 50))
    # discount is 1.0 throughout (a warning); the constant reward and never-true flags are info
    assert _loud(report) == {"RDV802": 25, "RDV105": 1}
    notes = " ".join(f.message for f in report.findings if f.check == "RDV903")
    assert "is_last is never true" in notes and "one constant image" in notes


def test_pusht_passes_the_default_profile() -> None:
    report = validate(sample("zarr/pusht/pusht_cchi_v7_replay.zarr"))
    assert _loud(report) == {}
    assert report.episodes == 206 and not report.fails(Severity.ERROR)


def test_the_lerobot_samples_have_no_errors() -> None:
    small = validate(sample("lerobot/v30_small"))
    assert _loud(small) == {}
    g1 = validate(sample("lerobot/g1_v21_subset"))
    assert not g1.fails(Severity.ERROR)


def test_the_rlds_edge_cases_need_a_rate_and_then_validate() -> None:
    report = validate(sample("rlds/edgecases/rlds_edgecases/1.0.0"), rate_hz=10.0)
    assert report.episodes == 7
    assert any(f.check == "RDV103" for f in report.findings), "a one-frame episode is too short"


def test_the_strict_profile_finds_bridges_all_black_wrist_camera() -> None:
    report = validate(sample("rlds/bridge_debug/bridge_dataset/1.0.0"), profile="strict", select=["RDV6"])
    blank = [f for f in report.findings if f.check == "RDV602"]
    assert len(blank) == 50 and {f.feature for f in blank} == {"observation.images.wrist"}
    assert all("blank" in f.message for f in blank)
