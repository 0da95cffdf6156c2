"""Cheap cross-checks of the values read from a LeRobot parquet file against what the source itself recorded.

Flipped bytes in a data page usually still decode (no page checksum in LeRobot's files), so the parser alone
does not see them. Three records that the source already has catch most of them, at the cost of reading a
footer and a few numbers per episode:

1. Parquet page checksums, when the writer stored them (``page_checksum_verification=True`` on every read).
2. The footer's min/max statistics of each row group: every decoded value of a column must lie within them,
   and when the episode is exactly its row groups (LeRobot writes one row group per episode) the extremes must
   be attained.
3. LeRobot's per-episode statistics (``meta/episodes_stats.jsonl`` in v2.1, ``stats/<feature>/…`` columns of
   the v3.0 episodes table): each dimension's min and max must equal the values read, and the mean must agree
   within float tolerance.

A disagreement is a :class:`~rdstd.errors.CorruptSourceError` naming the file and the column; ``--on-error
skip`` leaves that episode out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow.parquet as pq

from rdstd.errors import CorruptSourceError
from rdstd.io.parquet import PARQUET_ERRORS

#: Relative and absolute parts of the tolerance on a recorded mean (LeRobot averages float32 in float32).
MEAN_RTOL = 1e-5
MEAN_ATOL = 1e-6
_HINT = "the file is corrupt (bit rot or a bad copy): re-download it; skip the episode with --on-error skip"


def _corrupt(file: Path, column: str, episode: int, what: str) -> CorruptSourceError:
    return CorruptSourceError(
        f"{file}: column {column} of episode {episode} {what}", hint=_HINT, situation="column-damaged"
    )


def check_footer_stats(
    file: Path,
    metadata: pq.FileMetaData,
    row_groups: Sequence[int],
    whole: bool,
    values: Mapping[str, npt.NDArray[Any]],
    episode: int,
) -> None:
    """Decoded ``values`` (column -> array of this episode) against the footer min/max of ``row_groups``.

    ``whole``: the episode's rows are exactly those row groups, so each column's extremes must be attained.
    """
    columns = sorted(values, key=len, reverse=True)  # "a.b" before "a" when both exist
    lows: dict[str, Any] = {}
    highs: dict[str, Any] = {}
    complete: dict[str, bool] = {}
    try:
        for g in row_groups:
            group = metadata.row_group(g)
            for j in range(group.num_columns):
                chunk = group.column(j)
                path = chunk.path_in_schema
                name = next((c for c in columns if path == c or path.startswith(c + ".")), None)
                if name is None:
                    continue
                stats = chunk.statistics
                if stats is None or not stats.has_min_max:
                    complete[name] = False
                    continue
                lows[name] = stats.min if name not in lows else min(lows[name], stats.min)
                highs[name] = stats.max if name not in highs else max(highs[name], stats.max)
                complete.setdefault(name, True)
    except PARQUET_ERRORS as exc:  # the footer itself is damaged (names or statistics that do not decode)
        raise CorruptSourceError(
            f"{file}: the parquet footer is damaged ({exc}) (episode {episode})",
            hint="re-download the file",
            situation="parquet-footer-damaged",
        ) from exc
    for name, low in lows.items():
        flat = values[name].reshape(-1)
        if flat.dtype.kind == "f":
            flat = flat[~np.isnan(flat)]
        if not flat.size:
            continue
        got_low, got_high = flat.min(), flat.max()
        high = highs[name]
        if got_low < low or got_high > high:
            raise _corrupt(
                file, name, episode, f"holds values in [{got_low}, {got_high}], outside the footer's [{low}, {high}]"
            )
        if whole and complete.get(name) and (got_low != low or got_high != high):
            raise _corrupt(
                file, name, episode, f"holds values in [{got_low}, {got_high}], the footer records [{low}, {high}]"
            )


def check_episode_stats(
    file: Path,
    stats: Mapping[str, Mapping[str, Any]],
    values: Mapping[str, npt.NDArray[Any]],
    episode: int,
    source: str,
) -> None:
    """Decoded vectors (T, *shape) against LeRobot's per-episode ``min``/``max``/``mean`` (per dimension)."""
    for name, recorded in stats.items():
        if name not in values:
            continue
        array = values[name]
        flat = array.reshape(array.shape[0], -1).astype(np.float64)
        if not flat.shape[0]:
            continue
        got = {"min": flat.min(axis=0), "max": flat.max(axis=0), "mean": flat.mean(axis=0)}
        scale = np.maximum(np.abs(flat).max(axis=0), 1.0)
        for key in ("min", "max", "mean"):
            if key not in recorded or recorded[key] is None:
                continue
            want = np.asarray(recorded[key], dtype=np.float64).reshape(-1)
            if want.shape != got[key].shape:
                continue  # a differently shaped record (images, nested) says nothing here
            tolerance = MEAN_ATOL + MEAN_RTOL * scale if key == "mean" else _float32_step(scale)
            off = np.flatnonzero(np.abs(got[key] - want) > tolerance)
            if off.size:
                d = int(off[0])
                raise _corrupt(
                    file,
                    name,
                    episode,
                    f"has {key} {got[key][d]!r} in dimension {d}, {source} records {want[d]!r} "
                    f"({off.size} dimension(s) disagree)",
                )


def _float32_step(scale: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Half a float32 step at ``scale``: min/max of float32 data are exact, whatever wrote them down."""
    return np.asarray(np.spacing(scale.astype(np.float32)).astype(np.float64) / 2 + 1e-12)


#: The per-episode statistics compared with the values read.
STAT_KEYS = ("min", "max", "mean")


def recorded_stats_v21(root: Path) -> dict[int, dict[str, Any]]:
    """``meta/episodes_stats.jsonl`` (v2.1): episode index -> feature -> {min, max, mean, …}; empty when absent."""
    from rdstd.formats.lerobot.meta import read_jsonl

    file = root / "meta/episodes_stats.jsonl"
    if not file.is_file():
        return {}
    out: dict[int, dict[str, Any]] = {}
    for row in read_jsonl(file):
        index, stats = row.get("episode_index"), row.get("stats")
        if isinstance(index, int) and isinstance(stats, dict):
            out[index] = stats
    return out


def recorded_stats_v3(root: Path, features: Sequence[str]) -> dict[int, dict[str, Any]]:
    """``stats/<feature>/{min,max,mean}`` of the v3.0 episodes tables: episode index -> feature -> stats."""
    out: dict[int, dict[str, Any]] = {}
    for file in sorted((root / "meta/episodes").glob("*/*.parquet")):
        have = set(pq.read_schema(file).names)
        wanted = [f"stats/{f}/{k}" for f in features for k in STAT_KEYS if f"stats/{f}/{k}" in have]
        if not wanted or "episode_index" not in have:
            continue
        table = pq.read_table(file, columns=["episode_index", *wanted])
        for row in table.to_pylist():
            per: dict[str, Any] = out.setdefault(int(row["episode_index"]), {})
            for column in wanted:
                feature, key = column.removeprefix("stats/").rsplit("/", 1)
                per.setdefault(feature, {})[key] = row[column]
    return out
