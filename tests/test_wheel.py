"""Packaging (#16 item 6): the extras match what the code imports, `all` holds every backend and consumer, the
version is declared once, and CI checks the built wheel (.ci/wheel_check.sh; too slow for the test suite)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import pytest

import rdstd
from rdstd.formats import registry

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS: dict[str, list[str]] = PROJECT["project"]["optional-dependencies"]
#: Code outside the backends that needs an extra, and the extras that may provide it.
CONSUMERS = {"rdstd/media/video.py": {"video", "lerobot"}, "rdstd/io/remote.py": {"cloud"}}
#: Standard-library modules of newer Pythons that the code tries first (``compression.zstd``, 3.14).
NEWER_STDLIB = {"compression"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _core() -> set[str]:
    return {_name(r) for r in PROJECT["project"]["dependencies"]}


def _imported(paths: list[Path]) -> set[str]:
    """Top-level modules imported anywhere in ``paths`` (lazy imports inside functions included)."""
    found: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
            elif (  # importlib.import_module("pkg.sub")
                isinstance(node, ast.Call)
                and ast.unparse(node.func).endswith("import_module")
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add(str(node.args[0].value).split(".")[0])
    return found - set(sys.stdlib_module_names) - NEWER_STDLIB - {"rdstd", "__future__"}


def _distributions(modules: set[str]) -> set[str]:
    dists = packages_distributions()
    return {_name(d) for m in modules for d in dists.get(m, [m])}


def _extra_names(extra: str) -> set[str]:
    """The extra's packages and what they install in turn (a backend may import a dependency of its library)."""
    found: set[str] = set()
    todo = [_name(r) for r in EXTRAS[extra]]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        try:
            todo += [_name(r) for r in requires(name) or [] if "extra ==" not in r]
        except PackageNotFoundError:
            continue
    return found


@pytest.mark.parametrize("name", sorted(registry.BUILTINS))
def test_each_backend_extra_holds_what_the_backend_imports(name: str) -> None:
    backend = registry.get_backend(name)
    assert backend.extra in EXTRAS, f"{name}: extra {backend.extra!r} is not in pyproject.toml"
    module = registry.BUILTINS[name].split(":")[0]
    files = sorted((ROOT / module.replace(".", "/")).rglob("*.py"))
    needed = _distributions(_imported(files)) - _core()
    needed -= _distributions({"av"}) if name == "lerobot" else set()  # video goes through rdstd.media (below)
    assert needed <= _extra_names(backend.extra), f"{name}: imports {sorted(needed)}"


@pytest.mark.parametrize(("path", "extras"), sorted(CONSUMERS.items()))
def test_code_outside_the_backends_is_covered_by_its_extras(path: str, extras: set[str]) -> None:
    needed = _distributions(_imported([ROOT / path])) - _core()
    assert needed and all(needed <= _extra_names(e) for e in extras), sorted(needed)


def test_no_runtime_extra_pulls_a_test_only_package() -> None:
    runtime = {name for name in EXTRAS if name not in {"dev", "all"}}
    assert not any("tensorflow-datasets" in {_name(r) for r in EXTRAS[e]} for e in runtime)  # the RLDS tests' oracle
    assert "tensorflow-datasets" in {_name(r) for r in EXTRAS["dev"]}


def test_all_installs_every_backend_and_consumer() -> None:
    (spec,) = EXTRAS["all"]
    bundled = set(re.fullmatch(r"rdstd\[(.*)\]", spec).group(1).split(","))  # type: ignore[union-attr]
    backends = {registry.get_backend(n).extra for n in registry.BUILTINS}
    assert backends | {"video", "cloud", "viewer"} <= bundled
    assert "torch" not in bundled  # a CPU or CUDA build is the user's choice (tests pin the CPU wheel)


def test_heavy_dependencies_are_pinned_where_their_api_breaks() -> None:
    assert EXTRAS["viewer"] == ["rerun-sdk>=0.41,<0.42"]
    makefile = (ROOT / "Makefile").read_text()
    assert '"torch==2.13.0"' in makefile  # the CPU wheel first, so the torch extra installs nothing more


def test_the_version_is_declared_once() -> None:
    assert "version" not in PROJECT["project"] and PROJECT["project"]["dynamic"] == ["version"]
    assert PROJECT["tool"]["hatch"]["version"]["path"] == "rdstd/__init__.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+", rdstd.__version__)


def test_ci_checks_the_built_wheel() -> None:
    assert "bash .ci/wheel_check.sh" in (ROOT / ".ci" / "run").read_text()
    script = (ROOT / ".ci" / "wheel_check.sh").read_text()
    for extra in ("zarr", "rlds", "lerobot", "hdf5", "ros", "cloud", "viewer", "all"):
        assert extra in script
