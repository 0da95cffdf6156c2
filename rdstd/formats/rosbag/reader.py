"""The ROS bag backend: a bag (ROS 1 ``.bag`` or split set, rosbag2 folder, lone ``.db3``/``.mcap``) is one episode,
or one per piece when a clock the plan uses resets or its episode rule (event topic, time gaps) cuts it.

Opening reads the container's index; on first use one pass reads and decodes every message to build the per-topic
ledger (:mod:`.ledger`), keeping of the plan's topics what conversion needs (times, vector values, transforms,
task text, and camera payloads in a temporary file read back when sliced, :mod:`.frames`): the bag is read once.
``info()`` shows the ledger under ``extra["ledger"]`` with the container facts, the TF frames present and a drafted
alignment plan. Episodes need a declared alignment plan (:mod:`.plan`: a converter spec's ``source:`` block given
to :meth:`configure`, or the ``<bag>.rdstd.yaml`` sidecar): without one, ``read_episode`` refuses and says how to
write it. With one, each stream's clocks are checked (:func:`rdstd.streams.align.check_clock`), the recording is
cut at clock resets, and each stream is sampled at the master times; a master time any stream cannot serve within
its age limit is dropped and counted. The episode's ``meta`` carries the alignment report per stream, the clock
findings and the TF lookup statistics.
"""

from __future__ import annotations

import copy
import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from rdstd.errors import CorruptSourceError, EpisodeError, MappingError
from rdstd.formats.base import EpisodeRef, FormatBackend, SourceDataset, SourceEpisode, SourceInfo, SourceKey
from rdstd.formats.rosbag import fields as msgfields
from rdstd.formats.rosbag.bag import Raw, RawBag, bag_files
from rdstd.formats.rosbag.compressed import CompressedTake, Skeleton
from rdstd.formats.rosbag.compressed import skeleton as camera_skeleton
from rdstd.formats.rosbag.frames import BagFrames, BagPixels, BagVectors, FrameSpill, TopicFrames
from rdstd.formats.rosbag.heap import release_free_heap
from rdstd.formats.rosbag.joints import ARRAYS, JointBatch, Layout, Target
from rdstd.formats.rosbag.joints import layout as joint_layout
from rdstd.formats.rosbag.ledger import TopicLedger, build_ledger
from rdstd.formats.rosbag.plan import RosbagPlan, StreamPlan, load_plan, parse_plan, sidecar_path
from rdstd.formats.rosbag.spill import ByteSpill, FrameColumn, TimeLog, TransformSpill
from rdstd.formats.rosbag.types import Decoder, TypeResolver
from rdstd.formats.rosbag.window import WINDOW_FRAMES, StreamTimes, TfWindows
from rdstd.formats.sniff import MCAP_MAGIC, ROSBAG1_MAGIC, SQLITE_MAGIC
from rdstd.paths import inside
from rdstd.schema.episode import EncodedFrames
from rdstd.schema.vocabulary import ImageCodec
from rdstd.streams.align import (
    RESET_NS,
    ClockCheck,
    ClockScan,
    ReportBuilder,
    Sampling,
    apply_sampling,
    fixed_grid,
    sample_at,
)
from rdstd.streams.tf import Failure, TransformError

if TYPE_CHECKING:
    from rdstd.formats.rosbag.salvage import Salvage

IMAGE_TYPES = (msgfields.IMAGE, msgfields.COMPRESSED)
#: Parsed field paths, and joint columns per (message names, wanted names): computed once, not per message.
_PATHS: dict[str, list[tuple[str, list[str]]]] = {}
_COLUMNS: dict[tuple[tuple[str, ...], tuple[str, ...]], list[int]] = {}
POSE_NAMES = ["x", "y", "z", "qx", "qy", "qz", "qw"]
#: Messages whose times a clock check reads at once.
CLOCK_BLOCK = 1 << 16
_SAFE = re.compile(r"[^A-Za-z0-9_]+")


class Rows:
    """One vector stream's per-message values, kept as they are read in the bag's single pass (so conversion does
    not read and decode the messages again), compactly: raw bytes in a :class:`~.spill.ByteSpill` (memory up to
    256 KiB, the rest in an anonymous temporary file), so memory stays flat however long the recording. A vector
    whose size changes between messages is an error."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.shape: tuple[int, ...] | None = None
        self.dtype: np.dtype[Any] | None = None
        self.count = 0
        self._bytes = ByteSpill(where, "rdstd-rows-")

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran."""
        return self._bytes.closed

    def append(self, row: npt.NDArray[Any]) -> None:
        """One message's vector."""
        self.append_many(row[np.newaxis])

    def append_many(self, rows: npt.NDArray[Any]) -> None:
        """Consecutive messages' vectors at once (one row each)."""
        if not len(rows):
            return
        if self.shape is None or self.dtype is None:
            self.shape, self.dtype = rows.shape[1:], rows.dtype
        elif rows.shape[1:] != self.shape:
            raise EpisodeError(
                f"{self.where} changes size between messages ({self.shape[0]} then {rows.shape[1]})",
                situation="vector-size-changes",
            )
        self._bytes.write(np.ascontiguousarray(rows, dtype=self.dtype).tobytes())
        self.count += len(rows)

    def read(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
        """The values of the messages at ``positions`` (stream order; repeats allowed), stacked."""
        self._bytes.check_open()
        assert self.shape is not None and self.dtype is not None
        size = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        if len(positions) == 0:
            return np.zeros((0, *self.shape), dtype=self.dtype)
        lo, hi = int(positions.min()), int(positions.max()) + 1
        if lo < 0 or hi > self.count:
            raise CorruptSourceError(
                f"{self.where}: message {hi - 1} asked for, {self.count} were read",
                hint="the bag changed while it was read; open it again",
                situation="message-index-out-of-range",
            )
        block = np.frombuffer(self._bytes.read(lo * size, hi * size), dtype=self.dtype).reshape(hi - lo, *self.shape)
        return block[positions - lo]

    def close(self) -> None:
        """Drop the values (and the temporary file)."""
        self._bytes.close()


@dataclass
class TopicData:
    """What an episode needs of one topic: receive and header times (stream order), and per message only what the
    plan reads: each vector stream's values (:class:`Rows`), the transforms of a TF message (compactly), the text of
    a String, an image topic's payloads (:class:`~rdstd.formats.rosbag.frames.FrameSpill`, read back when the
    converter slices them)."""

    topic: str
    msgtype: str
    #: Receive and header times (:class:`~.times.TimeLog`: read back when asked for, not held).
    receive: TimeLog
    header: TimeLog
    #: The messages have no header stamp (``header`` holds zeros; ``header_ns`` is None).
    headerless: bool = False
    rows: dict[str, Rows] = field(default_factory=dict)
    transforms: TransformSpill = field(default_factory=TransformSpill)
    texts: list[str] = field(default_factory=list)
    frames: FrameSpill | None = None

    @property
    def receive_ns(self) -> npt.NDArray[np.int64]:
        """The receive times (a new array each time: hold it only while it is needed)."""
        return self.receive.values()

    @property
    def header_ns(self) -> npt.NDArray[np.int64] | None:
        """The header stamps (None: the messages have none); a new array each time."""
        return None if self.headerless else self.header.values()

    def close(self) -> None:
        """Drop the times, values and payloads kept (and their temporary files)."""
        self.receive.close()
        self.header.close()
        self.transforms.close()
        for rows in self.rows.values():
            rows.close()
        if self.frames is not None:
            self.frames.close()


class RosbagSource(SourceDataset):
    """An opened bag, with its ledger; ``plan`` (else a converter spec's ``source:`` block given to
    :meth:`configure`, else the ``<bag>.rdstd.yaml`` sidecar) declares the alignment.

    Opening reads the container's index only; the one pass over the messages that builds the ledger (keeping what
    the plan reads) runs when the ledger, the keys or an episode are first asked for, so a plan given by
    :meth:`configure` is collected in that same pass.
    """

    format = "rosbag"

    #: Built by the scan (:meth:`_scan`), on first use.
    ledger: dict[str, TopicLedger]
    decoders: dict[str, Decoder]
    warnings: list[str]
    problems: list[str]
    draft: dict[str, Any] | None
    _cache: dict[str, TopicData]
    _keys: list[SourceKey]
    _keys_by_name: dict[str, SourceKey]
    _first: dict[str, Any]
    _SCANNED = ("ledger", "decoders", "warnings", "problems", "draft", "_cache", "_first", "_keys", "_keys_by_name")

    def __init__(
        self, path: Path, plan: RosbagPlan | None = None, *, types_dir: Path | None = None, salvage: bool = False
    ) -> None:
        super().__init__(path)
        self.plan_origin = "(given in code)" if plan is not None else ""
        self.plan_base = path.parent
        self.notes: list[str] = []
        sidecar = sidecar_path(path)
        if plan is None and sidecar.is_file():
            plan, self.plan_origin, self.plan_base = load_plan(sidecar), str(sidecar), sidecar.parent
        self.plan = plan
        self.types_dir = types_dir
        self.bag = RawBag(path, salvage=salvage)

    def __getattr__(self, name: str) -> Any:
        if name in RosbagSource._SCANNED and "bag" in self.__dict__ and not self.__dict__.get("_scanning"):
            self._scanning = True
            try:
                self._scan()
            finally:
                self._scanning = False
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def configure(self, options: Mapping[str, Any], origin: str) -> None:
        """Take the alignment plan from a converter spec's ``source:`` block (validated as a plan; it replaces a
        sidecar plan, with a warning saying so). ``origin`` is the spec file: a ``types_dir`` is relative to it."""
        plan = parse_plan(dict(options), f"{origin}: source")
        sidecar = sidecar_path(self.path)
        if self.plan_origin == str(sidecar):
            self.notes.append(f"the alignment plan in {sidecar} is not used: the spec {origin} declares one")
        self.plan, self.plan_origin = plan, f"{origin} (source:)"
        origin_path = Path(origin)
        self.plan_base = origin_path.parent if origin_path.is_file() else self.path.parent
        for name in self._SCANNED:  # scanned for another plan: scan again for this one
            self.__dict__.pop(name, None)

    def _scan(self) -> None:
        """Read every message once: the ledger, and what the plan reads of its topics."""
        plan, types_dir = self.plan, self.types_dir
        if types_dir is None and plan is not None and plan.types_dir:
            types_dir = inside(self.plan_base, plan.types_dir, "the plan's types_dir")
        try:
            self.resolver = TypeResolver(self.bag.is_ros2, self.bag.facts.get("ros_distro"), types_dir)
            collector = _Collector(self, plan_topics(plan) if plan is not None else set(), plan)
            ledger, self.decoders = build_ledger(self.bag, self.resolver, collector.visit, collector.claim)
            self.ledger = ledger
            self._cache = collector.topics(ledger)
            self._first = collector.first
            self.bag.release_index()  # what conversion needs was kept: the index is read again only if asked for
        except BaseException:
            for name in self._SCANNED:
                self.__dict__.pop(name, None)
            raise
        warnings = [s.line() for s in self.bag.salvaged]
        warnings += list(self.resolver.findings)
        warnings += [
            f"{t.topic}: disabled ({t.error})"
            for t in ledger.values()
            if t.definition == "none" or (t.read and not t.decoded)
        ]
        self.problems = [t.problem for t in ledger.values() if t.problem]
        warnings += [f"{p} (the bag is incomplete or its index is wrong)" for p in self.problems]
        self.warnings = warnings + self.notes
        self.draft = draft_plan(self)
        self._keys = self._declared_keys(self.plan) if self.plan is not None else self._draft_keys()
        self._keys_by_name = {k.key: k for k in self._keys}

    # -- reading topics --------------------------------------------------------------------------------------
    def _decoder(self, topic: str, why: str) -> Decoder:
        if topic not in self.ledger:
            raise MappingError(
                f"{self.path}: {why} names topic {topic!r}, which the bag does not have "
                f"(it has: {', '.join(sorted(self.ledger)) or 'none'})",
                hint="fix the topic name in the alignment plan",
                situation="topic-missing",
            )
        decoder = self.decoders[topic]
        if decoder.decode is None:
            raise EpisodeError(
                f"{self.path}: topic {topic} cannot be decoded: {decoder.error}", situation="topic-undecodable"
            )
        return decoder

    def first_message(self, topic: str) -> Any:
        """The first decoded message of ``topic`` (used for shapes and names; kept by the single pass)."""
        decoder = self._decoder(topic, "the plan")
        assert decoder.decode is not None
        if topic in self._first:
            return self._first[topic]
        for k, (_, raw) in enumerate(self.bag.messages(topic)):
            try:
                return decoder.decode(raw)
            except Exception as exc:  # rosbags deserializers: one boundary, the cause kept
                raise CorruptSourceError(
                    f"{self.path}: {topic} message {k} does not decode ({exc})", situation="message-undecodable"
                ) from exc
        raise EpisodeError(f"{self.path}: topic {topic} holds no messages", situation="topic-empty")

    def read_topic(self, topic: str) -> TopicData:
        """Every message of ``topic``, decoded, with both clocks (a decode failure is an error naming it).

        Topics the plan names were kept while the ledger was built, so the bag is not read for them again.
        """
        if topic in self._cache:
            return self._cache[topic]
        decoder = self._decoder(topic, "the plan")
        assert decoder.decode is not None
        collector = _Collector(self, {topic}, self.plan)
        for k, (t, raw) in enumerate(self.bag.messages(topic)):
            try:
                msg = decoder.decode(raw)
            except Exception as exc:  # rosbags deserializers: one boundary, the cause kept
                raise CorruptSourceError(
                    f"{self.path}: {topic} message {k} does not decode ({exc})", situation="message-undecodable"
                ) from exc
            collector.visit(topic, t, msg, raw)
        found = collector.topics(self.ledger, check=False).get(topic)
        where = f"{self.path}: {topic}"
        return found or TopicData(topic, decoder.msgtype, TimeLog(where), TimeLog(where), headerless=True)

    def window(self, topic: str, data: TopicData) -> TopicFrames:
        """Positional access to ``topic``'s image payloads, kept by the single pass (read when sliced)."""
        decoder = self._decoder(topic, "the plan")
        assert decoder.decode is not None
        if data.frames is None:
            raise EpisodeError(f"{self.path}: {topic}: no image message was kept", situation="stream-empty")
        return TopicFrames(data.frames, str(self.path), topic, decoder.decode)

    # -- keys --------------------------------------------------------------------------------------------------
    def _declared_keys(self, plan: RosbagPlan) -> list[SourceKey]:
        keys = []
        for name, stream in plan.streams.items():
            keys.append(self._stream_key(name, stream))
        return keys

    def _draft_keys(self) -> list[SourceKey]:
        draft = self.draft
        if draft is None:
            return []
        try:
            return self._declared_keys(RosbagPlan.model_validate(draft))
        except (MappingError, EpisodeError, CorruptSourceError):
            return []

    def _stream_key(self, name: str, stream: StreamPlan) -> SourceKey:
        if stream.tf is not None:
            return SourceKey(
                name, "vector", (7,), "float64", list(POSE_NAMES), note=f"TF {stream.tf.source} in {stream.tf.target}"
            )
        assert stream.topic is not None
        msg = self.first_message(stream.topic)
        msgtype = self.decoders[stream.topic].msgtype
        note = f"{stream.topic} ({msgtype}), {stream.clock} clock, {stream.method} within {stream.max_age_ms:g} ms"
        if msgtype == msgfields.COMPRESSED and msgfields.is_compressed_depth(msg):
            depth = msgfields.compressed_depth(msg, f"{self.path}: {stream.topic}")
            unit = "millimetres (16UC1, REP 118)" if depth.dtype == np.uint16 else "metres (32FC1, REP 118; NaN: none)"
            note += f"; compressedDepth ({msg.format}) decoded to depth in {unit}"
            return SourceKey(name, "image", depth.shape, depth.dtype.name, note=note)
        if msgtype == msgfields.COMPRESSED:
            data = bytes(np.asarray(msg.data, dtype=np.uint8).tobytes())
            codec = msgfields.image_codec(data)
            if not codec:
                raise EpisodeError(
                    f"{self.path}: {stream.topic}: CompressedImage format {msg.format!r} is not jpeg or png",
                    situation="image-codec-unknown",
                )
            return SourceKey(name, "image", msgfields.encoded_shape(data), "uint8", note=note, codec=ImageCodec(codec))
        if msgtype == msgfields.IMAGE:
            pixels = msgfields.raw_image(msg, f"{self.path}: {stream.topic}")
            if str(msg.encoding) in msgfields.BAYER:
                note += f"; {msg.encoding} demosaiced (bilinear) to RGB"
            return SourceKey(name, "image", pixels.shape, pixels.dtype.name, note=note)
        values, names = self._vector_of(msg, stream, f"{self.path}: {stream.topic}")
        return SourceKey(name, "vector", values.shape, values.dtype.name, names, note=note)

    def _vector_of(self, msg: Any, stream: StreamPlan, where: str) -> tuple[npt.NDArray[Any], list[str] | None]:
        path = stream.field or ""
        if not path:
            raise MappingError(f"{where}: a vector stream needs field: (e.g. position)", situation="plan-field-missing")
        try:
            steps = _PATHS.get(path)
            if steps is None:
                steps = _PATHS[path] = msgfields.parse_path(path)
            value = msgfields.to_vector(msgfields.resolve(msg, steps))
        except MappingError as exc:
            raise MappingError(
                f"{where}: field {path!r}: {exc.message}", hint=exc.hint, situation=exc.situation
            ) from exc
        if stream.names is None:
            names = (
                list(msg.name)
                if hasattr(msg, "name") and isinstance(msg.name, list) and len(msg.name) == len(value)
                else None
            )
            return value, names
        if not isinstance(getattr(msg, "name", None), list):
            raise MappingError(
                f"{where}: names: picks joints by a JointState's name list; this message has none",
                situation="joint-names-missing",
            )
        have, wanted = tuple(msg.name), tuple(stream.names)
        cols = _COLUMNS.get((have, wanted))
        if cols is None:  # one lookup per distinct name list (a JointState usually repeats the same one)
            cols = msgfields.joint_columns(list(have), list(wanted), where)
            if len(_COLUMNS) < 64:
                _COLUMNS[(have, wanted)] = cols
        return value[cols], list(stream.names)

    # -- contract --------------------------------------------------------------------------------------------
    def info(self) -> SourceInfo:
        """Container facts, the ledger, the TF frames, the plan (declared or drafted) and the stream keys."""
        rate = self.plan.master.fps if self.plan is not None and self.plan.master.fps else self._master_rate()
        extra: dict[str, Any] = {
            **self.bag.facts,
            "ledger": {t: led.as_dict() for t, led in self.ledger.items()},
            "ledger_lines": [ledger_line(led) for led in self.ledger.values()],
            "tf_frames": self.tf_frames(),
            "alignment": self.plan.model_dump(mode="json", exclude_none=True) if self.plan else "not declared",
            "alignment_origin": self.plan_origin
            or f"none: write one in a converter spec's source: block, or as {sidecar_path(self.path)}",
            "alignment_draft": self.draft,
            #: The source: block of a spec drafted from this bag (``rdstd spec``): the plan in use, else the draft.
            "spec_source": self.plan.model_dump(mode="json", exclude_none=True) if self.plan else self.draft,
            "warnings": list(self.warnings),
        }
        return SourceInfo(
            format=self.format,
            version=self.bag.kind,
            path=str(self.path),
            episodes=1,
            frames=None,
            keys=list(self._keys),
            rate_hz=rate,
            extra=extra,
        )

    def _master_rate(self) -> float | None:
        plan = self.plan or (RosbagPlan.model_validate(self.draft) if self.draft else None)
        topic = plan.master.topic if plan is not None else None
        return topic_rate(self.ledger[topic]) if topic in self.ledger else None

    def tf_frames(self) -> list[str]:
        """The frames named by /tf and /tf_static messages (decoded topics of a TF type)."""
        frames: set[str] = set()
        for name, led in self.ledger.items():
            if led.msgtype in msgfields.TF_TYPES and led.decoded:
                frames.update(frame.lstrip("/") for frame in self.read_topic(name).transforms.names)
        return sorted(frames)

    def aligner(self) -> Aligner | None:
        """The aligner of the declared plan (None without one), built once."""
        if self.plan is None:
            return None
        found = self.__dict__.get("_aligner")
        if found is None or found.plan is not self.plan:
            found = self._aligner = Aligner(self, self.plan)
        return found

    def episode_refs(self) -> Sequence[EpisodeRef]:
        """One episode per bag (a split set is one), or one per piece when a clock the plan uses resets."""
        key = _episode_key(self.path)
        aligner = self.aligner()
        count = len(aligner.pieces()) if aligner is not None and not self.problems else 1
        if count == 1:
            return [EpisodeRef(0, key, str(self.path))]
        return [EpisodeRef(k, f"{key}_piece{k}", str(self.path)) for k in range(count)]

    def read_episode(self, ref: EpisodeRef) -> SourceEpisode:
        """The bag's streams sampled at the master times (see the module docs)."""
        if ref.index != 0 and self.plan is None:
            raise CorruptSourceError(
                f"{self.path}: no episode {ref.index} (a bag is one episode)", situation="episode-not-found"
            )
        if self.problems:
            raise CorruptSourceError(
                f"{self.path}: {'; '.join(self.problems)}",
                hint="the bag lost messages; re-copy it",
                situation="messages-lost",
            )
        if self.plan is None:
            raise MappingError(
                f"{self.path}: no alignment plan declared (which topics, on which clock, sampled how)",
                hint=f"`rdstd spec {self.path} > spec.yaml` drafts a converter spec whose source: block is the plan "
                f"(check it, then --spec spec.yaml); or write the plan alone as {sidecar_path(self.path)}",
                situation="plan-missing",
            )
        aligner = self.aligner()
        assert aligner is not None
        episode = aligner.episode(ref)
        release_free_heap()  # what aligning a long recording needed for a while (heap.py)
        return episode

    def close(self) -> None:
        """Close the bag files and drop the values and camera payloads kept of its streams."""
        for data in self.__dict__.get("_cache", {}).values():
            data.close()
        aligner = self.__dict__.get("_aligner")
        for data in aligner.topics.values() if aligner is not None else ():
            data.close()
        for column in list(aligner.columns) if aligner is not None else ():
            column.close()
        self.bag.close()


def plan_topics(plan: RosbagPlan) -> set[str]:
    """Every topic a plan reads (TF lookups read every TF topic, matched by type later)."""
    topics = {s.topic for s in plan.streams.values() if s.topic is not None}
    topics |= {plan.master.topic} if plan.master.topic else set()
    topics |= {plan.task.topic} if plan.task is not None and plan.task.topic else set()
    topics |= {plan.episodes.split_on.topic} if plan.episodes is not None and plan.episodes.split_on else set()
    if any(s.tf is not None for s in plan.streams.values()):
        topics.add("*tf*")
    return topics


class _Collector:
    """Keeps, per decoded message of the wanted topics, its times and what the plan reads of it (see TopicData)."""

    def __init__(self, source: RosbagSource, wanted: set[str], plan: RosbagPlan | None) -> None:
        self.source = source
        self.wanted = wanted
        self.streams: dict[str, list[tuple[str, StreamPlan]]] = {}
        for name, stream in (plan.streams if plan is not None else {}).items():
            if stream.topic is not None:
                self.streams.setdefault(stream.topic, []).append((name, stream))
        self.task_topic = plan.task.topic if plan is not None and plan.task is not None else None
        self.data: dict[str, TopicData] = {}
        self.headerless: set[str] = set()
        #: The first decoded message of every topic (shapes, names, codecs), so the bag is not read for them again.
        self.first: dict[str, Any] = {}
        self._keepers: dict[str, Callable[[int, Any, Raw], None]] = {}
        #: Per JointState topic whose later messages can be taken in batches, what its batch needs (see claim).
        self._batchable: dict[str, tuple[Layout, list[Target]]] = {}
        #: Per passed-through CompressedImage topic, the skeleton its later messages are taken by (see claim).
        self._camera: dict[str, Skeleton] = {}

    def visit(self, topic: str, t: int, msg: Any, raw: Raw) -> None:
        """One decoded message (and its serialized bytes)."""
        keep = self._keepers.get(topic)
        if keep is None:  # the topic's first message: what to keep of its messages is decided once
            # a message decoded from a view into a decompressed chunk would keep the whole chunk alive: copied
            self.first[topic] = msg if isinstance(raw, bytes) else copy.deepcopy(msg)
            keep = self._keepers[topic] = self._keeper(topic, msg)
            self._batch_plan(topic, msg, raw)
        keep(t, msg, raw)

    def _batch_plan(self, topic: str, msg: Any, raw: Raw) -> None:
        """For a JointState topic the plan reads only whole arrays (or joints by name) of, the layout its later
        messages are taken in (:mod:`.joints`)."""
        data = self.data.get(topic)
        if data is not None and data.frames is not None and data.frames.payload == "data":
            found = camera_skeleton(msg, raw, self.source.bag.is_ros2)
            if found is not None:
                self._camera[topic] = found
            return
        if data is None or data.msgtype != msgfields.JOINT_STATE or topic == self.task_topic:
            return
        targets: list[Target] = []
        for name, stream in self.streams.get(topic, []):
            if stream.field not in ARRAYS:
                return
            cols = None
            if stream.names is not None:
                try:
                    cols = msgfields.joint_columns(list(msg.name), list(stream.names), "")
                except EpisodeError:
                    return  # the per-message path names the problem
            targets.append((data.rows[name].append_many, stream.field, cols))
        shape = joint_layout(msg, raw, self.source.bag.is_ros2)
        if shape is not None and all(name in (shape.record.names or ()) for _, name, _ in targets):
            self._batchable[topic] = (shape, targets)

    def claim(self, topic: str, decode: Callable[[Raw], Any]) -> JointBatch | CompressedTake | None:
        """After ``topic``'s first message: a :class:`~.joints.JointBatch` or a :class:`~.compressed.CompressedTake`
        taking its later messages, if it can."""
        camera = self._camera.pop(topic, None)
        if camera is not None:
            data = self.data[topic]
            assert data.frames is not None
            return CompressedTake(camera, data.receive, data.header, data.frames, decode, self._keepers[topic])
        found = self._batchable.pop(topic, None)
        if found is None:
            return None
        shape, targets = found
        data = self.data[topic]
        return JointBatch(shape, data.receive, data.header, targets, decode, self._keepers[topic])

    def _keeper(self, topic: str, msg: Any) -> Callable[[int, Any, Raw], None]:
        """What to do with each message of ``topic`` (nothing, for topics the plan does not read)."""
        tf = hasattr(msg, "transforms") and ("*tf*" in self.wanted or topic in self.wanted)
        if topic not in self.wanted and not tf:
            return _ignore
        msgtype = str(getattr(msg, "__msgtype__", ""))
        where = f"{self.source.path}: {topic}"
        data = self.data[topic] = TopicData(
            topic, msgtype, TimeLog(where), TimeLog(where), transforms=TransformSpill(where)
        )
        receive, header = data.receive, data.header
        steps: list[Callable[[Any, Raw], None]] = []
        if msgtype in IMAGE_TYPES:  # encoded bytes pass through; raw and depth images are decoded when sliced
            passthrough = msgtype == msgfields.COMPRESSED and not msgfields.is_compressed_depth(msg)
            frames = data.frames = FrameSpill(where, "data" if passthrough else "message")
            steps.append((lambda m, r: frames.append(m.data)) if passthrough else (lambda m, r: frames.append(r)))
        else:
            for name, stream in self.streams.get(topic, []):
                rows = data.rows[name] = Rows(f"{where}: field {stream.field!r}")
                steps.append(partial(_keep_vector, rows, _Picker(self.source, stream, where)))
            if tf:
                steps.append(partial(_keep_transforms, data.transforms, receive))
            if topic == self.task_topic:
                steps.append(lambda m, r: data.texts.append(str(getattr(m, "data", ""))))
        headerless = self.headerless

        def keep(t: int, m: Any, r: Raw) -> None:
            receive.append(t)
            stamp = msgfields.stamp_ns(m)
            if stamp is None:
                headerless.add(topic)
                stamp = 0
            header.append(stamp)
            for step in steps:
                step(m, r)

        return keep

    def topics(self, ledger: dict[str, TopicLedger], *, check: bool = True) -> dict[str, TopicData]:
        """The collected topics (with ``check``: only those whose every message decoded)."""
        out = {}
        for topic, data in self.data.items():
            led = ledger.get(topic)
            if check and (led is None or led.failed or led.decoded != led.read):
                continue
            data.headerless = topic in self.headerless
            out[topic] = data
        return out


def _ignore(t: int, msg: Any, raw: Raw) -> None:
    """A message of a topic the plan does not read."""


def _keep_vector(rows: Rows, pick: _Picker, msg: Any, raw: Raw) -> None:
    rows.append(pick(msg))


class _Picker:
    """One vector stream's values of each message: :meth:`RosbagSource._vector_of`, with the field path and the
    joint columns of the last name list kept, so a message like the one before costs an attribute walk."""

    def __init__(self, source: RosbagSource, stream: StreamPlan, where: str) -> None:
        self.source = source
        self.stream = stream
        self.where = where
        self.steps: list[tuple[str, list[str]]] | None = None
        self.names: list[str] | None = None
        self.cols: list[int] | None = None

    def __call__(self, msg: Any) -> npt.NDArray[Any]:
        if self.steps is not None:
            try:
                value = msgfields.resolve(msg, self.steps)
            except MappingError:
                value = None  # the full path below names the problem
            if isinstance(value, np.ndarray):
                if self.cols is None:
                    return value.reshape(-1)
                if msg.name == self.names:
                    return value.reshape(-1)[self.cols]
        value, _ = self.source._vector_of(msg, self.stream, self.where)
        self.steps = _PATHS.get(self.stream.field or "")
        if self.stream.names is not None:
            self.names = list(msg.name)
            self.cols = msgfields.joint_columns(self.names, list(self.stream.names), self.where)
        return value


def _keep_transforms(log: TransformSpill, receive: TimeLog, msg: Any, raw: Raw) -> None:
    message = len(receive) - 1
    for transform in msgfields.transforms(msg):
        log.append(*transform, message=message)


def partial_meta(salvaged: Sequence[Salvage]) -> dict[str, Any]:
    """``source_meta["partial"]`` of a salvaged episode: per file what was recovered and lost, and the time span."""
    firsts = [s.first_ns for s in salvaged if s.first_ns is not None]
    lasts = [s.last_ns for s in salvaged if s.last_ns is not None]
    complete = all(s.complete for s in salvaged)
    return {
        "salvaged": True,
        "complete": complete,
        "files": [s.as_dict() for s in salvaged],
        "recovered_until_ns": max(lasts) if lasts else None,
        "recovered_from_ns": min(firsts) if firsts else None,
        "bytes_lost": "unknown"
        if any(s.container == "sqlite3" for s in salvaged)
        else sum(s.bytes_lost for s in salvaged),
        "lost": "nothing: every chunk the files' headers state was read (their index was rebuilt from them)"
        if complete
        else "every message after the recovered prefix of each file named (its count is unknown: the index "
        "that held it is gone)",
    }


def ledger_line(led: TopicLedger) -> str:
    """One topic's ledger as a line of text (``rdstd info`` without ``--format json``)."""
    counts = f"index {'?' if led.index is None else led.index}, read {led.read}, decoded {led.decoded}"
    failed = f", failed {led.failed}" if led.failed else ""
    error = f" ({led.error})" if led.error else ""
    return f"{led.topic} [{led.msgtype}, {led.connections} conn., type from {led.definition}]: {counts}{failed}{error}"


def topic_rate(led: TopicLedger) -> float | None:
    """Messages per second from the ledger's first/last receive times."""
    if led.read < 2 or led.first_ns is None or led.last_ns is None or led.last_ns <= led.first_ns:
        return None
    return (led.read - 1) * 1e9 / (led.last_ns - led.first_ns)


def _episode_key(path: Path) -> str:
    return _SAFE.sub("_", path.name).strip("_") or "bag"


#: (topic, clock): one topic's times on one clock.
TopicClock = tuple[str, str]


@dataclass(frozen=True)
class Piece:
    """One episode of a bag: the whole recording, or the part between clock resets.

    ``ranges`` gives, per (topic, clock), the ``[start, stop)`` message positions (stream order) it covers;
    ``starts_ns`` is the receive time it starts at (None for the first piece), ``starts_at`` why.
    """

    index: int
    count: int
    ranges: dict[TopicClock, tuple[int, int]]
    starts_ns: int | None
    #: Why it starts where it does: ``start`` (the recording's), ``reset`` (a clock reset), or the episode rule.
    starts_at: str = "start"
    #: The positions a stream sampled at the master times reads: ``ranges`` and, across a cut made by the episode
    #: rule, the one message on the other side (the master's own range and clock resets are never crossed).
    reach: dict[TopicClock, tuple[int, int]] = field(default_factory=dict)


class Aligner:
    """Builds the episodes of one bag and plan: one, or one per piece between clock resets (:meth:`pieces`)."""

    def __init__(self, source: RosbagSource, plan: RosbagPlan) -> None:
        self.source = source
        self.plan = plan
        self.path = source.path
        self.topics: dict[str, TopicData] = {}
        self.findings: list[str] = []
        self.by_topic: dict[str, list[str]] = {}
        self._pieces: list[Piece] | None = None
        self._cut_kinds: list[str] = []
        #: The per-frame columns of the episodes built and still held (read while they are converted): closed with
        #: the source; an episode dropped before takes its columns (and their temporary files) with it.
        self.columns: weakref.WeakSet[FrameColumn] = weakref.WeakSet()

    def topic(self, name: str) -> TopicData:
        if name not in self.topics:
            self.topics[name] = self.source.read_topic(name)
        return self.topics[name]

    def _uses(self) -> list[TopicClock]:
        """Every (topic, clock) the plan samples, the master's first; TF topics on their receive clock."""
        uses: list[TopicClock] = []
        master = self.plan.master
        if master.topic is not None:
            assert master.clock is not None
            uses.append((master.topic, master.clock))
        for stream in self.plan.streams.values():
            if stream.topic is not None:
                assert stream.clock is not None
                uses.append((stream.topic, stream.clock))
        if any(s.tf is not None for s in self.plan.streams.values()):
            uses += [(name, "receive") for name in self.tf_topics()]
        return list(dict.fromkeys(uses))

    def tf_topics(self) -> list[str]:
        """The decoded TF topics of the bag."""
        return [n for n, led in self.source.ledger.items() if led.msgtype in msgfields.TF_TYPES and led.decoded]

    def pieces(self) -> list[Piece]:
        """The recording cut at its clock resets (a backward jump over 1 s on a clock the plan uses), and where the
        plan's episode rule cuts it (:meth:`rule_cuts`).

        A reset's cut is the receive time of the first message after the jump; cuts of several topics within 1 s
        of each other are one reset. A topic that resets is split at its own jumps (it must reset as often as the
        recording does, else which parts belong together is unknown: an error), and within each part at the rule's
        cuts; a topic that does not is split at every cut's receive time.
        """
        if self._pieces is not None:
            return self._pieces
        checks = {}
        for topic, clock in self._uses():
            data = self.topic(topic)
            tf = topic in self.tf_topics()
            check = _check_clock(topic, data, "receive" if tf else clock, header=not tf and not data.headerless)
            self.findings.extend(f for f in check.findings if f not in self.findings)
            self.by_topic.setdefault(topic, [])
            self.by_topic[topic] += [f for f in check.findings if f not in self.by_topic[topic]]
            checks[(topic, clock)] = (data, check)
        resets: list[int] = []
        starts = (int(d.receive.range(a, a + 1)[0]) for d, c in checks.values() for a, _ in c.segments[1:])
        for at in sorted(starts):
            if not resets or at - resets[-1] > RESET_NS:
                resets.append(at)
        rule_cuts, rule = self.rule_cuts()
        cuts = sorted([(at, "reset") for at in resets] + [(at, rule) for at in rule_cuts if at not in resets])
        count = len(cuts) + 1
        ranges: list[dict[TopicClock, tuple[int, int]]] = [{} for _ in range(count)]
        reach: list[dict[TopicClock, tuple[int, int]]] = [{} for _ in range(count)]
        master_key = (self.plan.master.topic, self.plan.master.clock)
        for key, (data, check) in checks.items():
            if not check.resets and count == 1:  # the common case: the whole topic, its times not needed again
                ranges[0][key] = (0, len(data.receive))
                if key != master_key:
                    reach[0][key] = ranges[0][key]
                continue
            receive = data.receive_ns
            if check.resets:
                if len(check.segments) != len(resets) + 1:
                    raise EpisodeError(
                        f"{self.path}: {key[0]} has {check.resets} clock reset(s) on its {key[1]} clock, the "
                        f"recording {len(resets)}: which parts belong together is unknown",
                        hint="cut the bag at the resets (e.g. rosbags-convert or mcap filter) and convert each part",
                        situation="clock-reset",
                    )
                bounds, segment = [0], 0
                for at, kind in cuts:
                    if kind == "reset":  # the topic's own jump
                        segment += 1
                        bounds.append(check.segments[segment][0])
                    else:  # within the part it is in
                        a, b = check.segments[segment]
                        bounds.append(a + int(np.searchsorted(receive[a:b], at, side="left")))
                bounds.append(check.segments[-1][1])
            else:
                if count > 1 and np.any(np.diff(receive) < 0):
                    raise EpisodeError(
                        f"{self.path}: {key[0]}: receive times go backwards, so it cannot be cut into episodes",
                        hint="cut the bag at the resets (e.g. rosbags-convert or mcap filter) and convert each part",
                        situation="receive-times-not-increasing",
                    )
                at_cuts = np.searchsorted(receive, [at for at, _ in cuts], side="left").tolist()
                bounds = [0, *at_cuts, len(receive)]
            for k in range(count):
                ranges[k][key] = (int(bounds[k]), int(bounds[k + 1]))
                # a stream sampled at the master times keeps its samples next to a rule's cut, so the first and last
                # frames of an episode can be interpolated (never across a clock reset)
                if key != master_key:
                    after_rule = k > 0 and cuts[k - 1][1] != "reset"
                    before_rule = k + 1 < count and cuts[k][1] != "reset"
                    reach[k][key] = (
                        max(0, int(bounds[k]) - after_rule),
                        min(len(receive), int(bounds[k + 1]) + before_rule),
                    )
        self._pieces = [
            Piece(k, count, ranges[k], cuts[k - 1][0] if k else None, cuts[k - 1][1] if k else "start", reach[k])
            for k in range(count)
        ]
        self._cut_kinds = sorted({kind for _, kind in cuts})
        return self._pieces

    def rule_cuts(self) -> tuple[list[int], str]:
        """The receive times at which the plan's episode rule starts a new episode, and the rule in words.

        ``split_on: {topic}``: each message of the event topic; ``gap_s``: the middle of each pause longer than
        ``gap_s`` in the master stream (a master topic's receive times; with an fps master, the receive times of
        every topic the streams read). A cut that would leave an episode without a master message (an event
        before the first master message or after the last, two events with none between) is not made.
        """
        rule = self.plan.episodes
        if rule is None:
            return [], ""
        master = self.plan.master
        if master.topic is not None:
            span = np.sort(self.topic(master.topic).receive_ns)
        else:
            topics = {s.topic for s in self.plan.streams.values() if s.topic is not None}
            parts = [self.topic(t).receive_ns for t in sorted(topics)]
            span = np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
        if rule.split_on is not None:
            events = np.sort(self.topic(rule.split_on.topic).receive_ns)
            what = f"each {rule.split_on.topic} message"
        else:
            assert rule.gap_s is not None
            gaps = np.flatnonzero(np.diff(span) > int(rule.gap_s * 1e9))
            events = (span[gaps] + span[gaps + 1]) // 2  # the middle of the pause: what other streams sent before
            # the master resumed belongs with it
            what = f"pauses over {rule.gap_s:g} s"
        kept: list[int] = []
        before = 0
        for at, position in zip(events.tolist(), np.searchsorted(span, events, side="left").tolist(), strict=True):
            if before < position < len(span):  # master messages on both sides of the cut
                kept.append(int(at))
                before = position
        return kept, what

    def master_times(self, piece: Piece) -> tuple[npt.NDArray[np.int64], str]:
        """The episode's master times (in order; the frames it can have) and what they are, in words."""
        master = self.plan.master
        if master.topic is not None:
            assert master.clock is not None
            times = self.log(self.topic(master.topic), master.clock).range(*piece.ranges[(master.topic, master.clock)])
            return np.sort(times, kind="stable"), f"{master.topic} ({master.clock})"
        assert master.fps is not None
        starts, stops = [], []
        for stream in self.plan.streams.values():
            if stream.topic is None:
                continue
            assert stream.clock is not None
            span = StreamTimes(
                self.log(self.topic(stream.topic), stream.clock), *piece.ranges[(stream.topic, stream.clock)]
            )
            if span.min is not None and span.max is not None:
                starts.append(span.min)
                stops.append(span.max)
        if not starts:
            raise EpisodeError(
                f"{self.path}: no stream has messages to span a {master.fps:g} fps grid", situation="streams-empty"
            )
        return fixed_grid(
            max(starts), min(stops), master.fps
        ), f"{master.fps:g} fps grid over the span all streams cover"

    def episode(self, ref: EpisodeRef) -> SourceEpisode:
        pieces = self.pieces()
        if not 0 <= ref.index < len(pieces):
            raise CorruptSourceError(
                f"{self.path}: no episode {ref.index} (the bag has {len(pieces)})",
                hint="the source changed while it was read, or the reference is stale; open it again",
                situation="episode-not-found",
            )
        piece = pieces[ref.index]
        master, master_desc = self.master_times(piece)
        streams: dict[str, StreamTimes] = {}
        for name, stream in self.plan.streams.items():
            if stream.topic is None:
                continue
            assert stream.clock and stream.method and stream.max_age_ms
            data = self.topic(stream.topic)
            lo, hi = piece.reach.get((stream.topic, stream.clock), piece.ranges[(stream.topic, stream.clock)])
            streams[name] = StreamTimes(self.log(data, stream.clock), lo, hi)
            if data.msgtype in (msgfields.IMAGE, msgfields.COMPRESSED) and stream.method == "interpolate":
                raise MappingError(
                    f"{self.path}: stream {name}: images cannot be interpolated",
                    hint="use hold or nearest",
                    situation="image-interpolation",
                )
        aligned = _Aligned(self, streams, self._tf(piece), len(master))
        try:
            kept = np.zeros(len(master), dtype=bool)
            for start in range(0, len(master), WINDOW_FRAMES):  # a window of master frames at a time (window.py)
                kept[start : start + WINDOW_FRAMES] = aligned.add(master[start : start + WINDOW_FRAMES])
            if not kept.any():
                raise EpisodeError(
                    f"{self.path}: {_piece_name(piece)}no master time has a sample of every stream within its "
                    "max_age_ms",
                    hint="raise max_age_ms, check the clocks (see the clock findings in rdstd info), or the topics' "
                    "times",
                    situation="no-aligned-sample",
                )
            vectors, images, reports, tf_report = aligned.outputs()
        except BaseException:
            aligned.close()
            raise
        self.columns.update(column for columns in aligned.columns.values() for column in columns.values())
        stamps = master[kept]
        meta: dict[str, Any] = {
            "bag": str(self.path),
            "master": master_desc,
            "master_frames": len(master),
            "frames_kept": int(kept.sum()),
            "alignment": reports,
            "tf": tf_report,
            "clock_findings": list(self.findings),
            "start_ns": int(stamps[0]),
            "notes": [*self.findings, *self._drop_notes(reports, len(master), int(kept.sum()))],
        }
        if piece.count > 1:
            reasons = {
                "start": "the start of the recording",
                "reset": "the recording's clock reset (a backward jump over 1 s): each part is its own episode",
            }
            rule = self.plan.episodes
            meta["piece"] = {
                "index": piece.index,
                "pieces": piece.count,
                "starts_at_receive_ns": piece.starts_ns,
                "reason": reasons.get(piece.starts_at, f"the plan's episode rule: a new episode at {piece.starts_at}"),
                "rule": rule.model_dump(mode="json", exclude_none=True) if rule is not None else "one bag",
            }
            at = [("its clock reset(s)" if kind == "reset" else kind) for kind in self._cut_kinds]
            meta["notes"].insert(
                0, f"{_piece_name(piece)}the bag was split at {' and '.join(at)} into {piece.count} episodes"
            )
        if self.source.bag.salvaged:
            meta["partial"] = partial_meta(self.source.bag.salvaged)
            meta["notes"].insert(
                0,
                "salvaged: the bag's index was rebuilt from all its chunks (see source_meta.partial)"
                if meta["partial"]["complete"]
                else "partial: salvaged from a truncated bag (see source_meta.partial)",
            )
        return SourceEpisode(
            ref,
            int(kept.sum()),
            vectors=vectors,
            images=images,
            timestamps_s=(stamps - stamps[0]).astype(np.float64) / 1e9,
            task=self._task(),
            meta=meta,
        )

    def _drop_notes(self, reports: dict[str, Any], total: int, kept: int) -> list[str]:
        if kept == total:
            return []
        worst = ", ".join(f"{n}: {r['dropped']}" for n, r in reports.items() if r["dropped"])
        return [
            f"{total - kept} of {total} master frames dropped: a stream had no sample within its max_age_ms ({worst})"
        ]

    def _tf(self, piece: Piece) -> TfWindows | None:
        """The episode's transforms, read a window at a time (None: the plan looks none up). Static transforms
        hold for every piece; dynamic ones for their own."""
        if not any(s.tf is not None for s in self.plan.streams.values()):
            return None
        sources = []
        for name in self.tf_topics():
            static = "static" in name
            messages = None if static else piece.reach.get((name, "receive"), piece.ranges[(name, "receive")])
            sources.append((self.topic(name).transforms, static, messages))
        return TfWindows(sources)

    def log(self, data: TopicData, clock: str) -> TimeLog:
        """The topic's times on ``clock``."""
        assert clock == "receive" or not data.headerless
        return data.header if clock == "header" else data.receive

    def _task(self) -> str | None:
        task = self.plan.task
        if task is None:
            return None
        if task.text is not None:
            return task.text
        if task.sidecar is not None:
            where = inside(self.path.parent, task.sidecar, "the plan's task sidecar")
            try:
                return where.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise EpisodeError(
                    f"{where}: cannot read the task text ({exc.strerror or exc})", situation="task-text-unreadable"
                ) from exc
        assert task.topic is not None
        data = self.topic(task.topic)
        if not data.texts:
            raise EpisodeError(
                f"{self.path}: task topic {task.topic} holds no text message", situation="task-text-missing"
            )
        return data.texts[0]


class _Aligned:
    """One episode's alignment, built a window of master frames at a time (:meth:`add`): which frames are kept
    (every stream and lookup has a sample within its limit), and per kept frame what the converter reads when it
    slices (sample positions and weights, camera message positions, poses) in :class:`~.spill.FrameColumn`
    temporary files, with the reports' counts; :meth:`outputs` gives the episode's arrays and reports."""

    def __init__(self, aligner: Aligner, streams: dict[str, StreamTimes], tf: TfWindows | None, frames: int) -> None:
        self.aligner = aligner
        self.streams = streams
        self.tf = tf
        self.frames = frames
        self.columns: dict[str, dict[str, FrameColumn]] = {}
        self.builders: dict[str, ReportBuilder] = {}
        where = str(aligner.path)
        for name, times in streams.items():
            stream = aligner.plan.streams[name]
            assert stream.method and stream.clock and stream.max_age_ms
            self.columns[name] = {
                "lo": FrameColumn(where, np.int64),
                "hi": FrameColumn(where, np.int64),
                "w": FrameColumn(where, np.float64),
                "dt": FrameColumn(where, np.int64),
            }
            self.builders[name] = ReportBuilder(
                name,
                stream.method,
                stream.clock,
                stream.max_age_ms,
                times.count,
                times.largest_gap_ns,
                self.columns[name]["dt"],
            )
        self.lookups = {n: s.tf for n, s in aligner.plan.streams.items() if s.tf is not None}
        for name in self.lookups:
            self.columns[name] = {"pose": FrameColumn(where, np.float64, (7,))}
        #: Per lookup: lookups that succeeded, the largest extrapolation (ns), failures by edge and side.
        self.tf_counts: dict[str, tuple[int, float, dict[tuple[str, str, str], Failure]]] = {
            name: (0, 0.0, {}) for name in self.lookups
        }
        #: Per lookup, the edges in the order it walks them (its failures are listed in that order).
        self.walks: dict[str, list[str]] = {}

    def add(self, master: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Align the master times ``master`` (a window, in order); which of them are kept."""
        plan = self.aligner.plan
        valid = np.ones(len(master), dtype=bool)
        samplings: dict[str, tuple[Sampling, int]] = {}
        for name, times in self.streams.items():
            stream = plan.streams[name]
            assert stream.method and stream.max_age_ms
            window, first = times.window(int(master[0]), int(master[-1]))
            sampling = sample_at(master, window, stream.method, int(stream.max_age_ms * 1e6))
            samplings[name] = (sampling, first)
            valid &= sampling.valid
        poses = {}
        if self.tf is not None:
            buffer = self.tf.buffer(int(master[0]), int(master[-1]))
            for name, tf in self.lookups.items():
                try:
                    found, offsets, failures = buffer.lookup_many(
                        tf.target, tf.source, master, int(tf.max_extrapolation_ms * 1e6)
                    )
                except TransformError as exc:
                    raise MappingError(
                        f"{self.aligner.path}: stream {name}: {exc}",
                        hint="fix the frames in the plan",
                        situation="plan-frames-invalid",
                    ) from exc
                ok = ~np.isnan(offsets)
                succeeded, worst, merged = self.tf_counts[name]
                if ok.any():
                    worst = max(worst, float(np.max(offsets[ok])))
                self.tf_counts[name] = (succeeded + int(ok.sum()), worst, merged)
                for failure in failures:
                    had = merged.get(failure.key)
                    merged[failure.key] = failure if had is None else had.merge(failure)
                self.walks.setdefault(name, buffer.walk(tf.target, tf.source))
                poses[name] = (np.concatenate([found.translation, found.rotation], axis=1), ok)
        for _, ok in poses.values():
            valid &= ok
        kept = valid
        for name, (sampling, first) in samplings.items():
            self.builders[name].add(sampling, kept)
            times, columns = self.streams[name], self.columns[name]
            columns["lo"].append(times.positions(first + sampling.lo[kept]))
            columns["hi"].append(times.positions(first + sampling.hi[kept]))
            columns["w"].append(sampling.w[kept])
        for name, (pose, _) in poses.items():
            self.columns[name]["pose"].append(pose[kept])
        return kept

    def outputs(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The episode's vectors, images, alignment reports and TF report."""
        aligner, source = self.aligner, self.aligner.source
        vectors: dict[str, Any] = {}
        images: dict[str, Any] = {}
        reports: dict[str, Any] = {}
        for name, stream in aligner.plan.streams.items():
            columns = self.columns[name]
            if stream.tf is not None:
                vectors[name] = columns["pose"]
                continue
            assert stream.method and stream.topic
            found = self.builders[name].build()
            found.findings = list(aligner.by_topic.get(stream.topic, []))
            reports[name] = found.as_dict()
            data = aligner.topic(stream.topic)
            key = source._keys_by_name[name]
            if data.msgtype == msgfields.COMPRESSED and key.codec is not None:
                frames = BagFrames(source.window(stream.topic, data), columns["lo"], key.codec)
                images[name] = EncodedFrames(key.codec, frames)
            elif data.msgtype in IMAGE_TYPES:  # raw pixels, Bayer, or compressedDepth decoded to depth
                where = f"{aligner.path}: {stream.topic}"
                decode = msgfields.raw_image if data.msgtype == msgfields.IMAGE else msgfields.compressed_depth
                images[name] = BagPixels(
                    source.window(stream.topic, data),
                    columns["lo"],
                    key.shape,
                    np.dtype(key.dtype),
                    partial(decode, where=where),
                )
            else:
                if name not in data.rows:
                    raise EpisodeError(
                        f"{aligner.path}: {stream.topic}: no message to take {name} from", situation="stream-empty"
                    )
                vectors[name] = BagVectors(
                    data.rows[name].read,
                    f"{aligner.path}: {stream.topic}",
                    columns["lo"],
                    columns["hi"],
                    columns["w"],
                    partial(apply_sampling, method=stream.method, quaternions=stream.quaternions),
                    key.shape,
                    np.dtype(key.dtype),
                )
        tf_report: dict[str, Any] = {}
        assert self.tf is not None or not self.lookups
        for name, tf in self.lookups.items():
            succeeded, worst, failures = self.tf_counts[name]
            tf_report[name] = {
                "target": tf.target,
                "source": tf.source,
                "lookups": self.frames,
                "succeeded": succeeded,
                "success_rate": succeeded / self.frames if self.frames else 0.0,
                "max_extrapolation_ms": worst / 1e6,
                "failures": [str(f) for f in _walk_order(failures.values(), self.walks.get(name, []))],
                "conflicts": list(self.tf.conflicts) if self.tf is not None else [],
            }
        return vectors, images, reports, tf_report

    def close(self) -> None:
        """Drop the per-frame columns (and their temporary files)."""
        for columns in self.columns.values():
            for column in columns.values():
                column.close()


def _check_clock(topic: str, data: TopicData, clock: str, *, header: bool) -> ClockCheck:
    """:func:`~rdstd.streams.align.check_clock` of a topic's kept times, read a block at a time (``header``: its
    header stamps too)."""
    scan = ClockScan(topic, header, clock)
    for start in range(0, len(data.receive), CLOCK_BLOCK):
        stop = min(len(data.receive), start + CLOCK_BLOCK)
        scan.add(data.header.range(start, stop) if header else None, data.receive.range(start, stop))
    return scan.finish(lambda: (data.header.values(), data.receive.values()) if header else None)


def _walk_order(failures: Any, walk: list[str]) -> list[Failure]:
    """Failures merged over windows in the order one lookup over the whole episode lists them (per edge walked,
    before its first sample then after its last)."""
    return sorted(failures, key=lambda f: (walk.index(f.child) if f.child in walk else len(walk), f.side != "before"))


def _piece_name(piece: Piece) -> str:
    return f"piece {piece.index + 1} of {piece.count}: " if piece.count > 1 else ""


def _safe(topic: str) -> str:
    return _SAFE.sub("_", topic).strip("_") or "topic"


def draft_plan(source: RosbagSource) -> dict[str, Any] | None:
    """A plan proposal from what the bag holds (for the user to check and write down; never used silently)."""
    ledger = source.ledger
    usable = {t: led for t, led in ledger.items() if led.decoded}
    cams = [t for t, led in usable.items() if led.msgtype in (msgfields.IMAGE, msgfields.COMPRESSED)]
    joints = [t for t, led in usable.items() if led.msgtype == msgfields.JOINT_STATE]
    streams: dict[str, Any] = {}
    master_topic = (cams or joints or [""])[0]
    for topic in joints:
        period = 1e3 / (topic_rate(usable[topic]) or 10.0)
        names = list(source.first_message(topic).name)
        streams[_safe(topic)] = {
            "topic": topic,
            "field": "position",
            "names": names,
            "clock": "header",
            "method": "interpolate",
            "max_age_ms": round(2.5 * period, 3),
        }
    for topic in cams:
        period = 1e3 / (topic_rate(usable[topic]) or 10.0)
        own = topic == master_topic
        streams[_safe(topic)] = {
            "topic": topic,
            "clock": "header",
            "method": "nearest" if own else "hold",
            "max_age_ms": 1.0 if own else round(1.5 * period, 3),
        }
    if not streams:
        return None
    draft: dict[str, Any] = {"master": {"topic": master_topic, "clock": "header"}, "streams": streams}
    tasks = [t for t, led in usable.items() if led.msgtype == msgfields.STRING and "task" in t.lower()]
    if tasks:
        draft["task"] = {"topic": tasks[0]}
    return draft


class RosbagBackend(FormatBackend):
    """ROS 1 bags, rosbag2 folders (sqlite3 or MCAP), and lone ``.db3``/``.mcap`` files, via rosbags."""

    name = "rosbag"
    extra = "ros"
    priority = 40

    def detect(self, path: Path) -> bool:
        """A ``#ROSBAG V2.0`` file, an MCAP or sqlite3 file not inside a rosbag2 folder, or a folder of rosbag2
        storage files (with its metadata.yaml, or without: then only salvage reads it)."""
        try:
            if path.is_dir():  # a rosbag2 folder, or its storage files left without metadata.yaml (salvage)
                return any(p.suffix in (".db3", ".mcap", ".zstd") for p in path.iterdir())
            if not path.is_file():
                return False
            with path.open("rb") as f:
                head = f.read(16)
            if head.startswith(ROSBAG1_MAGIC + b"2.0"):
                return True
            lone = not (path.parent / "metadata.yaml").is_file()
            if head.startswith(MCAP_MAGIC):
                return lone
            return head.startswith(SQLITE_MAGIC) and path.suffix == ".db3" and lone
        except OSError:
            return False

    def open(self, path: Path) -> RosbagSource:
        """Open the bag at ``path`` (its ``<bag>.rdstd.yaml`` plan, if any, is read too)."""
        bag_files(path)
        return RosbagSource(path)

    def open_salvaged(self, path: Path) -> RosbagSource:
        """Open a possibly truncated bag, recovering its readable prefix (``rdstd convert --salvage``); the
        episode of a bag that needed salvage is marked partial (``source_meta["partial"]``)."""
        bag_files(path, salvage=True)
        return RosbagSource(path, salvage=True)
