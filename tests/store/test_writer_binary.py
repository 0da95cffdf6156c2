"""Encoded frames handed to the writer as one Arrow buffer (BinaryFrames) write the same shards as lists of bytes;
a shard closed on the helper thread is finished before close, and its failure is the same OutputError."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import rdstd
from rdstd.errors import OutputError
from rdstd.schema import EncodedFrames, Episode
from rdstd.schema.episode import BinaryFrames
from rdstd.store import DatasetWriter
from rdstd.store import writer as writer_module
from tests.store.helpers import FEATURES, PROVENANCE, make_episode

LENGTHS = [37, 5, 64, 1, 23]
SMALL = {"row_group_frames": 4, "shard_bytes": 60_000}


def as_arrow(episode: Episode, chunk: int) -> list[Episode]:
    """``episode`` in chunks of ``chunk`` frames whose cameras are BinaryFrames (sliced from one array)."""
    arrays = {
        k: pa.array(list(v.frames), type=pa.binary()) for k, v in episode.images.items() if isinstance(v, EncodedFrames)
    }
    out = []
    for start in range(0, episode.length, chunk):
        stop = min(start + chunk, episode.length)
        images = {
            k: EncodedFrames(v.codec, BinaryFrames(arrays[k])[start:stop])
            for k, v in episode.images.items()
            if isinstance(v, EncodedFrames)
        }
        vectors = {k: v[start:stop] for k, v in episode.vectors.items()}
        out.append(Episode(episode.meta, episode.timestamps[start:stop], vectors, images))  # type: ignore[arg-type]
    return out


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("chunk", [1, 7, 100])
def test_array_backed_and_list_backed_frames_write_byte_identical_shards(tmp_path: Path, chunk: int) -> None:
    episodes = [make_episode(i, n) for i, n in enumerate(LENGTHS)]
    with DatasetWriter(tmp_path / "lists", FEATURES, PROVENANCE, **SMALL) as writer:  # type: ignore[arg-type]
        for episode in episodes:
            writer.add(episode)
    with DatasetWriter(tmp_path / "arrays", FEATURES, PROVENANCE, **SMALL) as writer:  # type: ignore[arg-type]
        for episode in episodes:
            writer.begin_episode(episode.meta)
            for part in as_arrow(episode, chunk):
                assert isinstance(part.images["observation.images.cam"], EncodedFrames)
                assert isinstance(part.images["observation.images.cam"].frames, BinaryFrames)
                writer.append(part)
            writer.end_episode()
    lists, arrays = files(tmp_path / "lists"), files(tmp_path / "arrays")
    assert len([name for name in lists if name.startswith("data/")]) > 2  # several shards, closed in the background
    assert arrays == lists
    stored = rdstd.open(tmp_path / "arrays").episode(2).images["observation.images.cam"].encoded
    assert stored == list(episodes[2].images["observation.images.cam"].frames)  # type: ignore[union-attr]


def test_an_aborted_episode_of_array_backed_frames_leaves_no_trace(tmp_path: Path) -> None:
    episodes = [make_episode(i, n) for i, n in enumerate(LENGTHS)]
    with DatasetWriter(tmp_path / "want", FEATURES, PROVENANCE, **SMALL) as writer:  # type: ignore[arg-type]
        for episode in episodes[:2]:
            writer.add(episode)
    with DatasetWriter(tmp_path / "got", FEATURES, PROVENANCE, **SMALL) as writer:  # type: ignore[arg-type]
        writer.add(episodes[0])
        writer.begin_episode(episodes[2].meta)
        for part in as_arrow(episodes[2], 9)[:5]:
            writer.append(part)
        writer.abort_episode()
        writer.add(episodes[1])
    assert files(tmp_path / "got") == files(tmp_path / "want")


def test_binary_frames_behave_as_a_list_of_bytes() -> None:
    values = [b"\xff\xd8a\xff\xd9", b"", b"xyz", b"0123456789"]
    frames = BinaryFrames(pa.array(values, type=pa.binary()))
    assert len(frames) == 4 and frames == values and list(frames) == values
    assert frames[-1] == b"0123456789" and frames[1:3] == values[1:3] and frames[::2] == values[::2]
    assert isinstance(frames[1:3], BinaryFrames) and frames[1:3].array.offset == 1  # a slice shares the buffer
    assert frames != values[:3] and frames != [*values[:3], b"other"]
    with pytest.raises(IndexError):
        frames[4]


def test_a_shard_closed_in_the_background_is_finished_before_close_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    finish = writer_module._finish_shard

    def spy(*args: object) -> None:
        threads.append(threading.current_thread().name)
        finish(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(writer_module, "_finish_shard", spy)
    with DatasetWriter(tmp_path / "ds", FEATURES, PROVENANCE, **SMALL) as writer:  # type: ignore[arg-type]
        for i, n in enumerate(LENGTHS):
            writer.add(make_episode(i, n))
    shards = sorted(p.name for p in (tmp_path / "ds" / "data").iterdir())
    assert len(shards) == len(threads) > 2
    assert threads[-1] == threading.main_thread().name  # the last shard: closed by close() itself
    assert all(name.startswith(writer_module.SHARD_CLOSE_POOL) for name in threads[:-1])
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary file left
    assert rdstd.open(tmp_path / "ds").num_episodes == len(LENGTHS)


@pytest.mark.parametrize("background", [True, False])
def test_a_failure_while_closing_a_shard_is_the_same_output_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, background: bool
) -> None:
    """The first shard's fsync fails (disk full): in the background (a shard filled by an episode) or in close()
    (the only shard); either way one OutputError naming the output, raised from the writer's own calls."""
    commit = writer_module.atomic.commit

    def full(tmp: Path, final: Path) -> None:
        if final.parent.name == "data":
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        commit(tmp, final)

    monkeypatch.setattr(writer_module.atomic, "commit", full)
    out = tmp_path / "ds"
    with (
        pytest.raises(OutputError) as err,
        DatasetWriter(out, FEATURES, PROVENANCE, **SMALL) as writer,  # type: ignore[arg-type]
    ):
        for i, n in enumerate(LENGTHS if background else [3]):
            writer.add(make_episode(i, n))
    assert err.value.situation == "output-unwritable"
    assert err.value.message == f"{out}: cannot write the output: the disk is full (nothing was left behind)"
    assert list(tmp_path.iterdir()) == []


def test_frames_larger_than_a_page_write_the_same_bytes_however_they_are_chunked(tmp_path: Path) -> None:
    """Row groups whose camera column passes Parquet's page size: pieces are joined first (pages are cut where
    pieces meet), so chunks of 1, 3 or all frames handed over as one buffer give the same shard."""
    from rdstd.media.images import encode
    from rdstd.schema import EpisodeMeta, ImageCodec, ImageFeature

    features = {"observation.images.big": ImageFeature(height=512, width=512)}
    rng = np.random.default_rng(7)
    frames = [encode(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8), ImageCodec.JPEG) for _ in range(9)]
    assert sum(map(len, frames[:8])) > 1024 * 1024  # one row group passes Parquet's 1 MiB page
    episode = Episode(
        EpisodeMeta(episode_id="big"),
        np.arange(9, dtype=np.float64) / 10,
        {},
        {"observation.images.big": EncodedFrames(ImageCodec.JPEG, frames)},
    )
    written = []
    for n, chunk in enumerate([9, 1, 3]):
        with DatasetWriter(tmp_path / f"o{n}", features, PROVENANCE, row_group_frames=8) as writer:  # type: ignore[arg-type]
            writer.begin_episode(episode.meta)
            for part in as_arrow(episode, chunk):
                writer.append(part)
            writer.end_episode()
        written.append(files(tmp_path / f"o{n}"))
    assert written[0] == written[1] == written[2]


def test_row_groups_are_written_in_order_on_the_helper_thread_and_a_failure_is_the_same_output_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    write = writer_module._write_group

    def spy(*args: object) -> None:
        threads.append(threading.current_thread().name)
        write(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(writer_module, "_write_group", spy)
    with DatasetWriter(tmp_path / "ok", FEATURES, PROVENANCE, **SMALL) as writer:  # type: ignore[arg-type]
        for i, n in enumerate(LENGTHS):
            writer.add(make_episode(i, n))
    assert len(threads) >= 3 and all(name.startswith(writer_module.SHARD_WRITE_POOL) for name in threads)
    calls = 0

    def full(*args: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(writer_module, "_write_group", full)
    out = tmp_path / "full"
    with (
        pytest.raises(OutputError) as err,
        DatasetWriter(out, FEATURES, PROVENANCE, **SMALL) as writer,  # type: ignore[arg-type]
    ):
        for i, n in enumerate(LENGTHS):
            writer.add(make_episode(i, n))
    assert err.value.message == f"{out}: cannot write the output: the disk is full (nothing was left behind)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok"]
