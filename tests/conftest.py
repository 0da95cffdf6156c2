"""Shared fixtures. Real datasets come from ../shared/samples; tests that need them skip, saying so, when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"


def sample(relative: str) -> Path:
    """Path to a real sample, or skip the test with the reason when ../shared/samples is not there."""
    path = SAMPLES / relative
    if not path.exists():
        pytest.skip(f"real sample {relative} not found: ../shared/samples is absent (expected at {SAMPLES})")
    return path
