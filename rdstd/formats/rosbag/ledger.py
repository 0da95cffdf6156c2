"""The per-topic ledger: messages in the index, read, decoded and failed (with the first error), for every topic.

A difference between the index and what was read is an error of the bag (``problem``), never silence; a topic
whose type cannot be had is disabled with its reason; decode failures are counted with the first error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from rdstd.formats.rosbag.bag import Raw, RawBag
from rdstd.formats.rosbag.spill import TimeLog
from rdstd.formats.rosbag.types import Decoder, TypeResolver


@dataclass
class TopicLedger:
    """One topic's counts."""

    topic: str
    msgtype: str
    connections: int
    #: What the bag's index says (None: the container states no count).
    index: int | None
    read: int = 0
    decoded: int = 0
    failed: int = 0
    #: Where the type came from: bag, user, stock, none.
    definition: str = "none"
    #: The first decode error, or why the topic is disabled.
    error: str = ""
    first_ns: int | None = None
    last_ns: int | None = None

    @property
    def problem(self) -> str:
        """Why the counts do not add up ("" when they do)."""
        if self.index is not None and self.read != self.index:
            return f"{self.topic}: the index holds {self.index} messages, {self.read} could be read"
        return ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


#: Called with (topic, receive time ns, decoded message, serialized bytes) for every message decoded while counting.
Visitor = Callable[[str, int, Any, Raw], None]


class FastPath(Protocol):
    """Takes a topic's later messages as bytes (``(t, raw)``) and decodes them its own way, in batches; after the
    pass ``flush()`` finishes the last batch, and ``failed``/``error`` say how many did not decode and why."""

    failed: int
    error: str

    def __call__(self, t: int, raw: Raw) -> None: ...

    def flush(self) -> None: ...


#: Asked once per topic after its first decoded message was visited (with the topic's decoder): a
#: :class:`FastPath` for the rest, or None.
Claim = Callable[[str, Callable[[Raw], Any]], FastPath | None]


def describe(exc: BaseException) -> str:
    """A decode error as the ledger records it (type and one line, at most 200 characters)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


class DecodeFallback:
    """What the :class:`FastPath` keepers share: a message they cannot read from its bytes is decoded by
    ``decode`` and kept by ``keep(t, msg, raw)`` as every other topic's messages are; one that does not decode is
    counted in ``failed`` (the first cause in ``error``) for the ledger."""

    def __init__(
        self, receive: TimeLog, header: TimeLog, decode: Callable[[Raw], Any], keep: Callable[[int, Any, Raw], None]
    ) -> None:
        self.receive = receive
        self.header = header
        self.decode = decode
        self.keep = keep
        self.failed = 0
        self.error = ""

    def _decode(self, t: int, raw: Raw) -> None:
        """Decode one message and keep it; count it as failed when it does not decode."""
        try:
            msg = self.decode(raw)
        except Exception as exc:  # rosbags' deserializers raise several types: counted, first cause kept
            self.failed += 1
            self.error = self.error or describe(exc)
            return
        self.keep(t, msg, raw)


def build_ledger(
    bag: RawBag, resolver: TypeResolver, visit: Visitor | None = None, claim: Claim | None = None
) -> tuple[dict[str, TopicLedger], dict[str, Decoder]]:
    """Read every message of every topic once, decoding each, and count; ``visit`` sees each decoded message
    (the reader keeps what its plan needs, so the bag is read once). ``claim`` may hand a topic's messages after
    its first to a :class:`FastPath` (``joints.JointBatch``), which decodes them in batches; those count as decoded
    unless the fast path says they failed.

    One pass over the files in time order, except for ROS 1 files whose chunks overlap in time: those are read
    topic by topic (time-ordered reading would switch chunks at almost every message).
    """
    ledgers: dict[str, TopicLedger] = {}
    decoders: dict[str, Decoder] = {}
    for name, topic in sorted(bag.topics.items()):
        decoder = resolver.decoder(topic)
        decoders[name] = decoder
        entry = ledgers[name] = TopicLedger(name, topic.msgtype, topic.connections, topic.index_count)
        entry.definition = decoder.source
        if decoder.decode is None:
            entry.error = decoder.error
    if bag.chunks_overlap:
        stream: Iterable[tuple[str, int, Raw]] = (
            (name, t, raw) for name in sorted(bag.topics) for t, raw in bag.messages(name)
        )
    else:
        stream = bag.all_messages()
    counts: dict[str, list[int]] = {name: [0, 0, 0] for name in ledgers}  # read, decoded, failed
    spans: dict[str, list[int]] = {}  # first, last receive time
    fast: dict[str, FastPath] = {}
    for name, t, raw in stream:
        count = counts[name]
        count[0] += 1
        span = spans.get(name)
        if span is None:
            spans[name] = [t, t]
        elif t < span[0]:
            span[0] = t
        elif t > span[1]:
            span[1] = t
        take = fast.get(name)
        if take is not None:
            take(t, raw)
            count[1] += 1
            continue
        decode = decoders[name].decode
        if decode is None:
            count[2] += 1
            continue
        try:
            msg = decode(raw)
        except Exception as exc:  # rosbags' deserializers raise several types: counted, first cause kept
            count[2] += 1
            entry = ledgers[name]
            entry.error = entry.error or describe(exc)
        else:
            count[1] += 1
            if visit is not None:
                visit(name, t, msg, raw)
                if claim is not None and count[1] == 1:
                    found = claim(name, decode)
                    if found is not None:
                        fast[name] = found
    for name, take in fast.items():
        take.flush()
        counts[name][1] -= take.failed
        counts[name][2] += take.failed
        ledgers[name].error = ledgers[name].error or take.error
    for name, entry in ledgers.items():
        entry.read, entry.decoded, entry.failed = counts[name]
        if name in spans:
            entry.first_ns, entry.last_ns = spans[name]
    return ledgers, decoders
