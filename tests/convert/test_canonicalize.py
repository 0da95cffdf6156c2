"""Canonicalization: SI units, xyzw quaternions, gripper 1 = open, RGB uint8 images, with provenance recorded."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdstd.convert.canonicalize import canonical_pixels, plan_camera, plan_vector, relative_to_absolute_gripper
from rdstd.errors import MappingError
from rdstd.formats.base import SourceKey
from rdstd.schema import CameraSpec, ImageCodec, VectorSpec


def key(shape: tuple[int, ...], dtype: str = "float32") -> SourceKey:
    return SourceKey("obs/pose", "vector", shape, dtype)


def test_degrees_and_millimetres_become_radians_and_metres() -> None:
    spec = VectorSpec.model_validate(
        {
            "key": "obs/pose",
            "dims": [{"name": "x", "unit": "mm"}, {"name": "yaw", "unit": "deg"}, {"name": "g", "unit": "N"}],
        }
    )
    plan = plan_vector("observation.pose", spec, key((3,)))
    out = plan.apply(np.array([[1000.0, 180.0, 5.0]], dtype=np.float32))
    np.testing.assert_allclose(out, [[1.0, math.pi, 5.0]], rtol=1e-6)
    assert [d.unit for d in plan.feature.dims] == ["m", "rad", "N"]
    assert plan.feature.source is not None
    assert plan.feature.source.units == ["mm", "deg", "N"]
    assert any("deg -> rad" in t for t in plan.feature.source.transforms)
    assert plan.feature.dtype == "float32"


def test_scalar_first_quaternions_are_reordered_to_scalar_last_with_their_labels() -> None:
    spec = VectorSpec.model_validate(
        {
            "key": "obs/pose",
            "dims": [
                {"name": "x", "unit": "m"},
                {"name": "y", "unit": "m"},
                {"name": "z", "unit": "m"},
                {"name": "qw", "unit": "none", "frame": "base"},
                {"name": "qx", "unit": "none", "frame": "world"},
                {"name": "qy", "unit": "none"},
                {"name": "qz", "unit": "none"},
                {"name": "g", "role": "gripper"},
            ],
            "rotations": [{"start": 3, "representation": "quat_wxyz"}],
            "grippers": [{"dim": 7, "kind": "absolute", "range": [0, 2], "open": "high"}],
        }
    )
    plan = plan_vector("observation.pose", spec, key((8,), "float64"))
    out = plan.apply(np.array([[1, 2, 3, 0.9, 0.1, 0.2, 0.3, 2.0]], dtype=np.float64))
    np.testing.assert_array_equal(out, [[1, 2, 3, 0.1, 0.2, 0.3, 0.9, 1.0]])
    assert plan.feature.rotations[0].representation == "quat_xyzw" and plan.feature.rotations[0].start == 3
    assert plan.feature.source is not None and plan.feature.source.rotations[0].representation == "quat_wxyz"
    dims = plan.feature.dims
    assert [d.name for d in dims] == ["x", "y", "z", "qx", "qy", "qz", "qw", "g"]
    assert (dims[3].frame, dims[6].frame) == ("world", "base")  # each label stays with its value
    assert [g.dim for g in plan.feature.grippers] == [7] and dims[7].role == "gripper"


def test_a_wxyz_quaternion_ahead_of_a_gripper_moves_the_gripper_label_with_nothing_else() -> None:
    spec = VectorSpec.model_validate(
        {
            "key": "obs/pose",
            "names": ["qw", "qx", "qy", "qz", "grip"],
            "rotations": [{"start": 0, "representation": "quat_wxyz"}],
            "grippers": [{"dim": 4, "kind": "relative", "open": "low"}],
        }
    )
    plan = plan_vector("p", spec, key((5,), "float64"))
    np.testing.assert_array_equal(plan.apply(np.array([[0.5, 0.1, 0.2, 0.3, 1.0]])), [[0.1, 0.2, 0.3, 0.5, 1.0]])
    assert plan.feature.dims[3].name == "qw" and plan.feature.dims[4].name == "grip"
    assert plan.feature.grippers[0].dim == 4


@pytest.mark.parametrize(
    ("grip", "values", "expected"),
    [
        ({"dim": 0, "kind": "absolute", "range": [0.0, 0.08], "open": "high"}, [0.0, 0.04, 0.08], [0.0, 0.5, 1.0]),
        ({"dim": 0, "kind": "absolute", "range": [-1.0, 1.0], "open": "low"}, [1.0, 0.0, -1.0], [0.0, 0.5, 1.0]),
    ],
)
def test_absolute_grippers_become_zero_closed_one_open(grip: dict, values: list[float], expected: list[float]) -> None:
    spec = VectorSpec.model_validate({"key": "obs/pose", "names": ["gripper"], "grippers": [grip]})
    plan = plan_vector("action.gripper", spec, key((1,)))
    np.testing.assert_allclose(plan.apply(np.array(values)[:, None]).ravel(), expected)
    assert plan.feature.grippers[0].open == "high" and plan.feature.grippers[0].range == (0.0, 1.0)
    assert plan.feature.grippers[0].kind == "absolute"
    assert plan.feature.dims[0].unit == "normalized"


@pytest.mark.parametrize(("polarity", "expected"), [("low", [1.0, 0.0, -1.0]), ("high", [-1.0, 0.0, 1.0])])
def test_relative_gripper_commands_are_never_rescaled_only_signed_plus_one_close(
    polarity: str, expected: list[float]
) -> None:
    spec = VectorSpec.model_validate(
        {"key": "obs/pose", "names": ["gripper"], "grippers": [{"dim": 0, "kind": "relative", "open": polarity}]}
    )
    plan = plan_vector("action", spec, key((1,)))
    np.testing.assert_array_equal(plan.apply(np.array([[1.0], [0.0], [-1.0]])).ravel(), expected)
    grip = plan.feature.grippers[0]
    assert (grip.kind, grip.open, grip.range) == ("relative", "low", (-1.0, 1.0))


def test_a_gripper_of_unknown_kind_is_kept_as_the_source_has_it() -> None:
    spec = VectorSpec.model_validate(
        {"key": "obs/pose", "names": ["gripper"], "grippers": [{"dim": 0, "range": [0, 0.08], "open": "high"}]}
    )
    plan = plan_vector("action", spec, key((1,)))
    np.testing.assert_array_equal(plan.apply(np.array([[0.04]], dtype=np.float32)), np.float32([[0.04]]))
    assert plan.feature.grippers[0].kind == "unknown"


def test_a_gripper_dimension_without_a_convention_gets_an_explicit_unknown_one() -> None:
    spec = VectorSpec.model_validate({"key": "obs/pose", "dims": [{"name": "x"}, {"name": "g", "role": "gripper"}]})
    plan = plan_vector("s", spec, key((2,)))
    assert [(g.dim, g.kind, g.open) for g in plan.feature.grippers] == [(1, "unknown", "unknown")]


@pytest.mark.parametrize(
    ("commands", "expected"),
    [
        ([0, 0, 1, 0, 0, -1, 0], [1, 1, 0, 0, 0, 1, 1]),  # first command closes: open before it
        ([0, -1, 0, 1, 0], [0, 1, 1, 0, 0]),  # first command opens: closed before it
        ([0, 0, 0], [1, 1, 1]),  # no command at all: open throughout
        ([0.05, 0.5, -0.05, -0.3], [1, 0, 0, 1]),  # |x| <= 0.1 is "hold"
        ([1, 1, -1], [0, 0, 1]),
    ],
)
def test_relative_commands_become_absolute_states_like_octo(commands: list[float], expected: list[float]) -> None:
    np.testing.assert_array_equal(relative_to_absolute_gripper(np.array(commands, dtype=np.float32)), expected)


def test_to_absolute_is_applied_over_the_whole_episode_and_recorded() -> None:
    spec = VectorSpec.model_validate(
        {
            "key": "obs/pose",
            "names": ["dx", "gripper"],
            "grippers": [{"dim": 1, "kind": "relative", "open": "high", "to_absolute": True}],
        }
    )
    plan = plan_vector("action", spec, key((2,)))
    canonical = plan.apply(np.array([[0.1, 0.0], [0.2, -1.0], [0.3, 0.0], [0.4, 1.0]], dtype=np.float32))
    out = plan.finish_episode(canonical)
    np.testing.assert_allclose(out[:, 0], [0.1, 0.2, 0.3, 0.4], rtol=1e-6)
    np.testing.assert_array_equal(out[:, 1], [1.0, 0.0, 0.0, 1.0])  # source -1 = close here (open: high)
    assert plan.feature.grippers[0].kind == "absolute" and plan.feature.grippers[0].open == "high"
    assert plan.feature.source is not None and any("rel2abs" in t for t in plan.feature.source.transforms)


def test_keep_source_conventions_records_but_does_not_convert() -> None:
    spec = VectorSpec.model_validate({"key": "obs/pose", "names": ["yaw"], "unit": "deg"})
    plan = plan_vector("obs", spec, key((1,)), keep_source=True)
    np.testing.assert_array_equal(plan.apply(np.array([[90.0]])), [[90.0]])
    assert plan.feature.dims[0].unit == "deg"


def test_index_picks_and_orders_source_elements() -> None:
    spec = VectorSpec.model_validate({"key": "obs/pose", "index": [2, 0], "names": ["c", "a"]})
    plan = plan_vector("x", spec, key((3,), "float64"))
    np.testing.assert_array_equal(plan.apply(np.array([[1.0, 2.0, 3.0]])), [[3.0, 1.0]])


def test_a_spec_that_names_the_wrong_number_of_dimensions_is_a_mapping_error() -> None:
    spec = VectorSpec.model_validate({"key": "obs/pose", "names": ["a", "b"]})
    with pytest.raises(MappingError, match="names 2 dimensions but obs/pose has 3"):
        plan_vector("x", spec, key((3,)))


def test_an_index_outside_the_source_is_a_mapping_error() -> None:
    spec = VectorSpec.model_validate({"key": "obs/pose", "index": [5], "names": ["a"]})
    with pytest.raises(MappingError, match="outside"):
        plan_vector("x", spec, key((3,)))


def test_float_images_in_0_255_become_uint8_exactly() -> None:
    pixels = np.arange(48, dtype=np.float32).reshape(4, 4, 3) * 5
    out = canonical_pixels(pixels, CameraSpec(key="img", value_range=(0, 255)))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, pixels.astype(np.uint8))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int16"])
@pytest.mark.parametrize("value_range", [(0, 255), (0, 1), (-1, 1), (10, 300)])
def test_raw_pixels_scale_round_half_to_even_and_clip_without_touching_the_source(
    dtype: str, value_range: tuple[float, float]
) -> None:
    """float32 work in one buffer: (x - low) * 255 / (high - low), rounded half to even, clipped; input untouched."""
    rng = np.random.default_rng(7)
    pixels = (rng.normal(size=(6, 5, 3)) * 300).astype(dtype)
    pixels.flat[:6] = [0, 1, 2, 254, 255, -7]
    if dtype.startswith("float"):
        pixels.flat[6:10] = [0.5, 1.5, 2.5, 254.5]
    before = pixels.copy()
    out = canonical_pixels(pixels, CameraSpec(key="img", value_range=value_range))
    low, high = value_range
    expected = pixels.astype(np.float32)
    if low:
        expected -= np.float32(low)
    expected *= np.float32(255.0 / (high - low))
    expected = np.clip(np.rint(expected), 0, 255).astype(np.uint8)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(pixels, before)


def test_unit_range_chw_bgr_images_become_hwc_rgb_uint8() -> None:
    chw = np.zeros((3, 2, 2), dtype=np.float32)
    chw[0] = 1.0  # blue channel in BGR
    out = canonical_pixels(chw, CameraSpec(key="img", layout="chw", color="bgr", value_range=(0, 1)))
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[0, 0], [0, 0, 255])


def test_a_depth_camera_keeps_16_bits_and_is_stored_as_png() -> None:
    plan = plan_camera(
        "observation.images.depth",
        CameraSpec(key="depth", color="depth"),
        SourceKey("depth", "image", (8, 8, 1), "uint16"),
        store_as=ImageCodec.JPEG,
        source_codec=None,
    )
    assert (plan.feature.dtype, plan.feature.codec) == ("uint16", "png")


def test_bgr_jpeg_bytes_pass_through_and_read_back_as_rgb(tmp_path: Path) -> None:
    import rdstd
    from rdstd.media.images import encode
    from rdstd.schema import EncodedFrames, Episode, EpisodeMeta, Provenance
    from rdstd.store import DatasetWriter

    plan = plan_camera(
        "observation.images.wrist",
        CameraSpec(key="wrist", color="bgr"),
        SourceKey("wrist", "image", (16, 16, 3), "uint8", codec=ImageCodec.JPEG),
        store_as=None,
        source_codec=ImageCodec.JPEG,
    )
    assert plan.feature.color == "bgr"
    bgr = np.zeros((16, 16, 3), dtype=np.uint8)
    bgr[..., 0] = 250  # blue, in BGR order
    stored = encode(bgr, ImageCodec.JPEG)
    frames = plan.apply(EncodedFrames(ImageCodec.JPEG, [stored]))
    assert isinstance(frames, EncodedFrames) and frames.frames == [stored]
    with DatasetWriter(
        tmp_path / "ds", {"observation.images.wrist": plan.feature}, Provenance(source_format="t", rdstd_version="t")
    ) as w:
        w.add(Episode(EpisodeMeta(episode_id="e"), np.zeros(1), {}, {"observation.images.wrist": frames}))
    rgb = rdstd.open(tmp_path / "ds").frame(0)["observation.images.wrist"]
    assert rgb[8, 8, 2] > 240 and rgb[8, 8, 0] < 10


def test_names_the_source_gives_are_used_when_the_spec_gives_none() -> None:
    source = SourceKey("observation.state", "vector", (3,), "float32", names=["shoulder", "elbow", "wrist"])
    plan = plan_vector("observation.state", VectorSpec(key="observation.state"), source)
    assert [d.name for d in plan.feature.dims] == ["shoulder", "elbow", "wrist"]
    picked = plan_vector("observation.wrist", VectorSpec(key="observation.state", index=[2]), source)
    assert [d.name for d in picked.feature.dims] == ["wrist"]


def test_raw_pixels_for_a_video_camera_are_canonicalized_and_left_for_the_writer_to_encode() -> None:
    plan = plan_camera(
        "observation.images.top",
        CameraSpec(key="img", value_range=(0, 1)),
        SourceKey("img", "image", (4, 4, 3), "float32"),
        store_as=ImageCodec.VIDEO,
        source_codec=None,
    )
    out = plan.apply(np.ones((2, 4, 4, 3), dtype=np.float32))
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == (2, 4, 4, 3)
    assert int(out.max()) == 255


@settings(max_examples=40, deadline=None)
@given(size=st.integers(5, 12), data=st.data())
def test_every_label_stays_with_its_value_whatever_the_layout(size: int, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, size - 4), label="quaternion start")
    free = [i for i in range(size) if not start <= i < start + 4]
    grip = data.draw(st.sampled_from(free), label="gripper dim")
    names = [f"d{i}" for i in range(size)]
    units = ["mm" if i % 2 else "m" for i in range(size)]
    spec = VectorSpec.model_validate(
        {
            "key": "obs/pose",
            "dims": [{"name": n, "unit": u} for n, u in zip(names, units, strict=True)],
            "rotations": [{"start": start, "representation": "quat_wxyz"}],
            "grippers": [{"dim": grip, "kind": "relative", "open": "low"}],
        }
    )
    plan = plan_vector("p", spec, key((size,), "float64"))
    values = np.arange(1.0, size + 1.0)[None, :]
    out = plan.apply(values)[0]
    for j, dim in enumerate(plan.feature.dims):
        source = names.index(dim.name)
        factor = 1e-3 if units[source] == "mm" and source != grip else 1.0
        assert out[j] == pytest.approx(values[0, source] * factor)
    assert [g.dim for g in plan.feature.grippers] == [[d.name for d in plan.feature.dims].index(f"d{grip}")]
    assert plan.feature.rotations[0].start == start
    assert [d.name for d in plan.feature.dims[start : start + 4]] == [
        f"d{start + 1}",
        f"d{start + 2}",
        f"d{start + 3}",
        f"d{start}",
    ]
