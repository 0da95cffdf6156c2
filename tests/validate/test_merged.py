"""Validating a merged dataset: the null rows of a feature an input lacked are not data (no non-finite errors, no
frozen or zero-variance findings), and each episode gets exactly the findings it gets in its own input."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdstd.ops.merge import merge
from rdstd.store.reader import Dataset
from rdstd.validate import validate
from rdstd.validate.model import Finding
from rdstd.validate.runner import partitions
from tests.validate.fixtures import make


def _episode_findings(findings: list[Finding], prefix: str = "") -> set[tuple[object, ...]]:
    return {
        (f.check, f.feature, prefix + (f.episode_id or ""), f.frames, f.severity, f.message)
        for f in findings
        if f.episode_id is not None and not f.check.startswith("RDV8")  # RDV8xx compare episodes with each other
    }


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("merged")
    a = make(root, "degrees")  # joint angles in degrees in episode 2
    b = make(root, "euler")  # an extra feature (observation.eef_euler) a does not have
    merge([a, b], root / "ab", labels=["a", "b"], prefix_ids=True)
    return a, b, root / "ab"


def test_each_episode_of_a_merge_gets_the_findings_it_gets_in_its_own_input(inputs: tuple[Path, Path, Path]) -> None:
    a, b, ab = inputs
    merged = validate(ab).findings
    assert not [f for f in merged if f.check == "RDV102"], "null rows of an absent feature are not NaN data"
    expected = _episode_findings(validate(a).findings, "a:") | _episode_findings(validate(b).findings, "b:")
    assert any(c == "RDV301" for c, *_ in expected), "the planted degrees are found in a"
    assert _episode_findings(merged) == expected


def test_episodes_are_checked_in_groups_with_the_features_they_have(inputs: tuple[Path, Path, Path]) -> None:
    a, b, ab = inputs
    parts = partitions(Dataset.open(ab))
    assert [p.num_episodes for p in parts] == [6, 6]
    assert set(parts[0].manifest.features) == set(Dataset.open(a).manifest.features)
    assert set(parts[1].manifest.features) == set(Dataset.open(b).manifest.features)
    assert partitions(Dataset.open(a))[0].manifest == Dataset.open(a).manifest


def test_a_merge_of_a_merge_follows_each_episodes_history(inputs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    a, b, ab = inputs
    merge([ab, a], tmp_path / "aba", labels=["ab", "again"], prefix_ids=True)
    parts = partitions(Dataset.open(tmp_path / "aba"))
    feature_sets = [set(p.manifest.features) for p in parts]
    assert feature_sets == [set(Dataset.open(a).manifest.features), set(Dataset.open(b).manifest.features)]
    assert [p.num_episodes for p in parts] == [12, 6]  # a's episodes from both inputs form one group
    assert not [f for f in validate(tmp_path / "aba").findings if f.check == "RDV102"]
