"""Action semantics from the data: absolute targets vs deltas vs velocities, and the lead in frames.

Per episode, each action dim paired with a state dim (by name, see :meth:`DatasetView.pairs`) is fitted three
ways: ``a_t ~ s_{t+k}`` for k = 0..3 (an absolute target reached k frames later), and ``Δs_t = s_{t+1} - s_t ~ a_t``
(a delta when the slope is ~1 per step, a velocity when it is ~1/rate). The median R² over the dims decides,
with a margin; below ``min_r2`` nothing fits and the episode is unverifiable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from rdstd.schema.features import VectorFeature
from rdstd.schema.vocabulary import ActionMode, ActionTiming, DeltaReference, Role, Unit
from rdstd.validate import segments
from rdstd.validate.check import Check, DatasetView, EpisodeView, ShardView
from rdstd.validate.model import Evidence, Finding, Severity

_MAX_LEAD = 3


def r2(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Squared correlation of the columns of x and y, column by column (0 where either is constant)."""
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    sxx, syy = (xc * xc).sum(axis=0), (yc * yc).sum(axis=0)
    sxy = (xc * yc).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = sxy * sxy / (sxx * syy)
    return np.where((sxx > 0) & (syy > 0) & np.isfinite(out), out, 0.0)


@dataclass(frozen=True)
class Fit:
    """The median R² of each hypothesis over an episode's paired dims, and the delta slope."""

    absolute: tuple[float, ...]  # by lead k = 0.._MAX_LEAD
    delta: float
    slope: float  # of Δs on a: 1 for a per-step delta, 1/rate for a velocity
    error: tuple[float, ...]  # by lead k: mean squared (a_t - s_t+k) / var(s), the identity fit

    @property
    def lead(self) -> int:
        """The lead k whose absolute fit is best (the first of equals)."""
        return max(range(len(self.absolute)), key=self.absolute.__getitem__)

    def best(self, rate_hz: float | None) -> tuple[ActionMode, float]:
        """The mode that fits best and its R²."""
        if self.absolute[self.lead] >= self.delta:
            return ActionMode.ABSOLUTE, self.absolute[self.lead]
        if rate_hz and abs(self.slope * rate_hz - 1) < abs(self.slope - 1):
            return ActionMode.VELOCITY, self.delta
        return ActionMode.DELTA, self.delta


def fit(ep: EpisodeView, action: str, pairs: list[tuple[int, str, int]]) -> Fit | None:
    """Fit the hypotheses for one action feature of one episode; None when nothing can be fitted."""
    n = ep.length
    if n < 8 or not pairs:
        return None
    acts = ep.vectors[action][:, [i for i, _, _ in pairs]]
    states = np.stack([ep.vectors[key][:, j] for _, key, j in pairs], axis=1)
    usable = np.isfinite(acts).all(axis=0) & np.isfinite(states).all(axis=0)
    usable &= (acts.max(axis=0) > acts.min(axis=0)) & (states.max(axis=0) > states.min(axis=0))
    if not usable.any():
        return None
    a, s = acts[:, usable], states[:, usable]
    var_s = s.var(axis=0)
    absolute = tuple(float(np.median(r2(s[k:], a[: n - k]))) for k in range(_MAX_LEAD + 1))
    errors = tuple(float(np.median(((a[: n - k] - s[k:]) ** 2).mean(axis=0) / var_s)) for k in range(_MAX_LEAD + 1))
    ds, a0 = np.diff(s, axis=0), a[:-1]
    a0c = a0 - a0.mean(axis=0)
    var_a = (a0c * a0c).mean(axis=0)
    slopes = ((ds - ds.mean(axis=0)) * a0c).mean(axis=0)[var_a > 0] / var_a[var_a > 0]
    return Fit(absolute, float(np.median(r2(ds, a0))), float(np.median(slopes)) if slopes.size else 0.0, errors)


def fit_shard(
    shard: ShardView, action: str, pairs: list[tuple[int, str, int]], scratch: segments.Scratch | None = None
) -> list[Fit | None]:
    """:func:`fit` for every episode of a shard at once (see :func:`shard_fits`)."""
    fits = shard_fits(shard, action, pairs, scratch)
    return [None if fits is None else fits.fit(e) for e in range(len(shard.lengths))]


@dataclass(frozen=True)
class ShardFits:
    """The :class:`Fit` of every episode of a shard, as arrays by episode (``absolute`` and ``error``: one row per
    lead k); ``fitted`` marks the episodes that have a fit."""

    fitted: npt.NDArray[np.bool_]
    absolute: npt.NDArray[np.float64]
    delta: npt.NDArray[np.float64]
    slope: npt.NDArray[np.float64]
    error: npt.NDArray[np.float64]

    def fit(self, e: int) -> Fit | None:
        """Episode ``e``'s fit (None when it has none)."""
        if not self.fitted[e]:
            return None
        slope = float(self.slope[e])
        return Fit(
            tuple(float(a) for a in self.absolute[:, e]),
            float(self.delta[e]),
            0.0 if np.isnan(slope) else slope,
            tuple(float(x) for x in self.error[:, e]),
        )


def shard_fits(
    shard: ShardView, action: str, pairs: list[tuple[int, str, int]], scratch: segments.Scratch | None = None
) -> ShardFits | None:
    """:func:`fit` for every episode of a shard at once (sums over row ranges of the concatenated columns); None
    when no episode has a fit.

    Each episode's columns are centred once on their own means; every moment of every hypothesis then comes from
    per-episode sums: the window sums of lead k are the whole sums less k edge rows, one lagged product per lead
    gives the cross sums, and the identity fit's squared error is expanded from those same sums (no second pass).
    ``scratch`` holds the work buffers between calls (a check passes its own).
    """
    n = shard.lengths
    starts = shard.starts
    if not pairs or not len(n):
        return None
    usable = _usable(shard, action, pairs)
    fitted = usable.any(axis=1)
    if not fitted.any():
        return None
    stops = starts + n
    total = len(shard.timestamps)
    # each episode centred once on its own means (own copies, centred in place): a window's moments are then
    # sums without cancellation
    scratch = scratch or segments.Scratch()
    s_dev, a_dev = scratch.columns("s", total, len(pairs)), scratch.columns("a", total, len(pairs))
    s_mean = segments.centred_columns([shard.vectors[key][:, j] for _, key, j in pairs], starts, n, s_dev)
    a_mean = segments.centred_columns([shard.vectors[action][:, i] for i, _, _ in pairs], starts, n, a_dev)
    work = scratch.columns("work", total, len(pairs))  # per-frame products, in place
    sums_s, sums_a = segments.range_sum(s_dev, starts, stops), segments.range_sum(a_dev, starts, stops)
    squares_s = segments.range_sum(np.multiply(s_dev, s_dev, out=work), starts, stops)
    heads = segments.head_sums(work, starts, n, _MAX_LEAD)
    squares_a = segments.range_sum(np.multiply(a_dev, a_dev, out=work), starts, stops)
    tails = segments.tail_sums(work, starts, n, _MAX_LEAD)
    s_heads, a_tails = segments.head_sums(s_dev, starts, n, _MAX_LEAD), segments.tail_sums(a_dev, starts, n, _MAX_LEAD)
    var_s = squares_s / _count(n)
    offset = a_mean - s_mean  # a_t - s_(t+k) = a_dev_t - s_dev_(t+k) + offset
    absolute, errors = [], []
    window_a: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] = (sums_a, squares_a)
    for k in range(_MAX_LEAD + 1):
        count = _count(n - k)
        # the window of lead k: s over rows [k, n) of each episode, a over rows [0, n - k)
        sum_s = sums_s - s_heads[k]
        sq_s = squares_s - heads[k]
        sum_a = sums_a - a_tails[k]
        sq_a = squares_a - tails[k]
        if k == 1:
            window_a = (sum_a, sq_a)
        sxx, syy = sq_s - sum_s * sum_s / count, sq_a - sum_a * sum_a / count
        # a window that is constant (its spread lost in rounding) is constant, as in r2
        sxx[sxx <= 1e-12 * sq_s] = 0.0
        syy[syy <= 1e-12 * sq_a] = 0.0
        np.multiply(s_dev[k:], a_dev[: total - k], out=work[: total - k])
        cross = segments.lagged_sum(work, starts, n, k)
        absolute.append(segments.medians(_r2(sxx, syy, cross - sum_s * sum_a / count), usable))
        # Σ (a_t - s_(t+k))² from the same sums; what is left of it below rounding of its terms is 0
        rows = np.maximum(n - k, 0)[:, None]
        scale = sq_a + sq_s + rows * offset * offset
        sse = sq_a + sq_s - 2 * cross + 2 * offset * (sum_a - sum_s) + rows * offset * offset
        sse[sse <= 1e-12 * scale] = 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            errors.append(segments.medians(sse / count / var_s, usable))
    # deltas: Δs_t = s_(t+1) - s_t against a_t over rows [0, n - 1); Δs centred on its window mean, so that
    # Σ Δs'·a' needs no centring of a (Σ Δs' = 0 over the window)
    ds = work
    np.subtract(s_dev[1:], s_dev[:-1], out=ds[: total - 1])
    ds[total - 1 :] = 0.0
    segments.apply_each(ds, segments.range_sum(ds, starts, stops - 1) / _count(n - 1), n, np.subtract)
    sum_a, sq_a = window_a
    var_a = sq_a - sum_a * sum_a / _count(n - 1)
    var_a[var_a <= 1e-12 * sq_a] = 0.0
    products = np.multiply(ds[: total - 1], a_dev[: total - 1], out=s_dev[: total - 1])
    cov = segments.range_sum(products, starts, stops - 1)
    var_ds = segments.range_sum(np.multiply(ds, ds, out=ds), starts, stops - 1)
    delta = segments.medians(_r2(var_ds, var_a, cov), usable)
    with np.errstate(divide="ignore", invalid="ignore"):
        slopes = segments.medians(cov / var_a, usable & (var_a > 0))
    return ShardFits(np.asarray(fitted, dtype=bool), np.array(absolute), delta, slopes, np.array(errors))


def _usable(shard: ShardView, action: str, pairs: list[tuple[int, str, int]]) -> npt.NDArray[np.bool_]:
    """Per episode and pair: both dims finite and moving, and the episode long enough to fit (from the shard's
    extents: for finite values the finite range is the range)."""
    ext = shard.extent(action)
    a_dims = [i for i, _, _ in pairs]
    finite, moving = ~ext.bad[:, a_dims], ext.high[:, a_dims] > ext.low[:, a_dims]
    for p, (_, key, j) in enumerate(pairs):
        ext = shard.extent(key)
        finite[:, p] &= ~ext.bad[:, j]
        moving[:, p] &= ext.high[:, j] > ext.low[:, j]
    usable: npt.NDArray[np.bool_] = finite & moving & (shard.lengths >= 8)[:, None]
    return usable


def _count(n: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """Row counts as a divisor column (at least 1)."""
    return np.maximum(n, 1)[:, None]


def _r2(
    sxx: npt.NDArray[np.float64], syy: npt.NDArray[np.float64], sxy: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """:func:`r2` from centred sums of squares and products (0 where either side is constant)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = sxy * sxy / (sxx * syy)
    return np.where((sxx > 0) & (syy > 0) & np.isfinite(out), out, 0.0)


#: Roles that are not a motion of the robot: an action's dims of these roles are not fitted against states.
_NOT_MOTION = {Role.GRIPPER, Role.FLAG, Role.REWARD}


def motion_pairs(dataset: DatasetView, action: str) -> list[tuple[int, str, int]]:
    """:meth:`DatasetView.pairs` of the action without grippers, flags and rewards on either side: the dims whose
    values move with the robot's state."""
    feature = dataset.vectors[action]
    return [
        (i, s, j)
        for i, s, j in dataset.pairs(action)
        if feature.dims[i].role not in _NOT_MOTION and dataset.vectors[s].dims[j].role not in _NOT_MOTION
    ]


def declared_lead(feature: VectorFeature) -> int | None:
    """The lead in frames the action's timing declares (None when unknown or a chunk)."""
    sem = feature.action
    if sem is None:
        return None
    return {ActionTiming.SAME_STEP: 0, ActionTiming.NEXT_STATE_TARGET: 1}.get(
        sem.timing, sem.timing_frames if sem.timing == ActionTiming.LEAD_FRAMES else None
    )


class ActionSemanticsFit(Check):
    """RDV501: the declared action mode (absolute / delta / velocity) and lead against a fit to the states."""

    id = "RDV501"
    name = "actions.semantics"
    severity = Severity.ERROR
    evidence = Evidence.STATISTICAL
    description = (
        "fits a_t ~ s_{t+k} (absolute, k = 0..3) and Δs ~ a (delta: slope 1; velocity: slope 1/rate); error when "
        "another mode beats the declared one by error_gap in R², warning by warning_gap; unknown modes get an info "
        "with the best fit; below min_r2 nothing fits (unverifiable)"
    )
    defaults: ClassVar[Mapping[str, float]] = {
        "min_r2": 0.8,
        "error_gap": 0.3,
        "warning_gap": 0.1,
        "lead_ratio": 2.0,
        "lead_min_error": 0.01,
    }

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._pairs: dict[str, list[tuple[int, str, int]]] = {}
        for key in dataset.actions():
            pairs = motion_pairs(dataset, key)
            if pairs:
                self._pairs[key] = pairs
            else:
                yield self.finding(
                    f"{key}: no state dims pair with its dims (by name or by shape and roles): semantics "
                    "cannot be checked against the states",
                    feature=key,
                    severity=Severity.INFO,
                    evidence=Evidence.UNVERIFIABLE,
                    hint="name action and state dims alike (e.g. both 'shoulder_pan')",
                )
        self._rate = dataset.rate_hz
        self._dims = {key: sorted({i for i, _, _ in pairs}) for key, pairs in self._pairs.items()}
        self._unfit = dict.fromkeys(self._pairs, 0)
        self._fitted = dict.fromkeys(self._pairs, 0)
        self._scratch = segments.Scratch()
        self._ahead = segments.Scratch()  # prepare's, on the reader's thread

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        for key, pairs in self._pairs.items():
            yield from self._judge(ep, key, pairs, fit(ep, key, pairs))

    def prepare(self, shard: ShardView) -> None:
        for key, pairs in self._pairs.items():
            shard.keep(self.id, key, shard_fits(shard, key, pairs, self._ahead))

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        for key, pairs in self._pairs.items():
            fits = shard.kept(self.id, key, lambda: shard_fits(shard, key, pairs, self._scratch))  # noqa: B023
            if fits is None:
                continue
            for e in np.flatnonzero(self._screen(key, fits)).tolist():
                yield from self._judge(shard.episodes[e], key, pairs, fits.fit(e))

    def _screen(self, key: str, fits: ShardFits) -> npt.NDArray[np.bool_]:
        """The fitted episodes :meth:`_judge` must see: those where it may report, or where a value is not finite.
        The others are counted here as :meth:`_judge` would count them (the same comparisons, on arrays)."""
        feature = self.ds.vectors[key]
        declared = feature.action.mode if feature.action is not None else ActionMode.UNKNOWN
        slope = np.where(np.isnan(fits.slope), 0.0, fits.slope)
        finite = (
            np.isfinite(fits.absolute).all(axis=0)
            & np.isfinite(fits.error).all(axis=0)
            & np.isfinite(fits.delta)
            & np.isfinite(slope)
        )
        top = fits.absolute.max(axis=0)  # the best lead's R²
        absolute = top >= fits.delta
        velocity = ~absolute & (np.abs(slope * self._rate - 1) < np.abs(slope - 1) if self._rate else False)
        best_r2 = np.where(absolute, top, fits.delta)
        unfit = best_r2 < self.params["min_r2"]
        quiet = finite & unfit
        if declared != ActionMode.UNKNOWN:
            best_is = {
                ActionMode.ABSOLUTE: absolute,
                ActionMode.VELOCITY: velocity,
                ActionMode.DELTA: ~absolute & ~velocity,
            }.get(declared, np.zeros(absolute.shape, dtype=bool))
            differs = ~best_is
            gap = best_r2 - (top if declared == ActionMode.ABSOLUTE else fits.delta)
            same_family = ~absolute & (declared in (ActionMode.DELTA, ActionMode.VELOCITY))
            reports = differs & ((gap > self.params["warning_gap"]) | same_family)
            if declared == ActionMode.ABSOLUTE:
                reports |= absolute & self._lead_reports(key, fits)
            quiet |= finite & ~unfit & ~reports
        fitted = fits.fitted
        self._unfit[key] += int(np.count_nonzero(fitted & quiet & unfit))
        self._fitted[key] += int(np.count_nonzero(fitted & quiet & ~unfit))
        looked: npt.NDArray[np.bool_] = fitted & ~quiet
        return looked

    def _lead_reports(self, key: str, fits: ShardFits) -> npt.NDArray[np.bool_]:
        """Per episode, whether :meth:`_lead` reports (for finite errors)."""
        lead = declared_lead(self.ds.vectors[key])
        if lead is None or lead > _MAX_LEAD:
            return np.zeros(fits.delta.shape, dtype=bool)
        best = np.argmin(fits.error, axis=0)  # the first of equals, as min() over the leads
        declared = fits.error[lead]
        ratio = declared / np.maximum(fits.error[best, np.arange(len(best))], 1e-12)
        reports: npt.NDArray[np.bool_] = (
            (best != lead) & (ratio > self.params["lead_ratio"]) & (declared > self.params["lead_min_error"])
        )
        return reports

    def _judge(
        self, ep: EpisodeView, key: str, pairs: list[tuple[int, str, int]], result: Fit | None
    ) -> Iterable[Finding]:
        """The findings of one episode's fit of the action ``key``."""
        if result is None:
            return
        feature = self.ds.vectors[key]
        best, best_r2 = result.best(self._rate)
        dims = self._dims[key]
        if best_r2 < self.params["min_r2"]:
            self._unfit[key] += 1
            return
        self._fitted[key] += 1
        declared = feature.action.mode if feature.action is not None else ActionMode.UNKNOWN
        scores = f"R² absolute(k={result.lead}) {result.absolute[result.lead]:.2f}, delta/velocity {result.delta:.2f}"
        if declared == ActionMode.UNKNOWN:
            yield self.finding(
                f"{key}: mode unknown; the data fits {best} ({scores})",
                ep=ep,
                feature=key,
                dims=dims,
                frames=(0, ep.length),
                statistic="median R²",
                measured=best_r2,
                expected="a declared mode",
                severity=Severity.INFO,
                hint=f"declare action mode {best} in the converter spec",
            )
            return
        declared_r2 = result.absolute[result.lead] if declared == ActionMode.ABSOLUTE else result.delta
        same_family = {best, declared} <= {ActionMode.DELTA, ActionMode.VELOCITY}
        gap = best_r2 - declared_r2
        if best != declared and (gap > self.params["warning_gap"] or same_family):
            level = Severity.ERROR if gap > self.params["error_gap"] else Severity.WARNING
            what = f"slope of Δs on a {result.slope:.3g}" if same_family else scores
            yield self.finding(
                f"{key} is declared {declared} but behaves as {best} ({what})",
                ep=ep,
                feature=key,
                dims=dims,
                frames=(0, ep.length),
                statistic="median R² gap (best - declared)" if not same_family else "slope of Δs on a",
                threshold=self.params["error_gap"] if not same_family else None,
                measured=gap if not same_family else result.slope,
                expected=str(declared),
                severity=level,
                hint=f"actions behave as {best}: fix the declared mode, or the conversion",
            )
        elif best == ActionMode.ABSOLUTE == declared:
            yield from self._lead(ep, key, dims, result)

    def _lead(self, ep: EpisodeView, key: str, dims: list[int], result: Fit) -> Iterable[Finding]:
        """Absolute actions: the lead k with the smallest error against the declared one (by error ratio)."""
        lead = declared_lead(self.ds.vectors[key])
        if lead is None or lead > _MAX_LEAD:
            return
        best = min(range(len(result.error)), key=result.error.__getitem__)
        ratio = result.error[lead] / max(result.error[best], 1e-12)
        if best != lead and ratio > self.params["lead_ratio"] and result.error[lead] > self.params["lead_min_error"]:
            yield self.finding(
                f"{key}: a_t matches s_(t+{best}) best, not s_(t+{lead}) as the timing declares (squared error "
                f"{result.error[best]:.3g} vs {result.error[lead]:.3g} of the state variance)",
                ep=ep,
                feature=key,
                dims=dims,
                frames=(0, ep.length),
                statistic="error ratio of the declared lead to the best lead",
                threshold=self.params["lead_ratio"],
                measured=best,
                expected=lead,
                severity=Severity.WARNING,
                hint="fix the action timing (lead_frames k) or shift the actions",
            )

    def end(self) -> Iterable[Finding]:
        for key, unfit in self._unfit.items():
            if unfit and not self._fitted[key]:
                yield self.finding(
                    f"{key}: no mode fits the states (best R² below {self.params['min_r2']:g} in all {unfit} "
                    "episodes): the semantics cannot be verified from the data",
                    feature=key,
                    severity=Severity.INFO,
                    evidence=Evidence.UNVERIFIABLE,
                    hint="",
                )


_PHYSICAL = {Unit.RAD, Unit.M, Unit.RAD_PER_S, Unit.M_PER_S, Unit.DEG, Unit.MM}


class PrenormalizedActions(Check):
    """RDV504: actions declared in physical units that look normalized to [-1, 1] or quantized to a few values."""

    id = "RDV504"
    name = "actions.prenormalized"
    severity = Severity.WARNING
    evidence = Evidence.STATISTICAL
    description = (
        "an action dim in physical units (rad, m, …) that stays within [-1, 1] with over bound_mass (5%) of its "
        "values at ±1 (clipped normalized data), or that takes at most max_unique (32) distinct values (quantized)"
    )
    hint = "store raw physical values (keep normalization statistics apart), or declare the unit normalized"
    defaults: ClassVar[Mapping[str, float]] = {"bound_mass": 0.05, "max_unique": 32.0, "min_values": 100.0}

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._dims = {
            key: [i for i, d in enumerate(f.dims) if d.unit in _PHYSICAL and d.role != Role.GRIPPER]
            for key, f in dataset.actions().items()
        }
        self._dims = {k: v for k, v in self._dims.items() if v}
        self._low = {k: np.full(len(v), np.inf) for k, v in self._dims.items()}
        self._high = {k: np.full(len(v), -np.inf) for k, v in self._dims.items()}
        self._at_bounds = {k: np.zeros(len(v)) for k, v in self._dims.items()}
        self._count = dict.fromkeys(self._dims, 0)
        self._values: dict[str, list[set[float] | None]] = {k: [set() for _ in v] for k, v in self._dims.items()}
        return ()

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        # min, max, counts and the first distinct values of a shard's rows are those of its episodes together
        for key, dims in self._dims.items():
            extent = shard.extent(key)
            block = _take(shard.vectors[key], dims)
            if not len(shard.episodes) or extent.bad[:, dims].any():
                self._add(key, block)
            else:  # every row finite: the range is the episodes' ranges
                self._add(key, block, extent.low[:, dims].min(axis=0), extent.high[:, dims].max(axis=0))
        return ()

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        for key, dims in self._dims.items():
            self._add(key, ep.vectors[key][:, dims])
        return ()

    def _add(
        self,
        key: str,
        block: npt.NDArray[np.float64],
        low: npt.NDArray[np.float64] | None = None,
        high: npt.NDArray[np.float64] | None = None,
    ) -> None:
        """Accumulate the rows of ``block`` (the action's dims) whose values are all finite; ``low`` and ``high``
        are their per-dim range when the caller knows it and every row is finite."""
        if low is None or high is None:
            block = block[np.isfinite(block).all(axis=1)]
            if not len(block):
                return
            low, high = block.min(axis=0), block.max(axis=0)
        if not len(block):
            return
        cap = int(self.params["max_unique"])
        self._low[key] = np.minimum(self._low[key], low)
        self._high[key] = np.maximum(self._high[key], high)
        if np.maximum(high, -low).max() >= 0.999:  # else no value is at ±1
            self._at_bounds[key] += (np.abs(block) >= 0.999).sum(axis=0)
        self._count[key] += len(block)
        for i, seen in enumerate(self._values[key]):
            if seen is None:
                continue
            head = segments.distinct(block[: 4 * cap, i])  # more than cap distinct values already: no need to see all
            seen.update((head if len(head) > cap else segments.distinct(block[:, i]))[: cap + 1].tolist())
            if len(seen) > cap:
                self._values[key][i] = None

    def end(self) -> Iterable[Finding]:
        for key, dims in self._dims.items():
            total = self._count[key]
            if total < self.params["min_values"]:
                continue
            names = self.ds.vectors[key].dims
            for i, d in enumerate(dims):
                low, high = float(self._low[key][i]), float(self._high[key][i])
                mass = float(self._at_bounds[key][i]) / total
                seen = self._values[key][i]
                if low >= -1.0001 and high <= 1.0001 and mass > self.params["bound_mass"]:
                    yield self.finding(
                        f"{key}[{names[d].name}] is declared {names[d].unit} but stays in [-1, 1] with {mass:.0%} of "
                        "its values at ±1: it looks normalized and clipped",
                        feature=key,
                        dims=[d],
                        statistic="fraction of values at ±1",
                        threshold=self.params["bound_mass"],
                        measured=mass,
                        expected=f"raw {names[d].unit}",
                    )
                elif seen is not None and len(seen) > 1:
                    yield self.finding(
                        f"{key}[{names[d].name}] takes only {len(seen)} distinct values over {total} frames: it looks "
                        "quantized",
                        feature=key,
                        dims=[d],
                        statistic="distinct values",
                        threshold=self.params["max_unique"],
                        measured=len(seen),
                        expected=f"> {int(self.params['max_unique'])}",
                    )


def _take(values: npt.NDArray[np.float64], dims: list[int]) -> npt.NDArray[np.float64]:
    """The columns ``dims`` of ``values``: a view when they are a run of neighbours, else a copy."""
    if dims == list(range(dims[0], dims[0] + len(dims))):
        return values[:, dims[0] : dims[0] + len(dims)]
    return values[:, dims]


def _in_rotation(feature: VectorFeature, dim: int) -> bool:
    """Whether ``dim`` belongs to one of the feature's rotation groups (they do not add up as vectors)."""
    return any(g.start <= dim < g.start + max(g.size, 1) for g in feature.rotations)


class DeltaIntegration(Check):
    """RDV502: delta (or velocity) actions integrated from a window's first state must reach its last state.

    Per episode and action feature declared delta or velocity (relative to the previous state, or to an unknown
    reference), over windows of ``window_s`` seconds: the endpoint error of ``s_0 + Σ a_t`` (velocity: ``a_t·Δt``)
    against the state at the window's end, relative to the path the state travelled in the window. RDV501's fit
    sees whether Δs follows a; the integral also sees a wrong scale (deltas per two steps, mm labelled m, a
    normalized delta) and a drift that a correlation hides.
    """

    id = "RDV502"
    name = "actions.delta_integration"
    severity = Severity.WARNING
    evidence = Evidence.STATISTICAL
    description = (
        "delta/velocity actions integrated over window_s (1 s) windows from the window's first state: the median "
        "endpoint error over max_error (20%) of the state's path length is a warning"
    )
    hint = "the deltas' scale or frame is wrong: fix the declared unit or scale, or relabel actions from state changes"
    defaults: ClassVar[Mapping[str, float]] = {"window_s": 1.0, "max_error": 0.2, "min_windows": 3.0}

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._pairs: dict[str, list[tuple[int, str, int]]] = {}
        self._velocity: set[str] = set()
        for key, feature in dataset.actions().items():
            sem = feature.action
            if sem is None or sem.mode not in (ActionMode.DELTA, ActionMode.VELOCITY):
                continue
            if sem.reference not in (DeltaReference.PREVIOUS_STATE, DeltaReference.UNKNOWN):
                continue  # relative to the previous command or the episode start: not a step of the state
            pairs = [
                (i, s, j)
                for i, s, j in motion_pairs(dataset, key)
                if not _in_rotation(feature, i) and not _in_rotation(dataset.vectors[s], j)
            ]
            if pairs:
                self._pairs[key] = pairs
                if sem.mode == ActionMode.VELOCITY:
                    self._velocity.add(key)
        rate = dataset.rate_hz
        self._window = max(2, round(self.params["window_s"] * rate)) if rate else 0
        return ()

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        return super().shard(shard) if self._window and self._pairs else ()  # no delta action to integrate

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        if not self._window or ep.length < 2 * self._window + 1:
            return
        for key, pairs in self._pairs.items():
            acts = ep.vectors[key][:, [i for i, _, _ in pairs]]
            states = np.stack([ep.vectors[s][:, j] for _, s, j in pairs], axis=1)
            if key in self._velocity:
                acts = acts[:-1] * np.diff(ep.timestamps)[:, None]
            result = integration_error(states, acts, self._window)
            if result is None or result[2] < self.params["min_windows"]:
                continue
            error, scale, windows = result
            if error > self.params["max_error"]:
                yield self.finding(
                    f"{key} integrated over {self.params['window_s']:g} s windows misses the state by a median "
                    f"{error:.0%} of the path length ({windows} window-dims; the integrated path is {scale:.3g}x "
                    "the state's)",
                    ep=ep,
                    feature=key,
                    dims=sorted({i for i, _, _ in pairs}),
                    frames=(0, ep.length),
                    statistic=f"median |s_0 + Σa - s_end| / path length over {self.params['window_s']:g} s windows",
                    threshold=self.params["max_error"],
                    measured=error,
                    expected=f"<= {self.params['max_error']:g}",
                )


def integration_error(
    states: npt.NDArray[np.float64], steps: npt.NDArray[np.float64], window: int
) -> tuple[float, float, int] | None:
    """(median endpoint error / path length, scale of the integrated path to the state's, windows used) of
    ``steps`` (row t: the change from state t to t + 1) integrated over windows of ``window`` frames.

    None when no window moves (the data cannot tell) or values are not finite."""
    n = min(len(states), len(steps) + 1)
    if n < window + 1 or not (np.isfinite(states[:n]).all() and np.isfinite(steps[: n - 1]).all()):
        return None
    travelled = np.concatenate([np.zeros((1, states.shape[1])), np.cumsum(steps[: n - 1], axis=0)])
    path = np.concatenate([np.zeros((1, states.shape[1])), np.cumsum(np.abs(np.diff(states[:n], axis=0)), axis=0)])
    marks = np.arange(0, n, window)
    first, last = marks[:-1], marks[1:]
    moved = states[last] - states[first]
    integrated = travelled[last] - travelled[first]
    length = path[last] - path[first]
    scale_ref = float(np.abs(states[:n]).max()) + 1.0
    valid = length > 1e-9 * scale_ref
    if valid.sum() == 0:
        return None
    error = np.abs(integrated - moved)[valid] / length[valid]
    denominator = float((moved[valid] ** 2).sum())
    scale = float((integrated[valid] * moved[valid]).sum()) / denominator if denominator > 0 else float("nan")
    return float(np.median(error)), scale, int(valid.sum())
