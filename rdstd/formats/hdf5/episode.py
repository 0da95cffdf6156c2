"""One HDF5 episode group scanned: its length, per-step datasets, clock, and the episode-level values.

:func:`scan` decides, for one episode (a ``demo_N`` group, a numbered root group, a whole file, or one slice of
a stacked file, or one row range of steps concatenated over episodes), which datasets are per step (first
dimension = the episode's length), which are episode-level (kept in ``meta``: small arrays as lists, larger ones
described), and where the frame times come from (the same clocks whatever the layout, cut to the episode's steps).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from rdstd.formats.hdf5.frames import H5Frames
from rdstd.formats.hdf5.h5 import LARGE_ATTR_CHARS, SMALL_ARRAY_ELEMENTS, import_h5py, text, walk

#: Dataset names that fix an episode's length when present (in this order).
_LENGTH_KEYS = ("actions", "action", "states")
#: Groups whose datasets are episode-level even when their first dimension matches (Isaac Lab ``initial_state``).
_EPISODE_LEVEL = ("initial_state/",)
#: Per-step 1-d float datasets read as a clock in seconds, by name.
_CLOCK_NAMES = ("time", "timestamp", "timestamps")
#: The key under which a derived clock is offered (kind ``timestamp``).
CLOCK_KEY = "clock_s"


@dataclass
class Scan:
    """What one episode holds."""

    length: int
    per_step: dict[str, Any]
    meta: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    clock: npt.NDArray[np.float64] | None = None
    clock_source: str = ""


def length_of(datasets: dict[str, Any]) -> int:
    """The episode length: ``actions``/``action``/``states`` when present, else the most common first dimension."""
    for key in _LENGTH_KEYS:
        ds = datasets.get(key)
        if ds is not None and ds.ndim >= 1:
            return int(ds.shape[0])
    counts = Counter(int(d.shape[0]) for k, d in datasets.items() if d.ndim >= 1 and not k.startswith(_EPISODE_LEVEL))
    if not counts:
        return 0
    top = max(counts.values())
    return max(n for n, c in counts.items() if c == top)


class LargeValues:
    """Attribute strings too long to repeat per episode (MJCF XML, BDDL), stored once by content hash."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def keep(self, value: Any) -> Any:
        """``value`` itself, or a reference ``{sha256, chars, stored}`` when it is a long string."""
        if isinstance(value, str) and len(value) > LARGE_ATTR_CHARS:
            digest = hashlib.sha256(value.encode()).hexdigest()[:16]
            self.values.setdefault(digest, value)
            return {"sha256_16": digest, "chars": len(value), "stored_in": "source_info.large_attrs"}
        return value


def small_value(ds: Any, where: str) -> Any:
    """A non-per-step dataset as a plain value when small, else a description of it."""
    size = int(np.prod(ds.shape)) if ds.shape else 1
    if size <= SMALL_ARRAY_ELEMENTS and ds.dtype.kind in "biufSUO":
        return text(ds[()])
    return {"shape": list(ds.shape), "dtype": str(ds.dtype), "note": f"{where}: too large for episode meta, not read"}


def episode_attrs(obj: Any, large: LargeValues) -> dict[str, Any]:
    """An HDF5 object's attributes, plain, long strings stored once (see :class:`LargeValues`)."""
    return {str(k): large.keep(text(v)) for k, v in obj.attrs.items()}


def scan(
    group: Any,
    where: str,
    large: LargeValues,
    *,
    stacked: int | None = None,
    rows: tuple[int, int, int] | None = None,
    index: str = "",
) -> Scan:
    """Scan one episode: ``group``; or the file root with ``stacked`` (the episode's index along axis 0) or
    ``rows`` = (start, stop, total steps) of concatenated datasets split by the ``index`` dataset."""
    datasets = dict(walk(group))
    meta: dict[str, Any] = {}
    notes: list[str] = []
    per_step: dict[str, Any] = {}
    if rows is not None:
        start, stop, total = rows
        for key, ds in datasets.items():
            if key == index:
                continue
            if ds.ndim >= 1 and int(ds.shape[0]) == total:
                per_step[key] = ds
            else:
                meta[key] = small_value(ds, f"{where}/{key}")
        result = Scan(stop - start, per_step, meta, notes)
        _find_clock(result, where, _Steps(rows=(start, stop)))
        return result
    if stacked is not None:
        multi = [d for d in datasets.values() if d.ndim >= 3]
        length = int(multi[0].shape[1]) if multi else 0
        episodes = int(multi[0].shape[0]) if multi else 0
        for key, ds in datasets.items():
            if ds.ndim >= 2 and tuple(ds.shape[:2]) == (episodes, length):
                per_step[key] = ds
            elif ds.ndim >= 1 and ds.shape[0] == episodes:
                meta[key] = text(ds[stacked])
            else:
                meta[key] = small_value(ds, f"{where}/{key}")
        result = Scan(length, per_step, meta, notes)
        _find_clock(result, where, _Steps(stacked=stacked))
        return result
    length = length_of(datasets)
    for key, ds in datasets.items():
        # compress_len is (n_cams, T): never per step, even when an episode has as many steps as cameras
        if key.startswith(_EPISODE_LEVEL) or ds.ndim == 0 or int(ds.shape[0]) != length or key == "compress_len":
            meta[key] = small_value(ds, f"{where}/{key}")
            if ds.ndim >= 1 and not key.startswith(_EPISODE_LEVEL) and key != "compress_len":
                notes.append(f"{key} has {ds.shape[0]} rows, the episode {length}: kept as an episode-level value")
        elif ds.ndim >= 2 and int(np.prod(ds.shape[1:])) == 0:
            meta[key] = small_value(ds, f"{where}/{key}")
            notes.append(f"{key} has shape {list(ds.shape)}: no values per step, kept as an episode-level value")
        else:
            per_step[key] = ds
    result = Scan(length, per_step, meta, notes)
    _find_clock(result, where, _Steps())
    return result


@dataclass(frozen=True)
class _Steps:
    """Where one episode's steps are in its per-step datasets: all of their rows (an episode group or file), the
    rows ``[start, stop)`` (steps concatenated over episodes), or index ``stacked`` along the first axis (a stacked
    ``(episodes, steps, ...)`` array)."""

    rows: tuple[int, int] | None = None
    stacked: int | None = None

    @property
    def label(self) -> str:
        """Which steps, for a note ("" for all of them)."""
        if self.stacked is not None:
            return f" (episode {self.stacked} of the stacked arrays)"
        return f" (rows {self.rows[0]}..{self.rows[1]})" if self.rows is not None else ""

    def ndim(self, ds: Any) -> int:
        """The dimensions of one step's values plus the step axis (a stacked dataset's episode axis left out)."""
        return int(ds.ndim) - (self.stacked is not None)

    def read(self, ds: Any, column: int | None = None) -> npt.NDArray[np.float64]:
        """The episode's values of ``ds`` (of its ``column`` when given), as float64."""
        start, stop = self.rows if self.rows is not None else (0, None)
        values = H5Frames(ds, episode=self.stacked, start=start, stop=stop)[:]
        return np.asarray(values[:, column] if column is not None else values, dtype=np.float64)


def _find_clock(result: Scan, where: str, steps: _Steps) -> None:
    """The frame times, where the episode has a trustworthy clock (checked, never assumed)."""
    h5py = import_h5py()
    ps = result.per_step
    candidates: list[tuple[str, np.dtype[Any], Any]] = []
    states = ps.get("states")
    # MuJoCo's flattened state starts with the sim time in robosuite's and robomimic's episode groups; elsewhere a
    # "states" dataset's first column is not known to be a time
    if (
        steps == _Steps()
        and isinstance(states, h5py.Dataset)
        and states.ndim == 2
        and states.shape[1] > 1
        and states.dtype.kind == "f"
    ):
        candidates.append(("states[:, 0] (MuJoCo sim time)", states.dtype, lambda: steps.read(states, 0)))
    secs = ps.get("observation/timestamp/robot_state/robot_timestamp_seconds")
    nanos = ps.get("observation/timestamp/robot_state/robot_timestamp_nanos")
    if secs is not None and nanos is not None:
        candidates.append(
            (
                "observation/timestamp/robot_state/robot_timestamp_seconds + _nanos (epoch)",
                np.dtype(np.float64),
                lambda: steps.read(secs) + steps.read(nanos) * 1e-9,
            )
        )
    step_start = ps.get("observation/timestamp/control/step_start")
    if step_start is not None:
        candidates.append(
            (
                "observation/timestamp/control/step_start (epoch milliseconds)",
                np.dtype(np.float64),
                lambda: steps.read(step_start) / 1000.0,
            )
        )
    for name in _CLOCK_NAMES:
        ds = ps.get(name)
        if ds is not None and steps.ndim(ds) == 1 and ds.dtype.kind == "f":
            candidates.append((f"{name} (seconds)", ds.dtype, lambda ds=ds: steps.read(ds)))
    for label, stored, read in candidates:
        values = read()
        problem = clock_problem(values, np.dtype(stored))
        if problem:
            result.notes.append(
                f"{where}{steps.label}: {label} cannot be the clock: {problem}; frame times come from the rate"
            )
            continue
        result.clock = values - values[0] if len(values) else values
        result.clock_source = label
        return


def clock_problem(values: npt.NDArray[np.float64], stored: np.dtype[Any]) -> str:
    """Why ``values`` cannot be frame times ("" when they can): non-finite, not increasing, float32 epoch."""
    if len(values) == 0:
        return ""
    if not np.all(np.isfinite(values)):
        return "it holds non-finite values"
    diffs = np.diff(values)
    if stored == np.float32 and float(np.nanmax(np.abs(values))) > 1e6 and (len(diffs) == 0 or not np.any(diffs)):
        return "float32 epoch seconds (resolution 128 s at 1.7e9): every step has the same time"
    if np.any(diffs <= 0):
        i = int(np.flatnonzero(diffs <= 0)[0])
        return f"it does not increase at step {i + 1} ({float(values[i])!r} then {float(values[i + 1])!r})"
    return ""
