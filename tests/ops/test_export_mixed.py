"""Export of a mixed dataset: LeRobot holds one fps and one feature set; rdstd says so and names the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdstd.errors import UsageError
from rdstd.export.lerobot import export_lerobot
from rdstd.ops.filter import filter_episodes
from rdstd.ops.merge import merge
from rdstd.ops.resample import resample
from tests.ops.helpers import make


def test_mixed_rates_are_refused_with_the_resample_fix_which_then_exports(tmp_path: Path) -> None:
    a = make(tmp_path / "a", prefix="a", rate_hz=10, frames=20)
    b = make(tmp_path / "b", prefix="b", rate_hz=30, frames=60)
    merge([a, b], tmp_path / "mixed")
    with pytest.raises(UsageError, match="one fps per dataset") as caught:
        export_lerobot(tmp_path / "mixed", tmp_path / "lerobot")
    assert "rdstd resample" in caught.value.hint
    assert not (tmp_path / "lerobot").exists()
    resample(tmp_path / "mixed", tmp_path / "mixed-10", rate_hz=10)
    report = export_lerobot(tmp_path / "mixed-10", tmp_path / "lerobot")
    assert report.episodes == 6


def test_mixed_feature_sets_are_refused_with_one_export_per_group(tmp_path: Path) -> None:
    a = make(tmp_path / "a", prefix="a", embodiment="arm_a")
    b = make(tmp_path / "b", prefix="b", embodiment="arm_b", camera="observation.images.wrist")
    merge([a, b], tmp_path / "mixed")
    with pytest.raises(UsageError, match="one feature set per dataset") as caught:
        export_lerobot(tmp_path / "mixed", tmp_path / "lerobot")
    assert "rdstd filter" in caught.value.hint
    assert not (tmp_path / "lerobot").exists()
    filter_episodes(tmp_path / "mixed", tmp_path / "arm_b", where="embodiment = 'arm_b'")
    report = export_lerobot(tmp_path / "arm_b", tmp_path / "lerobot")
    assert report.episodes == 3
    assert "observation.images.wrist" in report.cameras
