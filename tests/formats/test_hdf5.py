"""The HDF5 backend on fixtures written in code: each flavor's layout, detection, semantics, and pass-through."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

import rdstd
from rdstd.convert.pipeline import convert
from rdstd.formats.base import FormatBackend
from rdstd.formats.hdf5 import Hdf5Backend
from rdstd.formats.hdf5.frames import EncodedRows
from rdstd.formats.registry import detect
from rdstd.schema.episode import EncodedFrames
from rdstd.schema.vocabulary import ImageCodec
from rdstd.testing.contract import BackendContract
from tests.formats import hdf5_fixtures as fx


class TestHdf5ContractOnAlohaFolder(BackendContract):
    @pytest.fixture
    def backend(self) -> FormatBackend:
        return Hdf5Backend()

    @pytest.fixture
    def source_path(self, tmp_path: Path) -> Path:
        return fx.write_aloha_folder(tmp_path / "aloha")


class TestHdf5ContractOnRobomimic(BackendContract):
    @pytest.fixture
    def backend(self) -> FormatBackend:
        return Hdf5Backend()

    @pytest.fixture
    def source_path(self, tmp_path: Path) -> Path:
        path = tmp_path / "lift.hdf5"
        fx.write_robomimic(path, [np.full((4, 3), 0.1), np.full((6, 3), 0.2)])
        return path


def _rotvecs(n: int, seed: int) -> npt.NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-2.5, 2.5, (n, 3))


def _expected_xyzw(rotvec: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Quaternions computed here, independently of the fixture: half-angle formula per row."""
    out = []
    for v in rotvec:
        angle = float(np.sqrt(v[0] ** 2 + v[1] ** 2 + v[2] ** 2))
        s = np.sin(angle / 2) / angle
        out.append([v[0] * s, v[1] * s, v[2] * s, np.cos(angle / 2)])
    return np.array(out)


def _same_rotation(got: npt.NDArray[np.float64], want: npt.NDArray[np.float64]) -> None:
    dots = np.abs(np.sum(got * want, axis=1))  # q and -q are the same rotation
    np.testing.assert_allclose(dots, 1.0, atol=1e-5)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_flavors_are_detected_with_evidence_and_confidence(tmp_path: Path) -> None:
    fx.write_robomimic(tmp_path / "rm.hdf5", [_rotvecs(3, 0)])
    fx.write_libero(tmp_path / "libero.hdf5")
    fx.write_mimicgen(tmp_path / "mg.hdf5")
    fx.write_isaaclab(tmp_path / "il.hdf5", [_rotvecs(3, 1)])
    fx.write_aloha_episode(tmp_path / "episode_0.hdf5")
    fx.write_robomind(tmp_path / "trajectory.hdf5")
    fx.write_droid(tmp_path / "trajectory.h5")
    expected = {
        "rm.hdf5": ("robomimic", "data@env_args"),
        "libero.hdf5": ("libero", "data@problem_info"),
        "mg.hdf5": ("mimicgen", "data/demo_0/datagen_info"),
        "il.hdf5": ("isaaclab", "data/demo_0/initial_state"),
        "episode_0.hdf5": ("aloha", "observations/qpos"),
        "trajectory.hdf5": ("robomind", "observations/rgb_images"),
        "trajectory.h5": ("droid_raw", "observation/timestamp"),
    }
    for name, (flavor, evidence) in expected.items():
        with Hdf5Backend().open(tmp_path / name) as source:
            extra = source.info().extra
        assert extra["flavor"] == flavor, name
        assert evidence in extra["evidence"], name
        assert 0 < extra["confidence"] <= 1


def test_robomimic_xyzw_quaternions_come_out_canonical_and_the_clock_is_sim_time(tmp_path: Path) -> None:
    rotvecs = [_rotvecs(5, 2), _rotvecs(7, 3)]
    fx.write_robomimic(tmp_path / "rm.hdf5", rotvecs, control_freq=None)
    report = convert(tmp_path / "rm.hdf5", tmp_path / "out", spec="hdf5/robomimic")
    assert report.episodes_written == 2
    dataset = rdstd.open(tmp_path / "out")
    for i, rv in enumerate(rotvecs):
        episode = dataset.episode(i)
        _same_rotation(np.asarray(episode.vectors["observation.eef_quat"]), _expected_xyzw(rv))
        np.testing.assert_allclose(episode.timestamps, 0.05 * np.arange(len(rv)), atol=1e-9)
    assert dataset.manifest.clock.kind == "measured"
    assert [dataset.episode(i).meta.split for i in range(2)] == ["train", "valid"]


def test_isaaclab_wxyz_quaternions_come_out_canonical_with_the_2x_spec(tmp_path: Path) -> None:
    rotvecs = [_rotvecs(4, 4), _rotvecs(6, 5)]
    fx.write_isaaclab(tmp_path / "il.hdf5", rotvecs)
    convert(tmp_path / "il.hdf5", tmp_path / "out", spec="hdf5/isaaclab_2x", rate_hz=50.0)
    dataset = rdstd.open(tmp_path / "out")
    for i, rv in enumerate(rotvecs):
        episode = dataset.episode(i)
        _same_rotation(np.asarray(episode.vectors["observation.eef_quat"]), _expected_xyzw(rv))
        root = np.asarray(episode.vectors["observation.robot_root_pose"])
        np.testing.assert_allclose(root[:, 3:], np.tile([0, 0, 0, 1.0], (len(rv), 1)))  # identity, w last
    feature = dataset.manifest.features["observation.eef_quat"]
    assert [d.name for d in feature.dims] == ["qx", "qy", "qz", "qw"]  # type: ignore[union-attr]


def test_isaaclab_without_a_spec_asks_which_quaternion_order(tmp_path: Path) -> None:
    fx.write_isaaclab(tmp_path / "il.hdf5", [_rotvecs(3, 6)])
    with Hdf5Backend().open(tmp_path / "il.hdf5") as source:
        warnings = source.info().extra["warnings"]
    assert any("--spec hdf5/isaaclab_2x" in w and "--spec hdf5/isaaclab_3x" in w for w in warnings)
    with pytest.raises(rdstd.errors.MappingError, match="isaaclab_2x, hdf5/isaaclab_3x"):
        convert(tmp_path / "il.hdf5", tmp_path / "out", rate_hz=50.0)


def test_isaaclab_demo_keys_with_gaps_are_kept_and_obs_actions_is_noted(tmp_path: Path) -> None:
    fx.write_isaaclab(tmp_path / "il.hdf5", [_rotvecs(3, 7), _rotvecs(2, 8)])
    with Hdf5Backend().open(tmp_path / "il.hdf5") as source:
        refs = source.episode_refs()
        episode = source.read_episode(refs[0])
    assert [r.key for r in refs] == ["demo_0", "demo_2"]
    assert any("previous step's action" in n for n in episode.meta["notes"])
    assert episode.meta["initial_state/articulation/robot/root_pose"] == [[0, 0, 0, 1, 0, 0, 0]]
    assert episode.meta["success"] is True


def test_aloha_padded_jpeg_is_trimmed_with_compress_len_and_passed_through(tmp_path: Path) -> None:
    frames = fx.write_aloha_episode(tmp_path / "episode_0.hdf5", steps=5)
    with Hdf5Backend().open(tmp_path / "episode_0.hdf5") as source:
        episode = source.read_episode(source.episode_refs()[0])
        for cam, want in frames.items():
            stored = episode.images[f"observations/images/{cam}"]
            assert isinstance(stored, EncodedFrames) and stored.codec == ImageCodec.JPEG
            assert isinstance(stored.frames, EncodedRows)  # read when asked, one frame at a time
            assert list(stored.frames) == want
    convert(tmp_path / "episode_0.hdf5", tmp_path / "out")
    dataset = rdstd.open(tmp_path / "out")
    assert dataset.manifest.provenance.converter_spec == "hdf5/aloha"
    assert dataset.manifest.clock.rate_hz == 50
    row = dataset.episode(0)
    assert row.images["observation.images.low"].encoded == frames["cam_low"]  # byte for byte


def test_aloha_rows_of_compress_len_follow_the_writer_order_not_the_listing_order(tmp_path: Path) -> None:
    frames = fx.write_aloha_episode(tmp_path / "e.hdf5", steps=3, cameras=("cam_low", "cam_high"))
    with Hdf5Backend().open(tmp_path / "e.hdf5") as source:
        episode = source.read_episode(source.episode_refs()[0])
        for cam in ("cam_low", "cam_high"):
            assert list(episode.images[f"observations/images/{cam}"].frames) == frames[cam]  # type: ignore[union-attr]


def test_libero_language_comes_from_problem_info_and_images_are_turned_upright(tmp_path: Path) -> None:
    fx.write_libero(tmp_path / "task_demo.hdf5", steps=3, demos=2, instruction="open the drawer")
    with Hdf5Backend().open(tmp_path / "task_demo.hdf5") as source:
        info = source.info()
        assert "opengl" in info.extra["image_convention"]
        assert any(v.startswith("(define") for v in info.extra["large_attrs"].values())
    convert(tmp_path / "task_demo.hdf5", tmp_path / "out", spec="hdf5/libero", images=ImageCodec.PNG)
    dataset = rdstd.open(tmp_path / "out")
    assert dataset.episode(0).meta.task == "open the drawer"
    episode = dataset.episode(1)
    first = episode.images["observation.images.agentview_rgb"][0]
    np.testing.assert_array_equal(first, fx.upright_image(10))


def test_mimicgen_datagen_info_is_kept_per_step_and_source_indices_in_meta(tmp_path: Path) -> None:
    fx.write_mimicgen(tmp_path / "mg.hdf5", steps=5)
    with Hdf5Backend().open(tmp_path / "mg.hdf5") as source:
        keys = {k.key for k in source.info().keys}
        episode = source.read_episode(source.episode_refs()[0])
    assert {"datagen_info/eef_pose", "datagen_info/object_poses/cube"} <= keys
    assert episode.meta["src_demo_inds"] == [3]


def test_robomind_variable_length_jpeg_passes_through_and_depth_is_png(tmp_path: Path) -> None:
    (tmp_path / "ep1").mkdir()
    rgb = fx.write_robomind(tmp_path / "ep1" / "trajectory.hdf5")
    with Hdf5Backend().open(tmp_path / "ep1" / "trajectory.hdf5") as source:
        info = source.info()
        depth = next(k for k in info.keys if k.key == "observations/depth_images/camera_top")
        assert depth.codec == ImageCodec.PNG and depth.dtype == "uint16"
        episode = source.read_episode(source.episode_refs()[0])
        assert list(episode.images["observations/rgb_images/camera_top"].frames) == rgb  # type: ignore[union-attr]
    assert any("RoboMIND's rule" in n for n in episode.meta["notes"])


def test_droid_epoch_clock_is_used_and_the_task_comes_from_current_task(tmp_path: Path) -> None:
    fx.write_droid(tmp_path / "trajectory.h5", steps=5)
    convert(tmp_path / "trajectory.h5", tmp_path / "out", spec="hdf5/droid_raw")
    dataset = rdstd.open(tmp_path / "out")
    episode = dataset.episode(0)
    np.testing.assert_allclose(episode.timestamps, np.arange(5) * 0.066666667, atol=1e-6)
    assert dataset.manifest.clock.kind == "measured"
    assert dataset.episode(0).meta.task == "put the marker in the cup"
    euler = dataset.manifest.features["observation.cartesian_position"].rotations[0]  # type: ignore[union-attr]
    assert (euler.euler_axes, euler.euler_extrinsic) == ("xyz", True)


def test_a_float32_epoch_clock_is_refused_with_a_note(tmp_path: Path) -> None:
    import h5py

    with h5py.File(tmp_path / "flat.hdf5", "w") as f:
        f.create_dataset("timestamp", data=np.full(6, 1.7e9, dtype=np.float32) + np.arange(6, dtype=np.float32) * 0.1)
        f.create_dataset("action", data=np.zeros((6, 2)))
    with Hdf5Backend().open(tmp_path / "flat.hdf5") as source:
        episode = source.read_episode(source.episode_refs()[0])
    assert episode.timestamps_s is None
    assert any("float32 epoch seconds" in n for n in episode.meta["notes"])


def test_a_folder_of_episode_files_is_one_dataset_in_natural_order(tmp_path: Path) -> None:
    folder = tmp_path / "aloha"
    folder.mkdir()
    for i in (10, 2, 1):
        fx.write_aloha_episode(folder / f"episode_{i}.hdf5", steps=3, seed=i)
    assert detect(folder).name == "hdf5"
    with Hdf5Backend().open(folder) as source:
        assert [r.key for r in source.episode_refs()] == ["episode_1.hdf5", "episode_2.hdf5", "episode_10.hdf5"]


def test_robomimic_masks_become_splits_and_filter_keys(tmp_path: Path) -> None:
    fx.write_robomimic(tmp_path / "rm.hdf5", [_rotvecs(2, 10), _rotvecs(2, 11)])
    with Hdf5Backend().open(tmp_path / "rm.hdf5") as source:
        metas = [source.read_episode(r).meta for r in source.episode_refs()]
    assert [m["split"] for m in metas] == ["train", "valid"]
    assert metas[0]["filter_keys"] == ["20_percent"] and "filter_keys" not in metas[1]


def test_a_pickled_source_reopens_its_files(tmp_path: Path) -> None:
    path = tmp_path / "rm.hdf5"
    fx.write_robomimic(path, [_rotvecs(3, 9)])
    with Hdf5Backend().open(path) as source:
        source.info()
        clone = pickle.loads(pickle.dumps(source))
    episode = clone.read_episode(clone.episode_refs()[0])
    assert episode.length == 3
    clone.close()


def test_long_attributes_are_stored_once_per_dataset(tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "demo.hdf5"
    xml = "<mujoco model='base'>" + " " * 9000 + "</mujoco>"
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env"] = "Lift"
        data.attrs["env_info"] = json.dumps({"env_name": "Lift", "control_freq": 10})
        for k in (1, 2):
            demo = data.create_group(f"demo_{k}")
            demo.attrs["model_file"] = xml
            demo.create_dataset("actions", data=np.zeros((3, 7)))
            demo.create_dataset("states", data=np.c_[0.1 * np.arange(1, 4), np.zeros((3, 4))])
    with Hdf5Backend().open(path) as source:
        refs = source.episode_refs()
        metas = [source.read_episode(r).meta for r in refs]
        info = source.info()
    assert info.extra["flavor"] == "robosuite_raw"
    assert info.rate_hz == 10 and info.extra["rate_source"] == "data@env_info: control_freq"
    assert list(info.extra["large_attrs"].values()) == [xml]
    assert metas[0]["model_file"] == metas[1]["model_file"]
    assert metas[0]["model_file"]["chars"] == len(xml)


class _Spy:
    """An h5py dataset stand-in that records which rows each read asked for."""

    def __init__(self, data: npt.NDArray[np.uint8]) -> None:
        self.data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.reads: list[int] = []

    def __getitem__(self, index: object) -> npt.NDArray[np.uint8]:
        rows = self.data[index]  # type: ignore[index]
        self.reads.append(1 if rows.ndim == 1 else len(rows))
        return rows


def test_encoded_rows_never_read_a_whole_camera_at_once() -> None:
    jpegs = [fx.jpeg(fx.picture(i)) for i in range(40)]
    padded = np.zeros((40, max(map(len, jpegs))), np.uint8)
    for i, data in enumerate(jpegs):
        padded[i, : len(data)] = np.frombuffer(data, np.uint8)
    spy = _Spy(padded)
    rows = EncodedRows(spy, "cam", lengths=np.array([len(b) for b in jpegs]))
    assert spy.reads == []  # nothing read when built
    assert rows[5:30] == jpegs[5:30]
    assert list(rows) == jpegs
    assert max(spy.reads) <= 16


def test_steps_concatenated_with_an_episode_ends_index_are_split_into_episodes(tmp_path: Path) -> None:
    import h5py

    ends = np.array([3, 3, 8, 10])  # the second episode is empty
    state = np.arange(10 * 2, dtype=np.float64).reshape(10, 2)
    with h5py.File(tmp_path / "buffer.hdf5", "w") as f:
        f.create_dataset("data/state", data=state)
        f.create_dataset("data/img", data=np.arange(10 * 8 * 8 * 3, dtype=np.uint8).reshape(10, 8, 8, 3))
        f.create_dataset("meta/episode_ends", data=ends)
    with Hdf5Backend().open(tmp_path / "buffer.hdf5") as source:
        info = source.info()
        refs = source.episode_refs()
        assert info.extra["flavor"] == "concatenated" and "meta/episode_ends (episode ends)" in info.extra["evidence"]
        assert [r.length for r in refs] == [3, 0, 5, 2]
        assert [r.key for r in refs] == ["episode_000000", "episode_000001", "episode_000002", "episode_000003"]
        third = source.read_episode(refs[2])
        np.testing.assert_array_equal(third.vectors["data/state"][0:5], state[3:8])
        np.testing.assert_array_equal(
            third.images["data/img"][1:2], np.asarray(h5py.File(tmp_path / "buffer.hdf5")["data/img"][4:5])
        )


def test_concatenated_steps_keep_their_own_clock_cut_per_episode(tmp_path: Path) -> None:
    import h5py

    ends = np.array([4, 9, 12])
    rng = np.random.default_rng(3)
    times = 1.7e9 + np.cumsum(rng.uniform(0.02, 0.08, 12))  # epoch seconds, uneven steps, one clock for the file
    with h5py.File(tmp_path / "buffer.hdf5", "w") as f:
        f.create_dataset("data/state", data=rng.normal(size=(12, 3)))
        f.create_dataset("timestamp", data=times)
        f.create_dataset("meta/episode_ends", data=ends)
    convert(tmp_path / "buffer.hdf5", tmp_path / "out")
    dataset = rdstd.open(tmp_path / "out")
    assert dataset.manifest.clock.kind == "measured"
    for i, (start, stop) in enumerate([(0, 4), (4, 9), (9, 12)]):
        np.testing.assert_allclose(dataset.episode(i).timestamps, times[start:stop] - times[start], atol=1e-6)


def test_a_concatenated_clock_that_goes_back_inside_an_episode_is_refused_there_with_a_note(tmp_path: Path) -> None:
    import h5py

    times = np.array([0.0, 0.1, 0.2, 0.3, 0.25, 0.35])  # the second episode (rows 3..6) goes back
    with h5py.File(tmp_path / "buffer.hdf5", "w") as f:
        f.create_dataset("data/state", data=np.zeros((6, 2)))
        f.create_dataset("time", data=times)
        f.create_dataset("meta/episode_ends", data=np.array([3, 6]))
    with Hdf5Backend().open(tmp_path / "buffer.hdf5") as source:
        first, second = (source.read_episode(r) for r in source.episode_refs())
    np.testing.assert_allclose(np.asarray(first.timestamps_s), [0.0, 0.1, 0.2])
    assert second.timestamps_s is None
    assert any(
        n.endswith(
            ":/ (rows 3..6): time (seconds) cannot be the clock: it does not increase at step 1 (0.3 then 0.25); "
            "frame times come from the rate"
        )
        for n in second.meta["notes"]
    )


def test_an_episode_whose_clock_is_refused_is_at_the_rate_and_the_manifest_says_the_clocks_differ(
    tmp_path: Path,
) -> None:
    import h5py

    with h5py.File(tmp_path / "buffer.hdf5", "w") as f:
        f.create_dataset("data/state", data=np.zeros((6, 2)))
        f.create_dataset("time", data=np.array([0.0, 0.1, 0.2, 0.3, 0.25, 0.35]))  # goes back in episode 2
        f.create_dataset("meta/episode_ends", data=np.array([3, 6]))
    with pytest.raises(rdstd.errors.MappingError, match="episode episode_000001 has no timestamps and no frame rate"):
        convert(tmp_path / "buffer.hdf5", tmp_path / "no-rate")  # the drafted spec maps the clock; no rate to fall to
    assert not (tmp_path / "no-rate").exists()
    convert(tmp_path / "buffer.hdf5", tmp_path / "out", rate_hz=4.0)
    dataset = rdstd.open(tmp_path / "out")
    np.testing.assert_allclose(dataset.episode(0).timestamps, [0.0, 0.1, 0.2])
    np.testing.assert_allclose(dataset.episode(1).timestamps, [0.0, 0.25, 0.5])
    clock = dataset.manifest.clock
    assert (clock.kind, clock.source) == ("unknown", "mixed") and "synthesized:rate" in (clock.description or "")


def test_stacked_episodes_take_each_row_of_a_stacked_clock(tmp_path: Path) -> None:
    import h5py

    times = np.array([[5.0, 5.1, 5.3], [7.0, 7.2, 7.25]])
    with h5py.File(tmp_path / "stacked.hdf5", "w") as f:
        f.create_dataset("obs", data=np.zeros((2, 3, 4)))
        f.create_dataset("act", data=np.zeros((2, 3, 2)))
        f.create_dataset("timestamps", data=times)
        # a "states" array outside robosuite's episode groups: its first column is not taken for a time
        f.create_dataset("states", data=np.arange(2 * 3 * 2, dtype=np.float64).reshape(2, 3, 2))
    with Hdf5Backend().open(tmp_path / "stacked.hdf5") as source:
        assert source.info().extra["flavor"] == "stacked_arrays"
        episodes = [source.read_episode(r) for r in source.episode_refs()]
    for episode, row in zip(episodes, times, strict=True):
        np.testing.assert_allclose(np.asarray(episode.timestamps_s), row - row[0])


def test_an_episode_index_that_fits_no_dataset_is_refused(tmp_path: Path) -> None:
    import h5py

    with h5py.File(tmp_path / "buffer.hdf5", "w") as f:
        f.create_dataset("data/state", data=np.zeros((10, 2)))
        f.create_dataset("meta/episode_ends", data=np.array([4, 12]))
    with pytest.raises(rdstd.errors.CorruptSourceError, match="ends at step 12, but no dataset has 12 rows"):
        Hdf5Backend().open(tmp_path / "buffer.hdf5")


def test_robomind_episode_files_nested_by_split_and_id_are_one_dataset(tmp_path: Path) -> None:
    root = tmp_path / "success_episodes"
    for split, ident in (("train", "2"), ("train", "10"), ("val", "1")):
        folder = root / split / ident / "data"
        folder.mkdir(parents=True)
        fx.write_robomind(folder / "trajectory.hdf5", steps=3)
    (root / ".cache").mkdir()
    fx.write_robomind(root / ".cache" / "trajectory.hdf5", steps=3)  # hidden folders are not entered
    assert detect(root).name == "hdf5"
    with Hdf5Backend().open(root) as source:
        keys = [r.key for r in source.episode_refs()]
    assert keys == ["train/2/data/trajectory.hdf5", "train/10/data/trajectory.hdf5", "val/1/data/trajectory.hdf5"]


def test_a_folder_of_many_files_keeps_few_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rdstd.formats.hdf5 import reader

    monkeypatch.setattr(reader, "OPEN_FILES", 2)
    folder = fx.write_aloha_folder(tmp_path / "aloha", episodes=5, steps=2)
    with Hdf5Backend().open(folder) as source:
        assert len(source._handles) <= 2
        lengths = [source.read_episode(r).length for r in source.episode_refs()]
        assert len(source._handles) <= 2
    assert lengths == [2, 3, 4, 5, 6]
    assert convert(folder, tmp_path / "out").episodes_written == 5


def test_an_aloha_folder_whose_first_episode_has_as_many_steps_as_cameras_converts_every_episode(
    tmp_path: Path,
) -> None:
    """compress_len is (n_cams, T): with T == n_cams it once looked per-step, and every longer episode failed."""
    folder = fx.write_aloha_folder(tmp_path / "aloha", episodes=3, steps=4)  # 4 cameras; 4, 5, 6 steps
    report = convert(folder, tmp_path / "out", spec="hdf5/aloha")
    assert report.skipped == []
    dataset = rdstd.open(tmp_path / "out")
    assert dataset.num_episodes == 3 and len(dataset) == 4 + 5 + 6
