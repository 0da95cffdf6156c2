"""Batch conversion into object storage (a local moto S3 server): the same bytes as a local output, shards
uploaded whole with the manifest last, and a resumed run finding the finished units in the bucket."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

from rdstd.batch import convert_batch
from rdstd.batch.job import Job
from rdstd.store import layout
from tests.batch.helpers import digest, make_source
from tests.s3_server import make_bucket, s3_env


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    for name, value in s3_env(s3_endpoint).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RDSTD_CACHE", str(tmp_path / "cache"))
    make_bucket(s3_endpoint, "batch")
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # an instance made for another module's server has its endpoint
    return s3_endpoint


def _fs():  # type: ignore[no-untyped-def]
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True)


def _download(url: str, local: Path) -> Path:
    fs = _fs()
    key = url.removeprefix("s3://")
    for remote in fs.find(key):
        target = local / remote[len(key) + 1 :]
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(remote, str(target))
    return local


def test_local_to_s3_gives_the_same_bytes_as_local_to_local(s3: str, tmp_path: Path) -> None:
    src = make_source(tmp_path)
    local = tmp_path / "local"
    convert_batch(src, local, workers=1, unit_episodes=8)
    url = "s3://batch/datasets/pusht"
    report = convert_batch(src, url, workers=2, unit_episodes=8)
    assert report.output == url and report.episodes_written == 40
    fs = _fs()
    assert not fs.exists("batch/datasets/.pusht.rdstd-batch")  # the staging prefix goes once the manifest is there
    assert digest(_download(url, tmp_path / "downloaded")) == digest(local)
    import rdstd

    remote = rdstd.open(url)
    assert remote.episodes.equals(rdstd.open(local).episodes)


def test_an_s3_output_is_refused_when_a_dataset_is_there_and_replaced_with_overwrite(s3: str, tmp_path: Path) -> None:
    src = make_source(tmp_path, [10] * 6)
    url = "s3://batch/datasets/twice"
    convert_batch(src, url, workers=1)
    with pytest.raises(Exception, match="already there"):
        convert_batch(src, url, workers=1)
    convert_batch(src, url, workers=1, overwrite=True, limit=3)
    import rdstd

    assert len(rdstd.open(url).episodes) == 3


def test_a_resumed_run_finds_the_finished_units_in_the_bucket(
    s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_source(tmp_path, [10] * 24)
    url = "s3://batch/datasets/resumed"
    monkeypatch.chdir(tmp_path)  # the SLURM scripts of a remote output go to ./<name>.rdstd-slurm/
    convert_batch(src, url, executor="slurm", unit_episodes=4)  # stages the job in the bucket
    assert (tmp_path / "resumed.rdstd-slurm" / "units.sbatch").is_file()
    from rdstd.batch.job import load_job
    from rdstd.batch.worker import run_unit

    job: Job = load_job(url)
    assert len(job.units) == 6
    for unit in job.units[:4]:  # what four SLURM tasks (or a killed run) finished
        run_unit(job, unit)
    fs = _fs()
    journal = fs.ls("batch/datasets/.resumed.rdstd-batch/journal")
    assert len([p for p in journal if p.endswith(".json")]) == 4  # an entry (and its statistics) per finished unit
    assert len([p for p in journal if p.endswith(".stats.npz")]) == 4
    before = {
        u: hashlib.sha256(
            fs.cat_file(f"batch/datasets/.resumed.rdstd-batch/units/unit-0000{u}/{layout.EPISODES}")
        ).hexdigest()
        for u in range(4)
    }
    report = convert_batch(src, url, workers=2, unit_episodes=4, resume=True)
    assert report.batch["resumed_units"] == 4 and before
    local = tmp_path / "local"
    convert_batch(src, local, workers=1, unit_episodes=4)
    assert digest(_download(url, tmp_path / "downloaded")) == digest(local)


def _upload(local: Path, url: str) -> None:
    fs = _fs()
    key = url.removeprefix("s3://")
    for file in sorted(p for p in local.rglob("*") if p.is_file()):
        fs.put_file(str(file), f"{key}/{file.relative_to(local).as_posix()}")


def _content(dataset: Path, location: str) -> dict[str, object]:
    """Every file's bytes, with the source's location (its path or URL, named in the manifest and in the episode
    index: ``source_path``, paths in ``source_meta``) written as SOURCE."""
    found = digest(dataset)
    found["rdstd.json"] = json.loads(json.dumps(found["rdstd.json"]).replace(location, "SOURCE"))
    episodes = pq.read_table(dataset / layout.EPISODES).to_pylist()
    found[layout.EPISODES] = json.loads(json.dumps(episodes).replace(location, "SOURCE"))
    return found


def _zarr(folder: Path) -> Path:
    return make_source(folder, [9] * 7)


def _lerobot(folder: Path) -> Path:
    from rdstd.testing.lerobot import Spec, make_dataset

    return make_dataset(folder / "lerobot", Spec(version="v2.1", lengths=[6, 9, 7, 5, 8]))


def _hdf5(folder: Path) -> Path:
    from tests.formats import hdf5_fixtures as fx

    root = folder / "aloha"
    root.mkdir(parents=True)
    for i in range(5):
        fx.write_aloha_episode(root / f"episode_{i}.hdf5", 4, seed=i)
    return root


def _rlds(folder: Path) -> Path:
    from rdstd.testing.rlds import synthetic_episode, synthetic_features, write_builder

    shards = [[synthetic_episode(5 + i + 2 * s, seed=10 * s + i)[0] for i in range(2)] for s in range(3)]
    return write_builder(folder / "rlds", synthetic_features(), {"train": shards})


@pytest.mark.parametrize("make", [_zarr, _lerobot, _hdf5, _rlds], ids=lambda f: f.__name__.strip("_"))
def test_a_source_in_s3_converts_to_the_same_bytes_as_the_same_source_on_disk(
    s3: str, tmp_path: Path, make: Any
) -> None:
    src = make(tmp_path / "made")
    url = f"s3://batch/sources/{src.name}"
    _upload(src, url)
    local = tmp_path / "local"
    convert_batch(src, local, workers=1, unit_episodes=2, rate_hz=10)
    report = convert_batch(url, tmp_path / "from-s3", workers=2, unit_episodes=2, rate_hz=10)
    assert report.source == url and report.batch["units"] > 1
    assert _content(tmp_path / "from-s3", url) == _content(local, str(src))
    manifest = json.loads((tmp_path / "from-s3" / layout.MANIFEST).read_text())
    assert manifest["provenance"]["source_path"] == url


def test_the_mirror_of_a_source_fetches_a_file_again_only_when_it_changed(s3: str, tmp_path: Path) -> None:
    from rdstd.batch.mirror import mirror_source

    src = _hdf5(tmp_path)
    url = "s3://batch/sources/mirrored"
    _upload(src, url)
    first = mirror_source(url)
    stamp = (first / "episode_0.hdf5").stat().st_mtime_ns
    again = mirror_source(url)
    assert again == first and (first / "episode_0.hdf5").stat().st_mtime_ns == stamp  # nothing fetched again
    fs = _fs()
    fs.pipe_file("batch/sources/mirrored/episode_0.hdf5", (src / "episode_1.hdf5").read_bytes())
    fs.rm_file("batch/sources/mirrored/episode_4.hdf5")
    mirror_source(url)
    assert (first / "episode_0.hdf5").read_bytes() == (src / "episode_1.hdf5").read_bytes()
    assert not (first / "episode_4.hdf5").exists()


def test_an_empty_source_url_is_refused_naming_it(s3: str, tmp_path: Path) -> None:
    from rdstd.errors import SourceNotFoundError

    with pytest.raises(SourceNotFoundError, match="s3://batch/nothing-here: nothing is there"):
        convert_batch("s3://batch/nothing-here", tmp_path / "out", workers=1)
