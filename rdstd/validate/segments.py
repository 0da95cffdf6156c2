"""Per-episode reductions over a shard's concatenated columns: episodes are segments given by their first row
and length, reduced all at once (``np.ufunc.reduceat``) instead of one numpy call per episode.

Results match per-episode numpy reductions to within rounding (summation order differs: ~1e-15 relative).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.intp]


def _ranges(
    ufunc: np.ufunc, values: npt.NDArray[Any], starts: IntArray, stops: IntArray, empty: float
) -> npt.NDArray[Any]:
    """``ufunc`` over rows ``starts[i] : stops[i]`` for each i (``empty`` where a range is empty)."""
    out = np.full((len(starts), *values.shape[1:]), empty, dtype=values.dtype)
    full = stops > starts
    if not full.any() or not len(values):
        return out
    bounds = np.empty(2 * int(full.sum()), dtype=np.intp)
    bounds[0::2], bounds[1::2] = starts[full], stops[full]
    if bounds[-1] >= len(values):  # the last range runs to the end: reduceat reduces the last index to the end
        bounds = bounds[:-1]
    out[full] = ufunc.reduceat(values, bounds, axis=0)[0::2]
    return out


def range_sum(values: npt.NDArray[Any], starts: IntArray, stops: IntArray) -> npt.NDArray[Any]:
    """Sum of rows ``starts[i] : stops[i]`` for each i (0 where empty); ranges ascending and not overlapping."""
    return _ranges(np.add, values, starts, stops, 0)


def segment_max(values: npt.NDArray[Any], starts: IntArray, lengths: IntArray) -> npt.NDArray[Any]:
    """Maximum of each segment's rows (NaN propagates; -inf for an empty segment)."""
    return _ranges(np.maximum, values, starts, starts + lengths, -np.inf)


def segment_min(values: npt.NDArray[Any], starts: IntArray, lengths: IntArray) -> npt.NDArray[Any]:
    """Minimum of each segment's rows (NaN propagates; inf for an empty segment)."""
    return _ranges(np.minimum, values, starts, starts + lengths, np.inf)


def spread(per_segment: npt.NDArray[Any], lengths: IntArray) -> npt.NDArray[Any]:
    """Each segment's value repeated over its rows."""
    return np.repeat(per_segment, lengths, axis=0)


def medians(values: npt.NDArray[np.float64], keep: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """Per row, ``np.median`` of the entries ``keep`` marks (NaN for a row with none)."""
    ordered = np.sort(np.where(keep, values, np.inf), axis=1)
    count = keep.sum(axis=1)
    rows = np.arange(len(values))
    low = ordered[rows, np.maximum(count - 1, 0) // 2]
    high = ordered[rows, count // 2]
    with np.errstate(invalid="ignore"):
        out = (low + high) / 2
    return np.where(count > 0, out, np.nan)


def segment_any(rows: Any, starts: IntArray, lengths: IntArray) -> npt.NDArray[np.bool_]:
    """Per segment, whether any of its rows is True (``rows``: one bool per row)."""
    flags = np.asarray(rows, dtype=bool).reshape(-1, 1)
    return _ranges(np.logical_or, flags, starts, starts + lengths, 0)[:, 0]


def segment_medians(values: npt.NDArray[np.float64], starts: IntArray, lengths: IntArray) -> npt.NDArray[np.float64]:
    """``np.median(values[s : s + n], axis=0)`` for each segment (NaN for an empty one or one holding NaN).

    Segments are sorted padded to a common length, in groups of similar lengths (so that padding stays within
    about the data's own size).
    """
    rows = values.reshape(len(values), -1)
    out = np.full((len(starts), rows.shape[1]), np.nan)
    order = np.argsort(lengths, kind="stable")
    begin = 0
    while begin < len(order):
        end = begin + 1
        while (
            end < len(order)
            and (end - begin + 1) * lengths[order[end]] <= 2 * lengths[order[begin : end + 1]].sum() + 1024
        ):
            end += 1
        group = order[begin:end]
        begin = end
        width = int(lengths[group].max())
        if width == 0:
            continue
        offsets = np.arange(width)
        inside = offsets[None, :] < lengths[group][:, None]
        index = np.where(inside, starts[group][:, None] + offsets[None, :], 0)
        block = np.where(inside[:, :, None], rows[index], np.inf)
        holes = np.isnan(block).any(axis=1)
        block.sort(axis=1)
        count = lengths[group][:, None]
        low = np.take_along_axis(
            block, np.broadcast_to(((count - 1) // 2)[:, :, None], (len(group), 1, rows.shape[1])), axis=1
        )[:, 0]
        high = np.take_along_axis(
            block, np.broadcast_to((count // 2)[:, :, None], (len(group), 1, rows.shape[1])), axis=1
        )[:, 0]
        with np.errstate(invalid="ignore"):
            middle = (low + high) / 2
        out[group] = np.where(holes | (count == 0), np.nan, middle)
    return out.reshape(len(starts), *values.shape[1:])


def centred(
    x: npt.NDArray[np.float64], starts: IntArray, lengths: IntArray, count: IntArray
) -> npt.NDArray[np.float64]:
    """x less the mean of the first ``count`` rows of each segment (segment e's rows start at ``starts[e]``, and
    ``lengths`` tile x or run past its end); rows past a segment's count are offset too but meant to be ignored."""
    used = np.maximum(count, 0)
    means = range_sum(x, starts, starts + used) / np.maximum(used, 1).reshape(-1, *([1] * (x.ndim - 1)))
    return x - spread(means, lengths)[: len(x)]  # type: ignore[no-any-return]


def comoments(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], starts: IntArray, lengths: IntArray, count: IntArray
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per segment, the centred sums of squares and products (Σx'x', Σy'y', Σx'y') of its first ``count`` rows."""
    stops = starts + np.maximum(count, 0)
    xc, yc = centred(x, starts, lengths, count), centred(y, starts, lengths, count)
    return range_sum(xc * xc, starts, stops), range_sum(yc * yc, starts, stops), range_sum(xc * yc, starts, stops)
