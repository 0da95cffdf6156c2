"""CLI conventions (#16): shared options anywhere, JSON errors, --quiet, usage lines in capitals, completion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rdstd.cli.app import lift_shared_options, main
from rdstd.testing.fixtures import make_zarr_replay_buffer


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def source(tmp_path: Path) -> Path:
    make_zarr_replay_buffer(tmp_path / "rb.zarr", [8, 8], chunk_rows=8)
    return tmp_path / "rb.zarr"


@pytest.mark.parametrize(
    "args",
    [
        ["--format", "json", "info", "SRC"],
        ["info", "SRC", "--format", "json"],
        ["info", "--format=json", "SRC"],
        ["-q", "--format", "json", "info", "SRC", "--debug"],
    ],
)
def test_format_is_accepted_before_or_after_the_command(
    capsys: pytest.CaptureFixture[str], source: Path, args: list[str]
) -> None:
    code, out, _ = run(capsys, *[str(source) if a == "SRC" else a for a in args])
    assert code == 0
    assert json.loads(out)["format"] == "zarr"


def test_shared_flags_are_lifted_before_the_command_and_format_after_it() -> None:
    assert lift_shared_options(["info", "x", "--debug", "-q", "--format", "json"]) == [
        "--debug",
        "--quiet",
        "info",
        "--format",
        "json",
        "x",
    ]
    # schema has no --format of its own: the root takes it
    assert lift_shared_options(["schema", "--format", "json"]) == ["--format", "json", "schema"]
    # after `--` nothing is an option
    assert lift_shared_options(["info", "--", "--debug"]) == ["info", "--", "--debug"]


def test_errors_are_json_on_stderr_with_the_same_exit_code(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "info", tmp_path / "absent", "--format", "json")
    assert code == 3 and out == ""
    error = json.loads(err)["error"]
    assert error["code"] == "RD401" and error["situation"] == "path-not-found"
    assert "absent" in error["message"] and error["hint"].endswith("docs/errors.md#rd401-path-not-found")
    code, _, text = run(capsys, "info", tmp_path / "absent")
    assert code == 3 and text.startswith("rdstd: error: [RD401]")
    assert text.rstrip().endswith("[see docs/errors.md#rd401-path-not-found]")


def test_usage_errors_are_json_too_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--format", "json", "info", "--no-such-option", "x")
    assert code == 2
    error = json.loads(err)["error"]
    assert (error["code"], error["situation"]) == ("RD100", "cli-usage")
    assert "--no-such-option" in error["message"] and "rdstd info --help" in error["hint"]
    code, _, err = run(capsys, "info", "--format", "json")
    assert code == 2 and "PATH" in json.loads(err)["error"]["message"]


def test_usage_lines_name_arguments_in_capitals(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "info", "--help")
    assert code == 0 and "Usage: rdstd info [OPTIONS] PATH\n" in out
    code, out, _ = run(capsys, "schema", "--help")
    assert code == 0 and "Usage: rdstd schema [OPTIONS] [WHICH]\n" in out
    code, _, err = run(capsys, "info")
    assert code == 2 and "Missing argument 'PATH'" in err


def test_quiet_leaves_the_result_and_drops_the_plan(
    capsys: pytest.CaptureFixture[str], source: Path, tmp_path: Path
) -> None:
    code, out, err = run(capsys, "convert", source, tmp_path / "out", "--quiet")
    assert code == 0 and "episodes written: 2" in out
    assert err == ""
    code, _, err = run(capsys, "convert", source, tmp_path / "out2")
    assert code == 0 and err.startswith("rdstd: converting 2 episode(s)") and "warning" not in err


def test_shell_completion_is_installable(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "--install-completion" in out and "--show-completion" in out


def test_an_unknown_root_format_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "schema", "--format", "yaml")
    assert code == 2 and "[RD100]" in err and "rd100-format-unknown" in err


def test_docs_cli_has_a_section_for_every_command() -> None:
    from rdstd.cli.app import app

    text = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    commands = {info.name for info in app.registered_commands}
    assert commands >= {"convert", "info", "validate", "export", "formats", "schema", "spec"}
    missing = sorted(c for c in commands if f"\n## rdstd {c}\n" not in text)
    assert missing == [], "document these in docs/cli.md (## rdstd COMMAND, usage, examples)"
