"""RLDS sources written in code: tfds-shaped builder directories (features.json, dataset_info.json, shards).

The records are built with the same ``tf.train.Example`` layout tfds writes (``core/example_serializer.py``):
flattened ``/`` keys, step values concatenated, bool as 0/1, uint64 bit-cast, floats as float32, ``bytes``/``zlib``
tensors one blob per step, nested sequences as ``ragged_flat_values`` + ``ragged_row_lengths_0``.
"""

from __future__ import annotations

import io
import json
import shutil
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rdstd.formats.rlds.proto import example_class
from rdstd.formats.rlds.tfrecord import frame_record

_TFDS = "tensorflow_datasets.core.features."


# -- features.json nodes ---------------------------------------------------------------------------------
def tensor(dtype: str, shape: Sequence[int] = (), encoding: str = "none", doc: str = "") -> dict[str, Any]:
    """A Tensor (or Scalar, for shape ()) node."""
    cls = "scalar.Scalar" if not shape else "tensor_feature.Tensor"
    node: dict[str, Any] = {
        "pythonClassName": _TFDS + cls,
        "tensor": {
            "dtype": dtype,
            "encoding": encoding,
            "shape": {"dimensions": [str(d) for d in shape]} if shape else {},
        },
    }
    if doc:
        node["description"] = doc
    return node


def image(fmt: str, shape: Sequence[int], dtype: str = "uint8") -> dict[str, Any]:
    """An Image node."""
    return {
        "pythonClassName": _TFDS + "image_feature.Image",
        "image": {"dtype": dtype, "encodingFormat": fmt, "shape": {"dimensions": [str(d) for d in shape]}},
    }


def text() -> dict[str, Any]:
    """A Text node."""
    return {"pythonClassName": _TFDS + "text_feature.Text", "text": {}}


def class_label(n: int) -> dict[str, Any]:
    """A ClassLabel node."""
    return {"pythonClassName": _TFDS + "class_label_feature.ClassLabel", "classLabel": {"numClasses": str(n)}}


def fdict(children: Mapping[str, Any]) -> dict[str, Any]:
    """A FeaturesDict node."""
    return {"pythonClassName": _TFDS + "features_dict.FeaturesDict", "featuresDict": {"features": dict(children)}}


def sequence(child: Mapping[str, Any], *, dataset: bool = False, length: int = -1) -> dict[str, Any]:
    """A Dataset (``dataset=True``) or Sequence node."""
    cls = "dataset_feature.Dataset" if dataset else "sequence_feature.Sequence"
    return {"pythonClassName": _TFDS + cls, "sequence": {"feature": dict(child), "length": str(length)}}


# -- records -----------------------------------------------------------------------------------------------
def example(features: Mapping[str, Any]) -> bytes:
    """A serialized Example. Values: ``list[bytes]`` -> bytes_list, float arrays -> float_list, else int64_list."""
    message = example_class()()
    for key, value in features.items():
        feature = message.features.feature[key]
        if isinstance(value, list) and (not value or isinstance(value[0], bytes)):
            feature.bytes_list.value.extend(value)
            continue
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            feature.float_list.value.extend(arr.astype(np.float32).ravel().tolist())
        elif arr.dtype == np.uint64:
            feature.int64_list.value.extend(arr.view(np.int64).ravel().tolist())
        else:
            feature.int64_list.value.extend(arr.astype(np.int64).ravel().tolist())
    data: bytes = message.SerializeToString(deterministic=True)
    return data


def write_tfrecord(path: Path, records: Sequence[bytes]) -> Path:
    """A TFRecord file holding ``records``."""
    path.write_bytes(b"".join(frame_record(r) for r in records))
    return path


def write_array_record(path: Path, records: Sequence[bytes]) -> Path:
    """An ArrayRecord file holding ``records`` (one record per chunk, as tfds writes them)."""
    import importlib

    module: Any = importlib.import_module("array_record.python.array_record_module")  # untyped
    ArrayRecordWriter = module.ArrayRecordWriter  # noqa: N806 - the library's class

    writer = ArrayRecordWriter(str(path), "group_size:1")
    for record in records:
        writer.write(record)
    writer.close()
    return path


def write_builder(
    root: Path,
    features_json: Mapping[str, Any] | None,
    splits: Mapping[str, Sequence[Sequence[bytes]]],
    *,
    name: str = "synthetic_rlds",
    version: str = "1.0.0",
    file_format: str = "tfrecord",
) -> Path:
    """A builder dir ``root/name/version`` with one shard per inner list of records; returns the version dir."""
    out = root / name / version
    out.mkdir(parents=True)
    info: dict[str, Any] = {"name": name, "version": version, "fileFormat": file_format, "splits": []}
    for split, shards in splits.items():
        info["splits"].append(
            {
                "name": split,
                "filepathTemplate": "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
                "shardLengths": [str(len(s)) for s in shards],
                "numBytes": str(sum(len(r) for s in shards for r in s)),
            }
        )
        for i, records in enumerate(shards):
            path = out / f"{name}-{split}.{file_format}-{i:05d}-of-{len(shards):05d}"
            if file_format == "array_record":
                write_array_record(path, records)
            else:
                write_tfrecord(path, records)
    (out / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    if features_json is not None:
        (out / "features.json").write_text(json.dumps(features_json, indent=2), encoding="utf-8")
    return out


def copy_builder(src: Path, dst: Path) -> Path:
    """A scratch copy of a builder directory (to damage without touching the samples)."""
    shutil.copytree(src, dst)
    return dst


# -- images ------------------------------------------------------------------------------------------------
def png16(value: int, hw: tuple[int, int] = (4, 5)) -> bytes:
    """A 16-bit grayscale PNG whose pixels are ``value`` (+ a gradient), as depth cameras store it."""
    from PIL import Image

    pixels = (np.full(hw, value, dtype=np.uint16) + np.arange(hw[1], dtype=np.uint16)).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(seed: int, hw: tuple[int, int] = (8, 8)) -> bytes:
    """A small RGB JPEG of noise."""
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, size=(*hw, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def decode_pixels(blob: bytes) -> npt.NDArray[Any]:
    """Pixels (H, W, C) of a JPEG/PNG with PIL, keeping 16-bit depth as uint16."""
    from PIL import Image

    with Image.open(io.BytesIO(blob)) as im:
        arr = np.asarray(im)
        if im.mode.startswith("I;16") or arr.dtype in (np.int32, np.uint16):
            arr = arr.astype(np.uint16)
    return arr[:, :, None] if arr.ndim == 2 else arr


# -- a synthetic OXE-like dataset covering what the samples do not ----------------------------------------
def synthetic_features() -> dict[str, Any]:
    """Keys with '/' in names, nested dicts, a ragged nested Sequence, ClassLabel, string tensors, zlib, uint64."""
    return fdict(
        {
            "steps": sequence(
                fdict(
                    {
                        "action": tensor("float32", [7], doc="xyz, rpy, gripper"),
                        "is_first": tensor("bool"),
                        "is_last": tensor("bool"),
                        "is_terminal": tensor("bool"),
                        "reward": tensor("float32"),
                        "language_instruction": text(),
                        "observation": fdict(
                            {
                                "image": image("jpeg", [8, 8, 3]),
                                "depth": image("png", [4, 5, 1], "uint16"),
                                "clip_function_input/base_pose_tool_reached": tensor("float32", [7]),
                                "present/xyz": tensor("float64", [3]),
                                "proprio_zlib": tensor("float32", [2, 3], encoding="zlib"),
                                "stamp_ns": tensor("uint64"),
                                "objects": sequence(tensor("int32", [2])),
                            }
                        ),
                        "phase": class_label(4),
                    }
                ),
                dataset=True,
            ),
            "episode_metadata": fdict(
                {"file_path": text(), "episode_id": tensor("int32"), "weights": tensor("float32", [-1])}
            ),
        }
    )


def synthetic_episode(n: int, seed: int) -> tuple[bytes, dict[str, Any]]:
    """One serialized episode of :func:`synthetic_features` and the values that went in (by key)."""
    rng = np.random.default_rng(seed)
    action = rng.normal(size=(n, 7)).astype(np.float32)
    clip = rng.normal(size=(n, 7)).astype(np.float32)
    xyz = (rng.normal(size=(n, 3)) * 1000).astype(np.float32).astype(np.float64)
    proprio = rng.normal(size=(n, 2, 3)).astype(np.float32)
    stamps = (np.uint64(2**64 - 1000) + np.arange(n, dtype=np.uint64)).astype(np.uint64)
    objects = [np.arange(2 * (t % 3), dtype=np.int32).reshape(-1, 2) + t for t in range(n)]
    phase = (np.arange(n) % 4).astype(np.int64)
    images = [jpeg(seed * 100 + t) for t in range(n)]
    depths = [png16(1000 + 7 * t) for t in range(n)]
    flags_first = np.arange(n) == 0
    flags_last = np.arange(n) == n - 1
    reward = flags_last.astype(np.float32)
    lang = "stack the ☃ blocks" if seed % 2 == 0 else "open the drawer"
    values: dict[str, Any] = {
        "steps/action": action,
        "steps/is_first": flags_first,
        "steps/is_last": flags_last,
        "steps/is_terminal": flags_last,
        "steps/reward": reward,
        "steps/language_instruction": [lang] * n,
        "steps/observation/image": images,
        "steps/observation/depth": depths,
        "steps/observation/clip_function_input/base_pose_tool_reached": clip,
        "steps/observation/present/xyz": xyz,
        "steps/observation/proprio_zlib": proprio,
        "steps/observation/stamp_ns": stamps,
        "steps/observation/objects": objects,
        "steps/phase": phase,
        "episode_metadata/file_path": f"/raw/episode_{seed}.h5",
        "episode_metadata/episode_id": np.int32(seed),
        "episode_metadata/weights": np.arange(seed % 3 + 1, dtype=np.float32) / 4,
    }
    flat_objects = np.concatenate([o.reshape(-1) for o in objects]) if n else np.zeros(0, np.int32)
    record = example(
        {
            "steps/action": action,
            "steps/is_first": flags_first,
            "steps/is_last": flags_last,
            "steps/is_terminal": flags_last,
            "steps/reward": reward,
            "steps/language_instruction": [lang.encode()] * n,
            "steps/observation/image": images,
            "steps/observation/depth": depths,
            "steps/observation/clip_function_input/base_pose_tool_reached": clip,
            "steps/observation/present/xyz": xyz,
            "steps/observation/proprio_zlib": [zlib.compress(p.astype("<f4").tobytes()) for p in proprio],
            "steps/observation/stamp_ns": stamps,
            "steps/observation/objects/ragged_flat_values": flat_objects,
            "steps/observation/objects/ragged_row_lengths_0": np.array([len(o) for o in objects], dtype=np.int64),
            "steps/phase": phase,
            "episode_metadata/file_path": [values["episode_metadata/file_path"].encode()],
            "episode_metadata/episode_id": np.array([seed]),
            "episode_metadata/weights": values["episode_metadata/weights"],
        }
    )
    return record, values


# -- generic layouts (for the shipped Open X-Embodiment specs) ------------------------------------------------
def rlds_features(steps: Mapping[str, Any], episode: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An RLDS features.json from flat step keys (``observation/image`` -> node; names here hold no '/')."""

    def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
        tree: dict[str, Any] = {}
        for key, node in flat.items():
            *parents, leaf = key.split("/")
            level = tree
            for part in parents:
                level = level.setdefault(part, {})
            level[leaf] = node
        return _to_fdict(tree)

    top: dict[str, Any] = {"steps": sequence(nest(steps), dataset=True)}
    if episode:
        top["episode_metadata"] = nest(episode)
    return fdict(top)


def _to_fdict(tree: Mapping[str, Any]) -> dict[str, Any]:
    return fdict({k: v if "pythonClassName" in v else _to_fdict(v) for k, v in tree.items()})


def random_episode(features_json: Mapping[str, Any], n: int, seed: int) -> bytes:
    """A serialized episode of ``n`` steps with random values for every leaf of ``features_json``."""
    from rdstd.formats.rlds.features import parse_features

    rng = np.random.default_rng(seed)
    values: dict[str, Any] = {}
    for leaf in parse_features(features_json).leaves:
        count = n if leaf.in_steps else 1
        if leaf.kind == "image":
            h, w, _ = (d or 8 for d in leaf.shape)
            values[leaf.key] = [jpeg(seed * 1000 + t, (h, w)) for t in range(count)]
        elif leaf.kind == "text":
            values[leaf.key] = [f"task {seed}".encode()] * count
        else:
            size = count * int(np.prod([d or 1 for d in leaf.shape]))
            if leaf.dtype.startswith("float"):
                values[leaf.key] = rng.uniform(-1, 1, size=size).astype(np.float32)
            elif leaf.dtype == "bool":  # RLDS flags: is_last/is_terminal at the last step, the others at the first
                at = size - 1 if leaf.key.endswith(("is_last", "is_terminal")) else 0
                values[leaf.key] = (np.arange(size) == at).astype(np.int64)
            else:
                values[leaf.key] = rng.integers(0, 2, size=size)
    return example(values)
