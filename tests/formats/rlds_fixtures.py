"""The RLDS tests' fixtures: the generators live in :mod:`rdstd.testing.rlds` (the demo and plugin authors use
them); the samples' locations and tfds as the oracle (a test-only dependency) stay here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rdstd.testing.rlds import *  # noqa: F403

SAMPLES_RLDS = Path(__file__).resolve().parents[3] / "shared" / "samples" / "rlds"
BRIDGE_DIR = "bridge_debug/bridge_dataset/1.0.0"
EDGE_DIR = "edgecases/rlds_edgecases/1.0.0"


# -- tfds as the oracle --------------------------------------------------------------------------------------
def tfds_decode(features_json: Mapping[str, Any], record: bytes) -> tuple[dict[tuple[str, ...], Any], int]:
    """What tfds (no TensorFlow) decodes from ``record``: step leaves stacked/listed per step, by path tuple.

    Images are not decoded (``SkipDecoding``): tfds without TF cannot decode 16-bit PNG.
    """
    import tensorflow_datasets as tfds
    from tensorflow_datasets import decode

    from rdstd.formats.rlds.features import parse_features

    tree = parse_features(features_json)
    decoders: dict[str, Any] = {}
    for leaf in tree.leaves:
        if leaf.kind == "image":
            node = decoders
            for part in leaf.path[:-1]:
                node = node.setdefault(part, {})
            node[leaf.path[-1]] = decode.SkipDecoding()
    connector = tfds.features.FeatureConnector.from_json(dict(features_json))
    out = connector.deserialize_example_np(record, decoders=decoders)
    steps = out["steps"]
    per_step = [steps[i] for i in range(len(steps))]
    result: dict[tuple[str, ...], Any] = {}
    for leaf in tree.leaves:
        if leaf.in_steps:
            result[leaf.path] = [_get(step, leaf.path[1:]) for step in per_step]
        else:
            result[leaf.path] = _get(out, leaf.path)
    return result, len(per_step)


def _get(tree: Any, path: Sequence[str]) -> Any:
    for part in path:
        tree = tree[part]
    return tree
