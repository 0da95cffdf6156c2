"""RLDS -> canonical conversion of the Bridge debug set beside the bare stages of reading the same shards.

Stages, each over all shards of ../shared/samples/rlds/bridge_debug (50 episodes, 500 steps, 4 JPEG cameras):
framing + CRC-32C only; + protobuf parse; + every leaf to numpy (our decode, images not decoded); tfds's own
TF-free ``deserialize_example_np`` (images skipped) for comparison; the full backend (ids, checksums, notes);
the backend plus decoding every JPEG (what we avoid); and ``rdstd.convert`` end to end (read, map, write Parquet,
stats), once with the spec named and once auto-matched (which parses every shipped YAML spec first).
Throughput is source bytes per second; files are in the page cache after the first repeat.
Run: .venv/bin/python bench/rlds_convert.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import simplejpeg

from bench.common import save, table
from rdstd.convert.pipeline import convert
from rdstd.formats.rlds import RldsDataset
from rdstd.formats.rlds.example import decode_example
from rdstd.formats.rlds.proto import example_class, protobuf_backend
from rdstd.formats.rlds.tfrecord import TFRecordReader, scan
from rdstd.schema.episode import EncodedFrames

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "samples" / "rlds" / "bridge_debug"
SPEC = Path(__file__).resolve().parents[1] / "converters" / "rlds" / "bridge.yaml"


def _records(shards: list[Path]) -> list[bytes]:
    out = []
    for shard in shards:
        with TFRecordReader(shard) as reader:
            out.extend(r.data for r in reader)
    return out


def scaled_copy(source: Path, copies: int, into: Path) -> Path:
    """The builder dir with every split repeated ``copies`` times under new split names (``train_1`` …)."""
    with RldsDataset(source) as ds:
        root, name = ds.root, ds.builder.name
    target = into / root.parent.name / root.name
    target.mkdir(parents=True)
    info = json.loads((root / "dataset_info.json").read_text())
    splits = []
    for split in info["splits"]:
        for i in range(copies):
            copy = {**split, "name": f"{split['name']}_{i}"}
            splits.append(copy)
            for shard in root.glob(f"{name}-{split['name']}.tfrecord-*"):
                renamed = shard.name.replace(f"-{split['name']}.", f"-{copy['name']}.")
                shutil.copy(shard, target / renamed)
    info["splits"] = splits
    (target / "dataset_info.json").write_text(json.dumps(info))
    shutil.copy(root / "features.json", target / "features.json")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--source", type=Path, default=SAMPLE)
    parser.add_argument("--copies", type=int, default=1, help="repeat every split N times (steady-state rates)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp())
    if args.copies > 1:
        args.source = scaled_copy(args.source, args.copies, scratch)
    with RldsDataset(args.source) as ds:
        shards = [s.path for s in ds.shards()]
        tree = ds.tree
        features_json = json.loads((ds.root / "features.json").read_text())
    size = sum(p.stat().st_size for p in shards)
    message = example_class()

    def framing() -> int:
        return sum(scan(p)[0] for p in shards)

    def parse() -> int:
        n = 0
        for shard in shards:
            with TFRecordReader(shard) as reader:
                for record in reader:
                    message.FromString(record.data)
                    n += 1
        return n

    def decode() -> int:
        n = 0
        for shard in shards:
            with TFRecordReader(shard) as reader:
                for record in reader:
                    decode_example(record.data, tree)
                    n += 1
        return n

    records = _records(shards)

    def tfds_np() -> int:
        import tensorflow_datasets as tfds
        from tensorflow_datasets import decode as tfds_decode

        connector = tfds.features.FeatureConnector.from_json(features_json)
        skip = {"steps": {"observation": {f"image_{i}": tfds_decode.SkipDecoding() for i in range(4)}}}
        for record in records:
            steps = connector.deserialize_example_np(record, decoders=skip)["steps"]
            [steps[i] for i in range(len(steps))]
        return len(records)

    def backend() -> int:
        with RldsDataset(args.source) as source:
            return sum(1 for _ in source.episodes())

    def backend_jpeg() -> int:
        n = 0
        with RldsDataset(args.source) as source:
            for ep in source.episodes():
                for frames in ep.images.values():
                    assert isinstance(frames, EncodedFrames)
                    for blob in frames.frames:
                        simplejpeg.decode_jpeg(blob)
                n += 1
        return n

    def end_to_end(spec: str | None) -> Callable[[], int]:
        def run() -> int:
            out = Path(tempfile.mkdtemp()) / "canonical"
            try:
                return convert(args.source, out, spec=spec).episodes_written
            finally:
                shutil.rmtree(out.parent)

        return run

    stages: list[tuple[str, Callable[[], int]]] = [
        ("framing + CRC-32C", framing),
        ("+ protobuf parse", parse),
        ("+ leaves to numpy (rdstd decode, images kept encoded)", decode),
        ("tfds deserialize_example_np, no TF (images skipped)", tfds_np),
        ("rdstd RLDS backend (+ ids, SHA-256, notes)", backend),
        ("backend + decode every JPEG (simplejpeg)", backend_jpeg),
        ("rdstd convert to canonical, spec named (end to end)", end_to_end(str(SPEC))),
        ("rdstd convert to canonical, spec auto-matched", end_to_end(None)),
    ]
    results = []
    for name, fn in stages:
        fn()  # warm: page cache, imports
        best = float("inf")
        episodes = 0
        for _ in range(args.repeats):
            started = time.perf_counter()
            episodes = fn()
            best = min(best, time.perf_counter() - started)
        results.append(
            {"stage": name, "seconds": best, "mb_per_s": size / best / 1e6, "episodes_per_s": episodes / best}
        )
    parse_rate = results[1]["mb_per_s"]
    rows = [
        [r["stage"], f"{r['mb_per_s']:.0f}", f"{r['episodes_per_s']:.0f}", f"{r['mb_per_s'] / parse_rate:.3f}"]
        for r in results
    ]
    shutil.rmtree(scratch)
    count = round(results[0]["episodes_per_s"] * results[0]["seconds"])
    print(
        f"bridge_debug ×{args.copies}: {len(shards)} shards, {size / 1e6:.2f} MB, {count} episodes,"
        f" protobuf {protobuf_backend()}, best of {args.repeats}"
    )
    print(table(["stage", "MB/s", "episodes/s", "× parse"], rows))
    data = {"source": str(args.source), "copies": args.copies, "bytes": size, "protobuf": protobuf_backend()}
    path = save(f"rlds_convert_x{args.copies}", {**data, "stages": results})
    print(f"written {path}")


if __name__ == "__main__":
    main()
