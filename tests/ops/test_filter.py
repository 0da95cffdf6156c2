"""rdstd filter: an expression over the episode table plus validation findings; kept episodes renumbered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rdstd
from rdstd.errors import UsageError
from rdstd.ops.filter import filter_episodes
from rdstd.validate import Evidence, Finding, Report, Severity
from tests.ops.helpers import make
from tests.ops.test_merge import assert_stats_equal, from_scratch


def test_where_keeps_matching_episodes_renumbered_with_frames_and_stats_recomputed(tmp_path: Path) -> None:
    src = make(tmp_path / "ds", episodes=6, frames=5)
    report = filter_episodes(src, tmp_path / "out", where="task = 'pick 1' AND length >= 5")
    assert (report.kept, report.dropped) == (3, 3)
    out, full = rdstd.open(tmp_path / "out"), rdstd.open(src)
    assert out.episodes["episode_id"].to_list() == ["ep001", "ep003", "ep005"]
    assert out.episodes["episode_index"].to_list() == [0, 1, 2]
    assert out.episodes["frame_start"].to_list() == [0, 5, 10]
    for i, j in enumerate((1, 3, 5)):
        np.testing.assert_array_equal(out.episode(i).vectors["action"], full.episode(j).vectors["action"])
        assert (
            out.episode(i).images["observation.images.front"].encoded
            == full.episode(j).images["observation.images.front"].encoded
        )
        assert out.frame(5 * i + 2)["index"] == 5 * i + 2
    assert_stats_equal(out.stats["action"], from_scratch(out, "action"))
    assert out.manifest.extra["filter"]["dropped_ids"] == ["ep000", "ep002", "ep004"]


def test_the_quality_column_rate_hz_can_be_filtered_on(tmp_path: Path) -> None:
    src = make(tmp_path / "ds", episodes=2, frames=5, rate_hz=10)
    assert filter_episodes(src, tmp_path / "out", where="rate_hz > 9.5").kept == 2
    with pytest.raises(UsageError, match="no episode passes"):
        filter_episodes(src, tmp_path / "none", where="rate_hz > 11")


def test_exclude_findings_drops_episodes_with_errors_from_a_report(tmp_path: Path) -> None:
    src = make(tmp_path / "ds", episodes=4, frames=5)
    finding = Finding(
        check="RDV101", name="values.nan", severity=Severity.ERROR, evidence=Evidence.DETERMINISTIC,
        message="NaN", episode_index=2, episode_id="ep002",
    )  # fmt: skip
    warn = finding.model_copy(update={"severity": Severity.WARNING, "episode_index": 1})
    report = Report(
        rdstd_version="t", dataset=str(src), source_format="rdstd", profile="default", episodes=4, frames=20,
        checks=[], findings=[finding, warn], counts={Severity.ERROR: 1, Severity.WARNING: 1},
    )  # fmt: skip
    findings = tmp_path / "findings.json"
    findings.write_text(report.model_dump_json())
    got = filter_episodes(src, tmp_path / "out", exclude_findings="error", findings=findings)
    assert (got.kept, got.dropped_by_findings) == (3, 1)
    assert rdstd.open(tmp_path / "out").episodes["episode_id"].to_list() == ["ep000", "ep001", "ep003"]
    assert filter_episodes(src, tmp_path / "w", exclude_findings="warning", findings=findings).kept == 2
    assert filter_episodes(src, tmp_path / "q", where="findings_warning = 0", findings=findings).kept == 3


def test_a_bad_expression_is_a_usage_error_naming_the_columns(tmp_path: Path) -> None:
    src = make(tmp_path / "ds", episodes=2, frames=3)
    with pytest.raises(UsageError, match="not a valid expression") as caught:
        filter_episodes(src, tmp_path / "out", where="no_such_column > 3")
    assert "episode_id" in caught.value.hint
    assert not (tmp_path / "out").exists()


def test_filtering_a_merged_dataset_counts_no_null_rows_as_data(tmp_path: Path) -> None:
    from rdstd.ops.merge import merge
    from rdstd.schema.vocabulary import Unit

    a = make(tmp_path / "a", prefix="a", unit=Unit.RAD)
    b = make(tmp_path / "b", prefix="b", unit=Unit.UNKNOWN)
    merge([a, b], tmp_path / "ab", separate=["observation.state", "action"])
    filter_episodes(tmp_path / "ab", tmp_path / "out", where="episode_id != 'a000'")
    out = rdstd.open(tmp_path / "out")
    assert set(out.manifest.vectors) == {"observation.state", "observation.state.b", "action", "action.b"}
    for key in out.manifest.vectors:
        assert out.stats[key]["nonfinite"] == [0] * 7
        assert_stats_equal(out.stats[key], from_scratch(out, key))
    assert out.stats["observation.state"]["count"] == [24] * 7  # a's two kept episodes × 12 frames


def test_keeping_one_input_of_a_merge_gives_back_its_rate_clock_and_embodiment(tmp_path: Path) -> None:
    from rdstd.ops.merge import merge

    a = make(tmp_path / "a", prefix="a", rate_hz=10.0, embodiment="arm_a")
    b = make(tmp_path / "b", prefix="b", rate_hz=5.0, embodiment="arm_b", camera="observation.images.wrist")
    merge([a, b], tmp_path / "ab")
    both = rdstd.open(tmp_path / "ab").manifest
    assert both.rate_hz is None and len(both.embodiments) == 2
    filter_episodes(tmp_path / "ab", tmp_path / "out", where="embodiment = 'arm_b'")
    out = rdstd.open(tmp_path / "out").manifest
    assert out.rate_hz == 5.0 and out.clock == rdstd.open(b).manifest.clock
    assert [e.name for e in out.embodiments] == ["arm_b"]
    assert set(out.features) == {"observation.state", "action", "observation.images.wrist"}
    filter_episodes(tmp_path / "ab", tmp_path / "mixed", where="episode_id != 'a000'")
    mixed = rdstd.open(tmp_path / "mixed").manifest
    assert mixed.rate_hz is None and {e.name for e in mixed.embodiments} == {"arm_a", "arm_b"}
