"""The RLDS reader on real data: Octo's Bridge debug set and tfds-written edge cases, against tfds + TF goldens.

Goldens (``shared/samples/rlds/expected``) were decoded by tensorflow-datasets 4.9.10 + TensorFlow 2.20. Every
non-image leaf must be bit-identical (values and dtype), image bytes identical, decoded pixels within ±20 levels.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rdstd.formats.base import SourceEpisode
from rdstd.formats.rlds import RldsBackend, RldsDataset
from rdstd.schema.episode import EncodedFrames
from rdstd.schema.vocabulary import ImageCodec
from tests.conftest import sample
from tests.formats.rlds_fixtures import BRIDGE_DIR, EDGE_DIR, decode_pixels

pytestmark = pytest.mark.samples


def _golden(name: str, split: str) -> dict[str, Any]:
    path = sample(f"rlds/expected/{name}_{split}.npz")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _episodes(builder: str, split: str) -> list[SourceEpisode]:
    with RldsDataset(sample(f"rlds/{builder}"), splits=[split]) as ds:
        return list(ds.episodes())


def _check_episode(ds: RldsDataset, ep: SourceEpisode, golden: dict[str, Any], prefix: str) -> set[str]:
    """Compare one episode with its goldens; returns the golden keys it checked."""
    checked: set[str] = set()
    assert golden[f"{prefix}/record_sha256"].item() == ep.meta["checksum"].removeprefix("sha256:")
    checked.add(f"{prefix}/record_sha256")
    for leaf in ds.tree.leaves:
        base = f"{prefix}/{leaf.key}"
        if not leaf.in_steps:
            want = golden[base]
            got = ep.meta["episode_metadata"][leaf.key]
            if leaf.kind == "text":
                assert got == want.item().decode("utf-8"), base
            else:
                assert np.asarray(got, dtype=want.dtype).tobytes() == want.tobytes(), base
                assert type(got) is type(want.item()), base
            checked.add(base)
        elif leaf.kind == "image":
            frames = ep.images[leaf.key]
            assert isinstance(frames, EncodedFrames)
            assert frames.codec == (ImageCodec.JPEG if leaf.image_format == "jpeg" else ImageCodec.PNG)
            shas = [hashlib.sha256(f).hexdigest() for f in frames.frames]
            assert shas == golden[f"{base}/encoded_sha256"].tolist(), base
            pixels = np.stack([decode_pixels(f) for f in frames.frames])
            means = pixels.reshape(len(frames), -1, pixels.shape[-1]).mean(axis=1)
            assert np.abs(means - golden[f"{base}/decoded_mean"]).max() <= 2.0, base
            checked |= {f"{base}/encoded_sha256", f"{base}/decoded_mean", f"{base}/decoded_sha256"}
            if f"{base}/decoded" in golden:
                want_px = golden[f"{base}/decoded"]
                assert pixels.dtype == want_px.dtype and pixels.shape == want_px.shape, base
                diff = np.abs(pixels.astype(np.int64) - want_px.astype(np.int64)).max()
                assert diff <= 20, f"{base}: pixels differ by {diff}"
                if leaf.image_format == "png":  # lossless: exact, whoever decodes
                    pixel_shas = [hashlib.sha256(p.tobytes()).hexdigest() for p in pixels]
                    assert pixel_shas == golden[f"{base}/decoded_sha256"].tolist(), base
                checked.add(f"{base}/decoded")
        elif leaf.kind == "text":
            want_text = [b.decode("utf-8") for b in golden[base].tolist()]
            assert ep.texts[leaf.key] == want_text, base
            checked.add(base)
        elif leaf.ragged:
            rows = ep.meta["ragged"][leaf.key]
            assert len(rows) == ep.length
            for t, row in enumerate(rows):
                want = golden[f"{base}/step{t}"]
                assert row.dtype == want.dtype and row.shape == want.shape and row.tobytes() == want.tobytes()
                checked.add(f"{base}/step{t}")
        else:
            want = golden[base]
            got = ep.vectors[leaf.key]
            assert got.dtype == want.dtype, f"{base}: {got.dtype} != {want.dtype}"
            assert got.shape == want.shape, base
            assert got.tobytes() == want.tobytes(), f"{base} differs"
            checked.add(base)
    return checked


@pytest.mark.parametrize(
    ("builder", "name", "split"),
    [
        ("bridge_debug", "bridge_debug", "train"),
        ("bridge_debug", "bridge_debug", "val"),
        ("edgecases", "edgecases", "train"),
        ("edgecases", "edgecases", "val"),
    ],
)
def test_every_leaf_of_every_episode_equals_what_tfds_with_tensorflow_decoded(
    builder: str, name: str, split: str
) -> None:
    golden = _golden(name, split)
    with RldsDataset(sample(f"rlds/{builder}"), splits=[split]) as ds:
        episodes = list(ds.episodes())
        checked: set[str] = set()
        for k, ep in enumerate(episodes):
            checked |= _check_episode(ds, ep, golden, f"{split}/ep{k}")
    assert len({key.split("/")[1] for key in golden}) == len(episodes)
    assert checked == set(golden), f"golden keys not compared: {sorted(set(golden) - checked)[:5]}"


def test_episodes_come_in_tfds_read_order_with_shard_and_record_in_their_keys() -> None:
    index = json.loads(sample("rlds/expected/index.json").read_text())
    for builder, name in (("bridge_debug", "bridge_debug"), ("edgecases", "edgecases")):
        for split, info in index["datasets"][name]["splits"].items():
            episodes = _episodes(builder, split)
            order = [(Path(e.ref.path).name, e.meta["record"]["index"]) for e in episodes]
            assert order == [(o["shard"], o["record_in_shard"]) for o in info["episode_order"]]
            assert [e.length for e in episodes] == [o["num_steps"] for o in info["episode_order"]]


def test_edgecase_dtypes_survive_exactly() -> None:
    episodes = {e.meta["episode_metadata"]["episode_metadata/file_path"]: e for e in _episodes("edgecases", "train")}
    ep = episodes["/raw/ep4.h5"]
    state = ep.vectors["steps/observation/state_f64"]
    assert state.dtype == np.float64
    assert state[0, 2] == np.float64(np.float32(123456.789012345))  # tfds stores float64 as float32; kept exactly
    assert ep.meta["episode_metadata"]["episode_metadata/big_id_u64"] == 2**63 + 5 + 4
    assert ep.vectors["steps/observation/counter_u8"].tolist() == [250, 251, 252, 253, 254]
    assert ep.vectors["steps/observation/mat_zlib"][3].tolist() == [[3.0, 0.0], [0.0, 3.0]]
    assert [r.tolist() for r in ep.meta["ragged"]["steps/observation/points_var_bytes"]] == [
        [],
        [0.0],
        [0.0, 1.0],
        [],
        [0.0],
    ]
    depth = ep.images["steps/observation/depth"]
    assert isinstance(depth, EncodedFrames) and depth.codec == ImageCodec.PNG
    assert [int(decode_pixels(f).max()) for f in depth.frames] == [1000 + 7 * t for t in range(5)]
    assert ep.task == "pick up the ☃ cube"
    assert episodes["/raw/ep1.h5"].task == ""


def test_episode_ids_come_from_metadata_not_from_the_shuffled_position() -> None:
    train = _episodes("edgecases", "train")
    ids = [e.meta["episode_id"] for e in train]
    assert [i.split("@")[0] for i in ids] == [f"train:/raw/ep{n}.h5#{n}" for n in (4, 0, 2, 1, 3)]
    assert [i.split("@")[1] for i in ids] == [e.meta["checksum"][len("sha256:") :][:12] for e in train]
    bridge = _episodes("bridge_debug", "train") + _episodes("bridge_debug", "val")
    ids = [e.meta["episode_id"] for e in bridge]
    assert len(set(ids)) == 50  # unique within and across splits (val repeats train's records)
    checksums = {e.meta["checksum"] for e in bridge}
    assert len(checksums) == 25  # the duplicated records stay detectable


def test_the_language_instruction_is_the_task_stored_once_per_episode() -> None:
    ep = _episodes("bridge_debug", "train")[0]
    assert ep.task == "put cup from counter or drying rack into sink"
    assert set(ep.texts["steps/language_instruction"]) == {ep.task}


def test_bridge_quirks_are_reported_not_hidden() -> None:
    episodes = _episodes("bridge_debug", "train")
    for ep in episodes:
        notes = "\n".join(ep.meta["notes"])
        assert "steps/is_last is never true" in notes
        for cam in range(4):
            assert f"episode_metadata/has_image_{cam} is False but steps/observation/image_{cam} holds 10" in notes
        assert "steps/observation/image_3: all 10 images are one constant image (every pixel = 0)" in notes
        assert "image_0: all" not in notes
        assert not ep.vectors["steps/is_last"].any()
    with RldsDataset(sample("rlds/bridge_debug")) as ds:
        info = ds.info()
    notes = {k.key: k.note for k in info.keys}
    assert "7x joint velocities" in notes["steps/action"]  # the (wrong) builder description is shown as it is
    first = info.extra["first_episode_notes"]
    assert "steps/is_last is never true: the episode looks truncated" in first


def test_info_describes_the_builder_from_its_json_files() -> None:
    with RldsDataset(sample("rlds/edgecases")) as ds:
        info = ds.info()
    assert info.format == "rlds"
    assert info.episodes == 7
    assert info.extra["splits"]["train"] == {"episodes": 5, "stated_episodes": 5, "shards": 2, "num_bytes": 16572}
    assert info.extra["warnings"] == []
    keys = {k.key: k for k in info.keys}
    assert keys["steps/observation/depth"].kind == "image" and keys["steps/observation/depth"].dtype == "uint16"
    assert keys["steps/observation/depth"].codec == ImageCodec.PNG
    assert keys["steps/observation/state_f64"].shape == (3,)
    assert "steps/observation/points_var_bytes" not in keys
    assert info.extra["ragged_keys"] == ["steps/observation/points_var_bytes"]
    assert info.extra["episode_keys"]["episode_metadata/big_id_u64"]["dtype"] == "uint64"


def test_random_access_by_handle_gives_the_same_episode_as_streaming() -> None:
    with RldsDataset(sample("rlds/edgecases")) as ds:
        streamed = {e.ref.key: e for e in ds.episodes()}
        refs = ds.episode_refs()
        assert [r.key for r in refs] == list(streamed)
        for ref in reversed(refs):
            ep = ds.read_episode(ref)
            assert ep.meta["checksum"] == streamed[ref.key].meta["checksum"]
            assert ep.ref.index == streamed[ref.key].ref.index == ref.index


def test_each_shard_reads_on_its_own() -> None:
    with RldsDataset(sample("rlds/edgecases")) as ds:
        all_ids = [e.meta["episode_id"] for e in ds.episodes()]
        per_shard = [e.meta["episode_id"] for shard in ds.shards() for e in ds.shard_episodes(shard)]
    assert per_shard == all_ids
    assert len(ds.shards()) == 4


def test_the_registry_detects_the_builder_dir_and_its_parents() -> None:
    from rdstd.formats.registry import detect

    for path in (sample("rlds/bridge_debug"), sample(f"rlds/{BRIDGE_DIR}"), sample(f"rlds/{EDGE_DIR}").parent):
        assert detect(path).name == "rlds"
    assert not RldsBackend().detect(sample("rlds"))  # two datasets below: ambiguous, not claimed
    assert not RldsBackend().detect(sample("rlds/expected"))
