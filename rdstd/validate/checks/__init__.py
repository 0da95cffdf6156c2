"""The built-in checks, one module per subject; :data:`BUILTINS` lists them for the registry."""

from __future__ import annotations

from rdstd.validate.check import Check
from rdstd.validate.checks.actions import ActionSemanticsFit, DeltaIntegration, PrenormalizedActions
from rdstd.validate.checks.cameras import CameraContent, CameraLayout
from rdstd.validate.checks.gripper import GripperKindFit, GripperPolarity
from rdstd.validate.checks.metadata import (
    DuplicateEpisodes,
    EmbodimentMetadata,
    NoCameras,
    SourceEpisodes,
    SourceNotes,
    TaskBalance,
    TaskText,
    UnknownSemantics,
)
from rdstd.validate.checks.quality import ActionJumps, DeadActions, GripperChatter, IdleSegments
from rdstd.validate.checks.rotations import (
    EulerConvention,
    QuaternionOrder,
    QuaternionOrderByActions,
    RotationValidity,
)
from rdstd.validate.checks.timing import ClockProvenance, TimestampRate, TimestampsMonotonic
from rdstd.validate.checks.units import AngleUnits, AngleWrap, LengthScale
from rdstd.validate.checks.values import ConstantDimension, EpisodeStructure, JointLimits, NonFinite, Outliers

#: Every built-in check class, in id order.
BUILTINS: list[type[Check]] = [
    NonFinite,
    EpisodeStructure,
    JointLimits,
    ConstantDimension,
    Outliers,
    TimestampsMonotonic,
    TimestampRate,
    ClockProvenance,
    AngleUnits,
    LengthScale,
    AngleWrap,
    RotationValidity,
    QuaternionOrder,
    QuaternionOrderByActions,
    EulerConvention,
    ActionSemanticsFit,
    DeltaIntegration,
    PrenormalizedActions,
    CameraLayout,
    CameraContent,
    GripperKindFit,
    GripperPolarity,
    TaskText,
    TaskBalance,
    DuplicateEpisodes,
    UnknownSemantics,
    EmbodimentMetadata,
    NoCameras,
    SourceNotes,
    SourceEpisodes,
    IdleSegments,
    DeadActions,
    GripperChatter,
    ActionJumps,
]
