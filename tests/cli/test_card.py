"""`rdstd info DATASET --format markdown`: a dataset card generated from the manifest (#16 item 5)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rdstd.cli.app import main
from rdstd.testing.fixtures import make_zarr_replay_buffer


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("card")
    make_zarr_replay_buffer(root / "rb.zarr", [12, 9, 15], chunk_rows=12)
    assert main(["convert", str(root / "rb.zarr"), str(root / "ds"), "--quiet"]) == 0
    return root / "ds"


def test_the_card_carries_units_frames_provenance_license_and_citation(
    capsys: pytest.CaptureFixture[str], converted: Path
) -> None:
    code, card, _ = run(capsys, "info", converted, "--format", "markdown")
    assert code == 0
    manifest = json.loads((converted / "rdstd.json").read_text())
    assert card.startswith("---\nlicense: mit\ntask_categories:\n- robotics\n")
    assert "| episodes | 3 |" in card and "| frames | 36 |" in card and "| frame rate | 10 Hz |" in card
    for key, feature in manifest["features"].items():  # every feature, every dimension with its unit and frame
        assert f"`{key}`" in card
        for i, dim in enumerate(feature.get("dims", [])):
            assert f"| {i} | {dim['name']} | {dim['role']} | {dim['unit']} | {dim['frame']} |" in card
    assert "camera 96×96×3 uint8" in card or "camera 32×32×3 uint8" in card
    assert "| pusht_agent |" in card  # the embodiment table
    assert f"| source format | zarr ({manifest['provenance']['source_version']}) |" in card
    assert manifest["provenance"]["converter_spec_sha256"] in card
    assert "## License\n\nMIT" in card
    assert "## Citation\n\nChi et al., Diffusion Policy" in card
    assert "Not validated (no findings file)" in card


def test_the_card_summarises_findings_beside_the_dataset_or_given(
    capsys: pytest.CaptureFixture[str], converted: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "ds"
    shutil.copytree(converted, copy)
    report = tmp_path / "report.json"
    code, _, _ = run(capsys, "validate", copy, "--format", "json", "--output", report)
    assert code == 0
    findings = json.loads(report.read_text())
    code, card, _ = run(capsys, "info", copy, "--format", "markdown", "--findings", report)
    assert code == 0
    assert f"profile {findings['profile']}" in card and f"({len(findings['checks'])} checks run)" in card
    for finding in findings["findings"]:
        assert f"| {finding['check']} {finding['name']} | {finding['severity']} |" in card
    shutil.copy(report, tmp_path / "ds.findings.json")  # beside the dataset: found without --findings
    code, beside, _ = run(capsys, "info", copy, "--format", "markdown")
    assert beside == card


def test_a_card_of_a_source_is_refused_with_the_next_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    make_zarr_replay_buffer(tmp_path / "rb.zarr", [4], chunk_rows=4)
    code, out, err = run(capsys, "info", tmp_path / "rb.zarr", "--format", "markdown")
    assert code == 2 and out == ""
    assert "[RD100]" in err and "rdstd convert" in err and "rd100-card-needs-dataset" in err
