"""Normalization from stats.json: the three modes, their inverse, and the dimensions that must never move."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import rdstd
from rdstd.errors import SchemaError, UsageError
from rdstd.loader import FrameDataset, Normalizer, skipped_dims
from rdstd.store import layout
from tests.loader.helpers import ACTION, CAM, FEATURES, STATE, write


@pytest.fixture(scope="module")
def ds_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("norm") / "ds", [30, 25, 40])


def all_values(path: Path, key: str) -> np.ndarray:
    ds = rdstd.open(path)
    return np.concatenate([ep.vectors[key] for ep in ds.iter_episodes()]).astype(np.float64)


def test_flags_and_relative_grippers_are_skipped() -> None:
    assert skipped_dims(FEATURES[ACTION]).tolist() == [False, True, True]  # type: ignore[arg-type]
    assert skipped_dims(FEATURES[STATE]).tolist() == [False, False, False]  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["mean_std", "min_max", "quantile"])
def test_round_trip_and_skipped_dims(ds_path: Path, mode: str) -> None:
    raw = all_values(ds_path, ACTION)
    ds = rdstd.open(ds_path)
    norm = Normalizer(ds.manifest, ds.stats, {ACTION: mode})  # type: ignore[dict-item]
    out = norm.normalize(ACTION, raw)
    np.testing.assert_array_equal(out[:, 1:], raw[:, 1:])  # the flag and the relative gripper pass through
    np.testing.assert_allclose(norm.unnormalize(ACTION, out), raw, atol=1e-6)
    x = raw[:, 0]
    if mode == "mean_std":
        np.testing.assert_allclose(out[:, 0], (x - x.mean()) / x.std(), atol=1e-5)
    elif mode == "min_max":
        assert out[:, 0].min() == pytest.approx(-1, abs=1e-6) and out[:, 0].max() == pytest.approx(1, abs=1e-6)
    else:
        lo, hi = np.quantile(x, [0.01, 0.99])
        np.testing.assert_allclose(out[:, 0], 2 * (x - lo) / (hi - lo) - 1, atol=1e-5)


def test_the_frame_dataset_normalizes_windows_and_leaves_padding_zero(ds_path: Path) -> None:
    ds = rdstd.open(ds_path)
    plain = FrameDataset(ds, [ACTION], windows={ACTION: range(0, 3)})
    normed = FrameDataset(ds, [ACTION], windows={ACTION: range(0, 3)}, normalize={ACTION: "mean_std"})
    norm = Normalizer(ds.manifest, ds.stats, {ACTION: "mean_std"})
    a, b = plain[29], normed[29]
    assert b[f"{ACTION}_is_pad"].tolist() == [False, True, True]
    np.testing.assert_allclose(b[ACTION][0], norm.normalize(ACTION, a[ACTION][0]), rtol=1e-6)
    assert not b[ACTION][1:].any()


def test_constant_dimension_is_only_centred(ds_path: Path) -> None:
    ds = rdstd.open(ds_path)
    stats = json.loads(json.dumps(ds.stats))
    stats[STATE]["std"][0] = 0.0
    norm = Normalizer(ds.manifest, stats, {STATE: "mean_std"})
    values = np.array([[stats[STATE]["mean"][0], 0.0, 0.0]])
    assert norm.normalize(STATE, values)[0, 0] == 0.0


def test_missing_stats_fail_at_construction(ds_path: Path, tmp_path: Path) -> None:
    ds = rdstd.open(ds_path)
    stats = json.loads(json.dumps(ds.stats))
    stats[STATE]["q01"][2] = None
    with pytest.raises(SchemaError, match=r"dimension\(s\) joint"):
        Normalizer(ds.manifest, stats, {STATE: "quantile"})
    del stats[ACTION]
    with pytest.raises(SchemaError, match="no mean/std for 'action'"):
        Normalizer(ds.manifest, stats, {ACTION: "mean_std"})
    with pytest.raises(UsageError, match="not a vector feature"):
        Normalizer(ds.manifest, ds.stats, {CAM: "mean_std"})
    with pytest.raises(UsageError, match="not one of"):
        Normalizer(ds.manifest, ds.stats, {STATE: "zscore"})  # type: ignore[dict-item]
    copy = write(tmp_path / "ds", [5])
    (copy / layout.STATS).unlink()
    with pytest.raises(SchemaError, match="unreadable stats"):
        FrameDataset(copy, normalize={STATE: "mean_std"})


def test_values_of_the_wrong_shape(ds_path: Path) -> None:
    ds = rdstd.open(ds_path)
    norm = Normalizer(ds.manifest, ds.stats, {STATE: "min_max"})
    with pytest.raises(UsageError, match="shape"):
        norm.normalize(STATE, np.zeros((2, 4)))
