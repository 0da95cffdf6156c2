"""A spec's ``source:`` block configures the source only when the user names the spec: a spec matched by the
source's keys leaves the source as it opened, in one process and in the batch workers alike (before, workers
applied the matched spec's block and the one-process path did not, so the same job gave different data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rdstd
from rdstd.convert import mapper
from rdstd.convert.pipeline import convert
from rdstd.convert.specs import LoadedSpec
from rdstd.schema.spec import ConverterSpec
from rdstd.testing.hdf5 import write_aloha_folder


def _vectors(out: Path) -> list[dict[str, np.ndarray]]:
    data = rdstd.open(out)
    return [data.episode(i).vectors for i in range(data.num_episodes)]


@pytest.mark.parametrize("workers", [None, 1, 2])
def test_a_matched_spec_with_a_source_block_does_not_configure_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int | None
) -> None:
    folder = write_aloha_folder(tmp_path / "aloha", episodes=3, steps=6)
    plain = convert(folder, tmp_path / "plain")  # the matched spec as shipped: no source: block
    real_match = mapper.match_spec

    def matched_with_a_shift(info: object) -> LoadedSpec | None:
        loaded = real_match(info)  # type: ignore[arg-type]
        assert loaded is not None and loaded.spec.source is None
        data = loaded.spec.model_dump(mode="json") | {"source": {"shift": {"action": 1}}}
        return LoadedSpec(ConverterSpec.model_validate(data), loaded.origin, loaded.sha256)

    monkeypatch.setattr(mapper, "match_spec", matched_with_a_shift)
    out = tmp_path / "out"
    report = convert(folder, out, workers=workers, unit_episodes=1)
    assert report.spec == plain.spec
    if workers:
        assert report.batch["units"] == 3
    got, want = _vectors(out), _vectors(tmp_path / "plain")
    assert [len(v["action"]) for v in got] == [6, 7, 8]  # no episode lost its last step to a shift
    for ours, theirs in zip(got, want, strict=True):
        assert ours.keys() == theirs.keys()
        for key in ours:
            np.testing.assert_array_equal(ours[key], theirs[key])
