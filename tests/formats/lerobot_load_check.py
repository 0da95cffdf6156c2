"""Load a LeRobot dataset with LeRobot's own ``LeRobotDataset`` and save what it returns (an .npz).

Runs in a separate environment that has LeRobot (0.4.4 or 0.6.x, built by ``.ci/lerobot_venvs.sh``), never in
rdstd's venv: ``.venv-lerobot-0.6/bin/lerobot-python lerobot_load_check.py DATASET OUT.npz``. Used by
test_lerobot_export.py for each environment it finds (or that ``RDSTD_LEROBOT_PYTHONS`` names).
Per frame it saves every non-image value, and per camera the channel
means of the decoded frame (LeRobot's float [0, 1] CHW) and the SHA-256 of the frame as uint8 HWC.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from typing import Any

import numpy as np


def main(root: str, out: str) -> None:
    """Load ``root`` with LeRobot and write what it returns to ``out``."""
    with contextlib.suppress(ImportError):
        import tv_cpu_shim  # type: ignore[import-not-found]  # noqa: F401 - optional, environment-specific
    from lerobot.datasets.lerobot_dataset import LeRobotDataset  # type: ignore[import-not-found]

    ds = LeRobotDataset("rdstd/check", root=root, video_backend="torchcodec")
    arrays: dict[str, list[Any]] = {}
    for i in range(len(ds)):
        for key, value in ds[i].items():
            if key == "task":
                arrays.setdefault("task", []).append(value)
            elif key.startswith("observation.images"):
                pixels = value.numpy()
                arrays.setdefault(f"{key}/mean", []).append(pixels.mean(axis=(1, 2)))
                as_u8 = np.ascontiguousarray(np.round(pixels.transpose(1, 2, 0) * 255).astype(np.uint8))
                arrays.setdefault(f"{key}/sha256", []).append(hashlib.sha256(as_u8.tobytes()).hexdigest())
            else:
                arrays.setdefault(key, []).append(value.numpy())
    np.savez(out, **{k: np.array(v) for k, v in arrays.items()})
    print(json.dumps({"frames": len(ds), "episodes": ds.num_episodes, "fps": ds.fps}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
