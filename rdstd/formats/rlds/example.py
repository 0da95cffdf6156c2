"""Decode one serialized ``tf.train.Example`` (one RLDS episode) into numpy, walking ``features.json``.

The protobuf runtime parses the message (``proto.example_class``); this module only reshapes and casts each
leaf the way tfds stored it (``core/example_serializer.py``):

- numbers go to ``int64_list`` or ``float_list``: bool as 0/1, uint64 bit-cast to int64, every float dtype as
  float32 (so a float64 feature holds float32 values; we widen exactly, as tfds does);
- a step leaf concatenates its per-step values: ``steps/action`` is T×7 floats, so T = len / prod(shape);
- ``encoding: bytes|zlib`` tensors are one ``bytes_list`` entry per element with the raw little-endian array
  (zlib-compressed for ``zlib``); this is how tfds stores variable-size per-step tensors;
- a sequence inside ``steps`` is ragged: ``<key>/ragged_flat_values`` + ``<key>/ragged_row_lengths_<i>``;
- images and text are one ``bytes_list`` entry per element; image bytes are returned untouched (never decoded).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from rdstd.formats.rlds.features import FeatureTree, Leaf

_INT_KINDS = "biu"


class ExampleMismatchError(Exception):
    """The record does not match ``features.json`` (a key missing, a wrong list type, a wrong size)."""


@dataclass
class DecodedExample:
    """One episode's leaves: per step (``T`` rows) and episode level, by Example key."""

    length: int
    vectors: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    images: dict[str, list[bytes]] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)
    ragged: dict[str, list[npt.NDArray[Any]]] = field(default_factory=dict)
    episode: dict[str, Any] = field(default_factory=dict)
    unknown_keys: list[str] = field(default_factory=list)


def _expected(leaf: Leaf) -> str:
    """The ``tf.train.Feature`` list kind tfds stores ``leaf`` in."""
    if leaf.kind in ("image", "text") or leaf.encoding != "none" or leaf.dtype == "string":
        return "bytes_list"
    if np.dtype(leaf.dtype).kind == "f":
        return "float_list"
    return "int64_list"


def _values(feature: Any, leaf: Leaf, key: str, expected: str | None = None) -> Any:
    kind = feature.WhichOneof("kind")
    if kind is None:  # an empty list of any type: tfds writes empty lists this way too
        return []
    expected = expected or _expected(leaf)
    if kind != expected:
        declared = f"{leaf.class_name} {leaf.dtype}"
        raise ExampleMismatchError(f"feature {key!r} is a {kind}, features.json ({declared}) needs a {expected}")
    return getattr(feature, kind).value


@dataclass(frozen=True)
class _LeafPlan:
    """What decoding one leaf needs, worked out once per feature tree rather than once per record."""

    leaf: Leaf
    expected: str
    #: Scalars per element of a numeric leaf (``None``: an unknown dimension).
    size: int | None
    #: The element shape without unknown dimensions.
    fixed: tuple[int, ...]


def _plans(tree: FeatureTree) -> tuple[_LeafPlan, ...]:
    return tree.memo(
        "decode", lambda: tuple(_LeafPlan(leaf, _expected(leaf), leaf.size, _fixed(leaf)) for leaf in tree.leaves)
    )


def _numbers(values: Any, dtype: str) -> npt.NDArray[Any]:
    """A number list cast the way tfds reads it back."""
    target = np.dtype(dtype)
    if target.kind == "f":
        floats: npt.NDArray[Any] = np.array(values, dtype=np.float32)
        return floats.astype(target, copy=False)
    raw = np.array(values, dtype=np.int64)
    if target == np.uint64:
        return raw.view(np.uint64)
    if target == np.bool_:
        flags: npt.NDArray[np.bool_] = raw != 0
        return flags
    return raw.astype(target, copy=False)


def _from_bytes(blob: bytes, leaf: Leaf, key: str) -> npt.NDArray[Any]:
    if leaf.encoding == "zlib":
        try:
            blob = zlib.decompress(blob)
        except zlib.error as exc:
            raise ExampleMismatchError(f"feature {key!r} is not valid zlib data ({exc})") from exc
    dtype = np.dtype(leaf.dtype).newbyteorder("<")
    if len(blob) % dtype.itemsize:
        raise ExampleMismatchError(f"feature {key!r}: {len(blob)} bytes is not a whole number of {leaf.dtype} values")
    arr = np.frombuffer(blob, dtype=dtype).astype(np.dtype(leaf.dtype), copy=False)
    shape = tuple(-1 if d is None else d for d in leaf.shape)
    try:
        return arr.reshape(shape)
    except ValueError as exc:
        raise ExampleMismatchError(f"feature {key!r}: {arr.size} values do not fit shape {list(leaf.shape)}") from exc


def _fixed(leaf: Leaf) -> tuple[int, ...]:
    return tuple(d for d in leaf.shape if d is not None)


def _ragged(fmap: Any, leaf: Leaf, key: str) -> list[npt.NDArray[Any]]:
    """A step leaf nested one or more sequences deep: one array per step, from flat values + row lengths."""
    flat = _numbers(_values(fmap[f"{key}/ragged_flat_values"], leaf, key), leaf.dtype)
    lengths: list[npt.NDArray[np.int64]] = []
    i = 0
    while f"{key}/ragged_row_lengths_{i}" in fmap:
        lengths.append(np.array(fmap[f"{key}/ragged_row_lengths_{i}"].int64_list.value, dtype=np.int64))
        i += 1
    inner = tuple(d for d in leaf.shape if d is not None)
    if inner and len(inner) == len(leaf.shape):
        size = math.prod(inner)
        if size == 0 or flat.size % size:
            raise ExampleMismatchError(f"feature {key!r}: {flat.size} values are not a whole number of {list(inner)}")
        flat = flat.reshape((-1, *inner))
    if len(lengths) != 1:
        levels = len(lengths)
        raise ExampleMismatchError(
            f"feature {key!r}: {levels} ragged row-length levels; rdstd reads one (steps × items)"
        )
    if bool(np.any(lengths[0] < 0)):
        raise ExampleMismatchError(f"feature {key!r}: negative row lengths")
    if int(lengths[0].sum()) != flat.shape[0]:
        raise ExampleMismatchError(f"feature {key!r}: row lengths sum to {int(lengths[0].sum())}, not {flat.shape[0]}")
    bounds = np.concatenate([[0], np.cumsum(lengths[0])])
    return [flat[bounds[t] : bounds[t + 1]] for t in range(len(lengths[0]))]


def decode_example(data: bytes, tree: FeatureTree) -> DecodedExample:
    """Decode one serialized Example; raises :class:`ExampleMismatchError` when it does not fit ``tree``."""
    from rdstd.formats.rlds.proto import decode_error, example_class

    parser = example_class()  # a missing protobuf is a MissingDependencyError, never a corrupt record
    try:
        message = parser.FromString(data)
    except decode_error() as exc:
        raise ExampleMismatchError(f"not a tf.train.Example ({type(exc).__name__}: {exc})") from exc
    fmap = message.features.feature
    out = DecodedExample(length=-1)
    known: set[str] = set()
    steps: dict[str, int] = {}
    for plan in _plans(tree):
        leaf = plan.leaf
        key = leaf.key
        known.add(key)
        if leaf.in_steps and leaf.sequence_rank >= 2:
            known.update(k for k in fmap if k.startswith(f"{key}/ragged_"))
            if f"{key}/ragged_flat_values" not in fmap:
                raise ExampleMismatchError(f"feature {key!r} is missing (no {key}/ragged_flat_values)")
            rows = _ragged(fmap, leaf, key)
            out.ragged[key] = rows
            steps[key] = len(rows)
            continue
        if key not in fmap:
            raise ExampleMismatchError(f"feature {key!r} declared in features.json is missing from the record")
        values = _values(fmap[key], leaf, key, plan.expected)
        if leaf.kind == "image":
            out_images = list(values)
            if leaf.in_steps:
                out.images[key] = out_images
                steps[key] = len(out_images)
            else:
                out.episode[key] = out_images[0] if len(out_images) == 1 and not leaf.sequence_rank else out_images
            continue
        if leaf.kind == "text":
            try:
                texts = [v.decode("utf-8") for v in values]
            except UnicodeDecodeError as exc:
                raise ExampleMismatchError(f"feature {key!r} is not UTF-8 text ({exc})") from exc
            if leaf.in_steps:
                out.texts[key] = texts
                steps[key] = len(texts)
            elif leaf.shape == () and leaf.sequence_rank == 0:
                if len(texts) != 1:
                    raise ExampleMismatchError(f"feature {key!r} holds {len(texts)} strings, features.json says one")
                out.episode[key] = texts[0]
            else:
                out.episode[key] = texts
            continue
        if leaf.encoding != "none":
            arrays = [_from_bytes(bytes(v), leaf, key) for v in values]
            if leaf.in_steps:
                if leaf.ragged:
                    out.ragged[key] = arrays
                else:
                    empty = np.zeros((0, *plan.fixed), dtype=leaf.dtype)
                    out.vectors[key] = np.stack(arrays) if arrays else empty
                steps[key] = len(arrays)
            elif len(arrays) != 1:
                raise ExampleMismatchError(f"feature {key!r} holds {len(arrays)} blobs, features.json says one")
            else:
                out.episode[key] = arrays[0]
            continue
        arr = _numbers(values, leaf.dtype)
        if leaf.in_steps:
            size = plan.size
            if size is None:
                raise ExampleMismatchError(
                    f"feature {key!r}: a step tensor with an unknown dimension needs encoding=bytes"
                )
            if size == 0 or arr.size % size:
                raise ExampleMismatchError(
                    f"feature {key!r}: {arr.size} values are not a whole number of steps of {size}"
                )
            out.vectors[key] = arr.reshape((-1, *plan.fixed))
            steps[key] = arr.size // size
            continue
        shape = tuple(-1 if d is None else d for d in leaf.shape)
        if leaf.sequence_rank:
            shape = (-1, *shape)
        if not shape:
            if arr.size != 1:
                raise ExampleMismatchError(f"feature {key!r} holds {arr.size} values, features.json says a scalar")
            out.episode[key] = arr.reshape(())[()]
            continue
        expected = math.prod(d for d in shape if d > 0)
        if -1 not in shape and arr.size != expected:
            raise ExampleMismatchError(f"feature {key!r} holds {arr.size} values, features.json shape {list(shape)}")
        try:
            out.episode[key] = arr.reshape(shape)
        except ValueError as exc:
            raise ExampleMismatchError(f"feature {key!r}: {arr.size} values do not fit shape {list(shape)}") from exc
    counts = set(steps.values())
    if len(counts) > 1:
        detail = ", ".join(f"{k}={n}" for k, n in sorted(steps.items()))
        raise ExampleMismatchError(f"step features disagree on the number of steps ({detail})")
    out.length = counts.pop() if counts else 0
    unread = tuple(tree.unread)
    out.unknown_keys = sorted(
        k for k in fmap if k not in known and not any(k == u or k.startswith(f"{u}/") for u in unread)
    )
    return out
