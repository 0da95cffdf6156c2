"""Message types per topic: the bag's embedded definitions, a user ``.msg``/``.idl`` folder, and the stock stores.

rosbags' ``AnyReader`` uses the stock typestore only when *no* connection carries a definition, and one
unparsable definition (a ``.srv`` event schema, a digest mismatch) fails the whole bag. Here every topic is
resolved on its own:

1. definitions embedded in the bag (ROS 1 connection records, MCAP schemas, rosbag2 ``message_definitions``);
2. else a user-supplied folder of ``.msg``/``.idl`` files (``<pkg>/msg/<Name>.msg`` or any ``*.msg`` whose
   header or path names the package);
3. else the stock store (ROS 1 Noetic plus ``tf2_msgs/TFMessage``, or the rosbag2 bag's distro, else Humble).

A topic whose definition does not parse, or whose types clash with another topic's, gets a :class:`Decoder` with
``error`` set: it is disabled with that finding, the others decode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rdstd.formats.rosbag.bag import Definition, Raw, TopicIndex

_IDL_SEP = "=" * 80 + "\n"
_TF2_MSG = "geometry_msgs/TransformStamped[] transforms"


@dataclass
class Decoder:
    """How one topic's raw bytes become a message object; ``error`` says why it cannot (then ``decode`` is None)."""

    msgtype: str
    source: str
    decode: Callable[[Raw], Any] | None = None
    error: str = ""


def _typesys() -> Any:
    import rosbags.typesys

    return rosbags.typesys


def stock_store(is_ros2: bool, distro: str | None) -> Any:
    """The stock typestore for the bag (ROS 1 Noetic with tf2_msgs added; a ROS 2 distro's, Humble by default)."""
    ts = _typesys()
    if not is_ros2:
        store = ts.get_typestore(ts.Stores.ROS1_NOETIC)
        store.register(ts.get_types_from_msg(_TF2_MSG, "tf2_msgs/msg/TFMessage"))
        return store
    name = f"ROS2_{(distro or '').upper()}"
    return ts.get_typestore(getattr(ts.Stores, name, ts.Stores.ROS2_HUMBLE))


def parse_definition(definition: Definition, msgtype: str) -> dict[str, Any]:
    """The types a definition declares (msgtype and its dependencies); rosbags' parse errors propagate."""
    ts = _typesys()
    if definition.format == "msg":
        return dict(ts.get_types_from_msg(definition.text, msgtype))
    types: dict[str, Any] = {}
    if definition.text.startswith(f"{_IDL_SEP}IDL: "):
        for part in definition.text.split(_IDL_SEP)[1:]:
            _, idl = part.split("\n", 1)
            types.update(ts.get_types_from_idl(idl))
    else:
        types.update(ts.get_types_from_idl(definition.text))
    return types


def user_types(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """Types from every ``.msg``/``.idl`` file under ``folder`` and a finding per file that does not parse."""
    ts = _typesys()
    types: dict[str, Any] = {}
    problems: list[str] = []
    for path in sorted(folder.rglob("*")):
        if path.suffix not in {".msg", ".idl"} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            if path.suffix == ".idl":
                types.update(ts.get_types_from_idl(text))
            else:
                types.update(ts.get_types_from_msg(text, _msgtype_of(path, folder)))
        except Exception as exc:  # rosbags' parser raises several types: one boundary per file, cause kept
            problems.append(f"{path}: does not parse ({type(exc).__name__}: {_short(exc)})")
    return types, problems


def _msgtype_of(path: Path, folder: Path) -> str:
    """``pkg/msg/Name`` from ``.../pkg/msg/Name.msg`` (or ``pkg/Name.msg`` directly under the folder)."""
    parts = path.relative_to(folder).with_suffix("").parts
    if len(parts) >= 3 and parts[-2] == "msg":
        return f"{parts[-3]}/msg/{parts[-1]}"
    if len(parts) >= 2:
        return f"{parts[-2]}/msg/{parts[-1]}"
    return f"{folder.name}/msg/{parts[-1]}"


class TypeResolver:
    """Builds one :class:`Decoder` per topic (see the module docs for the order definitions are taken in)."""

    def __init__(self, is_ros2: bool, distro: str | None, user_dir: Path | None = None) -> None:
        self.is_ros2 = is_ros2
        self.stock = stock_store(is_ros2, distro)
        self.shared = stock_store(is_ros2, distro)
        self.findings: list[str] = []
        self.user: dict[str, Any] = {}
        if user_dir is not None:
            self.user, problems = user_types(user_dir)
            self.findings.extend(problems)
            self._add(self.user)

    def _add(self, types: dict[str, Any]) -> Any:
        """Register ``types`` in the shared store; on a clash, a store of their own (stock + them) is returned."""
        ts = _typesys()
        try:
            self.shared.register(types)
            return self.shared
        except ts.TypesysError:
            own = stock_store(self.is_ros2, None)
            base = {k: v for k, v in own.fielddefs.items() if k not in types}
            fresh = ts.get_typestore(ts.Stores.EMPTY)
            fresh.register({**base, **types})
            return fresh

    def decoder(self, topic: TopicIndex) -> Decoder:
        """How to decode ``topic``; an error (never an exception) when its type cannot be had."""
        if "|" in topic.msgtype:
            return Decoder(
                topic.msgtype, "none", error=f"connections of one topic disagree on the type ({topic.msgtype})"
            )
        source = "stock"
        store = self.shared
        if topic.definition.format != "none" and topic.definition.text.strip():
            try:
                types = parse_definition(topic.definition, topic.msgtype)
                store = self._add(types)
            except Exception as exc:  # rosbags' parsers raise several types: one boundary per topic, cause kept
                return Decoder(topic.msgtype, "bag", error=f"its message definition does not parse: {_short(exc)}")
            source = "bag"
        elif topic.msgtype in self.user:
            source = "user"
        if topic.msgtype not in store.fielddefs:
            return Decoder(
                topic.msgtype,
                "none",
                error=f"no definition of {topic.msgtype}: the bag carries none and the stock store lacks it "
                "(pass a folder of .msg/.idl files)",
            )
        mismatch = self._digest_mismatch(store, topic)
        if mismatch:
            return Decoder(topic.msgtype, source, error=mismatch)
        deserialize = store.deserialize_cdr if self.is_ros2 else store.deserialize_ros1
        msgtype = topic.msgtype
        return Decoder(msgtype, source, decode=lambda raw: deserialize(raw, msgtype))

    def _digest_mismatch(self, store: Any, topic: TopicIndex) -> str:
        if not topic.digest:
            return ""
        try:
            have = store.hash_rihs01(topic.msgtype) if self.is_ros2 else store.generate_msgdef(topic.msgtype)[1]
        except Exception:  # a type the hasher cannot handle: the digest cannot be checked, decoding still can
            return ""
        if not self.is_ros2 and have != topic.digest:
            return f"definition digest {have} differs from the bag's {topic.digest}"
        if self.is_ros2 and topic.digest.startswith("RIHS01_") and have != topic.digest:
            return f"type hash {have} differs from the bag's {topic.digest}"
        return ""


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."
