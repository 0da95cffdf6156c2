"""The contract of a check, and the views of the dataset and of one episode that checks read.

A check subclasses :class:`Check`: a stable ``id`` (``RDV`` + three digits, apart from the error codes
``RD000``-``RD900``), a dotted ``name``, a default severity, an evidence kind, a description and a fix hint.
The runner calls :meth:`Check.begin` once with the dataset, :meth:`Check.episode` for every episode (low-dim
columns in memory; pixels only through :meth:`EpisodeView.frames`, for checks with ``pixels = True``), then
:meth:`Check.end`. A check may override :meth:`Check.shard` instead of :meth:`Check.episode` to see a whole
shard's episodes at once (:class:`ShardView`: concatenated columns with episode boundaries) and work on them
vectorised; the runner orders findings by episode whichever a check uses. Each returns findings; a check keeps
only small per-dataset accumulators between calls.
Third-party checks register under the ``rdstd.checks`` entry-point group (see :mod:`rdstd.validate.registry`).
"""

from __future__ import annotations

import hashlib
from abc import ABC
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import polars as pl

from rdstd.schema.features import VectorFeature
from rdstd.schema.manifest import Manifest
from rdstd.schema.vocabulary import Role
from rdstd.validate import segments
from rdstd.validate.model import Evidence, Finding, Severity, Value

FloatArray = npt.NDArray[np.float64]


@dataclass
class DatasetView:
    """What checks see of the dataset as a whole: manifest, episode table, stats, and where it lives."""

    path: Path
    manifest: Manifest
    episodes: pl.DataFrame
    stats: Callable[[], dict[str, Any]] = field(default=dict)
    #: An episode's timestamps and vectors as stored, by its position in the episode table, read back from the
    #: dataset (None when the episodes are not stored: a source streamed through the converter).
    stored: Callable[[int], tuple[npt.NDArray[Any], dict[str, npt.NDArray[Any]]]] | None = None

    @property
    def rate_hz(self) -> float | None:
        """The declared frame rate: the manifest's, else the clock's, else one embodiment's control rate."""
        m = self.manifest
        if m.rate_hz:
            return m.rate_hz
        if m.clock.rate_hz:
            return m.clock.rate_hz
        rates = {e.control_rate_hz for e in m.embodiments if e.control_rate_hz}
        return rates.pop() if len(rates) == 1 else None

    @cached_property
    def vectors(self) -> dict[str, VectorFeature]:
        """The manifest's vector features, by key (worked out once: checks ask for them per episode; read only)."""
        return self.manifest.vectors

    def actions(self) -> dict[str, VectorFeature]:
        """Vector features that are actions (they carry action semantics, or their key starts with ``action``);
        worked out once, read only."""
        return self._roles[0]

    def states(self) -> dict[str, VectorFeature]:
        """Vector features observed from the robot (``observation.*`` that are not actions); worked out once, read
        only."""
        return self._roles[1]

    @cached_property
    def _roles(self) -> tuple[dict[str, VectorFeature], dict[str, VectorFeature]]:
        acts = {k: f for k, f in self.vectors.items() if f.action is not None or k.startswith("action")}
        states = {k: f for k, f in self.vectors.items() if k.startswith("observation") and k not in acts}
        return acts, states

    def pairs(self, action: str) -> list[tuple[int, str, int]]:
        """(action dim, state feature, state dim) for the action's dims that have a state counterpart.

        Dimensions pair by name; when no name matches, the dims of each role (other than unknown and other) pair in
        order with a state feature's dims of that role, when both have as many of them (Bridge: dx, dy, dz with
        x, y, z). Gripper dims pair too; callers filter by role.
        """
        act = self.vectors[action]
        states = self.states()
        named: list[tuple[int, str, int]] = []
        for i, dim in enumerate(act.dims):
            for key, st in states.items():
                j = next((j for j, d in enumerate(st.dims) if d.name == dim.name), None)
                if j is not None:
                    named.append((i, key, j))
                    break
        by_role = self._pairs_by_role(act, states)
        return named if len(named) >= len(by_role) else by_role

    @staticmethod
    def _pairs_by_role(act: VectorFeature, states: dict[str, VectorFeature]) -> list[tuple[int, str, int]]:
        found: list[tuple[int, str, int]] = []
        for key, st in states.items():
            for role in dict.fromkeys(d.role for d in act.dims):
                if role in (Role.UNKNOWN, Role.OTHER):
                    continue
                mine = [i for i, d in enumerate(act.dims) if d.role == role]
                theirs = [j for j, d in enumerate(st.dims) if d.role == role]
                if len(mine) == len(theirs):
                    found += [(i, key, j) for i, j in zip(mine, theirs, strict=True)]
            if found:
                return sorted(found)
        return []


@dataclass
class EpisodeView:
    """One episode as checks read it: metadata, timestamps, vectors (frames x size, float64), lazy pixels."""

    position: int
    index: int
    episode_id: str
    source_key: str
    split: str
    task: str
    embodiment: str
    source_meta: dict[str, Any]
    timestamps: FloatArray
    vectors: dict[str, FloatArray]
    raw: dict[str, npt.NDArray[Any]]
    frames_of: Callable[[str, Sequence[int]], list[npt.NDArray[Any]]] | None = None
    #: :func:`content_digest` of the episode, once worked out.
    digest: bytes | None = None

    @property
    def length(self) -> int:
        """Number of frames."""
        return int(self.timestamps.shape[0])

    def frames(self, camera: str, indices: Sequence[int]) -> list[npt.NDArray[Any]]:
        """Decoded frames ``indices`` of ``camera`` (HWC); only for checks with ``pixels = True``."""
        if self.frames_of is None:
            return []
        return self.frames_of(camera, indices)

    def content_digest(self) -> bytes:
        """A 16-byte blake2b hash of the episode's timestamps and stored vectors (see :func:`content_digest`)."""
        if self.digest is None:
            self.digest = content_digest(self.timestamps, self.raw)
        return self.digest


def content_digest(timestamps: npt.NDArray[Any], raw: Mapping[str, npt.NDArray[Any]]) -> bytes:
    """A 16-byte blake2b hash of an episode's timestamps and its vectors as stored (by key, sorted), hashed from
    the arrays' own memory (no copy when they are contiguous): equal content, equal digest."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.ascontiguousarray(timestamps).data)
    for key in sorted(raw):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(raw[key]).data)
    return digest.digest()


@dataclass
class ShardView:
    """The episodes of one shard at once: their views, and their columns concatenated in episode order.

    Episode ``i`` is rows ``starts[i] : starts[i] + lengths[i]`` of ``timestamps`` and of each vector (float64);
    ``starts`` ascend and the episodes tile the columns, so :mod:`rdstd.validate.segments` reduces them at once.
    """

    episodes: list[EpisodeView]
    timestamps: FloatArray
    vectors: dict[str, FloatArray]
    starts: npt.NDArray[np.intp]
    lengths: npt.NDArray[np.intp]
    _extents: dict[str, Extent] = field(default_factory=dict, repr=False, compare=False)
    _kept: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False, compare=False)
    #: The checks' :meth:`Check.prepare` of this shard, queued on another thread (:meth:`kept` waits for it, or
    #: cancels it when it has not started).
    preparing: Future[None] | None = field(default=None, repr=False, compare=False)

    @cached_property
    def intervals(self) -> FloatArray:
        """``np.diff(timestamps)``: row t is the interval after frame t of its episode (an episode's last row
        steps into the next episode); worked out once per shard, read only."""
        return np.diff(self.timestamps)

    def extent(self, key: str) -> Extent:
        """Per episode and dim of the vector ``key``: its finite range and whether it holds NaN or ±inf (computed
        once per shard, shared by the checks that screen with it)."""
        known = self._extents.get(key)
        if known is None:
            known = self._extents[key] = Extent.of(self.vectors[key], self.starts, self.lengths)
        return known

    def preset(self, extents: Mapping[str, Extent]) -> None:
        """Take extents worked out before (by the shard's reader, on its thread)."""
        self._extents.update(extents)

    def keep(self, check: str, name: str, value: Any) -> None:
        """Keep ``value`` for ``check`` (its id) under ``name``: what its :meth:`Check.prepare` worked out."""
        self._kept[(check, name)] = value

    def kept(self, check: str, name: str, compute: Callable[[], Any]) -> Any:
        """What :meth:`keep` kept for ``check`` under ``name`` (once the checks' prepare is done), else
        ``compute()``: prepare did not run, or had not started on the reader's thread (busy reading ahead) when
        this was asked, and this thread does the work itself instead of waiting."""
        if self.preparing is not None:
            if self.preparing.cancel():
                self.preparing = None
            else:
                self.preparing.result()  # raises what prepare raised
        key = (check, name)
        return self._kept[key] if key in self._kept else compute()


@dataclass(frozen=True)
class Extent:
    """Per segment (episode) and dim: ``low`` / ``high``, the smallest and largest finite value (inf / -inf when
    there is none), and ``bad``, whether any value is NaN or ±inf."""

    low: FloatArray
    high: FloatArray
    bad: npt.NDArray[np.bool_]

    @classmethod
    def of(cls, values: FloatArray, starts: npt.NDArray[np.intp], lengths: npt.NDArray[np.intp]) -> Extent:
        """The extent of each segment ``starts[i] : starts[i] + lengths[i]`` of ``values`` (rows x dims)."""
        # NaN propagates through min and max, and ±inf shows as one: finite extents mean finite values
        low, high = segments.segment_min(values, starts, lengths), segments.segment_max(values, starts, lengths)
        filled = (lengths > 0).reshape(-1, *([1] * (values.ndim - 1)))
        if bool(np.all(np.isfinite(low) & np.isfinite(high) | ~filled)):
            return cls(low, high, np.zeros((len(starts), *values.shape[1:]), dtype=bool))
        finite = np.isfinite(values)
        masked = np.where(finite, values, np.nan)
        with np.errstate(invalid="ignore"):
            low = segments.segment_fmin(masked, starts, lengths)
            high = segments.segment_fmax(masked, starts, lengths)
        bad = segments.segment_any_each(~finite, starts, lengths)
        return cls(np.where(np.isnan(low), np.inf, low), np.where(np.isnan(high), -np.inf, high), bad)


class Check(ABC):
    """A validation check. Override any of :meth:`begin`, :meth:`episode`, :meth:`end`; each returns findings."""

    id: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity]
    evidence: ClassVar[Evidence]
    description: ClassVar[str]
    hint: ClassVar[str] = ""
    #: Whether the check decodes sampled camera frames (off in profiles without pixels).
    pixels: ClassVar[bool] = False
    #: Thresholds and their defaults; a profile may override them by name.
    defaults: ClassVar[Mapping[str, float]] = {}

    def __init__(self, params: Mapping[str, float] | None = None, severity: Severity | None = None) -> None:
        self.params: dict[str, float] = {**self.defaults, **(params or {})}
        self.level: Severity = severity or self.severity
        self.dataset: DatasetView | None = None

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        """Called once before the episodes; dataset-level metadata checks report here."""
        self.dataset = dataset
        return ()

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        """Called for every episode, in order."""
        return ()

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        """Called for every shard's episodes; by default :meth:`episode` for each of them, in order."""
        for ep in shard.episodes:
            yield from self.episode(ep)

    def prepare(self, shard: ShardView) -> None:
        """May be called for a shard on the shard reader's thread, while the other checks work on it: work out
        from ``shard`` alone what :meth:`shard` needs, and keep it with :meth:`ShardView.keep` (:meth:`shard` then
        takes it with :meth:`ShardView.kept`, which waits for it, or computes it when prepare did not run). It must
        read only what :meth:`begin` set, and change nothing that :meth:`shard` reads or writes. By default it
        does nothing."""
        return

    def end(self) -> Iterable[Finding]:
        """Called once after the episodes; cross-episode checks report here."""
        return ()

    @property
    def ds(self) -> DatasetView:
        """The dataset (set by :meth:`begin`)."""
        assert self.dataset is not None, "begin() has not run"
        return self.dataset

    def finding(
        self,
        message: str,
        *,
        ep: EpisodeView | None = None,
        episode: tuple[int, str] | None = None,
        feature: str | None = None,
        dims: Sequence[int] = (),
        frames: tuple[int, int] | None = None,
        statistic: str | None = None,
        threshold: float | None = None,
        measured: Value = None,
        expected: Value = None,
        severity: Severity | None = None,
        evidence: Evidence | None = None,
        hint: str | None = None,
    ) -> Finding:
        """A finding of this check; severity defaults to the configured one (lowered, never raised, by callers)."""
        names: list[str] = []
        if feature is not None and dims and self.dataset is not None:
            vec = self.dataset.vectors.get(feature)
            if vec is not None:
                names = [vec.dims[d].name for d in dims if d < len(vec.dims)]
        level = self.level if severity is None or severity.rank > self.level.rank else severity
        index, ident = (ep.index, ep.episode_id) if ep is not None else (episode or (None, None))
        key = (ep.source_key or None) if ep is not None else None
        return Finding(
            check=self.id,
            name=self.name,
            severity=level,
            evidence=evidence or self.evidence,
            message=message,
            episode_index=index,
            episode_id=ident,
            source_key=key,
            feature=feature,
            dims=list(dims),
            dim_names=names,
            frames=frames,
            statistic=statistic,
            threshold=threshold,
            measured=_plain(measured),
            expected=_plain(expected),
            hint=self.hint if hint is None else hint,
        )


def _plain(value: Value | np.generic) -> Value:
    """numpy scalars as Python values (so findings serialize), floats rounded to 6 significant digits."""
    plain = value.item() if isinstance(value, np.generic) else value
    if isinstance(plain, float):
        return float(f"{plain:.6g}")
    if plain is None or isinstance(plain, str | int | bool):
        return plain
    return str(plain)


def dims_with_role(feature: VectorFeature, *roles: Role) -> list[int]:
    """Indices of the feature's dims whose role is one of ``roles``."""
    return [i for i, d in enumerate(feature.dims) if d.role in roles]


def frame_span(mask: npt.NDArray[np.bool_]) -> tuple[int, int] | None:
    """[first, last + 1) of the True entries of a per-frame mask, or None when there are none."""
    where = np.flatnonzero(mask)
    return None if where.size == 0 else (int(where[0]), int(where[-1]) + 1)


def list_frames(where: npt.NDArray[np.intp], limit: int = 8) -> str:
    """Frame indices as short text: ``3, 17, 40 (+5 more)``."""
    shown = ", ".join(str(int(i)) for i in where[:limit])
    return shown + (f" (+{where.size - limit} more)" if where.size > limit else "")
