"""A damaged or unfinished dataset gives a clear error, never a wrong read."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import rdstd
from rdstd.errors import IncompleteDatasetError, SchemaError, SourceNotFoundError
from rdstd.store import DatasetWriter, layout
from tests.store.helpers import FEATURES, PROVENANCE, make_episode


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    with DatasetWriter(tmp_path / "ds", FEATURES, PROVENANCE) as writer:
        for i in range(3):
            writer.add(make_episode(i, 10))
    return tmp_path / "ds"


def test_a_writer_killed_mid_shard_leaves_nothing_at_out_and_open_says_the_write_died(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from pathlib import Path
        from rdstd.store import DatasetWriter
        from tests.store.helpers import FEATURES, PROVENANCE, make_episode
        writer = DatasetWriter(Path({str(out)!r}), FEATURES, PROVENANCE, row_group_frames=8, shard_bytes=20_000)
        i = 0
        while True:
            writer.add(make_episode(i, 12))
            i += 1
            if i == 6:
                print("written", flush=True)
            time.sleep(0.01)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "written"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    import pyarrow.parquet as pq

    assert not out.exists(), "nothing is renamed into OUT before the dataset is complete"
    (aside,) = tmp_path.glob(".ds.rdstd-tmp-*")
    finished = sorted((aside / "data").glob("shard-*.parquet"))
    assert finished, "completed shards are renamed into place inside the temporary sibling"
    for shard in finished:  # a file under a final name is always whole
        assert pq.ParquetFile(shard).metadata.num_rows > 0
    with pytest.raises(IncompleteDatasetError, match="did not finish") as err:
        rdstd.open(out)
    assert f"pid {proc.pid}" in err.value.message
    assert "no --overwrite needed" in err.value.hint
    with pytest.raises(IncompleteDatasetError, match="did not finish"):
        rdstd.open(aside)

    with DatasetWriter(out, FEATURES, PROVENANCE) as writer:  # the rerun, without overwrite
        writer.add(make_episode(0, 5))
    assert writer.recovered is not None and f"pid {proc.pid}" in writer.recovered
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    assert rdstd.open(out).num_episodes == 1


def test_a_folder_that_is_not_a_dataset_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="not a canonical rdstd dataset") as err:
        rdstd.open(tmp_path)
    assert "rdstd convert" in err.value.hint


def test_a_missing_path_is_a_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError):
        rdstd.open(tmp_path / "nope")


def test_a_corrupt_manifest_names_the_file(dataset: Path) -> None:
    (dataset / layout.MANIFEST).write_text('{"schema_version": "1.0", "features": ')
    with pytest.raises(SchemaError, match=r"rdstd\.json: corrupt manifest"):
        rdstd.open(dataset)


def test_an_unknown_schema_version_is_a_clear_error(dataset: Path) -> None:
    manifest = json.loads((dataset / layout.MANIFEST).read_text())
    manifest["schema_version"] = "9.0"
    (dataset / layout.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(SchemaError, match="schema_version") as err:
        rdstd.open(dataset)
    assert "9.0" in err.value.message
    assert "upgrade rdstd" in err.value.hint


def test_a_missing_shard_is_reported_when_opening(dataset: Path) -> None:
    (dataset / layout.shard_name(0)).unlink()
    with pytest.raises(SchemaError, match=r"shard-00000\.parquet: data shard is missing"):
        rdstd.open(dataset)


def test_a_manifest_whose_counts_disagree_with_the_episodes_is_refused(dataset: Path) -> None:
    manifest = json.loads((dataset / layout.MANIFEST).read_text())
    manifest["counts"]["frames"] += 1
    (dataset / layout.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(SchemaError, match="disagree"):
        rdstd.open(dataset)


def test_a_truncated_shard_is_an_error_not_a_wrong_read(dataset: Path) -> None:
    shard = dataset / layout.shard_name(0)
    shard.write_bytes(shard.read_bytes()[:-100])
    ds = rdstd.open(dataset)
    with pytest.raises(SchemaError, match="unreadable data shard"):
        ds.frame(0)


def test_writes_leave_no_temporary_files(dataset: Path) -> None:
    names = [p.name for p in dataset.rglob("*")]
    assert not [n for n in names if ".tmp-" in n or n == layout.WRITING_MARKER]
