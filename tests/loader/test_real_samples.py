"""The loader on a real LeRobot v3.0 sample (two AV1 cameras) converted to canonical: the same values and pixels as
the reader's own ``Dataset.frame``, windows included."""

from __future__ import annotations

import numpy as np
import pytest

from rdstd.convert.pipeline import convert
from rdstd.loader import FrameDataset, ImageOptions
from rdstd.store.reader import Dataset
from tests.conftest import sample

pytest.importorskip("av")


@pytest.fixture(scope="module")
def canonical(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    out = tmp_path_factory.mktemp("real") / "canon"
    convert(sample("lerobot/v30_small"), out)
    return Dataset.open(out)


def test_windows_over_real_video_equal_the_readers_frames(canonical: Dataset) -> None:
    cameras = [k for k, f in canonical.manifest.features.items() if f.kind == "image"]
    assert cameras
    fd = FrameDataset(canonical, windows={**{c: [-1, 0] for c in cameras}, "action": range(0, 3)})
    order = np.random.default_rng(0).permutation(len(fd))[:12]
    batch = fd.batch(order)
    for n, i in enumerate(order.tolist()):
        frame = canonical.frame(i)
        np.testing.assert_array_equal(batch["observation.state"][n], frame["observation.state"])
        np.testing.assert_array_equal(batch["action"][n, 0], frame["action"])
        for cam in cameras:
            np.testing.assert_array_equal(batch[cam][n, 1], frame[cam])
            if frame["frame_index"] == 0:
                assert batch[f"{cam}_is_pad"][n].tolist() == [True, False]
            else:
                np.testing.assert_array_equal(batch[cam][n, 0], canonical.frame(i - 1)[cam])


def test_real_video_resized_and_normalized(canonical: Dataset) -> None:
    cameras = [k for k, f in canonical.manifest.features.items() if f.kind == "image"]
    fd = FrameDataset(canonical, images=ImageOptions((32, 48), "chw"), normalize={"observation.state": "mean_std"})
    sample_ = fd[5]
    for cam in cameras:
        assert sample_[cam].shape == (3, 32, 48) and sample_[cam].min() >= 0 and sample_[cam].max() <= 1
    state = np.stack([canonical.frame(i)["observation.state"] for i in range(len(canonical))]).astype(np.float64)
    want = (state[5] - state.mean(axis=0)) / np.where(state.std(axis=0) > 0, state.std(axis=0), 1)
    np.testing.assert_allclose(sample_["observation.state"], want, rtol=1e-4, atol=1e-5)
