"""The shared path rules: metadata never reaches outside a dataset, names never become separators."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdstd.errors import CorruptSourceError, UsageError
from rdstd.paths import inside, is_safe_component, normalized, safe_component


def test_a_relative_path_inside_the_root_is_joined(tmp_path: Path) -> None:
    assert inside(tmp_path, "data/chunk-000/file.parquet", "a data file") == tmp_path / "data/chunk-000/file.parquet"


def test_dot_dot_that_stays_inside_is_folded(tmp_path: Path) -> None:
    assert inside(tmp_path, "data/../meta/info.json", "info") == tmp_path / "meta/info.json"


@pytest.mark.parametrize("rel", ["../outside", "data/../../outside", "/etc/passwd", "a/../../../etc/passwd"])
def test_paths_that_leave_the_root_are_refused(tmp_path: Path, rel: str) -> None:
    with pytest.raises(CorruptSourceError, match="a template"):
        inside(tmp_path / "ds", rel, "a template")


def test_the_error_class_and_hint_are_the_callers(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="outside") as info:
        inside(tmp_path, "../x", "an output name", error=UsageError, hint="rename it")
    assert info.value.hint == "rename it"


def test_a_root_given_with_dot_dot_is_normalised_once(tmp_path: Path) -> None:
    (tmp_path / "g1").mkdir()
    root = tmp_path / "x" / ".." / "g1"
    assert inside(root, "meta/info.json", "info") == tmp_path / "g1" / "meta" / "info.json"
    assert normalized(root) == tmp_path / "g1"


@pytest.mark.parametrize("name", ["observation.images.front", "action", "cam_high-1", "a.b_c"])
def test_ordinary_feature_names_are_safe(name: str) -> None:
    assert is_safe_component(name)
    assert safe_component(name, "feature") == name


@pytest.mark.parametrize("name", ["", "..", "a/../../b", "a/b", "a\\b", ".hidden", "x..y", "a b", "é"])
def test_names_with_separators_or_dot_dot_are_refused(name: str) -> None:
    assert not is_safe_component(name)
    with pytest.raises(CorruptSourceError, match="cannot be a file name"):
        safe_component(name, "feature")
