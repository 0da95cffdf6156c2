"""Per-feature, per-dimension statistics computed while streaming: count, mean, std, min, max, q01, q99.

Mean and std are exact (Chan et al.'s pairwise update of mean and sum of squared deviations, in float64).
Quantiles come from a uniform reservoir sample of at most :data:`RESERVOIR_ROWS` frames per feature
(Vitter's algorithm R, seeded, so the same input gives the same stats): exact while a dataset has no more
frames than that, otherwise an estimate whose rank error is about sqrt(p(1-p)/n), i.e. ±0.04 percentile
points for q01/q99 at n = 65,536. Quantiles use numpy's default linear interpolation. NaNs are skipped
and counted separately; memory stays bounded whatever the dataset's size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

RESERVOIR_ROWS = 65_536
#: Rows pooled before they are folded into the statistics.
_POOL_ROWS = 4096
QUANTILES = {"q01": 0.01, "q99": 0.99}


class RunningStats:
    """Streaming statistics of one vector feature (rows of ``size`` elements)."""

    def __init__(self, size: int, *, reservoir_rows: int = RESERVOIR_ROWS, seed: int = 0) -> None:
        self.size = size
        self.count = np.zeros(size, dtype=np.int64)
        self.nan_count = np.zeros(size, dtype=np.int64)
        self.mean = np.zeros(size, dtype=np.float64)
        self.m2 = np.zeros(size, dtype=np.float64)
        self.min = np.full(size, np.inf)
        self.max = np.full(size, -np.inf)
        self.rows_seen = 0
        self._capacity = reservoir_rows
        self._sample = np.empty((0, size), dtype=np.float64)
        self._rng = np.random.default_rng(seed)
        self._pending: list[npt.NDArray[np.float64]] = []
        self._pending_rows = 0

    def update(self, rows: npt.NDArray[Any]) -> None:
        """Add a batch of rows (N, size). Small batches are pooled and folded in together (cheaper per row)."""
        values = np.array(rows, dtype=np.float64).reshape(len(rows), self.size)  # a copy: rows are pooled
        if not len(values):
            return
        self._pending.append(values)
        self._pending_rows += len(values)
        if self._pending_rows >= _POOL_ROWS:
            self._fold()

    def _fold(self) -> None:
        if not self._pending:
            return
        values = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending, self._pending_rows = [], 0
        finite = ~np.isnan(values)
        n_b = finite.sum(axis=0)
        self.nan_count += len(values) - n_b
        safe = np.where(finite, values, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_b = np.where(n_b > 0, safe.sum(axis=0) / np.maximum(n_b, 1), 0.0)
            m2_b = np.where(finite, (values - mean_b) ** 2, 0.0).sum(axis=0)
        n_a = self.count
        n = n_a + n_b
        delta = mean_b - self.mean
        with np.errstate(invalid="ignore", divide="ignore"):
            self.mean = np.where(n > 0, self.mean + delta * n_b / np.maximum(n, 1), 0.0)
            self.m2 = self.m2 + m2_b + delta**2 * n_a * n_b / np.maximum(n, 1)
        self.count = n
        self.min = np.minimum(self.min, np.where(finite, values, np.inf).min(axis=0))
        self.max = np.maximum(self.max, np.where(finite, values, -np.inf).max(axis=0))
        self._sample_rows(values)

    def _sample_rows(self, values: npt.NDArray[np.float64]) -> None:
        filled = min(self.rows_seen, self._capacity)
        free = self._capacity - filled
        if free > 0:
            take = values[:free]
            if len(self._sample) < filled + len(take):  # grow geometrically up to the capacity
                grown = np.empty((min(self._capacity, max(2 * len(self._sample), filled + len(take))), self.size))
                grown[:filled] = self._sample[:filled]
                self._sample = grown
            self._sample[filled : filled + len(take)] = take
            self.rows_seen += len(take)
            values = values[free:]
        if not len(values):
            return
        seen = self.rows_seen + np.arange(len(values))
        slots = np.floor(self._rng.random(len(values)) * (seen + 1)).astype(np.int64)
        keep = slots < self._capacity
        self._sample[slots[keep]] = values[keep]
        self.rows_seen += len(values)

    def as_dict(self) -> dict[str, Any]:
        """The statistics as JSON-ready lists, one value per dimension."""
        self._fold()
        sample = self._sample[: min(self.rows_seen, self._capacity)]
        with np.errstate(invalid="ignore"):
            std = np.sqrt(self.m2 / np.maximum(self.count, 1))
            qs = (
                np.nanquantile(sample, list(QUANTILES.values()), axis=0)
                if len(sample)
                else np.full((len(QUANTILES), self.size), np.nan)
            )
        empty = self.count == 0
        out: dict[str, Any] = {
            "count": self.count.tolist(),
            "mean": _clean(np.where(empty, np.nan, self.mean)),
            "std": _clean(np.where(empty, np.nan, std)),
            "min": _clean(np.where(empty, np.nan, self.min)),
            "max": _clean(np.where(empty, np.nan, self.max)),
        }
        for i, name in enumerate(QUANTILES):
            out[name] = _clean(qs[i])
        out["nan_count"] = self.nan_count.tolist()
        out["quantiles_exact"] = self.rows_seen <= self._capacity
        return out


def _clean(values: npt.NDArray[np.float64]) -> list[float | None]:
    """JSON has no NaN: an undefined statistic is null."""
    return [None if np.isnan(v) else float(v) for v in values]
