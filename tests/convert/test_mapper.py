"""The per-episode mapping: lossless by default, chunked conversion, clock, rate, language and grippers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from rdstd.convert.mapper import EpisodeConverter, video_slice
from rdstd.errors import MappingError
from rdstd.formats.base import EpisodeRef, SourceEpisode, SourceInfo, SourceKey
from rdstd.schema import ConverterSpec, EncodedFrames, ImageCodec, VideoFrames
from rdstd.schema.episode import BinaryFrames

T = 10


class RecordingArray:
    """A lazy per-step array (FrameArray) that records every slice asked of it."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values
        self.reads: list[tuple[int, int]] = []

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.values.dtype

    def __getitem__(self, index: slice, /) -> Any:
        start, stop, _ = index.indices(self.values.shape[0])
        self.reads.append((start, stop))
        return self.values[index]


def info(*extra: SourceKey, rate_hz: float | None = 10.0, **more: Any) -> SourceInfo:
    keys = [
        SourceKey("state", "vector", (3,), "float32", names=["a", "b", "c"]),
        SourceKey("act", "vector", (2,), "float32"),
        SourceKey("cam", "image", (4, 4, 3), "uint8", codec=ImageCodec.JPEG),
        *extra,
    ]
    return SourceInfo("test", "1", "/data/src", 1, T, keys, rate_hz=rate_hz, extra=more)


def episode(n: int = T, **kwargs: Any) -> SourceEpisode:
    rng = np.random.default_rng(0)
    vectors = {"state": rng.normal(size=(n, 3)).astype(np.float32), "act": rng.normal(size=(n, 2)).astype(np.float32)}
    vectors.update(kwargs.pop("vectors", {}))
    images: dict[str, Any] = {"cam": EncodedFrames(ImageCodec.JPEG, [bytes([i]) for i in range(n)])}
    images.update(kwargs.pop("images", {}))
    return SourceEpisode(EpisodeRef(0, "ep0", "/data/src/f"), n, vectors, images, **kwargs)


def spec(**fields: Any) -> ConverterSpec:
    data: dict[str, Any] = {"name": "test/spec", "format": "test", "features": {"observation.state": {"key": "state"}}}
    data.update(fields)
    return ConverterSpec.model_validate(data)


# -- lossless by default ----------------------------------------------------------------------------------------


def test_keys_the_spec_does_not_map_are_kept_with_unknown_semantics() -> None:
    text = SourceKey("instruction", "text", (), "str")
    conv = EpisodeConverter(spec(), info(text))
    features = conv.features
    assert set(features) == {"observation.state", "observation.act", "observation.images.cam"}
    act = conv.features["observation.act"]
    assert act.kind == "vector" and act.source is not None and act.source.key == "act"
    assert all(d.unit == "unknown" and d.role == "unknown" for d in act.dims)
    assert conv.dropped == {} and conv.unmapped == []
    assert sorted(conv.kept_unmapped) == ["act", "cam", "instruction"]
    steps = ["pick"] * 4 + ["place"] * 6
    out = conv.convert(episode(texts={"instruction": steps}))
    assert [(s.start_frame, s.end_frame, s.text, s.source_key) for s in out.meta.language] == [
        (0, 4, "pick", "instruction"),
        (4, 10, "place", "instruction"),
    ]
    np.testing.assert_array_equal(out.vectors["observation.act"], episode().vectors["act"])
    assert isinstance(out.images["observation.images.cam"], EncodedFrames)


def test_spec_drop_and_drop_unmapped_leave_keys_out_and_say_why() -> None:
    conv = EpisodeConverter(spec(drop=["act"]), info())
    assert conv.dropped == {"act": "spec drop: the spec leaves it out"}
    assert "observation.images.cam" in conv.features
    every = EpisodeConverter(spec(), info(), drop_unmapped=True)
    assert set(every.dropped) == {"act", "cam"}
    assert all(reason.startswith("--drop-unmapped") for reason in every.dropped.values())
    assert set(every.features) == {"observation.state"}


def test_timestamps_and_frame_numbers_are_used_not_reported_as_left_out() -> None:
    bookkeeping = [
        SourceKey("timestamp", "timestamp", (), "float32"),
        SourceKey("frame_index", "vector", (), "int64"),
        SourceKey("episode_index", "vector", (), "int64"),
    ]
    conv = EpisodeConverter(spec(), info(*bookkeeping), drop_unmapped=True)
    assert set(conv.dropped) == {"act", "cam"}
    assert "observation.frame_index" not in EpisodeConverter(spec(), info(*bookkeeping)).features


def test_keys_that_cannot_be_features_are_reported_never_silently_lost() -> None:
    ragged = SourceKey("points", "vector", (-1, 3), "float32")
    depth = SourceKey("depth", "image", (4, 4, 1), "float32")
    conv = EpisodeConverter(spec(), info(ragged, depth, ragged_keys=["steps/lidar"]))
    assert "ragged" in conv.dropped["points"] and "ragged" in conv.dropped["steps/lidar"]
    assert "value_range" in conv.dropped["depth"]


def test_an_unmapped_name_that_collides_gets_a_free_safe_name() -> None:
    conv = EpisodeConverter(spec(features={"observation.act": {"key": "state"}}), info())
    assert "observation.act_1" in conv.features
    assert conv.features["observation.act_1"].source.key == "act"  # type: ignore[union-attr]


# -- chunks -----------------------------------------------------------------------------------------------------


def test_chunks_concatenate_to_the_whole_episode() -> None:
    conv = EpisodeConverter(spec(), info())
    whole = conv.convert(episode())
    meta, chunks = conv.convert_chunks(episode(), chunk_frames=3)
    parts = list(chunks)
    assert [p.length for p in parts] == [3, 3, 3, 1]
    assert all(p.meta == meta == whole.meta for p in parts)
    np.testing.assert_array_equal(np.concatenate([p.timestamps for p in parts]), whole.timestamps)
    assert parts[0].timestamps[0] == 0.0 and parts[1].timestamps[0] == pytest.approx(0.3)
    for key, values in whole.vectors.items():
        np.testing.assert_array_equal(np.concatenate([p.vectors[key] for p in parts]), values)
    cam = "observation.images.cam"
    got = [b for p in parts for b in p.images[cam].frames]  # type: ignore[union-attr]
    assert got == whole.images[cam].frames  # type: ignore[union-attr]


def test_a_lazy_source_is_read_one_chunk_at_a_time() -> None:
    lazy = RecordingArray(np.arange(T * 3, dtype=np.float32).reshape(T, 3))
    pixels = RecordingArray(np.zeros((T, 4, 4, 3), dtype=np.uint8))
    raw = info()
    raw.keys[2] = SourceKey("cam", "image", (4, 4, 3), "uint8")
    conv = EpisodeConverter(spec(), raw, drop_unmapped=False)
    _, chunks = conv.convert_chunks(episode(vectors={"state": lazy}, images={"cam": pixels}), chunk_frames=4)
    assert lazy.reads == []  # nothing read before the chunks are asked for
    first = next(chunks)
    assert lazy.reads == [(0, 4)] and pixels.reads == [(0, 4)]
    rest = list(chunks)
    assert lazy.reads == [(0, 4), (4, 8), (8, 10)] and pixels.reads == lazy.reads
    np.testing.assert_array_equal(
        np.concatenate([first.vectors["observation.state"], *[c.vectors["observation.state"] for c in rest]]),
        lazy.values,
    )


def test_a_video_segment_is_sliced_with_exact_frame_times() -> None:
    video = VideoFrames("v.mp4", 2.0, 3.0, 10)
    part = video_slice(video, 4, 7)
    assert (part.from_s, part.to_s, part.count) == (2.4, 2.7, 3)
    assert part.frame_times_s == pytest.approx((2.4, 2.5, 2.6))
    last = video_slice(video, 7, 10)
    assert last.to_s == 3.0 and last.count == 3
    assert video_slice(video, 0, 10) is video


def test_relative_grippers_made_absolute_use_the_whole_episode_even_in_chunks() -> None:
    grip = {"key": "act", "names": ["dx", "g"], "grippers": [{"dim": 1, "kind": "relative", "open": "low"}]}
    grip["grippers"][0]["to_absolute"] = True  # type: ignore[index]
    conv = EpisodeConverter(spec(features={"action": grip}), info(), drop_unmapped=True)
    act = np.zeros((T, 2), dtype=np.float32)
    act[6, 1] = 1.0  # close at step 6: open before it
    _, chunks = conv.convert_chunks(episode(vectors={"act": act}), chunk_frames=4)
    got = np.concatenate([c.vectors["action"][:, 1] for c in chunks])
    np.testing.assert_array_equal(got, [1, 1, 1, 1, 1, 1, 0, 0, 0, 0])


# -- clock and rate ---------------------------------------------------------------------------------------------


def test_the_clock_says_synthesized_from_the_rate_or_measured() -> None:
    conv = EpisodeConverter(spec(), info(rate_hz=None), rate_hz=4.0)
    out = conv.convert(episode())
    np.testing.assert_allclose(out.timestamps, np.arange(T) / 4.0)
    assert (conv.clock.kind, conv.clock.rate_hz) == ("synthesized", 4.0)
    stamped = EpisodeConverter(spec(), info(SourceKey("timestamp", "timestamp", (), "float32")))
    stamped.convert(episode(timestamps_s=np.linspace(5.0, 6.0, T)))
    assert (stamped.clock.kind, stamped.clock.source) == ("measured", "source_timestamps")


def test_a_spec_states_what_it_knows_of_the_clock() -> None:
    conv = EpisodeConverter(spec(clock={"kind": "synthesized", "description": "nominal 5 Hz"}), info())
    assert conv.clock.kind == "synthesized" and conv.clock.description == "nominal 5 Hz"


def test_without_timestamps_or_a_rate_the_error_says_exactly_what_to_do() -> None:
    with pytest.raises(MappingError) as err:
        EpisodeConverter(spec(), info(rate_hz=None))
    assert err.value.hint == "set rate_hz: in the spec, or pass --rate HZ"
    assert "rdstd spec" not in err.value.hint  # a drafted spec would fail the same way
    with pytest.raises(MappingError, match="positive"):
        EpisodeConverter(spec(), info(), rate_hz=0.0)


def test_the_rate_override_wins_over_the_spec_and_the_source() -> None:
    conv = EpisodeConverter(spec(rate_hz=10), info(rate_hz=30.0), rate_hz=2.0)
    assert conv.convert(episode()).timestamps[1] == 0.5


# -- episode meta -----------------------------------------------------------------------------------------------


def test_split_is_unknown_unless_the_spec_or_source_says() -> None:
    conv = EpisodeConverter(spec(), info())
    assert conv.convert(episode()).meta.split == "unknown"
    assert conv.convert(episode(meta={"split": "val"})).meta.split == "val"
    assert EpisodeConverter(spec(split="train"), info()).convert(episode(meta={"split": "val"})).meta.split == "train"


def test_several_task_keys_give_the_task_and_its_alternative_phrasings() -> None:
    texts = [SourceKey(f"lang{i}", "text", (), "str") for i in (1, 2, 3)]
    conv = EpisodeConverter(spec(task_keys=["lang1", "lang2", "lang3"]), info(*texts))
    out = conv.convert(episode(texts={"lang1": ["Put it"] * T, "lang2": ["Place it"] * T, "lang3": [""] * T}))
    assert out.meta.task == "Put it" and out.meta.instructions == ["Place it"]
    assert out.meta.language == []  # task keys are used, not repeated as annotations
    single = EpisodeConverter(spec(task_key="lang1"), info(*texts), drop_unmapped=True)
    assert single.convert(episode(texts={"lang1": ["Put it"] * T})).meta.task == "Put it"


def test_a_camera_whose_video_is_kept_counts_as_a_frame_reference_when_sizing_chunks() -> None:
    from rdstd.convert.pipeline import MAX_CHUNK_FRAMES, chunk_frames

    hd = info(SourceKey("video", "image", (480, 640, 3), "uint8", codec=ImageCodec.VIDEO))
    decoded = chunk_frames(hd)
    assert decoded == 64 * 1024 * 1024 // (3 * 4 + 2 * 4 + 4 * 4 * 3 + 480 * 640 * 3) == 72
    assert chunk_frames(hd, kept_video={"video"}) == MAX_CHUNK_FRAMES  # references, never pixels


class _LazyFrames(Sequence[bytes]):
    """Encoded frames a backend reads when sliced (a lazy sequence): the slices asked of it are recorded."""

    def __init__(self, frames: list[bytes]) -> None:
        self._frames = frames
        self.slices: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            self.slices.append((index.start, index.stop))
            return BinaryFrames(pa.array(self._frames[index], pa.binary()))
        return self._frames[index]


def test_a_chunk_of_the_whole_episode_still_slices_lazy_encoded_frames() -> None:
    """A chunk covering the whole episode asks a lazy sequence for its frames (one Arrow buffer for the writer)
    instead of handing the sequence on, to be read frame by frame; a list is handed on as it is."""
    lazy = _LazyFrames([bytes([i, i]) for i in range(T)])
    conv = EpisodeConverter(spec(), info(), drop_unmapped=False)
    (whole,) = conv.convert_chunks(episode(images={"cam": EncodedFrames(ImageCodec.JPEG, lazy)}), chunk_frames=T)[1]
    frames = whole.images["observation.images.cam"]
    assert lazy.slices == [(0, T)]
    assert isinstance(frames, EncodedFrames) and isinstance(frames.frames, BinaryFrames) and frames.frames == lazy
    plain = episode()
    (same,) = conv.convert_chunks(plain, chunk_frames=T)[1]
    assert same.images["observation.images.cam"] is plain.images["cam"]
