"""The HDF5 backend: one file, or a folder of files (ALOHA, RoboMIND, DROID: one file per episode), as one source.

Every file is classified (:mod:`.detect`); its episodes (``demo_N`` groups, numbered root groups, the whole file,
or slices of stacked arrays) are scanned (:mod:`.episode`) and handed out lazily (:mod:`.frames`). A file that
cannot be read inside a folder becomes an episode whose read fails with its one-line error, so ``--on-error
skip`` converts the others. What ``rdstd info`` shows under ``extra``: the flavor with its evidence and
confidence, where the rate comes from, the file-level attributes, long attribute values stored once, warnings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rdstd.errors import CorruptSourceError, EpisodeError, MappingError, RdstdError, SourceError
from rdstd.formats.base import EpisodeRef, FormatBackend, SourceDataset, SourceEpisode, SourceInfo, SourceKey
from rdstd.formats.hdf5.declared import ROBOMIND_DEPTH_RULE, depth_declared, simulated, simulated_summary
from rdstd.formats.hdf5.detect import Detection, classify, demo_names, numbered_groups
from rdstd.formats.hdf5.episode import CLOCK_KEY, LargeValues, Scan, episode_attrs, length_of, scan
from rdstd.formats.hdf5.frames import EncodedRows, H5Frames, codec_of, encoded_shape, padded_lengths
from rdstd.formats.hdf5.h5 import (
    check_filters,
    check_links,
    import_h5py,
    json_attr,
    natural_key,
    open_file,
    reading,
    text,
    walk,
    walking,
)
from rdstd.formats.hdf5.mujoco import state_layout
from rdstd.formats.hdf5.options import parse_options
from rdstd.formats.sniff import has_hdf5_signature
from rdstd.lfs import is_pointer
from rdstd.schema.episode import EncodedFrames
from rdstd.schema.vocabulary import ImageCodec

SUFFIXES = (".hdf5", ".h5", ".he5", ".hdf")
#: How deep below a dataset folder episode files are looked for (RoboMIND: <split>/<id>/data/trajectory.hdf5).
MAX_DEPTH = 6
#: Files kept open at once; episodes are read in order, so older files are not read again soon. Each open file
#: holds HDF5's metadata and chunk caches (~1.7 MB an ALOHA episode file: 16 open raised a 200-file conversion's
#: peak RSS by ~27 MB over 4).
OPEN_FILES = 4
#: Rates each flavor's writers use when the file does not say (source named in docs/formats/hdf5.md).
FLAVOR_RATES_HZ = {
    "robomimic": 20.0,
    "robosuite_raw": 20.0,
    "libero": 20.0,
    "mimicgen": 20.0,
    "aloha": 50.0,
    "mobile_aloha": 50.0,
    "droid_raw": 15.0,
}
_SPLIT_FILTERS = ("train", "valid", "test")
#: Flavors whose writers record @sim: "unknown" is said for them when a file lacks it.
_SIM_ATTR_FLAVORS = frozenset({"aloha", "mobile_aloha", "robomind"})
PADDED_NOTE = "JPEG zero-padded to one length (trimmed with compress_len)"


def hdf5_files(folder: Path, *, limit: int | None = None) -> list[Path]:
    """HDF5 files (by suffix) up to :data:`MAX_DEPTH` folders below ``folder``, in natural order of their paths.

    ``limit`` stops the search after that many (detection needs one); hidden folders are not entered.
    """
    found: list[Path] = []
    base_depth = len(folder.parts)
    for here, dirs, files in os.walk(folder):
        dirs[:] = (
            sorted(d for d in dirs if not d.startswith(".")) if len(Path(here).parts) - base_depth < MAX_DEPTH else []
        )
        found.extend(Path(here) / f for f in sorted(files) if Path(f).suffix.lower() in SUFFIXES)
        if limit is not None and len(found) >= limit:
            break
    return sorted(found, key=lambda p: natural_key(p.relative_to(folder).as_posix()))[:limit]


class UnknownLayoutError(SourceError):
    """A file of no layout rdstd detects (a spec's ``source: episodes`` can still say where its episodes are)."""


@dataclass(frozen=True)
class _Unit:
    """Where one episode lives: a file, a group in it ("" = root), a stacked index; or why the file failed."""

    file: Path
    group: str = ""
    stacked: int | None = None
    #: For concatenated steps: (start, stop, total steps) of this episode, and its number in the file.
    rows: tuple[int, int, int] | None = None
    number: int = 0
    length: int | None = None
    error: RdstdError | None = None


class Hdf5Source(SourceDataset):
    """An opened HDF5 source: one file or a folder of files."""

    format = "hdf5"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.root = path if path.is_dir() else path.parent
        files = hdf5_files(path) if path.is_dir() else [path]
        if not files:
            raise SourceError(
                f"{path}: the folder holds no .hdf5/.h5 files",
                hint="pass an HDF5 file or its folder",
                situation="no-hdf5-files",
            )
        self._handles: dict[Path, Any] = {}
        self.large = LargeValues()
        self.warnings: list[str] = []
        self.detections: dict[Path, Detection] = {}
        self.units: list[_Unit] = []
        self.file_attrs: dict[str, Any] = {}
        self._splits: dict[tuple[Path, str], str] = {}
        self._filters: dict[tuple[Path, str], list[str]] = {}
        #: Each file's @sim attribute (ALOHA family, RoboMIND), None when it has none (:mod:`.declared`).
        self._sim: dict[Path, bool | None] = {}
        self._first: tuple[Scan, dict[str, SourceKey]] | None = None
        #: From a spec's ``source:`` block (:meth:`configure`): per-step keys read k rows later, an end-row dataset
        #: per file that is not itself a per-step key, and the spec that said so.
        self.shift: dict[str, int] = {}
        self._ends_key: dict[Path, str] = {}
        self.options_origin = ""
        #: A lone file of no known layout: raised when the source is used, unless a spec's layout applies.
        self.unknown_layout: UnknownLayoutError | None = None
        try:
            self._open_all(files)
        except BaseException:
            self.close()
            raise

    def _open_all(self, files: list[Path]) -> None:
        """Classify every file into episode units; a folder's unreadable file becomes a failing unit."""
        for file in files:
            if len(files) == 1:
                try:
                    self.units.extend(self._units_of(file))  # a lone file's error is the source's error
                except UnknownLayoutError as exc:  # ... when it is first used: a spec's layout may still apply
                    self.unknown_layout = exc
                    self.detection = self.detections[file]
                    self.rate_hz, self.rate_source = None, "unknown"
                    return
                continue
            try:
                self.units.extend(self._units_of(file))
            except RdstdError as exc:
                self.units.append(_Unit(file, error=exc))
                self.warnings.append(f"{file}: cannot be read ({exc.message})")
        broken = [u.error for u in self.units if u.error is not None]
        if broken and len(broken) == len(self.units):
            raise broken[0]  # no file is readable: the first one's error is the source's
        flavors = sorted({d.flavor for d in self.detections.values()})
        if len(flavors) > 1:
            self.warnings.append(f"the files are of different flavors: {', '.join(flavors)}")
        self.detection = next(iter(self.detections.values()), Detection("unknown", [], 0.0, "unknown"))
        self.rate_hz, self.rate_source = self._rate()
        self._check_env_args()
        if self.detection.flavor.startswith("isaaclab"):
            self.warnings.append(
                "Isaac Lab files do not record the quaternion order (wxyz up to Isaac Lab 2.x, xyzw from 3.0): "
                "convert with --spec hdf5/isaaclab_2x (wxyz) or --spec hdf5/isaaclab_3x (xyzw)"
            )

    def configure(self, options: Mapping[str, Any], origin: str) -> None:
        """Apply a converter spec's ``source:`` block (:mod:`.options`): the episode layout of files of
        concatenated steps (D4RL ``terminals``/``timeouts``, or an end-row dataset) and per-key step shifts."""
        parsed = parse_options(options, origin)
        self.options_origin = origin
        self.shift = dict(parsed.shift)
        if parsed.episodes is None:
            return
        layout = parsed.episodes
        units: list[_Unit] = []
        files = [self.path] if self.unknown_layout is not None else list(dict.fromkeys(u.file for u in self.units))
        for path in files:
            file = self._file(path)
            if layout.ends is not None:
                if layout.ends not in file:
                    raise MappingError(
                        f"{origin}: source: episodes.ends names {layout.ends!r}, which {path} lacks",
                        hint=f"the file has: {', '.join(k for k, _ in walk(file))}",
                        situation="episode-layout-key-missing",
                    )
                self._ends_key[path] = layout.ends
                units.extend(self._concatenated(path, file, layout.ends))
            else:
                assert layout.split_after is not None
                units.extend(self._split_after(path, file, layout.split_after, origin))
        self.units = units
        self._first = None
        if self.unknown_layout is not None:
            self.unknown_layout = None
            self.rate_hz, self.rate_source = self._rate()

    def _split_after(self, path: Path, file: Any, flags: list[str], origin: str) -> list[_Unit]:
        """Units of steps that end after each step where any of the ``flags`` datasets is true (D4RL)."""
        done: Any = None
        for name in flags:
            if name not in file:
                raise MappingError(
                    f"{origin}: source: episodes.split_after names {name!r}, which {path} lacks",
                    hint=f"the file has: {', '.join(k for k, _ in walk(file))}",
                    situation="episode-layout-key-missing",
                )
            ds = file[name]
            if ds.ndim not in (1, 2) or (ds.ndim == 2 and ds.shape[1] != 1):
                raise MappingError(
                    f"{origin}: source: episodes.split_after names {path}:{name}, shaped {ds.shape}, "
                    "not one flag per step",
                    hint="name datasets of shape (N,) or (N, 1) that are true at the last step of each episode",
                    situation="episode-flag-not-per-step",
                )
            values = np.asarray(ds[()]).reshape(-1).astype(bool)
            if done is not None and len(values) != len(done):
                raise CorruptSourceError(
                    f"{path}:{name}: {len(values)} steps, the other episodes.split_after flags {len(done)}",
                    hint="name flag datasets that cover the same steps (e.g. terminals and timeouts of one file)",
                    situation="episode-flags-length-mismatch",
                )
            done = values if done is None else done | values
        assert done is not None
        total = len(done)
        ends = (np.flatnonzero(done) + 1).tolist()
        if not ends or ends[-1] != total:
            ends.append(total)
            if total:
                self.warnings.append(
                    f"{path}: the last {total - (ends[-2] if len(ends) > 1 else 0)} steps end with no "
                    f"{' or '.join(flags)} flag: kept as a last episode (it may be cut short)"
                )
        starts = [0, *ends[:-1]]
        return [
            _Unit(path, "", rows=(a, b, total), number=i, length=b - a)
            for i, (a, b) in enumerate(zip(starts, ends, strict=True))
            if b > a
        ]

    # -- files and units -------------------------------------------------------------------------------------
    def _file(self, path: Path) -> Any:
        """The open h5py file for ``path``; at most :data:`OPEN_FILES` stay open (a folder may hold thousands)."""
        handle = self._handles.pop(path, None)
        if handle is None:
            handle = open_file(path, self.root)
            while len(self._handles) >= OPEN_FILES:
                oldest = next(iter(self._handles))
                self._handles.pop(oldest).close()
        self._handles[path] = handle  # most recently used last
        return handle

    def _units_of(self, path: Path) -> list[_Unit]:
        file = self._file(path)
        with walking(path):  # a damaged header or link: this file's error, not the run's
            return self._classified(path, file)

    def _classified(self, path: Path, file: Any) -> list[_Unit]:
        check_links(file, path, self.root)
        found = classify(file)
        self.detections[path] = found
        self._sim[path] = simulated(file)
        if not self.file_attrs:
            where = file[found.group] if found.group else file
            self.file_attrs = {k: self.large.keep(v) for k, v in episode_attrs(where, self.large).items()}
        if found.layout == "unknown":
            top = ", ".join(sorted(file.keys())[:8]) or "nothing"
            raise UnknownLayoutError(
                f"{path}: an HDF5 file of no layout rdstd knows (top level: {top})",
                hint="rdstd reads robomimic/LIBERO/MimicGen/Isaac Lab, robosuite, ALOHA, RoboMIND, DROID raw, numbered "
                "episode groups and flat one-episode files; a spec's source: episodes block can name the layout "
                "(docs/formats/hdf5.md)",
                situation="hdf5-layout-unknown",
            )
        if found.layout == "empty":
            total = text(file["data"].attrs.get("total", "absent"))
            raise SourceError(
                f"{path}: holds no episodes (data/ has no demo_N groups; data@total = {total})",
                hint="the recording kept no demos (a run that aborted or where nothing succeeded); nothing to convert",
                situation="no-episodes",
            )
        if found.layout == "demo_groups":
            group = file[found.group] if found.group else file
            self._read_mask(path, file)
            prefix = f"{found.group}/" if found.group else ""
            return [_Unit(path, f"{prefix}{n}", length=_length_hint(group[n])) for n in demo_names(group)]
        if found.layout == "root_groups":
            return [_Unit(path, n, length=_length_hint(file[n])) for n in numbered_groups(file)]
        if found.layout == "concatenated":
            return self._concatenated(path, file, found.index)
        if found.layout == "stacked":
            self.warnings.extend(found.notes)
            multi = [file[k] for k in file if getattr(file[k], "ndim", 0) >= 3]
            episodes, steps = int(multi[0].shape[0]), int(multi[0].shape[1])
            return [_Unit(path, "", stacked=i, length=steps) for i in range(episodes)]
        hint = _length_hint(file)  # the same answer as length_of for files with actions/action/states, cheaper
        return [_Unit(path, "", length=hint if hint is not None else length_of(dict(walk(file))))]

    def _concatenated(self, path: Path, file: Any, index: str) -> list[_Unit]:
        """Units of steps concatenated over episodes and split by the exclusive ends in ``index``."""
        where = f"{path}:{index}"
        ends = np.asarray(file[index][()], dtype=np.int64)
        if len(ends) and int(ends[0]) < 0:
            raise CorruptSourceError(
                f"{where}: the first episode ends at step {int(ends[0])}, before step 0",
                situation="episode-ends-invalid",
            )
        drops = np.flatnonzero(np.diff(ends) < 0)
        if drops.size:
            i = int(drops[0])
            raise CorruptSourceError(
                f"{where}: episode ends go backwards at index {i + 1}", situation="episode-ends-invalid"
            )
        total = int(ends[-1]) if len(ends) else 0
        lengths = {k: int(d.shape[0]) for k, d in walk(file) if k != index and d.ndim >= 1}
        if total not in lengths.values():
            raise CorruptSourceError(
                f"{where}: the last episode ends at step {total}, but no dataset has {total} rows",
                hint="the index does not belong to these datasets",
                situation="episode-ends-invalid",
            )
        starts = [0, *(int(e) for e in ends[:-1])]
        return [
            _Unit(path, "", rows=(a, int(b), total), number=i, length=int(b) - a)
            for i, (a, b) in enumerate(zip(starts, ends, strict=True))
        ]

    def _read_mask(self, path: Path, file: Any) -> None:
        """``mask/<filter>`` lists of demo names (bytes or str): train/valid/test become splits, others filter keys."""
        mask = file.get("mask")
        if mask is None:
            return
        for name in mask:
            for demo in text(mask[name][()]):
                if name in _SPLIT_FILTERS:
                    self._splits[(path, str(demo))] = name
                else:
                    self._filters.setdefault((path, str(demo)), []).append(name)

    def _rate(self) -> tuple[float | None, str]:
        flavor = self.detection.flavor
        if not self.detections:
            return None, "unknown"
        first = next(iter(self.detections))
        file = self._file(first)
        data = file.get("data")
        if data is not None:
            for attr, path in (("env_args", ("env_kwargs", "control_freq")), ("env_info", ("control_freq",))):
                value, _ = json_attr(data, attr)
                for step in path:
                    value = value.get(step) if isinstance(value, dict) else None
                if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                    return float(value), f"data@{attr}: {'.'.join(path)}"
        if flavor in FLAVOR_RATES_HZ:
            return FLAVOR_RATES_HZ[flavor], f"{flavor} default (the file states no rate; see docs/formats/hdf5.md)"
        return None, "unknown: the file states no rate (pass --rate HZ or set rate_hz in the spec)"

    def _check_env_args(self) -> None:
        """robomimic needs ``env_args`` = {env_name, type, env_kwargs}; a file that holds something else is said."""
        if self.detection.flavor not in {"robomimic", "libero", "mimicgen"} or not self.detections:
            return
        data = self._file(next(iter(self.detections))).get("data")
        value, problem = json_attr(data, "env_args")
        if problem:
            self.warnings.append(f"data@env_args is {problem}")
        elif isinstance(value, dict):
            missing = [k for k in ("env_name", "type", "env_kwargs") if k not in value]
            if missing:
                self.warnings.append(
                    f"data@env_args lacks {', '.join(missing)} (it looks like robosuite's env_info): robomimic's "
                    "EnvUtils cannot rebuild the environment from it; kept as it is"
                )

    # -- episodes ----------------------------------------------------------------------------------------------
    def _scan(self, unit: _Unit) -> Scan:
        if unit.error is not None:
            raise unit.error
        file = self._file(unit.file)
        group = file[unit.group] if unit.group else file
        where = f"{unit.file}:{unit.group or '/'}"
        index = self._ends_key.get(unit.file, self.detections[unit.file].index) if unit.rows is not None else ""
        result = scan(group, where, self.large, stacked=unit.stacked, rows=unit.rows, index=index)
        if unit.stacked is None and unit.rows is None:
            result.meta.update(episode_attrs(group, self.large))
            if unit.group and self.path.is_dir():
                result.meta["file_attrs"] = episode_attrs(file, self.large)
        for key, ds in result.per_step.items():
            check_filters(ds, unit.file, key)
        return result

    def _keys(self, unit: _Unit, result: Scan) -> dict[str, SourceKey]:
        h5py = import_h5py()
        file = self._file(unit.file)
        keys: dict[str, SourceKey] = {}
        compress = bool(text(file.attrs.get("compress", False)))
        for key, ds in result.per_step.items():
            per_step = tuple(int(d) for d in ds.shape[2 if unit.stacked is not None else 1 :])
            dtype = ds.dtype
            if h5py.check_string_dtype(dtype) is not None or dtype.kind in "SU":
                keys[key] = SourceKey(key, "text", (), "str")
            elif dtype.kind == "O" or h5py.check_vlen_dtype(dtype) is not None:
                head = _first_bytes(ds)
                codec = codec_of(head[:16])
                if codec is None:
                    keys[key] = SourceKey(key, "vector", (-1,), str(h5py.check_vlen_dtype(dtype) or dtype))
                else:
                    shape, pixel_type = encoded_shape(head, codec)
                    keys[key] = SourceKey(key, "image", shape, pixel_type, codec=ImageCodec(codec))
            elif compress and ds.ndim == 2 and dtype == np.uint8 and key.startswith("observations/images/"):
                shape, _ = encoded_shape(np.asarray(ds[0], dtype=np.uint8).tobytes(), "jpeg")
                keys[key] = SourceKey(
                    key, "image", shape, "uint8", note=PADDED_NOTE, codec=ImageCodec.JPEG, frame_bytes=int(ds.shape[1])
                )
            elif len(per_step) == 3 and per_step[-1] in (1, 3, 4) and min(per_step[:2]) >= 8 and dtype.kind == "u":
                keys[key] = SourceKey(key, "image", per_step, dtype.name)
            else:
                keys[key] = SourceKey(key, "vector", per_step, dtype.name)
        if result.clock is not None:
            keys[CLOCK_KEY] = SourceKey(CLOCK_KEY, "timestamp", (), "float64", note=f"from {result.clock_source}")
        return keys

    def _first_scan(self) -> tuple[Scan, dict[str, SourceKey]] | None:
        """The keys of the first episode that reads (a damaged one fails again when it is converted, where
        ``--on-error skip`` can leave it out); the first damage is raised when none reads."""
        if self._first is None:
            damage: CorruptSourceError | None = None
            for unit in self.units:
                if unit.error is None:
                    try:
                        with reading(str(unit.file)):
                            result = self._scan(unit)
                            self._first = (result, self._keys(unit, result))
                    except CorruptSourceError as exc:
                        damage = damage or exc
                        continue
                    break
            if self._first is None and damage is not None:
                raise damage
        return self._first

    def info(self) -> SourceInfo:
        """Counts, the first episode's keys, and the detection (flavor, evidence, confidence) under ``extra``."""
        self._usable()
        first = self._first_scan()
        keys = list(first[1].values()) if first else []
        ragged = [k.key for k in keys if k.kind == "vector" and any(d < 0 for d in k.shape)]
        lengths = [u.length for u in self.units]
        frames = sum(n for n in lengths if n is not None) if all(n is not None for n in lengths) else None
        extra: dict[str, Any] = {
            **self.detection.as_dict(),
            "files": len(self.detections) + sum(1 for u in self.units if u.error is not None),
            "rate_source": self.rate_source,
            "file_attrs": self.file_attrs,
            "warnings": list(self.warnings),
        }
        if len(self.detections) > 1:
            extra["flavors"] = sorted({d.flavor for d in self.detections.values()})
        if ragged:
            extra["ragged_keys"] = ragged
        if first and first[0].clock is not None:
            extra["clock"] = first[0].clock_source
        if any(v is not None for v in self._sim.values()) or self.detection.flavor in _SIM_ATTR_FLAVORS:
            extra["simulated"] = simulated_summary(self._sim.values())
        depth = [k.key for k in keys if k.kind == "image" and "depth" in k.key]
        if first and depth:
            extra["depth_units"] = {key: self._depth_unit(first[0], key) for key in depth}
        convention = self.file_attrs.get("macros_image_convention")
        if convention is not None:
            extra["image_convention"] = (
                f"{convention}: images are stored upside down; rdstd flips their rows back"
                if convention == "opengl"
                else str(convention)
            )
        if self.large.values:
            extra["large_attrs"] = dict(self.large.values)
        return SourceInfo(
            format=self.format,
            version=f"HDF5 ({self.detection.flavor})",
            path=str(self.path),
            episodes=len(self.units),
            frames=frames,
            keys=[k for k in keys if k.key not in ragged],
            rate_hz=self.rate_hz,
            extra=extra,
            name=self.detection.flavor,
        )

    def _usable(self) -> None:
        """Raise the lone file's unknown-layout error if no spec layout replaced it."""
        if self.unknown_layout is not None:
            raise self.unknown_layout

    def episode_refs(self) -> Sequence[EpisodeRef]:
        """One ref per episode, keyed by group (``demo_3``), file or stacked index; prefixed by the file in folders."""
        self._usable()
        refs = []
        for i, unit in enumerate(self.units):
            refs.append(EpisodeRef(i, self._key_of(unit), str(unit.file), unit.length))
        return refs

    def _key_of(self, unit: _Unit) -> str:
        inner = unit.group.rsplit("/", 1)[-1] if unit.group else ""
        if unit.stacked is not None:
            inner = f"episode_{unit.stacked:06d}"
        elif unit.rows is not None:
            inner = f"episode_{unit.number:06d}"
        if self.path.is_dir():
            rel = unit.file.relative_to(self.path).as_posix()
            return f"{rel}/{inner}" if inner else rel
        return inner or unit.file.stem

    def read_episode(self, ref: EpisodeRef) -> SourceEpisode:
        """The episode's per-step datasets as lazy frames; images as lazy encoded rows or raw frames."""
        self._usable()
        if not 0 <= ref.index < len(self.units):
            raise CorruptSourceError(
                f"{self.path}: no episode {ref.index} (the source holds {len(self.units)})",
                situation="episode-not-found",
            )
        unit = self.units[ref.index]
        with reading(str(unit.file)):
            result = self._scan(unit)
            keys = self._keys(unit, result)
        where = f"{unit.file}:{unit.group or '/'}"
        flip = self.file_attrs.get("macros_image_convention") == "opengl"
        vectors: dict[str, Any] = {}
        images: dict[str, Any] = {}
        texts: dict[str, list[str]] = {}
        padded = {k: result.per_step[k] for k, sk in keys.items() if sk.note == PADDED_NOTE}
        lengths = self._padded_lengths(unit, padded, where) if padded else {}
        length, notes = self._shifted_length(keys, result.length, where)
        base = unit.rows[0] if unit.rows is not None else 0
        for key, sk in keys.items():
            if key == CLOCK_KEY:
                continue
            ds = result.per_step[key]
            later = self.shift.get(key, 0)
            start, stop = base + later, base + later + length
            if sk.kind == "text":
                texts[key] = [str(text(v)) for v in ds[start:stop]]
            elif sk.kind == "image" and sk.codec is not None:
                cut = lengths.get(key)
                cut = cut[later : later + length] if cut is not None else None
                rows = EncodedRows(ds, f"{where}/{key}", lengths=cut, start=start, stop=stop)
                images[key] = EncodedFrames(sk.codec, rows)
            elif sk.kind == "image":
                raw = H5Frames(ds, episode=unit.stacked, start=start, stop=stop)
                images[key] = _Flipped(raw) if flip else raw
            elif any(d < 0 for d in sk.shape):
                continue  # ragged: listed in info().extra["ragged_keys"], dropped with that reason
            else:
                vectors[key] = H5Frames(ds, episode=unit.stacked, start=start, stop=stop)
        meta = dict(result.meta)
        notes += list(result.notes)
        if flip and images:
            notes.append("images were stored upside down (macros_image_convention = opengl): rows flipped back")
        states = keys.get("states")
        xml = self._model_xml(meta.get("model_file"))
        if states is not None and len(states.shape) == 1 and "model_file" in meta:
            meta["states_layout"] = (
                state_layout(xml, states.shape[0])
                if xml is not None
                else {"unknown": f"model_file names {meta['model_file']!r}, whose XML is not in the file"}
            )
        stated = meta.get("num_samples")
        if isinstance(stated, int) and stated != result.length:
            notes.append(f"num_samples says {stated}, the datasets hold {result.length} steps: the datasets are used")
        flavor = self.detections.get(unit.file, self.detection).flavor
        for key in (k for k in images if "depth" in k):
            declared = self._depth_unit(result, key)
            if declared.get("from"):
                notes.append(f"{key}: depth unit {declared['unit']} as the file states ({declared['from']})")
            elif flavor == "robomind":
                notes.append(f"{key}: depth images are kept as stored; {ROBOMIND_DEPTH_RULE}")
        if self._sim.get(unit.file) is not None:
            meta["simulated"] = self._sim[unit.file]
        if self.detection.flavor.startswith("isaaclab") and "obs/actions" in keys:
            notes.append("obs/actions is the previous step's action (obs/actions[t] = actions[t-1])")
        meta["notes"] = notes
        meta["flavor"] = flavor
        if unit.group:
            name = unit.group.rsplit("/", 1)[-1]
            if (unit.file, name) in self._splits:
                meta["split"] = self._splits[(unit.file, name)]
            if (unit.file, name) in self._filters:
                meta["filter_keys"] = self._filters[(unit.file, name)]
        success = meta.get("success")
        meta["success"] = bool(success) if isinstance(success, bool | int) else None
        task = self._task(meta)
        if result.clock is not None:
            vectors[CLOCK_KEY] = result.clock[:length]
        elif (first := self._first_scan()) is not None and CLOCK_KEY in first[1]:
            vectors[CLOCK_KEY] = None  # the source offers a clock, refused for this episode (its notes say why)
        return SourceEpisode(
            ref,
            length,
            vectors=vectors,
            images=images,
            texts=texts,
            timestamps_s=result.clock[:length] if result.clock is not None else None,
            task=task,
            meta=meta,
        )

    def _depth_unit(self, result: Scan, key: str) -> dict[str, Any]:
        """The depth unit the file states for ``key`` (:func:`.declared.depth_declared`), or ``unknown`` with why."""
        declared = depth_declared(result.per_step[key], key)
        if declared is not None:
            return declared
        flavor = self.detection.flavor
        why = ROBOMIND_DEPTH_RULE if flavor == "robomind" else "the file states no unit for its depth images"
        return {"unit": "unknown", "why": why}

    def _shifted_length(self, keys: dict[str, SourceKey], length: int, where: str) -> tuple[int, list[str]]:
        """The episode's length once the spec's shifts apply, and the notes saying what they did."""
        if not self.shift:
            return length, []
        missing = sorted(set(self.shift) - set(keys))
        if missing:
            raise MappingError(
                f"{self.options_origin}: source: shift names {', '.join(missing)}, which {where} does not hold "
                "as per-step keys",
                hint=f"per-step keys: {', '.join(sorted(keys))}",
                situation="shift-key-missing",
            )
        most = max(self.shift.values())
        if length <= most:
            raise EpisodeError(
                f"{where}: {length} steps cannot be shifted by {most} (nothing would be left)",
                hint="skip such episodes with --on-error skip, or lower the spec's source: shift",
                situation="episode-shorter-than-shift",
            )
        said = ", ".join(f"{k} by {n}" for k, n in sorted(self.shift.items()))
        return length - most, [
            f"shifted as the spec says ({said}: step t takes row t+k, the dataset logs each command a step late); "
            f"the last {most} of {length} steps were dropped (their commands were not logged)"
        ]

    def _model_xml(self, value: Any) -> str | None:
        """The episode's inline MJCF (kept in meta, or once in the large values), or None for a file name."""
        if isinstance(value, dict):
            value = self.large.values.get(str(value.get("sha256_16")))
        return value if isinstance(value, str) and value.lstrip().startswith("<mujoco") else None

    def _padded_lengths(self, unit: _Unit, padded: dict[str, Any], where: str) -> dict[str, Any]:
        file = self._file(unit.file)
        table = file.get("compress_len")
        if table is None:
            raise CorruptSourceError(
                f"{where}: images are padded JPEG (@compress) but compress_len is missing",
                hint="the file is incomplete; re-record or re-copy it",
                situation="compress-len-missing",
            )
        cams = {k: v for k, v in padded.items()}
        return padded_lengths(cams, table[()], f"{unit.file}:compress_len")

    def _task(self, meta: dict[str, Any]) -> str | None:
        problem = self.file_attrs.get("problem_info")
        if isinstance(problem, str):
            try:
                import json

                parsed = json.loads(problem)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict) and isinstance(parsed.get("language_instruction"), str):
                return str(parsed["language_instruction"])
        current = meta.get("current_task")
        return current if isinstance(current, str) and current else None

    def close(self) -> None:
        """Close every open file."""
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handles"] = {}  # h5py handles do not survive pickling or fork: each worker opens its own
        state["_first"] = None
        return state


class _Flipped:
    """Raw frames with their rows reversed (robosuite's "opengl" images are stored upside down)."""

    def __init__(self, frames: H5Frames) -> None:
        self._frames = frames

    @property
    def shape(self) -> tuple[int, ...]:
        """(frames, H, W, C)."""
        return self._frames.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        """The element type."""
        return self._frames.dtype

    def __getitem__(self, index: slice, /) -> Any:
        return np.ascontiguousarray(self._frames[index][:, ::-1])


def _length_hint(group: Any) -> int | None:
    """The episode length from ``actions``/``action``/``states`` without scanning (None when neither exists)."""
    for key in ("actions", "action", "states"):
        ds = group.get(key)
        if ds is not None and getattr(ds, "ndim", 0) >= 1:
            return int(ds.shape[0])
    return None


def _first_bytes(ds: Any) -> bytes:
    if ds.shape[0] == 0:
        return b""
    first = ds[0]
    return first if isinstance(first, bytes) else np.asarray(first, dtype=np.uint8).tobytes()


class Hdf5Backend(FormatBackend):
    """HDF5 robot datasets: robomimic and its family, robosuite, ALOHA/ACT, RoboMIND, DROID raw, flat files."""

    name = "hdf5"
    extra = "hdf5"
    priority = 110  # after formats with their own metadata files: a folder is HDF5 only if no other claims it

    def detect(self, path: Path) -> bool:
        """An HDF5 file (by signature, or an LFS pointer named ``*.hdf5``), or a folder holding HDF5 files."""
        try:
            if path.is_file():
                return has_hdf5_signature(path) or (path.suffix.lower() in SUFFIXES and is_pointer(path))
            if path.is_dir():
                return any(has_hdf5_signature(p) or is_pointer(p) for p in hdf5_files(path, limit=4))
        except OSError:
            return False
        return False

    def open(self, path: Path) -> Hdf5Source:
        """Open the file or folder at ``path``."""
        return Hdf5Source(path)
