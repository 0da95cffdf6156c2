"""The cost of Parquet page checksums in canonical shards: writing with them, and random reads verifying them.

Same frames, same run, checksums off vs on, interleaved, best of 5; written to tmpfs when there is one (disk
write-back would swamp the difference). Random reads are single frames in a random order over a fresh
:class:`~rdstd.store.reader.Dataset` (so row groups are read from the file), returned as stored bytes
(``decode_images=False``: JPEG decoding would hide the cost) and decoded. Run: .venv/bin/python -m bench.checksum_cost
"""

from __future__ import annotations

import itertools
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from bench.common import FEATURES, camera_frames, episodes, save, table
from rdstd.media import images
from rdstd.schema import EncodedFrames, Episode, Provenance
from rdstd.store import Dataset, DatasetWriter

REPEATS = 5
READS = 1500


def write(root: Path, eps: list[Episode], checksums: bool) -> tuple[float, Path]:
    """Seconds to write ``eps`` into a new folder under ``root``, and the folder."""
    out = root / uuid.uuid4().hex
    started = time.perf_counter()
    with DatasetWriter(
        out, FEATURES, Provenance(source_format="bench", rdstd_version="bench"), page_checksums=checksums
    ) as writer:
        for ep in eps:
            writer.add(ep)
    return time.perf_counter() - started, out


def random_reads(path: Path, order: np.ndarray, *, verify: bool, decode: bool) -> float:
    """Seconds to read the frames in ``order`` from a freshly opened dataset."""
    ds = Dataset.open(path)
    ds.verify_checksums = verify
    started = time.perf_counter()
    for i in order:
        ds.frame(int(i), decode_images=decode)
    return time.perf_counter() - started


def pixel_episodes(eps: list[Episode], length: int) -> list[Episode]:
    """The first ``length`` frames of ``eps`` with their images decoded to pixels (the writer encodes them)."""
    out = []
    for ep in eps:
        frames = ep.images["observation.images.front"]
        assert isinstance(frames, EncodedFrames)
        pixels = np.stack([images.decode(b) for b in frames.frames[:length]])
        vectors = {k: v[:length] for k, v in ep.vectors.items()}
        out.append(Episode(ep.meta, ep.timestamps[:length], vectors, {"observation.images.front": pixels}))
    return out


def row_group_firsts(path: Path) -> np.ndarray:
    """The global index of the first frame of every row group of every shard."""
    found = []
    for shard in sorted((path / "data").glob("shard-*.parquet")):
        file = pq.ParquetFile(shard)
        index = file.read(columns=["index"]).column("index").to_numpy()
        sizes = [file.metadata.row_group(g).num_rows for g in range(file.metadata.num_row_groups)]
        found.extend(index[np.cumsum([0, *sizes[:-1]])])
    return np.array(found)


def main() -> None:
    cases = [("640×480 JPEG, 20 × 100 frames", 20, 100, 480, 640), ("64×64 JPEG, 1000 × 10 frames", 1000, 10, 64, 64)]
    scratch = "/dev/shm" if Path("/dev/shm").is_dir() else None
    rows, results = [], []
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        root = Path(tmp)
        for label, count, length, h, w in cases:
            eps = episodes(count, length, camera_frames(min(count * length, 400), h, w))
            n = count * length
            times: dict[str, list[float]] = {"off": [], "on": []}
            paths: dict[str, Path] = {}
            for _ in range(REPEATS):
                for mode in ("off", "on"):
                    seconds, paths[mode] = write(root, eps, mode == "on")
                    times[mode].append(seconds)
            write_off, write_on = min(times["off"]), min(times["on"])
            rows.append(
                [label, "write", f"{n / write_off:,.0f}", f"{n / write_on:,.0f}", f"{write_on / write_off:.3f}"]
            )
            results.append({"case": label, "op": "write", "off_s": write_off, "on_s": write_on})
            if h == 480:  # what convert does: the writer encodes pixels to JPEG, then checksums the bytes
                raw = pixel_episodes(eps[:4], 50)
                pixel_times: dict[str, list[float]] = {"off": [], "on": []}
                for _ in range(REPEATS):
                    for mode in ("off", "on"):
                        pixel_times[mode].append(write(root, raw, mode == "on")[0])
                off, on = min(pixel_times["off"]), min(pixel_times["on"])
                op = "write from pixels (JPEG encode)"
                rows.append([label, op, f"{200 / off:,.0f}", f"{200 / on:,.0f}", f"{on / off:.3f}"])
                results.append({"case": label, "op": op, "off_s": off, "on_s": on})
            rng = np.random.default_rng(0)
            starts = row_group_firsts(paths["on"])
            orders = {
                "random frames": rng.integers(0, n, min(READS, n)),  # row groups revisited: verified once
                "one frame per row group": rng.permutation(starts),  # every read verifies: the worst case
            }
            for (what, order), decode in itertools.product(orders.items(), (False, True)):
                reads: dict[str, list[float]] = {"off": [], "on": []}
                for _ in range(REPEATS):
                    for mode in ("off", "on"):
                        reads[mode].append(random_reads(paths["on"], order, verify=mode == "on", decode=decode))
                off, on = min(reads["off"]), min(reads["on"])
                op = f"{len(order)} reads, {what}, " + ("decoded" if decode else "bytes")
                rows.append([label, op, f"{len(order) / off:,.0f}", f"{len(order) / on:,.0f}", f"{on / off:.3f}"])
                results.append({"case": label, "op": op, "off_s": off, "on_s": on})
    print(f"page checksums off vs on, frames/s, best of {REPEATS} (written to {scratch or 'the temp folder'})\n")
    print(table(["case", "operation", "off frames/s", "on frames/s", "time on/off"], rows))
    print(f"\nresults: {save('checksum_cost', {'results': results})}")


if __name__ == "__main__":
    main()
