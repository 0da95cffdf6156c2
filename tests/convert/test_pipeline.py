"""The convert pipeline: paths normalised at the edge, the error policy by kind of fault, the clock, the report."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import rdstd
from rdstd.convert.pipeline import ConvertReport, convert
from rdstd.errors import (
    CorruptSourceError,
    EpisodeError,
    InternalError,
    MappingError,
    OutputError,
    SourceError,
    UsageError,
)
from rdstd.testing.fixtures import make_zarr_replay_buffer
from tests.conftest import sample
from tests.convert.pipeline_doubles import fail_at, registered, write_source

# -- 1. paths -------------------------------------------------------------------------------------------------------


def test_a_source_reached_through_dotdot_converts_like_the_plain_path(tmp_path: Path) -> None:
    shutil.copytree(sample("lerobot/v30_small"), tmp_path / "g1")
    (tmp_path / "x").mkdir()
    report = convert(f"{tmp_path}/x/../g1", f"{tmp_path}/x/../out", limit=1)
    assert report.episodes_written == 1
    assert report.source == str(tmp_path / "g1") and report.output == str(tmp_path / "out")
    dataset = rdstd.open(tmp_path / "out")
    assert ".." not in dataset.manifest.provenance.source_path
    assert dataset.num_episodes == 1


def test_a_relative_source_with_dotdot_is_normalised_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_zarr_replay_buffer(tmp_path / "rb.zarr", [4, 4], chunk_rows=4)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    report = convert("../work/../rb.zarr", "../out")
    assert report.source == str(tmp_path / "rb.zarr")
    assert (tmp_path / "out" / "rdstd.json").is_file()


@pytest.mark.parametrize("where", ["same", "inside", "above", "link"])
def test_an_output_that_overlaps_the_source_is_refused_and_the_source_is_untouched(tmp_path: Path, where: str) -> None:
    src = tmp_path / "data" / "rb.zarr"
    make_zarr_replay_buffer(src, [4, 4], chunk_rows=4)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    (tmp_path / "alias").symlink_to(src)
    out = {"same": src, "inside": src / "out", "above": tmp_path / "data", "link": tmp_path / "alias"}[where]
    with pytest.raises(UsageError, match="overlaps the source"):
        convert(src, out, overwrite=True)
    (tmp_path / "alias").unlink()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


# -- 2. the error policy --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        CorruptSourceError("episode 1: bytes do not decode"),
        EpisodeError("episode 1: lengths differ"),
    ],
)
def test_a_data_fault_skips_the_episode_with_its_reason(tmp_path: Path, fault: Exception) -> None:
    with registered() as double:
        double.fault = fail_at(1, fault)
        report = convert(write_source(tmp_path / "s.double", [3, 4, 5]), tmp_path / "out", on_error="skip")
    assert (report.episodes_written, report.frames_written) == (2, 8)
    (skipped,) = report.skipped
    assert (skipped.index, skipped.key) == (1, "ep1") and str(fault) in skipped.reason


@pytest.mark.parametrize(
    "fault",
    [TypeError("unsupported operand"), KeyError("observation"), AssertionError("shape"), ValueError("bad cast")],
)
def test_an_internal_fault_stops_the_run_even_in_skip_mode_with_the_cause_chained(
    tmp_path: Path, fault: Exception
) -> None:
    with registered() as double, pytest.raises(InternalError) as caught:
        double.fault = fail_at(1, fault)
        convert(write_source(tmp_path / "s.double", [3, 4, 5]), tmp_path / "out", on_error="skip")
    assert caught.value.__cause__ is fault
    assert "ep1" in caught.value.message and type(fault).__name__ in caught.value.message
    assert "--debug" in caught.value.hint
    assert not (tmp_path / "out").exists(), "nothing half-written is left behind"


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS])
def test_a_full_or_read_only_output_stops_the_run_instead_of_skipping(tmp_path: Path, code: int) -> None:
    out = tmp_path / "out"
    fault = OSError(code, "cannot write", str(out / "data" / "shard-00000.parquet"))
    with registered() as double, pytest.raises(OutputError) as caught:
        double.fault = fail_at(1, fault)
        convert(write_source(tmp_path / "s.double", [3, 4, 5]), out, on_error="skip")
    assert caught.value.__cause__ is fault  # the output's error, never listed as a skipped episode
    assert str(out) in caught.value.message
    assert not out.exists()


def test_permission_denied_on_the_output_stops_but_on_a_source_file_skips(tmp_path: Path) -> None:
    source = write_source(tmp_path / "s.double", [3, 4, 5])
    with registered() as double:
        double.fault = fail_at(1, PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "elsewhere")))
        with pytest.raises(OutputError, match="permission"):
            convert(source, tmp_path / "out", on_error="skip")
    with registered() as double:
        double.fault = fail_at(1, PermissionError(errno.EACCES, "Permission denied", str(source)))
        report = convert(source, tmp_path / "out", on_error="skip")
        with pytest.raises(SourceError, match="cannot read"):
            convert(source, tmp_path / "out2")
    assert report.episodes_written == 2
    assert "cannot read" in report.skipped[0].reason and str(source) in report.skipped[0].reason


def test_a_mapping_error_always_stops(tmp_path: Path) -> None:
    with registered() as double, pytest.raises(MappingError):
        double.fault = fail_at(0, MappingError("the spec does not fit"))
        convert(write_source(tmp_path / "s.double", [3, 4]), tmp_path / "out", on_error="skip")


def test_a_data_fault_in_fail_mode_stops_and_leaves_nothing(tmp_path: Path) -> None:
    with registered() as double, pytest.raises(CorruptSourceError):
        double.fault = fail_at(1, CorruptSourceError("bad bytes"))
        convert(write_source(tmp_path / "s.double", [3, 4]), tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- 5. the clock ---------------------------------------------------------------------------------------------------


def test_a_source_without_timestamps_or_rate_names_both_remedies(tmp_path: Path) -> None:
    with registered() as double, pytest.raises(MappingError) as caught:
        double.timestamps = False
        convert(write_source(tmp_path / "s.double", [3, 4]), tmp_path / "out")
    assert "--rate" in caught.value.hint and "rate_hz:" in caught.value.hint
    assert not (tmp_path / "out").exists()


def test_a_rate_given_to_convert_clocks_a_source_without_timestamps(tmp_path: Path) -> None:
    with registered() as double:
        double.timestamps = False
        report = convert(write_source(tmp_path / "s.double", [3, 4]), tmp_path / "out", rate_hz=20.0)
    assert report.rate_hz == 20.0
    dataset = rdstd.open(tmp_path / "out")
    assert dataset.manifest.rate_hz == 20.0
    assert dataset.manifest.extra["rate_hz_given"] == 20.0
    assert dataset.episode(1).timestamps.tolist() == pytest.approx([0.0, 0.05, 0.1, 0.15])


def test_a_rate_that_is_not_positive_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="positive"):
        convert(tmp_path / "anything", tmp_path / "out", rate_hz=0.0)


# -- 4. the plan comes before the work ------------------------------------------------------------------------------


def test_on_plan_sees_the_spec_choice_and_warnings_before_any_episode(tmp_path: Path) -> None:
    events: list[str] = []

    def on_plan(report: ConvertReport) -> None:
        events.append(f"plan {report.spec_choice} {report.episodes_planned} {len(report.warnings)}")

    with registered() as double:
        double.fault = lambda ref: events.append(f"read {ref.key}")
        convert(write_source(tmp_path / "s.double", [3, 4]), tmp_path / "out", on_plan=on_plan)
    assert events == ["plan drafted 2 1", "read ep0", "read ep1"]


def test_the_spec_choice_says_matched_or_given(tmp_path: Path) -> None:
    make_zarr_replay_buffer(tmp_path / "rb.zarr", [4, 4], chunk_rows=4)
    assert convert(tmp_path / "rb.zarr", tmp_path / "a").spec_choice == "matched"
    assert convert(tmp_path / "rb.zarr", tmp_path / "b", spec="zarr/pusht").spec_choice == "given"


# -- 6. non-finite values and what was left out ---------------------------------------------------------------------


def test_non_finite_values_are_counted_per_feature_in_the_report(tmp_path: Path) -> None:
    with registered() as double:
        double.nonfinite = [(0, 0, 0, np.nan), (0, 1, 1, np.nan), (2, 0, 1, np.inf), (2, 1, 0, -np.inf)]
        report = convert(write_source(tmp_path / "s.double", [3, 3, 3]), tmp_path / "out")
    (name,) = report.non_finite
    count = report.non_finite[name]
    assert (count.nan, count.inf, count.episodes) == (2, 2, 2)
    assert json.loads(json.dumps(report.as_dict()))["non_finite"][name] == {"nan": 2, "inf": 2, "episodes": 2}


def test_a_clean_source_reports_no_non_finite_values(tmp_path: Path) -> None:
    with registered():
        report = convert(write_source(tmp_path / "s.double", [3]), tmp_path / "out")
    assert report.non_finite == {}


def test_unmapped_keys_are_kept_or_left_out_with_a_reason_in_the_report_and_the_manifest(tmp_path: Path) -> None:
    make_zarr_replay_buffer(tmp_path / "rb.zarr", [4, 4], chunk_rows=4)
    spec = {
        "name": "state-only",
        "format": "zarr",
        "rate_hz": 10,
        "features": {"observation.state": {"key": "data/state"}},
    }
    from rdstd.schema.spec import ConverterSpec

    report = convert(tmp_path / "rb.zarr", tmp_path / "out", spec=ConverterSpec.model_validate(spec))
    assert "data/action" in report.kept_unmapped_keys and "data/keypoint" in report.kept_unmapped_keys
    assert "data/img" in report.dropped_source_keys  # float pixels of unknown range cannot become a camera
    manifest = rdstd.open(tmp_path / "out").manifest
    kept = manifest.vectors["action"]
    assert kept.source is not None and kept.source.key == "data/action"
    assert {d.unit for d in kept.dims} == {"unknown"}
    assert manifest.extra["dropped_source_keys"] == report.dropped_source_keys
    assert manifest.extra["kept_unmapped_keys"] == report.kept_unmapped_keys
    assert report.as_dict()["dropped_source_keys"] == report.dropped_source_keys

    dropped = convert(
        tmp_path / "rb.zarr", tmp_path / "out2", spec=ConverterSpec.model_validate(spec), drop_unmapped=True
    )
    assert dropped.kept_unmapped_keys == []
    assert dropped.dropped_source_keys["data/action"].startswith("--drop-unmapped")
    assert set(rdstd.open(tmp_path / "out2").manifest.features) == {"observation.state"}


def test_an_episode_written_in_chunks_counts_as_one_episode_with_non_finite_values() -> None:
    from collections import Counter

    from rdstd.convert.pipeline import NonFiniteCount, add_episode_non_finite, count_non_finite

    chunks = [
        {"action": np.array([[np.nan, 1.0]]), "flag": np.array([[1]], dtype=np.int8)},
        {"action": np.array([[np.inf, -np.inf]])},
    ]
    nan: Counter[str] = Counter()
    inf: Counter[str] = Counter()
    for chunk in chunks:
        for name, (n, i) in count_non_finite(chunk).items():
            nan[name] += n
            inf[name] += i
    totals: dict[str, NonFiniteCount] = {}
    add_episode_non_finite(totals, {name: (nan[name], inf[name]) for name in nan | inf})
    assert totals == {"action": NonFiniteCount(nan=1, inf=2, episodes=1)}


def test_a_long_episode_is_read_and_written_a_chunk_of_frames_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rdstd.convert import pipeline

    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 8 * 100)  # 2 float32 per frame: 100 frames a chunk
    with registered() as double:
        whole = convert(write_source(tmp_path / "s.double", [1000, 30]), tmp_path / "whole")
        double.lazy = True
        chunked = convert(tmp_path / "s.double", tmp_path / "chunked")
    assert double.slices[0] == [(start, start + 100) for start in range(0, 1000, 100)]
    assert chunked.frames_written == whole.frames_written == 1030
    for name in ("data/shard-00000.parquet", "episodes.parquet", "stats.json"):
        assert (tmp_path / "chunked" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()


def test_an_episode_failing_mid_read_leaves_no_trace_and_skip_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rdstd.convert import pipeline

    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 8 * 100)
    source = write_source(tmp_path / "s.double", [300, 450, 200])
    with registered() as double:
        double.lazy = True
        double.fail_frames = {1: 350}  # episode 1 fails in its fourth chunk, after three were written
        report = convert(source, tmp_path / "out", on_error="skip")
        double.fail_frames = {}
        write_source(tmp_path / "clean.double", [300, 200])
        convert(tmp_path / "clean.double", tmp_path / "clean")
    assert [s.key for s in report.skipped] == ["ep1"] and "frame 350" in report.skipped[0].reason
    dataset = rdstd.open(tmp_path / "out")
    assert len(dataset) == 500 and dataset.episodes["length"].to_list() == [300, 200]
    np.testing.assert_array_equal(dataset.episode(1).vectors["observation.state"][:, 0], np.arange(0, 400, 2))
    clean = rdstd.open(tmp_path / "clean")
    assert json.loads((tmp_path / "out" / "stats.json").read_text()) == json.loads(
        (tmp_path / "clean" / "stats.json").read_text()
    )
    assert clean.episodes["length"].to_list() == [300, 200]


def test_a_batch_conversions_stats_do_not_depend_on_the_chunk_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each episode's rows reach its partial statistics in fixed blocks, however it was read: the moments' rounding
    and the quantile sketch's compactions are the same for 100-frame and 1,000-frame chunks."""
    from rdstd.convert import pipeline

    out = {}
    with registered():
        source = write_source(tmp_path / "s.double", [9_000, 5_000, 30])
        for frames in (100, 1_000):
            monkeypatch.setattr(pipeline, "CHUNK_BYTES", 8 * frames)
            convert(source, tmp_path / f"out-{frames}", executor="local", workers=1, unit_episodes=2)
            out[frames] = json.loads((tmp_path / f"out-{frames}" / "stats.json").read_text())
    assert out[100]["observation.state"]["quantiles_exact"] is False  # the sketch compacted
    assert out[100] == out[1_000]
    assert (tmp_path / "out-100" / "stats.json").read_bytes() == (tmp_path / "out-1000" / "stats.json").read_bytes()


def test_chunks_of_encoded_frames_that_pass_through_are_sized_by_their_stored_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ALOHA's cameras are stored as JPEG padded to a known width: a chunk holds those bytes, not decoded pixels."""
    import h5py

    from rdstd.convert import pipeline
    from rdstd.convert.mapper import EpisodeConverter, resolve_spec
    from rdstd.convert.pipeline import MAX_CHUNK_FRAMES, chunk_frames, frames_per_chunk
    from rdstd.formats.base import SourceInfo, SourceKey
    from rdstd.formats.hdf5 import Hdf5Backend
    from rdstd.schema.vocabulary import ImageCodec
    from rdstd.testing import hdf5 as fx

    pixels = 480 * 640 * 3
    jpeg = SourceKey("cam", "image", (480, 640, 3), "uint8", codec=ImageCodec.JPEG, frame_bytes=40_000)
    unknown = SourceKey("raw", "image", (480, 640, 3), "uint8", codec=ImageCodec.JPEG)
    info = SourceInfo("x", "1", "x", 1, 10, [jpeg, unknown])
    assert chunk_frames(info) == 64 * 1024 * 1024 // (2 * pixels)  # decoded (or not known to pass through)
    assert chunk_frames(info, passed={"cam", "raw"}) == 64 * 1024 * 1024 // (40_000 + pixels)  # raw: size unknown
    alone = SourceInfo("x", "1", "x", 1, 10, [jpeg])
    assert chunk_frames(alone, passed={"cam"}) == pipeline.PASSED_CHUNK_BYTES // 40_000  # what the writer holds
    fx.write_aloha_folder(tmp_path / "aloha", episodes=1)
    with Hdf5Backend().open(tmp_path / "aloha") as source:
        info = source.info()
    widths = {k.key: k.frame_bytes for k in info.keys if k.kind == "image"}
    with h5py.File(next((tmp_path / "aloha").glob("*.hdf5"))) as f:
        assert widths == {f"observations/images/{c}": f[f"observations/images/{c}"].shape[1] for c in fx.ALOHA_CAMERAS}
    loaded, _ = resolve_spec(info, None)
    stored = sum(w for w in widths.values() if w is not None)
    expected = min(MAX_CHUNK_FRAMES, pipeline.PASSED_CHUNK_BYTES // stored)  # small JPEGs: the writer's bound
    assert frames_per_chunk(EpisodeConverter(loaded.spec, info)) == expected > 100
    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 200_000)  # the fixture's frames are tiny: a small chunk budget
    passed = chunk_frames(info, passed=set(widths))
    assert passed > 4 * chunk_frames(info)
    assert frames_per_chunk(EpisodeConverter(loaded.spec, info)) == passed
    assert frames_per_chunk(EpisodeConverter(loaded.spec, info, images=ImageCodec.PNG)) == chunk_frames(info)
