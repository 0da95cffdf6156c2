"""Datasets in object storage: a local S3 server (moto, on 127.0.0.1) serves a copy of a generated dataset, and
``rdstd.open("s3://...")`` gives the same frames, episodes and batches as the local folder."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

import rdstd
from rdstd.errors import SourceNotFoundError, UsageError
from rdstd.io.remote import RemotePath, is_url
from rdstd.loader import FrameDataset, ImageOptions
from rdstd.store.reader import Dataset
from tests.loader.helpers import ACTION, CAM, JPG, STATE, VIDEO_CAM, write, write_video_dataset
from tests.s3_server import CREDENTIALS

LENGTHS = [5, 9, 7]


@pytest.fixture(scope="module")
def endpoint(s3_endpoint: str) -> str:
    """The shared moto S3 server on 127.0.0.1 (tests/s3_server.py)."""
    return s3_endpoint


def options(endpoint: str) -> dict[str, Any]:
    return {
        "endpoint_url": endpoint,
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"region_name": "us-east-1"},
    }


def upload(endpoint: str, local: Path, bucket: str, key: str) -> str:
    """Copy the dataset folder ``local`` to ``s3://bucket/key``; the URL."""
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **options(endpoint))
    if not fs.exists(bucket):
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket=bucket)
        fs.invalidate_cache()
    if fs.exists(f"{bucket}/{key}"):
        fs.rm(f"{bucket}/{key}", recursive=True)
    for file in sorted(p for p in local.rglob("*") if p.is_file()):
        fs.put_file(str(file), f"{bucket}/{key}/{file.relative_to(local).as_posix()}")
    return f"s3://{bucket}/{key}"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("remote") / "ds", LENGTHS)


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RDSTD_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def frames(ds: Any) -> FrameDataset:
    return FrameDataset(
        ds,
        [STATE, CAM, JPG],
        windows={ACTION: range(0, 3), CAM: [-1, 0]},
        images=ImageOptions(size=(32, 24), layout="chw"),
        normalize={STATE: "mean_std", ACTION: "min_max"},
    )


def assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert sorted(a) == sorted(b)
    for key, value in a.items():
        np.testing.assert_array_equal(np.asarray(value), np.asarray(b[key]), err_msg=key)


def test_an_s3_copy_gives_the_same_batches_as_the_local_folder(endpoint: str, local: Path, cache: Path) -> None:
    url = upload(endpoint, local, "rdstd-test", "datasets/same")
    remote = Dataset.open(url, storage_options=options(endpoint))
    here = rdstd.open(local)
    assert str(remote.location) == url and len(remote) == len(here) == sum(LENGTHS)
    assert remote.manifest == here.manifest
    assert remote.episodes.equals(here.episodes) and remote.tasks.equals(here.tasks)
    assert remote.stats == here.stats
    rng = np.random.default_rng(0)
    a, b = frames(remote), frames(here)
    for indices in (np.arange(len(here)), rng.permutation(len(here))[:8], [0, len(here) - 1]):
        assert_same(a.batch(indices), b.batch(indices))
    for i in range(len(LENGTHS)):
        ep_r, ep_l = remote.episode(i), here.episode(i)
        assert_same(ep_r.vectors, ep_l.vectors)
        assert ep_r.images[CAM].encoded == ep_l.images[CAM].encoded
    assert_same(remote.frame(7), here.frame(7))
    # blocks were kept on local disk for the next read
    assert any(p.is_file() and p.stat().st_size for p in cache.rglob("*"))


def test_a_remote_dataset_goes_to_worker_processes_by_pickling(endpoint: str, local: Path) -> None:
    url = upload(endpoint, local, "rdstd-test", "datasets/pickled")
    fd = frames(Dataset.open(url, storage_options=options(endpoint)))
    fd.batch([0, 1])  # handles opened in this process are not pickled
    clone = pickle.loads(pickle.dumps(fd))
    assert_same(clone.batch([3, 12, 20]), frames(local).batch([3, 12, 20]))


def test_rdstd_open_takes_a_url_and_the_environment_s_endpoint(
    endpoint: str, local: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = upload(endpoint, local, "rdstd-test", "datasets/env")
    for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(name, value)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    ds = rdstd.open(url)
    assert len(ds) == sum(LENGTHS)
    np.testing.assert_array_equal(ds.vectors(STATE, [4]), rdstd.open(local).vectors(STATE, [4]))


def test_a_dataset_rewritten_at_the_same_url_is_not_served_from_stale_cache(endpoint: str, tmp_path: Path) -> None:
    first = write(tmp_path / "first", [6, 6])
    second = write(tmp_path / "second", [4, 8])
    url = upload(endpoint, first, "rdstd-test", "datasets/rewritten")
    old = Dataset.open(url, storage_options=options(endpoint))
    assert old.vectors(STATE, [5])[0, :2].tolist() == [0, 5]
    upload(endpoint, second, "rdstd-test", "datasets/rewritten")
    new = Dataset.open(url, storage_options=options(endpoint))
    assert new.episodes["length"].to_list() == [4, 8]
    assert new.vectors(STATE, [5])[0, :2].tolist() == [1, 1]  # frame 1 of episode 1, not the old episode 0
    np.testing.assert_array_equal(new.vectors(ACTION, np.arange(12)), rdstd.open(second).vectors(ACTION, np.arange(12)))


def test_a_url_without_a_dataset_is_not_found_and_local_only_operations_say_so(endpoint: str, local: Path) -> None:
    with pytest.raises(SourceNotFoundError, match="no such dataset"):
        Dataset.open("s3://rdstd-test/nothing/here", storage_options=options(endpoint))
    url = upload(endpoint, local, "rdstd-test", "datasets/local-only")
    with pytest.raises(UsageError, match="object storage"):
        _ = Dataset.open(url, storage_options=options(endpoint)).path


def test_urls_and_paths_are_told_apart() -> None:
    assert is_url("s3://bucket/ds") and is_url("gs://b/x") and is_url("memory://x")
    assert not is_url("out/ds") and not is_url("C:\\data\\ds") and not is_url("file:///tmp/ds")
    assert not is_url(Path("s3:/bucket"))


def test_a_memory_filesystem_url_reads_like_s3(local: Path) -> None:
    """Any fsspec protocol, not only S3: the in-memory filesystem holds a copy."""
    import fsspec

    fs = fsspec.filesystem("memory")
    for file in local.rglob("*"):
        if file.is_file():
            fs.pipe_file(f"/mem-ds/{file.relative_to(local).as_posix()}", file.read_bytes())
    remote = rdstd.open("memory://mem-ds")
    assert isinstance(remote.location, RemotePath)
    assert_same(frames(remote).batch(np.arange(10)), frames(local).batch(np.arange(10)))


def test_import_rdstd_and_a_local_open_import_no_fsspec(local: Path) -> None:
    code = f"import sys, rdstd, rdstd.loader; rdstd.open({str(local)!r}); print('fsspec' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_video_cameras_are_fetched_into_the_cache_and_decode_the_same(
    endpoint: str, tmp_path: Path, cache: Path
) -> None:
    pytest.importorskip("av")
    from tests.formats.lerobot_fixtures import identify

    local = write_video_dataset(tmp_path, [6, 9])
    url = upload(endpoint, local, "rdstd-test", "datasets/video")
    remote = Dataset.open(url, storage_options=options(endpoint))
    options_ = ImageOptions(size=(16, 24))
    a = FrameDataset(remote, [VIDEO_CAM], windows={VIDEO_CAM: [-1, 0]}, images=options_).batch(np.arange(15))
    b = FrameDataset(local, [VIDEO_CAM], windows={VIDEO_CAM: [-1, 0]}, images=options_).batch(np.arange(15))
    assert_same(a, b)
    assert identify(remote.frame(8)[VIDEO_CAM], 1, 9) == 2  # episode 1, frame 2, decoded from the cached mp4
    assert list(cache.rglob("*.mp4*"))


def test_a_second_read_comes_from_the_local_block_cache(
    endpoint: str, local: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The shard bytes are fetched once; a new Dataset on the same URL (another epoch, worker or run) only asks the
    server whether the files changed (HEAD), it does not download them again."""
    url = upload(endpoint, local, "rdstd-test", "datasets/cached")

    def shard_gets() -> int:
        return sum("GET /rdstd-test/datasets/cached/data/shard-" in r.getMessage() for r in caplog.records)

    with caplog.at_level(logging.INFO, logger="werkzeug"):
        first = frames(Dataset.open(url, storage_options=options(endpoint))).batch(np.arange(len(local_ds(local))))
        fetched = shard_gets()
        caplog.clear()
        again = frames(Dataset.open(url, storage_options=options(endpoint))).batch(np.arange(len(local_ds(local))))
        assert fetched >= 1 and shard_gets() == 0
    assert_same(first, again)


def local_ds(path: Path) -> Dataset:
    return rdstd.open(path)


def test_a_torch_dataloader_with_two_workers_reads_the_s3_copy(endpoint: str, local: Path) -> None:
    """Worker processes (forked) read the remote dataset with their own handles: every frame once, the same values."""
    pytest.importorskip("torch")
    from rdstd.loader.torchdata import make_loader

    url = upload(endpoint, local, "rdstd-test", "datasets/torch")
    remote = FrameDataset(Dataset.open(url, storage_options=options(endpoint)), [STATE, CAM])
    seen: dict[int, Any] = {}
    for batch in make_loader(remote, batch_size=4, seed=1, num_workers=2, persistent_workers=False):
        for i, state in zip(batch["index"].tolist(), batch[STATE].numpy(), strict=True):
            seen[i] = state
    assert sorted(seen) == list(range(sum(LENGTHS)))
    here = rdstd.open(local)
    np.testing.assert_array_equal(np.stack([seen[i] for i in sorted(seen)]), here.vectors(STATE, sorted(seen)))


def test_a_file_url_opens_the_local_folder_it_names(local: Path) -> None:
    """``file:///abs/path`` (RFC 8089, percent-encoded) is the local dataset, not a folder named ``file:``."""
    via_url = rdstd.open(local.resolve().as_uri())
    assert not isinstance(via_url.location, RemotePath)
    assert_same(frames(via_url).batch(np.arange(10)), frames(local).batch(np.arange(10)))
