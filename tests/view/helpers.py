"""A canonical dataset with what the viewer shows: joints with units, a gripper, an end-effector pose, two JPEG
cameras, a task; and readers of the .rrd files it writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from rdstd.media.images import encode
from rdstd.schema import (
    Dimension,
    EncodedFrames,
    Episode,
    EpisodeMeta,
    ImageCodec,
    ImageFeature,
    Provenance,
    VectorFeature,
)
from rdstd.schema.embodiment import Embodiment
from rdstd.schema.features import ActionSemantics, GripperConvention, RotationGroup
from rdstd.schema.vocabulary import ActionMode, GripperKind, GripperOpen, Role, RotationRepr, Unit
from rdstd.store.writer import DatasetWriter

STATE, EEF, ACTION = "observation.state", "observation.eef", "action"
FRONT, WRIST = "observation.images.front", "observation.images.wrist"
RATE = 10.0


def _joints(n: int) -> list[Dimension]:
    return [Dimension(name=f"joint_{i}", role=Role.JOINT_POSITION, unit=Unit.RAD, frame="none") for i in range(n)]


FEATURES: dict[str, VectorFeature | ImageFeature] = {
    STATE: VectorFeature(
        shape=(8,),
        dims=[*_joints(7), Dimension(name="gripper", role=Role.GRIPPER, unit=Unit.NORMALIZED)],
        grippers=[GripperConvention(dim=7, kind=GripperKind.ABSOLUTE, range=(0.0, 1.0), open=GripperOpen.HIGH)],
    ),
    EEF: VectorFeature(
        shape=(7,),
        dims=[Dimension(name=a, role=Role.EEF_POSITION, unit=Unit.M, frame="base") for a in "xyz"]
        + [Dimension(name=f"q{a}", role=Role.EEF_ROTATION, unit=Unit.NONE, frame="base") for a in "xyzw"],
        rotations=[RotationGroup(start=3, representation=RotationRepr.QUAT_XYZW)],
    ),
    ACTION: VectorFeature(
        shape=(8,),
        dims=[*_joints(7), Dimension(name="gripper", role=Role.GRIPPER)],  # unit unknown: said, not hidden
        action=ActionSemantics(mode=ActionMode.ABSOLUTE),
    ),
    FRONT: ImageFeature(height=24, width=32),
    WRIST: ImageFeature(height=24, width=32, codec=ImageCodec.PNG),
}
PROVENANCE = Provenance(source_format="generated", rdstd_version="test", source_path="/lab/raw")


def make_episode(e: int, length: int) -> Episode:
    """Episode ``e``: smooth joints, a gripper that closes halfway and opens at 3/4, a circle of poses."""
    t = np.arange(length) / RATE
    joints = np.stack([np.sin(t + k + e) for k in range(7)], axis=1)
    grip = np.where((np.arange(length) >= length // 2) & (np.arange(length) < 3 * length // 4), 0.0, 1.0)
    state = np.concatenate([joints, grip[:, None]], axis=1).astype(np.float32)
    angle = t
    eef = np.stack(
        [
            0.4 + 0.1 * np.cos(angle),
            0.1 * np.sin(angle),
            0.3 + 0 * t,
            0 * t,
            0 * t,
            np.sin(angle / 2),
            np.cos(angle / 2),
        ],
        axis=1,
    ).astype(np.float32)
    action = np.roll(state, -1, axis=0)
    front = [encode(np.full((24, 32, 3), (e * 40 + f) % 256, np.uint8), ImageCodec.JPEG) for f in range(length)]
    wrist = [encode(np.full((24, 32, 3), (f * 7) % 256, np.uint8), ImageCodec.PNG) for f in range(length)]
    return Episode(
        EpisodeMeta(episode_id=f"ep{e:03d}", task=f"pick up cube {e}", embodiment="arm", source_key=f"k{e}"),
        t,
        {STATE: state, EEF: eef, ACTION: action},
        {FRONT: EncodedFrames(ImageCodec.JPEG, front), WRIST: EncodedFrames(ImageCodec.PNG, wrist)},
    )


def write(path: Path, lengths: list[int], *, urdf: str | None = None) -> Path:
    """A canonical dataset at ``path`` with episodes of ``lengths`` frames."""
    with DatasetWriter(
        path,
        FEATURES,
        PROVENANCE,
        name="lab_x",
        rate_hz=RATE,
        embodiments=[Embodiment(name="arm", urdf=urdf)],
    ) as writer:
        for e, n in enumerate(lengths):
            writer.add(make_episode(e, n))
    return path


def chunks(rrd: Path) -> list[Any]:
    """Every chunk of the recording in ``rrd``."""
    from rerun.chunk import RrdReader

    return list(RrdReader(rrd).store().stream().collect().stream())


def rows(rrd: Path, entity: str, column: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], list[Any]]:
    """(frame, time in ns, values) of ``column`` on ``entity``'s temporal chunks, in frame order."""
    batches = [c.to_record_batch() for c in chunks(rrd) if c.entity_path == entity and not c.is_static]
    batches = [b for b in batches if column in b.schema.names]
    assert batches, f"{entity} has no temporal column {column}"
    table = pa.Table.from_batches(batches).sort_by("frame")
    frame = table.column("frame").to_numpy()
    time = table.column("time").cast(pa.int64()).to_numpy()
    values = table.column(column).to_pylist()
    if not column.startswith("Scalars:"):  # one instance per row: the value, not a list of one
        values = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in values]
    return frame, time, values


def static(rrd: Path, entity: str, column: str) -> Any:
    """The value of a static ``column`` on ``entity``."""
    for c in chunks(rrd):
        if c.entity_path == entity and c.is_static:
            b = c.to_record_batch()
            if column in b.schema.names:
                value = b.column(column).to_pylist()[0]
                # archetype components hold a batch per row (one instance here); properties are kept as logged
                return value[0] if ":" in column and isinstance(value, list) and len(value) == 1 else value
    raise AssertionError(f"{entity} has no static {column}")
