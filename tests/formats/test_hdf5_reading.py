"""How the HDF5 backend reads encoded camera rows: direct chunk reads for one-row chunks, chunk-aligned blocks
otherwise, and the damage either way still reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from rdstd.errors import CorruptSourceError
from rdstd.formats.hdf5 import Hdf5Backend
from rdstd.formats.hdf5.frames import EncodedRows, one_row_chunks, padded_lengths
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


def test_padded_rows_in_one_row_chunks_are_read_by_direct_chunk_reads(tmp_path: Path, selections: list[Any]) -> None:
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
