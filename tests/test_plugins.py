"""Formats the zarr way (#16 item 7): built-ins are entry points like any plugin, loaded lazily by name, and one
that fails to load does not break the others."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdstd.errors import PluginError
from rdstd.formats import registry

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh() -> Iterator[None]:
    registry.reload()
    yield
    registry.reload()


def test_the_builtins_are_declared_as_rdstd_formats_entry_points() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["entry-points"][registry.ENTRY_POINT_GROUP] == registry.BUILTINS


def test_asking_for_one_format_by_name_imports_that_backend_only() -> None:
    code = (
        "import sys; from rdstd.formats.registry import get_backend; get_backend('zarr'); "
        "print(sorted(m for m in sys.modules if m.startswith('rdstd.formats.') and m.count('.') == 2))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": str(ROOT)}
    )
    loaded = eval(done.stdout)
    assert "rdstd.formats.zarr" in loaded
    assert not {"rdstd.formats.rlds", "rdstd.formats.lerobot", "rdstd.formats.hdf5", "rdstd.formats.rosbag"} & set(
        loaded
    )


def test_import_rdstd_loads_no_backend() -> None:
    code = "import sys, rdstd; print([m for m in sys.modules if m.startswith('rdstd.formats.')])"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": str(ROOT)}
    )
    assert not any(name in done.stdout for name in ("zarr", "rlds", "lerobot", "hdf5", "rosbag"))


def test_a_builtin_that_fails_to_load_does_not_break_the_others(
    fresh: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(registry.BUILTINS, "rlds", "rdstd.formats.no_such_backend:Backend")
    registry.reload()
    usable = registry.backends()
    assert "rlds" not in usable and {"zarr", "lerobot", "hdf5", "rosbag"} <= set(usable)
    failed = {e.name: e.problem for e in registry.load_failures()}
    assert "ModuleNotFoundError" in failed["rlds"]
    with pytest.raises(PluginError, match="'rlds'"):
        registry.get_backend("rlds")
    from rdstd.testing.fixtures import make_zarr_replay_buffer

    make_zarr_replay_buffer(tmp_path / "rb.zarr", [4], chunk_rows=4)
    assert registry.detect(tmp_path / "rb.zarr").name == "zarr"


@pytest.mark.parametrize("name", sorted(registry.BUILTINS))
def test_the_contract_suite_runs_for_every_builtin_backend(name: str) -> None:
    backend_class = registry.BUILTINS[name].split(":")[1]
    suites = [
        path
        for path in sorted((ROOT / "tests" / "formats").glob("test_*.py"))
        if "(BackendContract)" in (text := path.read_text()) and f"{backend_class}()" in text
    ]
    assert suites, f"no BackendContract subclass runs {backend_class} (see rdstd.testing.contract)"
