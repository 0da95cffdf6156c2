"""The map-style frame dataset (numpy): one training sample per frame, with per-key windows and padding masks.

``FrameDataset(ds, keys, windows={...})[i]`` gives, for frame ``i`` of the selection, each key's value at its
window's offsets (``(W, ...)``), ``<key>_is_pad`` (``(W,)``, True where the offset left the episode) and the
frame's ``index``, ``episode_index``, ``frame_index`` and ``timestamp``; keys without a window give the frame's
own value (no window axis). :meth:`FrameDataset.batch` reads many samples at once: every frame any of them needs
is read once (each row group once, only the requested columns) and each distinct image is decoded once, in a
thread pool. Padded offsets hold zeros (``pad="mask"``, the default) or the nearest frame of the episode
(``pad="repeat"``); the mask says which in both cases: a frame is never repeated silently.

Everything a sample needs is checked when the dataset is built: unknown keys, windows longer than the shortest
episode, statistics missing for normalization.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rdstd.errors import CorruptDatasetError, UsageError
from rdstd.loader.images import ImageOptions, decode_stored, decode_video
from rdstd.loader.normalize import Mode, Normalizer
from rdstd.loader.windows import Window, frame_window, parse_windows, time_window
from rdstd.media.lru import LruCache
from rdstd.schema.features import VectorFeature
from rdstd.schema.vocabulary import ImageCodec
from rdstd.store.reader import Dataset

Pad = Literal["mask", "repeat"]
#: Episodes whose timestamps stay cached (for time windows).
_TIMES_CACHE = 256
_SAMPLE_KEYS = ("index", "episode_index", "frame_index", "timestamp")


class FrameDataset:
    """Training samples over one canonical dataset (or a selection of its episodes): see the module doc.

    ``keys``: the features to read (default: all); ``windows``: per key, frame offsets (ints) or time offsets
    (floats, seconds); ``images``: output size and layout of cameras; ``normalize``: per vector key, ``mean_std``,
    ``min_max`` or ``quantile`` (from ``stats.json``, see :mod:`rdstd.loader.normalize`); ``threads``: decoding
    threads per process.
    """

    def __init__(
        self,
        dataset: Dataset | str | os.PathLike[str],
        keys: Sequence[str] | None = None,
        *,
        windows: Mapping[str, Iterable[float] | Window] | None = None,
        images: ImageOptions | None = None,
        pad: Pad = "mask",
        normalize: Mapping[str, Mode] | None = None,
        threads: int = 4,
    ) -> None:
        self.dataset = dataset if isinstance(dataset, Dataset) else Dataset.open(dataset)
        features = self.dataset.manifest.features
        self.windows = parse_windows(windows)
        wanted = list(keys) if keys is not None else list(features)
        wanted += [k for k in self.windows if k not in wanted]
        unknown = [k for k in wanted if k not in features]
        if unknown:
            raise UsageError(
                f"{self.dataset.location}: no feature {', '.join(map(repr, unknown))} in this dataset",
                hint=f"its features: {', '.join(features)}",
                situation="feature-unknown",
            )
        if pad not in ("mask", "repeat"):
            raise UsageError(f"pad {pad!r} is not 'mask' or 'repeat'", situation="pad-mode-unknown")
        self.keys = wanted
        #: Keys some episodes lack (a merged dataset's): samples carry ``<key>_is_missing``, zeros where True.
        self.partial = self.dataset.partial_features & set(wanted)
        self.images = images or ImageOptions()
        self.pad = pad
        self.threads = threads
        self.normalizer = (
            Normalizer(self.dataset.manifest, self.dataset.stats, normalize, where=str(self.dataset.location))
            if normalize
            else None
        )
        episodes = self.dataset.episodes
        self._lengths = episodes["length"].to_numpy().astype(np.int64)
        self._starts = np.concatenate([[0], np.cumsum(self._lengths)]).astype(np.int64)
        self._ep_index = episodes["episode_index"].to_numpy().astype(np.int64)
        self._ep_first = episodes["frame_start"].to_numpy().astype(np.int64)
        self._times: LruCache[int, npt.NDArray[np.float64]] = LruCache(_TIMES_CACHE)
        rate = self.dataset.manifest.rate_hz
        self._tolerance_s = 0.5 / rate if rate else None
        self._check_windows()

    def _check_windows(self) -> None:
        """A window longer than the shortest episode cannot be filled anywhere in it: refuse it now."""
        if not len(self._lengths):
            return
        durations: npt.NDArray[np.float64] | None = None
        for key, window in self.windows.items():
            if window.seconds:
                if durations is None:
                    durations = self.dataset.timestamps(self._starts[1:] - 1)
                pos = int(np.argmin(durations))
                too_long = window.span > float(durations[pos]) + 2 * self._tolerance(pos)
                have, need = f"{durations[pos]:.3f} s", f"{window.span:.3f} s"
            else:
                pos = int(np.argmin(self._lengths))
                too_long = window.span > self._lengths[pos]
                have, need = f"{self._lengths[pos]} frames", f"{int(window.span)} frames"
            if too_long:
                raise UsageError(
                    f"{self.dataset.location}: the window of {key!r} spans {need}, longer than episode "
                    f"{self._ep_index[pos]} ({have})",
                    hint="shorten the window, or select longer episodes: ds.select(pl.col('length') >= N)",
                    situation="window-too-long",
                )

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} is out of range for {len(self)} frames")
        return {k: v[0] for k, v in self.batch([i]).items()}

    @property
    def episode_lengths(self) -> npt.NDArray[np.int64]:
        """Frames per episode of the selection, in order (for episode-aware samplers)."""
        return self._lengths.copy()

    # -- reading ---------------------------------------------------------------------------------------------

    def _episode_times(self, pos: int) -> npt.NDArray[np.float64]:
        start, stop = int(self._starts[pos]), int(self._starts[pos + 1])
        return self._times.get(pos, lambda: self.dataset.timestamps(np.arange(start, stop)))

    def _tolerance(self, pos: int) -> float:
        if self._tolerance_s is not None:
            return self._tolerance_s
        times = self._episode_times(pos)
        return 0.5 * float(np.median(np.diff(times))) if len(times) > 1 else 0.0

    def _resolve(
        self, window: Window, pos: npt.NDArray[np.int64], frame: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Global frame indices (N, W) each sample's window reads and the padding mask (N, W)."""
        if not window.seconds:
            local, pad = frame_window(frame, self._lengths[pos], np.asarray(window.offsets, dtype=np.int64))
        else:
            offsets = np.asarray(window.offsets, dtype=np.float64)
            local = np.empty((len(pos), len(window)), dtype=np.int64)
            pad = np.empty((len(pos), len(window)), dtype=bool)
            for n, (p, f) in enumerate(zip(pos.tolist(), frame.tolist(), strict=True)):
                local[n], pad[n] = time_window(self._episode_times(p), f, offsets, self._tolerance(p))
        return self._starts[pos][:, None] + local, pad

    def batch(self, indices: Sequence[int] | npt.NDArray[np.integer[Any]]) -> dict[str, npt.NDArray[Any]]:
        """Samples ``indices`` stacked along a first axis (see the module doc for what each holds)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"a sample of {idx.tolist()} is out of range for {n} frames")
        idx = np.where(idx < 0, idx + n, idx)
        pos = np.searchsorted(self._starts, idx, side="right") - 1
        frame = idx - self._starts[pos]
        out: dict[str, npt.NDArray[Any]] = {
            "index": self._ep_first[pos] + frame,
            "episode_index": self._ep_index[pos],
            "frame_index": frame,
            "timestamp": self.dataset.timestamps(idx) if len(idx) else np.zeros(0),
        }
        for key in self.keys:
            window = self.windows.get(key)
            if window is None:
                out[key], missing = self._read(key, idx, np.zeros(len(idx), dtype=bool))
            else:
                frames, pad = self._resolve(window, pos, frame)
                values, missing = self._read(key, frames.reshape(-1), pad.reshape(-1) & (self.pad == "mask"))
                out[key] = values.reshape(*frames.shape, *values.shape[1:])
                out[f"{key}_is_pad"] = pad
                missing = missing.reshape(frames.shape)
            if key in self.partial:
                out[f"{key}_is_missing"] = missing
        return out

    def _read(
        self, key: str, frames: npt.NDArray[np.int64], blank: npt.NDArray[np.bool_]
    ) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
        """Feature ``key`` at global ``frames`` (N,), zeros where ``blank``, and where the frame's episode has no
        value for it (zeros there too); each distinct frame read once."""
        feature = self.dataset.manifest.features[key]
        keep = np.flatnonzero(~blank)
        unique, first, inverse = np.unique(frames[keep], return_index=True, return_inverse=True)
        missing = np.zeros(len(frames), dtype=bool)
        if isinstance(feature, VectorFeature):
            values, present = self.dataset.vectors_present(key, unique)
            if self.normalizer is not None and key in self.normalizer:
                values = self.normalizer.normalize(key, values)
            absent = np.zeros(len(unique), dtype=bool) if present is None else ~present
            if absent.any():
                self._check_partial(key, unique[absent])
                values[absent] = 0
            out = np.zeros((len(frames), *values.shape[1:]), dtype=values.dtype)
            out[keep] = values[inverse.reshape(-1)]
            missing[keep] = absent[inverse.reshape(-1)]
            return out, missing
        # images: each distinct frame decoded straight into its first slot of the batch, then copied to repeats
        out = np.empty((len(frames), *self.images.shape(feature)), dtype=self.images.dtype(feature))
        out[blank] = 0
        slots = keep[first]
        stored = self.dataset.stored(key, unique)
        absent = np.array([s is None for s in stored], dtype=bool)
        if absent.any():
            self._check_partial(key, unique[absent])
            out[slots[absent]] = 0
            slots, stored = slots[~absent], [s for s in stored if s is not None]
        if feature.codec == ImageCodec.VIDEO:
            decode_video(out, slots, stored, self.dataset.location, feature, self.images)
        else:
            where = f"{self.dataset.location}, {key}"
            decode_stored(out, slots, stored, feature, self.images, threads=self.threads, where=where)
        source = keep[first][inverse.reshape(-1)]
        repeats = source != keep
        out[keep[repeats]] = out[source[repeats]]
        missing[keep] = absent[inverse.reshape(-1)]
        return out, missing

    def _check_partial(self, key: str, frames: npt.NDArray[np.int64]) -> None:
        """A null frame of a feature the manifest does not call partial: refuse rather than guess its meaning."""
        if key not in self.partial:
            raise CorruptDatasetError(
                f"{self.dataset.location}: {key} has no value at frame {int(frames[0])}, and the manifest does not "
                "name it as a feature some episodes lack (extra.merge.inputs[].features)",
                hint="rebuild the dataset with rdstd convert or rdstd merge",
                situation="feature-value-null",
            )
