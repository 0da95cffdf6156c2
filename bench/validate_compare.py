"""Findings before/after a change to ``rdstd validate``: every finding of the default and strict profiles on the
real samples (validated as sources, converted on the fly), on the validator's test fixtures (clean and with each
planted problem) and on a small planted copy of the bench dataset, written to a JSON file; ``--compare`` reads a
file written before and lists every finding that differs (none: the change kept every check's findings).

Run:  .venv/bin/python -m bench.validate_compare --save /tmp/before.json       (on the old code)
      .venv/bin/python -m bench.validate_compare --compare /tmp/before.json    (on the new code)
Samples that are absent (no ../shared/samples) are skipped, and said so.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.validate_default import generate
from rdstd.validate import validate

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"

#: (name, sample path relative to the samples folder, extra arguments of validate)
SOURCES: list[tuple[str, str, dict[str, Any]]] = [
    ("bridge", "rlds/bridge_debug/bridge_dataset/1.0.0", {}),
    ("rlds_edgecases", "rlds/edgecases/rlds_edgecases/1.0.0", {"rate_hz": 10.0}),
    ("pusht", "zarr/pusht/pusht_cchi_v7_replay.zarr", {}),
    ("lerobot_v30_small", "lerobot/v30_small", {}),
    ("lerobot_g1", "lerobot/g1_v21_subset", {}),
    (
        "robosuite_lift",
        "hdf5/ARISE-Initiative__robosuite/robosuite/models/assets/demonstrations/lift/panda/demo.hdf5",
        {},
    ),
    (
        "isaaclab_lift",
        "hdf5/ToxicNS__IsaacLab/datasets/lift/dataset_2demos.hdf5",
        {"spec": "hdf5/isaaclab_2x", "rate_hz": 30.0},
    ),
]

#: Planted problems of tests/validate/fixtures.py, one dataset each (plus the clean one and a few combinations).
PLANTS = [
    (),
    ("absolute_labelled_delta",),
    ("blank_camera",),
    ("chatter",),
    ("constant",),
    ("degrees",),
    ("delta",),
    ("delta_scaled",),
    ("dropped_frame",),
    ("duplicate",),
    ("empty_task",),
    ("euler",),
    ("euler_intrinsic",),
    ("frozen_camera",),
    ("grid",),
    ("idle",),
    ("inverted_gripper",),
    ("jump",),
    ("lead",),
    ("limits",),
    ("mm",),
    ("nan",),
    ("no_embodiment",),
    ("notes",),
    ("prenormalized",),
    ("quantized",),
    ("quat_norm",),
    ("reflection",),
    ("relative_gripper",),
    ("resized_camera",),
    ("spike",),
    ("unknown_mode",),
    ("urdf", "limits"),
    ("wrap",),
    ("wxyz",),
    ("duplicate", "nan", "empty_task"),
    ("euler_degrees",),
    ("euler_tool",),
    ("euler_deg_declared",),
    ("euler_deg_declared", "euler_intrinsic"),
]

_KEYS = ("check", "severity", "evidence", "episode_index", "feature", "dims", "frames", "measured", "message")


def _findings(path: Path, profile: str, **kwargs: Any) -> list[dict[str, Any]]:
    report = validate(path, profile=profile, **kwargs)
    return [{k: v for k, v in f.model_dump(mode="json").items() if k in _KEYS} for f in report.findings]


def collect() -> dict[str, list[dict[str, Any]]]:
    """Every finding of every target, by target name (``<target>/<profile>``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.validate.fixtures import make

    out: dict[str, list[dict[str, Any]]] = {}
    for name, rel, kwargs in SOURCES:
        path = SAMPLES / rel
        if not path.exists():
            print(f"skipped {name}: {path} is absent")
            continue
        for profile in ("default", "strict"):
            out[f"{name}/{profile}"] = _findings(path, profile, **kwargs)
    with tempfile.TemporaryDirectory(prefix="rdstd-validate-compare-") as tmp:
        root = Path(tmp)
        for plants in PLANTS:
            path = make(root, *plants)
            for profile in ("default", "strict"):
                out[f"fixture:{'-'.join(plants) or 'clean'}/{profile}"] = _findings(path, profile)
        bench = root / "bench-planted"
        generate(bench, 40, 500, planted=True)
        out["bench-planted/default"] = _findings(bench, "default")
    return out


def compare(before: dict[str, list[dict[str, Any]]], after: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Lines naming every finding that one side has and the other does not (by target; a target run on one side
    only, e.g. a fixture added since, is said apart and is not a difference)."""
    lines: list[str] = []
    for target in sorted(set(before) ^ set(after)):
        print(f"note: {target} ran only {'after' if target in after else 'before'}")
    for target in sorted(set(before) & set(after)):
        old, new = before[target], after[target]
        olds = [json.dumps(f, sort_keys=True) for f in old]
        news = [json.dumps(f, sort_keys=True) for f in new]
        differ = [f"{target}: - {f}" for f in olds if f not in news] + [
            f"{target}: + {f}" for f in news if f not in olds
        ]
        if not differ and olds != news:
            differ.append(f"{target}: same findings in another order")
        lines += differ
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", type=Path, help="write every finding here")
    group.add_argument("--compare", type=Path, help="compare with a file --save wrote")
    args = parser.parse_args()
    found = collect()
    total = sum(len(v) for v in found.values())
    if args.save:
        args.save.write_text(json.dumps(found, indent=1, sort_keys=True))
        print(f"saved {total} findings of {len(found)} runs to {args.save}")
        return
    lines = compare(json.loads(args.compare.read_text()), found)
    print("\n".join(lines) or f"identical: {total} findings of {len(found)} runs")
    sys.exit(1 if lines else 0)


if __name__ == "__main__":
    main()
