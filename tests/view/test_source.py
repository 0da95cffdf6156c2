"""Viewing a source converted on the fly (nothing written but the .rrd), comparing it with its conversion, and the
streams the canonical store never holds: decoded pixels (in slices) and cameras kept as video."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("rerun")
pytest.importorskip("zarr")

import rerun as rr

import rdstd
from rdstd.convert.pipeline import convert
from rdstd.schema import ImageFeature
from rdstd.schema.episode import EpisodeMeta
from rdstd.testing.fixtures import make_zarr_replay_buffer
from rdstd.view import log as view_log
from rdstd.view.episodes import Chunk, DatasetView, SourceView, open_view
from rdstd.view.record import Side, record
from rdstd.view.session import save
from tests.view.helpers import chunks, rows, static

STATE, IMAGE = "observation.state", "observation.images.top"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "rb.zarr"
    make_zarr_replay_buffer(path, [30, 20], chunk_rows=8)
    return path


@pytest.fixture(scope="module")
def converted(source: Path) -> Path:
    out = source.parent / "canonical"
    convert(source, out)
    return out


def test_a_source_is_converted_on_the_fly_into_the_same_values_as_rdstd_convert(
    source: Path, converted: Path, tmp_path: Path
) -> None:
    with open_view(source) as view:
        assert isinstance(view, SourceView)
        [f] = save(view, [1], tmp_path / "ep.rrd").files
    assert sorted(p.name for p in source.parent.iterdir()) == ["canonical", "rb.zarr"], "nothing else written"
    ep = rdstd.open(converted).episode(1)
    frame, time, values = rows(f, f"/{STATE}/eef_position", "Scalars:scalars")
    np.testing.assert_array_equal(frame, np.arange(20))
    np.testing.assert_array_equal(time, np.round(ep.timestamps * 1e9).astype(np.int64))
    np.testing.assert_array_equal(np.array(values), ep.vectors[STATE][:, :2].astype(np.float64))
    _, _, blobs = rows(f, f"/{IMAGE}", "EncodedImage:blob")
    assert [bytes(b) for b in blobs] == ep.images[IMAGE].encoded
    assert static(f, "/__properties/dataset", "source_format") == ["zarr"]
    assert static(f, "/__properties/dataset", "converted_on_the_fly") == ["true"]
    assert static(f, "/__properties/units", STATE) == ["px", "px", "px", "px", "rad"]


def test_compare_shows_both_datasets_on_one_timeline_matched_by_episode_id(
    source: Path, converted: Path, tmp_path: Path
) -> None:
    with open_view(source) as view, open_view(converted) as other:
        assert isinstance(other, DatasetView)
        written = save(view, [0, 1], tmp_path, compare=other)
    assert written.notes == []
    for f in written.files:
        a = rows(f, f"/a/{STATE}/eef_position", "Scalars:scalars")
        b = rows(f, f"/b/{STATE}/eef_position", "Scalars:scalars")
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert a[2] == b[2]
        assert static(f, "/__properties/a.dataset", "source_format") == ["zarr"]
        assert static(f, "/__properties/b.dataset", "source_format") == ["zarr"]
        ids = static(f, "/__properties/a.episode", "episode_id"), static(f, "/__properties/b.episode", "episode_id")
        assert ids[0] == ids[1]


def test_compare_with_a_dataset_lacking_the_episode_shows_it_alone_and_says_so(
    source: Path, converted: Path, tmp_path: Path
) -> None:
    only_first = tmp_path / "first"
    convert(source, only_first, limit=1)
    with open_view(converted) as view, open_view(only_first) as other:
        written = save(view, [1], tmp_path / "out", compare=other)
    assert len(written.notes) == 1 and "has no episode with this id, shown alone" in written.notes[0]
    assert not any(c.entity_path.startswith("/b/") for c in chunks(written.files[0]))


def _record_chunks(tmp_path: Path, features: dict[str, ImageFeature], parts: list[Chunk]) -> Path:
    from rdstd.view.episodes import DatasetFacts, ViewEpisode

    facts = DatasetFacts("raw", "mem", dict(features))
    file = tmp_path / "raw.rrd"
    rec = record(
        [Side("", facts, ViewEpisode(0, EpisodeMeta(episode_id="e"), iter(parts)))],
        lambda r, bp: r.save(file, default_blueprint=bp),
    )
    rec.disconnect()
    return file


def test_decoded_pixels_are_sent_raw_in_slices_of_500_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    n = 1200
    pixels = (np.arange(n)[:, None, None, None] + np.zeros((1, 6, 8, 3))).astype(np.uint8)
    feature = {"cam": ImageFeature(height=6, width=8)}
    sent: list[int] = []
    original = rr.RecordingStream.send_columns

    def spy(self: rr.RecordingStream, entity_path: str, indexes: Any, columns: Any, **kw: Any) -> None:
        if entity_path == "cam":
            sent.append(len(next(iter(indexes)).as_arrow_array()))
        original(self, entity_path, indexes=indexes, columns=columns, **kw)

    monkeypatch.setattr(rr.RecordingStream, "send_columns", spy)
    file = _record_chunks(tmp_path, feature, [Chunk(0, np.arange(n) / 10.0, {}, {"cam": pixels})])
    assert sent == [view_log.RAW_SLICE, view_log.RAW_SLICE, n - 2 * view_log.RAW_SLICE]
    frame, _, buffers = rows(file, "/cam", "Image:buffer")
    np.testing.assert_array_equal(frame, np.arange(n))
    np.testing.assert_array_equal(np.array([b[0] for b in buffers]), np.arange(n).astype(np.uint8))
    fmt = static(file, "/cam", "Image:format")
    assert (fmt["width"], fmt["height"]) == (8, 6)


def test_a_camera_kept_as_video_is_sent_as_the_file_and_frame_references(tmp_path: Path) -> None:
    from tests.loader.helpers import VIDEO_CAM, write_video_dataset

    ds = write_video_dataset(tmp_path, [6, 5])
    with open_view(ds) as view:
        [f] = save(view, [1], tmp_path / "v.rrd").files
        ep = view.dataset.episode(1)
    frame, _, refs = rows(f, f"/{VIDEO_CAM}", "VideoFrameReference:timestamp")
    np.testing.assert_array_equal(frame, np.arange(5))
    want = [round(r["timestamp_s"] * 1e9) for r in ep.images[VIDEO_CAM].refs]
    assert [int(r) for r in refs] == want
    _, _, target = rows(f, f"/{VIDEO_CAM}", "VideoFrameReference:video_reference")
    assert target == [f"/{VIDEO_CAM}/video_0"] * 5
    [mp4] = ds.rglob("*.mp4")
    assert bytes(static(f, f"/{VIDEO_CAM}/video_0", "AssetVideo:blob")) == mp4.read_bytes(), "the file, not decoded"
