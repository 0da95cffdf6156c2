"""A frame of an image column is read alone (its own bytes, located from the page headers), with the pages
checksummed, for every page layout pyarrow writes; other layouts read through pyarrow with the same result."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import rdstd
from rdstd.errors import CorruptDatasetError
from rdstd.loader import FrameDataset
from rdstd.store import layout
from tests.loader.helpers import JPG, write

LAYOUTS: dict[str, tuple[dict[str, Any], bool]] = {
    # name: (pyarrow write options for the JPEG column's shard, read frame by frame?)
    "as written": ({}, True),
    "a page per frame": ({"data_page_size": 1, "write_batch_size": 1}, True),
    "data page v2": ({"data_page_version": "2.0"}, True),
    "v2, a page per frame": ({"data_page_version": "2.0", "data_page_size": 1, "write_batch_size": 1}, True),
    "compressed": ({"compression": "zstd"}, False),
    "dictionary": ({"use_dictionary": True}, False),
}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("pages") / "ds", [12, 12], row_group_frames=4)


def relayout(src: Path, dst: Path, options: dict[str, Any]) -> Path:
    """A copy of the dataset whose shard is rewritten with these pyarrow options (same rows and row groups)."""
    shutil.copytree(src, dst)
    shard = dst / layout.shard_name(0)
    table = pq.read_table(shard)
    base: dict[str, Any] = {"compression": "none", "use_dictionary": False, "write_page_checksum": True}
    pq.write_table(table, shard, row_group_size=4, **{**base, **options})
    return dst


def stored_bytes(path: Path) -> list[bytes]:
    column = pq.read_table(path / layout.shard_name(0), columns=[JPG]).column(0)
    return [v.as_py() for v in column]


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_every_layout_reads_the_stored_bytes(
    written: Path, tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    options, alone = LAYOUTS[name]
    path = relayout(written, tmp_path / "ds", options)
    groups: list[int] = []
    original = pq.ParquetFile.read_row_group

    def spy(self: pq.ParquetFile, i: int, columns: Any = None, **kw: Any) -> Any:
        groups.append(i)
        return original(self, i, columns=columns, **kw)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    ds = rdstd.open(path)
    order = [23, 0, 5, 4, 11, 12, 5]
    got = [bytes(b) for b in ds.stored(JPG, order)]
    want = stored_bytes(path)
    assert got == [want[i] for i in order]
    assert (groups == []) == alone


def test_a_flipped_byte_in_a_frame_is_a_checksum_error_naming_the_row_group(written: Path, tmp_path: Path) -> None:
    path = relayout(written, tmp_path / "ds", {})
    shard = path / layout.shard_name(0)
    frame = stored_bytes(path)[6]  # row group 1
    data = bytearray(shard.read_bytes())
    data[data.index(frame) + len(frame) // 2] ^= 0x5A
    shard.write_bytes(bytes(data))
    fd = FrameDataset(path, [JPG])
    with pytest.raises(CorruptDatasetError, match=r"shard-00000\.parquet, row group 1: page checksum mismatch"):
        fd.batch([6])
    assert fd.batch([0, 11])[JPG].shape == (2, 48, 64, 3), "the rest of the shard still reads"


def test_a_page_header_that_does_not_parse_is_reported_by_the_pyarrow_read(written: Path, tmp_path: Path) -> None:
    path = relayout(written, tmp_path / "ds", {})
    shard = path / layout.shard_name(0)
    meta = pq.ParquetFile(shard).metadata
    leaf = [meta.schema.column(j).path for j in range(meta.num_columns)].index(JPG)
    start = meta.row_group(2).column(leaf).data_page_offset
    data = bytearray(shard.read_bytes())
    data[start : start + 3] = b"\xff\xff\xff"
    shard.write_bytes(bytes(data))
    with pytest.raises(CorruptDatasetError, match=r"shard-00000\.parquet, row group 2: "):
        FrameDataset(path, [JPG]).batch([9])


def test_a_page_header_of_nested_structs_is_reported_by_the_pyarrow_read_not_a_recursion_error(
    written: Path, tmp_path: Path
) -> None:
    path = relayout(written, tmp_path / "ds", {})
    shard = path / layout.shard_name(0)
    meta = pq.ParquetFile(shard).metadata
    leaf = [meta.schema.column(j).path for j in range(meta.num_columns)].index(JPG)
    start = meta.row_group(2).column(leaf).data_page_offset
    data = bytearray(shard.read_bytes())
    data[start : start + 2048] = b"\x1c" * 2048  # field 1, a struct, whose field 1 is a struct, ...
    shard.write_bytes(bytes(data))
    with pytest.raises(CorruptDatasetError, match=r"shard-00000\.parquet, row group 2: "):
        FrameDataset(path, [JPG]).batch([9])


def test_a_pickled_dataset_reopens_its_files(written: Path) -> None:
    ds = rdstd.open(written)
    first = [bytes(b) for b in ds.stored(JPG, [1, 17])]
    copy = pickle.loads(pickle.dumps(ds))
    assert [bytes(b) for b in copy.stored(JPG, [1, 17])] == first
