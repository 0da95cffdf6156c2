"""Canonicalization: from a source's arrays to canonical features (DESIGN §3 conventions).

SI units, quaternions scalar-last (xyzw), absolute grippers normalized to [0, 1] with 1 = open, relative gripper
commands kept as +1/0/-1 with +1 = close, images RGB uint8 HWC. Every transform that moves values moves their
labels too (dimension names, units, frames, gripper dims, rotation group starts).
Each plan records the source convention and the transforms it applies in the feature's ``source`` field, so
every change is visible in the manifest and can be undone. Plans are built once per dataset and applied to
every episode.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rdstd.errors import EpisodeError, MappingError
from rdstd.formats.base import SourceKey
from rdstd.media import images
from rdstd.schema.episode import EncodedFrames, ImageFrames, VideoFrames
from rdstd.schema.features import (
    Dimension,
    GripperConvention,
    ImageFeature,
    RotationGroup,
    SourceConvention,
    VectorFeature,
)
from rdstd.schema.spec import CameraSpec, VectorSpec
from rdstd.schema.vocabulary import (
    UNIT_TO_SI,
    ColorOrder,
    GripperKind,
    GripperOpen,
    ImageCodec,
    Role,
    RotationRepr,
    Unit,
)

_FLOATS = {"float16", "float32", "float64"}


@dataclass
class VectorPlan:
    """How one canonical vector feature is computed from one source key."""

    name: str
    key: str
    feature: VectorFeature
    index: npt.NDArray[np.int64] | None = None
    scale: npt.NDArray[np.float64] | None = None
    offset: npt.NDArray[np.float64] | None = None
    permutation: npt.NDArray[np.int64] | None = None
    #: Output dims holding a relative gripper command to turn into an absolute state over the whole episode.
    relative_to_absolute: tuple[int, ...] = ()

    def finish_episode(self, values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """The whole-episode step (relative -> absolute grippers) on this feature's canonical values (T, size)."""
        if not self.relative_to_absolute:
            return values
        out = values.reshape(values.shape[0], -1).copy()
        for dim in self.relative_to_absolute:
            out[:, dim] = relative_to_absolute_gripper(out[:, dim])
        return out.reshape(values.shape)

    def apply(self, values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Canonical values (T, *shape) from the source values (T, ...)."""
        n = values.shape[0]
        flat = values.reshape(n, -1)
        if self.index is not None:
            if self.index.max(initial=-1) >= flat.shape[1]:
                raise EpisodeError(
                    f"{self.key}: has {flat.shape[1]} elements per frame, the spec indexes more",
                    situation="episode-width-mismatch",
                )
            flat = flat[:, self.index]
        elif flat.shape[1] != self.feature.size:
            raise EpisodeError(
                f"{self.key}: has {flat.shape[1]} elements per frame, the dataset has {self.feature.size}",
                situation="episode-width-mismatch",
            )
        if self.scale is not None or self.offset is not None:
            flat = flat.astype(np.float64)
            if self.scale is not None:
                flat = flat * self.scale
            if self.offset is not None:
                flat = flat + self.offset
        if self.permutation is not None:
            flat = flat[:, self.permutation]
        return np.ascontiguousarray(flat, dtype=self.feature.dtype).reshape(n, *self.feature.shape)


def plan_vector(name: str, spec: VectorSpec, source: SourceKey, *, keep_source: bool = False) -> VectorPlan:
    """Plan the canonical feature ``name`` from ``spec`` and what the source says of its key."""
    source_size = math.prod(source.shape) if source.shape else 1
    index = np.asarray(spec.index, dtype=np.int64) if spec.index is not None else None
    if index is not None and (index.min(initial=0) < 0 or index.max(initial=-1) >= source_size):
        raise MappingError(
            f"feature {name}: index {spec.index} is outside {source.key} ({source_size} elements)",
            situation="spec-index-out-of-range",
        )
    size = len(index) if index is not None else source_size
    source_names = source.names
    if source_names is not None and index is not None and len(source_names) == source_size:
        source_names = [source_names[i] for i in index]
    dims = spec.dimensions(size, source_names)
    if len(dims) != size:
        raise MappingError(
            f"feature {name}: the spec names {len(dims)} dimensions but {source.key} has {size}",
            hint="give one name per element (or use index: to pick elements)",
            situation="spec-dims-mismatch",
        )
    shape = (size,) if index is not None or spec.dims is not None or spec.names is not None else source.shape or (1,)
    transforms: list[str] = []
    scale = np.ones(size)
    offset = np.zeros(size)
    out_dims = list(dims)
    rotations = list(spec.rotations)
    grippers = list(spec.grippers)
    permutation = None
    to_absolute: list[int] = []
    if not keep_source:
        out_dims, transforms = _si_units(dims, scale, skip=_gripper_dims_rewritten(spec.grippers))
        grippers, to_absolute, grip_notes = _canonical_grippers(spec.grippers, scale, offset, out_dims)
        transforms += grip_notes
        rotations, permutation, rot_notes = _canonical_rotations(spec.rotations, size)
        transforms += rot_notes
        if permutation is not None:  # the labels move with the values
            position = np.argsort(permutation)  # position[old] = new
            out_dims = [out_dims[int(old)] for old in permutation]
            grippers = [g.model_copy(update={"dim": int(position[g.dim])}) for g in grippers]
            to_absolute = [int(position[d]) for d in to_absolute]
    grippers = _every_gripper_said(grippers, out_dims)
    numeric = bool(np.any(scale != 1.0) or np.any(offset != 0.0) or to_absolute)
    dtype = spec.dtype or _output_dtype(source.dtype, numeric)
    feature = VectorFeature(
        dtype=dtype,
        shape=shape,
        dims=out_dims,
        rotations=rotations,
        grippers=grippers,
        action=spec.action,
        description=spec.description,
        source=SourceConvention(
            key=source.key,
            dtype=source.dtype,
            units=[d.unit for d in dims],
            rotations=list(spec.rotations),
            grippers=list(spec.grippers),
            transforms=transforms,
        ),
    )
    return VectorPlan(
        name,
        source.key,
        feature,
        index=index,
        scale=scale if np.any(scale != 1.0) else None,
        offset=offset if np.any(offset != 0.0) else None,
        permutation=permutation,
        relative_to_absolute=tuple(to_absolute),
    )


def _output_dtype(source_dtype: str, numeric: bool) -> str:
    if not numeric:
        return (
            source_dtype if source_dtype in _FLOATS or source_dtype.startswith(("int", "uint", "bool")) else "float64"
        )
    return source_dtype if source_dtype in {"float32", "float64"} else "float64"


def _gripper_dims_rewritten(grippers: list[GripperConvention]) -> set[int]:
    """Dims whose values the gripper step sets on its own terms (relative commands, rescaled absolute grippers)."""
    return {
        g.dim
        for g in grippers
        if g.kind == GripperKind.RELATIVE
        or (g.kind == GripperKind.ABSOLUTE and g.open != GripperOpen.UNKNOWN and g.range is not None)
    }


def _si_units(
    dims: list[Dimension], scale: npt.NDArray[np.float64], *, skip: set[int]
) -> tuple[list[Dimension], list[str]]:
    out = []
    notes = []
    for i, dim in enumerate(dims):
        target = UNIT_TO_SI.get(dim.unit)
        if target is None or i in skip:
            out.append(dim)
            continue
        unit, factor = target
        scale[i] *= factor
        out.append(dim.model_copy(update={"unit": unit}))
        notes.append(f"dim {i} ({dim.name}): {dim.unit} -> {unit} (x{factor:.12g})")
    return out, notes


def _canonical_rotations(
    groups: list[RotationGroup], size: int
) -> tuple[list[RotationGroup], npt.NDArray[np.int64] | None, list[str]]:
    perm = np.arange(size)
    out = []
    notes = []
    for group in groups:
        if group.representation == RotationRepr.QUAT_WXYZ:
            s = group.start
            perm[s : s + 4] = [s + 1, s + 2, s + 3, s]  # output j takes source perm[j]; the group stays in place
            out.append(RotationGroup(start=s, representation=RotationRepr.QUAT_XYZW))
            notes.append(f"dims {s}..{s + 3}: quaternion wxyz -> xyzw (values and their labels)")
        else:
            out.append(group)
    changed = not np.array_equal(perm, np.arange(size))
    return out, (perm if changed else None), notes


def _canonical_grippers(
    grippers: list[GripperConvention],
    scale: npt.NDArray[np.float64],
    offset: npt.NDArray[np.float64],
    dims: list[Dimension],
) -> tuple[list[GripperConvention], list[int], list[str]]:
    """Canonical gripper conventions (in source positions), the dims to make absolute, and the notes."""
    out = []
    to_absolute = []
    notes = []
    for grip in grippers:
        if grip.kind == GripperKind.RELATIVE:
            out_grip, note = _relative_gripper(grip, scale, offset, dims)
            if grip.to_absolute:
                to_absolute.append(grip.dim)
            out.append(out_grip)
            notes.append(note)
            continue
        if grip.kind == GripperKind.UNKNOWN or grip.open == GripperOpen.UNKNOWN or grip.range is None:
            out.append(grip)
            notes.append(f"dim {grip.dim}: gripper kind, polarity or range unknown, kept as the source has it")
            continue
        low, high = grip.range
        if high == low:
            raise MappingError(f"gripper dim {grip.dim}: range {grip.range} is empty", situation="gripper-range-empty")
        opened, closed = (high, low) if grip.open == GripperOpen.HIGH else (low, high)
        # x' = (x - closed) / (opened - closed); the range is in the source's units, so this replaces any unit factor.
        span = opened - closed
        scale[grip.dim] = 1.0 / span
        offset[grip.dim] = -closed / span
        dims[grip.dim] = dims[grip.dim].model_copy(
            update={"unit": Unit.NORMALIZED, "role": Role.GRIPPER, "scale_si": None, "scale_unit": None}
        )
        out.append(GripperConvention(dim=grip.dim, kind=GripperKind.ABSOLUTE, range=(0.0, 1.0), open=GripperOpen.HIGH))
        notes.append(f"dim {grip.dim}: absolute gripper [{closed} closed, {opened} open] -> [0 closed, 1 open]")
    return out, to_absolute, notes


def _relative_gripper(
    grip: GripperConvention,
    scale: npt.NDArray[np.float64],
    offset: npt.NDArray[np.float64],
    dims: list[Dimension],
) -> tuple[GripperConvention, str]:
    """A relative command keeps +1/0/-1; only its sign flips so that +1 = close (the canonical polarity).

    It is a unitless command: no unit factor applies to it, whatever unit the spec gave the dimension.
    """
    scale[grip.dim] = 1.0
    offset[grip.dim] = 0.0
    if grip.open == GripperOpen.HIGH:
        scale[grip.dim] = -1.0
        note = f"dim {grip.dim}: relative gripper command sign flipped to +1 = close, -1 = open (not rescaled)"
    elif grip.open == GripperOpen.LOW:
        note = f"dim {grip.dim}: relative gripper command kept (+1 = close, -1 = open, 0 = no change)"
    else:
        note = f"dim {grip.dim}: relative gripper command of unknown polarity, kept as the source has it"
    dims[grip.dim] = dims[grip.dim].model_copy(
        update={"role": Role.GRIPPER, "unit": Unit.NONE, "scale_si": None, "scale_unit": None}
    )
    if grip.to_absolute:
        dims[grip.dim] = dims[grip.dim].model_copy(update={"unit": Unit.NORMALIZED})
        note += "; then made absolute over the whole episode (Octo rel2abs_gripper_actions): 0 closed, 1 open"
        return GripperConvention(dim=grip.dim, kind=GripperKind.ABSOLUTE, range=(0.0, 1.0), open=GripperOpen.HIGH), note
    polarity = grip.open if grip.open == GripperOpen.UNKNOWN else GripperOpen.LOW
    return GripperConvention(dim=grip.dim, kind=GripperKind.RELATIVE, range=(-1.0, 1.0), open=polarity), note


def _every_gripper_said(grippers: list[GripperConvention], dims: list[Dimension]) -> list[GripperConvention]:
    """Every gripper-role dimension gets a convention: an explicit unknown one where the spec states none."""
    covered = {g.dim for g in grippers}
    missing = [GripperConvention(dim=i) for i, d in enumerate(dims) if d.role == Role.GRIPPER and i not in covered]
    return sorted([*grippers, *missing], key=lambda g: g.dim)


def relative_to_absolute_gripper(commands: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Relative gripper commands (+1 close, -1 open, 0 no change) as absolute states (0 closed, 1 open).

    Octo's ``rel2abs_gripper_actions`` (octo-models/octo: octo/data/utils/data_utils.py): commands are thresholded
    at ±0.1; the state before the first command is the opposite of that command (open when there is none); each
    non-zero command sets the state from its own step on, and zero carries the last state forward.
    """
    values = np.asarray(commands, dtype=np.float64).reshape(-1)
    state = np.where(values > 0.1, -1, np.where(values < -0.1, 1, 0))  # -1 closed, 1 open, 0 hold
    nonzero = np.flatnonzero(state)
    current = -int(state[nonzero[0]]) if nonzero.size else 1
    out = np.empty(values.shape[0], dtype=np.float64)
    for i, command in enumerate(state):
        current = int(command) if command else current
        out[i] = current
    return out / 2.0 + 0.5


@dataclass
class CameraPlan:
    """How one canonical camera is taken from one source key."""

    name: str
    spec: CameraSpec
    feature: ImageFeature

    def apply(self, frames: ImageFrames) -> ImageFrames:
        """Canonical frames: encoded bytes kept as they are when the codec matches, raw pixels encoded."""
        target = self.feature.codec
        if isinstance(frames, VideoFrames):
            if target == ImageCodec.VIDEO:
                return frames
            from rdstd.media import video

            return EncodedFrames(target, self._encode(video.decode_frames(frames)))
        if isinstance(frames, EncodedFrames):
            if target in {frames.codec, ImageCodec.VIDEO}:
                return frames  # for video the store's writer encodes the episode's frames into one mp4
            return EncodedFrames(target, self._encode(images.decode(b) for b in frames.frames))
        if target == ImageCodec.VIDEO:
            return np.stack([canonical_pixels(p, self.spec) for p in frames])
        return EncodedFrames(target, self._encode(iter(frames)))

    def _encode(self, pixels: Iterable[npt.NDArray[Any]]) -> list[bytes]:
        """Canonical pixels of each frame, encoded (on the encoder pool: PNG and JPEG release the GIL)."""
        return list(
            images.encode_frames(
                pixels,
                self.feature.codec,
                jpeg_quality=self.spec.jpeg_quality,
                prepare=lambda p: canonical_pixels(p, self.spec),
            )
        )


def canonical_pixels(pixels: npt.NDArray[Any], spec: CameraSpec) -> npt.NDArray[Any]:
    """One raw image to canonical pixels: HWC, RGB, uint8 (uint16 kept for depth)."""
    array = np.asarray(pixels)
    if spec.layout == "chw":
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.dtype != np.uint16 or spec.color != ColorOrder.DEPTH:
        low, high = spec.value_range
        if array.dtype != np.uint8 or (low, high) != (0.0, 255.0):
            # one float32 working buffer per frame: a converted copy, or (float32 input) the first step's result;
            # every later step in place, and the clip writes the uint8 frame (same numbers, fewer passes)
            fresh = array.dtype != np.float32
            scaled = array.astype(np.float32) if fresh else array
            if low:
                scaled = np.subtract(scaled, np.float32(low), out=scaled if fresh else None)
                fresh = True
            factor = np.float32(255.0 / (high - low))
            if factor != 1:
                scaled = np.multiply(scaled, factor, out=scaled if fresh else None)
                fresh = True
            scaled = np.rint(scaled, out=scaled if fresh else None)
            array = np.clip(scaled, 0, 255, out=np.empty(scaled.shape, np.uint8), casting="unsafe")
    if spec.color == ColorOrder.BGR:
        array = array[:, :, ::-1]
    return np.ascontiguousarray(array)


def plan_camera(
    name: str, spec: CameraSpec, source: SourceKey, *, store_as: ImageCodec | None, source_codec: ImageCodec | None
) -> CameraPlan:
    """Plan the canonical camera ``name``.

    ``store_as`` overrides the spec's choice; ``source_codec`` is how the source stores the frames (None: raw pixels).
    """
    if len(source.shape) not in (2, 3):
        raise MappingError(
            f"camera {name}: {source.key} has shape {list(source.shape)}, not an image", situation="camera-not-an-image"
        )
    shape = source.shape if spec.layout == "hwc" else (*source.shape[1:], source.shape[0])
    height, width = shape[0], shape[1]
    channels = shape[2] if len(shape) == 3 else 1
    codec = store_as or spec.store_as or source_codec or ImageCodec.JPEG
    depth = spec.color == ColorOrder.DEPTH
    passthrough_png = source_codec == ImageCodec.PNG and codec == ImageCodec.PNG
    # 16-bit bytes that pass through untouched stay 16-bit, whatever the spec calls them: never label them uint8
    dtype = "uint16" if source.dtype == "uint16" and (depth or passthrough_png) else "uint8"
    if dtype == "uint16" and codec == ImageCodec.JPEG:
        codec = ImageCodec.PNG
    notes = []
    if source_codec is None:
        notes.append(
            f"raw {source.dtype} pixels in [{spec.value_range[0]:g}, {spec.value_range[1]:g}] -> {dtype} {codec}"
        )
    if spec.layout == "chw":
        notes.append("CHW -> HWC")
    color = spec.color
    if channels == 1 and color in {ColorOrder.RGB, ColorOrder.BGR}:
        color = ColorOrder.GRAY  # one channel is not RGB; say what it is
    if spec.color == ColorOrder.BGR and channels != 1:
        if source_codec == codec:  # bytes pass through untouched: say BGR, and the reader swaps on decode
            notes.append("BGR bytes kept as the source has them; readers return RGB")
        else:
            notes.append("BGR -> RGB")
            color = ColorOrder.RGB
    feature = ImageFeature(
        height=height,
        width=width,
        channels=channels,
        dtype=dtype,
        codec=codec,
        color=color,
        frame=spec.frame,
        mount=spec.mount,
        depth_unit=spec.depth_unit,
        depth_scale=spec.depth_scale,
        intrinsics=spec.intrinsics,
        extrinsics=spec.extrinsics,
        description=spec.description,
        source=SourceConvention(key=source.key, dtype=source.dtype, transforms=notes),
    )
    return CameraPlan(name, spec, feature)
