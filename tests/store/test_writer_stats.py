"""A writer that keeps no statistics (a batch unit's): the same shards and tables, no ``stats.json``."""

from __future__ import annotations

import json
from pathlib import Path

from rdstd.batch import convert_batch
from rdstd.store import DatasetWriter, layout
from tests.batch.helpers import make_source
from tests.store.helpers import FEATURES, PROVENANCE, make_episode


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_writer_without_stats_writes_the_same_dataset_but_its_stats(tmp_path: Path) -> None:
    written = {}
    for keep in (True, False):
        with DatasetWriter(tmp_path / str(keep), FEATURES, PROVENANCE, stats=keep) as writer:
            for i, n in enumerate([5, 17, 3]):
                writer.add(make_episode(i, n))
        written[keep] = files(tmp_path / str(keep))
    assert layout.STATS in written[True]
    assert written[False] == {k: v for k, v in written[True].items() if k != layout.STATS}


def test_batch_units_write_no_stats_of_their_own_and_the_dataset_still_has_them(tmp_path: Path) -> None:
    """The assembly merges the units' partial statistics; a unit's own ``stats.json`` was computed and thrown away."""
    from rdstd.batch import worker
    from rdstd.batch.job import load_job

    source = make_source(tmp_path / "src")
    out = tmp_path / "out"
    convert_batch(source, out, executor="slurm", unit_episodes=6)  # stages the job, runs nothing
    job = load_job(str(out))
    try:
        entry = worker.run_unit(job, job.units[0])
    finally:
        worker.close_sources()
    unit = job.staging.path(job.unit_rel(job.units[0].index))
    assert (unit / layout.MANIFEST).exists() and not (unit / layout.STATS).exists()
    assert job.staging.path(entry["stats"]).stat().st_size > 0  # the partials the assembly merges

    reference = tmp_path / "reference"
    convert_batch(source, reference, workers=1, unit_episodes=6)
    stats = json.loads((reference / layout.STATS).read_text())
    assert stats and all(values["count"] for values in stats.values())
