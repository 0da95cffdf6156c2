"""Bad RLDS input: truncated shards, CRC mismatches, records that do not fit features.json, missing files.

Every error names the shard file and the record number; skipping goes on with the next readable record; and
TensorFlow is never imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rdstd.errors import CorruptSourceError, RdstdError, SourceError, UnsupportedVersionError
from rdstd.formats.rlds import RldsBackend, RldsDataset
from rdstd.formats.rlds.tfrecord import TFRecordReader, frame_record
from tests.formats.rlds_fixtures import (
    example,
    fdict,
    sequence,
    synthetic_episode,
    synthetic_features,
    tensor,
    write_builder,
)


def _builder(tmp_path: Path, n: int = 4) -> tuple[Path, Path]:
    records = [synthetic_episode(2 + i, seed=i)[0] for i in range(n)]
    root = write_builder(tmp_path, synthetic_features(), {"train": [records]})
    return root, next(root.glob("*.tfrecord-*"))


def _record_offsets(shard: Path) -> list[int]:
    reader = TFRecordReader(shard)
    offsets = [r.offset for r in reader]
    reader.close()
    return offsets


def _flip(shard: Path, position: int) -> None:
    data = bytearray(shard.read_bytes())
    data[position] ^= 0xFF
    shard.write_bytes(bytes(data))


def test_a_data_crc_mismatch_names_the_shard_and_record(tmp_path: Path) -> None:
    root, shard = _builder(tmp_path)
    _flip(shard, _record_offsets(shard)[2] + 12 + 40)
    with RldsDataset(root) as ds, pytest.raises(CorruptSourceError) as err:
        list(ds.episodes())
    assert f"{shard}: record 2 (byte " in err.value.message
    assert "data CRC mismatch" in err.value.message
    assert "--on-error skip" in err.value.hint


def test_skipping_a_bad_record_goes_on_with_the_next_one(tmp_path: Path) -> None:
    root, shard = _builder(tmp_path)
    _flip(shard, _record_offsets(shard)[1] + 12 + 40)
    with RldsDataset(root) as ds:
        (only,) = ds.shards()
        kept = [e.meta["record"]["index"] for e in ds.shard_episodes(only, on_error="skip")]
        assert kept == [0, 2, 3]
        assert len(ds.skipped) == 1 and "record 1" in ds.skipped[0].message
        # the pipeline's path: one handle at a time
        refs = ds.episode_refs()
        with pytest.raises(CorruptSourceError, match="record 1"):
            ds.read_episode(refs[1])
        assert ds.read_episode(refs[2]).meta["record"]["index"] == 2


def test_a_truncated_shard_keeps_the_records_before_the_cut(tmp_path: Path) -> None:
    root, shard = _builder(tmp_path)
    offsets = _record_offsets(shard)
    shard.write_bytes(shard.read_bytes()[: offsets[3] + 30])
    with RldsDataset(root) as ds:
        (only,) = ds.shards()
        kept = [e.meta["record"]["index"] for e in ds.shard_episodes(only, on_error="skip")]
        assert kept == [0, 1, 2]
        assert "record 3" in ds.skipped[0].message and "truncated" in ds.skipped[0].message
        with pytest.raises(CorruptSourceError, match=r"record 3 .*truncated"):
            list(ds.episodes())


def test_a_bad_length_crc_makes_the_rest_of_the_shard_unreachable_and_says_so(tmp_path: Path) -> None:
    root, shard = _builder(tmp_path)
    _flip(shard, _record_offsets(shard)[1] + 2)
    with RldsDataset(root) as ds:
        refs = ds.episode_refs()
        assert ds.read_episode(refs[0]).length == 2
        with pytest.raises(CorruptSourceError, match=r"record 1 .*length CRC mismatch"):
            ds.read_episode(refs[1])
        with pytest.raises(CorruptSourceError, match=r"record 3 is unreachable, framing broke at record 1"):
            ds.read_episode(refs[3])


def test_a_record_that_does_not_match_features_json_names_shard_record_and_key(tmp_path: Path) -> None:
    features = fdict(
        {"steps": sequence(fdict({"action": tensor("float32", [3]), "is_first": tensor("bool")}), dataset=True)}
    )
    good = example({"steps/action": [0.0] * 6, "steps/is_first": [1, 0]})
    short = example({"steps/action": [0.0] * 5, "steps/is_first": [1, 0]})
    missing = example({"steps/is_first": [1, 0]})
    wrong_type = example({"steps/action": [1, 2, 3], "steps/is_first": [1]})
    root = write_builder(tmp_path, features, {"train": [[good, short, missing, wrong_type, good]]})
    shard = next(root.glob("*.tfrecord-*"))
    with RldsDataset(root) as ds:
        refs = ds.episode_refs()
        problems = {}
        for ref in refs[1:4]:
            with pytest.raises(CorruptSourceError) as err:
                ds.read_episode(ref)
            assert str(shard) in err.value.message
            problems[ref.key] = err.value.message
        kept = [e.meta["record"]["index"] for e in ds.shard_episodes(ds.shards()[0], on_error="skip")]
    assert kept == [0, 4]
    assert (
        "record 1: does not match features.json: feature 'steps/action': 5 values"
        in problems["train/shard-00000/rec-1"]
    )
    assert (
        "record 2" in problems["train/shard-00000/rec-2"]
        and "'steps/action' declared in features.json is missing" in problems["train/shard-00000/rec-2"]
    )
    assert "is a int64_list" in problems["train/shard-00000/rec-3"]


def test_garbage_instead_of_an_example_is_a_corrupt_record(tmp_path: Path) -> None:
    features = fdict({"steps": sequence(fdict({"action": tensor("float32", [3])}), dataset=True)})
    root = write_builder(tmp_path, features, {"train": [[b"\xff\xfe not protobuf \x00\x01"]]})
    with RldsDataset(root) as ds, pytest.raises(CorruptSourceError, match=r"record 0: does not match features\.json"):
        list(ds.episodes())


def test_a_missing_features_json_is_a_clear_source_error(tmp_path: Path) -> None:
    root, _ = _builder(tmp_path)
    (root / "features.json").unlink()
    assert RldsBackend().detect(root)  # still recognised by its shards, so the user gets the real problem
    with pytest.raises(CorruptSourceError, match=r"features.json: features.json is missing"):
        RldsDataset(root)


def test_a_missing_shard_and_an_unknown_file_format_are_source_errors(tmp_path: Path) -> None:
    root, shard = _builder(tmp_path)
    shard.unlink()
    with pytest.raises(CorruptSourceError, match=r"shard file.* missing"):
        RldsDataset(root)
    info = json.loads((root / "dataset_info.json").read_text())
    info["fileFormat"] = "riegeli"
    (root / "dataset_info.json").write_text(json.dumps(info))
    with pytest.raises(UnsupportedVersionError, match="riegeli"):
        RldsDataset(root)


def test_a_features_json_that_is_not_rlds_is_refused(tmp_path: Path) -> None:
    root = write_builder(tmp_path, fdict({"image": tensor("uint8", [2])}), {"train": [[b""]]})
    with pytest.raises(UnsupportedVersionError, match="no 'steps' Dataset feature"):
        RldsDataset(root)


def test_errors_are_rdstd_errors_never_bare_exceptions(tmp_path: Path) -> None:
    root, shard = _builder(tmp_path)
    data = shard.read_bytes()
    for cut in (5, 11, 13, 200, len(data) - 1):
        shard.write_bytes(data[:cut])
        with RldsDataset(root) as ds:
            try:
                list(ds.episodes())
            except RdstdError as exc:
                assert isinstance(exc, SourceError) and str(shard) in exc.message
            else:  # pragma: no cover - every cut must fail
                pytest.fail(f"cut at {cut} read without error")


def test_a_clean_file_frames_round_trip() -> None:
    framed = frame_record(b"abc")
    assert len(framed) == 8 + 4 + 3 + 4


def test_reading_rlds_never_imports_tensorflow(tmp_path: Path) -> None:
    root, _ = _builder(tmp_path)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from rdstd.formats.registry import detect\n"
        f"ds = detect(Path({str(root)!r})).open(Path({str(root)!r}))\n"
        "n = sum(1 for _ in ds.episodes())\n"
        "ds.info()\n"
        "assert n == 4, n\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_datasets'))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_two_feature_trees_with_the_same_keys_each_decode_with_their_own_shapes() -> None:
    """The per-leaf decode plan is made once per feature tree: a second tree whose same-named step leaf has another
    shape (or list type) decodes with its own, in any order, and a record that fits only one is refused by the
    other."""
    from rdstd.formats.rlds.example import ExampleMismatchError, decode_example
    from rdstd.formats.rlds.features import parse_features
    from rdstd.testing.rlds import rlds_features

    pairs = parse_features(rlds_features({"x": tensor("float32", [2])})), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    triples = parse_features(rlds_features({"x": tensor("float32", [3])})), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    counts = parse_features(rlds_features({"x": tensor("int32", [3])})), [1, 2, 3]
    for tree, values in (pairs, triples, counts, pairs, counts, triples):
        decoded = decode_example(example({"steps/x": values}), tree)
        leaf = tree.leaves[0]
        assert decoded.vectors["steps/x"].shape == (len(values) // leaf.shape[0], leaf.shape[0])
        assert decoded.vectors["steps/x"].dtype == leaf.dtype
    with pytest.raises(ExampleMismatchError, match="not a whole number of steps of 2"):
        decode_example(example({"steps/x": [1.0, 2.0, 3.0]}), pairs[0])
    with pytest.raises(ExampleMismatchError, match="is a float_list"):
        decode_example(example({"steps/x": [1.0, 2.0, 3.0]}), counts[0])
