"""The registry of format backends: every one, built-in or third-party, comes from the ``rdstd.formats`` entry-point
group and is loaded by name, on first use (never at ``import rdstd``).

rdstd's own backends are declared in its ``pyproject.toml`` exactly as a plugin declares its own; :data:`BUILTINS`
repeats them so that a source checkout without installed metadata finds them too. Asking for one backend by name
(:func:`get_backend`) imports that backend only; detection and ``rdstd formats`` load them all. A backend whose
import or construction fails does not break the others: it is recorded (:func:`load_failures`), named by
``rdstd formats``, raised as :class:`~rdstd.errors.PluginError` when asked for by name, and mentioned when no backend
recognises a path. A plugin with the name of a built-in does not replace it: the built-in is kept and the plugin is
recorded as shadowed, so the name always means the same reader.
"""

from __future__ import annotations

import errno
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from rdstd.errors import PluginError, SourceError, SourceNotFoundError, UnknownFormatError, UsageError
from rdstd.formats.base import FormatBackend
from rdstd.formats.sniff import sniff, unreadable, unreadable_inside
from rdstd.lfs import raise_if_pointer

#: rdstd's own backends, as its ``rdstd.formats`` entry points declare them (name -> ``module:Class``).
BUILTINS: dict[str, str] = {
    "zarr": "rdstd.formats.zarr:ZarrReplayBufferBackend",
    "rlds": "rdstd.formats.rlds:RldsBackend",
    "lerobot": "rdstd.formats.lerobot:LeRobotBackend",
    "hdf5": "rdstd.formats.hdf5:Hdf5Backend",
    "rosbag": "rdstd.formats.rosbag:RosbagBackend",
}
ENTRY_POINT_GROUP = "rdstd.formats"
#: Sub-folders looked at for a dataset when a folder is not one itself.
_CHILDREN_CHECKED = 50


@dataclass(frozen=True)
class BackendEntry:
    """One backend name and where it comes from: ``builtin`` or the distribution of a plugin."""

    name: str
    origin: str
    backend: FormatBackend | None = None
    #: Why the plugin could not be used (empty when it loaded).
    problem: str = ""


@dataclass
class _Slot:
    """A declared backend, loaded the first time it is asked for."""

    name: str
    origin: str
    target: str = ""
    entry_point: EntryPoint | None = None
    problem: str = ""
    loaded: BackendEntry | None = field(default=None, repr=False)

    def entry(self) -> BackendEntry:
        if self.loaded is None:
            self.loaded = self._load()
        return self.loaded

    def _load(self) -> BackendEntry:
        """Import and construct the backend; a failure is recorded with its cause, not raised."""
        if self.problem:
            return BackendEntry(self.name, self.origin, problem=self.problem)
        try:
            factory = self.entry_point.load() if self.entry_point is not None else _import(self.target)
            backend = factory()
        except Exception as exc:  # a backend's import is code outside the registry: any failure is recorded
            return BackendEntry(
                self.name, self.origin, problem=f"{self.target} failed to load: {type(exc).__name__}: {exc}"
            )
        if not isinstance(backend, FormatBackend):
            return BackendEntry(
                self.name, self.origin, problem=f"{self.target} is not an rdstd.formats.base.FormatBackend"
            )
        return BackendEntry(self.name, self.origin, backend)


def _import(target: str) -> Callable[[], object]:
    module, _, attr = target.partition(":")
    factory: Callable[[], object] = getattr(importlib.import_module(module), attr)
    return factory


@cache
def _registry() -> dict[str, _Slot]:
    """Every declared backend by name (nothing imported yet): the built-ins first, then the plugins."""
    found: dict[str, _Slot] = {name: _Slot(name, "builtin", target) for name, target in BUILTINS.items()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if BUILTINS.get(ep.name) == ep.value or (ep.dist is not None and ep.dist.name == "rdstd"):
            continue  # rdstd's own declaration of a built-in (BUILTINS says the same, and is what is used)
        origin = _origin(ep)
        if ep.name in found:
            if found[ep.name].origin != origin:
                key = f"{ep.name} ({origin})"
                found[key] = _Slot(
                    ep.name, origin, ep.value, problem=f"shadowed by the {found[ep.name].origin} backend"
                )
            continue
        found[ep.name] = _Slot(ep.name, origin, ep.value, ep)
    return found


def _origin(ep: EntryPoint) -> str:
    dist = ep.dist
    return f"plugin {dist.name} {dist.version}" if dist is not None else f"plugin {ep.value}"


def register(backend: FormatBackend, *, origin: str = "registered in code") -> None:
    """Make ``backend`` available under its name in this process (tests, notebooks); entry points are the
    way to ship one. A name already taken is a :class:`UsageError`."""
    registry = _registry()
    if backend.name in registry:
        raise UsageError(
            f"a format called {backend.name!r} is already registered",
            hint="choose another name",
            situation="format-name-taken",
        )
    slot = _Slot(backend.name, origin)
    slot.loaded = BackendEntry(backend.name, origin, backend)
    registry[backend.name] = slot


def unregister(name: str) -> None:
    """Remove a backend added with :func:`register` (built-ins and plugins come back with :func:`reload`)."""
    _registry().pop(name, None)


def reload() -> None:
    """Forget the loaded backends, so newly installed plugins are found on next use."""
    _registry.cache_clear()


def entries() -> list[BackendEntry]:
    """Every backend, usable or not, in detection order (what ``rdstd formats`` lists); loads them all."""
    loaded = [slot.entry() for slot in _registry().values()]
    usable = [e for e in loaded if e.backend is not None]
    broken = [e for e in loaded if e.backend is None]
    return sorted(usable, key=lambda e: (_priority(e), e.name)) + broken


def _priority(entry: BackendEntry) -> int:
    return entry.backend.priority if entry.backend is not None else 1 << 30


def backends() -> dict[str, FormatBackend]:
    """Every usable backend by name (built-ins and the plugins that loaded)."""
    return {e.name: e.backend for e in entries() if e.backend is not None}


def load_failures() -> list[BackendEntry]:
    """Backends that are installed but cannot be used, with the reason."""
    return [e for e in (slot.entry() for slot in _registry().values()) if e.backend is None]


def get_backend(name: str) -> FormatBackend:
    """The backend called ``name``; only that one is imported."""
    slot = _registry().get(name)
    if slot is not None and slot.entry().backend is not None:
        backend = slot.entry().backend
        assert backend is not None
        return backend
    available = backends()
    for failed in load_failures():
        if failed.name == name:
            raise PluginError(
                f"format plugin {name!r} ({failed.origin}): {failed.problem}",
                hint=f"fix or reinstall the package that provides it; formats available: {', '.join(available)}",
                situation="plugin-unloadable",
            )
    raise UsageError(
        f"unknown format {name!r}", hint=f"choose one of: {', '.join(sorted(available))}", situation="format-unknown"
    )


def require_exists(path: Path) -> None:
    """:class:`SourceNotFoundError` when ``path`` does not exist (before any backend sees it)."""
    if not path.exists():
        hint = "check the path"
        if path.parent.is_dir():
            near = sorted(p.name for p in path.parent.iterdir() if p.name.lower().startswith(path.name[:3].lower()))
            hint = f"check the path; {path.parent} holds: {', '.join(near[:5])}" if near else hint
        raise SourceNotFoundError(f"{path}: no such file or directory", hint=hint, situation="path-not-found")


def detect(path: Path) -> FormatBackend:
    """The backend that recognises ``path`` (specific formats first).

    When none does, the error says what the path looks like (a Git LFS pointer, a format rdstd does not read yet, a
    file inside a dataset instead of its folder, an archive) or, failing that, which formats were tried.
    """
    require_exists(path)
    denied = unreadable(path)
    if denied is not None:
        raise _permission_error(path, denied)
    for backend in backends().values():
        try:
            claimed = backend.detect(path)
        except PermissionError as exc:  # the contract says detect() does not raise; a plugin may still
            raise _permission_error(path, exc) from exc
        if claimed:
            return backend
    if path.is_file():  # a pointer left by a clone without `git lfs pull` claims no backend (the real file would)
        raise_if_pointer(path, path.parent)
    looks_like = sniff(path)
    if looks_like is not None:
        raise UnknownFormatError(looks_like.message(path), hint=looks_like.hint, situation="format-not-read-yet")
    below = _datasets_below(path)
    if below:
        shown = ", ".join(f"{p} ({name})" for p, name in below[:3])
        raise UnknownFormatError(
            f"{path}: not a dataset itself, but the folder holds {len(below)} dataset(s): {shown}",
            hint=f"pass the dataset's own folder, e.g. {below[0][0]}",
            situation="dataset-folder-below",
        )
    locked = unreadable_inside(path)
    if locked is not None:
        raise _permission_error(path, PermissionError(errno.EACCES, "Permission denied", str(locked)))
    broken = "".join(f"; plugin {e.name!r} could not be loaded ({e.problem})" for e in load_failures())
    raise UnknownFormatError(
        f"{path}: not a dataset any rdstd backend recognises (tried {', '.join(backends())}){broken}",
        hint="check that the path is the dataset's root folder, or name the format with --source-format "
        "(see `rdstd formats`)",
        situation="not-a-dataset",
    )


def _datasets_below(path: Path) -> list[tuple[Path, str]]:
    """Sub-folders (one level down, a bounded number) that a backend recognises, with the backend's name."""
    if not path.is_dir():
        return []
    found: list[tuple[Path, str]] = []
    children = sorted(p for p in path.iterdir() if p.is_dir())[:_CHILDREN_CHECKED]
    for child in children:
        for backend in backends().values():
            if backend.detect(child):
                found.append((child, backend.name))
                break
    return found


def _permission_error(path: Path, exc: OSError) -> SourceError:
    where = exc.filename or path
    reason = "permission denied" if exc.errno in {errno.EACCES, errno.EPERM} else (exc.strerror or str(exc))
    return SourceError(
        f"cannot read {where}: {reason}", hint=f"check its permissions (ls -ld {where})", situation="permission-denied"
    )
