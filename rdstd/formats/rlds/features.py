"""Walk a tfds ``features.json`` into the list of leaves an RLDS ``tf.train.Example`` holds.

``features.json`` is the JSON form of the tfds ``Feature`` proto tree. Each node names its ``pythonClassName`` and
holds one of ``featuresDict`` (named children), ``sequence`` (``Dataset``/``Sequence``: one more level of steps),
``tensor`` (``Tensor``/``Scalar``), ``image``, ``text`` or ``classLabel``. tfds flattens the tree with ``/`` to name
the Example's features, so a leaf's key is its path joined with ``/``. The path is kept as a tuple: some Open
X-Embodiment feature *names* contain ``/`` (``future/xyz_residual``), so the key must never be split to find the
tree. The walk is ours rather than tfds's ``FeaturesDict``: it is a few dozen lines, needs no pyarrow/etils import
at read time, and is checked against tfds's own interpretation in the tests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from rdstd.errors import CorruptSourceError, UnsupportedVersionError
from rdstd.formats.files import read_bytes

T = TypeVar("T")

LeafKind = Literal["tensor", "image", "text"]
Encoding = Literal["none", "bytes", "zlib"]

#: tfds dtypes this reader decodes (numpy names; ``string`` is a Tensor of bytes).
NUMERIC_DTYPES = frozenset(
    {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
     "float16", "float32", "float64"}
)  # fmt: skip


@dataclass(frozen=True)
class Leaf:
    """One feature of the serialized Example: its path in the tree and how tfds stored it.

    ``shape`` is the shape of one element (one step for a step leaf), ``None`` where features.json says ``-1``.
    ``sequence_rank`` counts the enclosing ``Dataset``/``Sequence`` nodes (1 for an RLDS step leaf; 2 and more are
    stored as ``ragged_flat_values`` + ``ragged_row_lengths_<i>``).
    """

    path: tuple[str, ...]
    kind: LeafKind
    dtype: str
    shape: tuple[int | None, ...]
    python_class: str
    encoding: Encoding = "none"
    image_format: str | None = None
    sequence_rank: int = 0
    description: str = ""
    #: The Example feature name: the path joined with ``/`` (a display/lookup key, never split).
    key: str = field(init=False)
    #: Whether the leaf is per step (under the RLDS ``steps`` dataset).
    in_steps: bool = field(init=False)
    #: Whether one element's size can vary (an unknown dimension, or a nested sequence).
    ragged: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", "/".join(self.path))
        object.__setattr__(self, "in_steps", self.path[0] == "steps" and self.sequence_rank >= 1)
        object.__setattr__(self, "ragged", self.sequence_rank >= 2 or any(d is None for d in self.shape))

    @property
    def size(self) -> int | None:
        """Scalars per element, or ``None`` when the shape has an unknown dimension."""
        if any(d is None for d in self.shape):
            return None
        return math.prod(d for d in self.shape if d is not None)

    @property
    def class_name(self) -> str:
        """The tfds class, short (``Tensor``, ``Scalar``, ``Image``, ``Text``, ``ClassLabel``)."""
        return self.python_class.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class FeatureTree:
    """The leaves of one builder's ``features.json``, in file order."""

    leaves: tuple[Leaf, ...]
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)
    #: Features rdstd does not read (Video, BoundingBox, a Sequence of Text inside steps …), by Example key,
    #: with the reason: listed by ``info()`` so nothing is dropped silently.
    unread: Mapping[str, str] = field(default_factory=dict)
    _by_key: dict[str, Leaf] = field(init=False, repr=False, compare=False)
    _memo: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_key", {leaf.key: leaf for leaf in self.leaves})
        object.__setattr__(self, "_memo", {})

    def memo(self, name: str, make: Callable[[], T]) -> T:
        """What ``make`` returns, made once per tree and kept under ``name`` (e.g. a decode plan of its leaves)."""
        if name not in self._memo:
            self._memo[name] = make()
        value: T = self._memo[name]
        return value

    def step_leaves(self) -> Iterator[Leaf]:
        """Leaves under ``steps``."""
        return (leaf for leaf in self.leaves if leaf.in_steps)

    def episode_leaves(self) -> Iterator[Leaf]:
        """Leaves outside ``steps`` (episode metadata)."""
        return (leaf for leaf in self.leaves if not leaf.in_steps)

    def by_key(self) -> dict[str, Leaf]:
        """Leaves by Example key."""
        return self._by_key


def load_features(path: Path) -> FeatureTree:
    """Read and walk ``features.json``; raises :class:`~rdstd.errors.SourceError` naming the file."""
    if not path.is_file():
        raise CorruptSourceError(
            f"{path}: features.json is missing, so the records cannot be interpreted",
            hint="copy the builder directory completely (dataset_info.json, features.json and the shards)",
            situation="features-json-missing",
        )
    try:
        raw = json.loads(read_bytes(path, path.parent).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptSourceError(
            f"{path}: not readable JSON ({exc})", hint="the file is damaged", situation="features-json-invalid"
        ) from exc
    return parse_features(raw, source=str(path))


def parse_features(raw: Mapping[str, Any], *, source: str = "features.json") -> FeatureTree:
    """Walk an already-loaded ``features.json`` document."""
    leaves: list[Leaf] = []
    unread: dict[str, str] = {}
    _walk(raw, (), 0, leaves, unread, source)
    keys: dict[str, tuple[str, ...]] = {}
    for leaf in leaves:
        if leaf.key in keys:
            raise UnsupportedVersionError(
                f"{source}: features {'/'.join(keys[leaf.key])!r} and {leaf.path!r} flatten to the same key",
                hint="tfds itself cannot tell them apart; rename one in the builder",
                situation="feature-keys-collide",
            )
        keys[leaf.key] = leaf.path
    if not any(leaf.in_steps for leaf in leaves):
        raise UnsupportedVersionError(
            f"{source}: no 'steps' Dataset feature, so this tfds dataset is not RLDS",
            hint="rdstd reads RLDS episodes (a 'steps' Dataset of per-step features)",
            situation="not-rlds",
        )
    return FeatureTree(tuple(leaves), raw, unread)


def _shape(node: Mapping[str, Any], where: str, source: str) -> tuple[int | None, ...]:
    dims = node.get("shape", {}).get("dimensions", [])
    try:
        return tuple(None if int(d) < 0 else int(d) for d in dims)
    except (TypeError, ValueError) as exc:
        raise CorruptSourceError(
            f"{source}: feature {where!r} has a bad shape {dims!r}", situation="features-json-invalid"
        ) from exc


def _walk(node: Any, path: tuple[str, ...], rank: int, out: list[Leaf], unread: dict[str, str], source: str) -> None:
    where = "/".join(path) or "<root>"
    if not isinstance(node, Mapping):
        raise CorruptSourceError(f"{source}: feature {where!r} is not a JSON object", situation="features-json-invalid")
    cls = str(node.get("pythonClassName", ""))
    doc = node.get("description", "")
    description = doc if isinstance(doc, str) else str(doc)
    if "featuresDict" in node:
        children = node["featuresDict"].get("features", {})
        for name, child in children.items():
            _walk(child, (*path, str(name)), rank, out, unread, source)
        return
    if "sequence" in node:
        seq = node["sequence"]
        length = int(seq.get("length", "-1"))
        if rank == 0 and path == ("steps",) and length != -1:
            raise UnsupportedVersionError(
                f"{source}: 'steps' has a fixed length {length}; RLDS steps are a Dataset",
                situation="steps-fixed-length",
            )
        _walk(seq.get("feature", {}), path, rank + 1, out, unread, source)
        return
    if not path:
        raise CorruptSourceError(f"{source}: the root feature is not a FeaturesDict", situation="features-json-invalid")
    if "tensor" in node:
        t = node["tensor"]
        dtype = str(t.get("dtype", ""))
        if dtype not in NUMERIC_DTYPES and dtype != "string":
            unread[where] = f"a {cls.rsplit('.', 1)[-1] or 'Tensor'} of dtype {dtype!r}, which rdstd cannot read"
            return
        encoding = str(t.get("encoding", "none")) or "none"
        if encoding not in ("none", "bytes", "zlib"):
            unread[where] = f"a tensor with unknown encoding {encoding!r}"
            return
        kind: LeafKind = "text" if dtype == "string" else "tensor"
        if kind == "text" and rank >= 2:
            unread[where] = "a Sequence of strings inside steps (several strings per step), which rdstd cannot read yet"
            return
        shape = _shape(t, where, source)
        out.append(Leaf(path, kind, dtype, shape, cls, cast(Encoding, encoding), None, rank, description))
        return
    if "image" in node:
        if rank >= 2:
            unread[where] = "a Sequence of images inside steps (several images per step), which rdstd cannot read yet"
            return
        im = node["image"]
        fmt = im.get("encodingFormat") or None
        out.append(Leaf(path, "image", str(im.get("dtype", "uint8")), _shape(im, where, source), cls,
                        "none", fmt, rank, description))  # fmt: skip
        return
    if "text" in node:
        if rank >= 2:
            unread[where] = "a Sequence of Text inside steps (several strings per step), which rdstd cannot read yet"
            return
        out.append(Leaf(path, "text", "string", (), cls, "none", None, rank, description))
        return
    if "classLabel" in node:
        out.append(Leaf(path, "tensor", "int64", (), cls, "none", None, rank, description))
        return
    kinds = sorted(k for k in node if k not in ("pythonClassName", "description", "metadata"))
    if not kinds and not cls:
        raise CorruptSourceError(
            f"{source}: feature {where!r} is an empty node (no pythonClassName, no type)",
            situation="features-json-invalid",
        )
    unread[where] = (
        f"a {cls.rsplit('.', 1)[-1] or '?'} feature ({', '.join(kinds) or 'no type'}), which rdstd cannot read yet"
    )
