"""Which features of several canonical datasets line up, and the conflicts between them, dimension by dimension.

Rules (applied after renames):

- the same name with the same layout (dimension names, shape, dtype) and the same per-dimension meaning (role,
  unit, frame, scale), rotation groups, gripper conventions and action semantics is one feature;
- the same name with a different layout (another robot's joints, another camera size or codec) is a different
  feature that happens to share the name: it is kept separate automatically, as ``<name>.<label>`` for every input
  but the first that has the name (the report says so);
- the same layout with a different meaning is a **conflict**. A unit difference the canonicalizer can convert
  (deg → rad, mm → m …) is fixed with ``--convert LABEL:FEATURE`` (the values are scaled to the first input's
  units while copying); anything else (frames, rotation representations, gripper polarity, an unknown unit) is
  fixed by keeping the variants separate (``--separate FEATURE``) or renaming (``--rename LABEL:OLD=NEW``).

An input that lacks a feature of the merged set has null rows for it (read back as NaN for float vectors).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from rdstd.schema.features import ImageFeature, VectorFeature
from rdstd.schema.manifest import Manifest
from rdstd.schema.vocabulary import UNIT_TO_SI, Unit

Feature = VectorFeature | ImageFeature
_FLOATS = {"float16", "float32", "float64"}


@dataclass(frozen=True)
class Difference:
    """One dimension (or the whole feature, ``dim`` None) where two inputs disagree."""

    field: str
    values: dict[str, str]
    dim: int | None = None
    name: str = ""


@dataclass
class Conflict:
    """Inputs that give one feature name different meanings, and what resolves it."""

    feature: str
    inputs: list[str]
    kind: str  # "layout" (kept separate automatically) or "semantics" (needs --convert / --separate / --rename)
    differences: list[Difference]
    fix: str
    resolution: str = ""

    @property
    def resolved(self) -> bool:
        """Whether the merge can go on (automatically or by an option given)."""
        return bool(self.resolution)

    def describe(self) -> str:
        """One paragraph: the feature, the inputs, each difference, the fix or what was done."""
        lines = [f"{self.feature} ({', '.join(self.inputs)}): {self.kind} differs"]
        for d in self.differences[:12]:
            where = f"dim {d.dim} {d.name}" if d.dim is not None else "feature"
            lines.append(f"  {where}: {d.field} " + ", ".join(f"{k}={v}" for k, v in d.values.items()))
        if len(self.differences) > 12:
            lines.append(f"  … {len(self.differences) - 12} more")
        lines.append(f"  {'done: ' + self.resolution if self.resolution else 'fix: ' + self.fix}")
        return "\n".join(lines)

    def summary(self) -> str:
        """One line: the feature, the first differences and the fix."""
        shown = ", ".join(
            f"{d.field} of {d.name or 'the feature'} ({'/'.join(d.values.values())})" for d in self.differences[:3]
        )
        more = f" and {len(self.differences) - 3} more" if len(self.differences) > 3 else ""
        return f"{self.feature} differs in {shown}{more}: fix with {self.fix}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        out = asdict(self)
        out["resolved"] = self.resolved
        return out


@dataclass
class FeaturePlan:
    """The merged feature set and, per input, which of its columns fill each merged feature and how."""

    features: dict[str, Feature]
    #: Per input: merged feature name -> the input's feature name.
    columns: list[dict[str, str]]
    #: Per input: merged feature name -> per-dimension factor its values are multiplied by (unit conversions).
    factors: list[dict[str, npt.NDArray[np.float64]]]
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def unresolved(self) -> list[Conflict]:
        """Conflicts no option resolves yet."""
        return [c for c in self.conflicts if not c.resolved]


def safe_label(text: str) -> str:
    """``text`` as a label usable in feature names (letters, digits, ``_``, ``-``)."""
    label = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_-")
    return label or "input"


def parse_renames(items: Sequence[str], labels: Sequence[str]) -> list[dict[str, str]]:
    """``[LABEL:]OLD=NEW`` options as one rename map per input (no label: every input)."""
    from rdstd.errors import UsageError

    out: list[dict[str, str]] = [{} for _ in labels]
    for item in items:
        target, sep, new = item.partition("=")
        label, colon, old = target.rpartition(":") if ":" in target else ("", "", target)
        if not sep or not old or not new:
            raise UsageError(
                f"--rename {item!r}: expected [LABEL:]OLD=NEW",
                hint="e.g. --rename g1:action=joint_action",
                situation="rename-option-invalid",
            )
        if colon and label not in labels:
            raise UsageError(
                f"--rename {item!r}: no input is labelled {label!r}",
                hint=f"labels: {', '.join(labels)}",
                situation="label-unknown",
            )
        for i, name in enumerate(labels):
            if not colon or name == label:
                out[i][old] = new
    return out


def renamed(manifest: Manifest, names: Mapping[str, str]) -> dict[str, Feature]:
    """The manifest's features under their new names (``names``: old -> new)."""
    from rdstd.errors import UsageError

    out: dict[str, Feature] = {}
    for key, feature in manifest.features.items():
        new = names.get(key, key)
        if new in out:
            raise UsageError(
                f"renaming gives two features called {new!r}",
                hint="choose distinct new names",
                situation="rename-clash",
            )
        out[new] = feature
    return out


def plan(
    inputs: Sequence[dict[str, Feature]],
    labels: Sequence[str],
    *,
    convert: Sequence[tuple[str, str]] = (),
    separate: Sequence[str] = (),
) -> FeaturePlan:
    """Line up the (renamed) features of the inputs; see the module docs for the rules.

    ``convert``: (label, feature) pairs whose unit differences are converted to the first input's units;
    ``separate``: feature names whose variants are kept apart even where only their meaning differs.
    """
    features: dict[str, Feature] = {}
    columns: list[dict[str, str]] = [{} for _ in inputs]
    factors: list[dict[str, npt.NDArray[np.float64]]] = [{} for _ in inputs]
    conflicts: list[Conflict] = []
    names = list(dict.fromkeys(k for feats in inputs for k in feats))
    for name in names:
        holders = [i for i, feats in enumerate(inputs) if name in feats]
        # variants: groups of inputs whose feature has the same layout
        variants: list[tuple[Feature, list[int]]] = []
        for i in holders:
            feature = inputs[i][name]
            for ref, members in variants:
                if _layout(ref) == _layout(feature):
                    members.append(i)
                    break
            else:
                variants.append((feature, [i]))
        if len(variants) > 1:
            conflicts.append(_layout_conflict(name, variants, labels, inputs))
        for v, (ref, members) in enumerate(variants):
            out_name = name if v == 0 else _free(f"{name}.{labels[members[0]]}", features, names)
            groups = _semantic_groups(ref, members, inputs, name)
            if len(groups) > 1:
                conflict = _semantic_conflict(name, groups, labels, inputs, convert, separate)
                conflicts.append(conflict)
                if conflict.resolution.startswith("kept separate"):
                    for g, group in enumerate(groups):
                        group_name = out_name if g == 0 else _free(f"{name}.{labels[group[0]]}", features, names)
                        features[group_name] = inputs[group[0]][name]
                        for i in group:
                            columns[i][group_name] = name
                    continue
                if conflict.resolution:
                    for group in groups[1:]:
                        for i in group:
                            factors[i][out_name] = _factors(ref, inputs[i][name])
            features[out_name] = _wider(ref, [inputs[i][name] for i in members])
            for i in members:
                columns[i][out_name] = name
    return FeaturePlan(features, columns, factors, conflicts)


def _free(name: str, taken: Mapping[str, Any], reserved: Sequence[str]) -> str:
    candidate, n = name, 2
    while candidate in taken or candidate in reserved:
        candidate, n = f"{name}-{n}", n + 1
    return candidate


def _layout(feature: Feature) -> tuple[Any, ...]:
    if isinstance(feature, ImageFeature):
        return ("image", feature.height, feature.width, feature.channels, feature.dtype, feature.codec, feature.color)
    kind = "float" if feature.dtype in _FLOATS else feature.dtype
    return ("vector", feature.shape, tuple(d.name for d in feature.dims), kind)


def _wider(ref: Feature, all_of: list[Feature]) -> Feature:
    """The first input's feature, with the widest float dtype of the variant (float32 + float64 -> float64)."""
    if not isinstance(ref, VectorFeature) or ref.dtype not in _FLOATS:
        return ref
    widest = max((f.dtype for f in all_of if isinstance(f, VectorFeature)), key=lambda d: np.dtype(d).itemsize)
    return ref if widest == ref.dtype else ref.model_copy(update={"dtype": widest})


def _meaning(feature: Feature) -> dict[str, Any]:
    """What must agree for two same-layout features to be one: per dimension and for the whole feature."""
    if isinstance(feature, ImageFeature):
        return {"depth_unit": feature.depth_unit, "depth_scale": feature.depth_scale}
    dims = {
        f"{field}@{i}": getattr(d, field)
        for i, d in enumerate(feature.dims)
        for field in ("role", "unit", "frame", "scale_si", "scale_unit")
    }
    dims["rotations"] = [r.model_dump(mode="json") for r in feature.rotations]
    dims["grippers"] = [g.model_dump(mode="json") for g in feature.grippers]
    dims["action"] = feature.action.model_dump(mode="json") if feature.action else None
    return dims


def _semantic_groups(
    ref: Feature, members: list[int], inputs: Sequence[dict[str, Feature]], name: str
) -> list[list[int]]:
    groups: list[tuple[dict[str, Any], list[int]]] = []
    for i in members:
        meaning = _meaning(inputs[i][name])
        for seen, group in groups:
            if seen == meaning:
                group.append(i)
                break
        else:
            groups.append((meaning, [i]))
    return [g for _, g in groups]


def _differences(features: list[tuple[str, Feature]]) -> list[Difference]:
    meanings = [(label, _meaning(f)) for label, f in features]
    ref = features[0][1]
    found: list[Difference] = []
    for key in meanings[0][1]:
        values = {label: _text(m.get(key)) for label, m in meanings}
        if len(set(values.values())) < 2:
            continue
        field_name, _, dim = key.partition("@")
        if dim:
            assert isinstance(ref, VectorFeature)
            found.append(Difference(field_name, values, int(dim), ref.dims[int(dim)].name))
        else:
            found.append(Difference(field_name, values))
    return found


def _text(value: Any) -> str:
    if value is None:
        return "none"
    return str(value.value if hasattr(value, "value") else value)


def _layout_conflict(
    name: str, variants: list[tuple[Feature, list[int]]], labels: Sequence[str], inputs: Sequence[dict[str, Feature]]
) -> Conflict:
    values = {labels[m[0]]: _describe_layout(f) for f, m in variants}
    kept = ", ".join(f"{name}.{labels[m[0]]}" for _, m in variants[1:])
    return Conflict(
        feature=name,
        inputs=[labels[i] for _, m in variants for i in m],
        kind="layout",
        differences=[Difference("layout", values)],
        fix=f"different features that share a name: kept separate ({kept}), or --rename LABEL:{name}=NEW",
        resolution=f"kept separate: {labels[variants[0][1][0]]}'s stays {name}, the others are {kept}",
    )


def _describe_layout(feature: Feature) -> str:
    if isinstance(feature, ImageFeature):
        return f"{feature.width}x{feature.height}x{feature.channels} {feature.dtype} {feature.codec.value}"
    names = [d.name for d in feature.dims]
    shown = ",".join(names[:4]) + (",…" if len(names) > 4 else "")
    return f"{feature.dtype}{list(feature.shape)} [{shown}]"


def _semantic_conflict(
    name: str,
    groups: list[list[int]],
    labels: Sequence[str],
    inputs: Sequence[dict[str, Feature]],
    convert: Sequence[tuple[str, str]],
    separate: Sequence[str],
) -> Conflict:
    members = [i for g in groups for i in g]
    firsts = [(labels[g[0]], inputs[g[0]][name]) for g in groups]
    differences = _differences(firsts)
    convertible = all(d.field == "unit" for d in differences) and all(
        _convertible(firsts[0][1], f) for _, f in firsts[1:]
    )
    others = [labels[g[0]] for g in groups[1:]]
    if convertible:
        fix = " ".join(f"--convert {label}:{name}" for label in others) + f" (to {labels[groups[0][0]]}'s units)"
    else:
        fix = f"--separate {name} (keep each meaning as its own feature) or --rename LABEL:{name}=NEW"
    conflict = Conflict(name, [labels[i] for i in members], "semantics", differences, fix)
    if name in separate:
        conflict.resolution = "kept separate: " + ", ".join(f"{name}.{label}" for label in others)
    elif convertible and all((labels[i], name) in convert for g in groups[1:] for i in g):
        conflict.resolution = f"converted {', '.join(others)} to {labels[groups[0][0]]}'s units"
    return conflict


def _si(unit: Unit) -> tuple[Unit, float]:
    return UNIT_TO_SI.get(unit, (unit, 1.0))


def _convertible(ref: Feature, other: Feature) -> bool:
    if not isinstance(ref, VectorFeature) or not isinstance(other, VectorFeature) or other.dtype not in _FLOATS:
        return False
    return all(
        _si(a.unit)[0] == _si(b.unit)[0] and a.unit != Unit.UNKNOWN for a, b in zip(ref.dims, other.dims, strict=True)
    )


def _factors(ref: Feature, other: Feature) -> npt.NDArray[np.float64]:
    """Per-dimension factors taking ``other``'s values to ``ref``'s units."""
    assert isinstance(ref, VectorFeature) and isinstance(other, VectorFeature)
    return np.array(
        [_si(b.unit)[1] / _si(a.unit)[1] for a, b in zip(ref.dims, other.dims, strict=True)], dtype=np.float64
    )
