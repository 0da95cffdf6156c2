"""`make demo` (#16 item 2): every format generated, converted, one validated with a planted problem, a card, an
episode viewed, two datasets merged, a batch loaded — with no warning about its own data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rdstd
from rdstd.demo import FORMATS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_demo_runs_every_step_without_a_warning(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-m", "rdstd.demo", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr.lower(), done.stderr
    assert "kept with unknown semantics" not in done.stdout and "notes on the source data" not in done.stdout
    for name in FORMATS:
        dataset = rdstd.open(tmp_path / "demo" / "canonical" / name)
        assert dataset.num_episodes >= 1 and len(dataset) > 0
        assert f"== {name}: generate a small source, convert it" in done.stdout
    findings = json.loads((tmp_path / "demo" / "canonical" / "zarr_planted" / "findings.json").read_text())
    assert [(f["check"], f["episode_index"], f["frames"]) for f in findings["findings"]] == [("RDV102", 2, [5, 13])]
    assert (tmp_path / "demo" / "README-card.md").read_text().startswith("---\nlicense: mit")
    assert done.stdout.count("next: ") >= len(FORMATS) + 3, "every step says what to try next"
    assert "Dataset(" in done.stdout and "observation.state units:" in done.stdout
    rrd = tmp_path / "demo" / "views" / "episode_0.rrd"
    assert rrd.read_bytes()[:4] == b"RRF2", "the view step wrote a Rerun recording"
    merged = rdstd.open(tmp_path / "demo" / "canonical" / "merged")
    parts = [rdstd.open(tmp_path / "demo" / "canonical" / name) for name in FORMATS[:2]]
    assert merged.num_episodes == sum(p.num_episodes for p in parts) and len(merged) == sum(len(p) for p in parts)
    assert f"rdstd validate {tmp_path / 'demo' / 'canonical' / 'merged'}   -> 0 errors" in done.stdout
    assert "marked observation.state_is_missing (zeros)" in done.stdout, "a training batch of the merge"
