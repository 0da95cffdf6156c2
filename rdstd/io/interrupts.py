"""Holding Ctrl-C and SIGTERM back across the few steps that must not be cut in two.

Python runs a signal's handler in the main thread between any two bytecodes, so ``KeyboardInterrupt`` (and the
CLI's ``Terminated``) can surface anywhere: between taking an output's lock and recording that it was taken, or
between swapping a finished output into place and marking it done. :func:`held_interrupts` defers both signals
for the length of such a step and delivers the one that came as soon as the step is over, exactly as its handler
would have (a callable handler is called, the default action is taken, an ignored signal stays ignored).

Only the main thread can change handlers; elsewhere (where Python never runs handlers anyway) it does nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

#: The signals held back: Ctrl-C and what SLURM, Kubernetes and ``kill`` send.
HELD = (signal.SIGINT, signal.SIGTERM)

_HOLDING = threading.Event()  # set while a block holds them (main thread only)


@contextlib.contextmanager
def held_interrupts(note: Callable[[], str | None] | None = None) -> Iterator[None]:
    """Defer SIGINT and SIGTERM until the block ends, then deliver the first that came.

    ``note``, called when the block ended without an error, may return a line to attach (``add_note``) to the
    exception the delivered signal raises, to say what the block had finished (e.g. an output already in place).
    Nested blocks defer to the outermost. A signal whose handler was installed outside Python (which cannot be
    put back) is not held.
    """
    if _HOLDING.is_set() or threading.current_thread() is not threading.main_thread():
        yield  # the outer block holds them (or this thread never runs handlers)
        return
    came: list[signal.Signals] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        came.append(signal.Signals(signum))

    previous = {sig: signal.signal(sig, hold) for sig in HELD if signal.getsignal(sig) is not None}
    _HOLDING.set()
    finished = False
    try:
        yield
        finished = True
    finally:
        _HOLDING.clear()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if came:
            _deliver(came[0], previous[came[0]], note() if finished and note is not None else None)


def _deliver(signum: int, handler: Any, note: str | None) -> None:
    """Do what ``handler`` would have done for ``signum``; ``note`` goes on the exception it raises."""
    if handler is signal.SIG_IGN:
        return
    if handler is signal.SIG_DFL:
        if signum != signal.SIGINT:
            signal.raise_signal(signum)  # the default action: the process ends here
            return
        handler = signal.default_int_handler
    try:
        handler(signum, None)
    except BaseException as exc:
        if note:
            exc.add_note(note)
        raise
