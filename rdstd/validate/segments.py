"""Per-episode reductions over a shard's concatenated columns: episodes are segments given by their first row
and length, reduced all at once (``np.ufunc.reduceat``) instead of one numpy call per episode.

Results match per-episode numpy reductions to within rounding (summation order differs: ~1e-15 relative).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.intp]

#: Segment medians partition around at most this many ranks (similar lengths); more distinct ranks: a full sort.
_MAX_PARTITION_KTH = 16


def _ranges(
    ufunc: np.ufunc, values: npt.NDArray[Any], starts: IntArray, stops: IntArray, empty: float
) -> npt.NDArray[Any]:
    """``ufunc`` over rows ``starts[i] : stops[i]`` for each i (``empty`` where a range is empty)."""
    if _tiling(starts, stops, len(values)):
        return ufunc.reduceat(values, starts, axis=0)
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


def _tiling(starts: IntArray, stops: IntArray, rows: int) -> bool:
    """Whether the ranges are non-empty and tile ``rows`` rows in order (a shard's episodes)."""
    if not len(starts) or starts[0] != 0 or stops[-1] != rows:
        return False
    return bool(np.all(stops > starts) and np.all(starts[1:] == stops[:-1]))


def range_sum(values: npt.NDArray[Any], starts: IntArray, stops: IntArray) -> npt.NDArray[Any]:
    """Sum of rows ``starts[i] : stops[i]`` for each i (0 where empty); ranges ascending and not overlapping."""
    return _ranges(np.add, values, starts, stops, 0)


def head_sum(values: npt.NDArray[Any], starts: IntArray, lengths: IntArray, k: int) -> npt.NDArray[Any]:
    """Per segment, the sum of its first ``min(k, length)`` rows (``k`` small: one gather per row)."""
    return head_sums(values, starts, lengths, k)[k]


def tail_sum(values: npt.NDArray[Any], starts: IntArray, lengths: IntArray, k: int) -> npt.NDArray[Any]:
    """Per segment, the sum of its last ``min(k, length)`` rows (``k`` small: one gather per row)."""
    return tail_sums(values, starts, lengths, k)[k]


def head_sums(values: npt.NDArray[Any], starts: IntArray, lengths: IntArray, k: int) -> list[npt.NDArray[Any]]:
    """:func:`head_sum` for 0, 1, ..., ``k`` rows at once (each the previous plus one row: the same additions)."""
    out = [np.zeros((len(starts), *values.shape[1:]), dtype=values.dtype)]
    for j in range(k):
        inside = lengths > j
        out.append(out[-1].copy())
        out[-1][inside] += values[starts[inside] + j]
    return out


def tail_sums(values: npt.NDArray[Any], starts: IntArray, lengths: IntArray, k: int) -> list[npt.NDArray[Any]]:
    """:func:`tail_sum` for 0, 1, ..., ``k`` rows at once (each the previous plus one row: the same additions)."""
    out = [np.zeros((len(starts), *values.shape[1:]), dtype=values.dtype)]
    for j in range(1, k + 1):
        inside = lengths >= j
        out.append(out[-1].copy())
        out[-1][inside] += values[starts[inside] + lengths[inside] - j]
    return out


def lagged_sum(work: npt.NDArray[Any], starts: IntArray, lengths: IntArray, k: int) -> npt.NDArray[Any]:
    """Per segment, the sum of ``work``'s rows ``start : start + length - k``, where ``work`` holds a per-row value
    of lag ``k`` in its first ``total - k`` rows (row t pairs row t of one column with row t + k of another). The
    last k rows of each segment pair across segments: they are zeroed (in place, with the k spare rows at the end),
    then the segments are summed as they tile."""
    if k:
        drop = np.minimum(k, lengths)
        rows = np.repeat(starts + lengths - drop, drop) + (
            np.arange(int(drop.sum())) - np.repeat(np.cumsum(drop) - drop, drop)
        )
        work[rows] = 0
    return range_sum(work, starts, starts + lengths)


def segment_max(values: npt.NDArray[Any], starts: IntArray, lengths: IntArray) -> npt.NDArray[Any]:
    """Maximum of each segment's rows (NaN propagates; -inf for an empty segment)."""
    return _ranges(np.maximum, values, starts, starts + lengths, -np.inf)


def segment_min(values: npt.NDArray[Any], starts: IntArray, lengths: IntArray) -> npt.NDArray[Any]:
    """Minimum of each segment's rows (NaN propagates; inf for an empty segment)."""
    return _ranges(np.minimum, values, starts, starts + lengths, np.inf)


def segment_fmax(values: npt.NDArray[Any], starts: IntArray, lengths: IntArray) -> npt.NDArray[Any]:
    """Maximum of each segment's rows ignoring NaN (NaN when all are; -inf for an empty segment)."""
    return _ranges(np.fmax, values, starts, starts + lengths, -np.inf)


def segment_fmin(values: npt.NDArray[Any], starts: IntArray, lengths: IntArray) -> npt.NDArray[Any]:
    """Minimum of each segment's rows ignoring NaN (NaN when all are; inf for an empty segment)."""
    return _ranges(np.fmin, values, starts, starts + lengths, np.inf)


def segment_any_each(flags: npt.NDArray[np.bool_], starts: IntArray, lengths: IntArray) -> npt.NDArray[np.bool_]:
    """Per segment and column, whether any of its rows is True (``flags``: rows x columns)."""
    return _ranges(np.logical_or, flags, starts, starts + lengths, 0)


def spread(per_segment: npt.NDArray[Any], lengths: IntArray) -> npt.NDArray[Any]:
    """Each segment's value repeated over its rows (a 2-D result dims-major, as the shard's vectors)."""
    if per_segment.ndim != 2:
        return np.repeat(per_segment, lengths, axis=0)
    out = np.empty((int(lengths.sum()), per_segment.shape[1]), dtype=per_segment.dtype, order="F")
    for d in range(per_segment.shape[1]):
        out[:, d] = np.repeat(per_segment[:, d], lengths)
    return out


def apply_each(
    values: npt.NDArray[np.float64], per_segment: npt.NDArray[np.float64], lengths: IntArray, ufunc: np.ufunc
) -> None:
    """In place: ``ufunc(row, per_segment[i])`` for each row of segment i of ``values`` (rows x dims, the segments
    tiling its first rows), e.g. ``np.subtract`` to centre. Segments of one length are broadcast over a view (no
    repeated copy)."""
    rows = int(lengths.sum())
    if len(lengths) and rows == len(values) and values.ndim == 2 and values.flags.f_contiguous:
        width = int(lengths[0])
        if width and bool(np.all(lengths == width)):
            for d in range(values.shape[1]):
                block = values[:, d].reshape(len(lengths), width)
                ufunc(block, per_segment[:, d, None], out=block)
            return
    ufunc(values[:rows], spread(per_segment, lengths), out=values[:rows])


def centred_columns(
    columns: list[npt.NDArray[np.float64]], starts: IntArray, lengths: IntArray, out: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """``columns`` (one value per row each, the segments tiling them) side by side into ``out`` (rows x columns,
    dims-major), each segment less its own mean, in one pass per column; returns the means (segments x columns).
    The same values as copying the columns into ``out`` and :func:`apply_each` ``np.subtract`` of their
    :func:`range_sum` over the counts."""
    stops, count = starts + lengths, np.maximum(lengths, 1)
    means = np.empty((len(starts), len(columns)))
    rows = int(lengths.sum())
    width = int(lengths[0]) if len(lengths) else 0
    even = rows == len(out) and width > 0 and bool(np.all(lengths == width))
    for i, column in enumerate(columns):
        means[:, i] = range_sum(column.reshape(-1, 1), starts, stops)[:, 0] / count
        target = out[:rows, i]
        if even:
            np.subtract(column[:rows].reshape(len(lengths), width), means[:, i, None], out=target.reshape(-1, width))
        else:
            np.subtract(column[:rows], np.repeat(means[:, i], lengths), out=target)
    return means


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


def segment_medians(
    values: npt.NDArray[np.float64],
    starts: IntArray,
    lengths: IntArray,
    scratch: Scratch | None = None,
    *,
    finite: bool = False,
) -> npt.NDArray[np.float64]:
    """``np.median(values[s : s + n], axis=0)`` for each segment (NaN for an empty one or one holding NaN);
    ``scratch``: where the segments are copied to (its buffer "medians"), else a fresh array; ``finite``: the
    caller knows that no value of a segment is NaN (the search for NaN is skipped).

    Segments of one length at a constant spacing (a shard of equal episodes) are copied out of one strided view of
    every column, and partitioned at once; others are gathered padded to a common length, in groups of similar
    lengths (so that padding stays within about the data's own size), one column at a time. Either way partitioned
    around the middle ranks.
    """
    rows = values.reshape(len(values), -1)
    out = np.full((len(starts), rows.shape[1]), np.nan)
    spacing = _even_spacing(starts, lengths, len(rows))
    if spacing is not None:
        # every column's segments at once: columns x segments x rows, read through one strided view
        width, dims = int(lengths[0]), rows.shape[1]
        view = np.lib.stride_tricks.as_strided(
            rows[int(starts[0]) :],
            shape=(dims, len(starts), width),
            strides=(rows.strides[1], spacing * rows.strides[0], rows.strides[0]),
            writeable=False,
        )
        if scratch is None:
            block = np.array(view)
        else:
            block = scratch.vector("medians", view.size).reshape(view.shape)
            block[...] = view
        middles = _middles(block.reshape(dims * len(starts), width), np.tile(lengths, dims), finite)
        out[:] = middles.reshape(dims, len(starts)).T
        return out.reshape(len(starts), *values.shape[1:])
    for group in _similar_lengths(lengths):
        count = lengths[group]
        top = int(count.max())
        if top == 0:
            continue
        # each row's values centred in an odd width between -inf and +inf padding (one more +inf for an even
        # count): every row's upper middle lands at the same rank, (width - 1) // 2, so that one selection serves
        # all rows (numpy selects one rank fast; several ranks 5-7x slower than it sorts)
        width = top | 1
        before = (width - count) // 2
        cols = np.arange(width)[None, :]
        low = cols < before[:, None]
        inside = ~low & (cols < (before + count)[:, None])
        index = np.where(inside, starts[group][:, None] + cols - before[:, None], 0)
        high = ~low & ~inside
        for d in range(rows.shape[1]):
            block = rows[:, d][index]
            block[low] = -np.inf
            block[high] = np.inf
            out[group, d] = _centred_middles(block, count, finite)
    return out.reshape(len(starts), *values.shape[1:])


def _centred_middles(block: npt.NDArray[np.float64], count: IntArray, finite: bool) -> npt.NDArray[np.float64]:
    """Per row of ``block`` (odd width; a row's ``count`` values centred between -inf and +inf padding, the extra
    +inf of an even count last), the median; NaN for a row holding NaN (unless ``finite``) or empty. ``block`` is
    reordered in place."""
    holes = np.zeros(len(block), dtype=bool) if finite else np.isnan(block.max(axis=1))
    middle = (block.shape[1] - 1) // 2
    block.partition(middle, axis=1)
    above = block[:, middle]
    below = above
    if middle > 0:  # an even count's lower middle: the largest entry before the upper one
        below = np.where(count % 2 == 0, block[:, :middle].max(axis=1), above)
    with np.errstate(invalid="ignore"):
        return np.where(holes | (count == 0), np.nan, (below + above) / 2)


def step_deviations(
    values: npt.NDArray[np.float64],
    starts: IntArray,
    lengths: IntArray,
    scratch: Scratch | None = None,
    *,
    finite: bool = False,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    """For segments (``values``: rows x columns) of one length at a constant spacing: per segment and column, of
    the steps ``values[t + 1] - values[t]`` within the segment, the median, the median of the absolute deviations
    from it, and the largest of them; NaN where a step is NaN (``finite``: the caller knows none is). The steps go
    straight from two strided views into one block (``scratch``'s buffer "medians"), whose rows the median's
    partition reorders: the deviations are taken on it as it is (a median and a maximum do not depend on the
    order). None for other segments: the caller takes the steps in place."""
    rows = values.reshape(len(values), -1)
    steps = np.maximum(lengths - 1, 0)
    spacing = _even_spacing(starts, steps, len(rows) - 1)
    if spacing is None:
        return None
    width, dims, segments = int(steps[0]), rows.shape[1], len(starts)

    def view(first: int) -> npt.NDArray[np.float64]:
        return np.lib.stride_tricks.as_strided(
            rows[int(starts[0]) + first :],
            shape=(dims, segments, width),
            strides=(rows.strides[1], spacing * rows.strides[0], rows.strides[0]),
            writeable=False,
        )

    size = dims * segments * width
    block = (np.empty(size) if scratch is None else scratch.vector("medians", size)).reshape(dims, segments, width)
    np.subtract(view(1), view(0), out=block)
    flat, count = block.reshape(dims * segments, width), np.tile(steps, dims)
    center = _middles(flat, count, finite)
    np.abs(np.subtract(flat, center[:, None], out=flat), out=flat)
    largest = flat.max(axis=1)
    deviation = _middles(flat, count, finite)
    shape = (dims, segments)
    return center.reshape(shape).T, deviation.reshape(shape).T, largest.reshape(shape).T


def _even_spacing(starts: IntArray, lengths: IntArray, rows: int) -> int | None:
    """The spacing of segments of one (non-zero) length that start at a constant spacing no shorter than it,
    inside ``rows`` rows; None when they do not."""
    if not len(starts) or lengths[0] <= 0 or not bool(np.all(lengths == lengths[0])):
        return None
    if int(starts[-1]) + int(lengths[0]) > rows or starts[0] < 0:
        return None
    if len(starts) == 1:
        return int(lengths[0])
    gaps = np.diff(starts)
    spacing = int(gaps[0])
    return spacing if spacing >= lengths[0] and bool(np.all(gaps == spacing)) else None


def _middles(block: npt.NDArray[np.float64], count: IntArray, finite: bool = False) -> npt.NDArray[np.float64]:
    """Per row of ``block`` (its first ``count`` entries are the segment's, the rest +inf), the median; NaN for a
    row holding NaN (unless ``finite`` says there is none) or empty. ``block`` is reordered in place."""
    # NaN propagates through max (and outlasts the +inf padding)
    holes = np.zeros(len(block), dtype=bool) if finite else np.isnan(block.max(axis=1))
    low, high = (count - 1) // 2, count // 2
    picks = np.arange(len(block))
    middles = distinct(np.concatenate([low, high]))
    if len(middles) == 2 and middles[1] == middles[0] + 1 and bool(np.all(count == count[0])):
        # rows of one even count: partitioned around the upper middle alone (numpy's fast single-rank selection),
        # the lower middle is then the largest of the entries before it
        upper = int(middles[1])
        block.partition(upper, axis=1)
        below, above = block[:, :upper].max(axis=1), block[:, upper]
    else:
        if len(middles) <= _MAX_PARTITION_KTH:  # the middle ranks land where a sort puts them, in linear time
            block.partition(middles, axis=1)
        else:
            block.sort(axis=1)
        below, above = block[picks, low], block[picks, high]
    with np.errstate(invalid="ignore"):
        middle = (below + above) / 2
    return np.where(holes | (count == 0), np.nan, middle)


def distinct(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The sorted distinct values of ``values`` (flattened), NaN kept once at the end: ``np.unique``'s result.

    ``np.unique`` asks ``np.ma`` whether its input is masked, and the first use of ``np.ma`` in a process imports
    it: 12-20 ms, more than a shard's medians. This sorts and drops repeats without it.
    """
    ordered = np.sort(np.asarray(values).ravel())
    if ordered.size < 2:
        return ordered
    keep = np.empty(ordered.size, dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    if ordered.dtype.kind == "f" and np.isnan(ordered[-1]):  # NaNs sort last: the first of them stays
        first = int(np.searchsorted(ordered, ordered[-1], side="left"))
        keep[first] = True
        keep[first + 1 :] = False
    return ordered[keep]


def _similar_lengths(lengths: IntArray) -> list[IntArray]:
    """Segments (indices) grouped by length, shortest first: a group's padded size stays within twice its
    rows (plus 1024)."""
    order = np.argsort(lengths, kind="stable")
    ordered = lengths[order].tolist()
    groups: list[IntArray] = []
    begin = 0
    while begin < len(order):
        end, total = begin + 1, ordered[begin]
        while end < len(order) and (end - begin + 1) * ordered[end] <= 2 * (total + ordered[end]) + 1024:
            total += ordered[end]
            end += 1
        groups.append(order[begin:end])
        begin = end
    return groups


class Scratch:
    """Reusable float64 work buffers, by name: a check working shard after shard fills the same memory again
    instead of faulting fresh pages in for every shard's temporaries."""

    def __init__(self) -> None:
        self._buffers: dict[str, npt.NDArray[np.float64]] = {}

    def columns(self, name: str, rows: int, dims: int) -> npt.NDArray[np.float64]:
        """An uninitialised ``rows`` x ``dims`` array, dims-major (Fortran order), in the buffer ``name``."""
        size = rows * dims
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size:
            buffer = self._buffers[name] = np.empty(size)
        return buffer[:size].reshape((rows, dims), order="F")

    def vector(self, name: str, size: int) -> npt.NDArray[np.float64]:
        """An uninitialised float64 vector of ``size`` values, in the buffer ``name``."""
        return self.columns(name, size, 1)[:, 0]


def centred_each(
    x: npt.NDArray[np.float64],
    starts: IntArray,
    lengths: IntArray,
    out: npt.NDArray[np.float64] | None = None,
    *,
    negated: bool = False,
) -> npt.NDArray[np.float64]:
    """A copy of x (one value per row; ``-x`` when ``negated``) less each segment's mean (the segments tile x),
    into ``out`` when given (a vector of x's size)."""
    if out is None:
        out = np.empty_like(x)
    if negated:
        np.negative(x, out=out)
    else:
        out[:] = x
    means = range_sum(out.reshape(-1, 1), starts, starts + lengths) / np.maximum(lengths, 1)[:, None]
    apply_each(out.reshape(-1, 1), means, lengths, np.subtract)
    return out


class LaggedMoments:
    """Centred co-moments of ``x`` over rows ``[0, n - k)`` of each segment with ``y`` over rows ``[k, n)`` (x at t
    against y at t + k), for small leads k, from one set of whole-segment sums: each lead costs one product and
    one segment sum. ``x`` and ``y`` (one value per row, segments tiling them) should be centred on each segment's
    mean first (:func:`centred_each`), so that the sums do not cancel."""

    def __init__(
        self,
        x: npt.NDArray[np.float64],
        y: npt.NDArray[np.float64],
        starts: IntArray,
        lengths: IntArray,
        scratch: Scratch | None = None,
        leads: int = 0,
    ):
        """``leads``: the largest lead asked for (the edge sums of every lead up to it are taken at once)."""
        self._x, self._y, self._starts, self._n = x.reshape(-1, 1), y.reshape(-1, 1), starts, lengths
        stops, rows = starts + lengths, len(self._x)
        scratch = scratch or Scratch()  # its buffers "lagged.*" are this object's while it is used
        self._sum_x, self._sum_y = range_sum(self._x, starts, stops), range_sum(self._y, starts, stops)
        self._sq_x = np.multiply(self._x, self._x, out=scratch.columns("lagged.sq_x", rows, 1))
        self._sq_y = np.multiply(self._y, self._y, out=scratch.columns("lagged.sq_y", rows, 1))
        self._ssq_x, self._ssq_y = range_sum(self._sq_x, starts, stops), range_sum(self._sq_y, starts, stops)
        self._work = scratch.columns("lagged.work", rows, 1)
        self._edges: dict[int, tuple[npt.NDArray[np.float64], ...]] = {}
        tables = (
            tail_sums(self._x, starts, lengths, leads),
            tail_sums(self._sq_x, starts, lengths, leads),
            head_sums(self._y, starts, lengths, leads),
            head_sums(self._sq_y, starts, lengths, leads),
        )
        for k in range(leads + 1):
            self._edges[k] = tuple(table[k] for table in tables)

    def _edge_sums(self, k: int) -> tuple[npt.NDArray[np.float64], ...]:
        """Sums of the last k rows of x and x², the first k of y and y², per segment."""
        known = self._edges.get(k)
        if known is not None:
            return known
        starts, n = self._starts, self._n
        return (
            tail_sum(self._x, starts, n, k),
            tail_sum(self._sq_x, starts, n, k),
            head_sum(self._y, starts, n, k),
            head_sum(self._sq_y, starts, n, k),
        )

    def comoments(self, k: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Per segment, (Σx'x', Σy'y', Σx'y') centred on the windows' own means, for lead ``k``."""
        starts, n, total = self._starts, self._n, len(self._x)
        count = np.maximum(n - k, 1)[:, None]
        tail_x, tail_sq_x, head_y, head_sq_y = self._edge_sums(k)
        sum_x = self._sum_x - tail_x
        sq_x = self._ssq_x - tail_sq_x
        sum_y = self._sum_y - head_y
        sq_y = self._ssq_y - head_sq_y
        np.multiply(self._x[: total - k], self._y[k:], out=self._work[: total - k])
        cross = lagged_sum(self._work, starts, n, k)
        short = (n - k <= 0)[:, None]  # an empty window has no moments
        sxx = np.where(short, 0.0, sq_x - sum_x * sum_x / count)
        syy = np.where(short, 0.0, sq_y - sum_y * sum_y / count)
        sxy = np.where(short, 0.0, cross - sum_x * sum_y / count)
        return sxx[:, 0], syy[:, 0], sxy[:, 0]
