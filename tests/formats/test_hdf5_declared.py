"""What HDF5 files state about their recording is declared: simulation or real (``@sim``), depth units."""

from __future__ import annotations

from pathlib import Path

import pytest

import rdstd
from rdstd.convert.pipeline import convert
from rdstd.formats.hdf5 import Hdf5Backend
from rdstd.testing import hdf5 as fx

DEPTH = "observations/depth_images/camera_top"


def _robomind_folder(root: Path, sims: list[bool | None], **kwargs: object) -> Path:
    for i, sim in enumerate(sims):
        folder = root / "train" / str(i) / "data"
        folder.mkdir(parents=True)
        fx.write_robomind(folder / "trajectory.hdf5", steps=3, sim=sim, **kwargs)  # type: ignore[arg-type]
    return root


def test_real_robomind_files_are_declared_real_in_the_manifest_and_each_episode(tmp_path: Path) -> None:
    src = _robomind_folder(tmp_path / "robomind", [False, False])
    convert(src, tmp_path / "out", rate_hz=30)  # RoboMIND files state no rate
    dataset = rdstd.open(tmp_path / "out")
    declared = dataset.manifest.extra["source_info"]["simulated"]
    assert declared["value"] is False and declared["source"] == "@sim of every file (2)"
    assert dataset.episode(1).meta.source_meta["simulated"] is False


@pytest.mark.parametrize(
    ("sims", "value"),
    [([True, True], True), ([True, False], "mixed"), ([False, None], "mixed"), ([None, None], "unknown")],
)
def test_the_sim_attribute_of_every_file_is_summarised(tmp_path: Path, sims: list[bool | None], value: object) -> None:
    src = _robomind_folder(tmp_path / "robomind", sims)
    with Hdf5Backend().open(src) as source:
        declared = source.info().extra["simulated"]
        metas = [source.read_episode(r).meta for r in source.episode_refs()]
    assert declared["value"] == value
    if value == "mixed":
        assert (declared["files_sim"], declared["files_real"]) == (sims.count(True), sims.count(False))
    assert [m.get("simulated") for m in metas] == sims


def test_aloha_sim_attribute_is_declared_too(tmp_path: Path) -> None:
    fx.write_aloha_episode(tmp_path / "episode_0.hdf5", steps=2, sim=True)
    with Hdf5Backend().open(tmp_path / "episode_0.hdf5") as source:
        assert source.info().extra["simulated"]["value"] is True


def test_files_of_other_flavors_do_not_claim_a_sim_flag(tmp_path: Path) -> None:
    fx.write_libero(tmp_path / "task_demo.hdf5", steps=2, demos=1)
    with Hdf5Backend().open(tmp_path / "task_demo.hdf5") as source:
        assert "simulated" not in source.info().extra


def test_robomind_depth_without_a_stated_unit_is_unknown_with_the_rule_quoted(tmp_path: Path) -> None:
    src = _robomind_folder(tmp_path / "robomind", [False])
    with Hdf5Backend().open(src) as source:
        declared = source.info().extra["depth_units"][DEPTH]
        notes = source.read_episode(source.episode_refs()[0]).meta["notes"]
    assert declared["unit"] == "unknown" and "RoboMIND's rule" in declared["why"]
    assert any(n.startswith(f"{DEPTH}: depth images are kept as stored; RoboMIND's rule") for n in notes)


@pytest.mark.parametrize(
    ("attrs", "want"),
    [
        ({"unit": "millimeters"}, {"unit": "mm", "from": f"{DEPTH}@unit"}),
        ({"depth_unit": "m", "depth_scale": 0.001}, {"unit": "m", "scale": 0.001, "from": f"{DEPTH}@depth_unit"}),
        ({"units": "furlongs"}, {"unit": "unknown", "stated": "furlongs", "from": f"{DEPTH}@units"}),
    ],
)
def test_a_depth_unit_the_file_states_is_declared(tmp_path: Path, attrs: dict[str, object], want: object) -> None:
    src = _robomind_folder(tmp_path / "robomind", [False], depth_attrs=attrs)
    with Hdf5Backend().open(src) as source:
        declared = source.info().extra["depth_units"][DEPTH]
        notes = source.read_episode(source.episode_refs()[0]).meta["notes"]
    assert declared == want
    assert f"{DEPTH}: depth unit {want['unit']} as the file states ({want['from']})" in notes  # type: ignore[index]
