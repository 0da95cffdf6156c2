"""Image encoding for the store: rdstd's own PNG writer and the ordered encoder pool (issue #14.7)."""

from __future__ import annotations

import io
import threading
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from rdstd.errors import EpisodeError
from rdstd.media import images
from rdstd.schema import Dimension, EncodedFrames, Episode, EpisodeMeta, ImageFeature, Provenance, VectorFeature
from rdstd.schema.vocabulary import ImageCodec
from rdstd.store import DatasetWriter
from rdstd.store.reader import Dataset


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((48, 64, 3), np.uint8), ((48, 64, 4), np.uint8), ((48, 64, 1), np.uint8), ((48, 64), np.uint8),
     ((30, 20, 2), np.uint8), ((48, 64, 1), np.uint16), ((1, 1, 3), np.uint8), ((7, 1), np.uint16)],
)  # fmt: skip
def test_png_bytes_decode_to_the_very_pixels_in_pillow(shape: tuple[int, ...], dtype: Any) -> None:
    rng = np.random.default_rng(len(shape))
    pixels = rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype, endpoint=True)
    data = images.encode(pixels, ImageCodec.PNG)
    assert images.sniff_codec(data) == ImageCodec.PNG
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        back = np.asarray(image)
    assert np.array_equal(back.astype(dtype).reshape(pixels.shape), pixels)
    assert np.array_equal(images.decode(data).reshape(pixels.shape), pixels)


def test_png_rows_are_up_filtered_and_deflated_fast() -> None:
    pixels = np.tile(np.arange(64, dtype=np.uint8)[None, :, None], (32, 1, 3))  # every row the same
    data = images.encode(pixels, ImageCodec.PNG)
    start = data.index(b"IDAT") + 4
    size = int.from_bytes(data[start - 8 : start - 4], "big")
    raw = np.frombuffer(zlib.decompress(data[start : start + size]), np.uint8).reshape(32, 1 + 64 * 3)
    assert (raw[:, 0] == 2).all()  # filter "up"
    assert not raw[1:, 1:].any()  # identical rows leave nothing but zeros to compress
    assert data[start] == 0x78 and data[start + 1] == 0x01  # zlib level 1


def test_png_refuses_what_it_cannot_hold() -> None:
    with pytest.raises(EpisodeError, match="uint8 or uint16"):
        images.encode(np.zeros((4, 4, 3), np.float32), ImageCodec.PNG)
    with pytest.raises(EpisodeError, match="one channel"):
        images.encode(np.zeros((4, 4, 3), np.uint16), ImageCodec.PNG)
    with pytest.raises(EpisodeError, match="channels"):
        images.encode(np.zeros((4, 4, 5), np.uint8), ImageCodec.PNG)
    with pytest.raises(EpisodeError, match="0×4"):
        images.encode(np.zeros((4, 0, 3), np.uint8), ImageCodec.PNG)


def _frames(n: int, taken: list[int]) -> Iterator[npt.NDArray[np.uint8]]:
    for i in range(n):
        taken.append(i)
        yield np.full((16, 16, 3), i % 256, dtype=np.uint8)


def test_encode_frames_keeps_order_runs_on_the_pool_and_reads_its_input_lazily(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(images, "encode_threads", lambda: 2)
    where: set[str] = set()

    def prepare(p: npt.NDArray[Any]) -> npt.NDArray[Any]:
        where.add(threading.current_thread().name)
        return p

    taken: list[int] = []
    out = images.encode_frames(_frames(1000, taken), ImageCodec.PNG, prepare=prepare)
    first = next(out)
    per_task = images.task_frames(np.zeros((16, 16, 3), np.uint8))
    assert 1 < per_task <= images.MAX_TASK_FRAMES  # small frames go a few to a task
    assert len(taken) <= (2 * 2 + 2) * per_task  # a bounded window in flight, not the whole input
    rest = list(out)
    assert [int(images.decode(b)[0, 0, 0]) for b in [first, *rest]] == [i % 256 for i in range(1000)]
    assert where and all(name.startswith("rdstd-encode") for name in where)


def test_encode_frames_raises_at_the_frame_that_fails_after_the_ones_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(images, "encode_threads", lambda: 2)
    bad = 45  # in the second task of 32 small frames
    frames = [np.zeros((8, 8, 3), np.uint8)] * bad + [np.zeros((8, 8, 3), np.float64)] + [np.zeros((8, 8, 3), np.uint8)]
    got: list[bytes] = []
    with pytest.raises(EpisodeError, match="JPEG needs uint8"):
        for data in images.encode_frames(frames, ImageCodec.JPEG):
            got.append(data)
    assert len(got) == bad


def test_encode_frames_inline_with_one_core_gives_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [np.random.default_rng(i).integers(0, 255, (24, 32, 3), dtype=np.uint8) for i in range(9)]
    monkeypatch.setattr(images, "encode_threads", lambda: 1)
    inline = list(images.encode_frames(frames, ImageCodec.JPEG, jpeg_quality=80))
    monkeypatch.setattr(images, "encode_threads", lambda: 3)
    pooled = list(images.encode_frames(frames, ImageCodec.JPEG, jpeg_quality=80))
    assert inline == pooled == [images.encode(f, ImageCodec.JPEG, jpeg_quality=80) for f in frames]


class _LazyBytes(Sequence[bytes]):
    """Encoded frames a backend reads on demand (not a list), as the ROS and HDF5 backends give them."""

    def __init__(self, frames: list[bytes]) -> None:
        self._frames = frames

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, index: Any) -> Any:
        return self._frames[index]


def test_the_writer_reads_a_backends_lazy_encoded_frames_into_the_column(tmp_path: Path) -> None:
    frames = [images.encode(np.full((8, 8, 3), i, np.uint8), ImageCodec.JPEG) for i in range(5)]
    features: dict[str, VectorFeature | ImageFeature] = {
        "state": VectorFeature(shape=(1,), dims=[Dimension(name="x")]),
        "cam": ImageFeature(height=8, width=8),
    }
    episode = Episode(
        EpisodeMeta(episode_id="e0"),
        np.arange(5) / 10.0,
        {"state": np.zeros((5, 1), np.float32)},
        {"cam": EncodedFrames(ImageCodec.JPEG, _LazyBytes(frames))},  # type: ignore[arg-type]
    )
    with DatasetWriter(tmp_path / "ds", features, Provenance(source_format="t", rdstd_version="t")) as writer:
        writer.add(episode)
    assert Dataset.open(tmp_path / "ds").episode(0).images["cam"].encoded == frames
