"""How the HDF5 backend reads encoded camera rows: one-row chunks straight from the file (one read per block, no
object per frame), direct chunk reads or chunk-aligned blocks otherwise, and the damage either way still reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from rdstd.errors import CorruptSourceError
from rdstd.formats.hdf5 import Hdf5Backend
from rdstd.formats.hdf5 import frames as frames_module
from rdstd.formats.hdf5.frames import EncodedRows, H5Frames, compact, one_row_chunks, padded_lengths
from rdstd.schema.episode import BinaryFrames
from rdstd.testing import hdf5 as fx


def _padded(jpegs: list[bytes]) -> np.ndarray[Any, np.dtype[np.uint8]]:
    rows = np.zeros((len(jpegs), max(map(len, jpegs))), np.uint8)
    for i, data in enumerate(jpegs):
        rows[i, : len(data)] = np.frombuffer(data, np.uint8)
    return rows


@pytest.fixture
def selections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every selection any h5py dataset is sliced with while the test runs."""
    seen: list[Any] = []
    original = h5py.Dataset.__getitem__

    def spy(self: h5py.Dataset, index: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(index)
        return original(self, index, *args, **kwargs)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    return seen


def test_padded_rows_in_one_row_chunks_are_read_without_the_selection_machinery(
    tmp_path: Path, selections: list[Any]
) -> None:
    jpegs = [fx.jpeg(fx.picture(i)) for i in range(20)]
    with h5py.File(tmp_path / "e.hdf5", "w") as f:
        f.create_dataset("cam", data=_padded(jpegs), chunks=(1, _padded(jpegs).shape[1]))
    with h5py.File(tmp_path / "e.hdf5", "r") as f:
        assert one_row_chunks(f["cam"])
        rows = EncodedRows(f["cam"], "cam", lengths=np.array([len(b) for b in jpegs[2:18]]), start=2, stop=18)
        selections.clear()
        assert rows[:] == jpegs[2:18]
        assert rows[3] == jpegs[5]
        assert list(rows) == jpegs[2:18]
        table = np.array([[len(b) for b in jpegs]])
        (cut,) = padded_lengths({"cam": f["cam"]}, table, "e.hdf5:compress_len").values()  # probes the first rows
        assert cut.tolist() == table[0].tolist()
    assert selections == []  # no selection machinery, no array per row


def test_a_padded_row_never_written_reads_as_zeros_and_is_reported(tmp_path: Path) -> None:
    jpegs = [fx.jpeg(fx.picture(i)) for i in range(3)]
    padded = _padded(jpegs)
    with h5py.File(tmp_path / "e.hdf5", "w") as f:
        ds = f.create_dataset("cam", shape=(4, padded.shape[1]), dtype=np.uint8, chunks=(1, padded.shape[1]))
        ds[:3] = padded  # the recorder stopped before the last frame
    with h5py.File(tmp_path / "e.hdf5", "r") as f:
        rows = EncodedRows(f["cam"], "e.hdf5:cam", lengths=np.array([*map(len, jpegs), len(jpegs[0])]))
        assert rows[:3] == jpegs
        with pytest.raises(CorruptSourceError, match=r"e.hdf5:cam: frame 3 does not end a JPEG"):
            rows[3]


def test_compressed_multi_row_chunks_are_read_in_blocks_on_chunk_edges(tmp_path: Path, selections: list[Any]) -> None:
    jpegs = [fx.jpeg(fx.picture(i)) for i in range(50)]
    padded = _padded(jpegs)
    with h5py.File(tmp_path / "e.hdf5", "w") as f:
        f.create_dataset("cam", data=padded, chunks=(6, padded.shape[1]), compression="gzip")
    with h5py.File(tmp_path / "e.hdf5", "r") as f:
        assert not one_row_chunks(f["cam"])
        rows = EncodedRows(f["cam"], "cam", lengths=np.array([len(b) for b in jpegs[1:47]]), start=1, stop=47)
        selections.clear()
        assert rows[2:40] == jpegs[3:41]
    edges = [(s.start, s.stop) for s in selections]
    assert edges[0][0] == 3 and edges[-1][1] == 41
    inner = [e for s in edges for e in s][1:-1]
    assert all(e % 6 == 0 for e in inner)  # every block but the ends of the request starts and stops on a chunk edge
    assert all(stop - start <= 18 for start, stop in edges)  # bounded: 16 rows rounded up to whole chunks


def test_variable_length_rows_come_back_whole_in_aligned_blocks(tmp_path: Path, selections: list[Any]) -> None:
    rgb = fx.write_robomind(tmp_path / "trajectory.hdf5", steps=20)
    with h5py.File(tmp_path / "trajectory.hdf5", "r") as f:
        rows = EncodedRows(f["observations/rgb_images/camera_top"], "cam")
        selections.clear()
        assert rows[5:20] == rgb[5:20]
    assert [(s.start, s.stop) for s in selections] == [(5, 16), (16, 20)]


def test_the_image_shape_comes_from_the_jpeg_header_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fx.write_aloha_episode(tmp_path / "episode_0.hdf5", steps=3)
    from rdstd.media import images

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("decoded a frame to learn its shape")

    monkeypatch.setattr(images, "decode", refuse)
    with Hdf5Backend().open(tmp_path / "episode_0.hdf5") as source:
        keys = {k.key: k for k in source.info().keys}
    assert keys["observations/images/cam_high"].shape == (48, 64, 3)


def _write_cam(path: Path, rows: np.ndarray[Any, np.dtype[np.uint8]], **options: Any) -> None:
    with h5py.File(path, "w", **options) as f:
        f.create_dataset("cam", data=rows, chunks=(1, rows.shape[1]))


class _DirectReads:
    """Counts HDF5 direct chunk reads (the per-row path the file read replaces)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = frames_module.EncodedRows._chunk

        def spy(rows: EncodedRows, row: int) -> bytes:
            self.calls += 1
            return original(rows, row)

        monkeypatch.setattr(frames_module.EncodedRows, "_chunk", spy)


def test_padded_rows_are_read_from_the_file_in_one_buffer_per_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jpegs = [fx.jpeg(fx.picture(i)) for i in range(40)]
    _write_cam(tmp_path / "e.hdf5", _padded(jpegs))
    direct = _DirectReads(monkeypatch)
    with h5py.File(tmp_path / "e.hdf5", "r") as f:
        rows = EncodedRows(f["cam"], "cam", lengths=np.array([len(b) for b in jpegs[3:37]]), start=3, stop=37)
        block = rows[0:30]
        assert isinstance(block, BinaryFrames) and block == jpegs[3:33]
        assert len(block.array.buffers()[2]) == sum(map(len, jpegs[3:33]))  # one buffer, padding cut away
        assert rows[33] == jpegs[36] and list(rows) == jpegs[3:37]
    assert direct.calls == 0  # no HDF5 call per row


def test_a_file_with_a_user_block_is_read_through_hdf5_and_gives_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jpegs = [fx.jpeg(fx.picture(i)) for i in range(20)]
    _write_cam(tmp_path / "e.hdf5", _padded(jpegs), userblock_size=512)
    direct = _DirectReads(monkeypatch)
    with h5py.File(tmp_path / "e.hdf5", "r") as f:
        assert f.userblock_size == 512
        rows = EncodedRows(f["cam"], "cam", lengths=np.array([len(b) for b in jpegs]))
        assert rows[:] == jpegs
    assert direct.calls == len(jpegs)


def test_chunks_far_apart_in_the_file_are_read_one_by_one_and_in_row_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows written out of order (the last first) with other data in between: the chunks lie far apart and in
    another order than the rows; each row still comes back right."""
    jpegs = [fx.jpeg(fx.picture(i)) for i in range(12)]
    padded = _padded(jpegs)
    with h5py.File(tmp_path / "e.hdf5", "w") as f:
        ds = f.create_dataset("cam", shape=padded.shape, dtype=np.uint8, chunks=(1, padded.shape[1]))
        for i in reversed(range(len(jpegs))):
            ds[i] = padded[i]
            f.create_dataset(f"ballast_{i}", data=np.ones(40_000, np.uint8))  # 40 KB between chunks
    monkeypatch.setattr(frames_module, "SPAN_SLACK", 0)
    with h5py.File(tmp_path / "e.hdf5", "r") as f:
        rows = EncodedRows(f["cam"], "cam", lengths=np.array([len(b) for b in jpegs]))
        assert rows[2:11] == jpegs[2:11]
        mapped = rows._file
        assert isinstance(mapped, frames_module._ChunkFile) and mapped.offsets[0] > mapped.offsets[-1]


def test_compress_len_equal_to_the_padded_width_keeps_the_whole_row(tmp_path: Path) -> None:
    jpegs = [fx.jpeg(fx.picture(i)) for i in range(6)]
    padded = _padded(jpegs)
    longest = max(range(len(jpegs)), key=lambda i: len(jpegs[i]))
    assert len(jpegs[longest]) == padded.shape[1]
    _write_cam(tmp_path / "e.hdf5", padded)
    with h5py.File(tmp_path / "e.hdf5", "r") as f:
        rows = EncodedRows(f["cam"], "cam", lengths=np.array([len(b) for b in jpegs]))
        assert rows[:] == jpegs and rows[longest] == jpegs[longest]
    same = _padded([jpegs[longest]] * 3)  # every row exactly the padded width: the buffer is taken as it is
    array = compact(same.reshape(-1), np.arange(3) * same.shape[1], same.shape[1], np.full(3, same.shape[1]), "cam", 0)
    assert BinaryFrames(array) == [jpegs[longest]] * 3


@pytest.mark.parametrize("direct", [True, False])
def test_a_zero_length_row_is_a_clear_error_naming_the_frame(tmp_path: Path, direct: bool) -> None:
    jpegs = [fx.jpeg(fx.picture(i)) for i in range(5)]
    lengths = np.array([len(b) for b in jpegs])
    lengths[3] = 0
    padded = _padded(jpegs)
    with h5py.File(tmp_path / "e.hdf5", "w") as f:
        f.create_dataset("cam", data=padded, chunks=(1, padded.shape[1]) if direct else (2, padded.shape[1]))
    with h5py.File(tmp_path / "e.hdf5", "r") as f:
        rows = EncodedRows(f["cam"], "e.hdf5:cam", lengths=lengths)
        assert rows[:3] == jpegs[:3]
        with pytest.raises(
            CorruptSourceError, match=rf"^e.hdf5:cam: frame 3 claims 0 bytes of a {padded.shape[1]}-byte row$"
        ):
            rows[:]
        with pytest.raises(CorruptSourceError, match="frame 3 claims 0 bytes") as err:
            rows[3]
    assert err.value.situation == "compress-len-invalid"


def test_compact_cuts_rows_exactly_and_names_the_first_bad_frame() -> None:
    rows = [b"\xff\xd8ab\xff\xd9\0\0", b"\xff\xd8\xff\xd9\0\0\0\0", b"\xff\xd8abcd\xff\xd9"]
    buffer = np.frombuffer(b"".join(rows), np.uint8)
    at = np.array([0, 8, 16])
    assert BinaryFrames(compact(buffer, at, 8, np.array([6, 4, 8]), "cam", 0)) == [r.rstrip(b"\0") for r in rows]
    assert BinaryFrames(compact(buffer, at[:0], 8, np.zeros(0, np.int64), "cam", 0)) == []
    with pytest.raises(CorruptSourceError, match=r"^cam: frame 11 claims 9 bytes of a 8-byte row$"):
        compact(buffer, at, 8, np.array([6, 4, 9]), "cam", 9)
    with pytest.raises(CorruptSourceError, match=r"^cam: frame 1 does not end a JPEG at compress_len=5$"):
        compact(buffer, at, 8, np.array([6, 5, 9]), "cam", 0)  # the first bad frame is named, not the last


def test_small_vectors_are_read_once_per_episode(tmp_path: Path, selections: list[Any]) -> None:
    with h5py.File(tmp_path / "e.hdf5", "w") as f:
        f.create_dataset("qpos", data=np.arange(100 * 14, dtype=np.float64).reshape(100, 14))
        f.create_dataset("big", data=np.zeros((100, 2048), np.float64))  # 1.6 MB: read per slice
    with h5py.File(tmp_path / "e.hdf5", "r") as f:
        qpos = H5Frames(f["qpos"], start=10, stop=90)
        big = H5Frames(f["big"], start=10, stop=90)
        selections.clear()
        parts = [qpos[lo : lo + 17] for lo in range(0, 80, 17)]
        np.testing.assert_array_equal(np.concatenate(parts), f["qpos"][10:90])
        assert len(selections) == 1 + 1  # one read of the episode's rows (plus the reference read above)
        selections.clear()
        for lo in range(0, 80, 40):
            big[lo : lo + 40]
        assert len(selections) == 2


def test_variable_length_rows_are_joined_into_one_buffer_as_they_are(tmp_path: Path) -> None:
    values = [b"\xff\xd8one\xff\xd9", b"", b"\x89PNG\r\n\x1a\nrest", b"\xff\xd8three\xff\xd9"] * 6
    with h5py.File(tmp_path / "v.hdf5", "w") as f:
        ds = f.create_dataset("cam", (len(values),), dtype=h5py.vlen_dtype(np.dtype("uint8")), chunks=(5,))
        for i, value in enumerate(values):
            ds[i] = np.frombuffer(value, np.uint8)
    with h5py.File(tmp_path / "v.hdf5", "r") as f:
        rows = EncodedRows(f["cam"], "cam", start=1, stop=23)
        got = rows[0:22]
        assert isinstance(got, BinaryFrames) and got == values[1:23] and got[0] == b""
        assert len(got.array.buffers()[2]) == sum(map(len, values[1:23]))


@pytest.mark.parametrize("iov_rows", [256, 3])
def test_padded_rows_land_cut_in_their_buffer_with_one_copy_of_the_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, iov_rows: int
) -> None:
    """Rows with other data between their chunks (within the slack), read in several scatter reads: each frame's
    bytes go straight to their place, no padded block is read first and cut afterwards."""
    jpegs = [fx.jpeg(fx.picture(i)) for i in range(14)]
    padded = _padded(jpegs)
    with h5py.File(tmp_path / "e.hdf5", "w") as f:
        ds = f.create_dataset("cam", shape=padded.shape, dtype=np.uint8, chunks=(1, padded.shape[1]))
        for i in range(len(jpegs)):
            ds[i] = padded[i]
            f.flush()  # the chunk gets its place in the file now, before the ballast
            if i % 4 == 1:
                f.create_dataset(f"ballast_{i}", data=np.ones(40_000, np.uint8))  # 40 KB between some chunks
    monkeypatch.setattr(frames_module, "SPAN_SLACK", 1 << 20)  # close enough to be read in one go
    monkeypatch.setattr(frames_module, "IOV_ROWS", iov_rows)
    monkeypatch.setattr(frames_module, "compact", _refused)
    monkeypatch.setattr(frames_module._ChunkFile, "rows", _refused)
    with h5py.File(tmp_path / "e.hdf5", "r") as f:
        rows = EncodedRows(f["cam"], "cam", lengths=np.array([len(b) for b in jpegs]))
        block = rows[1:13]
        mapped = rows._file
        assert isinstance(mapped, frames_module._ChunkFile) and (np.diff(mapped.offsets) > padded.shape[1]).any()
        assert isinstance(block, BinaryFrames) and block == jpegs[1:13]
        assert len(block.array.buffers()[2]) == sum(map(len, jpegs[1:13]))
        assert rows[:] == jpegs and rows[13] == jpegs[13]


def test_a_packed_frame_that_does_not_end_a_jpeg_is_named(tmp_path: Path) -> None:
    jpegs = [fx.jpeg(fx.picture(i)) for i in range(6)]
    lengths = np.array([len(b) for b in jpegs])
    lengths[4] -= 1  # within its row, but one byte short of the JPEG's end
    _write_cam(tmp_path / "e.hdf5", _padded(jpegs))
    with h5py.File(tmp_path / "e.hdf5", "r") as f:
        rows = EncodedRows(f["cam"], "e.hdf5:cam", lengths=lengths)
        assert rows[:4] == jpegs[:4]
        with pytest.raises(CorruptSourceError, match=r"^e.hdf5:cam: frame 4 does not end a JPEG at compress_len="):
            rows[2:]


def _refused(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("padded rows were read and cut afterwards")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 1e30])
def test_a_compress_len_that_is_not_a_number_is_named_not_cast_to_a_huge_length(tmp_path: Path, value: float) -> None:
    """It was cast to int64 (a RuntimeWarning on stderr) and reported as "claims -9223372036854775808 bytes"."""
    jpegs = [fx.jpeg(fx.picture(i)) for i in range(6)]
    with h5py.File(tmp_path / "e.hdf5", "w") as f:
        f.create_dataset("cam", data=_padded(jpegs), chunks=(1, _padded(jpegs).shape[1]))
    table = np.array([[float(len(b)) for b in jpegs]])
    table[0, 4] = value
    with h5py.File(tmp_path / "e.hdf5", "r") as f, pytest.raises(CorruptSourceError) as caught:
        padded_lengths({"cam": f["cam"]}, table, "e.hdf5:compress_len")
    assert str(caught.value).startswith(f"e.hdf5:compress_len[0, 4] is {value}, not a length")
    assert caught.value.situation == "compress-len-invalid"
