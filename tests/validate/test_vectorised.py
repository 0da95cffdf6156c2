"""Checks that work on a whole shard at once give what they give episode by episode (segments, action fits),
and the runner keeps findings in episode order whichever way a check works."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest

from rdstd.schema import (
    ActionMode,
    ActionSemantics,
    ActionSpace,
    DeltaReference,
    Dimension,
    Episode,
    EpisodeMeta,
    Provenance,
    Role,
    Unit,
    VectorFeature,
)
from rdstd.schema.vocabulary import ActionTiming
from rdstd.store.reader import Dataset
from rdstd.store.writer import DatasetWriter
from rdstd.validate import Evidence, Finding, Severity, stream, validate
from rdstd.validate.check import Check, DatasetView, EpisodeView, ShardView, content_digest
from rdstd.validate.checks.actions import Fit, fit, fit_shard
from rdstd.validate.checks.metadata import _fingerprints
from rdstd.validate.config import load
from rdstd.validate.runner import build_checks, run
from rdstd.validate.segments import (
    LaggedMoments,
    Scratch,
    apply_each,
    centred_columns,
    centred_each,
    head_sums,
    medians,
    range_sum,
    segment_max,
    segment_medians,
    segment_min,
    step_deviations,
    tail_sums,
)
from tests.validate.fixtures import make

PAIRS = [(0, "observation.state", 0), (1, "observation.state", 1), (2, "observation.state", 2)]


def _shard(pieces: list[tuple[np.ndarray, np.ndarray]]) -> ShardView:
    lengths = np.array([len(s) for s, _ in pieces], dtype=np.intp)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
    state = np.concatenate([s for s, _ in pieces]) if pieces else np.zeros((0, 3))
    action = np.concatenate([a for _, a in pieces]) if pieces else np.zeros((0, 3))
    times = np.arange(len(state)) / 10.0
    vectors = {"observation.state": state, "action": action}
    views = [
        EpisodeView(
            position=e,
            index=e,
            episode_id=f"ep{e}",
            source_key="",
            split="train",
            task="",
            embodiment="",
            source_meta={},
            timestamps=times[s : s + n],
            vectors={k: v[s : s + n] for k, v in vectors.items()},
            raw={k: v[s : s + n] for k, v in vectors.items()},
        )
        for e, (s, n) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True))
    ]
    return ShardView(views, times, vectors, starts, lengths)


def _episode(rng: np.random.Generator, kind: str) -> tuple[np.ndarray, np.ndarray]:
    n = {"empty": 0, "short": 5}.get(kind, int(rng.integers(8, 200)))
    t = np.arange(n + 1)[:, None] / 10.0
    traj = np.sin(t * rng.uniform(0.2, 2.0, 3) + rng.uniform(0, 6, 3)) + rng.normal(0, 0.01, (n + 1, 3))
    state, action = traj[:n].copy(), traj[1:].copy()
    if kind == "delta":
        action = np.diff(traj, axis=0) * rng.uniform(0.5, 1.5)
    elif kind == "nan":
        state[n // 2, 1] = np.nan
    elif kind == "constant":
        action[:, 0] = 0.25
    elif kind == "lead2":
        action = np.concatenate([traj[2:], traj[-1:]])[:n]
    return state, action


def _same(want: Fit | None, got: Fit | None) -> bool:
    if want is None or got is None:
        return want is got
    left = np.r_[want.absolute, want.delta, want.slope, want.error]
    right = np.r_[got.absolute, got.delta, got.slope, got.error]
    return bool(np.allclose(left, right, rtol=1e-12, atol=1e-15))


@pytest.mark.parametrize("seed", range(6))
def test_the_shard_fit_equals_the_episode_fit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    kinds = ["plain", "delta", "nan", "constant", "lead2", "short", "empty"]
    shard = _shard([_episode(rng, str(rng.choice(kinds))) for _ in range(int(rng.integers(1, 12)))])
    got = fit_shard(shard, "action", PAIRS)
    for ep, result in zip(shard.episodes, got, strict=True):
        assert _same(fit(ep, "action", PAIRS), result), ep.episode_id


def test_every_kind_of_episode_in_one_shard() -> None:
    rng = np.random.default_rng(7)
    kinds = ["empty", "plain", "short", "delta", "nan", "constant", "lead2", "empty"]
    shard = _shard([_episode(rng, k) for k in kinds])
    got = fit_shard(shard, "action", PAIRS)
    assert [r is None for r in got] == [True, False, True, False, False, False, False, True]
    for ep, result in zip(shard.episodes, got, strict=True):
        assert _same(fit(ep, "action", PAIRS), result), ep.episode_id


def test_segment_reductions_match_numpy_per_segment() -> None:
    rng = np.random.default_rng(1)
    lengths = np.array([3, 0, 5, 1, 0, 4, 0], dtype=np.intp)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
    values = rng.normal(size=(int(lengths.sum()), 2))
    stops = starts + lengths
    for lead in (0, 1, 2):
        ends = np.maximum(stops - lead, starts)
        want = np.array([values[s:e].sum(axis=0) for s, e in zip(starts, ends, strict=True)])
        np.testing.assert_allclose(range_sum(values, starts, ends), want, rtol=1e-14)
    full = [values[s:e] for s, e in zip(starts, stops, strict=True)]
    high, low = segment_max(values, starts, lengths), segment_min(values, starts, lengths)
    for i, block in enumerate(full):
        if len(block):
            assert (high[i] == block.max(axis=0)).all() and (low[i] == block.min(axis=0)).all()
        else:
            assert (high[i] == -np.inf).all() and (low[i] == np.inf).all()


def test_medians_of_kept_entries_are_numpys() -> None:
    rng = np.random.default_rng(2)
    values = rng.normal(size=(50, 6))
    keep = rng.random((50, 6)) > 0.4
    got = medians(values, keep)
    for row, mask, m in zip(values, keep, got, strict=True):
        assert (np.isnan(m) and not mask.any()) or m == np.median(row[mask])


class Tail(Check):
    """Test check: one finding per episode from the per-episode path."""

    id = "ACME2"
    name = "acme.tail"
    severity = Severity.INFO
    evidence = Evidence.DETERMINISTIC
    description = "every episode"

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        yield self.finding("tail", ep=ep)


class Head(Check):
    """Test check: one finding per episode, all of a shard's at once (in reverse, to test the ordering)."""

    id = "ACME1"
    name = "acme.head"
    severity = Severity.INFO
    evidence = Evidence.DETERMINISTIC
    description = "every episode, by shard"

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        return [self.finding("head", ep=ep) for ep in reversed(shard.episodes)]


def test_findings_come_by_episode_then_by_check_whichever_way_checks_work(tmp_path: Path) -> None:
    ds = Dataset.open(make(tmp_path / "clean"))
    found = run(ds, [Head(), Tail()])
    order = [ep.index for ep in stream.episodes(ds)]
    assert [(f.episode_index, f.check) for f in found] == [(i, c) for i in order for c in ("ACME1", "ACME2")]


def _episode_by_episode(ds: Dataset, checks: list[Check]) -> list[Finding]:
    """The runner as it was: every check's :meth:`Check.episode` on every episode, interleaved."""
    view = DatasetView(ds.path, ds.manifest, ds.episodes, lambda: ds.stats)
    found = [f for c in checks for f in c.begin(view)]
    for ep in stream.episodes(ds):
        found += [f for c in checks for f in c.episode(ep)]
    return found + [f for c in checks for f in c.end()]


@pytest.mark.parametrize(
    "plants",
    [
        (),
        ("nan", "limits", "spike", "degrees", "mm", "lead"),
        ("constant", "wrap", "inverted_gripper", "jump", "idle"),
        ("absolute_labelled_delta", "chatter", "quat_norm", "dropped_frame"),
        ("prenormalized", "relative_gripper"),
        ("quantized",),
        ("grid",),
    ],
)
def test_checks_on_whole_shards_find_what_they_find_episode_by_episode(tmp_path: Path, plants: tuple[str, ...]) -> None:
    root = make(tmp_path / "planted", *plants)
    ds = Dataset.open(root)
    config = load("strict", root, cwd=tmp_path)
    by_shard = run(ds, [c for c in build_checks(config)[0] if not c.pixels])
    by_episode = _episode_by_episode(ds, [c for c in build_checks(config)[0] if not c.pixels])
    assert by_shard == by_episode
    assert len(by_shard) >= len(plants)


@pytest.mark.parametrize("seed", range(4))
def test_segment_medians_are_numpys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 40, size=int(rng.integers(1, 30))).astype(np.intp)
    lengths[rng.integers(0, len(lengths))] = 400  # one long segment among short ones
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
    values = rng.normal(size=(int(lengths.sum()), 3)).round(1)  # ties
    if len(values):
        values[rng.integers(0, len(values)), 1] = np.nan
    got = segment_medians(values, starts, lengths)
    flat = segment_medians(values[:, 0], starts, lengths)
    for i, (s, n) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
        want = np.median(values[s : s + n], axis=0) if n else np.full(3, np.nan)
        np.testing.assert_array_equal(got[i], want)
        np.testing.assert_array_equal(flat[i], want[0])


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize(("segments", "width", "spacing"), [(7, 10, 11), (5, 9, 9), (1, 6, 6), (6, 8, 8)])
def test_segment_medians_of_evenly_spaced_segments_are_numpys(
    order: str, segments: int, width: int, spacing: int
) -> None:
    """Equal segments at a constant spacing (a shard of equal episodes, the steps of its episodes) are read through
    a strided view: the same medians as numpy's, NaN where a segment holds one, rows between segments ignored."""
    rng = np.random.default_rng(width)
    values = np.asarray(rng.normal(size=(segments * spacing + 2, 3)).round(1), order=order)
    starts = (np.arange(segments) * spacing + 1).astype(np.intp)
    lengths = np.full(segments, width, dtype=np.intp)
    values[int(starts[-1]) + 2, 1] = np.nan
    values[int(starts[0]) + width :: spacing, 2] = 1e9  # rows between segments must not count
    got = segment_medians(values, starts, lengths)
    for i, s in enumerate(starts.tolist()):
        np.testing.assert_array_equal(got[i], np.median(values[s : s + width], axis=0))


@pytest.mark.parametrize(("lengths", "extra"), [([4, 4, 4], 0), ([4, 4, 4], 1), ([3, 0, 5, 1], 0)])
def test_apply_each_gives_each_segment_its_own_operand(lengths: list[int], extra: int) -> None:
    rng = np.random.default_rng(3)
    n = np.array(lengths, dtype=np.intp)
    values = np.asfortranarray(rng.normal(size=(int(n.sum()) + extra, 2)))
    per = rng.normal(size=(len(n), 2))
    want = values.copy()
    want[: int(n.sum())] -= np.repeat(per, n, axis=0)
    apply_each(values, per, n, np.subtract)
    np.testing.assert_array_equal(values, want)


def _episodes_dataset(root: Path, episodes: list[tuple[str, np.ndarray]], shard_bytes: int) -> Path:
    """A dataset of one 2-d state feature, an episode per (split, values), in shards of about ``shard_bytes``."""
    features = {
        "observation.state": VectorFeature(
            shape=(2,), dims=[Dimension(name=f"s{i}", role=Role.JOINT_POSITION, unit=Unit.RAD) for i in range(2)]
        )
    }
    with DatasetWriter(
        root,
        features,
        Provenance(source_format="generated", rdstd_version="test"),
        rate_hz=10.0,
        shard_bytes=shard_bytes,
    ) as writer:
        for e, (split, values) in enumerate(episodes):
            meta = EpisodeMeta(episode_id=f"ep{e}", task="t", split=split)
            writer.add(Episode(meta, np.arange(len(values)) / 10.0, {"observation.state": values.astype(np.float32)}))
    return root


@pytest.mark.parametrize("shard_bytes", [1, 1 << 30])
def test_duplicates_are_confirmed_by_their_digest_in_any_shard(tmp_path: Path, shard_bytes: int) -> None:
    """Episodes that share a fingerprint (length, first, middle and last rows, ranges) are hashed; the earlier one
    is read back from its shard when it went by. A copy is found; a near copy (one inner value differs) is not."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 2))
    near = base.copy()
    inner = next(r for r in range(1, 39) if r not in (20, base[:, 0].argmin(), base[:, 0].argmax()))
    near[inner, 0] = (base[:, 0].min() + base[:, 0].max()) / 2  # inside the range, away from the sampled rows
    episodes = [("train", base), ("train", rng.normal(size=(40, 2))), ("val", near), ("val", base.copy())]
    root = _episodes_dataset(tmp_path / "ds", episodes, shard_bytes)
    ds = Dataset.open(root)
    assert len({s for s in ds.episodes["shard"].to_list()}) == (4 if shard_bytes == 1 else 1)
    found = [f for f in run(ds, build_checks(load("default", root, cwd=tmp_path))[0]) if f.check == "RDV802"]
    assert [(f.episode_index, f.severity) for f in found] == [(3, Severity.ERROR)]
    assert "copy of episode 0 (ep0); split val repeats train" in found[0].message
    shards = list(stream.shards(ds))
    views = [ep for shard in shards for ep in shard.episodes]
    prints = [p for shard in shards for p in _fingerprints(shard)]
    assert prints[0] == prints[2] == prints[3] != prints[1]  # the near copy is told apart by its digest only
    assert views[2].content_digest() != views[0].content_digest() == views[3].content_digest()
    times, vectors = stream.StoredRows(ds)(3)
    assert content_digest(times, vectors) == views[3].content_digest()


def test_lagged_moments_are_the_windows_own() -> None:
    """x over rows [0, n - k) against y over rows [k, n) of each segment, centred on the windows' own means: as
    numpy computes them window by window (0 for a window that is empty)."""
    rng = np.random.default_rng(5)
    lengths = np.array([9, 1, 0, 30, 4], dtype=np.intp)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
    x, y = rng.normal(2.0, 1.0, int(lengths.sum())), rng.normal(-3.0, 2.0, int(lengths.sum()))
    cx, cy = centred_each(x, starts, lengths), centred_each(y, starts, lengths)
    lagged = LaggedMoments(cx, cy, starts, lengths)
    tabled = LaggedMoments(cx, cy, starts, lengths, leads=2)  # the edge sums of leads 0-2 taken at once
    for k in range(4):
        sxx, syy, sxy = lagged.comoments(k)
        for got, want_ in zip(tabled.comoments(k), (sxx, syy, sxy), strict=True):
            np.testing.assert_array_equal(got, want_)
        for e, (s, n) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
            xs, ys = x[s : s + max(n - k, 0)], y[s + k : s + n]
            xc, yc = xs - (xs.mean() if len(xs) else 0), ys - (ys.mean() if len(ys) else 0)
            want = (xc @ xc, yc @ yc, xc @ yc) if len(xs) else (0.0, 0.0, 0.0)
            np.testing.assert_allclose([sxx[e], syy[e], sxy[e]], want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    ("plants", "declared"),
    [
        ((), None),
        (("delta",), None),
        (("absolute_labelled_delta",), None),
        (("lead",), None),
        (("unknown_mode",), None),
        (("delta_scaled",), None),
        (("nan", "constant"), None),
        ((), "velocity"),
        (("delta",), "velocity"),
        (("delta",), "absolute"),
    ],
)
def test_action_fit_screen_judges_as_every_episode_would(
    tmp_path: Path, plants: tuple[str, ...], declared: str | None
) -> None:
    """RDV501 looks at an episode's fit in Python only when it may report; the findings and the fitted/unfit counts
    equal those of judging every episode (``declared``: the action's mode declared otherwise)."""
    from rdstd.validate.checks.actions import ActionSemanticsFit, shard_fits

    root = make(tmp_path, *plants)
    ds = Dataset.open(root)
    manifest = ds.manifest
    if declared is not None:
        action = manifest.features["action"]
        assert isinstance(action, VectorFeature) and action.action is not None
        semantics = action.action.model_copy(update={"mode": declared})
        features = {**manifest.features, "action": action.model_copy(update={"action": semantics})}
        manifest = manifest.model_copy(update={"features": features})
    view = DatasetView(ds.path, manifest, ds.episodes, lambda: ds.stats)
    screened, everyone = ActionSemanticsFit(), ActionSemanticsFit()
    list(screened.begin(view))
    list(everyone.begin(view))
    got, want = [], []
    for shard in stream.shards(ds):
        got += list(screened.shard(shard))
        for key, pairs in everyone._pairs.items():
            fits = shard_fits(shard, key, pairs)
            for e, ep in enumerate(shard.episodes):
                if fits is not None:
                    want += list(everyone._judge(ep, key, pairs, fits.fit(e)))
    assert [f.model_dump() for f in got] == [f.model_dump() for f in want]
    assert (screened._unfit, screened._fitted) == (everyone._unfit, everyone._fitted)
    assert sum(screened._fitted.values()) + sum(screened._unfit.values()) > 0
    assert bool(got) == (plants in {("absolute_labelled_delta",), ("lead",), ("unknown_mode",)} or declared is not None)


@pytest.mark.parametrize(
    "values",
    [
        np.array([], dtype=np.intp),
        np.array([4]),
        np.array([3, -1, 3, 0, -1, 7]),
        np.array([2.5, np.nan, -0.0, 0.0, np.nan, 2.5, -np.inf, np.inf]),
        np.array([np.nan, np.nan]),
        np.random.default_rng(3).integers(0, 5, size=(7, 3)).astype(np.float32),
    ],
)
def test_distinct_is_np_unique(values: np.ndarray) -> None:
    from rdstd.validate.segments import distinct

    got, want = distinct(values), np.unique(values)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_a_clean_run_does_not_import_numpy_ma(tmp_path: Path) -> None:
    """np.unique imports np.ma on its first use (12-20 ms in a fresh process): the whole-shard screens, which are
    all a clean dataset goes through, do without it, in the default and the strict profile (np.median and
    np.quantile still import it: in the detail of an episode a screen flagged, and in the per-episode rotation
    checks)."""
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    t = np.arange(60)[:, None] / 10.0
    walks = [("train", 0.5 * np.sin(t * rng.uniform(1, 2, 2) + rng.uniform(0, 6, 2))) for _ in range(4)]
    root = _episodes_dataset(tmp_path / "ds", walks, 1 << 30)
    code = (
        "import sys; from rdstd.validate import validate; import rdstd.validate.runner, rdstd.validate.checks; "
        "assert 'numpy.ma' not in sys.modules; "
        f"reports = [validate({str(root)!r}, profile=p) for p in ('default', 'strict')]; "
        "assert not [f for r in reports for f in r.findings if f.episode_index is not None], reports; "
        "assert 'numpy.ma' not in sys.modules, 'numpy.ma was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=Path.cwd())
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("width", [9, 10])
def test_segment_medians_told_finite_are_numpys(width: int) -> None:
    """Finite values (the NaN search skipped), odd and even counts (the lower middle of an even count taken as the
    largest entry below the upper one): numpy's medians."""
    rng = np.random.default_rng(width)
    values = np.asfortranarray(rng.normal(size=(12 * width, 3)).round(1))  # ties
    starts = (np.arange(12) * width).astype(np.intp)
    lengths = np.full(12, width, dtype=np.intp)
    got = segment_medians(values, starts, lengths, Scratch(), finite=True)
    for i, s in enumerate(starts.tolist()):
        np.testing.assert_array_equal(got[i], np.median(values[s : s + width], axis=0))


@pytest.mark.parametrize("lengths", [[5, 5, 5], [3, 0, 7, 1]])
def test_centred_each_into_a_buffer_and_negated_is_the_plain_one(lengths: list[int]) -> None:
    rng = np.random.default_rng(4)
    n = np.array(lengths, dtype=np.intp)
    starts = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.intp)
    x = rng.normal(size=int(n.sum()))
    scratch = Scratch()
    for v, negated in ((x, False), (-x, True)):
        # each segment less its mean (the mean as a segment sum over the count, as the shard's reductions work)
        means = range_sum(v.reshape(-1, 1), starts, starts + n)[:, 0] / np.maximum(n, 1)
        want = v - np.repeat(means, n)
        np.testing.assert_allclose(
            want,
            np.concatenate([v[s : s + k] - v[s : s + k].mean() for s, k in zip(starts, n, strict=True) if k]),
            atol=1e-15,
        )
        np.testing.assert_array_equal(centred_each(x, starts, n, negated=negated), want)
        got = centred_each(x, starts, n, scratch.vector("x", len(x)), negated=negated)
        np.testing.assert_array_equal(got, want)
        assert np.shares_memory(got, scratch.vector("x", len(x)))


@pytest.mark.parametrize("lengths", [[50, 50, 50, 50], [13, 1, 40, 7, 22]])
def test_centred_columns_are_the_copies_centred_in_place(lengths: list[int]) -> None:
    """One pass per column gives the bits of copying the columns and subtracting each segment's mean in place."""
    rng = np.random.default_rng(len(lengths))
    n = np.array(lengths, dtype=np.intp)
    starts = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.intp)
    source = np.asfortranarray(rng.normal(3.0, 2.0, size=(int(n.sum()), 4)))
    columns = [source[:, 2], source[:, 0], source[:, 3]]
    copied = np.asfortranarray(np.stack(columns, axis=1))
    want_means = range_sum(copied, starts, starts + n) / np.maximum(n, 1)[:, None]
    apply_each(copied, want_means, n, np.subtract)
    out = np.full((len(source), 3), np.nan, order="F")
    means = centred_columns(columns, starts, n, out)
    np.testing.assert_array_equal(means, want_means)
    np.testing.assert_array_equal(out, copied)


@pytest.mark.parametrize(("plant", "sums"), [("", False), ("jump", True)])
def test_action_jumps_sum_frame_by_frame_only_where_the_bound_reaches_the_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plant: str, sums: bool
) -> None:
    """RDV954's screen bounds every frame's weighted sum by each dim's largest offset in the episode: a clean shard
    stops there; the shard with a jump is summed frame by frame, and the jump is found at its frames."""
    from rdstd.validate.checks import quality

    calls: list[object] = []
    original = quality.segments.apply_each

    def counting(values: np.ndarray, per: np.ndarray, lengths: np.ndarray, ufunc: np.ufunc) -> None:
        calls.append(ufunc)
        original(values, per, lengths, ufunc)

    monkeypatch.setattr(quality.segments, "apply_each", counting)
    report = validate(make(tmp_path, *([plant] if plant else [])), select=["RDV954"])
    assert (np.multiply in calls) == sums
    assert [(f.episode_index, f.frames) for f in report.findings] == ([(1, (29, 31))] if sums else [])


def test_checks_with_nothing_to_look_at_in_a_shard_do_not_visit_its_episodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Metadata checks (begin and end only) are not called per shard; per-episode checks whose features are absent
    (no rotation groups, no delta actions) return at once; the findings are the same."""
    from rdstd.validate.checks import BUILTINS

    path = _joints_only(tmp_path / "joints")
    want = validate(path)
    idle = {"RDV401", "RDV402", "RDV403", "RDV404", "RDV502"}

    def refuse(self: Check, ep: EpisodeView) -> Iterable[Finding]:
        raise AssertionError(f"{self.id} visited an episode")

    called: set[str] = set()
    original = Check.shard

    def recording(self: Check, shard: ShardView) -> Iterable[Finding]:
        called.add(self.id)
        return original(self, shard)

    for cls in BUILTINS:
        if cls.id in idle:
            monkeypatch.setattr(cls, "episode", refuse)
    monkeypatch.setattr(Check, "shard", recording)  # what a check without a shard() of its own runs
    got = validate(path)
    assert got.findings == want.findings and got.findings
    assert "RDV801" in called  # a per-episode check
    assert not called & {"RDV803", "RDV901", "RDV902", "RDV904"}  # begin and end only


def _joints_only(path: Path, lengths: tuple[int, ...] = (60, 60), jump: int | None = None) -> Path:
    """Episodes of a 3-joint arm (``lengths`` frames), absolute joint targets, no rotation groups; episode 1 in
    degrees (findings); with ``jump``, a one-frame spike in that episode's actions at frame 30."""
    dims = [Dimension(name=f"j{i}", role=Role.JOINT_POSITION, unit=Unit.RAD, frame="base") for i in range(3)]
    semantics = ActionSemantics(
        mode=ActionMode.ABSOLUTE,
        space=ActionSpace.JOINT,
        reference=DeltaReference.NONE,
        timing=ActionTiming.NEXT_STATE_TARGET,
    )
    features = {
        "observation.state": VectorFeature(shape=(3,), dims=dims),
        "action": VectorFeature(shape=(3,), dims=dims, action=semantics),
    }
    with DatasetWriter(path, features, Provenance(source_format="generated", rdstd_version="test"), rate_hz=10.0) as w:
        for e, length in enumerate(lengths):
            t = np.arange(length + 1) / 10.0
            traj = np.sin(t[:, None] * (0.5 + np.arange(3)) + e)
            traj *= 57.3 if e == 1 else 1.0
            action = traj[1:].copy()
            if e == jump:
                action[30] += 3.0
            meta = EpisodeMeta(episode_id=f"ep{e}", task="reach", split="train")
            w.add(Episode(meta, t[:length], {"observation.state": traj[:length], "action": action}))
    return path


def test_head_and_tail_sums_of_every_count_are_the_rows_added_in_order() -> None:
    rng = np.random.default_rng(6)
    lengths = np.array([5, 0, 1, 3, 8], dtype=np.intp)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
    values = rng.normal(size=(int(lengths.sum()), 2))
    heads, tails = head_sums(values, starts, lengths, 4), tail_sums(values, starts, lengths, 4)
    for k in range(5):
        for e, (s, n) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
            head, tail = np.zeros(2), np.zeros(2)
            for j in range(min(k, n)):
                head += values[s + j]
                tail += values[s + n - 1 - j]
            np.testing.assert_array_equal(heads[k][e], head)
            np.testing.assert_array_equal(tails[k][e], tail)


@pytest.mark.parametrize("finite", [True, False])
def test_step_deviations_of_equal_episodes_are_numpys(finite: bool) -> None:
    """Per episode and dim of the steps within each episode: numpy's median, median absolute deviation and largest
    absolute deviation (NaN where a step is NaN); None for episodes of different lengths."""
    rng = np.random.default_rng(7)
    width = 12
    values = np.asfortranarray(rng.normal(size=(9 * width, 3)).round(1))
    if not finite:
        values[2 * width + 5, 1] = np.nan
    starts = (np.arange(9) * width).astype(np.intp)
    lengths = np.full(9, width, dtype=np.intp)
    got = step_deviations(values, starts, lengths, Scratch(), finite=finite)
    assert got is not None
    for e, s in enumerate(starts.tolist()):
        steps = np.diff(values[s : s + width], axis=0)
        center = np.median(steps, axis=0)
        deviation = np.abs(steps - center)
        for have, want in zip(got, (center, np.median(deviation, axis=0), deviation.max(axis=0)), strict=True):
            np.testing.assert_array_equal(have[e], want)
    lengths[3] -= 1
    assert step_deviations(values, starts, lengths) is None


@pytest.mark.parametrize("lengths", [(60, 60, 60, 60), (60, 45, 80, 33)])
def test_action_jumps_on_whole_shards_are_the_episodes_own(tmp_path: Path, lengths: tuple[int, ...]) -> None:
    """RDV954 on episodes of one length (the steps' block) and of several (the steps in place): the findings of
    its episode-by-episode detail, the jump at its frames."""
    ds = Dataset.open(_joints_only(tmp_path / "jumps", lengths, jump=2))
    config = load("default", ds.path, cwd=tmp_path).model_copy(update={"select": ["RDV954"]})
    by_shard = run(ds, build_checks(config)[0])
    assert by_shard == _episode_by_episode(ds, build_checks(config)[0])
    assert [(f.episode_index, f.frames) for f in by_shard] == [(2, (29, 31))]


@pytest.mark.parametrize("seed", range(6))
def test_segment_medians_of_episodes_of_many_lengths_are_numpys(seed: int) -> None:
    """Episodes of many lengths (even, odd, empty, one long one) are padded to one odd width between -inf and
    +inf so that one rank serves every row: numpy's medians, ±inf values and NaN included."""
    rng = np.random.default_rng(100 + seed)
    lengths = rng.integers(0, 60, size=30).astype(np.intp)
    lengths[seed] = 301
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
    values = np.asfortranarray(rng.normal(size=(int(lengths.sum()), 3)).round(1))
    values[rng.integers(0, len(values), size=3), [0, 1, 2]] = [-np.inf, np.nan, np.inf]
    got = segment_medians(values, starts, lengths)
    for i, (s, n) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
        want = np.median(values[s : s + n], axis=0) if n else np.full(3, np.nan)
        np.testing.assert_array_equal(got[i], want)
