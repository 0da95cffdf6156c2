"""Features of the canonical schema: vectors with per-dimension meaning, and cameras."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rdstd.paths import is_safe_component
from rdstd.schema.vocabulary import (
    ROTATION_SIZE,
    ActionMode,
    ActionSpace,
    ActionTiming,
    CameraMount,
    ColorOrder,
    DeltaFrame,
    DeltaReference,
    GripperKind,
    GripperOpen,
    ImageCodec,
    Role,
    RotationComposition,
    RotationRepr,
    Unit,
    is_frame_name,
)

#: Numeric dtypes a vector feature may have (numpy names).
VectorDType = Literal[
    "float16", "float32", "float64", "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64", "bool",
]  # fmt: skip


class StrictModel(BaseModel):
    """Base of every schema model: unknown fields are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_safe_name(value: str, what: str) -> str:
    """``value`` when it can be one path component (:func:`rdstd.paths.is_safe_component`); else a ValueError."""
    if not is_safe_component(value):
        raise ValueError(f"{what} {value!r} is not a safe name (letters, digits, '_', '.', '-'; no '/', no '..')")
    return value


def check_safe_names(names: dict[str, Any], what: str) -> None:
    """Every key of ``names`` passes :func:`check_safe_name`."""
    for name in names:
        check_safe_name(name, what)


def check_spec_name(value: str) -> str:
    """A spec or dataset name: safe components joined by '/' (``rlds/fractal``); else a ValueError."""
    for part in value.split("/"):
        check_safe_name(part, f"name {value!r}: part")
    return value


class Dimension(StrictModel):
    """The meaning of one element of a vector feature."""

    name: str
    role: Role = Role.UNKNOWN
    unit: Unit = Unit.UNKNOWN
    frame: str = "unknown"
    scale_si: float | None = Field(
        default=None,
        description=(
            "for unit 'normalized': the physical value that 1.0 stands for, in scale_unit, where the source "
            "states it (TACO: 1.0 = 0.02 m); None when not stated"
        ),
    )
    scale_unit: Unit | None = Field(default=None, description="the SI unit of scale_si (m, rad, m/s, rad/s …)")

    @model_validator(mode="after")
    def _scale_has_unit(self) -> Dimension:
        if (self.scale_si is None) != (self.scale_unit is None):
            raise ValueError(f"dimension {self.name}: give scale_si and scale_unit together")
        return self

    @field_validator("frame")
    @classmethod
    def _frame_is_known(cls, value: str) -> str:
        if not is_frame_name(value):
            raise ValueError(f"frame {value!r} is not one of base, world, tool, none, unknown, camera:<name>")
        return value


class RotationGroup(StrictModel):
    """A run of dimensions that together encode one rotation."""

    start: int = Field(ge=0, description="index of the first dimension of the group")
    representation: RotationRepr
    euler_axes: str | None = Field(default=None, description="for euler: axis order such as 'xyz'")
    euler_extrinsic: bool | None = Field(default=None, description="for euler: extrinsic (True) or intrinsic")

    @property
    def size(self) -> int:
        """How many dimensions the group occupies."""
        return ROTATION_SIZE.get(self.representation, 0)

    @model_validator(mode="after")
    def _euler_needs_axes(self) -> RotationGroup:
        if self.representation == RotationRepr.EULER and self.euler_axes is None:
            raise ValueError("an euler rotation group needs euler_axes (e.g. 'xyz')")
        return self


class ActionSemantics(StrictModel):
    """What an action vector means: mode, space, timing and, for deltas, what and how it is relative to."""

    mode: ActionMode = ActionMode.UNKNOWN
    space: ActionSpace = ActionSpace.UNKNOWN
    reference: DeltaReference = DeltaReference.UNKNOWN
    timing: ActionTiming = Field(
        default=ActionTiming.UNKNOWN,
        description=(
            "how action[t] relates to the states: next_state_target (the target reached at t+1), lead_frames "
            "(the target of state[t+k], k = timing_frames), chunk (action[t] holds the next timing_frames "
            "actions), same_step (applied at t, e.g. a leader arm read at t), unknown"
        ),
    )
    timing_frames: int | None = Field(
        default=None, ge=1, description="k for timing lead_frames, the horizon H for chunk; None otherwise"
    )
    rotation_frame: DeltaFrame = Field(
        default=DeltaFrame.UNKNOWN, description="for delta actions: the frame the rotation delta is applied in"
    )
    rotation_composition: RotationComposition = Field(
        default=RotationComposition.UNKNOWN,
        description=(
            "for delta actions: euler_difference (each Euler angle added to the current one) or "
            "rotation_composition (the delta rotation composed with the current rotation)"
        ),
    )

    @model_validator(mode="after")
    def _timing_frames(self) -> ActionSemantics:
        needs = self.timing in {ActionTiming.LEAD_FRAMES, ActionTiming.CHUNK}
        if needs and self.timing_frames is None:
            raise ValueError(f"action timing {self.timing} needs timing_frames (k or the horizon H)")
        if not needs and self.timing_frames is not None:
            raise ValueError(f"timing_frames is only for lead_frames or chunk, not {self.timing}")
        return self


class GripperConvention(StrictModel):
    """Kind, range and polarity of one gripper dimension.

    An ``absolute`` gripper is a position: canonical data rescales it to [0 closed, 1 open]. A ``relative``
    gripper is a command (+1 / 0 / -1): it is never rescaled; ``open`` says which end opens (``low``: -1 opens,
    +1 closes, the canonical relative polarity as in RT-1/Octo). ``to_absolute`` (spec option) turns a relative
    command into an absolute 0 closed / 1 open state the way Octo's ``rel2abs_gripper_actions`` does.
    """

    dim: int = Field(ge=0)
    kind: GripperKind = Field(
        default=GripperKind.UNKNOWN,
        description="absolute (a position), relative (a command +1/0/-1), or unknown",
    )
    range: tuple[float, float] | None = Field(
        default=None, description="source values of the two ends (absolute grippers: needed to rescale)"
    )
    open: GripperOpen = Field(
        default=GripperOpen.UNKNOWN,
        description="which end of the range opens (relative: low = -1 opens and +1 closes); unknown when not known",
    )
    to_absolute: bool = Field(
        default=False,
        description="spec option for relative grippers: convert to an absolute 0 closed / 1 open state (Octo)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> GripperConvention:
        if self.to_absolute and self.kind != GripperKind.RELATIVE:
            raise ValueError(f"gripper dim {self.dim}: to_absolute is only for kind relative")
        if self.to_absolute and self.open == GripperOpen.UNKNOWN:
            raise ValueError(f"gripper dim {self.dim}: to_absolute needs the polarity (open: low or high)")
        return self


class SourceConvention(StrictModel):
    """How a feature looked in the source before canonicalization (provenance, so every change is reversible)."""

    key: str
    dtype: str | None = None
    units: list[Unit] = Field(default_factory=list)
    rotations: list[RotationGroup] = Field(default_factory=list)
    grippers: list[GripperConvention] = Field(default_factory=list)
    transforms: list[str] = Field(default_factory=list, description="human-readable list of what was applied")


class VectorFeature(StrictModel):
    """A fixed-length numeric vector per frame (state, action, reward, flags …)."""

    kind: Literal["vector"] = "vector"
    dtype: VectorDType = "float32"
    shape: tuple[int, ...]
    dims: list[Dimension]
    rotations: list[RotationGroup] = Field(default_factory=list)
    grippers: list[GripperConvention] = Field(default_factory=list)
    action: ActionSemantics | None = None
    description: str = ""
    source: SourceConvention | None = None

    @property
    def size(self) -> int:
        """Number of scalar elements per frame."""
        return math.prod(self.shape)

    @model_validator(mode="after")
    def _dims_match_shape(self) -> VectorFeature:
        if len(self.dims) != self.size:
            raise ValueError(f"shape {list(self.shape)} has {self.size} elements but {len(self.dims)} dims are named")
        for group in self.rotations:
            if group.start + group.size > self.size:
                raise ValueError(f"rotation group at {group.start} ({group.representation}) runs past the vector")
        for grip in self.grippers:
            if grip.dim >= self.size:
                raise ValueError(f"gripper dim {grip.dim} is outside the vector of {self.size}")
        return self


class CameraIntrinsics(StrictModel):
    """Pinhole intrinsics in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str = "none"
    distortion: list[float] = Field(default_factory=list)


class Extrinsics(StrictModel):
    """A rigid transform: translation in metres, quaternion xyzw, from ``child`` into ``parent``."""

    parent: str
    translation_m: tuple[float, float, float]
    rotation_xyzw: tuple[float, float, float, float]


class ImageFeature(StrictModel):
    """One camera stream: encoded images per frame (or a video file per episode).

    Depth cameras say what a pixel value means: ``value * depth_scale`` is a distance in ``depth_unit``.
    """

    kind: Literal["image"] = "image"
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    channels: int = Field(default=3, gt=0)
    dtype: Literal["uint8", "uint16"] = "uint8"
    codec: ImageCodec = ImageCodec.JPEG
    color: ColorOrder = ColorOrder.RGB
    frame: str = "unknown"
    mount: CameraMount = Field(default=CameraMount.UNKNOWN, description="where the camera is mounted")
    depth_unit: Unit | None = Field(default=None, description="depth cameras: the unit of value × depth_scale")
    depth_scale: float | None = Field(
        default=None, gt=0, description="depth cameras: value × depth_scale = depth in depth_unit (e.g. 0.001, m)"
    )
    intrinsics: CameraIntrinsics | None = None
    extrinsics: Extrinsics | None = None
    description: str = ""
    source: SourceConvention | None = None


class CameraCalibration(StrictModel):
    """One camera's calibration for one episode (when it changes between episodes)."""

    intrinsics: CameraIntrinsics | None = None
    extrinsics: Extrinsics | None = None


Feature = Annotated[VectorFeature | ImageFeature, Field(discriminator="kind")]
