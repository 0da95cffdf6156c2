"""Shared fixtures. Real datasets come from ../shared/samples.

Tests that need a sample skip, saying so, when the folder is absent on a developer's machine; under CI
(``CI`` set to true, as ``.ci/run`` does) a missing sample *fails* the test, so a green CI run always means
the real-sample tests ran.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"


def in_ci(environ: dict[str, str] | None = None) -> bool:
    """Whether the tests run under CI (``CI`` set to a true value, as CI services and ``.ci/run`` do)."""
    value = (os.environ if environ is None else environ).get("CI", "")
    return value.strip().lower() not in {"", "0", "false", "no"}


def sample(relative: str, *, root: Path | None = None, ci: bool | None = None) -> Path:
    """Path to a real sample; when it is missing, fail the test under CI, else skip it with the reason."""
    base = SAMPLES if root is None else root
    path = base / relative
    if not path.exists():
        why = f"real sample {relative} not found: ../shared/samples is absent or incomplete (expected at {base})"
        if in_ci() if ci is None else ci:
            pytest.fail(f"{why}; CI must run the real-sample tests: lay shared/samples beside the clone")
        pytest.skip(why)
    return path


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A local S3 server (moto's server mode) on 127.0.0.1 on a free port, stopped after the module's tests.

    Skip first with ``pytest.importorskip("moto.server")``; helpers are in ``tests/s3_server.py``.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
