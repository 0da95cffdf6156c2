"""The manifest (``rdstd.json``): what a canonical dataset holds and where it came from."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from rdstd.schema.clock import Clock
from rdstd.schema.embodiment import Embodiment
from rdstd.schema.features import Feature, ImageFeature, StrictModel, VectorFeature, check_safe_names, check_spec_name

#: The version of the canonical format this code writes and reads.
#: 1.1 adds gripper kinds, action timing and rotation-delta semantics, scales of normalized values, the clock,
#: camera mounts and depth units, episode instructions, language segments and camera calibration; every new
#: field is optional, so 1.0 manifests read unchanged.
SCHEMA_VERSION = "1.1"
#: Versions this code can read.
READABLE_SCHEMA_VERSIONS = frozenset({"1.0", "1.1"})


class Provenance(StrictModel):
    """Where a dataset came from and how it was made."""

    source_format: str
    source_version: str = "unknown"
    source_path: str = ""
    converter_spec: str | None = None
    converter_spec_sha256: str | None = None
    rdstd_version: str
    license: str = "unknown"
    citation: str = ""
    created_utc: str = ""


class Counts(StrictModel):
    """Totals of the dataset."""

    episodes: int = Field(ge=0)
    frames: int = Field(ge=0)
    shards: int = Field(ge=0)


class StorageLayout(StrictModel):
    """How frames are laid out on disk (the reader needs nothing else)."""

    row_group_frames: int = Field(gt=0)
    shard_prefix: str = "data/shard-"


class Manifest(StrictModel):
    """The contents of ``rdstd.json``."""

    schema_version: str = SCHEMA_VERSION
    name: str = ""
    description: str = ""
    rate_hz: float | None = Field(default=None, gt=0, description="nominal frame rate; None when it varies")
    clock: Clock = Field(default_factory=Clock, description="where the timestamps came from")
    features: dict[str, Feature] = Field(description="by name; names are safe file-name components")
    embodiments: list[Embodiment] = Field(default_factory=list)
    provenance: Provenance
    counts: Counts
    storage: StorageLayout
    extra: dict[str, Any] = Field(
        default_factory=dict, description="dataset-level source facts the schema does not map"
    )

    @field_validator("schema_version")
    @classmethod
    def _readable(cls, value: str) -> str:
        if value not in READABLE_SCHEMA_VERSIONS:
            raise ValueError(
                f"schema_version {value!r} is not one this rdstd reads ({sorted(READABLE_SCHEMA_VERSIONS)})"
            )
        return value

    @field_validator("features")
    @classmethod
    def _feature_names(cls, value: dict[str, Feature]) -> dict[str, Feature]:
        check_safe_names(value, "feature name")
        return value

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return check_spec_name(value) if value else value

    @property
    def vectors(self) -> dict[str, VectorFeature]:
        """The vector features, by key."""
        return {k: f for k, f in self.features.items() if isinstance(f, VectorFeature)}

    @property
    def cameras(self) -> dict[str, ImageFeature]:
        """The image features, by key."""
        return {k: f for k, f in self.features.items() if isinstance(f, ImageFeature)}

    def embodiment(self, name: str) -> Embodiment | None:
        """The embodiment called ``name``, if the dataset has it."""
        return next((e for e in self.embodiments if e.name == name), None)
