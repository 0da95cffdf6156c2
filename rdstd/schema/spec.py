"""The converter spec: how one source's keys become canonical features, with the meaning the source omits.

Specs are YAML files (``converters/<format>/<name>.yaml``) validated by :class:`ConverterSpec`. A lab adds its
dataset by adding a YAML, not Python. ``rdstd spec SRC`` drafts one from what a source holds.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, WithJsonSchema, field_validator, model_validator

from rdstd.schema.clock import Clock
from rdstd.schema.embodiment import Embodiment
from rdstd.schema.features import (
    ActionSemantics,
    CameraIntrinsics,
    Dimension,
    Extrinsics,
    GripperConvention,
    RotationGroup,
    StrictModel,
    VectorDType,
    check_safe_names,
    check_spec_name,
)
from rdstd.schema.vocabulary import CameraMount, ColorOrder, ImageCodec, Role, Unit

#: ``rate_hz`` in a spec: a positive number, or ``unknown`` (read as None: the rate must come from elsewhere).
SpecRate = Annotated[
    float | None,
    WithJsonSchema(
        {
            "anyOf": [{"exclusiveMinimum": 0, "type": "number"}, {"const": "unknown"}, {"type": "null"}],
            "description": "frames per second; unknown (or absent) when not known: the rate then comes from the "
            "source or from `rdstd convert --rate HZ`",
        }
    ),
]


#: What ``optional: true`` on a feature or camera means.
OPTIONAL_DOC = (
    "the source may lack this key (e.g. a camera some rigs do not have): when it does, the entry is left out and "
    "the conversion says so in its warnings; a required entry whose key is missing is an error"
)


class DimSpec(StrictModel):
    """One source dimension's meaning; fields left out fall back to the feature's defaults."""

    name: str
    role: Role | None = None
    unit: Unit | None = None
    frame: str | None = None
    scale_si: float | None = Field(default=None, description="for normalized values: what 1.0 stands for")
    scale_unit: Unit | None = None


class VectorSpec(StrictModel):
    """A canonical vector feature taken from one source key, or from several concatenated in order.

    Give the meaning either per dimension (``dims``) or as ``names`` plus shared ``role``/``unit``/``frame``.
    ``index`` picks (and orders) elements of the flattened source vector. ``rotations`` and ``grippers`` describe
    the *source* convention; conversion produces the canonical one (quaternion xyzw, gripper 1 = open).
    """

    key: str | list[str] = Field(description="source key, or a list of keys whose per-step values are concatenated")
    index: list[int] | None = None
    names: list[str] | None = None
    dims: list[DimSpec] | None = None
    role: Role = Role.UNKNOWN
    unit: Unit = Unit.UNKNOWN
    frame: str = "unknown"
    dtype: VectorDType | None = Field(default=None, description="cast to this dtype; default keeps the source's")
    rotations: list[RotationGroup] = Field(default_factory=list)
    grippers: list[GripperConvention] = Field(default_factory=list)
    action: ActionSemantics | None = None
    optional: bool = Field(default=False, description=OPTIONAL_DOC)
    description: str = ""

    @model_validator(mode="after")
    def _one_naming(self) -> VectorSpec:
        if self.names is not None and self.dims is not None:
            raise ValueError("give either names or dims, not both")
        return self

    @property
    def source_keys(self) -> list[str]:
        """The source keys, in concatenation order."""
        return [self.key] if isinstance(self.key, str) else list(self.key)

    def dimensions(self, size: int, source_names: list[str] | None = None) -> list[Dimension]:
        """The meaning of a vector of ``size`` elements.

        Names come from the spec, else from the source (``source_names``, e.g. LeRobot's ``names``), else
        default to ``<key>_<i>``.
        """
        if self.dims is not None:
            specs = self.dims
        elif self.names is not None:
            specs = [DimSpec(name=n) for n in self.names]
        elif source_names is not None and len(source_names) == size:
            specs = [DimSpec(name=n) for n in source_names]
        else:
            stem = self.source_keys[0].rsplit("/", 1)[-1].rsplit(".", 1)[-1]
            specs = [DimSpec(name=f"{stem}_{i}") for i in range(size)]
        return [
            Dimension(
                name=d.name,
                role=d.role or self.role,
                unit=d.unit or self.unit,
                frame=d.frame or self.frame,
                scale_si=d.scale_si,
                scale_unit=d.scale_unit,
            )
            for d in specs
        ]


class CameraSpec(StrictModel):
    """A canonical camera taken from one source key."""

    key: str
    color: ColorOrder = ColorOrder.RGB
    layout: str = Field(default="hwc", pattern="^(hwc|chw)$")
    value_range: tuple[float, float] = Field(default=(0.0, 255.0), description="range of raw pixel values")
    store_as: ImageCodec | None = Field(default=None, description="default: keep encoded bytes, JPEG for raw pixels")
    jpeg_quality: int = Field(default=95, ge=1, le=100)
    frame: str = "unknown"
    mount: CameraMount = CameraMount.UNKNOWN
    depth_unit: Unit | None = Field(default=None, description="depth cameras: the unit of value × depth_scale")
    depth_scale: float | None = Field(default=None, gt=0, description="depth cameras: value × depth_scale")
    intrinsics: CameraIntrinsics | None = None
    extrinsics: Extrinsics | None = None
    optional: bool = Field(default=False, description=OPTIONAL_DOC)
    description: str = ""


class MatchRule(StrictModel):
    """When a shipped spec applies to a source on its own: judged on the dataset's own identity, never its path.

    Every key in ``keys`` must be present. ``names`` (globs, case-insensitive) must match a name the source
    states about itself (an RLDS builder name, a LeRobot ``robot_type``): when given, one of them must match.
    """

    keys: list[str] = Field(default_factory=list)
    names: list[str] = Field(
        default_factory=list, description="globs matched against the names the source states (builder, robot_type)"
    )


class TimestampSpec(StrictModel):
    """Where frame times come from when the source has them."""

    key: str
    unit: Unit = Unit.S


class ConverterSpec(StrictModel):
    """Everything ``rdstd convert`` needs to know that the source does not say."""

    name: str = Field(description="<format>/<stem>: safe components joined by '/'")
    format: str
    description: str = ""
    match: MatchRule = Field(default_factory=MatchRule)
    rate_hz: SpecRate = None
    clock: Clock | None = Field(default=None, description="what the spec knows of the source's clock")
    timestamps: TimestampSpec | None = None
    task: str | None = Field(default=None, description="task text for every episode")
    task_key: str | None = Field(default=None, description="source key holding the task text")
    task_keys: list[str] = Field(
        default_factory=list,
        description="source keys holding the task text: the first is the task, the others alternative phrasings",
    )
    drop: list[str] = Field(
        default_factory=list, description="source keys to leave out on purpose (recorded as dropped)"
    )
    split: str | None = None
    license: str = "unknown"
    citation: str = ""
    embodiment: Embodiment | None = None
    features: dict[str, VectorSpec] = Field(default_factory=dict)
    cameras: dict[str, CameraSpec] = Field(default_factory=dict)
    keep_source_conventions: bool = Field(default=False, description="skip canonicalization, record only")
    source: dict[str, Any] | None = Field(
        default=None,
        description="options for the source's backend, validated by it (a ROS bag's alignment plan: master, "
        "streams, task; see docs/formats/<format>.md); absent for backends that take none",
    )

    @field_validator("rate_hz", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        if value == "unknown":
            return None
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
            raise ValueError(f"rate_hz must be a positive number or unknown, not {value!r}")
        return value

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return check_spec_name(value)

    @field_validator("features", "cameras")
    @classmethod
    def _safe_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_safe_names(value, "feature or camera name")
        return value

    @model_validator(mode="after")
    def _has_clock(self) -> ConverterSpec:
        if not self.features and not self.cameras:
            raise ValueError("a spec must map at least one feature or camera")
        if self.task_key and self.task_keys:
            raise ValueError("give either task_key or task_keys, not both")
        return self

    @property
    def all_task_keys(self) -> list[str]:
        """The source keys of the task text: the first is the task, the rest alternative phrasings."""
        return list(self.task_keys) or ([self.task_key] if self.task_key else [])
