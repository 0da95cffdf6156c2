"""Giving back the free heap a long recording's alignment leaves behind (glibc only; elsewhere nothing happens).

Aligning an episode builds its transforms and its streams' times from the pass's temporary files: transient arrays
of a few bytes per message (a 20-minute recording's /tf alone: ~20 MB while its lookups run). They are freed once
the episode is built, but glibc keeps freed memory in its heap (its trim threshold grows with the largest blocks a
process has freed) and the canonical writer's allocations mostly come from other threads' arenas and Arrow's
allocator, so that free heap stayed resident for the rest of the conversion: peak RSS rose with the recording's
length by what its alignment had needed, not by what the conversion held (issue #11). ``malloc_trim(0)`` returns
free heap pages to the kernel; it walks the heap once (about a millisecond here).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    return trim if callable(trim) else None


def release_free_heap() -> None:
    """Hand the heap's free pages back to the kernel (a no-op without glibc)."""
    trim = _trim()
    if trim is not None:
        trim(0)
