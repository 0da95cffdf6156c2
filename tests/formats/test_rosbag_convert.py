"""Bags to aligned canonical episodes: the backend contract on generated bags, and the synthetic manipulation sample
converted from all three containers to the same episode, checked against the formulas in its expected.json."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import shutil
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import rdstd
from rdstd.cli.app import main
from rdstd.convert.pipeline import convert
from rdstd.convert.specs import shipped_specs
from rdstd.errors import EpisodeError, MappingError, RdstdError, SourceError
from rdstd.formats.rosbag import RosbagBackend, RosbagSource
from rdstd.formats.rosbag import fields as msgfields
from rdstd.testing.contract import BackendContract
from rdstd.testing.rosbag import compressed_depth_rvl, rvl_encode
from tests.conftest import sample
from tests.formats.rosbag_fixtures import T0, joint_positions, jpeg, tool_xyz, with_plan, write_bag

SYNTHETIC_PLAN = """\
master: {topic: /camera/color/image_raw/compressed, clock: header}
streams:
  joints:
    topic: /joint_states
    field: position
    names: [panda_joint1, panda_joint2, panda_joint3, panda_joint4, panda_joint5, panda_joint6, panda_joint7]
    clock: header
    method: interpolate
    max_age_ms: 10
  gripper: {topic: /joint_states, field: position, names: [panda_finger_joint1], clock: header, method: interpolate,
            max_age_ms: 10}
  wrist: {topic: /camera/color/image_raw/compressed, clock: header, method: nearest, max_age_ms: 1}
  ee: {tf: {target: world, source: tool0, max_extrapolation_ms: 20}}
task: {topic: /task}
"""
CONTAINERS = ["episode_ros1.bag", "episode_ros2_db3", "episode_ros2_mcap"]


class TestRosbag1Contract(BackendContract):
    @pytest.fixture
    def backend(self) -> RosbagBackend:
        return RosbagBackend()

    @pytest.fixture
    def source_path(self, tmp_path: Path) -> Path:
        return with_plan(write_bag(tmp_path / "run.bag", "ros1"))


class TestRosbag2McapContract(BackendContract):
    @pytest.fixture
    def backend(self) -> RosbagBackend:
        return RosbagBackend()

    @pytest.fixture
    def source_path(self, tmp_path: Path) -> Path:
        return with_plan(write_bag(tmp_path / "run_mcap", "mcap"))


# -- generated bags -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ros1", "db3", "mcap"])
def test_a_generated_bag_aligns_to_its_camera_with_joints_picked_by_name(tmp_path: Path, kind: str) -> None:
    bag = with_plan(write_bag(tmp_path / ("run.bag" if kind == "ros1" else "run"), kind))
    with RosbagSource(bag) as source:
        episode = source.read_episode(source.episode_refs()[0])
        frames = list(episode.images["cam"].frames)  # frames are read from the bag while it is open
        assert episode.images["cam"].frames[3:5] == frames[3:5] and episode.images["cam"].frames[-1] == frames[-1]
        joints = np.asarray(episode.vectors["joints"])  # vector streams too: read when sliced
        np.testing.assert_array_equal(episode.vectors["joints"][2:7], joints[2:7])
        ee = np.asarray(episode.vectors["ee"])  # TF poses too (kept in a temporary file, not in memory)
        np.testing.assert_array_equal(episode.vectors["ee"][-3:], ee[-3:])
    with pytest.raises(SourceError, match="the bag is closed"):
        episode.images["cam"].frames[0:1]
    with pytest.raises(SourceError, match="the bag is closed"):
        episode.vectors["joints"][0:1]
    with pytest.raises(SourceError, match="the bag is closed"):
        episode.vectors["ee"][0:1]
    assert episode.length == 10 and episode.task == "stack the cups"
    stamps = T0 + 50_000_000 + np.arange(10) * 100_000_000
    np.testing.assert_allclose(episode.timestamps_s, (stamps - stamps[0]) / 1e9)
    # camera stamps fall on joint samples (10 ms grid): interpolation returns the samples themselves
    expected = np.array([joint_positions((s - T0) / 1e9) for s in stamps])
    np.testing.assert_allclose(joints, expected, atol=1e-12)
    assert [hashlib.sha256(f).hexdigest() for f in frames] == [hashlib.sha256(jpeg(k)).hexdigest() for k in range(10)]
    np.testing.assert_allclose(ee[:, :3], [tool_xyz((s - T0) / 1e9) for s in stamps], atol=1e-12)
    report = episode.meta["alignment"]["joints"]
    assert (report["dropped"], report["filled"], report["dt_max_ms"]) == (0, 0, 0.0)
    assert episode.meta["tf"]["ee"]["success_rate"] == 1.0


def test_a_bag_without_a_plan_shows_a_draft_and_refuses_to_convert(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "run.bag")
    with RosbagSource(bag) as source:
        info = source.info()
        draft = info.extra["alignment_draft"]
        assert info.extra["alignment"] == "not declared"
        assert draft["master"] == {"topic": "/cam/compressed", "clock": "header"}
        assert draft["streams"]["joint_states"]["names"] == ["j3", "j2", "j1"]
        assert draft["task"] == {"topic": "/task"}
        assert info.extra["tf_frames"] == ["base", "tool", "world"]
        with pytest.raises(MappingError, match="no alignment plan declared") as caught:
            source.read_episode(source.episode_refs()[0])
    assert "run.bag.rdstd.yaml" in caught.value.hint
    # the draft, written down, is a plan that converts
    (tmp_path / "run.bag.rdstd.yaml").write_text(json.dumps(draft))
    with RosbagSource(bag) as source:
        assert source.read_episode(source.episode_refs()[0]).length == 10


def _reset_all(topic: str, ns: int) -> int:
    """Every header clock jumps back 5 s half way (a simulator restarting its clock)."""
    return ns - 5 * 10**9 if ns >= T0 + 500_000_000 else ns


@pytest.mark.parametrize("kind", ["ros1", "mcap"])
def test_a_clock_reset_splits_the_bag_into_episodes_each_reported(tmp_path: Path, kind: str) -> None:
    bag = with_plan(write_bag(tmp_path / ("reset.bag" if kind == "ros1" else "reset"), kind, stamp=_reset_all))
    with RosbagSource(bag) as source:
        refs = source.episode_refs()
        assert [r.key for r in refs] == [f"{_key(bag)}_piece0", f"{_key(bag)}_piece1"]
        episodes = [source.read_episode(r) for r in refs]
        for k, episode in enumerate(episodes):
            assert episode.length == 5
            np.testing.assert_allclose(episode.timestamps_s, np.arange(5) * 0.1, atol=1e-9)
            assert episode.meta["piece"]["index"] == k and episode.meta["piece"]["pieces"] == 2
            assert episode.meta["notes"][0].startswith(f"piece {k + 1} of 2: the bag was split at its clock reset")
            assert any("backward jump(s) over 1 s" in f for f in episode.meta["clock_findings"])
            # the joints of each piece are those recorded in it (camera k at 0.05 + 0.1 k s after T0)
            t = 0.05 + 0.1 * (np.arange(5) + 5 * k)
            want = np.array([joint_positions(x) for x in t])
            np.testing.assert_allclose(np.asarray(episode.vectors["joints"][0:5]), want, atol=2e-3)
            np.testing.assert_allclose(np.asarray(episode.vectors["ee"][0:5])[:, 0], 0.3 + 0.1 * t, atol=1e-9)
            assert episode.images["cam"].frames[0] == jpeg(5 * k)
        assert episodes[1].meta["piece"]["starts_at_receive_ns"] == T0 + 500_000_000 + 1_000_000
    report = convert(bag, tmp_path / "out", spec=_spec_for(source_keys=("joints", "cam", "ee")))
    assert report.episodes_written == 2 and report.frames_written == 10


def test_a_reset_on_one_topic_only_leaves_a_piece_that_cannot_align_and_says_which(tmp_path: Path) -> None:
    def joints_only(topic: str, ns: int) -> int:
        return _reset_all(topic, ns) if topic == "/joint_states" else ns

    bag = with_plan(write_bag(tmp_path / "one.bag", stamp=joints_only))
    with RosbagSource(bag) as source:
        first, second = source.episode_refs()
        assert source.read_episode(first).length == 5
        with pytest.raises(EpisodeError, match="piece 2 of 2: no master time has a sample"):
            source.read_episode(second)
    report = convert(bag, tmp_path / "out", spec=_spec_for(source_keys=("joints", "cam", "ee")), on_error="skip")
    assert report.episodes_written == 1 and [s.key for s in report.skipped] == ["one_bag_piece1"]


def _key(bag: Path) -> str:
    return bag.name.replace(".", "_")


def _spec_for(source_keys: tuple[str, ...]) -> Any:
    from rdstd.schema.spec import ConverterSpec

    return ConverterSpec.model_validate(
        {
            "name": "rosbag/test",
            "format": "rosbag",
            "features": {f"observation.{k}": {"key": k} for k in source_keys if k != "cam"},
            "cameras": {"observation.images.cam": {"key": "cam"}},
        }
    )


def test_zero_stamps_are_findings(tmp_path: Path) -> None:
    bag = with_plan(write_bag(tmp_path / "reset.bag"))

    def zero(topic: str, ns: int) -> int:
        return 0 if topic == "/joint_states" and ns == T0 else ns

    plan = (tmp_path / "reset.bag.rdstd.yaml").read_text()
    bag = with_plan(
        write_bag(tmp_path / "zero.bag", stamp=zero),
        plan.replace("clock: header, method: interpolate", "clock: receive, method: interpolate"),
    )
    with RosbagSource(bag) as source:
        episode = source.read_episode(source.episode_refs()[0])
    assert any("1 of 100 header stamps are zero" in n for n in episode.meta["notes"])
    assert episode.meta["alignment"]["joints"]["findings"] == ["/joint_states: 1 of 100 header stamps are zero"]
    assert episode.meta["clock_findings"] == [n for n in episode.meta["notes"] if "stamps" in n]


def test_frames_no_stream_can_serve_are_dropped_and_counted(tmp_path: Path) -> None:
    plan = (
        "master: {fps: 20}\n"
        "streams:\n"
        "  joints: {topic: /joint_states, field: 'position[0:2]', clock: header, method: hold, max_age_ms: 30}\n"
        "  cam: {topic: /cam/compressed, clock: header, method: hold, max_age_ms: 20}\n"
    )
    bag = with_plan(write_bag(tmp_path / "run.bag"), plan)
    with RosbagSource(bag) as source:
        episode = source.read_episode(source.episode_refs()[0])
        joints = np.asarray(episode.vectors["joints"])
    # 20 fps over [50 ms, 950 ms] = 19 ticks; the 10 Hz camera is within 20 ms only on every other tick
    assert episode.meta["master_frames"] == 19 and episode.length == 10
    assert episode.meta["alignment"]["cam"]["dropped"] == 9
    assert any("9 of 19 master frames dropped" in n for n in episode.meta["notes"])
    np.testing.assert_allclose(np.diff(episode.timestamps_s), 0.1, atol=1e-9)
    assert joints.shape == (10, 2)


def _scan(bag: Path) -> None:
    """Open the bag and read what the plan asks for (opening alone reads only the index)."""
    with RosbagSource(bag) as source:
        source.info()


def test_plan_mistakes_are_named(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "run.bag")
    with_plan(bag, "master: {fps: 10}\nstreams:\n  j: {topic: /joint_states, field: position, clock: header}\n")
    with pytest.raises(MappingError, match=r"streams.j: .*no silent defaults"):
        _scan(bag)
    with_plan(
        bag, "master: {fps: 10}\nstreams:\n  j: {topic: /nope, field: x, clock: header, method: hold, max_age_ms: 5}\n"
    )
    with pytest.raises(MappingError, match="'/nope', which the bag does not have"):
        _scan(bag)
    with_plan(
        bag,
        "master: {fps: 10}\nstreams:\n"
        "  j: {topic: /joint_states, field: positon, clock: header, method: hold, max_age_ms: 5}\n",
    )
    with pytest.raises(MappingError, match="no field 'positon'"):
        _scan(bag)
    with_plan(
        bag,
        "master: {fps: 10}\nstreams:\n"
        "  j: {topic: /joint_states, field: position, names: [j9], clock: header, method: hold, max_age_ms: 5}\n",
    )
    with pytest.raises(EpisodeError, match=r"joint\(s\) j9 not in the message"):
        _scan(bag)


# -- raw images ------------------------------------------------------------------------------------------------------


def _image(encoding: str, pixels: np.ndarray[Any, Any], pad: int = 0, big: bool = False) -> SimpleNamespace:
    h, w = pixels.shape[:2]
    data = pixels.astype(pixels.dtype.newbyteorder(">" if big else "<")).tobytes()
    row = len(data) // h
    padded = b"".join(data[r * row : (r + 1) * row] + b"\0" * pad for r in range(h))
    return SimpleNamespace(
        encoding=encoding,
        height=h,
        width=w,
        step=row + pad,
        is_bigendian=int(big),
        data=np.frombuffer(padded, np.uint8),
    )


def test_raw_images_honour_step_byte_order_and_channel_order() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(msgfields.raw_image(_image("rgb8", rgb, pad=3), "t"), rgb)
    np.testing.assert_array_equal(msgfields.raw_image(_image("bgr8", rgb[..., ::-1].copy(), pad=1), "t"), rgb)
    depth = rng.integers(0, 65535, (4, 6), dtype=np.uint16)
    for big in (False, True):
        got = msgfields.raw_image(_image("16UC1", depth, pad=2, big=big), "t")
        assert got.dtype == np.uint16 and got.shape == (4, 6)
        np.testing.assert_array_equal(got, depth)
    metres = rng.random((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(msgfields.raw_image(_image("32FC1", metres), "t"), metres)
    with pytest.raises(EpisodeError, match="'yuv422' is not read"):
        msgfields.raw_image(_image("yuv422", rgb[..., 0].copy()), "t")


def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """What a Bayer sensor with ``pattern`` records of ``rgb`` (the colour of each 2×2 cell position)."""
    out = np.empty(rgb.shape[:2], dtype=rgb.dtype)
    for k, letter in enumerate(pattern):
        out[k // 2 :: 2, k % 2 :: 2] = rgb[k // 2 :: 2, k % 2 :: 2, "rgb".index(letter)]
    return out


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_images_are_demosaiced_to_rgb(pattern: str) -> None:
    flat = np.empty((6, 8, 3), dtype=np.uint8)
    flat[...] = (200, 90, 30)
    got = msgfields.raw_image(_image(f"bayer_{pattern}8", _mosaic(flat, pattern), pad=2), "t")
    np.testing.assert_array_equal(got, flat)  # a uniform colour comes back exact, edges included
    # a smooth 16-bit ramp: the samples the sensor took are kept, the others are within the ramp's step
    y, x = np.mgrid[0:8, 0:10]
    ramp = np.stack([1000 + 100 * x, 2000 + 50 * y, 3000 + 10 * (x + y)], axis=-1).astype(np.uint16)
    got16 = msgfields.raw_image(_image(f"bayer_{pattern}16", _mosaic(ramp, pattern), big=True), "t")
    assert got16.dtype == np.uint16 and got16.shape == (8, 10, 3)
    inner = (slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(got16[inner].astype(float), ramp[inner].astype(float), atol=1)
    taken = _mosaic(got16, pattern) == _mosaic(ramp, pattern)
    assert taken.all()


def _depth_png(values: np.ndarray, fmt_code: int = 0, a: float = 0.0, b: float = 0.0) -> bytes:
    import struct

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(values.astype(np.uint16)).save(out, format="PNG")
    return struct.pack("<iff", fmt_code, a, b) + out.getvalue()


def test_compressed_depth_decodes_16uc1_millimetres_and_32fc1_quantized_metres() -> None:
    mm = np.array([[0, 500, 1200], [65535, 7, 3000]], dtype=np.uint16)
    msg = SimpleNamespace(format="16UC1; compressedDepth png", data=np.frombuffer(_depth_png(mm), np.uint8))
    assert msgfields.is_compressed_depth(msg)
    got = msgfields.compressed_depth(msg, "t")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, mm)
    # the encoder's quantization (compressed_depth_image_transport): A = z0 (z0 + 1), B = 1 - A / max_depth,
    # stored v = A / depth + B; decoding gives A / (v - B); v = 0 means no reading
    z0, max_depth = 100.0, 10.0
    a, b = z0 * (z0 + 1), 1 - z0 * (z0 + 1) / max_depth
    metres = np.array([[0.5, 1.0, 2.5], [9.0, np.nan, 3.3]])
    quantized = np.where(np.isnan(metres), 0, np.rint(a / np.nan_to_num(metres, nan=1.0) + b))
    msg = SimpleNamespace(
        format="32FC1; compressedDepth png", data=np.frombuffer(_depth_png(quantized, 0, a, b), np.uint8)
    )
    depth = msgfields.compressed_depth(msg, "t")
    assert depth.dtype == np.float32 and np.isnan(depth[1, 1])
    ok = ~np.isnan(metres)
    # one quantization step at depth d is about d^2 / A
    assert np.all(np.abs(depth[ok] - metres[ok]) <= metres[ok] ** 2 / a)
    rvl = SimpleNamespace(format="32FC1; compressedDepth rvl", data=compressed_depth_rvl(quantized, a, b))
    np.testing.assert_array_equal(msgfields.compressed_depth(rvl, "t"), depth)  # the same depth from RVL as PNG
    with pytest.raises(EpisodeError, match="12-byte header before a PNG"):
        msgfields.compressed_depth(
            SimpleNamespace(format="16UC1; compressedDepth png", data=np.zeros(40, np.uint8)), "t"
        )


def test_rvl_decodes_a_hand_worked_stream_and_what_its_encoder_writes() -> None:
    # [0, 0, 5, 5, 0]: 2 zeros, 2 non-zeros, differences 5 (zigzag 10: nibbles 0xA, 0x1) and 0, 1 zero, 0
    # non-zeros; nibbles 2 2 A 1 0 1 0 + one padding nibble = the word 0x22A10100, little-endian
    assert rvl_encode([0, 0, 5, 5, 0]) == bytes.fromhex("0001a122")
    np.testing.assert_array_equal(msgfields.rvl_decode(bytes.fromhex("0001a122"), 5), [0, 0, 5, 5, 0])
    rng = np.random.default_rng(3)
    depth = rng.integers(1, 65536, size=(48, 64)).astype(np.uint16)  # differences of either sign, wrapping
    depth[rng.random(depth.shape) < 0.2] = 0
    depth[10:20] = 0
    msg = SimpleNamespace(format="16UC1; compressedDepth rvl", data=compressed_depth_rvl(depth))
    assert msgfields.is_compressed_depth(msg)
    got = msgfields.compressed_depth(msg, "t")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, depth)
    zeros = np.zeros((3, 5), dtype=np.uint16)
    np.testing.assert_array_equal(
        msgfields.compressed_depth(SimpleNamespace(format=msg.format, data=compressed_depth_rvl(zeros)), "t"), zeros
    )


def test_a_damaged_rvl_message_is_named() -> None:
    depth = np.arange(1, 13, dtype=np.uint16).reshape(3, 4)
    data = compressed_depth_rvl(depth)
    fmt = "16UC1; compressedDepth rvl"
    for damaged, why in [
        (data[:-4], "ends after"),  # a word cut off
        (data[:-1], "not a whole number of 32-bit words"),
        (data[:12] + struct.pack("<II", 4, 4) + data[20:], "ends after"),  # a size the stream does not fill
        (data[:12] + struct.pack("<II", 1 << 20, 3) + data[20:], "states a 1048576x3 image"),
        (data[:14], "not even its size"),
    ]:
        with pytest.raises(EpisodeError, match=why) as caught:
            msgfields.compressed_depth(SimpleNamespace(format=fmt, data=damaged), "t")
        assert caught.value.situation == "depth-rvl-undecodable"
    with pytest.raises(EpisodeError, match="runs hold 12 samples, the image 6"):
        msgfields.compressed_depth(
            SimpleNamespace(format=fmt, data=data[:12] + struct.pack("<II", 3, 2) + data[20:]), "t"
        )


def test_a_bag_with_compressed_depth_and_bayer_topics_converts(tmp_path: Path) -> None:
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS1_NOETIC)
    types = ts.types
    path = tmp_path / "rgbd.bag"
    writer = Writer(path)
    writer.open()
    depth_conn = writer.add_connection("/depth/compressedDepth", "sensor_msgs/msg/CompressedImage", typestore=ts)
    bayer_conn = writer.add_connection("/bayer", "sensor_msgs/msg/Image", typestore=ts)
    rvl_conn = writer.add_connection("/depth_rvl/compressedDepth", "sensor_msgs/msg/CompressedImage", typestore=ts)
    depths, colours = [], []
    for k in range(4):
        ns = T0 + k * 100_000_000
        header = types["std_msgs/msg/Header"](
            seq=k, stamp=types["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9), frame_id="cam"
        )
        mm = np.full((4, 6), 400 + 10 * k, dtype=np.uint16)
        depths.append(mm)
        msg = types["sensor_msgs/msg/CompressedImage"](
            header=header, format="16UC1; compressedDepth png", data=np.frombuffer(_depth_png(mm), np.uint8)
        )
        writer.write(depth_conn, ns + 1000, ts.serialize_ros1(msg, "sensor_msgs/msg/CompressedImage"))
        holes = mm.copy()
        holes[1, 2:5] = 0
        rvl = types["sensor_msgs/msg/CompressedImage"](
            header=header,
            format="16UC1; compressedDepth rvl",
            data=np.frombuffer(compressed_depth_rvl(holes), np.uint8),
        )
        writer.write(rvl_conn, ns + 3000, ts.serialize_ros1(rvl, "sensor_msgs/msg/CompressedImage"))
        colour = np.empty((4, 6, 3), dtype=np.uint8)
        colour[...] = (10 * k, 100, 250 - 10 * k)
        colours.append(colour)
        img = types["sensor_msgs/msg/Image"](
            header=header,
            height=4,
            width=6,
            encoding="bayer_grbg8",
            is_bigendian=0,
            step=6,
            data=_mosaic(colour, "grbg").reshape(-1),
        )
        writer.write(bayer_conn, ns + 2000, ts.serialize_ros1(img, "sensor_msgs/msg/Image"))
    writer.close()
    with_plan(
        path,
        "master: {topic: /depth/compressedDepth, clock: header}\nstreams:\n"
        "  depth: {topic: /depth/compressedDepth, clock: header, method: nearest, max_age_ms: 1}\n"
        "  colour: {topic: /bayer, clock: header, method: nearest, max_age_ms: 1}\n"
        "  depth_rvl: {topic: /depth_rvl/compressedDepth, clock: header, method: nearest, max_age_ms: 1}\n",
    )
    with RosbagSource(path) as source:
        keys = {k.key: k for k in source.info().keys}
        assert keys["depth"].dtype == "uint16" and keys["depth"].shape == (4, 6)
        assert "depth in millimetres" in keys["depth"].note and "bayer_grbg8 demosaiced" in keys["colour"].note
        episode = source.read_episode(source.episode_refs()[0])
        np.testing.assert_array_equal(np.asarray(episode.images["depth"]), np.stack(depths))
        np.testing.assert_array_equal(np.asarray(episode.images["colour"]), np.stack(colours))
        with_holes = np.stack(depths)
        with_holes[:, 1, 2:5] = 0
        np.testing.assert_array_equal(np.asarray(episode.images["depth_rvl"]), with_holes)
        assert "compressedDepth (16UC1; compressedDepth rvl) decoded to depth in millimetres" in keys["depth_rvl"].note
    report = convert(path, tmp_path / "out")  # drafted spec: the uint16 camera is depth, stored losslessly
    assert report.frames_written == 4
    written = rdstd.open(tmp_path / "out").episode(0)
    depth_name = next(n for n in written.images if "depth" in n)
    np.testing.assert_array_equal(np.stack(written.images[depth_name][0:4])[..., 0], np.stack(depths))


def test_the_ros_numpy_sample_images_read() -> None:
    plan = load_plan_text(
        "master: {topic: /image, clock: receive}\nstreams:\n"
        "  rgb: {topic: /image, clock: receive, method: nearest, max_age_ms: 1}\n"
        "  png: {topic: /compressedimage, clock: receive, method: nearest, max_age_ms: 5}\n"
    )
    with RosbagSource(sample("ros/eric-wieser__ros_numpy/test.bag"), plan) as source:
        keys = {k.key: k for k in source.info().keys}
        assert keys["rgb"].shape == (240, 360, 3) and keys["png"].shape == (2, 2, 4)
        episode = source.read_episode(source.episode_refs()[0])
        assert episode.length == 1 and np.asarray(episode.images["rgb"]).shape == (1, 240, 360, 3)
        assert episode.images["rgb"][0:1].dtype == np.uint8
    assert episode.images["png"].codec == "png"
    assert any("header stamps are zero" in n for n in episode.meta["notes"])


def load_plan_text(text: str) -> Any:
    import yaml

    from rdstd.formats.rosbag.plan import parse_plan

    return parse_plan(yaml.safe_load(text), "(test)")


# -- the synthetic manipulation sample in three containers ----------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three containers copied beside their plan, each converted with the shipped spec."""
    root = tmp_path_factory.mktemp("synthetic")
    outputs = {}
    for name in CONTAINERS:
        src = sample(f"ros/synthetic_manipulation/{name}")
        copy = root / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, copy)
        if name == CONTAINERS[0]:  # the plan as a sidecar still works (the shipped spec's source: block is the same)
            with_plan(copy, SYNTHETIC_PLAN)
        outputs[name] = root / f"out_{name}"
        report = convert(copy, outputs[name], spec="rosbag/synthetic_panda")
        assert report.episodes_written == 1 and report.frames_written == 180
        sidecar_note = [w for w in report.warnings if "is not used: the spec" in w]
        assert len(sidecar_note) == (name == CONTAINERS[0])
    return outputs


def _expected() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(sample("ros/synthetic_manipulation/expected.json").read_text())
    return data


def test_the_three_containers_convert_to_the_same_episode(synthetic: dict[str, Path]) -> None:
    episodes = [rdstd.open(out).episode(0) for out in synthetic.values()]
    first = episodes[0]
    for other in episodes[1:]:
        np.testing.assert_array_equal(other.timestamps, first.timestamps)
        for name, values in first.vectors.items():
            np.testing.assert_array_equal(other.vectors[name], values, err_msg=name)
        assert other.images["observation.images.wrist"].encoded == first.images["observation.images.wrist"].encoded
        assert other.meta.task == first.meta.task == "pick up the red cube and place it in the bowl"


def test_interpolated_joints_match_the_trajectory_formula(synthetic: dict[str, Path]) -> None:
    exp = _expected()["joint_trajectory"]
    amp, mag, freq, phase = (np.array(exp[k]) for k in ("A", "B", "F", "PHI"))
    episode = rdstd.open(synthetic["episode_ros2_mcap"]).episode(0)
    stamps = (np.arange(180) * 1_000_000_000) // 30  # camera header stamps minus t0 (ns), as expected.json says
    t = stamps / 1e9
    np.testing.assert_allclose(episode.timestamps, t, atol=1e-9)
    want = amp + mag * np.sin(2 * np.pi * freq * t[:, None] + phase)
    got = episode.vectors["observation.state"]
    # linear interpolation between 200 Hz samples: error <= h^2/8 * max|f''| = 0.005^2/8 * max(B (2 pi F)^2)
    bound = 0.005**2 / 8 * float(np.max(mag * (2 * np.pi * freq) ** 2))
    assert bound < 2e-5
    assert np.max(np.abs(got - want)) <= bound
    gripper = 0.02 + 0.02 * np.cos(2 * np.pi * t / 6)
    np.testing.assert_allclose(
        episode.vectors["observation.gripper"][:, 0], gripper, atol=0.005**2 / 8 * 0.02 * (2 * np.pi / 6) ** 2
    )


def test_the_jpeg_bytes_pass_through_unchanged(synthetic: dict[str, Path]) -> None:
    want = _expected()["camera"]["jpeg_sha256"]
    for out in synthetic.values():
        frames = rdstd.open(out).episode(0).images["observation.images.wrist"].encoded
        assert [hashlib.sha256(f).hexdigest() for f in frames] == want


def test_the_end_effector_pose_in_the_world_frame_matches_the_formula(synthetic: dict[str, Path]) -> None:
    episode = rdstd.open(synthetic["episode_ros1.bag"]).episode(0)
    t = (np.arange(180) * 1_000_000_000 // 30) / 1e9
    local = np.stack(
        [
            0.4 + 0.1 * np.sin(2 * np.pi * 0.25 * t),
            0.1 * np.cos(2 * np.pi * 0.25 * t),
            0.3 + 0.05 * np.sin(2 * np.pi * 0.5 * t),
        ],
        axis=1,
    )
    # world -> base_link: 90 deg yaw, then up 0.75 m: (x, y, z) -> (-y, x, z + 0.75)
    world = np.stack([-local[:, 1], local[:, 0], local[:, 2] + 0.75], axis=1)
    pose = episode.vectors["observation.ee_pose"]
    # TF at 100 Hz interpolated linearly: error bounded by h^2/8 * max|x''| with h = 10 ms
    assert np.max(np.abs(pose[:, :3] - world)) <= 0.01**2 / 8 * 0.1 * (2 * np.pi * 0.25) ** 2 * 4
    yaw = 0.5 * np.sin(2 * np.pi * 0.2 * t) + math.pi / 2
    q = np.stack([np.zeros_like(yaw), np.zeros_like(yaw), np.sin(yaw / 2), np.cos(yaw / 2)], axis=1)
    same = np.minimum(np.abs(pose[:, 3:] - q).max(axis=1), np.abs(pose[:, 3:] + q).max(axis=1))
    assert same.max() < 1e-4


def test_rdstd_info_shows_the_ledger(capsys: pytest.CaptureFixture[str]) -> None:
    bag = sample("ros/ros2__rosbag2/sqlite3_talker")
    code = main(["info", str(bag), "--format", "json"])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    ledger = data["extra"]["ledger"] if "extra" in data else data["source"]["extra"]["ledger"]
    assert ledger["/topic"]["read"] == 10 and ledger["/rosout"]["failed"] == 10


def test_rdstd_spec_drafts_a_converter_spec_for_the_drafted_streams(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bag = write_bag(tmp_path / "run.bag")
    code = main(["spec", str(bag), "--format", "json"])
    out = capsys.readouterr().out
    assert code == 0
    spec = json.loads(out)
    assert spec["format"] == "rosbag"
    state = next(f for f in spec["features"].values() if f["key"] == "joint_states")
    assert state["names"] == ["j3", "j2", "j1"]
    assert [c["key"] for c in spec["cameras"].values()] == ["cam_compressed"]


def test_task_text_from_a_fixed_string_or_a_sidecar_file(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "run.bag")
    base = (
        "master: {fps: 10}\nstreams:\n"
        "  j: {topic: /joint_states, field: position, clock: header, method: hold, max_age_ms: 20}\n"
    )
    with_plan(bag, base + "task: {text: pour the water}\n")
    with RosbagSource(bag) as source:
        assert source.read_episode(source.episode_refs()[0]).task == "pour the water"
    (tmp_path / "task.txt").write_text("wipe the table\n")
    with_plan(bag, base + "task: {sidecar: task.txt}\n")
    with RosbagSource(bag) as source:
        assert source.read_episode(source.episode_refs()[0]).task == "wipe the table"
    with_plan(bag, base + "task: {sidecar: ../../etc/passwd}\n")
    with RosbagSource(bag) as source, pytest.raises(RdstdError, match="task sidecar"):
        source.read_episode(source.episode_refs()[0])


def test_a_folder_of_split_ros1_bags_reads_as_one_recording(tmp_path: Path) -> None:
    folder = tmp_path / "split"
    folder.mkdir()
    write_bag(folder / "run_0.bag")
    write_bag(folder / "run_1.bag", seconds=0.5)
    with RosbagSource(folder) as source:
        ledger = source.info().extra["ledger"]
    assert ledger["/joint_states"]["index"] == ledger["/joint_states"]["read"] == 150
    assert ledger["/cam/compressed"]["decoded"] == 15


def test_joint_names_on_a_message_without_names_are_refused(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "run.bag")
    with_plan(
        bag,
        "master: {fps: 10}\nstreams:\n"
        "  x: {topic: /tf, field: 'transforms[0].transform.translation', names: [x], clock: header, method: hold,"
        " max_age_ms: 30}\n",
    )
    with pytest.raises(MappingError, match="picks joints by a JointState's name list"):
        _scan(bag)
    with_plan(
        bag,
        "master: {fps: 10}\nstreams:\n"
        "  x: {topic: /tf, field: 'transforms[0].transform.translation', clock: header, method: interpolate,"
        " max_age_ms: 30}\n",
    )
    with RosbagSource(bag) as source:
        episode = source.read_episode(source.episode_refs()[0])
        x = np.asarray(episode.vectors["x"])
    # a 10 fps grid over the /tf span (0 .. 0.98 s): on /tf samples, so interpolation returns them exactly
    t = np.arange(10) / 10
    np.testing.assert_allclose(x, [tool_xyz(x) for x in t], atol=1e-12)


def test_the_kuka_sample_converts_with_its_drafted_plan_and_reports_its_clock_skew(tmp_path: Path) -> None:
    bag = tmp_path / "kuka.bag"
    shutil.copy(sample("ros/ipab-slmc__kuka_honeypot_demo/test.bag"), bag)
    with RosbagSource(bag) as source:
        draft = source.info().extra["alignment_draft"]
    assert draft["master"] == {"topic": "/joint_states", "clock": "header"}
    with_plan(bag, json.dumps(draft))
    report = convert(bag, tmp_path / "out")  # drafted converter spec: a warning, not a refusal
    assert report.frames_written == 4101
    assert any("4101 messages are stamped after they were received" in note for note in report.source_notes)
    episode = rdstd.open(tmp_path / "out").episode(0)
    assert episode.vectors["observation.joint_states"].shape == (4101, 7)
    assert episode.meta.source_meta["alignment"]["joint_states"]["dt_max_ms"] == 0.0


def test_the_manifest_says_which_clock_and_how_the_streams_were_aligned(synthetic: dict[str, Path]) -> None:
    manifest = rdstd.open(synthetic["episode_ros2_db3"]).manifest
    assert (manifest.clock.kind, manifest.clock.source) == ("measured", "header_stamp")
    assert "linearly interpolated" in manifest.clock.resampling


def test_a_field_that_changes_size_between_messages_is_an_error(tmp_path: Path) -> None:
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS1_NOETIC)
    types = ts.types
    path = tmp_path / "grows.bag"
    writer = Writer(path)
    writer.open()
    conn = writer.add_connection("/joint_states", "sensor_msgs/msg/JointState", typestore=ts)
    for k, n in enumerate([3, 3, 4]):
        stamp = types["builtin_interfaces/msg/Time"](sec=1, nanosec=k * 1000)
        msg = types["sensor_msgs/msg/JointState"](
            header=types["std_msgs/msg/Header"](seq=k, stamp=stamp, frame_id=""),
            name=[f"j{i}" for i in range(n)],
            position=np.zeros(n),
            velocity=np.zeros(n),
            effort=np.zeros(n),
        )
        writer.write(conn, 10**9 + k * 1000, ts.serialize_ros1(msg, "sensor_msgs/msg/JointState"))
    writer.close()
    with_plan(
        path,
        "master: {topic: /joint_states, clock: header}\nstreams:\n"
        "  q: {topic: /joint_states, field: position, clock: header, method: interpolate, max_age_ms: 5}\n",
    )
    with pytest.raises(EpisodeError, match=r"field 'position' changes size between messages \(3 then 4\)"):
        _scan(path)


# -- the alignment plan inside a converter spec (source: block) ------------------------------------------------------


def test_a_spec_source_block_carries_the_plan_and_rdstd_spec_drafts_it(tmp_path: Path) -> None:
    import yaml

    from rdstd.convert.pipeline import open_source

    bag = write_bag(tmp_path / "run.bag")
    spec_file = tmp_path / "drafted.yaml"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["spec", str(bag), "--name", "rosbag/drafted"]) == 0
    drafted = yaml.safe_load(out.getvalue())
    assert drafted["source"]["master"] == {"topic": "/cam/compressed", "clock": "header"}
    assert drafted["source"]["streams"]["joint_states"]["names"] == ["j3", "j2", "j1"]
    spec_file.write_text(out.getvalue())
    report = convert(bag, tmp_path / "out", spec=spec_file)
    assert report.frames_written == 10 and not (tmp_path / "run.bag.rdstd.yaml").exists()
    with open_source(bag, spec=spec_file) as source:
        assert source.info().extra["alignment_origin"] == f"{spec_file} (source:)"


def test_a_bad_source_block_is_refused_naming_the_spec_and_other_backends_take_none(tmp_path: Path) -> None:
    import yaml

    from rdstd.convert.pipeline import open_source
    from rdstd.schema.spec import ConverterSpec

    bag = write_bag(tmp_path / "run.bag")
    spec = yaml.safe_load(shipped_specs()["rosbag/synthetic_panda"].read_text())
    del spec["source"]["streams"]["joints"]["clock"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(spec))
    with pytest.raises(MappingError, match=r"bad\.yaml: source: invalid alignment plan at streams\.joints"):
        open_source(bag, spec=bad)
    from rdstd.formats.base import SourceDataset

    class Plain(RosbagSource):
        configure = SourceDataset.configure  # the default: no options taken

    other = ConverterSpec.model_validate({**spec, "source": {"x": 1}})
    with Plain(bag) as source, pytest.raises(MappingError, match="takes no source: options"):
        source.configure(other.source or {}, "(test)")
