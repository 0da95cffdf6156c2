"""Converter specs: load them (shipped name or YAML path), pick one for a source, or draft one from what it holds."""

from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rdstd.errors import MappingError, UsageError
from rdstd.formats.base import SourceInfo, SourceKey
from rdstd.schema.spec import CameraSpec, ConverterSpec, VectorSpec
from rdstd.schema.validation import first_problem
from rdstd.schema.vocabulary import ColorOrder, Role, Unit

_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def specs_root() -> Path:
    """The folder of shipped specs: ``rdstd/_converters`` in a wheel, ``converters/`` in a checkout."""
    installed = _PACKAGE_DIR / "_converters"
    return installed if installed.is_dir() else _PACKAGE_DIR.parent / "converters"


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec, where it came from, and the SHA-256 of its text (recorded in provenance)."""

    spec: ConverterSpec
    origin: str
    sha256: str


def shipped_specs() -> dict[str, Path]:
    """Every shipped spec by name (``<format>/<stem>``, e.g. ``zarr/pusht``)."""
    root = specs_root()
    return {p.relative_to(root).with_suffix("").as_posix(): p for p in sorted(root.glob("*/*.yaml"))}


def parse_spec(text: str, origin: str) -> ConverterSpec:
    """Validate YAML text as a converter spec; errors name ``origin`` and the failing field."""
    try:
        data: Any = yaml.load(text, Loader=_YAML_LOADER)  # a safe loader; the C one when available
    except yaml.YAMLError as exc:
        raise MappingError(
            f"{origin}: not valid YAML ({exc})", hint="fix the spec file", situation="spec-not-yaml"
        ) from exc
    if not isinstance(data, dict):
        raise MappingError(
            f"{origin}: a converter spec must be a YAML mapping",
            hint="see schemas/converter-spec.schema.json",
            situation="spec-not-a-mapping",
        )
    try:
        return ConverterSpec.model_validate(data)
    except ValidationError as exc:
        where, problem = first_problem(exc)
        raise MappingError(
            f"{origin}: invalid converter spec at {where}: {problem} ({exc.error_count()} problem(s))",
            hint="see schemas/converter-spec.schema.json, or draft one with: rdstd spec SRC",
            situation="spec-invalid",
        ) from exc


def load_spec(name_or_path: str | Path) -> LoadedSpec:
    """Load a shipped spec by name, or a spec YAML file by path."""
    path = Path(name_or_path)
    if not path.is_file():
        shipped = shipped_specs()
        if str(name_or_path) not in shipped:
            raise UsageError(
                f"no converter spec file or shipped spec called {str(name_or_path)!r}",
                hint=f"shipped specs: {', '.join(shipped) or 'none'}; or draft one with: rdstd spec SRC > my.yaml",
                situation="spec-not-found",
            )
        path = shipped[str(name_or_path)]
    text = path.read_text(encoding="utf-8")
    return LoadedSpec(parse_spec(text, str(path)), str(path), hashlib.sha256(text.encode()).hexdigest())


def stated_names(info: SourceInfo) -> list[str]:
    """The names a source states about itself (``SourceInfo.name``, an RLDS builder name, a LeRobot robot_type).

    Never its path: a folder can be called anything.
    """
    found = [info.name, info.extra.get("name"), info.extra.get("robot_type")]
    return list(dict.fromkeys(n for n in found if isinstance(n, str) and n))


def match_score(spec: ConverterSpec, info: SourceInfo) -> tuple[int, int] | None:
    """How well ``spec``'s match rule fits ``info`` (keys required, names matched); None when it does not."""
    rule = spec.match
    if spec.format != info.format or not (rule.keys or rule.names):
        return None
    if not set(rule.keys) <= {k.key for k in info.keys}:
        return None
    if rule.names:
        names = [n.lower() for n in stated_names(info)]
        if not any(fnmatch.fnmatchcase(n, glob.lower()) for n in names for glob in rule.names):
            return None
    return len(rule.keys), 1 if rule.names else 0


def match_spec(info: SourceInfo) -> LoadedSpec | None:
    """The shipped spec whose match rule fits this source best (most keys, then a stated name), if any.

    Raises :class:`MappingError` when several fit equally well: which one applies is then for the user to say.
    """
    scored: list[tuple[tuple[int, int], LoadedSpec]] = []
    prefix = f"{info.format}/"  # a shipped spec sits in its format's folder (a test holds them to it): parse only those
    for path in (path for name, path in shipped_specs().items() if name.startswith(prefix)):
        loaded = load_spec(path)
        score = match_score(loaded.spec, info)
        if score is not None:
            scored.append((score, loaded))
    if not scored:
        return None
    best = max(score for score, _ in scored)
    tied = [loaded for score, loaded in scored if score == best]
    if len(tied) > 1:
        names = ", ".join(t.spec.name for t in tied)
        why = "; ".join(str(w) for w in info.extra.get("warnings") or [])  # the source may say why it cannot tell
        raise MappingError(
            f"{info.path}: the source fits several shipped specs equally well ({names})" + (f": {why}" if why else ""),
            hint=f"choose one with --spec (e.g. --spec {tied[0].spec.name}); rdstd info {info.path} shows the evidence",
            situation="spec-ambiguous",
        )
    return tied[0]


def without_absent(loaded: LoadedSpec, info: SourceInfo) -> tuple[LoadedSpec, list[str]]:
    """``loaded`` without its ``optional: true`` features and cameras whose source keys ``info`` lacks, and a
    warning naming each one left out. A required entry whose key is missing stays (the mapper's error names it),
    and so does everything when no entry would be left."""
    have = {k.key for k in info.keys}
    spec = loaded.spec
    features = {n: v for n, v in spec.features.items() if not v.optional or set(v.source_keys) <= have}
    cameras = {n: c for n, c in spec.cameras.items() if not c.optional or c.key in have}
    absent = [f"{n} ({', '.join(v.source_keys)})" for n, v in spec.features.items() if n not in features]
    absent += [f"{n} ({c.key})" for n, c in spec.cameras.items() if n not in cameras]
    if not absent or not (features or cameras):
        return loaded, []  # nothing left to map: the mapper's error names the first missing key
    fitted = spec.model_copy(update={"features": features, "cameras": cameras})
    warning = f"spec {spec.name}: optional entries the source does not have, left out: {', '.join(absent)}"
    return LoadedSpec(fitted, loaded.origin, loaded.sha256), [warning]


_UNSAFE = re.compile(r"[^A-Za-z0-9_./\-]")
_ROLE_GUESS = {"action": Role.UNKNOWN, "reward": Role.REWARD, "is_first": Role.FLAG, "is_last": Role.FLAG}


#: Group names that mean "observation" in the sources rdstd reads, and group names that only say "images".
_OBSERVATION_GROUPS = frozenset({"observation", "observations", "obs"})
_IMAGE_GROUPS = frozenset({"images", "image", "cameras", "rgb"})


def canonical_name(key: str, kind: str) -> str:
    """A canonical feature name guessed from a source key (``data/state`` -> ``observation.state``).

    The name is always a safe file-name component (other characters become ``_``).
    """
    cleaned = _UNSAFE.sub("_", key)
    parts = [p for p in cleaned.replace("/", ".").split(".") if p and p not in {"data", "steps"}]
    if parts and parts[0] in _OBSERVATION_GROUPS:  # observations/…, obs/… (HDF5 flavors) read as observation.…
        parts[0] = "observation"
    leaf = ".".join(parts) or "key"
    if kind == "image":
        stem = [p for p in parts if p not in _OBSERVATION_GROUPS and p not in _IMAGE_GROUPS]
        return f"observation.images.{'.'.join(stem) or 'image'}"
    if leaf.startswith(("observation.", "action", "next.", "reward", "discount", "is_")):
        return leaf
    if leaf in {"state", "qpos", "joint_positions", "eef_pose", "proprio"}:
        return f"observation.{leaf}" if leaf != "state" else "observation.state"
    return f"observation.{leaf}"


def draft_spec(info: SourceInfo, *, name: str = "draft") -> ConverterSpec:
    """A spec covering every key the source holds, with ``unknown`` wherever the source does not say.

    The draft is for the user to edit: names come from the source when it has them, units, roles and frames
    are ``unknown``, the rate is the source's when it states one (``rate_hz: unknown`` in the YAML otherwise).
    """
    features: dict[str, VectorSpec] = {}
    cameras: dict[str, CameraSpec] = {}
    timestamps_key = None
    texts: list[str] = []
    for key in info.keys:
        if key.kind == "timestamp":
            timestamps_key = key.key
        elif key.kind == "text":
            texts.append(key.key)
        elif key.kind == "image":
            cameras[canonical_name(key.key, "image")] = drafted_camera(key, key.note)
        elif key.kind == "vector":
            features[canonical_name(key.key, "vector")] = _draft_vector(key)
    if not features and not cameras:
        raise MappingError(
            f"{info.path}: the source holds no per-step values to draft a converter spec from "
            f"({info.episodes} episode(s))",
            hint="check that this is the dataset you meant (rdstd info shows what it holds)",
            situation="source-has-no-values",
        )
    spec: dict[str, Any] = {
        "name": name,
        "format": info.format,
        "description": f"Drafted by rdstd from {info.path}; fill in units, frames, roles and semantics.",
        "rate_hz": info.rate_hz,
        "features": features,
        "cameras": cameras,
    }
    if timestamps_key:
        spec["timestamps"] = {"key": timestamps_key, "unit": Unit.S}
    if info.extra.get("spec_source"):  # backend options the source proposes (a ROS bag's alignment plan)
        spec["source"] = info.extra["spec_source"]
    task_keys = [k for k in texts if any(w in k.rsplit("/", 1)[-1].lower() for w in _TASK_WORDS)]
    if task_keys:  # the task first; other instruction keys are alternative phrasings (DROID's _2, _3)
        spec["task_keys"] = task_keys
    return ConverterSpec.model_validate(spec)


#: Words that mark a per-step text key as the task's instruction when drafting a spec.
_TASK_WORDS = ("instruction", "task", "language", "prompt")


def drafted_camera(key: SourceKey, description: str) -> CameraSpec:
    """A camera spec guessed from what the source says of an image key: 16-bit images are depth (unit unknown),
    one 8-bit channel is gray, anything else RGB. For drafts and for image keys a spec does not map."""
    channels = key.shape[2] if len(key.shape) == 3 else 1
    if key.dtype == "uint16":
        color = ColorOrder.DEPTH
        description = (description + " " if description else "") + "16-bit: taken as depth, unit unknown"
    else:
        color = ColorOrder.GRAY if channels == 1 else ColorOrder.RGB
    return CameraSpec(key=key.key, color=color, description=description)


def _draft_vector(key: SourceKey) -> VectorSpec:
    size = 1
    for d in key.shape:
        size *= d
    names = key.names if key.names and len(key.names) == size else None
    stem = key.key.rsplit("/", 1)[-1]
    return VectorSpec(key=key.key, names=names, role=_ROLE_GUESS.get(stem, Role.UNKNOWN), description=key.note)


def spec_as_data(spec: ConverterSpec) -> dict[str, Any]:
    """A spec as JSON-ready data for the user to edit: defaults left out, the unknowns said out loud.

    ``rate_hz: unknown`` when the rate is not known, and every feature's role, unit and frame, even when unknown.
    """
    data = spec.model_dump(mode="json", exclude_defaults=True)
    if spec.rate_hz is None:  # right after the names, so the user sees what to fill in
        data = {
            **{k: v for k, v in data.items() if k in {"name", "format", "description"}},
            "rate_hz": "unknown",
            **{k: v for k, v in data.items() if k not in {"name", "format", "description"}},
        }
    data.setdefault("features", {})
    for name, feature in spec.features.items():
        for field in ("role", "unit", "frame"):
            data["features"][name].setdefault(field, str(getattr(feature, field)))
    return data


def spec_to_yaml(spec: ConverterSpec) -> str:
    """A spec as YAML text (:func:`spec_as_data`) with a header saying how to use it."""
    data = spec_as_data(spec)
    header = (
        "# rdstd converter spec. Edit the units, roles, frames and semantics marked unknown (rate_hz: unknown needs\n"
        "# a number unless the source has timestamps; or pass --rate HZ), then:\n"
        "#   rdstd convert SRC OUT --spec THIS_FILE.yaml\n"
        "# Schema: schemas/converter-spec.schema.json\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
