"""docs/errors.md, the error classes and every raise site stay in step: codes, situations and their sections."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from rdstd.errors import ERROR_CODES, SITUATION_PATTERN, CorruptSourceError, MissingDependencyError, RdstdError

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "errors.md"
#: MissingDependencyError names its situation itself (the extra is in the message and the hint).
FIXED = {MissingDependencyError.__name__: "extra-not-installed"}


def _classes() -> dict[str, str]:
    """Every error class name in rdstd (errors.py and subclasses defined elsewhere) -> its code."""
    codes = {cls.__name__: cls.code for cls in ERROR_CODES.values()}
    for path in sorted((ROOT / "rdstd").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [b.id for b in node.bases if isinstance(b, ast.Name) and b.id in codes]
                if bases and node.name not in codes:
                    own = [
                        s.value.value
                        for s in node.body
                        if isinstance(s, ast.Assign)
                        and any(isinstance(t, ast.Name) and t.id == "code" for t in s.targets)
                        and isinstance(s.value, ast.Constant)
                    ]
                    codes[node.name] = own[0] if own else codes[bases[0]]
    return codes


def _raised() -> tuple[set[tuple[str, str]], list[str]]:
    """(code, situation) of every raise site in rdstd, and the sites that name no situation."""
    codes = _classes()
    found: set[tuple[str, str]] = set()
    unnamed: list[str] = []
    for path in sorted((ROOT / "rdstd").rglob("*.py")):
        rel = path.relative_to(ROOT)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            name = node.func.id
            if name == "error_json" and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
                code = node.args[0]
                value = code.value if isinstance(code, ast.Constant) else codes[ast.unparse(code).split(".")[0]]
                found.add((str(value), str(node.args[1].value)))
            if name not in codes or (name == RdstdError.__name__ and path.name == "errors.py"):
                continue
            if name in FIXED:
                found.add((codes[name], FIXED[name]))
                continue
            given = {k.arg: k.value for k in node.keywords}.get("situation")
            if isinstance(given, ast.Constant) and isinstance(given.value, str):
                found.add((codes[name], given.value))
            elif not (isinstance(given, ast.Attribute) and given.attr == "situation"):  # passed on from a cause
                unnamed.append(f"{rel}:{node.lineno} {name}")
    return found, unnamed


def _documented() -> set[tuple[str, str]]:
    return {(m[1], m[2]) for m in re.finditer(r"^### (RD\d{3}) (\S+)$", DOC.read_text(), re.MULTILINE)}


def test_the_code_table_lists_every_class_with_its_exit_code() -> None:
    rows = re.findall(r"^\| (RD\d{3}) \| (\w+) \| .* \| (\d+) \|$", DOC.read_text(), re.MULTILINE)
    assert {code: (cls, int(exit_code)) for code, cls, exit_code in rows} == {
        code: (cls.__name__, cls.exit_code) for code, cls in ERROR_CODES.items()
    }


def test_every_raise_site_names_a_kebab_case_situation() -> None:
    found, unnamed = _raised()
    assert unnamed == [], "give these raise sites a situation= (and a section in docs/errors.md)"
    assert [s for _, s in found if not SITUATION_PATTERN.fullmatch(s)] == []


def test_every_situation_raised_has_its_section_and_every_section_is_raised() -> None:
    found, _ = _raised()
    documented = _documented()
    assert sorted(found - documented) == [], "document these in docs/errors.md (### RDnnn situation)"
    assert sorted(documented - found) == [], "nothing raises these any more: remove their sections"


def test_every_section_says_what_to_do() -> None:
    sections = re.split(r"^### ", DOC.read_text(), flags=re.MULTILINE)[1:]
    assert sections and all("What to do: " in s for s in sections)


@pytest.mark.parametrize("cls", sorted(ERROR_CODES.values(), key=lambda c: c.code), ids=lambda c: c.code)
def test_the_default_situation_comes_from_the_class(cls: type[RdstdError]) -> None:
    error = RdstdError.__new__(cls)
    RdstdError.__init__(error, "x")
    assert SITUATION_PATTERN.fullmatch(error.situation)
    assert error.anchor == f"{cls.code.lower()}-{error.situation}"


def test_the_one_line_error_ends_with_its_section() -> None:
    error = CorruptSourceError("a.mp4: no frames", hint="re-encode it", situation="video-unreadable")
    assert error.one_line() == "[RD404] a.mp4: no frames (re-encode it) [see docs/errors.md#rd404-video-unreadable]"
    assert ("RD404", "video-unreadable") in _documented()
    assert error.as_dict() == {
        "code": "RD404",
        "situation": "video-unreadable",
        "message": "a.mp4: no frames",
        "hint": "re-encode it; see docs/errors.md#rd404-video-unreadable",
    }
    assert MissingDependencyError("zarr", "zarr").situation == "extra-not-installed"
