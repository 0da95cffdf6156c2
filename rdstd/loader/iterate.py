"""Plain-numpy batches for JAX or any framework: ``for batch in batches(frames, 32): ...``.

Batches are read in a background thread, ``prefetch`` ahead of the consumer (the decoding itself runs in the
dataset's thread pool: simplejpeg and PyAV release the GIL).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from rdstd.errors import UsageError
from rdstd.loader.frames import FrameDataset
from rdstd.loader.sampling import FrameSampler


def batches(
    frames: FrameDataset,
    batch_size: int,
    *,
    sampler: Iterable[int] | None = None,
    seed: int = 0,
    drop_last: bool = False,
    prefetch: int = 2,
) -> Iterator[dict[str, npt.NDArray[Any]]]:
    """Batches of ``batch_size`` samples (dicts of stacked arrays) in the order of ``sampler`` (default: a
    :class:`~rdstd.loader.sampling.FrameSampler` shuffled from ``seed``); the last short batch is dropped when
    ``drop_last``."""
    if batch_size < 1:
        raise UsageError(f"batch size {batch_size} must be at least 1", situation="batch-size-invalid")
    order = np.fromiter(sampler if sampler is not None else FrameSampler(len(frames), seed=seed), dtype=np.int64)
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    chunks = [order[i : min(i + batch_size, stop)] for i in range(0, stop, batch_size)]
    if prefetch <= 0:
        for chunk in chunks:
            yield frames.batch(chunk)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rdstd-prefetch") as pool:
        pending: deque[Future[dict[str, npt.NDArray[Any]]]] = deque()
        todo = iter(chunks)
        try:
            for chunk in todo:
                pending.append(pool.submit(frames.batch, chunk))
                if len(pending) > prefetch:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
