"""Real samples viewed on the fly: a LeRobot v2.1 dataset with video cameras (Unitree G1) and Bridge RLDS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import sample

pytest.importorskip("rerun")


@pytest.mark.samples
def test_a_lerobot_source_is_viewed_with_its_videos_sent_not_decoded(tmp_path: Path) -> None:
    from rdstd.view.episodes import open_view
    from rdstd.view.session import save
    from tests.view.helpers import chunks, rows

    g1 = sample("lerobot/g1_v21_subset")
    length = json.loads((g1 / "meta" / "episodes.jsonl").read_text().splitlines()[1])["length"]
    with open_view(g1) as view:
        [f] = save(view, [1], tmp_path / "g1.rrd").files
        cameras = [k for k, feat in view.facts.features.items() if getattr(feat, "codec", None) == "video"]
    assert cameras
    for cam in cameras:
        frame, time, _ = rows(f, f"/{cam}", "VideoFrameReference:timestamp")
        np.testing.assert_array_equal(frame, np.arange(length))
        assert time[0] == 0 and np.all(np.diff(time) > 0)
        [asset] = [c for c in chunks(f) if c.entity_path.startswith(f"/{cam}/video_") and c.is_static]
        blob = asset.to_record_batch().column("AssetVideo:blob").to_pylist()[0][0]
        mp4 = next((g1 / "videos").rglob(f"{cam}/episode_000001.mp4"))
        assert bytes(blob) == mp4.read_bytes(), "the source's video file, byte for byte"
    frame, _, _ = rows(f, "/observation.state/joint_position", "Scalars:scalars")
    assert len(frame) == length
    verify = subprocess.run(
        [sys.executable, "-m", "rerun_cli", "rrd", "verify", str(f)], capture_output=True, check=False
    )
    assert verify.returncode == 0, verify.stderr


@pytest.mark.samples
def test_bridge_rlds_is_viewed_with_its_end_effector_in_3d_and_its_findings(tmp_path: Path) -> None:
    from rdstd.view.episodes import open_view
    from rdstd.view.findings import run_validation
    from rdstd.view.session import save
    from tests.view.helpers import chunks, rows

    bridge = sample("rlds/bridge_debug/bridge_dataset/1.0.0")
    with open_view(bridge) as view:
        found = run_validation(view)
        [f] = save(view, [0], tmp_path / "bridge.rrd", findings=found).files
    _, _, translation = rows(f, "/world/observation.state", "Transform3D:translation")
    _, _, state = rows(f, "/observation.state/eef_position", "Scalars:scalars")
    np.testing.assert_allclose(np.array(translation), np.array(state), rtol=1e-6)
    logged = [c for c in chunks(f) if c.entity_path.endswith("/findings") or c.entity_path == "/findings"]
    assert logged, "the default profile's findings are on the timeline"
