"""Write throughput of the canonical store against pyarrow writing the same table directly.

Same frames (640×480 JPEG bytes + 14 floats), same row-group size and compression settings; the store also
splits episodes, computes stats, writes the episode table and manifest atomically. Also the small-frame case
(many 10-step episodes, 64×64 JPEG, like Bridge). Run: .venv/bin/python -m bench.store_write
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.common import FEATURES, best_of, camera_frames, episodes, save, table, write_dataset
from rdstd.schema import Episode
from rdstd.store.layout import frame_schema


def pyarrow_direct(path: Path, eps: list[Episode], row_group_frames: int, *, fsync: bool = False) -> float:
    """The same rows written by pyarrow alone (one table, the same per-column settings)."""
    started = time.perf_counter()
    schema = frame_schema(FEATURES)
    n = sum(e.length for e in eps)
    state = np.concatenate([e.vectors["observation.state"] for e in eps]).reshape(-1)
    images = [f for e in eps for f in e.images["observation.images.front"].frames]  # type: ignore[union-attr]
    columns = [
        pa.array(np.concatenate([np.full(e.length, i) for i, e in enumerate(eps)])),
        pa.array(np.concatenate([np.arange(e.length) for e in eps])),
        pa.array(np.arange(n)),
        pa.array(np.concatenate([e.timestamps for e in eps])),
        pa.FixedSizeListArray.from_arrays(pa.array(state), 14),
        pa.array(images, type=pa.binary()),
    ]
    data = pa.Table.from_arrays(columns, schema=schema)
    image = "observation.images.front"
    pq.write_table(
        data,
        path,
        row_group_size=row_group_frames,
        compression={c: ("none" if c == image else "zstd") for c in schema.names},
        use_dictionary=[c for c in schema.names if c != image],
        write_statistics=[c for c in schema.names if c != image],
    )
    if fsync:  # the store makes every file durable before renaming it into place
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    return time.perf_counter() - started


def write_dataset_fresh(tmp: str, eps: list[Episode]) -> float:
    """The store writing ``eps`` into a new folder."""
    return write_dataset(Path(tmp) / uuid.uuid4().hex, eps, 16)


def pyarrow_fresh(tmp: str, eps: list[Episode], fsync: bool) -> float:
    """pyarrow writing ``eps`` into a new file."""
    return pyarrow_direct(Path(tmp) / f"{uuid.uuid4().hex}.parquet", eps, 16, fsync=fsync)


def main() -> None:
    rows = []
    results = []
    cases = [("640×480 JPEG, 20 × 100 frames", 20, 100, 480, 640), ("64×64 JPEG, 1000 × 10 frames", 1000, 10, 64, 64)]
    # In memory (tmpfs) when the machine has one: disk write-back makes timings of 180 MB writes swing 3x.
    scratch = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        for label, count, length, h, w in cases:
            frames = camera_frames(min(count * length, 400), h, w)
            eps = episodes(count, length, frames)
            n = count * length
            mb = sum(len(f) for e in eps for f in e.images["observation.images.front"].frames) / 1e6  # type: ignore[union-attr]
            t_store = best_of(5, partial(write_dataset_fresh, tmp, eps))
            t_direct = best_of(5, partial(pyarrow_fresh, tmp, eps, False))
            t_sync = best_of(5, partial(pyarrow_fresh, tmp, eps, True))
            rows.append(
                [
                    label,
                    f"{n / t_store:,.0f}",
                    f"{n / t_direct:,.0f}",
                    f"{n / t_sync:,.0f}",
                    f"{mb / t_store:,.0f}",
                    f"{t_direct / t_store:.2f}",
                    f"{t_sync / t_store:.2f}",
                ]
            )
            results.append(
                {
                    "case": label,
                    "frames": n,
                    "store_s": t_store,
                    "pyarrow_s": t_direct,
                    "pyarrow_fsync_s": t_sync,
                    "ratio": t_direct / t_store,
                    "ratio_fsync": t_sync / t_store,
                }
            )
    print(f"written to {scratch or 'the temp folder'}")
    print("write throughput, row groups of 16 frames (pyarrow) / >= 8 frames and 512 KiB (store), best of 5\n")
    headers = [
        "case",
        "store frames/s",
        "pyarrow frames/s",
        "pyarrow+fsync frames/s",
        "store MB/s",
        "ratio",
        "ratio vs fsync",
    ]
    print(table(headers, rows))
    print(f"\nresults: {save('store_write', {'results': results})}")


if __name__ == "__main__":
    main()
