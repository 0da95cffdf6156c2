"""The torch Dataset and DataLoader factory: tensors, workers and ranks see disjoint complete shards, seeds."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rdstd.loader import FrameDataset, ImageOptions  # noqa: E402
from rdstd.loader.sampling import EpisodeSampler  # noqa: E402
from rdstd.loader.torchdata import TorchFrames, collate, make_loader  # noqa: E402
from tests.loader.helpers import ACTION, JPG, STATE, write  # noqa: E402

LENGTHS = [13, 8, 11]


@pytest.fixture(scope="module")
def ds_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("torch") / "ds", LENGTHS)


class WorkerTagged(TorchFrames):
    """Adds the id of the worker process that read each batch."""

    def __getitems__(self, indices: Any) -> dict[str, Any]:
        batch = super().__getitems__(indices)
        info = torch.utils.data.get_worker_info()
        batch["worker"] = np.full(len(indices), -1 if info is None else info.id)
        return batch


def test_batches_are_tensors_with_windows(ds_path: Path) -> None:
    fd = FrameDataset(ds_path, [STATE, JPG], windows={ACTION: range(0, 4)}, images=ImageOptions((16, 16), "chw"))
    loader = make_loader(fd, batch_size=4, num_workers=0)
    batch = next(iter(loader))
    assert batch[ACTION].shape == (4, 4, 3) and batch[ACTION].dtype == torch.float32
    assert batch[f"{ACTION}_is_pad"].dtype == torch.bool
    assert batch[JPG].shape == (4, 3, 16, 16) and batch[JPG].dtype == torch.float32
    assert batch[STATE].dtype == torch.float64
    one = collate([fd[0], fd[1]])
    assert one[JPG].shape == (2, 3, 16, 16)


def test_two_workers_and_two_ranks_see_disjoint_complete_shards(ds_path: Path) -> None:
    fd = FrameDataset(ds_path, [STATE])
    seen: dict[tuple[int, int], list[int]] = {}
    for rank in range(2):
        loader = make_loader(fd, batch_size=3, seed=5, rank=rank, world_size=2, num_workers=2)
        loader = torch.utils.data.DataLoader(
            WorkerTagged(fd), batch_size=3, sampler=loader.sampler, num_workers=2, collate_fn=collate
        )
        for batch in loader:
            worker = int(batch["worker"][0])
            assert (batch["worker"] == worker).all() and worker in (0, 1)
            seen.setdefault((rank, worker), []).extend(batch["index"].tolist())
    assert set(seen) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    every = [i for share in seen.values() for i in share]
    assert sorted(every) == list(range(sum(LENGTHS)))  # complete and disjoint


def test_the_same_seed_gives_the_same_batches(ds_path: Path) -> None:
    fd = FrameDataset(ds_path, [STATE], windows={ACTION: [-1, 0]})

    def run(seed: int) -> list[list[int]]:
        loader = make_loader(fd, batch_size=5, seed=seed, num_workers=2, persistent_workers=False)
        return [b["index"].tolist() for b in loader]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_episode_blocks_and_epochs(ds_path: Path) -> None:
    fd = FrameDataset(ds_path, [STATE], windows={ACTION: range(0, 8)})
    loader = make_loader(fd, batch_size=4, episode_blocks=4, num_workers=0)
    first = [b["index"].tolist() for b in loader]
    assert np.concatenate(first).tolist() == list(EpisodeSampler(LENGTHS, block=4, seed=0))
    loader.sampler.set_epoch(1)  # type: ignore[attr-defined]
    second = [b["index"].tolist() for b in loader]
    assert first != second and sorted(np.concatenate(first)) == sorted(np.concatenate(second))


def test_workers_open_files_lazily(ds_path: Path) -> None:
    fd = FrameDataset(ds_path, [STATE, JPG])
    fd[0]  # the parent opened a shard
    assert fd.dataset._files
    copy = pickle.loads(pickle.dumps(TorchFrames(fd)))  # what a spawned worker gets: no open file
    assert not copy.frames.dataset._files
    np.testing.assert_array_equal(copy[3][JPG], fd[3][JPG])
    loader = make_loader(fd, batch_size=8, num_workers=1, persistent_workers=False)
    total = sum(len(b["index"]) for b in loader)
    assert total == sum(LENGTHS)


def test_a_mixture_through_the_loader_factory(ds_path: Path, tmp_path: Path) -> None:
    from rdstd.loader.mixture import Mixture, Source

    other = FrameDataset(write(tmp_path / "other", [6]), [STATE])
    mix = Mixture([Source(FrameDataset(ds_path, [STATE]), 3.0), Source(other, 1.0)])
    loader = make_loader(mix, batch_size=8, seed=1, num_workers=0)
    got = torch.cat([b["dataset"] for b in loader])
    assert len(got) == len(mix) and set(got.tolist()) == {0, 1}
    assert [b["index"].tolist() for b in make_loader(mix, batch_size=8, seed=1, num_workers=0)] == [
        b["index"].tolist() for b in loader
    ]
