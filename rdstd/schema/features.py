"""Features of the canonical schema: vectors with per-dimension meaning, and cameras."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rdstd.schema.vocabulary import (
    ROTATION_SIZE,
    ActionMode,
    ActionSpace,
    ColorOrder,
    DeltaReference,
    GripperOpen,
    ImageCodec,
    Role,
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


class Dimension(StrictModel):
    """The meaning of one element of a vector feature."""

    name: str
    role: Role = Role.UNKNOWN
    unit: Unit = Unit.UNKNOWN
    frame: str = "unknown"

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
    """What an action vector means: mode, space and, for deltas, what it is relative to."""

    mode: ActionMode = ActionMode.UNKNOWN
    space: ActionSpace = ActionSpace.UNKNOWN
    reference: DeltaReference = DeltaReference.UNKNOWN


class GripperConvention(StrictModel):
    """Range and polarity of one gripper dimension."""

    dim: int = Field(ge=0)
    range: tuple[float, float] = (0.0, 1.0)
    open: GripperOpen = GripperOpen.UNKNOWN


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
    """One camera stream: encoded images per frame (or a video file per episode)."""

    kind: Literal["image"] = "image"
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    channels: int = Field(default=3, gt=0)
    dtype: Literal["uint8", "uint16"] = "uint8"
    codec: ImageCodec = ImageCodec.JPEG
    color: ColorOrder = ColorOrder.RGB
    frame: str = "unknown"
    intrinsics: CameraIntrinsics | None = None
    extrinsics: Extrinsics | None = None
    description: str = ""
    source: SourceConvention | None = None


Feature = Annotated[VectorFeature | ImageFeature, Field(discriminator="kind")]
