"""Work units: the default follows the files episodes come from, packs small files, cuts large ones."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rdstd.formats.base import EpisodeRef, SourceDataset, SourceEpisode, SourceInfo


class _Refs(SourceDataset):
    format = "test"

    def __init__(self, refs: list[EpisodeRef]) -> None:
        super().__init__(Path())
        self._refs = refs

    def info(self) -> SourceInfo:
        return SourceInfo("test", "1", ".", len(self._refs), None, [])

    def episode_refs(self) -> Sequence[EpisodeRef]:
        return self._refs

    def read_episode(self, ref: EpisodeRef) -> SourceEpisode:
        raise NotImplementedError


def _refs(files: list[int]) -> list[EpisodeRef]:
    """``files[i]`` episodes in file i, numbered in order."""
    out: list[EpisodeRef] = []
    for f, n in enumerate(files):
        for k in range(n):
            out.append(EpisodeRef(len(out), f"f{f}/{k}", f"/data/file{f}", 3))
    return out


def test_small_files_are_packed_and_large_ones_cut_in_source_order() -> None:
    units = _Refs(_refs([2, 2, 2, 7, 1])).work_units(max_episodes=4)
    assert [[r.index for r in u.refs] for u in units] == [[0, 1, 2, 3], [4, 5], [6, 7, 8, 9], [10, 11, 12], [13]]
    assert [u.index for u in units] == [0, 1, 2, 3, 4]
    assert units[0].name == "file0..file1 episodes 0-3"


def test_one_file_of_many_episodes_is_cut_into_ranges() -> None:
    units = _Refs(_refs([10])).work_units(max_episodes=4)
    assert [len(u.refs) for u in units] == [4, 4, 2]


def test_units_cover_only_the_chosen_episodes() -> None:
    refs = _refs([3, 3])
    source = _Refs(refs)
    units = source.work_units(refs[1:5], max_episodes=32)
    assert [r.index for u in units for r in u.refs] == [1, 2, 3, 4]
