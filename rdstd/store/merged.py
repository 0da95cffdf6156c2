"""What a merged dataset's manifest says about its episodes: which input each came from and which features it has.

``rdstd merge`` records each input in ``extra["merge"]["inputs"]`` (its label, and ``features``: merged name -> the
input's own name) and, in each episode's ``source_meta[MERGE_KEY]``, the input it came from (``from``: where it came
from before, when that input was itself merged). A feature no input of an episode's chain had is stored as null rows
for that episode; readers and checks use these functions to tell such rows from data.
"""

from __future__ import annotations

from typing import Any

#: The key of an episode's merge history in its ``source_meta``.
MERGE_KEY = "rdstd.merge"


def inputs(extra: dict[str, Any]) -> list[dict[str, Any]]:
    """The merge inputs recorded in a manifest's ``extra`` (empty for a dataset that was not merged)."""
    merged = extra.get("merge")
    found = merged.get("inputs") if isinstance(merged, dict) else None
    return [i for i in found if isinstance(i, dict)] if isinstance(found, list) else []


def partial_features(extra: dict[str, Any], features: list[str]) -> frozenset[str]:
    """The ``features`` that some merge input did not have (so some episodes store null rows for them)."""
    recorded = inputs(extra)
    return frozenset(k for k in features if any(k not in (i.get("features") or {}) for i in recorded))


def episode_features(extra: dict[str, Any], source_meta: dict[str, Any]) -> frozenset[str] | None:
    """The features an episode of a merged dataset has values for, following its merge history through inputs that
    were merged themselves; None when the manifest or the episode does not say (a dataset that was not merged)."""
    entry = source_meta.get(MERGE_KEY)
    if not isinstance(entry, dict):
        return None
    recorded = {i.get("label"): i for i in inputs(extra)}
    source = recorded.get(entry.get("input"))
    if source is None:
        return None
    names: dict[str, str] = dict(source.get("features") or {})  # merged name -> the input's own name
    inner = entry.get("from")
    if isinstance(inner, dict):
        deeper = episode_features(source.get("extra") or {}, {MERGE_KEY: inner})
        if deeper is not None:
            return frozenset(k for k, own in names.items() if own in deeper)
    return frozenset(names)
