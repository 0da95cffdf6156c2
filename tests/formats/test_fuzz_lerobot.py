"""Fuzzing the Parquet and mp4 readers: a LeRobot dataset's data parquet and video, and rdstd's own shards.

Whatever the damage (flipped bytes anywhere, a file cut short), reading every episode and decoding every frame
either succeeds or raises an :class:`RdstdError` naming the damaged file: never an unhandled exception. rdstd's
own shards carry page checksums, so there a flip is also never read as data. A LeRobot parquet written without
checksums can hide a flip in a low mantissa bit that stays within the footer's min/max and the episode's stats
(no cross-check can see it); a longer run of this fuzzer finds such cases, so exactness is not claimed there.
Derandomized and small, so CI runs the same examples every time.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rdstd
from rdstd.errors import RdstdError
from rdstd.formats.base import read_frames
from rdstd.formats.lerobot.source import LeRobotSource
from rdstd.media import video
from rdstd.schema.episode import EncodedFrames, VideoFrames
from tests.formats.lerobot_fixtures import Spec, make_canonical, make_dataset

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def lerobot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield make_dataset(tmp_path_factory.mktemp("lerobot") / "ds", Spec(version="v3.0", lengths=[5, 7]))


@pytest.fixture(scope="module")
def canonical(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield make_canonical(tmp_path_factory.mktemp("canonical") / "ds", splits=["train", "val"])


def _read_lerobot(root: Path) -> dict[str, Any]:
    """Every episode's vectors and decoded frames (the whole read a conversion does)."""
    values: dict[str, Any] = {}
    with LeRobotSource(root) as source:
        source.info()
        for ref in source.episode_refs():
            episode = source.read_episode(ref)
            for key, array in episode.vectors.items():
                values[f"{ref.key}/{key}"] = read_frames(array)
            for key, frames in episode.images.items():
                if isinstance(frames, VideoFrames):
                    values[f"{ref.key}/{key}"] = np.stack(list(video.decode_frames(frames)))
                elif not isinstance(frames, EncodedFrames):
                    values[f"{ref.key}/{key}"] = read_frames(frames)
    return values


def _damage(data: st.DataObject, original: bytes) -> bytes:
    """Flip a few bytes, or cut the file short (hypothesis chooses which and where)."""
    if data.draw(st.booleans(), label="truncate"):
        return original[: data.draw(st.integers(0, len(original) - 1), label="keep")]
    damaged = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8), label="flips")):
        at = data.draw(st.integers(0, len(damaged) - 1), label="at")
        damaged[at] ^= data.draw(st.integers(1, 255), label="xor")
    return bytes(damaged)


def _copy(root: Path, tmp: Path) -> Path:
    target = tmp / "copy"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(root, target)
    return target


@FUZZ
@given(data=st.data())
def test_a_damaged_data_parquet_is_read_or_named(lerobot: Path, tmp_path: Path, data: st.DataObject) -> None:
    copy = _copy(lerobot, tmp_path)
    parquet = next((copy / "data").rglob("*.parquet"))
    parquet.write_bytes(_damage(data, parquet.read_bytes()))
    try:
        _read_lerobot(copy)
    except RdstdError as exc:
        assert "parquet" in exc.message or str(copy) in exc.message, exc.message


@FUZZ
@given(data=st.data())
def test_a_damaged_mp4_is_decoded_or_named(lerobot: Path, tmp_path: Path, data: st.DataObject) -> None:
    copy = _copy(lerobot, tmp_path)
    mp4 = next((copy / "videos").rglob("*.mp4"))
    mp4.write_bytes(_damage(data, mp4.read_bytes()))
    try:
        _read_lerobot(copy)
    except RdstdError as exc:
        assert "mp4" in exc.message or str(copy) in exc.message, exc.message


@FUZZ
@given(data=st.data())
def test_a_damaged_canonical_shard_is_read_exactly_or_named(
    canonical: Path, tmp_path: Path, data: st.DataObject
) -> None:
    intact = rdstd.open(canonical)
    expected = [intact.frame(i) for i in range(len(intact))]
    copy = _copy(canonical, tmp_path)
    shard = copy / "data" / "shard-00000.parquet"
    shard.write_bytes(_damage(data, shard.read_bytes()))
    try:
        dataset = rdstd.open(copy)
        got = [dataset.frame(i) for i in range(len(dataset))]
    except RdstdError as exc:
        assert "shard-00000" in exc.message or str(copy) in exc.message, exc.message
        return
    for want, have in zip(expected, got, strict=True):  # page checksums: a flip is caught, never read as data
        for key, value in want.items():
            np.testing.assert_array_equal(np.asarray(have[key]), np.asarray(value), err_msg=key)
