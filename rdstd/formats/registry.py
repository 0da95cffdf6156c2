"""The registry of format backends: built-ins plus any installed under the ``rdstd.formats`` entry-point group."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

from rdstd.errors import SourceNotFoundError, UnknownFormatError, UsageError
from rdstd.formats.base import FormatBackend

#: Built-in backends, imported on first use (module path, class name).
BUILTINS: dict[str, tuple[str, str]] = {
    "zarr": ("rdstd.formats.zarr", "ZarrReplayBufferBackend"),
    "rlds": ("rdstd.formats.rlds", "RldsBackend"),
    "lerobot": ("rdstd.formats.lerobot", "LeRobotBackend"),
}


@cache
def backends() -> dict[str, FormatBackend]:
    """Every available backend by name (entry points may add to or replace the built-ins)."""
    import importlib

    found: dict[str, FormatBackend] = {}
    for name, (module, cls) in BUILTINS.items():
        found[name] = getattr(importlib.import_module(module), cls)()
    for ep in entry_points(group="rdstd.formats"):
        if ep.name in found:
            continue
        backend_cls = ep.load()
        found[ep.name] = backend_cls()
    return found


def get_backend(name: str) -> FormatBackend:
    """The backend called ``name``."""
    available = backends()
    if name not in available:
        raise UsageError(f"unknown format {name!r}", hint=f"choose one of: {', '.join(sorted(available))}")
    return available[name]


def detect(path: Path) -> FormatBackend:
    """The backend that recognises ``path`` (specific formats first)."""
    if not path.exists():
        raise SourceNotFoundError(f"{path}: no such file or directory", hint="check the path")
    for backend in sorted(backends().values(), key=lambda b: (b.priority, b.name)):
        if backend.detect(path):
            return backend
    raise UnknownFormatError(
        f"{path}: not a dataset any rdstd backend recognises ({', '.join(sorted(backends()))})",
        hint="pass --source-format to name it, or check that the path is the dataset's root folder",
    )
