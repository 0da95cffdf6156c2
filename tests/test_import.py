"""`import rdstd` stays light: no heavy backend is imported until it is used."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["h5py", "zarr", "rerun", "torch", "ray", "tensorflow", "tensorflow_datasets", "av", "rosbags", "imagecodecs"]


def test_importing_rdstd_imports_no_heavy_backend() -> None:
    code = f"import sys, rdstd; print(__import__('json').dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_the_cli_help_imports_no_heavy_backend() -> None:
    code = (
        "import sys\nfrom rdstd.cli.app import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(__import__('json').dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stderr.strip().splitlines()[-1]) == []


def test_tensorflow_is_never_imported_even_by_every_backend() -> None:
    code = "import sys\nfrom rdstd.formats.registry import backends\nbackends()\nprint('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
