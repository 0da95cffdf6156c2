"""What starting the CLI and converting do not import (#14.7: every CLI call paid for polars before any work)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "code",
    [
        "import rdstd.cli.app",
        "import rdstd.convert.pipeline",
        "from rdstd.store import DatasetWriter",
    ],
)
def test_polars_is_loaded_only_by_the_reader(code: str) -> None:
    check = f"{code}\nimport sys\nprint(__import__('json').dumps('polars' in sys.modules))"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) is False


def test_the_store_package_still_gives_the_reader_and_the_writer_by_name() -> None:
    from rdstd import store
    from rdstd.store.reader import Dataset
    from rdstd.store.writer import DatasetWriter

    assert store.Dataset is Dataset and store.DatasetWriter is DatasetWriter
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        store.nothing  # noqa: B018
