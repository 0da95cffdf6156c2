"""Checks on what the dataset says about itself: task text, duplicate episodes, unknowns, embodiment, cameras, source
notes."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from rdstd.schema.embodiment import ControlMode, RobotType
from rdstd.schema.features import VectorFeature
from rdstd.schema.vocabulary import ActionMode, ClockKind, GripperKind, GripperOpen, RotationRepr
from rdstd.validate.check import Check, DatasetView, EpisodeView, ShardView, content_digest
from rdstd.validate.model import Evidence, Finding, Severity

_PLACEHOLDERS = {"", "nan", "none", "null", "default", "task", "n/a", "na", "todo", "tbd", "-", "?", "unknown"}


class TaskText(Check):
    """RDV801: every episode has a real instruction: not empty, not a placeholder, not bytes or padded."""

    id = "RDV801"
    name = "task.text"
    severity = Severity.WARNING
    evidence = Evidence.DETERMINISTIC
    description = "empty or placeholder task text, NUL padding, a bytes repr (b'...'), very long text (info)"
    hint = "give these episodes their instruction (or mark the dataset as goal-conditioned without language)"
    defaults: ClassVar[Mapping[str, float]] = {"max_chars": 300.0}

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        #: Whether a task text has a problem, by text (episodes repeat a handful of tasks).
        self._fine: dict[str, bool] = {}
        return ()

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        text = ep.task
        fine = self._fine.get(text)
        if fine is None:
            fine = self._fine[text] = not any(self._problems(text, ep))
        if not fine:
            yield from self._problems(text, ep)

    def _problems(self, text: str, ep: EpisodeView) -> Iterator[Finding]:
        problem = None
        if text.strip().lower() in _PLACEHOLDERS:
            problem = "empty" if not text.strip() else f"a placeholder ({text.strip()!r})"
        elif "\x00" in text:
            problem = "padded with NUL characters"
        elif (text.startswith("b'") and text.endswith("'")) or (text.startswith('b"') and text.endswith('"')):
            problem = "the repr of bytes, not text"
        elif len(text) > self.params["max_chars"]:
            yield self.finding(
                f"task text is {len(text)} characters long",
                ep=ep,
                measured=len(text),
                expected=f"<= {int(self.params['max_chars'])}",
                severity=Severity.INFO,
            )
        if problem:
            yield self.finding(f"task text is {problem}", ep=ep, measured=text[:80], expected="an instruction")


class TaskBalance(Check):
    """RDV803: how episodes spread over tasks (info): a dataset dominated by one task, or tasks seen once."""

    id = "RDV803"
    name = "task.balance"
    severity = Severity.INFO
    evidence = Evidence.STATISTICAL
    description = "the most common task has over max_ratio (50) times the episodes of the least common one"
    hint = "rebalance or weight tasks when training; check the rare tasks for typos"
    defaults: ClassVar[Mapping[str, float]] = {"max_ratio": 50.0}

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        # a count over the task column (in the order tasks first appear, so the examples named are stable)
        counts = Counter(dataset.episodes["task"].to_list())
        if len(counts) < 2:
            return
        most, least = max(counts.values()), min(counts.values())
        if least and most / least > self.params["max_ratio"]:
            rare = [task for task, count in counts.items() if count == least][:3]
            yield self.finding(
                f"{len(counts)} tasks: the most common has {most} episodes, the least common {least} (e.g. {rare})",
                statistic="episodes of the most / least common task",
                threshold=self.params["max_ratio"],
                measured=most / least,
            )


@dataclass
class _Earlier:
    """An episode seen before, by the fingerprint it shares with others: who it is, and its content digest once
    worked out (``view``: the episode while its shard is in memory)."""

    index: int
    episode_id: str
    split: str
    position: int
    view: EpisodeView | None
    digest: bytes | None = None


class DuplicateEpisodes(Check):
    """RDV802: episodes whose low-dim content is identical: within a split (warning) or across splits (error).

    Identical means the same content digest (blake2b of the timestamps and the vectors as stored). On a stored
    dataset a shard's episodes are first fingerprinted at once (length; first, middle and last rows; each dim's
    range): only episodes whose fingerprint an earlier one shares are hashed, the earlier one read back from its
    shard when it went by. A source streamed through the converter is hashed episode by episode.
    """

    id = "RDV802"
    name = "episodes.duplicate"
    severity = Severity.ERROR
    evidence = Evidence.DETERMINISTIC
    description = "identical content hash of the vectors and timestamps; across splits it leaks evaluation data"
    hint = "drop the copies (keep one), and keep each recording in one split only"

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._seen: dict[bytes, tuple[int, str, str]] = {}
        self._prints: dict[bytes, list[_Earlier]] = {}
        return ()

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        if self.ds.stored is None:
            yield from super().shard(shard)
            return
        held: list[_Earlier] = []
        for ep, print_ in zip(shard.episodes, _fingerprints(shard), strict=True):
            earlier = self._prints.setdefault(print_, [])
            if earlier:  # the same fingerprint as before: the digests decide
                digest = ep.content_digest()
                first = next((e for e in earlier if self._digest(e) == digest), None)
                if first is not None:
                    yield self._copy(ep, first.index, first.episode_id, first.split)
                    continue
            earlier.append(_Earlier(ep.index, ep.episode_id, ep.split, ep.position, ep, ep.digest))
            held.append(earlier[-1])
        for seen in held:  # the shard's columns go: an episode is read back from its shard when needed
            seen.view = None

    def _digest(self, earlier: _Earlier) -> bytes:
        if earlier.digest is None:
            if earlier.view is not None:
                earlier.digest = earlier.view.content_digest()
            else:
                assert self.ds.stored is not None
                earlier.digest = content_digest(*self.ds.stored(earlier.position))
        return earlier.digest

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        content = ep.content_digest()
        first = self._seen.get(content)
        if first is None:
            self._seen[content] = (ep.index, ep.episode_id, ep.split)
            return
        yield self._copy(ep, *first)

    def _copy(self, ep: EpisodeView, index: int, ident: str, split: str) -> Finding:
        across = split != ep.split
        where = f"split {ep.split} repeats {split}" if across else f"both in split {split}"
        return self.finding(
            f"episode is a copy of episode {index} ({ident}); {where}",
            ep=ep,
            frames=(0, ep.length),
            measured=f"episode {index}",
            expected="unique content",
            severity=None if across else Severity.WARNING,
        )


def _fingerprints(shard: ShardView) -> list[bytes]:
    """Per episode of the shard, a fingerprint of its content: equal content, equal fingerprint (episodes that
    differ nearly always differ in it too: length, first, middle and last timestamps and rows, each dim's range),
    hashed to 16 bytes."""
    starts, n = shard.starts, shard.lengths
    last = starts + np.maximum(n - 1, 0)
    middle = starts + n // 2
    filled = (n > 0)[:, None]
    parts: list[npt.NDArray[np.float64]] = [n[:, None].astype(np.float64)]
    times = shard.timestamps
    for rows in (starts, middle, last):
        parts.append(
            np.where(filled, times[np.minimum(rows, max(len(times) - 1, 0))][:, None], 0.0)
            if len(times)
            else np.zeros((len(n), 1))
        )
    for key in sorted(shard.vectors):
        values, extent = shard.vectors[key], shard.extent(key)
        if len(values):
            parts += [
                np.where(filled, values[np.minimum(rows, len(values) - 1)], 0.0) for rows in (starts, middle, last)
            ]
        parts += [extent.low, extent.high, extent.bad.astype(np.float64)]
    table = np.ascontiguousarray(np.concatenate(parts, axis=1))
    return [hashlib.blake2b(row.data, digest_size=16).digest() for row in table]  # 16 bytes kept per episode


def _unknowns(feature: VectorFeature) -> list[str]:
    found: list[str] = []
    for field in ("role", "unit", "frame"):
        names = [d.name for d in feature.dims if str(getattr(d, field)) == "unknown"]
        if names:
            found.append(f"{field} of {', '.join(names[:6])}{' …' if len(names) > 6 else ''}")
    for group in feature.rotations:
        if group.representation == RotationRepr.UNKNOWN:
            found.append(f"rotation at {group.start}")
    for grip in feature.grippers:
        if grip.kind == GripperKind.UNKNOWN:
            found.append(f"gripper kind of dim {grip.dim}")
        if grip.open == GripperOpen.UNKNOWN:
            found.append(f"gripper polarity of dim {grip.dim}")
    sem = feature.action
    if sem is not None:
        names = ["mode", "space", "timing"] + (["reference"] if sem.mode == ActionMode.DELTA else [])
        found += [f"action {n}" for n in names if str(getattr(sem, n)) == "unknown"]
    return found


class UnknownSemantics(Check):
    """RDV901: every ``unknown`` in the manifest's semantics, said once per feature (info)."""

    id = "RDV901"
    name = "metadata.unknown"
    severity = Severity.INFO
    evidence = Evidence.DETERMINISTIC
    description = "every unknown role, unit, frame, rotation, gripper convention, action semantics and clock"
    hint = "state it in the converter spec, so checks and training can rely on it"

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        for key, feature in dataset.vectors.items():
            found = _unknowns(feature)
            if found:
                yield self.finding(f"{key}: unknown {'; '.join(found)}", feature=key, measured="unknown")
        for key, cam in dataset.manifest.cameras.items():
            if cam.frame == "unknown" or str(cam.mount) == "unknown":
                yield self.finding(f"{key}: unknown camera frame or mount", feature=key, measured="unknown")
        if dataset.manifest.clock.kind == ClockKind.UNKNOWN:
            yield self.finding("the clock is unknown (measured or synthesized?)", measured="unknown")
        if dataset.rate_hz is None:
            yield self.finding("the frame rate is unknown", measured="unknown")


class EmbodimentMetadata(Check):
    """RDV902: the embodiment is described: robot type, control mode and rate, joints with limits."""

    id = "RDV902"
    name = "metadata.embodiment"
    severity = Severity.WARNING
    evidence = Evidence.DETERMINISTIC
    description = "no embodiment, an unknown robot type, control mode or rate; joints without limits (info)"
    hint = "describe the robot in the converter spec's embodiment (type, control mode, rate, joints and limits)"

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        m = dataset.manifest
        if not m.embodiments:
            yield self.finding("the dataset names no embodiment", measured="none", expected="an embodiment")
        for emb in m.embodiments:
            missing = [
                what
                for what, bad in (
                    ("robot_type", emb.robot_type == RobotType.UNKNOWN),
                    ("control_mode", emb.control_mode == ControlMode.UNKNOWN),
                    ("control_rate_hz", emb.control_rate_hz is None),
                )
                if bad
            ]
            if missing:
                yield self.finding(f"embodiment {emb.name}: {', '.join(missing)} unknown", measured="unknown")
            if not emb.joints or any(j.lower is None or j.upper is None for j in emb.joints):
                yield self.finding(
                    f"embodiment {emb.name}: joint limits are not all given (joint-limit checks cannot run)",
                    severity=Severity.INFO,
                    evidence=Evidence.UNVERIFIABLE,
                )
        names = {e.name for e in m.embodiments}
        used = {str(e) for e in dataset.episodes["embodiment"].to_list() if e}
        for name in sorted(used - names):
            yield self.finding(f"episodes name embodiment {name!r}, which the manifest does not describe")


class NoCameras(Check):
    """RDV905: the dataset has no camera (info): a training-readiness note, not a fault in the data."""

    id = "RDV905"
    name = "metadata.cameras"
    severity = Severity.INFO
    evidence = Evidence.DETERMINISTIC
    description = "the dataset has no camera feature: policies that need images (VLA, visuomotor) cannot train on it"
    hint = "map the source's cameras in the converter spec if it has any; a state-only policy needs none"

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        if not dataset.manifest.cameras:
            yield self.finding(
                "the dataset has no camera: policies that need images (VLA, visuomotor) cannot train on it",
                measured=0,
                expected="at least one camera, for an image-conditioned policy",
            )


class SourceNotes(Check):
    """RDV903: what the source backend observed (declared vs actual facts, quirks), surfaced as findings."""

    id = "RDV903"
    name = "source.notes"
    severity = Severity.WARNING
    evidence = Evidence.DETERMINISTIC
    description = "dataset-level source warnings (manifest extra) and per-episode source notes"
    hint = "see the source: rdstd info SOURCE shows what the backend found"

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        info = dataset.manifest.extra.get("source_info") or {}
        for warning in info.get("warnings") or [] if isinstance(info, dict) else []:
            yield self.finding(f"source: {warning}")
        self._notes: dict[str, list[tuple[int, str]]] = {}

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        for note in ep.source_meta.get("notes") or []:
            self._notes.setdefault(str(note), []).append((ep.index, ep.episode_id))
        return ()

    def end(self) -> Iterable[Finding]:
        for note, eps in self._notes.items():
            shown = ", ".join(str(i) for i, _ in eps[:8]) + (" …" if len(eps) > 8 else "")
            yield self.finding(
                f"source note in {len(eps)} episodes ({shown}): {note}",
                episode=eps[0] if len(eps) == 1 else None,
                severity=Severity.INFO,
            )


class SourceEpisodes(Check):
    """RDV904: source episodes the on-the-fly conversion could not read (sources only; see rdstd.validate.source).

    The findings come from the conversion, not from the canonical data, so on a canonical dataset this check
    finds nothing; it is registered so that it can be selected, ignored, listed and reported like the others.
    """

    id = "RDV904"
    name = "source.episodes"
    severity = Severity.ERROR
    evidence = Evidence.DETERMINISTIC
    description = "sources only: episodes the conversion could not read (with the reason); info: its other warnings"
    hint = "repair or re-fetch the file named; `rdstd convert --on-error skip` leaves the episode out"
