"""What an RLDS episode says about itself that a user should see: flags that disagree with the data.

These are observations, not errors: the episode is still read. They go to ``SourceEpisode.meta["notes"]`` so the
conversion report and the validators can show them (the Bridge debug data has ``is_last`` never true,
``has_image_*`` flags False beside real images, and an all-zero fourth camera).
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any

import numpy as np

from rdstd.formats.rlds.example import DecodedExample
from rdstd.formats.rlds.features import FeatureTree


@lru_cache(maxsize=64)
def _constant_image_value(blob: bytes) -> float | None:
    """The single pixel value of a constant image, ``None`` when it varies or does not decode.

    Cached by content: a dataset's placeholder image (e.g. an all-zero camera) is decoded once, not per episode.
    """
    try:
        from PIL import Image

        with Image.open(io.BytesIO(blob)) as im:
            pixels = np.asarray(im)
    except Exception:  # any decoder failure: no claim is made
        return None
    if pixels.size and bool(np.all(pixels == pixels.flat[0])):
        return float(pixels.flat[0])
    return None


def _flag(decoded: DecodedExample, tree: FeatureTree, name: str) -> tuple[str, Any] | None:
    for leaf in tree.step_leaves():
        if leaf.path == ("steps", name) and leaf.key in decoded.vectors:
            return leaf.key, decoded.vectors[leaf.key]
    return None


def episode_notes(decoded: DecodedExample, tree: FeatureTree) -> list[str]:
    """Observations about one episode: RLDS flag problems, flags that contradict content, constant cameras."""
    notes: list[str] = []
    left_out = [f"features rdstd cannot read yet are left out: {', '.join(sorted(tree.unread))}"] if tree.unread else []
    n = decoded.length
    if n == 0:
        return ["the episode has no steps", *left_out]
    first = _flag(decoded, tree, "is_first")
    if first is not None:
        key, values = first
        if not bool(values[0]) or int(np.count_nonzero(values)) != 1:
            notes.append(f"{key} is true at steps {np.flatnonzero(values).tolist()}, RLDS wants exactly step 0")
    last = _flag(decoded, tree, "is_last")
    if last is not None:
        key, values = last
        if not bool(np.any(values)):
            notes.append(f"{key} is never true: the episode looks truncated")
        elif not bool(values[-1]) or int(np.count_nonzero(values)) != 1:
            notes.append(f"{key} is true at steps {np.flatnonzero(values).tolist()}, RLDS wants exactly the last")
    terminal = _flag(decoded, tree, "is_terminal")
    if terminal is not None and last is not None:
        bad = np.flatnonzero(terminal[1].astype(bool) & ~last[1].astype(bool))
        if bad.size:
            notes.append(f"{terminal[0]} is true at steps {bad.tolist()} where {last[0]} is false")
    # has_<camera> flags against the camera's content
    for leaf in tree.episode_leaves():
        name = leaf.path[-1]
        if leaf.dtype != "bool" or not name.startswith("has_"):
            continue
        target = name[len("has_") :]
        matches = [key for key in decoded.images if tree.by_key()[key].path[-1] == target]
        flag = decoded.episode.get(leaf.key)
        if matches and flag is not None and not bool(flag):
            frames = decoded.images[matches[0]]
            if any(frames):
                notes.append(f"{leaf.key} is False but {matches[0]} holds {len(frames)} encoded images")
    for key, frames in decoded.images.items():
        if not frames:
            continue
        if not any(frames):
            notes.append(f"{key}: every image is empty bytes")
            continue
        if len(frames) > 1 and all(f == frames[0] for f in frames):
            value = _constant_image_value(frames[0])
            if value is not None:
                notes.append(f"{key}: all {len(frames)} images are one constant image (every pixel = {value:g})")
            else:
                notes.append(f"{key}: all {len(frames)} images are byte-identical")
    for key, texts in decoded.texts.items():
        if texts and all(t == "" for t in texts) and tree.by_key()[key].path[-1].endswith("instruction"):
            notes.append(f"{key} is empty in every step")
    notes.extend(left_out)
    if decoded.unknown_keys:
        notes.append(f"the record holds keys features.json does not declare: {', '.join(decoded.unknown_keys[:5])}")
    return notes
