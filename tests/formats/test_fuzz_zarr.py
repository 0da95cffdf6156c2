"""Fuzzing the zarr replay-buffer reader: damaged chunk bytes and odd ``.zarray`` / ``zarr.json`` metadata.

Whatever the bytes, opening and reading either succeeds or raises an :class:`RdstdError` naming the store:
never an unhandled exception. Derandomized and small, so CI runs the same examples every time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import example as known_case
from hypothesis import strategies as st

from rdstd.errors import RdstdError
from rdstd.formats.base import read_frames
from rdstd.formats.zarr import ZarrReplayBufferBackend
from rdstd.testing.fixtures import make_zarr_replay_buffer

FUZZ = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module", params=[2, 3])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp(f"v{request.param}") / "rb.zarr"
    make_zarr_replay_buffer(path, [7, 9], chunk_rows=8, zarr_format=request.param, image_hw=(8, 8))
    yield path


def _read_everything(path: Path) -> None:
    """Open, describe and read every frame; every error must be an RdstdError naming the store."""
    try:
        with ZarrReplayBufferBackend().open(path) as source:
            source.info()
            for ref in source.episode_refs():
                episode = source.read_episode(ref)
                for values in [*episode.vectors.values(), *episode.images.values()]:
                    read_frames(values)  # type: ignore[arg-type]
    except RdstdError as exc:
        assert str(path) in exc.message, exc.message


def _chunk(store: Path) -> Path:
    name = "state/0.0" if (store / "data" / "state" / ".zarray").is_file() else "state/c/0/0"
    return store / "data" / name


@FUZZ
@given(data=st.data())
def test_damaged_chunk_bytes_are_read_or_named(store: Path, data: st.DataObject) -> None:
    chunk = _chunk(store)
    original = chunk.read_bytes()
    damaged = bytearray(original)
    kind = data.draw(st.sampled_from(["flip", "truncate", "random", "empty"]))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            damaged[data.draw(st.integers(0, len(damaged) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "truncate":
        del damaged[data.draw(st.integers(0, len(damaged) - 1)) :]
    elif kind == "random":
        damaged = bytearray(data.draw(st.binary(max_size=200)))
    else:
        damaged = bytearray()
    try:
        chunk.write_bytes(bytes(damaged))
        _read_everything(store)
    finally:
        chunk.write_bytes(original)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**12) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
V2_KEYS = ["shape", "chunks", "dtype", "fill_value", "order", "filters", "compressor", "zarr_format",
           "dimension_separator"]  # fmt: skip
V3_KEYS = ["shape", "data_type", "chunk_grid", "chunk_key_encoding", "fill_value", "codecs", "zarr_format",
           "node_type", "attributes", "storage_transformers"]  # fmt: skip


@FUZZ
@given(data=st.data())
@known_case(data=None)  # the untouched store reads
def test_odd_array_metadata_is_read_or_named(store: Path, data: st.DataObject | None) -> None:
    v2 = (store / "data" / "action" / ".zarray").is_file()
    meta_file = store / "data" / "action" / (".zarray" if v2 else "zarr.json")
    original = meta_file.read_text()
    meta: Any = json.loads(original)
    if data is not None:
        keys = V2_KEYS if v2 else V3_KEYS
        for key in data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3, unique=True)):
            if data.draw(st.booleans()):
                meta.pop(key, None)
            else:
                meta[key] = data.draw(JSON_VALUES)
        if data.draw(st.integers(0, 9)) == 0:
            meta = data.draw(JSON_VALUES)  # not even an object
    try:
        meta_file.write_text(json.dumps(meta))
        _read_everything(store)
    finally:
        meta_file.write_text(original)
