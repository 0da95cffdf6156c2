"""Per-feature, per-dimension statistics computed while streaming: count, nonfinite, mean, std, min, max, q01, q99.

Mean and std are exact (Chan et al.'s pairwise update of mean and sum of squared deviations, in float64).
Quantiles come from a uniform reservoir sample of at most :data:`RESERVOIR_ROWS` frames per feature
(Vitter's algorithm R, seeded, so the same input gives the same stats): exact while a dataset has no more
frames than that, otherwise an estimate whose rank error is about sqrt(p(1-p)/n), i.e. ±0.04 percentile
points for q01/q99 at n = 65,536. Quantiles use numpy's default linear interpolation, in float64.

The reservoir is the largest buffer here that grows with a dataset: up to :data:`RESERVOIR_ROWS` × the feature's size
values, taken as rows are sampled (one array allocated at its capacity, rows written in order, never copied to
grow). It holds float32 while every row handed in was float32 or narrower (each value exact in float32: the same
rows are sampled and q01/q99 are the same numbers), else float64: 65,536 × 14 × 4 = 3.7 MB for a 14-d float32
vector at capacity, twice that in float64.

Non-finite values (NaN, ±inf) are left out of every statistic and counted per dimension (``nonfinite``), so
``stats.json`` is valid JSON; an undefined statistic (no finite value) is ``null``.

Statistics are gathered per episode (:meth:`RunningStats.episode`) and merged into the dataset's when the
episode ends (:meth:`RunningStats.merge`, exact: Chan's update) or dropped (:meth:`RunningStats.discard`): an
episode that is abandoned leaves no trace. Rows are folded in fixed blocks of :data:`_POOL_ROWS` per episode
(an episode's last, shorter block is pooled with other episodes'), and reservoir decisions are made row by row
as rows arrive, so the result does not depend on how an episode was split into chunks. They are applied at merge;
an episode with more than :data:`PENDING_ROWS` replacements (one longer than the reservoir) applies them as they
come instead and keeps the rows they replace in a temporary file, put back if the episode is dropped. Memory stays
bounded whatever the dataset's or the episode's size.
"""

from __future__ import annotations

import io
import mmap
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rdstd.errors import InternalError

RESERVOIR_ROWS = 65_536
#: Rows pooled before they are folded into the statistics (a fixed block: chunking does not change results).
_POOL_ROWS = 4096
#: Reservoir replacements an open episode holds in memory until it is merged (an episode that is dropped must leave
#: no trace). Past them, as in an episode longer than the reservoir, they are applied at once and the rows they
#: replace are kept in a temporary file instead, read back only if the episode is dropped.
PENDING_ROWS = 4096
QUANTILES = {"q01": 0.01, "q99": 0.99}

_F64 = npt.NDArray[np.float64]


class _Moments:
    """Count, non-finite count, mean, sum of squared deviations, min and max per dimension."""

    def __init__(self, size: int) -> None:
        self.count = np.zeros(size, dtype=np.int64)
        self.nonfinite = np.zeros(size, dtype=np.int64)
        self.mean = np.zeros(size, dtype=np.float64)
        self.m2 = np.zeros(size, dtype=np.float64)
        self.min = np.full(size, np.inf)
        self.max = np.full(size, -np.inf)

    def fold(self, values: _F64, finite: npt.NDArray[np.bool_] | None = None) -> None:
        """Add a block of rows (non-finite values counted, not used); ``finite``: ``np.isfinite(values)`` when the
        caller has it already."""
        finite = np.isfinite(values) if finite is None else finite
        other = _Moments(values.shape[1])
        if finite.all():  # the usual case: the same sums without the masking passes (bit for bit the same)
            other.count = np.full(values.shape[1], len(values), dtype=np.int64)
            other.nonfinite = np.zeros(values.shape[1], dtype=np.int64)
            other.mean = values.sum(axis=0) / np.maximum(other.count, 1)
            deviations = values - other.mean
            other.m2 = np.square(deviations, out=deviations).sum(axis=0)
            other.min = values.min(axis=0)
            other.max = values.max(axis=0)
        else:
            other.count = finite.sum(axis=0)
            other.nonfinite = len(values) - other.count
            safe = np.where(finite, values, 0.0)
            other.mean = safe.sum(axis=0) / np.maximum(other.count, 1)
            other.m2 = np.where(finite, (safe - other.mean) ** 2, 0.0).sum(axis=0)
            other.min = np.where(finite, values, np.inf).min(axis=0)
            other.max = np.where(finite, values, -np.inf).max(axis=0)
        self.merge(other)

    def merge(self, other: _Moments) -> None:
        """Combine with ``other`` (Chan et al.: exact)."""
        n_a, n_b = self.count, other.count
        n = n_a + n_b
        delta = other.mean - self.mean
        safe_n = np.maximum(n, 1)
        self.mean = np.where(n > 0, self.mean + delta * n_b / safe_n, 0.0)
        self.m2 = self.m2 + other.m2 + delta**2 * n_a * n_b / safe_n
        self.count = n
        self.nonfinite = self.nonfinite + other.nonfinite
        self.min = np.minimum(self.min, other.min)
        self.max = np.maximum(self.max, other.max)

    def as_dict(self) -> dict[str, Any]:
        """``count``, ``nonfinite``, ``mean``, ``std`` (population), ``min``, ``max`` as stats.json lists
        (``None`` where undefined: no finite value)."""
        empty = self.count == 0
        with np.errstate(invalid="ignore"):
            std = np.sqrt(self.m2 / np.maximum(self.count, 1))
        return {
            "count": self.count.tolist(),
            "nonfinite": self.nonfinite.tolist(),
            "mean": _clean(np.where(empty, np.nan, self.mean)),
            "std": _clean(np.where(empty, np.nan, std)),
            "min": _clean(np.where(empty, np.nan, self.min)),
            "max": _clean(np.where(empty, np.nan, self.max)),
        }


class EpisodeStats:
    """The statistics of one episode in progress: :meth:`RunningStats.merge` adds them to the dataset's,
    :meth:`RunningStats.discard` drops them (only one episode is open at a time)."""

    def __init__(self, parent: RunningStats, *, undoable: bool = True) -> None:
        self.size = parent.size
        self._parent = parent
        #: Whether :meth:`RunningStats.discard` may drop it (else replacements are applied as they come, unlogged).
        self.undoable = undoable
        self._moments: _Moments | None = None  # made at the first full block (most episodes never fill one)
        self.rows_seen = parent.rows_seen
        #: The parent's random state before this episode's first draw (restored by discard: draws are undone);
        #: ``None`` while nothing was drawn (datasets below the reservoir's capacity never draw).
        self.rng_state: Mapping[str, Any] | None = None
        self.pending: list[_F64] = []  # rows not yet in full blocks of _POOL_ROWS
        self._pending_rows = 0
        #: Reservoir replacements to apply at merge, in order: (slots, rows), at most the parent's ``pending_rows``
        #: rows; past them they are applied at once and what they replace goes to :attr:`undo`.
        self.writes: list[tuple[npt.NDArray[np.int64], _F64]] = []
        self._written = 0
        #: What the replacements applied during the episode overwrote (None until there are any).
        self.undo: _UndoLog | None = None

    @property
    def moments(self) -> _Moments:
        """The moments of the episode's full blocks of :data:`_POOL_ROWS` rows (its other rows are ``pending``)."""
        if self._moments is None:
            self._moments = _Moments(self.size)
        return self._moments

    @property
    def folded(self) -> bool:
        """Whether any block of the episode was folded into :attr:`moments`."""
        return self._moments is not None

    def update(self, rows: npt.NDArray[Any]) -> None:
        """Add rows (N, size) of the episode."""
        values = np.array(rows, dtype=np.float64).reshape(len(rows), self.size)  # a copy: rows are pooled
        if not len(values):
            return
        if np.asarray(rows).dtype not in _FLOAT32_EXACT:
            self._parent.widen(self.rows_seen)
        self._sample_rows(values)
        self.pending.append(values)
        self._pending_rows += len(values)
        if self._pending_rows >= _POOL_ROWS:
            pooled = np.concatenate(self.pending)
            whole = len(pooled) - len(pooled) % _POOL_ROWS
            for start in range(0, whole, _POOL_ROWS):
                self.moments.fold(pooled[start : start + _POOL_ROWS])
            rest = pooled[whole:]
            self.pending, self._pending_rows = ([rest] if len(rest) else []), len(rest)

    def _sample_rows(self, values: _F64) -> None:
        """Reservoir decisions, row by row in order (so the same whatever the chunking); applied at merge."""
        parent = self._parent
        finite = np.isfinite(values)
        sampled = values if finite.all() else np.where(finite, values, np.nan)
        free = max(parent.capacity - self.rows_seen, 0)
        fill = min(free, len(sampled))
        if fill == len(sampled):  # the reservoir is not full yet (the usual case): every row is kept
            end = self.rows_seen + fill
            if end > len(parent.sample):
                parent.reserve(end)
            parent.sample[self.rows_seen : end] = sampled
            self.rows_seen = end
            return
        if fill:  # free slots past the dataset's filled part: written now, they count only once merged
            parent.reserve(self.rows_seen + fill)
            parent.sample[self.rows_seen : self.rows_seen + fill] = sampled[:fill]
            self.rows_seen += fill
        rest = sampled[fill:]
        if not len(rest):
            return
        if self.rng_state is None:
            self.rng_state = parent.rng.bit_generator.state
        seen = self.rows_seen + np.arange(len(rest))
        slots = np.floor(parent.rng.random(len(rest)) * (seen + 1)).astype(np.int64)
        keep = slots < parent.capacity
        if keep.any():
            # held in the reservoir's type: float32 while every row so far was exact in it (half the memory of a
            # long episode's pending writes; widening later copies them exactly)
            self.writes.append((slots[keep], rest[keep].astype(parent.sample.dtype, copy=False)))
            self._written += int(keep.sum())
            if self.undo is not None or not self.undoable or self._written > parent.pending_rows:
                self._apply_now()
        self.rows_seen += len(rest)

    def _apply_now(self) -> None:
        """Apply the pending replacements to the reservoir, in order, keeping what each overwrites in the undo log
        (an episode longer than the reservoir: its pending rows would otherwise grow with it, up to the reservoir's
        size and more)."""
        if self.undo is None and self.undoable:
            self.undo = _UndoLog(self._parent.spill_dir)
        sample = self._parent.sample
        for slots, rows in self.writes:
            if self.undo is not None:
                self.undo.add(slots, sample[slots])
            sample[slots] = rows
        self.writes, self._written = [], 0

    def close(self) -> None:
        """Let go of the undo log (the episode was merged or discarded)."""
        if self.undo is not None:
            self.undo.close()
            self.undo = None


class RunningStats:
    """Streaming statistics of one vector feature (rows of ``size`` elements)."""

    def __init__(
        self, size: int, *, reservoir_rows: int = RESERVOIR_ROWS, seed: int = 0, pending_rows: int = PENDING_ROWS
    ) -> None:
        self.size = size
        self.capacity = reservoir_rows
        #: Reservoir replacements an open episode holds in memory (see :data:`PENDING_ROWS`).
        self.pending_rows = pending_rows
        #: Where an episode's undo log goes (an anonymous file; None: the system's temporary folder). A dataset
        #: writer sets its own folder, so the output's disk is the one needed, not TMPDIR's.
        self.spill_dir: Path | None = None
        self.moments = _Moments(size)
        self.rows_seen = 0
        self.rng = np.random.default_rng(seed)
        #: The reservoir, one sampled row per row (rows past ``min(rows_seen, capacity)`` are not part of it yet).
        #: Allocated at its capacity on first use and never copied to grow: rows are written in order, so the
        #: memory it takes is the rows written (numpy asks for huge pages for large arrays: a layout of one row per
        #: dimension made the whole capacity resident as soon as each dimension had a value). float32 while every
        #: row added was float32 or a narrower type (each value exact in float32), float64 from the first that
        #: was not.
        self.sample = np.empty((0, size), dtype=np.float32)
        self._pool: list[_F64] = []  # episodes' last rows (fewer than a block each), folded together
        self._pool_rows = 0

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` reservoir rows: the whole capacity at once (memory is taken as rows are written)."""
        if rows > len(self.sample):
            self.sample = _resized(self.sample, self.capacity, self.sample.dtype)

    def widen(self, written: int) -> None:
        """Hold the reservoir in float64 from now on (a row that is not exact in float32 is coming); ``written``:
        the rows seen so far (the first ``min(written, capacity)`` rows hold samples and are copied; the rest were
        never written: copying them read uninitialized memory and touched every page of the new reservoir)."""
        if self.sample.dtype != np.float64:
            held = min(written, len(self.sample))
            self.sample = _resized(self.sample, len(self.sample), np.float64, held)

    @property
    def nonfinite(self) -> npt.NDArray[np.int64]:
        """NaN and ±inf values seen in merged episodes (and left out of the statistics), per dimension."""
        pooled = sum((np.count_nonzero(~np.isfinite(p), axis=0) for p in self._pool), np.zeros(self.size, np.int64))
        return self.moments.nonfinite + pooled

    def episode(self, *, undoable: bool = True) -> EpisodeStats:
        """An accumulator for the next episode (nothing changes here until :meth:`merge`, or :meth:`discard` undoes
        it; ``undoable=False``: one that is always merged, whose reservoir replacements are applied as they come)."""
        return EpisodeStats(self, undoable=undoable)

    def merge(self, episode: EpisodeStats) -> None:
        """Add a finished episode's statistics (it must come from :meth:`episode`, the one open episode)."""
        if episode.folded and (episode.moments.count.any() or episode.moments.nonfinite.any()):
            self.moments.merge(episode.moments)
        if episode.pending:
            self._pool.extend(episode.pending)  # short episodes are folded together: cheaper per row
            self._pool_rows += sum(len(p) for p in episode.pending)
            if self._pool_rows >= _POOL_ROWS:
                self._fold_pool()
        for slots, rows in episode.writes:
            self.sample[slots] = rows
        episode.close()  # its replacements applied already stay: they are the episode's
        self.rows_seen = episode.rows_seen

    def discard(self, episode: EpisodeStats) -> None:
        """Drop an episode's statistics: the dataset's are as if it never came (random draws included)."""
        if not episode.undoable:
            raise InternalError(
                "an episode's statistics made with undoable=False were discarded",
                hint="a bug in rdstd: re-run with --debug and report the traceback",
                situation="statistics-not-undoable",
            )
        if episode.rng_state is not None:
            self.rng.bit_generator.state = episode.rng_state
        if episode.undo is not None:
            episode.undo.restore(self.sample)
        episode.close()

    def _fold_pool(self) -> None:
        if self._pool:
            self.moments.fold(np.concatenate(self._pool))
            self._pool, self._pool_rows = [], 0

    def update(self, rows: npt.NDArray[Any]) -> None:
        """Add a batch of rows (N, size) at once."""
        episode = self.episode(undoable=False)
        episode.update(rows)
        self.merge(episode)

    def as_dict(self) -> dict[str, Any]:
        """The statistics as JSON-ready lists, one value per dimension (``None`` where undefined)."""
        self._fold_pool()
        m = self.moments
        columns = self.sample[: min(self.rows_seen, self.capacity)].T
        qs = _column_quantiles(columns, list(QUANTILES.values()))
        out = m.as_dict()
        for i, name in enumerate(QUANTILES):
            out[name] = _clean(qs[i])
        out["quantiles_exact"] = self.rows_seen <= self.capacity
        return out


class _UndoLog:
    """The reservoir rows an open episode's replacements overwrote, in an anonymous temporary file: each record the
    slots (int64) and their rows before (float64: exact for a float32 reservoir too), in the order applied;
    :meth:`restore` puts them back last first. In memory: one row count per record."""

    def __init__(self, folder: Path | None) -> None:
        self._file = tempfile.TemporaryFile(prefix="rdstd-reservoir-undo-", dir=folder)  # noqa: SIM115 - close()
        self._records: list[int] = []

    def add(self, slots: npt.NDArray[np.int64], before: npt.NDArray[Any]) -> None:
        """Log that ``slots`` held ``before`` (rows of the reservoir) until now."""
        self._file.write(np.ascontiguousarray(slots, dtype=np.int64).tobytes())
        self._file.write(np.ascontiguousarray(before, dtype=np.float64).tobytes())
        self._records.append(len(slots))

    def restore(self, sample: npt.NDArray[Any]) -> None:
        """Put every logged row back into ``sample``, the last logged first (what the reservoir was before)."""
        size = sample.shape[1]
        self._file.flush()
        fd = self._file.fileno()
        end = sum(n * 8 * (1 + size) for n in self._records)
        for n in reversed(self._records):
            end -= n * 8 * (1 + size)
            data = os.pread(fd, n * 8 * (1 + size), end)
            if len(data) != n * 8 * (1 + size):
                raise InternalError(
                    f"the reservoir's undo log ended early ({len(data)} bytes at {end})",
                    hint="its temporary file in the output's building folder was cut: check that disk, and report "
                    "it with --debug's traceback if it is fine",
                    situation="statistics-undo-log-short",
                )
            slots = np.frombuffer(data, dtype=np.int64, count=n)
            sample[slots] = np.frombuffer(data, dtype=np.float64, offset=n * 8).reshape(n, size)

    def close(self) -> None:
        """Delete the log."""
        self._file.close()


#: Reservoirs at least this large get a mapping of their own (see :func:`_resized`).
_MAPPED_BYTES = 1 << 20
#: Row types whose every value a float32 holds exactly (the reservoir stays float32 while rows are of these).
_FLOAT32_EXACT = frozenset(np.dtype(t) for t in (np.float32, np.float16, np.int8, np.uint8, np.int16, np.uint16, bool))


def _resized(
    sample: npt.NDArray[np.floating[Any]], rows: int, dtype: npt.DTypeLike, keep: int | None = None
) -> npt.NDArray[Any]:
    """``sample`` with ``rows`` rows of ``dtype``, its first ``keep`` rows (all unless given) copied over; the new
    rows are not touched, so they take no memory until written. A large one is an anonymous mapping of its own
    rather than glibc heap: freeing a reservoir (each batch unit's writer has one) would otherwise raise glibc's
    mmap threshold to its size, so the next unit's came from the heap and stayed resident there after it was
    freed (heap fragmentation, #10)."""
    shape = (rows, sample.shape[1])
    nbytes = rows * sample.shape[1] * np.dtype(dtype).itemsize
    if nbytes >= _MAPPED_BYTES:  # its own mapping: untouched pages take nothing, and freeing it gives it all back
        out = np.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype).reshape(shape)
    else:
        out = np.empty(shape, dtype=dtype)
    held = min(len(sample), rows, len(sample) if keep is None else keep)
    out[:held] = sample[:held]
    return out


def _column_quantiles(columns: npt.NDArray[np.floating[Any]], qs: list[float]) -> _F64:
    """``np.nanquantile(columns, qs, axis=1)`` (NaN for a dimension with no value), the same numbers faster:
    ``columns`` holds one row of samples per dimension; the result is (len(qs), dimensions).

    Rows without NaN (the usual case) are sorted (contiguous rows: fast) and read by :func:`sorted_quantiles`;
    ``nanquantile`` treats every row on its own in Python (``apply_along_axis``), and ``np.quantile``'s partition
    of a wide sample with many equal values (a per-episode constant such as a language embedding) took ~2-10×
    the sort.
    """
    size, n = columns.shape
    out = np.full((len(qs), size), np.nan)
    if not n:
        return out
    has_nan = np.isnan(columns).any(axis=1)
    clean = np.flatnonzero(~has_nan)
    if len(clean):
        rows = columns[clean] if len(clean) < size else columns.copy()
        rows.sort(axis=1)  # in the reservoir's type: the same order, and float32 sorts in half the memory
        out[:, clean] = sorted_quantiles(rows, qs).T
    dirty = np.flatnonzero(has_nan)
    if len(dirty):
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column has no quantile: null
            out[:, dirty] = np.nanquantile(columns[dirty].astype(np.float64), qs, axis=1)
    return out


def sorted_quantiles(rows: npt.NDArray[np.floating[Any]], qs: list[float]) -> _F64:
    """``np.quantile(rows, qs, axis=1).T`` of rows each sorted ascending (finite values), bit for bit: numpy's default
    ``linear`` method (virtual index ``(n - 1) q``, the last value at and past ``n - 1``) and its interpolation,
    which goes from the upper neighbour when the weight is at least 0.5. Returns (rows, len(qs)), computed in
    float64 whatever the rows' type (float32 rows give the quantiles of their values as float64)."""
    n = rows.shape[1]
    out = np.empty((rows.shape[0], len(qs)))
    for j, q in enumerate(qs):
        virtual = (n - 1) * np.float64(q)
        below = int(np.floor(virtual))
        if virtual >= n - 1:
            out[:, j] = rows[:, -1]
            continue
        gamma = virtual - below
        a, b = rows[:, below].astype(np.float64), rows[:, below + 1].astype(np.float64)
        diff = b - a
        out[:, j] = b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma
    return out


def _clean(values: _F64) -> list[float | None]:
    """JSON has no NaN or infinity: an undefined statistic is null."""
    return [float(v) if np.isfinite(v) else None for v in values]


def merge_moments(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Exact moments of the union of datasets from their ``stats.json`` entries of one feature (Chan's update).

    Each part gives ``count``, ``nonfinite``, ``mean``, ``std`` (population), ``min`` and ``max`` per dimension
    (``None`` where undefined); the result has the same keys. Quantiles cannot be merged this way: recompute them.
    """
    total: _Moments | None = None
    for part in parts:
        count = np.asarray(part["count"], dtype=np.int64)
        moments = _Moments(len(count))
        moments.count = count
        moments.nonfinite = np.asarray(part.get("nonfinite") or np.zeros(len(count)), dtype=np.int64)
        moments.mean = np.where(count > 0, _filled(part["mean"], 0.0), 0.0)
        moments.m2 = np.where(count > 0, _filled(part["std"], 0.0) ** 2 * count, 0.0)
        moments.min = np.where(count > 0, _filled(part["min"], np.inf), np.inf)
        moments.max = np.where(count > 0, _filled(part["max"], -np.inf), -np.inf)
        if total is None:
            total = moments
        else:
            total.merge(moments)
    if total is None:
        raise InternalError(
            "merge_moments needs at least one part",
            hint="a bug in rdstd: re-run with --debug and report the traceback",
            situation="moments-empty",
        )
    return total.as_dict()


def _filled(values: list[float | None], empty: float) -> _F64:
    """A stats.json list as floats, ``None`` (undefined) as ``empty``."""
    return np.array([empty if v is None else v for v in values], dtype=np.float64)


# -- mergeable partial statistics (batch conversion) ------------------------------------------------------------

#: Values per level of :class:`QuantileSketch` before it is compacted (the sketch's accuracy knob).
SKETCH_K = 4096


class QuantileSketch:
    """A mergeable, deterministic quantile sketch of one dimension (a KLL-style compactor hierarchy, no randomness).

    Level ``h`` holds values standing for ``2**h`` inputs each. A level that reaches :data:`SKETCH_K` values is
    sorted and halved: every other value goes up one level (the offset alternates per level, deterministically),
    an odd last one stays. Merging two sketches concatenates their levels and compacts again. The same inputs in
    the same order, merged in the same order, give the same sketch; nothing depends on timing or worker count.

    Error: exact while at most ``k`` values have been seen (no compaction; numpy's linear interpolation). After
    that, one compaction at level ``h`` moves any rank by at most ``2**h`` and level ``h`` is compacted at most
    ``n / (k 2**h)`` times, so the rank error is at most ``H n / k`` with ``H = ceil(log2(n / k)) + 1`` levels:
    a quantile is within ``H / k`` of the asked rank (k = 4096: 0.05 percentile points at a million values,
    0.34 at a billion; in practice far less, since the alternating offsets cancel).
    """

    def __init__(self, k: int = SKETCH_K) -> None:
        self.k = k
        self.levels: list[_F64] = [np.zeros(0)]
        self.flips: list[int] = [0]

    @property
    def count(self) -> int:
        """How many values the sketch stands for."""
        return sum(len(level) << h for h, level in enumerate(self.levels))

    @property
    def exact(self) -> bool:
        """Whether every value is still held (no compaction yet)."""
        return all(not len(level) for level in self.levels[1:])

    def add(self, values: _F64) -> None:
        """Add finite values (the caller leaves out NaN and ±inf)."""
        if len(values):
            self.levels[0] = np.concatenate([self.levels[0], values])
            _compact(self.levels, self.flips, self.k)

    def merge(self, other: QuantileSketch) -> None:
        """Add everything ``other`` stands for."""
        _merge(self.levels, self.flips, other.levels, other.flips, self.k)

    def quantiles(self, qs: list[float]) -> _F64:
        """The values at fractions ``qs`` (NaN when the sketch is empty)."""
        if self.exact:
            values = self.levels[0]
            return np.quantile(values, qs) if len(values) else np.full(len(qs), np.nan)
        values = np.concatenate(self.levels)
        weights = np.concatenate([np.full(len(level), float(1 << h)) for h, level in enumerate(self.levels)])
        order = np.argsort(values, kind="stable")
        values, weights = values[order], weights[order]
        centers = np.cumsum(weights) - weights / 2
        found: _F64 = np.interp(np.asarray(qs) * weights.sum(), centers, values)
        return found

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (exact: floats round-trip)."""
        return {"k": self.k, "levels": [level.tolist() for level in self.levels], "flips": list(self.flips)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QuantileSketch:
        """The sketch :meth:`to_json` wrote."""
        sketch = cls(int(data["k"]))
        sketch.levels = [np.asarray(level, dtype=np.float64) for level in data["levels"]]
        sketch.flips = [int(f) for f in data["flips"]]
        return sketch


def _merge(levels: list[_F64], flips: list[int], others: list[_F64], other_flips: list[int], k: int) -> None:
    """Add a sketch's ``others`` levels (and their flip counts) to ``levels``, then compact (see
    :class:`QuantileSketch`; values along the last axis)."""
    while len(levels) < len(others):
        levels.append(np.zeros((*levels[0].shape[:-1], 0)))
        flips.append(0)
    for h, level in enumerate(others):
        if level.shape[-1]:
            levels[h] = np.concatenate([levels[h], level], axis=-1)
        flips[h] += other_flips[h]
    _compact(levels, flips, k)


def _compact(levels: list[_F64], flips: list[int], k: int) -> None:
    """Halve every level that holds ``k`` values or more, lowest first (see :class:`QuantileSketch`). Values lie along
    the last axis: a 2-D level is one row of values per dimension, each row compacted as a sketch of its own would
    be (they all hold as many values, so they compact at the same time)."""
    h = 0
    while h < len(levels):
        level = levels[h]
        n = level.shape[-1]
        if n >= k:
            ordered = np.sort(level, axis=-1)
            keep = ordered[..., n - 1 :] if n % 2 else ordered[..., :0]
            even = ordered[..., : n - keep.shape[-1]]
            up = even[..., flips[h] % 2 :: 2]
            flips[h] += 1
            levels[h] = keep.copy()  # a view would keep the whole sorted level alive (32 KB a row at k = 4096)
            if h + 1 == len(levels):
                levels.append(np.zeros((*level.shape[:-1], 0)))
                flips.append(0)
            levels[h + 1] = np.concatenate([levels[h + 1], up], axis=-1)
        h += 1


class _Columns:
    """The :class:`QuantileSketch` of every dimension of a feature held as one, while every dimension has been given
    the same number of values (no NaN or ±inf yet: the usual case): level ``h`` is one array of shape (dimensions,
    values), compacted and merged along its rows at once. Each row is exactly the sketch its dimension would have
    on its own (same values, same compaction points, same flips), so :meth:`split` gives the very sketches; a
    feature of 512 dimensions then costs one numpy call per update instead of 512."""

    def __init__(self, size: int, k: int) -> None:
        self.k = k
        self.levels: list[_F64] = [np.zeros((size, 0))]
        self.flips: list[int] = [0]

    def add(self, columns: _F64) -> None:
        """Add values (dimensions, N), all finite."""
        if columns.shape[-1]:
            self.levels[0] = np.concatenate([self.levels[0], columns], axis=-1)
            _compact(self.levels, self.flips, self.k)

    def merge(self, other: _Columns) -> None:
        """Add everything ``other`` stands for."""
        _merge(self.levels, self.flips, other.levels, other.flips, self.k)

    def split(self) -> list[QuantileSketch]:
        """One sketch per dimension."""
        sketches = []
        for d in range(self.levels[0].shape[0]):
            sketch = QuantileSketch(self.k)
            sketch.levels = [level[d].copy() for level in self.levels]
            sketch.flips = list(self.flips)
            sketches.append(sketch)
        return sketches

    @classmethod
    def read(
        cls,
        ks: npt.NDArray[np.int64],
        depths: npt.NDArray[np.int64],
        lengths: npt.NDArray[np.int64],
        flips: npt.NDArray[np.int64],
        flip_counts: npt.NDArray[np.int64],
        values: _F64,
    ) -> _Columns | None:
        """The sketches of a journal's arrays (see :func:`partials_to_bytes`) as one, when every dimension's has the
        same k, levels, level lengths and flips; else None."""
        size = len(ks)
        if not size or (ks != ks[0]).any() or (depths != depths[0]).any() or (flip_counts != depths[0]).any():
            return None
        depth = int(depths[0])
        if len(lengths) != size * depth or len(flips) != size * depth:
            return None
        shape, flip_rows = lengths.reshape(size, depth), flips.reshape(size, -1)
        if (shape != shape[0]).any() or (flip_rows != flip_rows[0]).any():
            return None
        columns = cls(size, int(ks[0]))
        rows = values.reshape(size, -1)
        cuts = np.cumsum(shape[0])[:-1].tolist()
        columns.levels = [level.copy() for level in np.split(rows, cuts, axis=1)]
        columns.flips = [int(f) for f in flip_rows[0]]
        return columns


class PartialStats:
    """Statistics of one vector feature over part of a dataset, mergeable exactly into the whole.

    Count, non-finite count, mean and sum of squared deviations (Chan et al.: exact), min and max per dimension,
    and a :class:`QuantileSketch` per dimension for q01/q99. Batch conversion keeps one per feature and work unit
    (episodes merged in order when they finish, dropped when they fail) and merges the units' in unit order, so
    ``stats.json`` is the same whatever the number of workers or the executor. :meth:`as_dict` has the same keys as
    :meth:`RunningStats.as_dict`; ``quantiles_exact`` says whether no sketch was compacted.
    """

    def __init__(self, size: int, *, k: int = SKETCH_K) -> None:
        self.size = size
        self.moments = _Moments(size)
        #: Every dimension's sketch as one, while they have all seen the same values count (see :class:`_Columns`);
        #: None once they are apart (:attr:`sketches`).
        self._columns: _Columns | None = _Columns(size, k)
        self._sketches: list[QuantileSketch] = []

    @property
    def sketches(self) -> list[QuantileSketch]:
        """One :class:`QuantileSketch` per dimension (from here on they are kept apart)."""
        if self._columns is not None:
            self._sketches, self._columns = self._columns.split(), None
        return self._sketches

    @sketches.setter
    def sketches(self, sketches: list[QuantileSketch]) -> None:
        self._sketches, self._columns = sketches, None

    def update(self, rows: npt.NDArray[Any]) -> None:
        """Add rows (N, size)."""
        values = np.asarray(rows, dtype=np.float64).reshape(len(rows), self.size)
        if not len(values):
            return
        finite = np.isfinite(values)
        self.moments.fold(values, finite)
        if self._columns is not None and finite.all():  # every dimension gets as many values: one sketch for all
            self._columns.add(values.T)
            return
        for d, sketch in enumerate(self.sketches):
            sketch.add(values[finite[:, d], d])

    def merge(self, other: PartialStats) -> None:
        """Add ``other``'s statistics (exact for the moments; the sketches merge as :class:`QuantileSketch` says)."""
        self.moments.merge(other.moments)
        if self._columns is not None and other._columns is not None:
            self._columns.merge(other._columns)
            return
        for mine, theirs in zip(self.sketches, other.sketches, strict=True):
            mine.merge(theirs)

    def as_dict(self) -> dict[str, Any]:
        """The statistics as ``stats.json`` holds them (``None`` where undefined)."""
        qs = np.stack([s.quantiles(list(QUANTILES.values())) for s in self.sketches], axis=1)
        out = self.moments.as_dict()
        for i, name in enumerate(QUANTILES):
            out[name] = _clean(qs[i])
        out["quantiles_exact"] = all(s.exact for s in self.sketches)
        return out

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form for a journal (floats round-trip; ±inf as JSON's Infinity)."""
        m = self.moments
        moments = {name: getattr(m, name).tolist() for name in ("count", "nonfinite", "mean", "m2", "min", "max")}
        return {"size": self.size, "moments": moments, "sketches": [s.to_json() for s in self.sketches]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PartialStats:
        """The statistics :meth:`to_json` wrote."""
        stats = cls(int(data["size"]))
        for name, values in data["moments"].items():
            dtype = np.int64 if name in ("count", "nonfinite") else np.float64
            setattr(stats.moments, name, np.asarray(values, dtype=dtype))
        stats.sketches = [QuantileSketch.from_json(s) for s in data["sketches"]]
        return stats


_MOMENTS = ("count", "nonfinite", "mean", "m2", "min", "max")


def partials_to_bytes(stats: Mapping[str, PartialStats]) -> bytes:
    """Per-feature :class:`PartialStats` as one ``.npz`` (numbers exact, no pickles; much faster to write and read
    than :meth:`PartialStats.to_json` for the sketches of wide features): what a batch unit's journal keeps."""
    arrays: dict[str, npt.NDArray[Any]] = {"features": np.array(list(stats), dtype=np.str_)}
    for i, part in enumerate(stats.values()):
        for name in _MOMENTS:
            arrays[f"{i}.{name}"] = getattr(part.moments, name)
        columns = part._columns
        if columns is not None:  # the same arrays as its sketches apart would give, made without them
            size, depth = part.size, len(columns.levels)
            arrays[f"{i}.k"] = np.full(size, columns.k, dtype=np.int64)
            arrays[f"{i}.levels"] = np.full(size, depth, dtype=np.int64)
            arrays[f"{i}.lengths"] = np.tile([level.shape[-1] for level in columns.levels], size).astype(np.int64)
            arrays[f"{i}.flips"] = np.tile(columns.flips, size).astype(np.int64)
            arrays[f"{i}.flip_counts"] = np.full(size, len(columns.flips), dtype=np.int64)
            arrays[f"{i}.values"] = np.concatenate(columns.levels, axis=-1).reshape(-1)  # dimension by dimension
            continue
        sketches = part.sketches
        arrays[f"{i}.k"] = np.array([s.k for s in sketches], dtype=np.int64)
        arrays[f"{i}.levels"] = np.array([len(s.levels) for s in sketches], dtype=np.int64)
        arrays[f"{i}.lengths"] = np.array([len(level) for s in sketches for level in s.levels], dtype=np.int64)
        arrays[f"{i}.flips"] = np.array([f for s in sketches for f in s.flips], dtype=np.int64)
        arrays[f"{i}.flip_counts"] = np.array([len(s.flips) for s in sketches], dtype=np.int64)
        values = [level for s in sketches for level in s.levels]
        arrays[f"{i}.values"] = np.concatenate(values) if values else np.zeros(0)
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def partials_from_bytes(data: bytes) -> dict[str, PartialStats]:
    """The statistics :func:`partials_to_bytes` wrote."""
    out: dict[str, PartialStats] = {}
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        for i, key in enumerate(npz["features"].tolist()):
            mean = npz[f"{i}.mean"]
            part = PartialStats(len(mean))
            for name in _MOMENTS:
                setattr(part.moments, name, npz[f"{i}.{name}"])
            lengths, values = npz[f"{i}.lengths"], npz[f"{i}.values"]
            columns = _Columns.read(
                npz[f"{i}.k"], npz[f"{i}.levels"], lengths, npz[f"{i}.flips"], npz[f"{i}.flip_counts"], values
            )
            if columns is not None:
                part._columns = columns
                out[str(key)] = part
                continue
            flips, flip_counts = npz[f"{i}.flips"].tolist(), npz[f"{i}.flip_counts"].tolist()
            ends = np.cumsum(lengths)
            level, flip = 0, 0
            sketches = []
            for d, (k, count) in enumerate(zip(npz[f"{i}.k"].tolist(), npz[f"{i}.levels"].tolist(), strict=True)):
                sketch = QuantileSketch(int(k))
                sketch.levels = [
                    values[int(ends[j] - lengths[j]) : int(ends[j])].copy() for j in range(level, level + count)
                ]
                sketch.flips = [int(f) for f in flips[flip : flip + flip_counts[d]]]
                level, flip = level + count, flip + flip_counts[d]
                sketches.append(sketch)
            part.sketches = sketches
            out[str(key)] = part
    return out
