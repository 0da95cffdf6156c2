"""Alignment a window of master frames at a time: what each window reads of the bag's single-pass spills.

An episode's master timeline is aligned :data:`WINDOW_FRAMES` frames at a time (``reader.Aligner.episode``). For
a window ``[m0, m1]`` each stream needs only its samples from the last one at or before ``m0`` to the first one
after ``m1`` (:class:`StreamTimes`), and each TF edge only its samples from the last one before ``m0`` to the first
one after ``m1`` (:class:`TfWindows`): with those, sampling and lookups give exactly what they give over the whole
episode (same brackets, same extrapolation), so nothing per message of the whole episode is held in memory.

What stays per episode: a stream's first times per :data:`BLOCK` messages (8 bytes per 16,384 messages), a TF
edge's time range per block of :data:`~.spill.ROWS_AT_ONCE` samples, the static edges' poses. A stream whose times
are not in order (rare: a disordered clock) is sorted whole, as before; that is the one case that holds 16 bytes
per message of the episode while it is aligned.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rdstd.formats.rosbag.spill import TimeLog, TransformSpill
from rdstd.streams.tf import Edge, TransformBuffer, parent_conflict

#: Master frames aligned at once.
WINDOW_FRAMES = 4096
#: Stream times read at once (and the spacing of the per-stream index of first times).
BLOCK = 16384

I64 = npt.NDArray[np.int64]


class StreamTimes:
    """One stream's times on one clock over message positions ``[lo, hi)`` in time order, read a window at a time.

    One pass over the times checks their order and finds the largest gap; times already in order (as recorded,
    almost always) are then read back per window from the :class:`~.spill.TimeLog`, found by the first time of each
    :data:`BLOCK`; times out of order are sorted whole (stable) and kept while the episode is aligned.
    """

    def __init__(self, log: TimeLog, lo: int, hi: int) -> None:
        self.log, self.lo, self.count = log, lo, hi - lo
        firsts: list[int] = []
        in_order, gap, last = True, None, None
        for start in range(lo, hi, BLOCK):
            block = log.range(start, min(hi, start + BLOCK))
            steps = np.diff(block)
            if last is not None:
                steps = np.concatenate([[int(block[0]) - last], steps])
            if steps.size:
                in_order = in_order and bool(np.all(steps >= 0))
                gap = int(steps.max()) if gap is None else max(gap, int(steps.max()))
            firsts.append(int(block[0]))
            last = int(block[-1])
        #: Positions in time order of the stream's messages (None: already in order) and the sorted times.
        self.local: I64 | None = None
        self.sorted: I64 | None = None
        if not in_order:
            times = log.range(lo, hi)
            self.local = np.argsort(times, kind="stable")
            self.sorted = times[self.local]
            gap = int(np.diff(self.sorted).max())
        self.firsts = np.array(firsts, dtype=np.int64)
        self.largest_gap_ns = gap
        first = self._slice(0, 1) if self.count else None
        final = self._slice(self.count - 1, self.count) if self.count else None
        #: The earliest and latest time (None: no message).
        self.min = int(first[0]) if first is not None else None
        self.max = int(final[0]) if final is not None else None

    def _slice(self, start: int, stop: int) -> I64:
        """Times ``[start, stop)`` in time order."""
        if self.sorted is not None:
            return self.sorted[start:stop]
        return self.log.range(self.lo + start, self.lo + stop)

    def _after(self, t: int) -> int:
        """How many times are ``<= t`` (``searchsorted(times, t, side="right")`` over all of them)."""
        if self.sorted is not None:
            return int(np.searchsorted(self.sorted, t, side="right"))
        k = int(np.searchsorted(self.firsts, t, side="right"))
        if k == 0:
            return 0
        start = (k - 1) * BLOCK
        block = self._slice(start, min(self.count, start + BLOCK))
        return start + int(np.searchsorted(block, t, side="right"))

    def window(self, m0: int, m1: int) -> tuple[I64, int]:
        """The times (in order) a sampling at master times within ``[m0, m1]`` can use: from the last at or before
        ``m0`` to the first after ``m1``; and the time-order index of the first."""
        if not self.count:
            return np.zeros(0, dtype=np.int64), 0
        a = max(self._after(m0) - 1, 0)
        b = min(self._after(m1), self.count - 1)
        return self._slice(a, b + 1), a

    def positions(self, ordered: I64) -> I64:
        """The stream positions of samples given by their time-order index."""
        return self.lo + (ordered if self.local is None else self.local[ordered])


@dataclass
class _Dynamic:
    """Where one dynamic edge's samples are: per block read (source, block), the earliest and latest time."""

    parent: int
    where: list[tuple[int, int]] = field(default_factory=list)
    mins: list[int] = field(default_factory=list)
    maxs: list[int] = field(default_factory=list)


@dataclass
class _Static:
    """A static edge: its parent and the one sample a lookup uses (the latest; the last of equal times)."""

    parent: int
    t: int = 0
    values: list[float] = field(default_factory=list)


class TfWindows:
    """The transform buffer of one episode a window at a time: :meth:`buffer` gives, for master times within
    ``[m0, m1]``, a :class:`~rdstd.streams.tf.TransformBuffer` whose lookups equal those of the buffer built from
    every sample (in ``sources`` order, as ``TransformBuffer.add`` would) but holding only the samples they use.

    ``sources``: per TF topic, its spill, whether it is static, and the message range of the episode (None: all).
    One pass over the samples (a block at a time) settles each edge's parent (the first seen; samples naming
    another are conflicts, listed as the whole buffer lists them), whether it is static, and, per block, each
    dynamic edge's time range; a window then reads only the blocks that hold its samples.
    """

    def __init__(self, sources: list[tuple[TransformSpill, bool, tuple[int, int] | None]]) -> None:
        self.sources = sources
        self.conflicts: list[str] = []
        self._edges: dict[str, _Dynamic | _Static] = {}  # by child frame (stripped of a leading /)
        self._names: list[str] = []
        self._ids: dict[str, int] = {}
        #: Per source, its names' ids in :attr:`_names`.
        self._maps: list[npt.NDArray[np.int64]] = []
        for number, (spill, static, messages) in enumerate(sources):
            ids = np.array([self._id(name.lstrip("/")) for name in spill.names], dtype=np.int64)
            self._maps.append(ids)
            for k in range(spill.blocks):
                self._scan(number, k, ids, spill.block(k, messages), static)

    def _id(self, name: str) -> int:
        found = self._ids.get(name)
        if found is None:
            found = self._ids[name] = len(self._names)
            self._names.append(name)
        return found

    def _scan(self, number: int, k: int, ids: I64, samples: npt.NDArray[np.void], static: bool) -> None:
        """One block of samples, in order: ``TransformBuffer.add``'s rules without keeping the dynamic values."""
        names, edges = self._names, self._edges
        parents, children = ids[samples["parent"]].tolist(), ids[samples["child"]].tolist()
        times = samples["t"].tolist()
        dynamic = np.zeros(len(times), dtype=bool)
        for row, (parent, child, t) in enumerate(zip(parents, children, times, strict=True)):
            name = names[child]
            edge = edges.get(name)
            if edge is None:
                edge = edges[name] = _Static(parent) if static else _Dynamic(parent)
            elif edge.parent != parent:
                self.conflicts.append(parent_conflict(name, names[edge.parent], names[parent]))
                continue
            if static:  # a static sample replaces what the edge held, and makes it static for good
                if isinstance(edge, _Dynamic):
                    edge = edges[name] = _Static(parent)
                edge.t, edge.values = t, samples["values"][row].tolist()
            elif isinstance(edge, _Static):  # a dynamic sample of a static edge: the latest is the one used
                if t >= edge.t:
                    edge.t, edge.values = t, samples["values"][row].tolist()
            else:
                dynamic[row] = True
        if not dynamic.any():
            return
        child_ids, t_all = ids[samples["child"]][dynamic], samples["t"][dynamic]
        for child in np.unique(child_ids).tolist():
            edge = edges[names[child]]
            if isinstance(edge, _Dynamic):
                mine = t_all[child_ids == child]
                edge.where.append((number, k))
                edge.mins.append(int(mine.min()))
                edge.maxs.append(int(mine.max()))

    def buffer(self, m0: int, m1: int) -> TransformBuffer:
        """The buffer for lookups at times within ``[m0, m1]``."""
        buffer = TransformBuffer()
        buffer.conflicts = self.conflicts
        wanted: set[tuple[int, int]] = set()
        for edge in self._edges.values():
            if isinstance(edge, _Dynamic):
                wanted.update(_blocks_for(edge, m0, m1))
        found: dict[int, list[npt.NDArray[np.void]]] = {}
        for number, k in sorted(wanted):  # in the order the whole buffer adds them (equal times keep it)
            spill, _, messages = self.sources[number]
            samples = spill.block(k, messages)
            ids = self._maps[number]
            children, parents = ids[samples["child"]], ids[samples["parent"]]
            for child in np.unique(children).tolist():
                edge = self._edges[self._names[child]]
                if isinstance(edge, _Dynamic):
                    found.setdefault(child, []).append(samples[(children == child) & (parents == edge.parent)])
        for name, edge in self._edges.items():
            parent = self._names[edge.parent]
            if isinstance(edge, _Static):
                buffer.edges[name] = _edge(parent, name, True, [edge.t], [edge.values])
                continue
            samples = np.concatenate(found[self._ids[name]])
            times = samples["t"]
            before, after = times[times < m0], times[times > m1]
            low = before.max() if before.size else times.min()
            high = after.min() if after.size else times.max()
            samples = samples[(times >= low) & (times <= high)]
            buffer.edges[name] = _edge(parent, name, False, samples["t"], samples["values"])
        return buffer


def _blocks_for(edge: _Dynamic, m0: int, m1: int) -> list[tuple[int, int]]:
    """The blocks holding an edge's samples from the last before ``m0`` to the first after ``m1``: those whose time
    range meets ``[m0, m1]``, those whose latest is the latest before ``m0``, those whose earliest is the earliest
    after ``m1`` (a sample at such a time may be in any block whose range covers it: those meet ``[m0, m1]`` or
    have it as their latest or earliest)."""
    mins, maxs = np.array(edge.mins, dtype=np.int64), np.array(edge.maxs, dtype=np.int64)
    take = (mins <= m1) & (maxs >= m0)
    below, above = maxs < m0, mins > m1
    if below.any():
        take |= below & (maxs == maxs[below].max())
    if above.any():
        take |= above & (mins == mins[above].min())
    return [edge.where[k] for k in np.flatnonzero(take).tolist()]


def _edge(parent: str, child: str, static: bool, times: npt.ArrayLike, values: npt.ArrayLike) -> Edge:
    """An :class:`~rdstd.streams.tf.Edge` holding these samples (in the order given)."""
    t = np.asarray(times, dtype=np.int64).reshape(-1)
    v = np.asarray(values, dtype=np.float64).reshape(-1, 7)
    edge = Edge(parent, child, static)
    edge.times = array("q", t.tobytes())
    edge.translation_values = array("d", np.ascontiguousarray(v[:, :3]).tobytes())
    edge.rotation_values = array("d", np.ascontiguousarray(v[:, 3:]).tobytes())
    edge.in_order = t.size < 2 or bool(np.all(t[1:] >= t[:-1]))
    return edge
