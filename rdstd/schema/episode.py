"""A canonical episode in memory: frames on one clock plus episode metadata.

Format backends produce these (through ``rdstd.convert``); the store writes and reads them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import numpy.typing as npt
from pydantic import Field, field_validator, model_validator

from rdstd.schema.features import CameraCalibration, StrictModel, check_safe_names
from rdstd.schema.vocabulary import ImageCodec, LanguageKind

if TYPE_CHECKING:
    import pyarrow as pa


class LanguageSegment(StrictModel):
    """A language annotation over frames ``[start_frame, end_frame)`` of an episode."""

    start_frame: int = Field(ge=0)
    end_frame: int = Field(ge=0, description="exclusive")
    text: str
    kind: LanguageKind = Field(
        default=LanguageKind.UNKNOWN,
        description="persistent (holds over the segment, e.g. a subtask) or event (happens in it), or unknown",
    )
    source_key: str = Field(default="", description="the source key the text came from")

    @model_validator(mode="after")
    def _ordered(self) -> LanguageSegment:
        if self.end_frame < self.start_frame:
            raise ValueError(f"language segment ends ({self.end_frame}) before it starts ({self.start_frame})")
        return self


class EpisodeMeta(StrictModel):
    """Episode-level facts: stable id, task text, split, outcome, embodiment, where it came from."""

    episode_id: str = Field(description="stable id derived from the source (file + key), not from position")
    task: str = ""
    instructions: list[str] = Field(
        default_factory=list, description="other phrasings of the task (e.g. DROID language_instruction_2, _3)"
    )
    language: list[LanguageSegment] = Field(
        default_factory=list, description="time-segmented language annotations (subtasks, events, per-step text)"
    )
    split: str = Field(default="unknown", description="the source's split; unknown when the source does not say")
    success: bool | None = None
    cameras: dict[str, CameraCalibration] = Field(
        default_factory=dict, description="per-episode camera calibration, by camera feature name"
    )
    embodiment: str = ""
    source_path: str = ""
    source_key: str = ""
    source_checksum: str = ""
    source_meta: dict[str, Any] = Field(default_factory=dict, description="what the source had that is not mapped")

    @field_validator("cameras")
    @classmethod
    def _camera_names(cls, value: dict[str, CameraCalibration]) -> dict[str, CameraCalibration]:
        check_safe_names(value, "camera name")
        return value


class BinaryFrames(Sequence[bytes]):
    """Encoded frames held as one Arrow binary array (one data buffer plus offsets): no Python object per frame.

    A backend that reads many encoded frames in one block (HDF5's padded JPEG rows) hands them over this way; the
    store's writer puts :attr:`array` into the shard as it is (each frame's size from the offsets). To everything
    else it is a sequence of ``bytes``: indexing gives one frame's bytes, slicing gives another ``BinaryFrames``
    sharing the buffer. Equal to a list holding the same bytes.
    """

    def __init__(self, array: pa.BinaryArray | pa.LargeBinaryArray) -> None:
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> BinaryFrames: ...

    def __getitem__(self, index: int | slice) -> bytes | BinaryFrames:
        n = len(self.array)
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step == 1:
                return BinaryFrames(self.array.slice(start, max(0, stop - start)))
            return BinaryFrames(self.array.take(list(range(start, stop, step))))
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError(index)
        value: bytes = self.array[i].as_py()
        return value

    def __iter__(self) -> Iterator[bytes]:
        for value in self.array:
            yield value.as_py()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BinaryFrames):
            return bool(self.array.equals(other.array))
        return (
            isinstance(other, Sequence)
            and len(other) == len(self)
            and all(a == b for a, b in zip(self, other, strict=True))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BinaryFrames({len(self)} frames, {self.array.nbytes} bytes)"


@dataclass(frozen=True)
class EncodedFrames:
    """Images that are already encoded (JPEG or PNG bytes), one per frame, kept byte for byte.

    ``frames`` is a list of ``bytes``, a :class:`BinaryFrames` (one Arrow buffer), or a backend's sequence that
    reads the frames when sliced.
    """

    codec: ImageCodec
    frames: Sequence[bytes]

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class VideoFrames:
    """Frames that live in a video file: the segment ``[from_s, to_s)`` of ``path`` (kept as video).

    ``frame_times_s`` (optional) gives each frame's presentation time in the file, in seconds; without it the
    ``count`` frames are spread evenly over the segment.
    """

    path: str
    from_s: float
    to_s: float
    count: int
    frame_times_s: tuple[float, ...] | None = None

    def __len__(self) -> int:
        return self.count


#: One camera's frames in an episode: decoded pixels (T, H, W, C), encoded bytes, or a video segment.
ImageFrames = npt.NDArray[np.generic] | EncodedFrames | VideoFrames


@dataclass
class Episode:
    """One episode: ``timestamps`` (float64 seconds from 0, strictly increasing), vectors (T, *shape) and images."""

    meta: EpisodeMeta
    timestamps: npt.NDArray[np.float64]
    vectors: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    images: dict[str, ImageFrames] = field(default_factory=dict)

    @property
    def length(self) -> int:
        """Number of frames."""
        return int(self.timestamps.shape[0])

    def problems(self, *, starts_episode: bool = True) -> list[str]:
        """Structural problems (lengths, clock) that make the episode unwritable; empty when it is sound.

        ``starts_episode=False`` checks a later chunk of an episode, whose timestamps continue from the earlier
        chunks' instead of starting at 0.0.
        """
        found: list[str] = []
        n = self.length
        if self.timestamps.ndim != 1:
            found.append("timestamps must be one-dimensional")
        elif n and starts_episode and self.timestamps[0] != 0.0:
            found.append(f"timestamps must start at 0.0, not {self.timestamps[0]!r}")
        if n > 1 and not bool(np.all(np.diff(self.timestamps) > 0)):
            found.append("timestamps are not strictly increasing")
        for key, values in self.vectors.items():
            if values.shape[:1] != (n,):
                found.append(f"{key} has {values.shape[0] if values.ndim else 0} rows, the episode has {n} frames")
        for key, frames in self.images.items():
            if len(frames) != n:
                found.append(f"{key} has {len(frames)} images, the episode has {n} frames")
        return found
