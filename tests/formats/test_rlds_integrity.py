"""RLDS: nothing lost, nothing read from outside the builder folder, broken files named for what they are.

Counts come from the shard files, not dataset_info.json; paths from metadata stay inside the dataset; Git LFS
pointers, unreadable files, empty metadata and a missing protobuf each get their own one-line error.
"""

from __future__ import annotations

import builtins
import errno
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from rdstd.convert.pipeline import convert
from rdstd.errors import CorruptSourceError, LfsPointerError, MissingDependencyError, SourceError
from rdstd.formats.rlds import RldsBackend, RldsDataset
from rdstd.formats.rlds.features import parse_features
from rdstd.formats.rlds.tfrecord import TFRecordReader
from rdstd.schema.spec import ConverterSpec
from tests.formats.rlds_fixtures import (
    example,
    fdict,
    sequence,
    synthetic_episode,
    synthetic_features,
    tensor,
    text,
    write_builder,
)

POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 123456\n"
)
SPEC = ConverterSpec.model_validate(
    {"name": "synthetic", "format": "rlds", "rate_hz": 10, "features": {"action": {"key": "steps/action"}}}
)


def _builder(tmp_path: Path, shards: list[int], *, file_format: str = "tfrecord") -> Path:
    records = [[synthetic_episode(2 + i, seed=10 * s + i)[0] for i in range(n)] for s, n in enumerate(shards)]
    return write_builder(tmp_path / "data", synthetic_features(), {"train": records}, file_format=file_format)


def _edit_info(root: Path, change: Any) -> None:
    path = root / "dataset_info.json"
    info = json.loads(path.read_text())
    change(info)
    path.write_text(json.dumps(info))


def _set_lengths(*lengths: int) -> Any:
    def change(info: dict[str, Any]) -> None:
        info["splits"][0]["shardLengths"] = [str(n) for n in lengths]

    return change


# -- item 1: counts come from the files ----------------------------------------------------------------
@pytest.mark.parametrize("file_format", ["tfrecord", "array_record"])
def test_shard_lengths_smaller_than_the_files_lose_no_episode_and_say_so(tmp_path: Path, file_format: str) -> None:
    root = _builder(tmp_path, [5, 5], file_format=file_format)
    _edit_info(root, _set_lengths(3, 5))
    with RldsDataset(root) as ds:
        assert len(ds.episode_refs()) == 10
        info = ds.info()
        assert info.episodes == 10
        assert info.extra["splits"]["train"]["stated_episodes"] == 8
        (warning,) = info.extra["warnings"]
        assert "shard-00000" not in warning and "00000-of-00002: holds 5 records" in warning and "says 3" in warning
        first = ds.read_episode(ds.episode_refs()[0])
        assert warning in first.meta["notes"]
    report = convert(tmp_path / "data", tmp_path / "out", spec=SPEC)
    assert report.episodes_written == 10
    assert any("holds 5 records, dataset_info.json shardLengths says 3" in note for note in report.source_notes)
    assert warning in report.warnings  # dataset-level facts are warnings of the run, printed before the work


def test_a_shard_cut_at_a_record_boundary_is_an_error_naming_it_and_skip_lists_the_lost_episodes(
    tmp_path: Path,
) -> None:
    root = _builder(tmp_path, [4])
    shard = next(root.glob("*.tfrecord-*"))
    with TFRecordReader(shard) as reader:
        offsets = [r.offset for r in reader]
    shard.write_bytes(shard.read_bytes()[: offsets[2]])  # records 2 and 3 never arrived
    with RldsDataset(root) as ds:
        refs = ds.episode_refs()
        assert len(refs) == 4
        with pytest.raises(CorruptSourceError, match=r"records 2\.\.3 missing: the shard holds 2 records") as err:
            ds.read_episode(refs[2])
        assert str(shard) in err.value.message and "re-download" in err.value.hint
        assert any("records 2..3 are missing" in w for w in ds.info().extra["warnings"])
    with pytest.raises(CorruptSourceError, match="missing"):
        convert(tmp_path / "data", tmp_path / "failed", spec=SPEC)
    report = convert(tmp_path / "data", tmp_path / "out", spec=SPEC, on_error="skip")
    assert report.episodes_written == 2
    assert [s.key for s in report.skipped] == ["train/shard-00000/rec-2", "train/shard-00000/rec-3"]


def test_streaming_a_short_shard_fails_or_records_the_missing_records(tmp_path: Path) -> None:
    root = _builder(tmp_path, [3])
    _edit_info(root, _set_lengths(5))
    with RldsDataset(root) as ds:
        with pytest.raises(CorruptSourceError, match=r"records 3\.\.4 missing"):
            list(ds.episodes())
        kept = list(ds.shard_episodes(ds.shards()[0], on_error="skip"))
        assert len(kept) == 3 and "records 3..4 missing" in ds.skipped[0].message


def test_a_truncated_last_record_is_an_error_even_when_the_count_agrees(tmp_path: Path) -> None:
    root = _builder(tmp_path, [3])
    shard = next(root.glob("*.tfrecord-*"))
    shard.write_bytes(shard.read_bytes()[:-7])
    with RldsDataset(root) as ds:
        refs = ds.episode_refs()
        assert len(refs) == 3
        with pytest.raises(CorruptSourceError, match=r"record 2 .*truncated"):
            ds.read_episode(refs[2])


def test_trailing_garbage_after_the_stated_records_is_not_ignored(tmp_path: Path) -> None:
    root = _builder(tmp_path, [2])
    shard = next(root.glob("*.tfrecord-*"))
    shard.write_bytes(shard.read_bytes() + b"\x07" * 30)
    with RldsDataset(root) as ds:
        refs = ds.episode_refs()
        assert len(refs) == 3
        with pytest.raises(CorruptSourceError, match=r"record 2 .*length CRC mismatch"):
            ds.read_episode(refs[2])


# -- item 2: nothing read from outside -------------------------------------------------------------------
def test_a_filepath_template_climbing_out_of_the_dataset_is_refused(tmp_path: Path) -> None:
    root = _builder(tmp_path, [2])
    outside = tmp_path / "outside"
    outside.mkdir()
    for shard in root.glob("*.tfrecord-*"):
        (outside / shard.name).write_bytes(shard.read_bytes())
        shard.unlink()

    def escape(info: dict[str, Any]) -> None:
        info["splits"][0]["filepathTemplate"] = "../../../outside/{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"

    _edit_info(root, escape)
    with pytest.raises(CorruptSourceError, match="points outside the dataset folder"):
        RldsDataset(root)


def test_an_absolute_filepath_template_is_refused(tmp_path: Path) -> None:
    root = _builder(tmp_path, [1])
    _edit_info(root, lambda info: info["splits"][0].update(filepathTemplate="/etc/passwd"))
    with pytest.raises(CorruptSourceError, match="absolute path"):
        RldsDataset(root)


@pytest.mark.parametrize(("field", "value"), [("name", "../../x"), ("split", "../train"), ("split", "a/b")])
def test_builder_and_split_names_that_name_paths_are_refused(tmp_path: Path, field: str, value: str) -> None:
    root = _builder(tmp_path, [1])

    def change(info: dict[str, Any]) -> None:
        del info["splits"][0]["shardLengths"]  # the glob fallback joins the names too
        if field == "name":
            info["name"] = value
        else:
            info["splits"][0]["name"] = value

    _edit_info(root, change)
    with pytest.raises(CorruptSourceError, match="is not a plain name"):
        RldsDataset(root)


def test_a_symlinked_shard_inside_the_dataset_is_followed(tmp_path: Path) -> None:
    root = _builder(tmp_path, [2])
    shard = next(root.glob("*.tfrecord-*"))
    blobs = root / "blobs"
    blobs.mkdir()
    shard.rename(blobs / "abc")
    shard.symlink_to(Path("blobs") / "abc")
    with RldsDataset(root) as ds:
        assert len(list(ds.episodes())) == 2


# -- item 3: Git LFS pointers ----------------------------------------------------------------------------
@pytest.mark.parametrize("file_format", ["tfrecord", "array_record"])
def test_an_lfs_pointer_in_place_of_a_shard_says_so_with_the_fetch_command(tmp_path: Path, file_format: str) -> None:
    root = _builder(tmp_path, [2, 2], file_format=file_format)
    shard = sorted(root.glob(f"*.{file_format}-*"))[1]
    shard.write_text(POINTER)
    with RldsDataset(root) as ds:
        refs = ds.episode_refs()
        assert len(refs) == 4  # the pointer's two stated episodes are not silently gone
        assert ds.read_episode(refs[0]).length == 2
        with pytest.raises(LfsPointerError) as err:
            ds.read_episode(refs[2])
        assert err.value.message in ds.info().extra["warnings"]
    assert str(shard) in err.value.message and "Git LFS pointer" in err.value.message
    assert "git -C" in err.value.hint and "lfs pull" in err.value.hint and shard.name in err.value.hint
    with pytest.raises(LfsPointerError):
        convert(tmp_path / "data", tmp_path / "failed", spec=SPEC)
    report = convert(tmp_path / "data", tmp_path / "out", spec=SPEC, on_error="skip")
    assert report.episodes_written == 2
    assert [s.key for s in report.skipped] == ["train/shard-00001/rec-0", "train/shard-00001/rec-1"]
    assert all("Git LFS pointer" in s.reason for s in report.skipped)


def test_streaming_a_pointer_shard_in_skip_mode_records_it_and_goes_on(tmp_path: Path) -> None:
    root = _builder(tmp_path, [2, 2])
    shard = sorted(root.glob("*.tfrecord-*"))[0]
    shard.write_text(POINTER)
    with RldsDataset(root) as ds:
        kept = [e for s in ds.shards() for e in ds.shard_episodes(s, on_error="skip")]
        assert len(kept) == 2 and isinstance(ds.skipped[0], LfsPointerError)
        with pytest.raises(LfsPointerError):
            list(ds.episodes())


@pytest.mark.parametrize("name", ["dataset_info.json", "features.json"])
def test_an_lfs_pointer_in_place_of_the_metadata_says_so(tmp_path: Path, name: str) -> None:
    root = _builder(tmp_path, [1])
    (root / name).write_text(POINTER)
    with pytest.raises(LfsPointerError, match=name):
        RldsDataset(root)


# -- item 6: messages ----------------------------------------------------------------------------------------
def test_an_empty_dataset_info_json_is_named_not_an_empty_source(tmp_path: Path) -> None:
    root = _builder(tmp_path, [1])
    (root / "dataset_info.json").write_text("{}")
    with pytest.raises(CorruptSourceError, match=r"dataset_info\.json: is empty \(\{\}\), so no shard can be found"):
        RldsDataset(root)
    (root / "dataset_info.json").write_text('{"name": "x", "splits": []}')
    with pytest.raises(CorruptSourceError, match="names no splits"):
        RldsDataset(root)


def _deny(monkeypatch: pytest.MonkeyPatch, *denied: Path) -> None:
    """Files the OS refuses to open (EACCES), as for another user's files (tests may run as root)."""
    real_open = Path.open

    def guarded(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self in denied:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded)


def test_a_shard_without_read_permission_is_a_one_line_permission_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _builder(tmp_path, [2])
    shard = next(root.glob("*.tfrecord-*"))
    _deny(monkeypatch, shard)
    assert RldsBackend().detect(root)  # detection never raises
    with RldsDataset(root) as ds, pytest.raises(SourceError) as err:
        ds.read_episode(ds.episode_refs()[0])
    assert not isinstance(err.value, CorruptSourceError)
    assert err.value.message == f"{shard}: cannot read: permission denied"
    assert "permissions" in err.value.hint


def test_unreadable_metadata_is_a_permission_error_and_detection_does_not_raise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _builder(tmp_path, [2])
    _deny(monkeypatch, root / "dataset_info.json", root / "features.json")
    assert RldsBackend().detect(tmp_path / "data")
    with pytest.raises(SourceError, match=r"dataset_info\.json: cannot read: permission denied") as err:
        RldsDataset(root)
    assert not isinstance(err.value, CorruptSourceError)


def test_a_missing_protobuf_names_the_extra_not_a_corrupt_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rdstd.formats.rlds import proto

    root = _builder(tmp_path, [1])
    real_import = builtins.__import__

    def no_protobuf(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("google.protobuf"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_protobuf)
    monkeypatch.setattr("importlib.import_module", lambda name, *a: no_protobuf(name))
    proto.example_class.cache_clear()
    proto.decode_error.cache_clear()
    try:
        with RldsDataset(root) as ds, pytest.raises(MissingDependencyError) as err:
            ds.read_episode(ds.episode_refs()[0])
        assert "rdstd[rlds]" in err.value.hint and err.value.module == "protobuf"
    finally:
        monkeypatch.undo()
        proto.example_class.cache_clear()
        proto.decode_error.cache_clear()


# -- item 5: what is not read is said ---------------------------------------------------------------------
def test_features_rdstd_cannot_read_are_listed_not_fatal(tmp_path: Path) -> None:
    video = {"pythonClassName": "tensorflow_datasets.core.features.video_feature.Video", "video": {}}
    features = fdict(
        {
            "steps": sequence(
                fdict(
                    {
                        "action": tensor("float32", [2]),
                        "clip": video,
                        "labels": sequence(text()),
                        "instruction": text(),
                    }
                ),
                dataset=True,
            )
        }
    )
    tree = parse_features(features)
    assert set(tree.unread) == {"steps/clip", "steps/labels"}
    record = example(
        {
            "steps/action": [0.5, 1.5, 2.5, 3.5],
            "steps/instruction": [b"go", b"go"],
            "steps/clip": [b"\x00\x01"],
            "steps/labels/ragged_flat_values": [b"a", b"b"],
            "steps/labels/ragged_row_lengths_0": [1, 1],
        }
    )
    root = write_builder(tmp_path, features, {"train": [[record]]})
    with RldsDataset(root) as ds:
        info = ds.info()
        episode = ds.read_episode(ds.episode_refs()[0])
    assert {k.key for k in info.keys} == {"steps/action", "steps/instruction"}
    assert "Video" in info.extra["unread_keys"]["steps/clip"]
    assert "Sequence" in info.extra["unread_keys"]["steps/labels"]
    assert episode.length == 2
    assert not any("does not declare" in note for note in episode.meta["notes"])
    assert "features rdstd cannot read yet are left out: steps/clip, steps/labels" in episode.meta["notes"]


def test_every_per_step_key_is_in_info_keys_or_listed_as_unread() -> None:
    from tests.conftest import sample

    for name in ("rlds/edgecases", "rlds/bridge_debug"):
        with RldsDataset(sample(name)) as ds:
            info = ds.info()
            episode = ds.read_episode(ds.episode_refs()[0])
        listed = {k.key for k in info.keys} | set(info.extra["unread_keys"])
        step_keys = {leaf.key for leaf in ds.tree.step_leaves()}
        assert step_keys <= listed
        assert episode.keys() == {k.key for k in info.keys}


@pytest.mark.samples
def test_the_real_bridge_sample_with_shard_lengths_edited_down_converts_all_50_episodes(tmp_path: Path) -> None:
    from tests.conftest import sample

    copy = tmp_path / "bridge_debug"
    shutil.copytree(sample("rlds/bridge_debug"), copy)
    root = next(copy.rglob("dataset_info.json")).parent
    _edit_info(root, _set_lengths(20))  # train: 25 records in the file
    report = convert(copy, tmp_path / "out")
    assert report.episodes_written == 50 and not report.skipped
    assert any(
        "holds 25 records, dataset_info.json shardLengths says 20; all 25 are read" in n for n in report.source_notes
    )


def test_a_handle_past_every_record_is_a_usage_error_not_a_broken_download(tmp_path: Path) -> None:
    from rdstd.errors import UsageError
    from rdstd.formats.base import EpisodeRef

    root = _builder(tmp_path, [2])
    with RldsDataset(root) as ds, pytest.raises(UsageError, match=r"record 9 does not exist \(the shard holds 2"):
        ds.read_episode(EpisodeRef(0, "train/shard-00000/rec-9", ""))
