"""A mixture of datasets with weights, in one batch layout (see :mod:`rdstd.loader.layout`).

``Mixture([Source(fd_a, 0.7), Source(fd_b, 0.3)], layouts={"action": "eef"})`` is a map-style dataset over all
the sources' frames (global index = the source's offset + its frame); :class:`MixtureSampler` draws from it with
the weights. Each source keeps its own windows, image options and normalization (each dataset normalized with
its own statistics); ``rename`` maps a source's key to the common name (cameras are named differently by each
lab). A batch holds the keys every source has (their shapes must agree), the layout keys as float32 in the common
vector with ``<key>_mask`` (True for the entries a source fills), and ``dataset`` (which source each sample came
from). Everything that cannot be aligned is a :class:`~rdstd.errors.MappingError` at construction; keys and
dimensions that are dropped are listed in :attr:`Mixture.report`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from rdstd.errors import MappingError, UsageError
from rdstd.loader.frames import FrameDataset
from rdstd.loader.layout import CommonLayout, Kind, build_layout
from rdstd.loader.sampling import FrameSampler
from rdstd.schema.features import VectorFeature

_INDEX_KEYS = ("index", "episode_index", "frame_index", "timestamp")


@dataclass(frozen=True)
class Source:
    """One dataset of a mixture: its samples, its weight, a name for messages, and key renames (own -> common)."""

    frames: FrameDataset
    weight: float
    name: str = ""
    rename: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The name used in messages (the dataset's folder when none is given)."""
        return self.name or self.frames.dataset.location.name


class Mixture:
    """Several :class:`FrameDataset` in one batch layout; see the module doc."""

    def __init__(self, sources: Sequence[Source], layouts: Mapping[str, Kind] | None = None) -> None:
        if not sources:
            raise UsageError("a mixture needs at least one source", situation="mixture-empty")
        for s in sources:
            if not (np.isfinite(s.weight) and s.weight > 0):
                raise UsageError(
                    f"{s.label}: weight {s.weight} must be a positive number", situation="mixture-weights-invalid"
                )
        self.sources = list(sources)
        self.weights = np.array([s.weight for s in sources], dtype=np.float64) / sum(s.weight for s in sources)
        self._offsets = np.concatenate([[0], np.cumsum([len(s.frames) for s in sources])]).astype(np.int64)
        self.report: list[str] = []
        named = [self._own_keys(s) for s in sources]  # common name -> own key, per source
        common = set(named[0]).intersection(*named[1:])
        for s, keys in zip(sources, named, strict=True):
            dropped = sorted(set(keys) - common)
            if dropped:
                self.report.append(f"{s.label}: keys not in every source, left out: {', '.join(dropped)}")
        self.layouts: dict[str, CommonLayout] = {}
        for key, kind in (layouts or {}).items():
            if key not in common:
                missing = [s.label for s, keys in zip(sources, named, strict=True) if key not in keys]
                raise MappingError(
                    f"layout key {key!r} is not read from {', '.join(missing)}",
                    hint="add it to each source's keys, or rename the source's own key to it",
                    situation="layout-key-missing",
                )
            features = []
            for s, keys in zip(sources, named, strict=True):
                feature = s.frames.dataset.manifest.features[keys[key]]
                if not isinstance(feature, VectorFeature):
                    raise MappingError(
                        f"{s.label}: {keys[key]!r} is a camera; layouts are for vectors",
                        situation="layout-key-is-camera",
                    )
                features.append(feature)
            layout = build_layout(kind, key, features, [s.label for s in sources])
            for s, place in zip(sources, layout.placements, strict=True):
                if place.dropped:
                    self.report.append(f"{s.label}: {key} dimensions with no slot in the {kind} layout: "
                                       f"{', '.join(place.dropped)}")  # fmt: skip
            self.layouts[key] = layout
        self.keys = sorted(common)
        self._named = named
        self._check_shapes()

    @staticmethod
    def _own_keys(source: Source) -> dict[str, str]:
        return {source.rename.get(k, k): k for k in source.frames.keys}

    def _check_shapes(self) -> None:
        """Every common key has one shape and dtype across the sources (read from each source's first sample)."""
        first = [self._convert(n, s.frames.batch([0])) for n, s in enumerate(self.sources) if len(s.frames)]
        for key in first[0] if first else {}:
            kinds = {(v[key].shape, v[key].dtype.str) for v in first}
            if len(kinds) > 1:
                said = "; ".join(
                    f"{s.label}: {v[key].shape[1:]} {v[key].dtype}" for s, v in zip(self.sources, first, strict=False)
                )
                raise MappingError(
                    f"{key!r} has different shapes across the mixture ({said})",
                    hint="give the sources the same windows and image size (ImageOptions), or a layout for vectors",
                    situation="shapes-differ",
                )

    def __len__(self) -> int:
        return int(self._offsets[-1])

    @property
    def sizes(self) -> npt.NDArray[np.int64]:
        """Frames per source."""
        return np.diff(self._offsets)

    def _convert(self, n: int, batch: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        """Source ``n``'s batch in common names and layouts."""
        own = self._named[n]
        out = {k: batch[k] for k in _INDEX_KEYS}
        for key in self.keys:
            values = batch[own[key]]
            layout = self.layouts.get(key)
            if layout is not None:
                values, mask = layout.apply(n, values.reshape(*values.shape[: values.ndim - 1], -1))
                out[f"{key}_mask"] = np.broadcast_to(mask, (len(values), len(mask))).copy()
            out[key] = values
            if f"{own[key]}_is_pad" in batch:
                out[f"{key}_is_pad"] = batch[f"{own[key]}_is_pad"]
        out["dataset"] = np.full(len(batch["index"]), n, dtype=np.int64)
        return out

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {k: v[0] for k, v in self.batch([i]).items()}

    def batch(self, indices: Sequence[int] | npt.NDArray[np.integer[Any]]) -> dict[str, npt.NDArray[Any]]:
        """Samples at global ``indices`` (each source read in one :meth:`FrameDataset.batch`), in their order."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"a sample of {idx.tolist()} is out of range for {len(self)} frames")
        which = np.searchsorted(self._offsets, idx, side="right") - 1
        parts, where = [], []
        for n in np.unique(which):
            at = np.flatnonzero(which == n)
            parts.append(self._convert(int(n), self.sources[n].frames.batch(idx[at] - self._offsets[n])))
            where.append(at)
        if not parts:
            return {}
        order = np.argsort(np.concatenate(where), kind="stable")
        return {k: np.concatenate([p[k] for p in parts])[order] for k in parts[0]}

    def sampler(self, num_samples: int | None = None, **options: Any) -> MixtureSampler:
        """A :class:`MixtureSampler` over this mixture (``num_samples`` per epoch: default, all frames)."""
        return MixtureSampler(self.sizes, self.weights, num_samples or len(self), **options)


class MixtureSampler(FrameSampler):
    """``num_samples`` global indices per epoch: each draws a source with the weights, then a frame of it
    uniformly (with replacement); seeded, sharded by rank like :class:`FrameSampler`."""

    def __init__(
        self,
        sizes: Sequence[int] | npt.NDArray[np.integer[Any]],
        weights: Sequence[float] | npt.NDArray[np.floating[Any]],
        num_samples: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        equal: bool = False,
    ) -> None:
        super().__init__(num_samples, seed=seed, rank=rank, world_size=world_size, equal=equal)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != self.sizes.shape or not (w > 0).all() or (self.sizes <= 0).any():
            raise UsageError(
                "a mixture sampler needs one positive weight and a non-empty source per source",
                situation="mixture-weights-invalid",
            )
        self.p = w / w.sum()
        self._offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)

    def _order(self) -> npt.NDArray[np.int64]:
        rng = self._rng()
        source = rng.choice(len(self.p), size=self.n, p=self.p)
        frame = np.floor(rng.random(self.n) * self.sizes[source]).astype(np.int64)
        return self._offsets[source] + frame
