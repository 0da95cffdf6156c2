"""Units written already numbered as in the final dataset are linked into place, not rewritten: the same bytes as
the rewrite, and a unit whose place turns out otherwise is still renumbered right."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from rdstd.batch import assemble, convert_batch
from rdstd.batch.job import Job
from rdstd.store import layout
from rdstd.testing.hdf5 import write_aloha_folder
from tests.batch.helpers import LENGTHS, digest, make_source


def _no_rewrite(*args: object) -> None:
    raise AssertionError("a unit numbered right was rewritten")


def test_numbered_units_are_linked_and_give_the_bytes_of_the_rewrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_source(tmp_path)  # zarr: the source states every episode's length
    with monkeypatch.context() as m:
        m.setattr(Job, "planned_start", lambda self, index: None)  # every unit numbered from 0: all rewritten
        rewritten = convert_batch(source, tmp_path / "rewritten", workers=1, unit_episodes=6)
    with monkeypatch.context() as m:
        m.setattr(assemble, "_rewrite", _no_rewrite)
        linked = convert_batch(source, tmp_path / "linked", workers=1, unit_episodes=6)
    assert linked.batch["units"] == rewritten.batch["units"] == 7
    assert digest(tmp_path / "linked") == digest(tmp_path / "rewritten")
    assert [u["numbered_from"] for u in linked.units][:3] == [[0, 0], [6, sum(LENGTHS[:6])], [12, sum(LENGTHS[:12])]]


def _frame_numbers(out: Path) -> tuple[list[int], list[int]]:
    table = pa.concat_tables(pq.read_table(f) for f in sorted((out / layout.DATA_DIR).glob("*.parquet")))
    return table.column("episode_index").to_pylist(), table.column("index").to_pylist()


def test_a_unit_whose_place_moved_is_renumbered(tmp_path: Path) -> None:
    folder = write_aloha_folder(tmp_path / "aloha", episodes=4, steps=6)  # lengths 6, 7, 8, 9
    spec = tmp_path / "shifted.yaml"
    shipped = yaml.safe_load((Path(__file__).resolve().parents[2] / "converters/hdf5/aloha.yaml").read_text())
    # the action of step t is logged at row t+1: every episode loses its last step, shorter than the file says
    spec.write_text(json.dumps(shipped | {"name": "test/aloha_shifted", "source": {"shift": {"action": 1}}}))
    report = convert_batch(folder, tmp_path / "out", spec=spec, workers=1, unit_episodes=1)
    lengths = [5, 6, 7, 8]
    # planned from the files' lengths (6, 7, 8, 9): every unit after the first was placed otherwise, renumbered
    assert [u["numbered_from"] for u in report.units] == [[0, 0], [1, 6], [2, 13], [3, 21]]
    assert report.batch["units"] == 4 and report.frames_written == sum(lengths)
    episodes, index = _frame_numbers(tmp_path / "out")
    assert episodes == np.repeat(np.arange(4), lengths).tolist()
    assert index == list(range(sum(lengths)))
    table = pq.read_table(tmp_path / "out" / layout.EPISODES)
    assert table.column("frame_start").to_pylist() == np.cumsum([0, *lengths[:-1]]).tolist()
