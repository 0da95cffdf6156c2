"""``rdstd validate``: the dataset linter. Checks units, frames, timing, rotations, grippers and action
semantics against the data, and reports every finding in one run (text, JSON, JUnit, SARIF, GitHub, Markdown).

Use :func:`validate` from Python; checks plug in through the ``rdstd.checks`` entry point
(:mod:`rdstd.validate.check` has the contract).
"""

from __future__ import annotations

from pathlib import Path

from rdstd.validate.config import Config, load
from rdstd.validate.model import Evidence, Finding, Report, Severity

__all__ = ["Config", "Evidence", "Finding", "Report", "Severity", "configure", "validate"]


def validate(
    path: str | Path,
    *,
    profile: str = "default",
    select: list[str] | None = None,
    ignore: list[str] | None = None,
    format_name: str | None = None,
    spec: str | None = None,
    rate_hz: float | None = None,
    config: Config | None = None,
) -> Report:
    """Validate the canonical dataset or source at ``path`` with a profile (``default``, ``strict``, ``oxe``,
    ``training`` or a YAML path) and the configuration files found for it (see :func:`configure`), then
    ``select``/``ignore`` (check ids or prefixes) on top; or with ``config`` as given. A source is converted into a
    temporary folder first (``format_name``, ``spec`` and ``rate_hz`` as for ``rdstd convert``)."""
    from rdstd.paths import normalized
    from rdstd.store import layout
    from rdstd.validate.runner import validate_path

    root = normalized(path)
    if config is None:
        config = configure(root, profile=profile, select=select, ignore=ignore)
    if layout.is_dataset(root) and format_name is None:
        return validate_path(root, config)
    from rdstd.validate.source import validate_source

    return validate_source(root, config, format_name=format_name, spec=spec, rate_hz=rate_hz)


def configure(
    path: str | Path, *, profile: str = "default", select: list[str] | None = None, ignore: list[str] | None = None
) -> Config:
    """The configuration for ``path``: the profile, the pyproject.toml and rdstd-validate.yaml layers, then
    ``select`` (replaces the selection) and ``ignore`` (adds to it)."""
    config = load(profile, Path(path))
    if select:
        config = config.model_copy(update={"select": select})
    if ignore:
        config = config.model_copy(update={"ignore": [*config.ignore, *ignore]})
    return config
