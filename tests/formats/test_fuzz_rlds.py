"""Fuzzing the RLDS readers: damaged TFRecord framing and damaged or odd ``tf.train.Example`` payloads.

Whatever the bytes, reading either succeeds or raises an :class:`RdstdError` naming the shard file: never an
unhandled exception. Derandomized and small, so CI runs the same examples every time in a few seconds.
"""

from __future__ import annotations

import struct
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import example as known_case
from hypothesis import strategies as st

from rdstd.errors import RdstdError
from rdstd.formats.rlds import RldsDataset
from rdstd.formats.rlds.tfrecord import frame_record, masked_crc32c
from tests.formats.rlds_fixtures import (
    example,
    fdict,
    image,
    png16,
    sequence,
    synthetic_episode,
    synthetic_features,
    tensor,
    text,
    write_builder,
)

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
RECORDS = [synthetic_episode(n, seed)[0] for seed, n in enumerate([3, 1, 2])]
SHARD = b"".join(frame_record(r) for r in RECORDS)


@contextmanager
def _builder(features: dict[str, Any], records: list[bytes]) -> Iterator[tuple[Path, Path]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = write_builder(Path(tmp), features, {"train": [records]})
        yield root, next(root.glob("*.tfrecord-*"))


def _read_everything(root: Path, shard: Path) -> None:
    """Open, list, read every handle and stream the shard; every error must be an RdstdError naming the shard."""
    try:
        with RldsDataset(root) as ds:
            ds.info()
            for ref in ds.episode_refs():
                try:
                    ds.read_episode(ref)
                except RdstdError as exc:
                    assert str(shard) in exc.message, exc.message
            list(ds.shard_episodes(ds.shards()[0], on_error="skip"))
            for exc in ds.skipped:
                assert str(shard) in exc.message, exc.message
    except RdstdError as exc:
        assert str(shard) in exc.message or str(root) in exc.message, exc.message


@st.composite
def damaged_shards(draw: st.DrawFn) -> bytes:
    data = bytearray(SHARD)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "length", "crc", "insert"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[at:]
        elif kind == "length" and at + 8 <= len(data):
            value = draw(st.sampled_from([0, 1, 2**31, 2**63, 2**64 - 1]) | st.integers(0, 2**64 - 1))
            data[at : at + 8] = struct.pack("<Q", value)
        elif kind == "crc" and at + 4 <= len(data):
            data[at : at + 4] = struct.pack("<I", draw(st.integers(0, 2**32 - 1)))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


@FUZZ
@given(damaged_shards())
def test_damaged_tfrecord_framing_never_escapes_as_an_unhandled_exception(shard_bytes: bytes) -> None:
    with _builder(synthetic_features(), RECORDS) as (root, shard):
        shard.write_bytes(shard_bytes)
        _read_everything(root, shard)


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_record_payloads_with_valid_framing_are_corrupt_records(payload: bytes) -> None:
    with _builder(synthetic_features(), [payload]) as (root, shard):
        _read_everything(root, shard)


@FUZZ
@given(st.integers(0, len(RECORDS[0]) - 1), st.integers(0, 7), st.integers(0, len(RECORDS[0])))
def test_mutated_example_payloads_are_read_or_named(position: int, bit: int, cut: int) -> None:
    payload = bytearray(RECORDS[0])
    payload[position] ^= 1 << bit
    with _builder(synthetic_features(), [bytes(payload), bytes(payload[:cut])]) as (root, shard):
        _read_everything(root, shard)


STEP_FEATURES = fdict(
    {
        "steps": sequence(
            fdict(
                {
                    "action": tensor("float32", [2]),
                    "flag": tensor("bool"),
                    "big": tensor("uint64"),
                    "blob": tensor("float32", [-1], encoding="zlib"),
                    "points": sequence(tensor("float32", [3])),
                    "camera": image("png", [4, 4, 3]),
                    "instruction": text(),
                }
            ),
            dataset=True,
        ),
        "episode_metadata": fdict({"file_path": text(), "score": tensor("float64"), "ids": tensor("int32", [2])}),
    }
)
KEYS = [
    "steps/action", "steps/flag", "steps/big", "steps/blob", "steps/points/ragged_flat_values",
    "steps/points/ragged_row_lengths_0", "steps/points/ragged_row_lengths_1", "steps/camera",
    "steps/instruction", "episode_metadata/file_path", "episode_metadata/score", "episode_metadata/ids", "extra",
]  # fmt: skip
VALUES = st.one_of(
    st.lists(st.binary(max_size=12), max_size=5),
    st.lists(st.floats(allow_nan=True, width=32), max_size=9).map(lambda v: np.array(v, dtype=np.float32)),
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=9),
)


def _valid(steps: int) -> dict[str, Any]:
    """A record that fits STEP_FEATURES, with ``steps`` steps."""
    return {
        "steps/action": np.arange(2 * steps, dtype=np.float32),
        "steps/flag": [1] + [0] * (steps - 1),
        "steps/big": np.array([2**64 - 1] * steps, dtype=np.uint64),
        "steps/blob": [zlib.compress(np.arange(i, dtype="<f4").tobytes()) for i in range(steps)],
        "steps/points/ragged_flat_values": np.arange(3 * steps, dtype=np.float32),
        "steps/points/ragged_row_lengths_0": [1] * steps,
        "steps/camera": [png16(i) for i in range(steps)],
        "steps/instruction": [b"pick"] * steps,
        "episode_metadata/file_path": [b"/data/ep.npy"],
        "episode_metadata/score": np.array([0.5], dtype=np.float32),
        "episode_metadata/ids": [1, 2],
    }


@FUZZ
@given(
    st.integers(1, 4),
    st.dictionaries(st.sampled_from(KEYS), st.none() | VALUES, max_size=3),
)
# found by this test with more examples: flat values that are not whole points; lengths that go negative
@known_case(steps=1, changes={"steps/points/ragged_flat_values": np.array([0.0], dtype=np.float32)})
@known_case(steps=2, changes={"steps/points/ragged_row_lengths_0": [3, -1]})
def test_examples_that_almost_fit_features_json_are_read_or_named(steps: int, changes: dict[str, Any]) -> None:
    features = _valid(steps)
    for key, value in changes.items():
        if value is None:
            features.pop(key, None)
        else:
            features[key] = value
    with _builder(STEP_FEATURES, [example(features)]) as (root, shard):
        _read_everything(root, shard)


def test_the_unchanged_record_reads() -> None:
    with _builder(STEP_FEATURES, [example(_valid(3))]) as (root, _), RldsDataset(root) as ds:
        episode = ds.read_episode(ds.episode_refs()[0])
    assert episode.length == 3 and len(episode.meta["ragged"]["steps/points"]) == 3


def test_a_crc_for_a_fuzzed_length_is_what_the_reader_checks() -> None:
    """The framing the fuzzer damages is the real one: a record is length + masked CRC + data + masked CRC."""
    length = struct.pack("<Q", len(RECORDS[0]))
    assert SHARD[:8] == length and SHARD[8:12] == struct.pack("<I", masked_crc32c(length))
