"""rdstd split: deterministic, duplicates in one split, zero-copy frames."""

from __future__ import annotations

from pathlib import Path

import pytest

import rdstd
from rdstd.convert.pipeline import convert
from rdstd.errors import UsageError
from rdstd.ops.content_hash import content_hash
from rdstd.ops.split import parse_fractions, split
from rdstd.store import layout
from tests.conftest import sample
from tests.ops.helpers import make


def test_bridge_duplicated_train_and_val_pairs_land_in_one_split(tmp_path: Path) -> None:
    convert(sample("rlds/bridge_debug/bridge_dataset/1.0.0"), tmp_path / "bridge")
    report = split(tmp_path / "bridge", tmp_path / "out", fractions={"train": 0.8, "val": 0.2}, seed=3)
    assert report.duplicate_groups == 25 and report.duplicate_episodes == 50  # val repeats train, reordered
    ds = rdstd.open(tmp_path / "out")
    by_hash: dict[str, set[str]] = {}
    for ep in ds.iter_episodes():
        by_hash.setdefault(content_hash(ep.timestamps, ep.vectors), set()).add(ep.meta.split)
    assert len(by_hash) == 25
    assert all(len(splits) == 1 for splits in by_hash.values())
    assert report.splits == {"train": 40, "val": 10}


def test_the_same_seed_gives_the_same_splits_and_frames_are_hard_linked(tmp_path: Path) -> None:
    src = make(tmp_path / "ds", episodes=20, frames=4)
    split(src, tmp_path / "a", fractions={"train": 0.7, "val": 0.3}, seed=7)
    split(src, tmp_path / "b", fractions={"train": 0.7, "val": 0.3}, seed=7)
    a, b = rdstd.open(tmp_path / "a"), rdstd.open(tmp_path / "b")
    assert a.episodes["split"].to_list() == b.episodes["split"].to_list()
    assert a.episodes["split"].value_counts().sort("split")["count"].to_list() == [14, 6]
    shard = layout.shard_name(0)
    assert (tmp_path / "a" / shard).stat().st_ino == (src / shard).stat().st_ino  # zero-copy
    assert a.manifest.extra["split"]["seed"] == 7
    assert a.episode(3).vectors["action"].tolist() == rdstd.open(src).episode(3).vectors["action"].tolist()


def test_split_by_task_splits_each_task(tmp_path: Path) -> None:
    src = make(tmp_path / "ds", episodes=20, frames=4)  # tasks alternate: "pick 0", "pick 1"
    split(src, tmp_path / "out", fractions={"train": 0.8, "val": 0.2}, by_task=True)
    ds = rdstd.open(tmp_path / "out")
    counts = ds.episodes.group_by("task", "split").len().sort("task", "split")["len"].to_list()
    assert counts == [8, 2, 8, 2]


def test_explicit_lists_carry_duplicates_along_and_refuse_a_pair_across_splits(tmp_path: Path) -> None:
    src = make(tmp_path / "ds", episodes=4, frames=4, duplicate_of={3: 0})
    report = split(src, tmp_path / "out", assign={"val": ["ep000"]}, fractions={"train": 1.0})
    ds = rdstd.open(tmp_path / "out")
    assert dict(zip(ds.episodes["episode_id"], ds.episodes["split"], strict=True)) == {
        "ep000": "val", "ep001": "train", "ep002": "train", "ep003": "val"
    }  # fmt: skip
    assert report.groups == [["ep000", "ep003"]]
    with pytest.raises(UsageError, match="duplicates must stay together"):
        split(src, tmp_path / "bad", assign={"val": ["ep000"], "train": ["ep003", "ep001", "ep002"]})
    assert not (tmp_path / "bad").exists()


def test_fractions_must_parse_and_sum_to_one() -> None:
    assert parse_fractions("train=0.9,val=0.1") == {"train": 0.9, "val": 0.1}
    with pytest.raises(UsageError, match="sum"):
        parse_fractions("train=0.9,val=0.2")
    with pytest.raises(UsageError, match="NAME=FRACTION"):
        parse_fractions("train")
