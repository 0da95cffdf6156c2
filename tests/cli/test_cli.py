"""The CLI: exit codes, one-line errors naming the file, summaries and JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rdstd.cli.app import main
from rdstd.testing.fixtures import make_zarr_replay_buffer


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def source(tmp_path: Path) -> Path:
    make_zarr_replay_buffer(tmp_path / "rb.zarr", [16, 16, 16], chunk_rows=16)
    return tmp_path / "rb.zarr"


def test_convert_then_info_describes_units_and_counts(
    capsys: pytest.CaptureFixture[str], source: Path, tmp_path: Path
) -> None:
    code, out, err = run(capsys, "convert", source, tmp_path / "out")
    assert code == 0, err
    assert "episodes written: 3" in out and "frames written:   48" in out
    assert "with spec zarr/pusht (shipped, matched to the source)" in err and "warning" not in err
    code, out, _ = run(capsys, "info", tmp_path / "out")
    assert code == 0
    assert "episodes 3, frames 48" in out
    assert "agent_x[px]" in out and "block_angle[rad]" in out


def test_info_json_on_a_source_reports_the_backend_details(capsys: pytest.CaptureFixture[str], source: Path) -> None:
    code, out, _ = run(capsys, "info", source, "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert (data["format"], data["episodes"], data["frames"]) == ("zarr", 3, 48)
    assert data["extra"]["layout"] == "diffusion_policy_pusht"
    assert {k["key"]: k["kind"] for k in data["keys"]}["data/img"] == "image"


def test_skipped_episodes_are_listed_and_exit_code_is_1(
    capsys: pytest.CaptureFixture[str], source: Path, tmp_path: Path
) -> None:
    (source / "data" / "state" / "1.0").write_bytes(b"broken")
    code, out, _ = run(capsys, "convert", source, tmp_path / "out", "--on-error", "skip", "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert report["episodes_written"] == 2
    assert report["skipped"][0]["key"] == "episode_000001"
    assert "data/state/1.0" in report["skipped"][0]["reason"]


def test_a_corrupt_source_is_one_line_naming_the_file_with_exit_3(
    capsys: pytest.CaptureFixture[str], source: Path, tmp_path: Path
) -> None:
    (source / "data" / "img" / "2.0.0.0").write_bytes(b"broken")
    code, _, err = run(capsys, "convert", source, tmp_path / "out")
    assert code == 3
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert lines[0].startswith("rdstd: converting 3 episode(s)"), "the plan comes first"
    assert lines[-1].startswith("rdstd: error: [RD404]") and "data/img/2.0.0.0" in lines[-1]
    assert [line for line in lines if "error" in line] == [lines[-1]], "the error is one line"
    assert not (tmp_path / "out").exists()


def test_not_a_dataset_exits_3_and_says_what_to_do(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "stuff").mkdir()
    code, _, err = run(capsys, "convert", tmp_path / "stuff", tmp_path / "out")
    assert code == 3
    assert "[RD402]" in err and "--source-format" in err and "rdstd formats" in err


def test_an_existing_output_is_a_usage_error_with_exit_2(
    capsys: pytest.CaptureFixture[str], source: Path, tmp_path: Path
) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    code, _, err = run(capsys, "convert", source, tmp_path / "out")
    assert code == 2
    assert "is not a canonical rdstd dataset" in err, "a folder of the user's is never replaced"
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_a_bad_option_is_a_usage_error(capsys: pytest.CaptureFixture[str], source: Path, tmp_path: Path) -> None:
    code, _, _ = run(capsys, "convert", source, tmp_path / "out", "--on-error", "maybe")
    assert code == 2


def test_spec_drafts_yaml_that_convert_accepts(
    capsys: pytest.CaptureFixture[str], source: Path, tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "spec", source)
    assert code == 0
    assert "unit: unknown" in out, "a draft shows the unknowns the user has to fill in"
    (tmp_path / "draft.yaml").write_text(out)
    code, _, err = run(capsys, "convert", source, tmp_path / "out", "--spec", tmp_path / "draft.yaml")
    assert code == 0, err


def test_schema_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema", "converter-spec")
    assert code == 0
    assert json.loads(out)["title"] == "ConverterSpec"


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "--debug", "info", tmp_path / "missing")
    assert code == 3
    assert "Traceback" in err


def test_version_is_printed_and_debug_is_accepted_after_the_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import rdstd

    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"rdstd {rdstd.__version__}"
    code, _, err = run(capsys, "info", tmp_path / "absent", "--debug")
    assert code == 3 and "no such file" in err and "Traceback" in err  # --debug after the command shows the cause
