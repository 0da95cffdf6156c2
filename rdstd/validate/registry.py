"""The registry of checks: the built-ins plus any installed under the ``rdstd.checks`` entry-point group.

An entry point names a :class:`~rdstd.validate.check.Check` subclass (or a module-level list of them); they are
found through an index kept while the installed distributions stay the same (:mod:`rdstd.validate.plugin_index`).
Plugins are imported on first use; one that fails to load, or whose id is taken, is reported
(:attr:`Registry.problems`, listed in the report), never raised, so one broken plugin cannot stop validation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint

from rdstd.validate.check import Check
from rdstd.validate.plugin_index import plugin_entry_points

ENTRY_POINT_GROUP = "rdstd.checks"
#: Check ids: ``RDV`` and three digits (apart from the error codes RD000-RD900), or a plugin's own
#: prefix of capital letters followed by digits (``ACME12``).
ID_PATTERN = re.compile(r"^[A-Z]{2,8}[0-9]{1,4}$")


@dataclass
class Registry:
    """Check classes by id, where each came from, and the plugins that could not be used."""

    checks: dict[str, type[Check]] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, cls: type[Check], origin: str) -> None:
        """Register ``cls``; a malformed or taken id becomes a problem, not an error."""
        ident = getattr(cls, "id", None)
        if not isinstance(ident, str) or not ID_PATTERN.match(ident):
            self.problems.append(f"{origin}: {cls.__name__} has no valid check id ({ident!r})")
            return
        if ident in self.checks:
            self.problems.append(f"{origin}: check id {ident} is taken by {self.origins[ident]}")
            return
        self.checks[ident] = cls
        self.origins[ident] = origin


@cache
def registry() -> Registry:
    """The checks available in this process (built-ins, then plugins), loaded once."""
    from rdstd.validate.checks import BUILTINS

    found = Registry()
    for cls in BUILTINS:
        found.add(cls, "builtin")
    for ep, origin in plugin_entry_points(ENTRY_POINT_GROUP):
        _load(ep, found, origin)
    return found


def _load(ep: EntryPoint, found: Registry, origin: str | None = None) -> None:
    if origin is None:
        origin = f"plugin {ep.dist.name} {ep.dist.version}" if ep.dist is not None else f"plugin {ep.value}"
    try:
        loaded = ep.load()
    except Exception as exc:  # a plugin's import is third-party code: any failure is recorded, with its cause
        found.problems.append(f"{origin}: {ep.value} failed to load: {type(exc).__name__}: {exc}")
        return
    classes = loaded if isinstance(loaded, list | tuple) else [loaded]
    for cls in classes:
        if isinstance(cls, type) and issubclass(cls, Check):
            found.add(cls, origin)
        else:
            found.problems.append(f"{origin}: {ep.value} gives {cls!r}, not an rdstd.validate.check.Check subclass")


def matches(ident: str, patterns: list[str]) -> bool:
    """Whether a check id matches any of ``patterns`` (ids or prefixes, e.g. ``RDV3`` or ``RDV301``)."""
    return any(ident.startswith(p.strip().upper()) for p in patterns if p.strip())
