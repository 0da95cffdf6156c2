"""Validating a source: converted on the fly; episodes it cannot give are findings, with the file named."""

from __future__ import annotations

import shutil
from pathlib import Path

from rdstd.validate import Severity, validate
from tests.conftest import sample


def test_a_truncated_lerobot_video_is_an_error_finding_naming_the_file(tmp_path: Path) -> None:
    source = tmp_path / "v30"
    shutil.copytree(sample("lerobot/v30_small"), source)
    video = next(iter(sorted(source.glob("videos/observation.images.front/*/*.mp4"))))
    video.chmod(0o644)
    data = video.read_bytes()
    video.write_bytes(data[: len(data) * 2 // 3])
    report = validate(source)
    (finding,) = [f for f in report.findings if f.check == "RDV904"]
    assert finding.severity == Severity.ERROR and finding.episode_index == 2
    assert "is truncated" in finding.message and str(video) in finding.message
    assert report.episodes == 2, "the other episodes are validated"
    ignored = validate(source, ignore=["RDV904"])
    assert not [f for f in ignored.findings if f.check == "RDV904"]
