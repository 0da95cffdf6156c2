"""LeRobot metadata: ``meta/info.json``, the features it declares, and safe path templates.

Everything here is version-independent (v2.0, v2.1, v3.0); the episode tables live in :mod:`.v2` and :mod:`.v3`.
Unknown keys in info.json are kept (``raw``) and otherwise ignored: LeRobot added keys without a version bump.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rdstd.errors import CorruptSourceError, SourceNotFoundError, UnsupportedVersionError
from rdstd.lfs import raise_if_pointer
from rdstd.paths import inside

INFO = "meta/info.json"
#: Versions this backend reads.
SUPPORTED_VERSIONS = ("v2.0", "v2.1", "v3.0")
#: Per-frame bookkeeping columns every LeRobot dataset has; not data.
INDEX_KEYS = ("frame_index", "episode_index", "index", "task_index")
#: Numeric dtypes a LeRobot feature may have.
NUMERIC_DTYPES = frozenset(
    {"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool"}
)

FeatureKind = Literal["video", "image", "index", "timestamp", "vector", "text"]


@dataclass(frozen=True)
class Feature:
    """One entry of ``info.json``'s ``features``."""

    key: str
    dtype: str
    shape: tuple[int, ...]
    names: list[str] | None = None
    video_info: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> FeatureKind:
        """What the feature is: a camera (video or image column), bookkeeping, the clock, a vector or text."""
        if self.dtype == "video":
            return "video"
        if self.dtype == "image":
            return "image"
        if self.key in INDEX_KEYS:
            return "index"
        if self.key == "timestamp":
            return "timestamp"
        if self.dtype in NUMERIC_DTYPES:
            return "vector"
        return "text"

    @property
    def declared_codec(self) -> str | None:
        """The codec info.json declares for a video feature (``video.codec``), if any."""
        codec = self.video_info.get("video.codec")
        return str(codec) if codec else None


@dataclass(frozen=True)
class LeRobotInfo:
    """The parsed ``meta/info.json`` of one dataset."""

    root: Path
    version: str
    fps: float
    robot_type: str | None
    total_episodes: int
    total_frames: int
    chunks_size: int
    data_path: str
    video_path: str | None
    features: dict[str, Feature]
    raw: dict[str, Any]

    @property
    def major(self) -> int:
        """2 or 3."""
        return int(self.version[1])

    def of_kind(self, *kinds: FeatureKind) -> Iterator[Feature]:
        """The features of the given kinds, in info.json order."""
        return (f for f in self.features.values() if f.kind in kinds)

    def path(self, template: str, what: str, **fields: Any) -> Path:
        """``template`` filled with ``fields``, inside the dataset (a path that leaves it is refused)."""
        try:
            rel = template.format(**fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise CorruptSourceError(
                f"{self.root / INFO}: the {what} template {template!r} cannot be filled ({exc!r})",
                hint="fix the template in meta/info.json",
                situation="path-template-invalid",
            ) from exc
        return inside(self.root, rel, what, hint=_OUTSIDE_HINT)


_OUTSIDE_HINT = "fix meta/info.json (or the episode table); rdstd reads nothing outside the dataset folder"


def flat_names(names: Any, size: int) -> list[str] | None:
    """Per-dimension names from a feature's ``names`` (flat list, ``{"motors": [...]}``, or ``[[...]]``).

    None when there are none or their count does not match ``size``.
    """
    if isinstance(names, dict):
        values = list(names.values())
        names = values[0] if len(values) == 1 else [n for v in values for n in (v if isinstance(v, list) else [v])]
    if isinstance(names, list) and len(names) == 1 and isinstance(names[0], list):
        names = names[0]
    if not isinstance(names, list) or len(names) != size or not all(isinstance(n, str | int) for n in names):
        return None
    return [str(n) for n in names]


def dataset_root(path: Path) -> Path:
    """The dataset folder of a file under ``meta/`` (for the fetch command of a Git LFS pointer)."""
    return path.parent.parent if path.parent.name == "meta" else path.parent


def read_json(path: Path) -> Any:
    """A JSON file, with errors that name it (a Git LFS pointer is named as such)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SourceNotFoundError(
            f"{path}: missing", hint="is this the dataset's root folder?", situation="metadata-file-missing"
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise_if_pointer(path, dataset_root(path))
        raise CorruptSourceError(
            f"{path}: not readable JSON ({exc})", hint="re-download the dataset", situation="metadata-not-json"
        ) from exc


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """A JSON-lines file (blank lines ignored), with errors that name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SourceNotFoundError(
            f"{path}: missing", hint="a LeRobot v2 dataset needs it; re-download", situation="metadata-file-missing"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptSourceError(
            f"{path}: not readable ({exc})", hint="re-download the dataset", situation="metadata-not-json"
        ) from exc
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise_if_pointer(path, dataset_root(path))
            raise CorruptSourceError(
                f"{path}:{number}: not JSON ({exc})", hint="fix or re-download the file", situation="metadata-not-json"
            ) from exc
        if not isinstance(row, dict):
            raise CorruptSourceError(
                f"{path}:{number}: expected a JSON object",
                hint="fix or re-download the file",
                situation="metadata-not-json",
            )
        rows.append(row)
    return rows


def _feature(root: Path, key: str, spec: Any) -> Feature:
    if not isinstance(spec, dict) or "dtype" not in spec:
        raise CorruptSourceError(
            f"{root / INFO}: feature {key!r} has no dtype", hint="fix meta/info.json", situation="info-json-invalid"
        )
    shape = spec.get("shape") or [1]
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError) as exc:
        raise CorruptSourceError(
            f"{root / INFO}: feature {key!r} has shape {shape!r}",
            hint="fix meta/info.json",
            situation="info-json-invalid",
        ) from exc
    size = 1
    for d in dims:
        size *= d
    video_info = spec.get("info") or spec.get("video_info") or {}
    names = None if spec["dtype"] in ("video", "image") else flat_names(spec.get("names"), size)
    return Feature(key, str(spec["dtype"]), dims, names, dict(video_info) if isinstance(video_info, dict) else {})


def read_info(root: Path) -> LeRobotInfo:
    """Parse and check ``meta/info.json``: version, fps, features and templates (dataset errors are raised here)."""
    raw = read_json(root / INFO)
    file = root / INFO
    if not isinstance(raw, dict):
        raise CorruptSourceError(
            f"{file}: expected a JSON object", hint="re-download the dataset", situation="info-json-invalid"
        )
    version = str(raw.get("codebase_version", ""))
    if version not in SUPPORTED_VERSIONS:
        hint = (
            "convert it to v2.0 with LeRobot's own v1.6 converter first"
            if version.startswith("v1")
            else f"rdstd reads {', '.join(SUPPORTED_VERSIONS)}"
        )
        raise UnsupportedVersionError(
            f"{file}: LeRobot codebase_version {version or '(none)'!r} is not supported",
            hint=hint,
            situation="lerobot-version-unsupported",
        )
    try:
        fps = float(raw["fps"])
        data_path = str(raw["data_path"])
        features_raw = raw["features"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptSourceError(
            f"{file}: missing or invalid {exc}", hint="fix meta/info.json", situation="info-json-invalid"
        ) from exc
    if fps <= 0:
        raise CorruptSourceError(f"{file}: fps is {fps}", hint="fix meta/info.json", situation="info-json-invalid")
    video_path = raw.get("video_path")
    for name, template in (("data_path", data_path), ("video_path", video_path)):
        if template is None:
            continue
        if not isinstance(template, str) or Path(template).is_absolute() or ".." in Path(template).parts:
            raise CorruptSourceError(
                f"{file}: {name} {template!r} points outside the dataset folder",
                hint="fix meta/info.json; rdstd reads nothing outside the dataset folder",
                situation="path-outside-dataset",
            )
    if not isinstance(features_raw, dict):
        raise CorruptSourceError(
            f"{file}: features is not an object", hint="fix meta/info.json", situation="info-json-invalid"
        )
    features = {key: _feature(root, key, spec) for key, spec in features_raw.items()}
    if any(f.kind == "video" for f in features.values()) and not video_path:
        raise CorruptSourceError(
            f"{file}: video features but no video_path", hint="fix meta/info.json", situation="info-json-invalid"
        )
    try:
        return LeRobotInfo(
            root=root,
            version=version,
            fps=fps,
            robot_type=raw.get("robot_type"),
            total_episodes=int(raw.get("total_episodes", -1)),
            total_frames=int(raw.get("total_frames", -1)),
            chunks_size=int(raw.get("chunks_size", 1000)) or 1000,
            data_path=data_path,
            video_path=str(video_path) if video_path else None,
            features=features,
            raw=raw,
        )
    except (TypeError, ValueError) as exc:
        raise CorruptSourceError(
            f"{file}: invalid totals ({exc})", hint="fix meta/info.json", situation="info-json-invalid"
        ) from exc


def looks_like_lerobot(path: Path) -> bool:
    """Cheap detection: a folder with ``meta/info.json`` naming a ``codebase_version``. Never raises."""
    try:
        file = path / INFO
        if not file.is_file() or file.stat().st_size > 16 * 1024 * 1024:
            return False
        return '"codebase_version"' in file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
