"""rdstd resample: a fixed-rate grid, a declared method per feature, a report, smooth signals round-trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rdstd
from rdstd.convert.pipeline import convert
from rdstd.errors import UsageError
from rdstd.ops.resample import default_method, resample
from rdstd.schema.features import ActionSemantics, Dimension, GripperConvention, VectorFeature
from rdstd.schema.vocabulary import ActionMode, GripperKind
from tests.conftest import sample
from tests.ops.helpers import make


def test_a_smooth_signal_round_trips_within_the_linear_interpolation_bound(tmp_path: Path) -> None:
    src = make(tmp_path / "ds", episodes=2, frames=40, rate_hz=10)
    resample(src, tmp_path / "up", rate_hz=30)
    resample(tmp_path / "up", tmp_path / "back", rate_hz=10)
    resample(src, tmp_path / "down", rate_hz=5)
    resample(tmp_path / "down", tmp_path / "down-up", rate_hz=10)
    original, back, down_up = (rdstd.open(p) for p in (src, tmp_path / "back", tmp_path / "down-up"))
    for i in range(2):
        want = original.episode(i).vectors["observation.state"]
        # up then down: the 10 Hz grid points are 30 Hz grid points: exact (float32)
        np.testing.assert_allclose(back.episode(i).vectors["observation.state"], want, atol=1e-6)
        # down then up: sin has |f''| <= 1, step h = 0.2 s: linear interpolation error <= h^2/8 = 0.005
        got = down_up.episode(i).vectors["observation.state"]
        n = len(got)  # the 5 Hz grid ends at 3.8 s, the last original frame is 3.9 s
        assert n == 39
        assert np.abs(got - want[:n]).max() <= 0.2**2 / 8 + 1e-6


def test_cameras_take_the_nearest_frame_bytes_and_the_report_counts_what_was_filled(tmp_path: Path) -> None:
    src = make(tmp_path / "ds", episodes=1, frames=10, rate_hz=10)
    report = resample(src, tmp_path / "out", rate_hz=25)
    out, full = rdstd.open(tmp_path / "out"), rdstd.open(src)
    ep = out.episode(0)
    assert ep.length == 23  # 0 .. 0.88 s at 25 Hz, within the 0.9 s episode
    want = full.episode(0).images["observation.images.front"].encoded
    nearest = np.rint(ep.timestamps * 10).astype(int)
    assert ep.images["observation.images.front"].encoded == [want[k] for k in nearest]
    facts = report.episodes[0]["features"]
    assert facts["observation.images.front"]["method"] == "nearest"
    assert facts["observation.state"]["filled"] == 23 - 5  # 0, 0.2, 0.4, 0.6, 0.8 s are original frames
    assert out.manifest.rate_hz == 25
    assert "resampled to 25 Hz" in out.manifest.clock.resampling
    assert out.manifest.extra["resample"]["methods"]["action"] == "interpolate"


def test_relative_commands_flags_and_integers_are_held_not_interpolated() -> None:
    dims = [Dimension(name="g")]
    assert default_method(VectorFeature(shape=(1,), dims=dims, dtype="bool")) == "hold"
    relative = GripperConvention(dim=0, kind=GripperKind.RELATIVE)
    assert default_method(VectorFeature(shape=(1,), dims=dims, grippers=[relative])) == "hold"
    delta = ActionSemantics(mode=ActionMode.DELTA)
    assert default_method(VectorFeature(shape=(1,), dims=dims, action=delta)) == "hold"
    assert default_method(VectorFeature(shape=(1,), dims=dims)) == "interpolate"


def test_a_method_for_an_unknown_feature_or_an_interpolated_camera_is_refused(tmp_path: Path) -> None:
    src = make(tmp_path / "ds", episodes=1, frames=4)
    with pytest.raises(UsageError, match="no feature"):
        resample(src, tmp_path / "out", rate_hz=5, methods={"nope": "hold"})
    with pytest.raises(UsageError, match="cameras: nearest"):
        resample(src, tmp_path / "out", rate_hz=5, methods={"observation.images.front": "interpolate"})
    assert not (tmp_path / "out").exists()


def test_g1_video_at_30_hz_resamples_to_10_hz_by_reference_without_decoding(tmp_path: Path) -> None:
    convert(sample("lerobot/g1_v21_subset"), tmp_path / "g1")
    resample(tmp_path / "g1", tmp_path / "g1-10", rate_hz=10)
    full, out = rdstd.open(tmp_path / "g1"), rdstd.open(tmp_path / "g1-10")
    ep, src = out.episode(0), full.episode(0)
    assert abs(ep.length - src.length / 3) <= 1
    src_times = {r["timestamp_s"] for r in src.images["observation.images.cam_high"].refs}
    assert {r["timestamp_s"] for r in ep.images["observation.images.cam_high"].refs} <= src_times
    np.testing.assert_allclose(ep.vectors["observation.state"][1], src.vectors["observation.state"][3], atol=1e-5)


def test_quaternions_are_slerped_on_the_unit_sphere(tmp_path: Path) -> None:
    from rdstd.schema.episode import Episode, EpisodeMeta
    from rdstd.schema.features import RotationGroup
    from rdstd.schema.manifest import Provenance
    from rdstd.schema.vocabulary import RotationRepr
    from rdstd.store.writer import DatasetWriter

    quat = VectorFeature(
        shape=(4,),
        dims=[Dimension(name=n) for n in ("qx", "qy", "qz", "qw")],
        rotations=[RotationGroup(start=0, representation=RotationRepr.QUAT_XYZW)],
        dtype="float64",
    )
    t = np.arange(10) / 10.0
    angle = 2.0 * t  # a constant turn about z: 0.2 rad per frame
    q = np.stack([0 * t, 0 * t, np.sin(angle / 2), np.cos(angle / 2)], axis=1)
    with DatasetWriter(tmp_path / "q", {"pose": quat}, Provenance(source_format="t", rdstd_version="t")) as writer:
        writer.add(Episode(EpisodeMeta(episode_id="e"), t, {"pose": q}))
    resample(tmp_path / "q", tmp_path / "q20", rate_hz=20)
    ep = rdstd.open(tmp_path / "q20").episode(0)
    got = ep.vectors["pose"]
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-12)
    want_angle = 2.0 * ep.timestamps
    np.testing.assert_allclose(got[:, 2], np.sin(want_angle / 2), atol=1e-9)  # slerp is exact on a constant turn
