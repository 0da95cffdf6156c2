"""Validating a source: streamed through the converter (nothing written), or converted for pixel checks; episodes
it cannot give are findings, with the file named."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from rdstd.paths import normalized
from rdstd.validate import Finding, Severity, configure, streaming, validate
from rdstd.validate import source as source_module
from rdstd.validate.source import validate_source
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


def _key(f: Finding) -> tuple[object, ...]:
    """What a finding says; the conversion's own notes (RDV904 info) are worded by who converted."""
    said = (f.measured, f.message) if f.check != "RDV904" else (None, None)
    return (f.check, f.severity, f.episode_index, f.episode_id, f.feature, tuple(f.dims), f.frames, *said)


@pytest.mark.parametrize(
    ("name", "rate_hz"),
    [
        ("rlds/bridge_debug/bridge_dataset/1.0.0", None),
        ("lerobot/v30_small", None),
        ("lerobot/g1_v21_subset", None),
        ("rlds/edgecases/rlds_edgecases/1.0.0", 10.0),
    ],
)
def test_streaming_a_source_finds_what_validating_its_conversion_finds(name: str, rate_hz: float | None) -> None:
    root = normalized(sample(name))
    config = configure(root)
    streamed = validate_source(root, config, rate_hz=rate_hz, stream=True)
    converted = validate_source(root, config, rate_hz=rate_hz, stream=False)
    assert (streamed.episodes, streamed.frames) == (converted.episodes, converted.frames)
    assert sorted(map(_key, streamed.findings), key=str) == sorted(map(_key, converted.findings), key=str)


def test_a_streamed_source_writes_nothing_and_reads_again_when_it_does_not_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No conversion, no temporary dataset; with no room to keep the values, the second pass reads the source
    again and finds the same."""
    root = tmp_path / "v30"
    shutil.copytree(sample("lerobot/v30_small"), root)
    before = validate(root)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a streamed validation must not convert into a temporary dataset")

    monkeypatch.setattr(source_module, "convert", refuse)
    monkeypatch.setattr(tempfile, "TemporaryDirectory", refuse)
    monkeypatch.setattr(streaming, "KEEP_BYTES", 0)
    again = validate(root)
    assert [_key(f) for f in again.findings] == [_key(f) for f in before.findings]
    assert again.episodes == 3


def test_the_strict_profile_still_converts_for_its_pixel_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[bool] = []
    real = source_module.convert

    def counted(*args: Any, **kwargs: Any) -> Any:
        called.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(source_module, "convert", counted)
    report = validate(sample("lerobot/v30_small"), profile="strict", select=["RDV6"])
    assert called and report.episodes == 3
