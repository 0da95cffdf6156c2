"""Camera statistics of a LeRobot export without decoding every frame (issue #14.8)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from rdstd.convert.pipeline import convert
from rdstd.export import image_stats
from rdstd.export.lerobot import export_lerobot
from rdstd.formats.lerobot import stats as lstats
from rdstd.media import video
from rdstd.schema.features import ImageFeature
from rdstd.schema.vocabulary import ImageCodec
from rdstd.store.reader import Dataset
from tests.conftest import sample

CAM = "observation.images.cam_high"


def _recorded(root: Path) -> dict[int, dict[str, Any]]:
    lines = (root / "meta/episodes_stats.jsonl").read_text().splitlines()
    return {row["episode_index"]: row["stats"] for row in map(json.loads, lines)}


@pytest.fixture(scope="module")
def g1_canonical(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("g1") / "canon"
    convert(sample("lerobot/g1_v21_subset"), out)
    return out


def test_a_v21_sources_camera_stats_travel_with_the_episode_under_the_canonical_camera(g1_canonical: Path) -> None:
    recorded = _recorded(sample("lerobot/g1_v21_subset"))
    ds = Dataset.open(g1_canonical)
    for i in range(ds.num_episodes):
        meta = ds.episode(i).meta
        assert meta.source_meta["image_stats"] == {CAM: recorded[meta.source_meta["lerobot_episode_index"]][CAM]}


def test_camera_stats_are_not_carried_when_the_camera_is_re_encoded(tmp_path: Path) -> None:
    convert(sample("lerobot/g1_v21_subset"), tmp_path / "jpeg", images=ImageCodec.JPEG, limit=1)
    assert "image_stats" not in Dataset.open(tmp_path / "jpeg").episode(0).meta.source_meta


def test_export_of_a_video_kept_v21_source_reuses_its_camera_stats_and_decodes_nothing(
    g1_canonical: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the export decoded the video")

    monkeypatch.setattr(video.VideoDecoder, "frame_at", refuse)
    report = export_lerobot(g1_canonical, tmp_path / "v30")
    assert report.cameras == {CAM: "statistics carried from the source, stream copy (av1)"}
    recorded = _recorded(sample("lerobot/g1_v21_subset"))
    table = pq.read_table(tmp_path / "v30/meta/episodes/chunk-000/file-000.parquet").to_pylist()
    for row in table:
        want = recorded[row["episode_index"]][CAM]
        for key in ("min", "max", "mean", "std", "count"):
            assert row[f"stats/{CAM}/{key}"] == want[key], key
        assert f"stats/{CAM}/q50" not in row  # a v2.1 source has no quantiles: none are invented
    stats = json.loads((tmp_path / "v30/meta/stats.json").read_text())[CAM]
    assert stats["count"] == [sum(r[CAM]["count"][0] for r in recorded.values())]
    assert set(stats) == {"min", "max", "mean", "std", "count"}


def test_without_carried_stats_a_video_camera_is_sampled_at_a_few_keyframes_only(
    g1_canonical: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image_stats, "SOURCE_META_KEY", "absent")  # as for any source that has no camera stats
    asked: list[float] = []
    original = video.VideoDecoder.frame_at

    def counting(self: video.VideoDecoder, t_s: float, size: tuple[int, int] | None = None) -> Any:
        asked.append(t_s)
        return original(self, t_s, size)

    monkeypatch.setattr(video.VideoDecoder, "frame_at", counting)
    report = export_lerobot(g1_canonical, tmp_path / "v30")
    assert report.cameras == {CAM: "stream copy (av1)"}
    ds = Dataset.open(g1_canonical)
    assert len(asked) <= image_stats.KEYFRAME_FRAMES * ds.num_episodes
    with video.VideoDecoder(next((tmp_path / "v30/videos").rglob("*.mp4"))) as decoder:
        keys = decoder.keyframe_times()
    assert all(np.isclose(keys, t, atol=1e-6).any() for t in asked)  # keyframes only: no frame decoded in between
    recorded = _recorded(sample("lerobot/g1_v21_subset"))
    rows = pq.read_table(tmp_path / "v30/meta/episodes/chunk-000/file-000.parquet").to_pylist()
    for row in rows:  # close to LeRobot's own (all of its sampled frames): the scene changes little
        want = np.asarray(recorded[row["episode_index"]][CAM]["mean"])
        assert np.allclose(np.asarray(row[f"stats/{CAM}/mean"]), want, atol=0.03)
        assert f"stats/{CAM}/q50" in row


def test_carried_stats_are_used_only_when_every_episode_has_well_formed_ones() -> None:
    good = {"min": [[[0.0]]] * 3, "max": [[[1.0]]] * 3, "mean": [[[0.5]]] * 3, "std": [[[0.2]]] * 3, "count": [9]}
    with_q = good | {q: [[[0.5]]] * 3 for q in lstats.QUANTILES}
    cams = {"cam": ImageFeature(height=4, width=4, codec=ImageCodec.VIDEO)}

    def metas(*stats: object) -> list[str]:
        return [json.dumps({"image_stats": {"cam": s}}) for s in stats]

    assert image_stats.carried_keys(metas(good, good), cams, quantiles=True) == {
        "cam": ("min", "max", "mean", "std", "count")
    }
    assert image_stats.carried_keys(metas(with_q, with_q), cams, quantiles=True)["cam"][-1] == "q99"
    assert image_stats.carried_keys(metas(with_q, good), cams, quantiles=True)["cam"][-1] == "count"
    assert image_stats.carried_keys(metas(with_q, with_q), cams, quantiles=False)["cam"][-1] == "count"
    assert image_stats.carried_keys([*metas(good), "{}"], cams, quantiles=True) == {}
    assert image_stats.carried_keys(metas(good, good | {"mean": [[[0.5]]] * 2}), cams, quantiles=True) == {}
    assert image_stats.carried_keys(metas(good, good | {"max": [[[255.0]]] * 3}), cams, quantiles=True) == {}
    assert image_stats.carried_keys(metas(good, good | {"count": [0]}), cams, quantiles=True) == {}
