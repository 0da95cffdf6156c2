"""ROS bags (ROS 1 ``.bag``, ROS 2 ``.db3`` and ``.mcap``) read with rosbags: a per-topic ledger, per-topic type
resolution, and episodes aligned to a declared master clock.

:mod:`.bag` reads the containers, :mod:`.types` resolves message types per topic, :mod:`.ledger` counts every
topic's messages, :mod:`.plan` is the alignment plan, :mod:`.fields` turns messages into numbers,
:mod:`.frames` reads camera frames when sliced, and :mod:`.reader` is the backend. The alignment engine and the
TF buffer are ROS-independent (:mod:`rdstd.streams.align`, :mod:`rdstd.streams.tf`).
"""

from rdstd.formats.rosbag.plan import RosbagPlan, load_plan, sidecar_path
from rdstd.formats.rosbag.reader import RosbagBackend, RosbagSource

__all__ = ["RosbagBackend", "RosbagPlan", "RosbagSource", "load_plan", "sidecar_path"]
