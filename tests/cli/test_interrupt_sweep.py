"""SIGTERM landing at any line of an overwrite leaves the old dataset byte for byte or the complete new one, and
nothing else: no temporary folder, no lock, no traceback, exit 143 (0 once the run is over).

A real SIGTERM (``signal.raise_signal``, so a held signal is held as in life) is sent when the conversion reaches
its N-th executed line of rdstd (and of the stdlib helpers its cleanup runs through), for N spread over the whole
run. CI once caught a window here by chance (an exit 3); this sweeps them on purpose.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import linecache
import shutil
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import rdstd
from rdstd.cli import app
from rdstd.testing.fixtures import make_zarr_replay_buffer

WATCHED = ("/rdstd/", "/shutil.py", "/contextlib.py", "/tempfile.py")
#: How many points spread over the run are tried (it runs ~26,000 lines; a try takes ~0.2 s), and how many lines
#: apart the tries are over its last 400 (the commit: the swap, the old dataset's removal, the lock's release).
POINTS = 80
TAIL_STEP = 10


def snapshot(root: Path) -> dict[str, str]:
    files = (p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _ours_to_interrupt() -> bool:
    """Whether the handler in place is the CLI's (or its hold): only then is a SIGTERM sent (never to pytest's)."""
    handler = signal.getsignal(signal.SIGTERM)
    return handler is app._on_sigterm or getattr(handler, "__qualname__", "") == "held_interrupts.<locals>.hold"


def run_with_sigterm_at(line: int | None, args: list[str]) -> tuple[int | str, int, str]:
    """Run the CLI, sending SIGTERM at its ``line``-th watched line (None: never); (exit or what escaped, lines
    run, stderr's last line)."""
    count = 0
    fired = False

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        code = frame.f_code
        if fired or not any(w in code.co_filename for w in WATCHED) or code is app.main.__code__:
            return None  # (main's own lines: a signal before its try or in its finally escapes by design)
        return local

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count, fired
        if fired:
            return None
        if event == "line" and not linecache.getline(frame.f_code.co_filename, frame.f_lineno).lstrip().startswith(
            "with "  # the line event of a with's exit comes where no real signal can land (before __exit__ runs)
        ):
            count += 1
            if line is not None and count >= line and _ours_to_interrupt():
                fired = True
                signal.raise_signal(signal.SIGTERM)
        return local

    err = io.StringIO()
    previous = sys.gettrace()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        sys.settrace(tracer)
        try:
            code: int | str = app.main(args)
        except BaseException as exc:
            code = f"escaped: {type(exc).__name__}: {exc}"
        finally:
            sys.settrace(previous)
    lines = err.getvalue().strip().splitlines()
    return code, count, lines[-1] if lines else ""


@pytest.mark.skipif(sys.gettrace() is not None, reason="a tracer (coverage, a debugger) is already running")
def test_sigterm_at_any_line_of_an_overwrite_leaves_the_old_or_the_complete_new_dataset(tmp_path: Path) -> None:
    source = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(source, [30, 30, 30], image_hw=(16, 16), chunk_rows=30)
    old = tmp_path / "old"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert app.main(["convert", str(source), str(old), "--limit", "1"]) == 0
    old_files = snapshot(old)
    case = tmp_path / "case"
    out = case / "out"
    args = ["convert", str(source), str(out), "--overwrite"]

    def fresh() -> None:
        shutil.rmtree(case, ignore_errors=True)
        case.mkdir()
        shutil.copytree(old, out)

    fresh()
    code, total, _ = run_with_sigterm_at(None, args)
    assert code == 0 and rdstd.open(out).num_episodes == 3
    outcomes: dict[str, int] = {}
    for line in sorted({1 + i * total // POINTS for i in range(POINTS)} | set(range(total - 400, total, TAIL_STEP))):
        fresh()
        code, _, last = run_with_sigterm_at(line, args)
        left = sorted(p.name for p in case.iterdir())
        where = f"SIGTERM at line {line} of {total}: exit {code}, left {left}, said {last!r}"
        assert left == ["out"], where
        if code == 143 and snapshot(out) == old_files:
            assert "nothing of this run was left behind" in last, where
            outcomes["old kept"] = outcomes.get("old kept", 0) + 1
        else:
            assert code in (0, 143), where
            assert rdstd.open(out).num_episodes == 3, where
            assert code == 0 or "was complete before the signal came" in last, where
            outcomes[f"new, exit {code}"] = outcomes.get(f"new, exit {code}", 0) + 1
    print(outcomes)
    assert outcomes.get("old kept", 0) > POINTS // 2, outcomes  # the sweep did interrupt the runs
