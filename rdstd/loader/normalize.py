"""Normalization of vector features from ``stats.json``, driven by the schema.

Modes per feature: ``mean_std`` ((x - mean) / std), ``min_max`` (min..max -> [-1, 1]) and ``quantile``
(q01..q99 -> [-1, 1], not clipped, so the inverse is exact). Dimensions the schema marks as binary (dtype bool,
role ``flag``, unit ``bool``) and relative gripper commands (+1/0/-1, ``kind: relative``) are never normalized:
they pass through unchanged. A dimension whose spread is zero (std 0, min = max) is only centred. Statistics
missing for a dimension that would be normalized are an error when the normalizer is built, not at step 10,000.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rdstd.errors import SchemaError, UsageError
from rdstd.schema.features import VectorFeature
from rdstd.schema.manifest import Manifest
from rdstd.schema.vocabulary import GripperKind, Role, Unit

Mode = Literal["mean_std", "min_max", "quantile"]
MODES: dict[str, tuple[str, str]] = {"mean_std": ("mean", "std"), "min_max": ("min", "max"), "quantile": ("q01", "q99")}


def skipped_dims(feature: VectorFeature) -> npt.NDArray[np.bool_]:
    """Per dimension: True where the schema says the value must never be normalized (binary, flag, relative
    gripper command)."""
    skip = np.zeros(feature.size, dtype=bool)
    if feature.dtype == "bool":
        skip[:] = True
    for i, dim in enumerate(feature.dims):
        if dim.role == Role.FLAG or dim.unit == Unit.BOOL:
            skip[i] = True
    for grip in feature.grippers:
        if grip.kind == GripperKind.RELATIVE:
            skip[grip.dim] = True
    return skip


@dataclass(frozen=True)
class _Affine:
    """x -> (x - center) / scale on the dimensions not skipped."""

    center: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]
    skip: npt.NDArray[np.bool_]
    shape: tuple[int, ...]

    def flat(self, key: str, values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """``values`` (..., *shape) as float64 (..., size)."""
        lead = values.ndim - len(self.shape)
        if lead < 0 or tuple(values.shape[lead:]) != self.shape:
            raise UsageError(
                f"values of {key!r} have shape {values.shape}, not (..., {', '.join(map(str, self.shape))})",
                situation="values-shape-mismatch",
            )
        return np.asarray(values, dtype=np.float64).reshape(*values.shape[:lead], self.center.size)


class Normalizer:
    """Normalizes (and un-normalizes) vector features of one dataset; see the module doc for the rules."""

    def __init__(
        self, manifest: Manifest, stats: Mapping[str, Any], modes: Mapping[str, Mode], *, where: str = ""
    ) -> None:
        self.modes = dict(modes)
        self._affine: dict[str, _Affine] = {}
        for key, mode in modes.items():
            feature = manifest.features.get(key)
            if not isinstance(feature, VectorFeature):
                raise UsageError(
                    f"{where}: cannot normalize {key!r}: not a vector feature of the dataset",
                    hint=f"vector features: {', '.join(k for k, f in manifest.features.items() if f.kind == 'vector')}",
                    situation="feature-unknown",
                )
            if mode not in MODES:
                raise UsageError(
                    f"normalization mode {mode!r} for {key!r} is not one of {', '.join(MODES)}",
                    situation="normalization-mode-unknown",
                )
            self._affine[key] = _affine(key, feature, stats.get(key), mode, where)

    def skipped(self, key: str) -> npt.NDArray[np.bool_]:
        """The dimensions of ``key`` left as they are."""
        return self._affine[key].skip.copy()

    def __contains__(self, key: object) -> bool:
        return key in self._affine

    def normalize(self, key: str, values: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """``values`` (..., *shape of the feature) normalized, as float32."""
        a = self._affine[key]
        flat = a.flat(key, values)
        out = np.where(a.skip, flat, (flat - a.center) / a.scale)
        return out.reshape(values.shape).astype(np.float32)

    def unnormalize(self, key: str, values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """The inverse of :meth:`normalize` (float64)."""
        a = self._affine[key]
        flat = a.flat(key, values)
        out = np.where(a.skip, flat, flat * a.scale + a.center)
        return out.reshape(values.shape)


def _affine(key: str, feature: VectorFeature, stats: Any, mode: str, where: str) -> _Affine:
    skip = skipped_dims(feature)
    lo_name, hi_name = MODES[mode]
    if not isinstance(stats, Mapping) or lo_name not in stats or hi_name not in stats:
        raise SchemaError(
            f"{where}: stats.json has no {lo_name}/{hi_name} for {key!r} (needed for {mode} normalization)",
            hint="rebuild the dataset with rdstd convert (it writes stats.json), or normalize another way",
            situation="stats-missing",
        )
    lo = np.array([np.nan if v is None else v for v in stats[lo_name]], dtype=np.float64)
    hi = np.array([np.nan if v is None else v for v in stats[hi_name]], dtype=np.float64)
    if lo.size != feature.size or hi.size != feature.size:
        raise SchemaError(
            f"{where}: stats.json has {lo.size} values for {key!r} of {feature.size} dimensions",
            situation="stats-size-mismatch",
        )
    missing = ~skip & ~(np.isfinite(lo) & np.isfinite(hi))
    if missing.any():
        names = ", ".join(feature.dims[i].name for i in np.flatnonzero(missing))
        raise SchemaError(
            f"{where}: stats.json has no {lo_name}/{hi_name} for {key!r} dimension(s) {names} (no finite value seen)",
            hint="normalize this feature another way, or leave it out of normalization",
            situation="stats-missing",
        )
    if mode == "mean_std":
        center, scale = lo, hi
    else:
        center, scale = (lo + hi) / 2, (hi - lo) / 2
    scale = np.where(~np.isfinite(scale) | (scale <= 0), 1.0, scale)
    center = np.where(np.isfinite(center), center, 0.0)
    return _Affine(center, scale, skip, tuple(feature.shape))
