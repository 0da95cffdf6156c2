"""When a default export (no ``--workers``) starts a pool of workers: only when its work pays for the pool's start-up
(issue #14.8: a 100-episode stream-copy export took 1.4 s of CPU with 2 workers against 0.7 s in one process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdstd.cli.app import main
from rdstd.export import lerobot
from rdstd.export.lerobot import estimated_seconds, export_lerobot
from rdstd.schema.vocabulary import ImageCodec
from rdstd.store.reader import Dataset
from tests.batch.helpers import EXPORT_LENGTHS, file_digests, video_kept_canonical

LENGTHS = EXPORT_LENGTHS


@pytest.fixture(scope="module")
def canonical(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A canonical dataset with its camera kept as video (one mp4 per episode, from a v2.1 source)."""
    return video_kept_canonical(tmp_path_factory.mktemp("export-pool"))


def test_a_small_default_export_runs_in_this_process_with_the_bytes_of_a_plain_export(
    canonical: Path, tmp_path: Path
) -> None:
    plain = export_lerobot(canonical, tmp_path / "plain")
    # what `rdstd export` passes without --workers: the local executor, with units smaller than the dataset
    default = export_lerobot(canonical, tmp_path / "default", executor="local", unit_episodes=2)
    assert plain.batch == default.batch == {}
    assert file_digests(tmp_path / "plain") == file_digests(tmp_path / "default")


def test_a_default_export_whose_work_pays_for_a_pool_runs_on_every_core(
    canonical: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lerobot, "POOL_MIN_S", 0.0)
    report = export_lerobot(canonical, tmp_path / "out", executor="local", unit_episodes=2)
    assert report.batch["units"] == 5 and report.batch["executor"] == "local"


def test_workers_given_start_the_pool_whatever_the_work(canonical: Path, tmp_path: Path) -> None:
    report = export_lerobot(canonical, tmp_path / "out", executor="local", workers=1, unit_episodes=2)
    assert report.batch["units"] == 5 and report.batch["workers"] == 1


def test_the_estimate_counts_every_frame_and_the_pixels_of_the_cameras_it_encodes(canonical: Path) -> None:
    ds = Dataset.open(canonical)
    frames = sum(LENGTHS)
    (camera,) = ds.manifest.cameras.values()
    assert camera.codec == ImageCodec.VIDEO
    copied = frames * lerobot.COPY_S_PER_FRAME
    encoded = frames * camera.height * camera.width * lerobot.ENCODE_S_PER_PIXEL
    assert estimated_seconds(ds, "copy-or-auto") == pytest.approx(copied)
    assert estimated_seconds(ds, "auto") == pytest.approx(copied + encoded)
    assert estimated_seconds(ds, "auto", exclude=list(ds.manifest.cameras)) == pytest.approx(copied)


def test_the_export_command_without_workers_exports_a_small_dataset_in_process(
    canonical: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["export", str(canonical), str(tmp_path / "out"), "--to", "lerobot", "--unit-episodes", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "episodes: 9" in out and "work units" not in out
