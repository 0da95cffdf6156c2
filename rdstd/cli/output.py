"""Options shared by every command, defined once, and the helpers that print.

The shared options ``--format``, ``--quiet`` and ``--debug`` are accepted anywhere on the line
(:mod:`rdstd.cli.app` lifts them); their values for this run live in :data:`GLOBAL`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

import typer
from tqdm import tqdm


class OutputFormat(StrEnum):
    """How a command prints its result."""

    TEXT = "text"
    JSON = "json"


FORMAT_OPTION = typer.Option(OutputFormat.TEXT, "--format", help="Output format: text for people, json for tools.")


@dataclass
class GlobalOptions:
    """The shared options of this run, wherever on the command line they were given."""

    #: The ``--format`` value (``text`` unless given); errors are JSON on stderr when it is ``json``.
    format: str = "text"
    #: ``--quiet``: no side messages and no progress on stderr (results and errors still print).
    quiet: bool = False
    #: ``--debug``: tracebacks for rdstd's own errors.
    debug: bool = False


#: The shared options of the running command (set by :mod:`rdstd.cli.app` before the command runs).
GLOBAL = GlobalOptions()


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def emit(text: str) -> None:
    """Print text on stdout."""
    sys.stdout.write(text.rstrip("\n") + "\n")


def note(text: str) -> None:
    """Print a side message on stderr (the plan, notes, warnings), leaving stdout for the result; ``--quiet``
    silences it."""
    if not GLOBAL.quiet:
        sys.stderr.write(text.rstrip("\n") + "\n")


def error_json(code: str, situation: str, message: str, hint: str) -> str:
    """An error as the one JSON line printed on stderr with ``--format json``."""
    payload = {"error": {"code": code, "situation": situation, "message": message, "hint": hint}}
    return json.dumps(payload, ensure_ascii=False)


class ProgressMode(StrEnum):
    """How long work reports progress: a bar on a terminal, plain lines in logs, or nothing."""

    AUTO = "auto"
    BAR = "bar"
    PLAIN = "plain"
    NONE = "none"


PROGRESS_OPTION = typer.Option(
    ProgressMode.AUTO,
    "--progress",
    help="Progress on stderr: auto (a bar on a terminal, plain lines otherwise), bar, plain, none.",
)
#: Seconds between two plain progress lines.
PLAIN_INTERVAL_S = 5.0


class ProgressPrinter:
    """Progress of ``done``/``total`` items on stderr: a tqdm bar, or a plain line every ``interval_s`` seconds
    (default :data:`PLAIN_INTERVAL_S`).

    Plain lines are for logs and CI (no TTY): they never redraw, so a log shows the work moving. Use as a
    context manager; call it with (done, total) after each item.
    """

    def __init__(
        self,
        what: str,
        mode: ProgressMode = ProgressMode.AUTO,
        *,
        unit: str = "episodes",
        interval_s: float | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.unit = unit
        self.interval_s = PLAIN_INTERVAL_S if interval_s is None else interval_s
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        if GLOBAL.quiet:
            mode = ProgressMode.NONE
        elif mode == ProgressMode.AUTO:
            mode = ProgressMode.BAR if _is_tty(self.stream) else ProgressMode.PLAIN
        self.mode = mode
        self._started = clock()
        self._last = self._started
        self._bar: tqdm[Any] | None = None
        if mode == ProgressMode.BAR:
            self._bar = tqdm(total=0, unit=unit[:2], desc=what, file=self.stream, leave=False)

    def __call__(self, done: int, total: int) -> None:
        """Report that ``done`` of ``total`` items are finished."""
        if self._bar is not None:
            self._bar.total = total
            self._bar.update(done - self._bar.n)
        elif self.mode == ProgressMode.PLAIN:
            now = self.clock()
            if now - self._last >= self.interval_s and done < total:
                self._last = now
                self.stream.write(self.line(done, total, now - self._started) + "\n")
                self.stream.flush()

    def line(self, done: int, total: int, elapsed_s: float) -> str:
        """One plain progress line: counts, percentage, time so far and an estimate of the rest."""
        share = done / total if total else 0.0
        left = f", about {_duration(elapsed_s * (1 - share) / share)} left" if share else ""
        return f"rdstd: {self.what}: {done}/{total} {self.unit} ({share:.0%}), {_duration(elapsed_s)}{left}"

    def close(self) -> None:
        """Remove the bar (plain mode prints nothing more: the summary follows)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressPrinter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` (a report file the user asked for)."""
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
