"""rdstd convert as a newcomer meets it: the plan first, progress in logs, a bounded report, errors that tell the truth,
and the loop spec -> convert -> info on the real samples."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import pytest

from rdstd.cli import output
from rdstd.cli.app import main
from rdstd.cli.output import ProgressMode, ProgressPrinter
from rdstd.errors import CorruptSourceError
from tests.conftest import sample
from tests.convert.pipeline_doubles import fail_at, registered, write_source


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# -- the report -----------------------------------------------------------------------------------------------------


def _all_but_first_fail(tmp_path: Path) -> Path:
    folder = tmp_path / "a-long-source-folder-name"
    folder.mkdir()
    return write_source(folder / "s.double", [2] * 26)


def test_the_text_summary_lists_twenty_skipped_episodes_and_counts_the_rest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = _all_but_first_fail(tmp_path)
    with registered() as double:
        double.fault = lambda ref: _raise_unless_first(ref.index, source)
        code, out, _ = run(capsys, "convert", source, tmp_path / "out", "--on-error", "skip", "--progress", "none")
    assert code == 1
    lines = [line for line in out.splitlines() if line.startswith("    - #")]
    assert len(lines) == 20
    assert "… and 5 more (the full list: --report FILE or --format json)" in out
    assert all(str(source.parent) not in line for line in lines), "the source path is said once, not per line"
    assert f"skipped episodes (paths relative to {source.parent}):" in out
    assert lines[0] == "    - #1 ep1: episodes/1.bin: bytes do not decode"


def _raise_unless_first(index: int, source: Path) -> None:
    if index:
        raise CorruptSourceError(f"{source.parent}/episodes/{index}.bin: bytes do not decode")


def test_the_full_skipped_list_goes_to_json_and_to_the_report_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = _all_but_first_fail(tmp_path)
    with registered() as double:
        double.fault = lambda ref: _raise_unless_first(ref.index, source)
        code, out, _ = run(
            capsys, "convert", source, tmp_path / "out", "--on-error", "skip", "--format", "json",
            "--report", tmp_path / "report.json", "--progress", "none",
        )  # fmt: skip
    assert code == 1
    printed = json.loads(out)
    written = json.loads((tmp_path / "report.json").read_text())
    assert printed == written
    assert len(written["skipped"]) == 25 and written["episodes_written"] == 1
    assert written["skipped"][0]["reason"].startswith(f"{source.parent}/episodes/1.bin")


def test_a_report_file_that_cannot_be_written_is_refused_before_the_work(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with registered() as double:
        double.fault = lambda ref: print(f"READING {ref.key}", file=sys.stderr)
        source = write_source(tmp_path / "s.double", [3])
        code, _, err = run(capsys, "convert", source, tmp_path / "out", "--report", tmp_path / "missing" / "r.json")
    assert code == 2
    assert "[RD100]" in err and "does not exist" in err and "READING" not in err
    assert not (tmp_path / "out").exists()


def test_non_finite_counts_and_left_out_keys_are_in_the_summary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with registered() as double:
        double.nonfinite = [(0, 0, 0, float("nan")), (1, 1, 1, float("inf"))]
        code, out, _ = run(capsys, "convert", write_source(tmp_path / "s.double", [3, 3]), tmp_path / "out")
    assert code == 0
    assert "non-finite values written" in out and "1 NaN, 1 inf in 2 episode(s)" in out


# -- the plan before the work, progress without a TTY ---------------------------------------------------------------


def test_the_spec_choice_and_warnings_are_printed_before_the_first_episode(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with registered() as double:
        double.fault = lambda ref: print(f"READING {ref.key}", file=sys.stderr)
        code, out, err = run(capsys, "convert", write_source(tmp_path / "s.double", [3, 3]), tmp_path / "out")
    assert code == 0
    plan = err.index("with spec draft (drafted)")
    warning = err.index("rdstd: warning: no converter spec given or matched")
    assert plan < warning < err.index("READING ep0")
    assert "warning" not in out, "warnings are not repeated after the work"


def test_plain_progress_prints_a_line_every_interval_and_never_redraws() -> None:
    stream = io.StringIO()
    now = [0.0]
    printer = ProgressPrinter("converting", ProgressMode.AUTO, interval_s=5.0, stream=stream, clock=lambda: now[0])
    assert printer.mode == ProgressMode.PLAIN, "auto is plain without a TTY"
    for done, t in enumerate([1.0, 4.0, 6.0, 7.0, 12.0], start=1):
        now[0] = t
        printer(done, 10)
    printer.close()
    lines = stream.getvalue().splitlines()
    assert lines == [
        "rdstd: converting: 3/10 episodes (30%), 6 s, about 14 s left",
        "rdstd: converting: 5/10 episodes (50%), 12 s, about 12 s left",
    ]
    assert "\r" not in stream.getvalue()


def test_without_a_tty_convert_prints_plain_progress_lines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(output, "PLAIN_INTERVAL_S", 0.0)  # a line at every episode instead of every 5 s
    with registered():
        code, _, err = run(capsys, "convert", write_source(tmp_path / "s.double", [2, 2, 2]), tmp_path / "out")
    assert code == 0
    assert "rdstd: converting: 1/3 episodes (33%)" in err and "rdstd: converting: 2/3 episodes (67%)" in err
    assert "\r" not in err


def test_no_progress_prints_nothing() -> None:
    stream = io.StringIO()
    printer = ProgressPrinter("converting", ProgressMode.NONE, interval_s=0.0, stream=stream)
    printer(1, 2)
    printer.close()
    assert stream.getvalue() == ""


# -- errors that tell the truth -------------------------------------------------------------------------------------


def test_an_internal_fault_is_one_line_with_exit_3_and_debug_shows_the_cause(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = write_source(tmp_path / "s.double", [3, 3])
    with registered() as double:
        double.fault = fail_at(1, KeyError("observation.state"))
        code, _, err = run(capsys, "convert", source, tmp_path / "out", "--on-error", "skip")
        assert code == 3
        last = err.strip().splitlines()[-1]
        assert last.startswith("rdstd: error: [RD900]") and "ep1" in last and "KeyError" in last
        assert "Traceback" not in err
        code, _, err = run(capsys, "--debug", "convert", source, tmp_path / "out2", "--on-error", "skip")
    assert code == 3
    assert "KeyError" in err and "direct cause" in err


def test_a_ros_bag_without_an_alignment_plan_is_refused_with_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "convert", sample("ros/synthetic_manipulation/episode_ros1.bag"), tmp_path / "out")
    assert code == 2
    assert "[RD200]" in err and "no alignment plan declared" in err and "episode_ros1.bag.rdstd.yaml" in err
    assert not (tmp_path / "out").exists()


def test_formats_lists_the_builtins_in_detection_order(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "formats", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert {f["name"] for f in data["formats"]} >= {"lerobot", "rlds", "rosbag", "zarr"}
    assert not any("ROS" in f or "HDF5" in f for f in data["not_yet"])  # both are read


# -- paths with .. at the CLI edge ----------------------------------------------------------------------------------


def test_info_spec_and_convert_accept_a_path_through_dotdot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    shutil.copytree(sample("lerobot/v30_small"), tmp_path / "g1")
    (tmp_path / "x").mkdir()
    through = f"{tmp_path}/x/../g1"
    code, out, err = run(capsys, "info", through)
    assert code == 0, err
    assert out.startswith(f"{tmp_path / 'g1'}: lerobot source")
    code, _, err = run(capsys, "spec", through)
    assert code == 0, err
    code, out, err = run(capsys, "convert", through, f"{tmp_path}/x/../out", "--limit", "1")
    assert code == 0, err
    code, out, _ = run(capsys, "info", f"{tmp_path}/x/../out")
    assert code == 0 and "episodes 1," in out


# -- the loop: rdstd spec SRC > drafted.yaml; rdstd convert SRC OUT --spec drafted.yaml; rdstd info OUT ---------------


@pytest.mark.parametrize(
    ("relative", "needs_rate"),
    [
        ("zarr/pusht/pusht_cchi_v7_replay.zarr", True),
        ("rlds/bridge_debug/bridge_dataset/1.0.0", True),
        ("lerobot/v30_small", False),
        ("lerobot/g1_v21_subset", False),
    ],
)
def test_a_drafted_spec_parses_back_and_the_converted_dataset_reads(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, relative: str, needs_rate: bool
) -> None:
    source = sample(relative)
    code, drafted, err = run(capsys, "spec", source)
    assert code == 0, err
    (tmp_path / "drafted.yaml").write_text(drafted)
    convert = ["convert", source, tmp_path / "out", "--spec", tmp_path / "drafted.yaml", "--limit", "2"]
    if needs_rate:
        code, _, err = run(capsys, *convert)
        assert code == 2, "a source without timestamps or rate stops with a usage-class error"
        assert "--rate HZ" in err and "rate_hz:" in err
        convert += ["--rate", "10"]
    code, out, err = run(capsys, *convert, "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["episodes_written"] == 2 and report["spec_choice"] == "given"
    code, out, err = run(capsys, "info", tmp_path / "out", "--format", "json")
    assert code == 0, err
    info = json.loads(out)
    assert info["episodes"] == 2 and info["frames"] == report["frames_written"]
    if needs_rate:
        assert info["rate_hz"] == 10.0


def test_convert_leaves_out_the_episodes_a_validate_report_flags_and_the_manifest_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import rdstd
    from rdstd.cli.app import main

    bridge = sample("rlds/bridge_debug/bridge_dataset/1.0.0")  # val repeats train: duplicates across splits
    assert main(["convert", str(bridge), str(tmp_path / "all")]) == 0
    code = main(["validate", str(tmp_path / "all"), "--format", "json", "--output", str(tmp_path / "f.json")])
    assert code == 1
    capsys.readouterr()
    assert main(["convert", str(bridge), str(tmp_path / "clean"), "--exclude-findings", str(tmp_path / "f.json")]) == 0
    clean = rdstd.open(tmp_path / "clean")
    excluded = clean.manifest.extra["excluded_episodes"]
    assert len(excluded) == 25 and all(any("RDV802" in r for r in reasons) for reasons in excluded.values())
    assert clean.num_episodes == 25 and set(clean.episodes["split"].to_list()) == {"train"}
    code = main(["validate", str(tmp_path / "clean"), "--format", "json", "--output", str(tmp_path / "g.json")])
    assert code == 0  # nothing at error level is left
