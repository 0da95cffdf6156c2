"""Cameras in batches: only the requested column and row groups are read, JPEG decoded at a DCT scale."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import simplejpeg
from PIL import Image

import rdstd
from rdstd.errors import CorruptDatasetError, UsageError
from rdstd.loader import FrameDataset, ImageOptions
from rdstd.loader import images as loader_images
from rdstd.media.images import decode, encode
from rdstd.schema import ImageCodec, ImageFeature
from tests.loader.helpers import CAM, JPG, pixel, write


@pytest.fixture(scope="module")
def ds_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("images") / "ds", [12, 12], row_group_frames=4)


def test_a_batch_reads_only_its_frames_bytes_and_each_chunk_header_once(
    ds_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups: list[int] = []
    reads: list[tuple[int, int]] = []
    original_group, original_pread = pq.ParquetFile.read_row_group, os.pread

    def spy_group(self: pq.ParquetFile, i: int, columns: Any = None, **kw: Any) -> Any:
        groups.append(i)
        return original_group(self, i, columns=columns, **kw)

    def spy_pread(fd: int, n: int, offset: int) -> bytes:
        reads.append((offset, n))
        return original_pread(fd, n, offset)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy_group)
    monkeypatch.setattr(os, "pread", spy_pread)
    meta = pq.ParquetFile(ds_path / "data" / "shard-00000.parquet").metadata
    leaf = [meta.schema.column(j).path for j in range(meta.num_columns)].index(JPG)
    chunks = [
        (meta.row_group(g).column(leaf).data_page_offset, meta.row_group(g).column(leaf).total_compressed_size)
        for g in (0, 1)
    ]
    fd = FrameDataset(ds_path, [JPG], windows={JPG: [-1, 0]})
    fd.batch([1, 2, 3, 5, 6])  # frames 0..6: row groups 0 and 1 only
    assert groups == [], "no row group is read through pyarrow"
    assert sorted(r for r in reads if r in chunks) == chunks, "each JPEG column chunk's pages parsed once"
    frames = [r for r in reads if r not in chunks]
    want = [len(b) for b in fd.dataset.stored(JPG, range(7))]
    assert sorted(n for _, n in frames) == sorted(want), "then each frame's own bytes, once"
    reads.clear()
    fd.batch([1, 2])
    assert sorted(n for _, n in reads) == sorted(want[:3]), "the chunk's spans are remembered"


def test_each_distinct_frame_is_decoded_once(ds_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = simplejpeg.decode_jpeg

    def spy(*a: Any, **kw: Any) -> Any:
        calls.append(1)
        return original(*a, **kw)

    monkeypatch.setattr(loader_images.simplejpeg, "decode_jpeg", spy)
    fd = FrameDataset(ds_path, [JPG], windows={JPG: [-1, 0]}, images=ImageOptions(size=(20, 30)), threads=2)
    fd.batch([1, 2, 3, 2])  # frames 0, 1, 2, 3
    assert len(calls) == 4


def test_jpeg_is_decoded_at_the_smallest_dct_scale_that_covers_the_size(  # libjpeg-turbo: M/8
    ds_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shapes = []
    original = simplejpeg.decode_jpeg

    def spy(*a: Any, **kw: Any) -> Any:
        out = original(*a, **kw)
        shapes.append(out.shape[:2])
        return out

    monkeypatch.setattr(loader_images.simplejpeg, "decode_jpeg", spy)
    ds = rdstd.open(ds_path)
    for size, scaled in (
        ((20, 30), (24, 32)),
        ((12, 16), (12, 16)),
        ((25, 30), (30, 40)),
        ((31, 64), (48, 64)),
    ):
        shapes.clear()
        fd = FrameDataset(ds, [JPG], images=ImageOptions(size=size))
        got = fd[5][JPG]
        assert shapes == [scaled]
        assert got.shape == (*size, 3) and got.dtype == np.uint8
        full = decode(ds.stored(JPG, [5])[0])
        want = loader_images.resize(full, size)
        assert np.abs(got.astype(int) - want.astype(int)).mean() < 4  # DCT scaling ≈ full decode + resize


def test_float_chw_layout(ds_path: Path) -> None:
    hwc = FrameDataset(ds_path, [CAM, JPG])[13]
    chw = FrameDataset(ds_path, [CAM, JPG], images=ImageOptions(layout="chw"))[13]
    for key in (CAM, JPG):
        assert chw[key].dtype == np.float32 and chw[key].shape == (3, *hwc[key].shape[:2])
        np.testing.assert_allclose(chw[key], hwc[key].transpose(2, 0, 1) / 255, atol=1e-6)
    assert (hwc[CAM] == pixel(1, 1)).all()


def test_lossless_camera_resized(ds_path: Path) -> None:
    for resample in ("bilinear", "area", "nearest"):
        out = FrameDataset(ds_path, [CAM], images=ImageOptions(size=(3, 4), resample=resample))[7][CAM]  # type: ignore[arg-type]
        assert out.shape == (3, 4, 3) and (out == pixel(0, 7)).all()


def test_area_resize_averages_the_pixels_each_output_pixel_covers() -> None:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(8, 12, 3), dtype=np.uint8)
    want = pixels.reshape(4, 2, 6, 2, 3).astype(np.float64).mean(axis=(1, 3))
    got = loader_images.resize(pixels, (4, 6), "area")
    # the mean of each 2×2 block, rounded in each of Pillow's two passes
    assert got.shape == (4, 6, 3) and np.abs(got - want).max() <= 1
    rgbx = np.concatenate([pixels, np.full((8, 12, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(loader_images.resize(rgbx, (4, 6), "area", drop_x=True), got)


def test_a_resized_jpeg_batch_matches_pillow_on_the_decoded_frame(
    ds_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # as in a process that has not imported torch
    ds = rdstd.open(ds_path)
    for resample, method in (("bilinear", Image.Resampling.BILINEAR), ("area", Image.Resampling.BOX)):
        got = FrameDataset(ds, [JPG], images=ImageOptions(size=(20, 30), resample=resample)).batch([3, 8])[JPG]  # type: ignore[arg-type]
        for row, i in zip(got, (3, 8), strict=True):
            half = simplejpeg.decode_jpeg(bytes(ds.stored(JPG, [i])[0]), min_height=20, min_width=30)
            want = np.asarray(Image.fromarray(half).resize((30, 20), method))
            np.testing.assert_array_equal(row, want)


def test_with_torch_imported_bilinear_is_torch_s_and_within_one_of_pillow(
    ds_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = ImageOptions(size=(20, 30))
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "torch", None)
        pillow = FrameDataset(ds_path, [JPG], images=options).batch([2, 9, 14])[JPG]
    torch = pytest.importorskip("torch")
    calls: list[tuple[int, ...]] = []
    original = torch.nn.functional.interpolate

    def spy(x: Any, *a: Any, **kw: Any) -> Any:
        calls.append(tuple(x.shape))
        return original(x, *a, **kw)

    monkeypatch.setattr(torch.nn.functional, "interpolate", spy)
    got = FrameDataset(ds_path, [JPG], images=options).batch([2, 9, 14])[JPG]
    assert calls == [(1, 3, 24, 32)] * 3  # the DCT-scaled RGB frame, resized by torch
    assert got.shape == pillow.shape and np.abs(got.astype(int) - pillow.astype(int)).max() <= 1
    chw = FrameDataset(ds_path, [JPG], images=ImageOptions(size=(20, 30), layout="chw")).batch([2, 9, 14])[JPG]
    np.testing.assert_allclose(chw, got.transpose(0, 3, 1, 2) / 255, atol=1e-6)


def test_nearest_resize_takes_pixel_centres() -> None:
    ramp = np.arange(8, dtype=np.uint8)[None, :, None].repeat(2, axis=0)
    assert loader_images.resize(ramp, (2, 4), "nearest")[0, :, 0].tolist() == [1, 3, 5, 7]
    depth = np.arange(8, dtype=np.uint16)[None, :, None]
    assert loader_images.resize(depth, (1, 2))[0, :, 0].tolist() == [2, 6]  # depth: never blended


def test_bad_image_options() -> None:
    with pytest.raises(UsageError):
        ImageOptions(size=(0, 3))
    with pytest.raises(UsageError):
        ImageOptions(layout="nhwc")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        ImageOptions(resample="cubic")  # type: ignore[arg-type]


def test_damaged_or_mis_sized_stored_images_name_the_dataset(tmp_path: Path) -> None:
    ds = rdstd.open(write(tmp_path / "ds", [4]))
    feature = ds.manifest.features[JPG]
    assert isinstance(feature, ImageFeature)
    for options in (ImageOptions(), ImageOptions(size=(8, 8))):
        out = np.zeros((1, *options.shape(feature)), np.uint8)
        with pytest.raises(CorruptDatasetError, match="x, frame 0 of the batch: stored image is corrupt"):
            loader_images.decode_stored(
                out, np.array([0]), [b"\xff\xd8garbage"], feature, options, threads=1, where="x"
            )
    small = encode(np.zeros((24, 32, 3), np.uint8), ImageCodec.JPEG)  # the manifest says 48×64
    for layout in ("hwc", "chw"):
        options = ImageOptions(layout=layout)  # type: ignore[arg-type]
        out = np.zeros((1, *options.shape(feature)), options.dtype(feature))
        with pytest.raises(CorruptDatasetError, match=r"decodes to \(24, 32, 3\), the manifest says \(48, 64, 3\)"):
            loader_images.decode_stored(out, np.array([0]), [small], feature, options, threads=1, where="x")


def test_decoding_pools_are_kept_per_thread_count() -> None:
    pools = loader_images._Pool()
    two, four = pools.get(2), pools.get(4)
    assert pools.get(2) is two and pools.get(4) is four and two is not four
