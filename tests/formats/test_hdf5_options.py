"""A converter spec's ``source:`` block for HDF5: episode layouts named in the spec (D4RL ``terminals``/``timeouts``
split one flat array into episodes; an end-row dataset), a one-step action shift, and the ALOHA/ACT action timing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml

import rdstd
from rdstd.convert.pipeline import convert, open_source
from rdstd.convert.specs import load_spec
from rdstd.errors import MappingError
from rdstd.schema.spec import ConverterSpec
from tests.formats import hdf5_fixtures as fx

#: Episode ends of the flat file below: terminal after step 3, timeout after step 8, terminal after step 11, and
#: 2 trailing steps with neither flag.
TERMINAL_AT = [3, 11]
TIMEOUT_AT = [8]
STEPS = 14


def write_d4rl(path: Path) -> Path:
    """A D4RL-style flat file: every step of every episode concatenated, ends marked by terminals/timeouts."""
    steps = np.arange(STEPS, dtype=np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("observations", data=np.stack([steps, steps * 10, steps * 100], axis=1))
        f.create_dataset("actions", data=np.stack([-steps, steps + 0.5], axis=1))
        f.create_dataset("rewards", data=steps / 10)
        terminals = np.zeros(STEPS, dtype=bool)
        terminals[TERMINAL_AT] = True
        timeouts = np.zeros(STEPS, dtype=bool)
        timeouts[TIMEOUT_AT] = True
        f.create_dataset("terminals", data=terminals)
        f.create_dataset("timeouts", data=timeouts)
    return path


def d4rl_spec(source: dict[str, Any]) -> ConverterSpec:
    return ConverterSpec.model_validate(
        {
            "name": "hdf5/d4rl_test",
            "format": "hdf5",
            "rate_hz": 10,
            "source": source,
            "features": {
                "observation.state": {"key": "observations"},
                "action": {"key": "actions"},
                "reward": {"key": "rewards"},
            },
        }
    )


def test_d4rl_terminals_and_timeouts_split_one_flat_file_into_episodes(tmp_path: Path) -> None:
    path = write_d4rl(tmp_path / "hopper.hdf5")
    with open_source(path) as source:  # without the spec: the whole file is one episode (flat arrays)
        assert len(source.episode_refs()) == 1
    spec = d4rl_spec({"episodes": {"split_after": ["terminals", "timeouts"]}})
    with open_source(path, spec=spec) as source:
        refs = source.episode_refs()
        assert [r.length for r in refs] == [4, 5, 3, 2]
        assert any(
            "the last 2 steps end with no terminals or timeouts flag" in w for w in source.info().extra["warnings"]
        )
        third = source.read_episode(refs[2])
        np.testing.assert_array_equal(np.asarray(third.vectors["observations"][0:3])[:, 0], [9, 10, 11])
        assert "terminals" in third.vectors  # the flags stay data
    report = convert(path, tmp_path / "out", spec=spec)
    assert report.episodes_written == 4 and report.frames_written == STEPS
    dataset = rdstd.open(tmp_path / "out")
    np.testing.assert_array_equal(dataset.episode(1).vectors["action"][:, 0], -np.arange(4, 9, dtype=np.float32))


def test_an_end_row_dataset_named_in_the_spec_splits_the_file(tmp_path: Path) -> None:
    path = write_d4rl(tmp_path / "flat.hdf5")
    with h5py.File(path, "a") as f:
        f.create_dataset("meta/ends", data=np.array([6, 10, STEPS]))
    with open_source(path, spec=d4rl_spec({"episodes": {"ends": "meta/ends"}})) as source:
        refs = source.episode_refs()
        assert [r.length for r in refs] == [6, 4, 4]
        episode = source.read_episode(refs[1])
        assert "meta/ends" not in episode.vectors
        np.testing.assert_array_equal(
            np.asarray(episode.vectors["rewards"][0:4]), np.arange(6, 10, dtype=np.float32) / np.float32(10)
        )


def test_layout_mistakes_name_the_spec_and_the_key(tmp_path: Path) -> None:
    path = write_d4rl(tmp_path / "flat.hdf5")
    with pytest.raises(MappingError, match=r"source: episodes.split_after names 'dones', which .*flat.hdf5 lacks"):
        open_source(path, spec=d4rl_spec({"episodes": {"split_after": ["dones"]}}))
    with pytest.raises(MappingError, match=r"invalid HDF5 options at episodes: .*either split_after"):
        open_source(path, spec=d4rl_spec({"episodes": {"split_after": ["terminals"], "ends": "x"}}))
    with pytest.raises(MappingError, match=r"invalid HDF5 options at shift\.actions"):
        open_source(path, spec=d4rl_spec({"shift": {"actions": 0}}))


def test_a_one_step_shift_reads_each_command_from_the_next_row(tmp_path: Path) -> None:
    path = tmp_path / "episode_0.hdf5"
    frames = fx.write_aloha_episode(path, steps=6)
    with h5py.File(path) as f:
        stored_action, stored_qpos = f["action"][()], f["observations/qpos"][()]
    aloha = load_spec("hdf5/aloha").spec
    shifted = aloha.model_copy(update={"source": {"shift": {"action": 1}}})
    with open_source(path, spec=shifted) as source:
        episode = source.read_episode(source.episode_refs()[0])
        assert episode.length == 5
        np.testing.assert_array_equal(np.asarray(episode.vectors["action"][0:5]), stored_action[1:])
        np.testing.assert_array_equal(np.asarray(episode.vectors["observations/qpos"][0:5]), stored_qpos[:5])
        cam = fx.ALOHA_CAMERAS[0]
        assert list(episode.images[f"observations/images/{cam}"].frames) == frames[cam][:5]
        assert any("the last 1 of 6 steps were dropped" in n for n in episode.meta["notes"])
    report = convert(path, tmp_path / "out", spec=shifted)
    assert report.frames_written == 5
    bad = aloha.model_copy(update={"source": {"shift": {"actions": 1}}})
    with open_source(path, spec=bad) as source, pytest.raises(MappingError, match="shift names actions"):
        source.read_episode(source.episode_refs()[0])


def test_the_aloha_preset_states_act_timing_as_the_target_commanded_at_t() -> None:
    spec = load_spec("hdf5/aloha").spec
    action = spec.features["action"].action
    assert action is not None and action.timing == "next_state_target"
    text = Path(load_spec("hdf5/aloha").origin).read_text()
    assert "len(timesteps) = len(actions) + 1" in text
    assert yaml.safe_load(text)["features"]["action"]["action"]["timing"] == "next_state_target"
