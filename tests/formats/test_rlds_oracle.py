"""The RLDS reader against tfds's own TF-free decoder, on fixtures written in code and on the real samples.

tfds (``FeatureConnector.from_json`` + ``deserialize_example_np``) is the oracle: it is the reference interpreter
of ``features.json``. It cannot decode 16-bit PNG without TensorFlow, so images are compared as bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rdstd.formats.base import SourceEpisode
from rdstd.formats.rlds import RldsDataset
from rdstd.formats.rlds.features import parse_features
from rdstd.schema.episode import EncodedFrames
from tests.conftest import sample
from tests.formats.rlds_fixtures import (
    BRIDGE_DIR,
    EDGE_DIR,
    decode_pixels,
    synthetic_episode,
    synthetic_features,
    tfds_decode,
    write_builder,
)

pytest.importorskip("tensorflow_datasets", reason="tfds is the oracle for these tests")


def _assert_matches_tfds(features_json: dict[str, Any], record: bytes, ep: SourceEpisode) -> None:
    want, steps = tfds_decode(features_json, record)
    assert ep.length == steps
    for leaf in parse_features(features_json).leaves:
        expected = want[leaf.path]
        if not leaf.in_steps:
            got = ep.meta["episode_metadata"][leaf.key]
            if leaf.kind == "text":
                assert got == expected.decode("utf-8")
            else:
                assert np.array_equal(np.asarray(got), np.asarray(expected)), leaf.key
                want_dtype = np.asarray(expected).dtype
                if isinstance(got, bool | int | float):  # scalars are handed out as Python values
                    python_type = {"b": bool, "i": int, "u": int, "f": float}[want_dtype.kind]
                    assert type(got) is python_type, f"{leaf.key}: {type(got).__name__} for tfds {want_dtype}"
                else:
                    assert np.asarray(got).dtype == want_dtype, f"{leaf.key}: {np.asarray(got).dtype} vs {want_dtype}"
        elif leaf.kind == "image":
            frames = ep.images[leaf.key]
            assert isinstance(frames, EncodedFrames)
            assert frames.frames == list(expected)
        elif leaf.kind == "text":
            assert ep.texts[leaf.key] == [b.decode("utf-8") for b in expected]
        elif leaf.ragged:
            rows = ep.meta["ragged"][leaf.key]
            for row, item in zip(rows, expected, strict=True):
                inner = tuple(d for d in leaf.shape if d is not None)
                want_row = np.asarray(item, dtype=leaf.dtype).reshape((-1, *inner)) if inner else np.asarray(item)
                assert row.dtype == want_row.dtype and np.array_equal(row.reshape(want_row.shape), want_row), leaf.key
        else:
            stacked = np.stack([np.asarray(v) for v in expected]) if expected else None
            got = ep.vectors[leaf.key]
            if stacked is not None:
                assert got.dtype == stacked.dtype, f"{leaf.key}: {got.dtype} vs tfds {stacked.dtype}"
                assert got.tobytes() == stacked.tobytes(), leaf.key


def _synthetic_dataset(tmp_path: Path, **kwargs: Any) -> tuple[Path, list[bytes], list[dict[str, Any]]]:
    made = [synthetic_episode(n, seed) for seed, n in enumerate([3, 1, 4, 0, 2])]
    records = [r for r, _ in made]
    root = write_builder(tmp_path, synthetic_features(), {"train": [records[:3], records[3:]]}, **kwargs)
    return root, records, [v for _, v in made]


def test_synthetic_oxe_like_records_decode_exactly_as_tfds_decodes_them(tmp_path: Path) -> None:
    root, records, _ = _synthetic_dataset(tmp_path)
    with RldsDataset(root) as ds:
        episodes = list(ds.episodes())
    assert len(episodes) == 5
    for record, ep in zip(records, episodes, strict=True):
        _assert_matches_tfds(synthetic_features(), record, ep)


def test_keys_whose_names_contain_a_slash_keep_their_name_and_values(tmp_path: Path) -> None:
    root, _, values = _synthetic_dataset(tmp_path)
    with RldsDataset(root) as ds:
        key = "steps/observation/clip_function_input/base_pose_tool_reached"
        leaf = ds.tree.by_key()[key]
        assert leaf.path == ("steps", "observation", "clip_function_input/base_pose_tool_reached")
        assert key in {k.key for k in ds.info().keys}
        ep = next(ds.episodes())
    assert np.array_equal(ep.vectors[key], values[0][key])
    assert ep.vectors["steps/observation/present/xyz"].dtype == np.float64


def test_uint64_ragged_zlib_and_class_labels_come_back_as_written(tmp_path: Path) -> None:
    root, _, values = _synthetic_dataset(tmp_path)
    with RldsDataset(root) as ds:
        episodes = list(ds.episodes())
    ep, want = episodes[2], values[2]
    assert ep.vectors["steps/observation/stamp_ns"].dtype == np.uint64
    assert ep.vectors["steps/observation/stamp_ns"].tolist() == want["steps/observation/stamp_ns"].tolist()
    assert [r.tolist() for r in ep.meta["ragged"]["steps/observation/objects"]] == [
        o.tolist() for o in want["steps/observation/objects"]
    ]
    assert np.array_equal(ep.vectors["steps/observation/proprio_zlib"], want["steps/observation/proprio_zlib"])
    assert ep.vectors["steps/phase"].tolist() == [0, 1, 2, 3]
    assert ep.task == "stack the ☃ blocks"
    depth = ep.images["steps/observation/depth"]
    assert isinstance(depth, EncodedFrames)
    assert [int(decode_pixels(f)[0, 0, 0]) for f in depth.frames] == [1000, 1007, 1014, 1021]
    assert ep.meta["episode_metadata"]["episode_metadata/weights"].tolist() == [0.0, 0.25, 0.5]


def test_an_episode_with_no_steps_is_read_as_empty(tmp_path: Path) -> None:
    root, _, _ = _synthetic_dataset(tmp_path)
    with RldsDataset(root) as ds:
        empty = list(ds.episodes())[3]
    assert empty.length == 0
    assert empty.vectors["steps/action"].shape == (0, 7)
    assert empty.meta["notes"] == ["the episode has no steps"]


def test_array_record_shards_give_the_same_episodes_as_tfrecord(tmp_path: Path) -> None:
    pytest.importorskip("array_record.python.array_record_module", reason="array_record reads ArrayRecord shards")
    tf_root, _, _ = _synthetic_dataset(tmp_path / "tf")
    ar_root, _, _ = _synthetic_dataset(tmp_path / "ar", file_format="array_record")
    with RldsDataset(tf_root) as a, RldsDataset(ar_root) as b:
        left, right = list(a.episodes()), list(b.episodes())
        assert b.info().extra["file_format"] == "array_record"
        assert [r.key for r in b.episode_refs()] == [r.key for r in a.episode_refs()]
        assert b.read_episode(b.episode_refs()[4]).meta["checksum"] == right[4].meta["checksum"]
    for x, y in zip(left, right, strict=True):
        assert x.meta["checksum"] == y.meta["checksum"] and x.meta["episode_id"] == y.meta["episode_id"]
        assert all(np.array_equal(x.vectors[k], y.vectors[k]) for k in x.vectors)


@pytest.mark.samples
@pytest.mark.parametrize("builder", [BRIDGE_DIR, EDGE_DIR])
def test_real_samples_decode_as_tfds_without_tensorflow_decodes_them(builder: str) -> None:
    root = sample(f"rlds/{builder}")
    features_json = json.loads((root / "features.json").read_text())
    from rdstd.formats.rlds.shards import open_shard

    with RldsDataset(root) as ds:
        for shard in ds.shards():
            reader = open_shard(shard.path, "tfrecord")
            for ep in ds.shard_episodes(shard):
                _assert_matches_tfds(features_json, reader.read(ep.meta["record"]["index"]).data, ep)
            reader.close()


@pytest.mark.samples
def test_our_features_walk_agrees_with_tfds_on_every_leaf() -> None:
    import tensorflow_datasets as tfds

    for builder in (BRIDGE_DIR, EDGE_DIR):
        raw = json.loads((sample(f"rlds/{builder}") / "features.json").read_text())
        ours = {leaf.key: leaf for leaf in parse_features(raw).leaves}
        theirs = tfds.features.FeatureConnector.from_json(raw).get_serialized_info()
        flat = tfds.core.utils.flatten_nest_dict(theirs)
        assert set(flat) == set(ours)
        for key, info in flat.items():
            leaf = ours[key]
            assert info.sequence_rank == leaf.sequence_rank, key
            if leaf.kind == "tensor" and leaf.encoding == "none":
                assert tuple(info.shape[info.sequence_rank :]) == leaf.shape, key
