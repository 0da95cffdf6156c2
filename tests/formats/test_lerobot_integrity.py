"""What the LeRobot metadata says against what is there: splits, files no one lists, missing files,
truncated videos, flipped bytes in Parquet, and Git LFS pointers (generated datasets, broken copies in tmp_path)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from rdstd.convert.pipeline import convert
from rdstd.errors import CorruptSourceError, EpisodeError, LfsPointerError
from rdstd.formats.lerobot.source import LeRobotSource
from rdstd.formats.lerobot.video import read_facts
from rdstd.store.reader import Dataset
from tests.conftest import sample
from tests.formats.lerobot_fixtures import Spec, edit_info, make_dataset, state_value

CAM = "observation.images.front"


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lerobot-integrity")
    return {
        "v2.1": make_dataset(root / "v21", Spec(version="v2.1")),
        "v3.0": make_dataset(root / "v30", Spec(version="v3.0")),
    }


def copy_of(datasets: dict[str, Path], version: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(datasets[version], tmp_path / version))


# -- splits (#7.4) ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v2.1", "v3.0"])
def test_splits_of_info_json_become_each_episodes_split(
    datasets: dict[str, Path], tmp_path: Path, version: str
) -> None:
    root = copy_of(datasets, version, tmp_path)
    edit_info(root, splits={"train": "0:2", "val": "2:3"})
    source = LeRobotSource(root)
    assert [source.read_episode(r).meta["split"] for r in source.episode_refs()] == ["train", "train", "val"]
    assert source.info().extra["splits"] == {"train": "0:2", "val": "2:3"}
    report = convert(root, tmp_path / "out")
    assert Dataset.open(tmp_path / "out").episodes["split"].to_list() == ["train", "train", "val"]
    assert not report.source_notes


def test_an_episode_in_no_split_is_unknown_and_counted(datasets: dict[str, Path], tmp_path: Path) -> None:
    root = copy_of(datasets, "v2.1", tmp_path)
    edit_info(root, splits={"train": "0:1"})
    report = convert(root, tmp_path / "out")
    assert Dataset.open(tmp_path / "out").episodes["split"].to_list() == ["train", "unknown", "unknown"]
    assert report.source_notes == {"episode in no split of meta/info.json: split unknown": 2}


def test_a_malformed_split_string_is_reported_not_fatal(datasets: dict[str, Path], tmp_path: Path) -> None:
    root = copy_of(datasets, "v3.0", tmp_path)
    edit_info(root, splits={"train": "0-2", "val": "2:3"})
    source = LeRobotSource(root)
    problem = "splits.train is '0-2', not 'start:end': its episodes' split is unknown"
    assert problem in source.info().extra["problems"]
    report = convert(root, tmp_path / "out")
    assert Dataset.open(tmp_path / "out").episodes["split"].to_list() == ["unknown", "unknown", "val"]
    assert report.source_notes[problem] == 1  # a dataset-level note, counted once
    assert report.source_notes["episode in no split of meta/info.json: split unknown"] == 2


def test_a_split_range_past_the_episodes_is_reported(datasets: dict[str, Path], tmp_path: Path) -> None:
    root = copy_of(datasets, "v2.1", tmp_path)
    edit_info(root, splits={"train": "0:100"})
    source = LeRobotSource(root)
    assert "splits.train is '0:100' for 3 episodes" in source.info().extra["problems"]
    assert [source.read_episode(r).meta["split"] for r in source.episode_refs()] == ["train"] * 3


# -- files no one lists, files that are missing (#7.7) -----------------------------------------------------------


def test_v2_files_that_episodes_jsonl_does_not_list_are_reported(datasets: dict[str, Path], tmp_path: Path) -> None:
    root = copy_of(datasets, "v2.1", tmp_path)
    shutil.copy(root / "data/chunk-000/episode_000002.parquet", root / "data/chunk-000/episode_000007.parquet")
    shutil.copy(root / f"videos/chunk-000/{CAM}/episode_000002.mp4", root / f"videos/chunk-000/{CAM}/old.mp4")
    extra = LeRobotSource(root).info().extra
    assert extra["unlisted_files"] == {
        "count": 2,
        "first": ["data/chunk-000/episode_000007.parquet", f"videos/chunk-000/{CAM}/old.mp4"],
    }
    report = convert(root, tmp_path / "out")
    assert report.episodes_written == 3
    assert any(note.startswith("2 data/video file(s) that no episode lists") for note in report.source_notes)


def test_v3_files_that_the_episodes_table_does_not_list_are_reported(datasets: dict[str, Path], tmp_path: Path) -> None:
    root = copy_of(datasets, "v3.0", tmp_path)
    (root / "data/chunk-001").mkdir()
    shutil.copy(root / "data/chunk-000/file-000.parquet", root / "data/chunk-001/file-000.parquet")
    assert LeRobotSource(root).info().extra["unlisted_files"]["first"] == ["data/chunk-001/file-000.parquet"]


def test_episodes_whose_files_are_missing_are_listed_before_any_is_read(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    root = copy_of(datasets, "v2.1", tmp_path)
    (root / f"videos/chunk-000/{CAM}/episode_000001.mp4").unlink()
    source = LeRobotSource(root)
    assert source.info().extra["missing_files"] == {"episode_000001": [f"videos/chunk-000/{CAM}/episode_000001.mp4"]}
    assert "1 episode(s) whose listed files are missing" in source.info().extra["problems"]
    report = convert(root, tmp_path / "out", on_error="skip")
    assert [s.key for s in report.skipped] == ["episode_000001"]
    assert report.source_notes["1 episode(s) whose listed files are missing"] == 1


# -- Git LFS pointers (#8.9) ---------------------------------------------------------------------------------


def lfs_pointer(path: Path) -> None:
    """Replace ``path`` with the Git LFS pointer a clone without ``git lfs pull`` leaves."""
    size = path.stat().st_size
    path.write_text(
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{'ab' * 32}\nsize {size}\n", encoding="utf-8"
    )


@pytest.mark.parametrize(
    ("version", "rel", "at"),
    [
        ("v2.1", "meta/info.json", "open"),
        ("v2.1", "meta/episodes.jsonl", "open"),
        ("v2.1", "data/chunk-000/episode_000001.parquet", "read"),
        ("v2.1", f"videos/chunk-000/{CAM}/episode_000001.mp4", "read"),
        ("v3.0", "meta/info.json", "open"),
        ("v3.0", "meta/episodes/chunk-000/file-000.parquet", "open"),
        ("v3.0", "meta/tasks.parquet", "open"),
        ("v3.0", "data/chunk-000/file-000.parquet", "read"),
        ("v3.0", f"videos/{CAM}/chunk-000/file-000.mp4", "read"),
    ],
)
def test_a_git_lfs_pointer_is_named_with_the_command_that_fetches_it(
    datasets: dict[str, Path], tmp_path: Path, version: str, rel: str, at: str
) -> None:
    root = copy_of(datasets, version, tmp_path)
    lfs_pointer(root / rel)
    with pytest.raises(LfsPointerError, match="is a Git LFS pointer") as caught:
        source = LeRobotSource(root)
        assert at == "read"
        source.read_episode(source.episode_refs()[1])
    assert f"git -C {root} lfs pull --include='{rel}'" in caught.value.hint


# -- truncated video (#8.7) -------------------------------------------------------------------------------------


def cut_media_in_half(path: Path) -> None:
    """Truncate an mp4 half way into its ``mdat`` (the index before it stays whole, as in a cut download)."""
    data = path.read_bytes()
    at = 0
    while data[at + 4 : at + 8] != b"mdat":
        at += int.from_bytes(data[at : at + 4], "big")
    with path.open("r+b") as handle:
        handle.truncate(at + (len(data) - at) // 2)


@pytest.mark.parametrize("version", ["v2.1", "v3.0"])
def test_a_video_cut_short_with_its_index_intact_is_an_episode_error_not_frames_that_fail_later(
    tmp_path: Path, version: str
) -> None:
    spec = Spec(version=version, lengths=[6, 9, 7], faststart=True, codec="libsvtav1", declared_codec="av1")
    root = make_dataset(tmp_path / version, spec)
    mp4 = (
        root / f"videos/{CAM}/chunk-000/file-000.mp4"
        if version == "v3.0"
        else root / f"videos/chunk-000/{CAM}/episode_000002.mp4"
    )
    cut_media_in_half(mp4)
    source = LeRobotSource(root)
    with pytest.raises(EpisodeError, match=r"is truncated: \d+ of the episode's 7 frames lie past its end"):
        source.read_episode(source.episode_refs()[2])
    report = convert(root, tmp_path / "out", on_error="skip")
    assert [s.key for s in report.skipped][-1] == "episode_000002"
    for i in range(Dataset.open(tmp_path / "out").num_episodes):  # what was kept decodes, every frame
        assert len(Dataset.open(tmp_path / "out").episode(i).images[CAM].decode_all())


def test_the_packet_check_reads_no_more_than_the_index(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds", Spec(version="v3.0", lengths=[6, 9, 7], faststart=True))
    mp4 = root / f"videos/{CAM}/chunk-000/file-000.mp4"
    facts = read_facts(mp4)
    assert len(facts.ends) == 22 and facts.size == mp4.stat().st_size
    assert int(facts.ends.max()) <= facts.size and bool(np.all(facts.ends > 0))


# -- bit rot in Parquet (#8.8) ----------------------------------------------------------------------------------


def rewrite_plain(file: Path, *, checksums: bool = False) -> None:
    """Rewrite a parquet file uncompressed, without dictionaries, row groups kept: values sit as plain bytes."""
    handle = pq.ParquetFile(file)
    tables = [handle.read_row_group(g) for g in range(handle.metadata.num_row_groups)]
    with pq.ParquetWriter(
        file, tables[0].schema, compression="NONE", use_dictionary=False, write_page_checksum=checksums
    ) as writer:
        for table in tables:
            writer.write_table(table, row_group_size=table.num_rows)


def flip_bit(file: Path, value: np.float32, bit: int) -> np.float32:
    """Flip bit ``bit`` of the first stored copy of ``value`` (little-endian float32); returns the new value."""
    data = bytearray(file.read_bytes())
    at = bytes(data).index(value.tobytes())
    word = int.from_bytes(data[at : at + 4], "little") ^ (1 << bit)
    data[at : at + 4] = word.to_bytes(4, "little")
    file.write_bytes(bytes(data))
    return np.frombuffer(word.to_bytes(4, "little"), np.float32)[0]


V2_FILE = "data/chunk-000/episode_000001.parquet"


def test_a_flipped_value_outside_the_footers_min_max_is_a_corrupt_source_naming_file_and_column(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    root = copy_of(datasets, "v2.1", tmp_path)
    rewrite_plain(root / V2_FILE)
    flipped = flip_bit(root / V2_FILE, state_value(1, 4)[2], 30)  # the exponent's top bit: ~1e38
    assert abs(flipped) > 1e30
    (root / "meta/episodes_stats.jsonl").unlink()  # so the footer check alone has to catch it
    source = LeRobotSource(root)
    with pytest.raises(CorruptSourceError, match=r"episode_000001\.parquet: column observation\.state of episode 1 "
                       r"holds values in .* outside the footer's"):  # fmt: skip
        source.read_episode(source.episode_refs()[1])
    report = convert(root, tmp_path / "out", on_error="skip")
    assert [s.key for s in report.skipped] == ["episode_000001"]
    assert "column observation.state" in report.skipped[0].reason


@pytest.mark.parametrize("version", ["v2.1", "v3.0"])
def test_a_flipped_value_inside_the_footers_range_disagrees_with_lerobots_episode_stats(
    datasets: dict[str, Path], tmp_path: Path, version: str
) -> None:
    root = copy_of(datasets, version, tmp_path)
    file = root / (V2_FILE if version == "v2.1" else "data/chunk-000/file-000.parquet")
    rewrite_plain(file)
    value = state_value(1, 4)[1]
    flipped = flip_bit(file, value, 18)  # a mantissa bit: the value moves a little, inside [min, max]
    assert 1e-4 < abs(flipped - value) < 0.1
    source = LeRobotSource(root)
    source.read_episode(source.episode_refs()[0])  # the others are untouched
    recorded = "meta/episodes_stats.jsonl" if version == "v2.1" else r"the episodes table's stats/\*"
    with pytest.raises(
        CorruptSourceError, match=rf"column observation\.state of episode 1 has mean .* dimension 1, {recorded}"
    ):
        source.read_episode(source.episode_refs()[1])


def test_parquet_page_checksums_are_verified_when_the_writer_stored_them(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    root = copy_of(datasets, "v2.1", tmp_path)
    rewrite_plain(root / V2_FILE, checksums=True)
    flip_bit(root / V2_FILE, state_value(1, 4)[1], 18)
    source = LeRobotSource(root)
    with pytest.raises(EpisodeError, match=r"episode_000001\.parquet is not readable parquet .*[Cc]hecksum"):
        source.read_episode(source.episode_refs()[1])


def test_real_lerobot_files_pass_every_cross_check() -> None:
    for name in ("v30_small", "g1_v21_subset"):
        source = LeRobotSource(sample(f"lerobot/{name}"))
        assert all(source.read_episode(r).length for r in source.episode_refs())
