"""Validation profiles and configuration: which checks run, with which thresholds and severities.

Layers, each over the one before: the profile (``validators/<name>.yaml`` shipped with rdstd, or a YAML path),
then ``[tool.rdstd.validate]`` in a ``pyproject.toml`` in the current directory and then beside the dataset,
then an ``rdstd-validate.yaml`` beside the dataset, then the command line. ``select``/``ignore`` take check ids or
prefixes; ``severity`` and ``params`` are by check id; ``suppress`` entries need a reason and are recorded in
the report with the findings they silenced.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rdstd.errors import UsageError
from rdstd.schema.validation import first_problem
from rdstd.validate.model import Severity, Suppression

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
#: The file beside a dataset that configures its validation.
LOCAL_FILE = "rdstd-validate.yaml"


def profiles_root() -> Path:
    """The folder of shipped profiles: ``rdstd/_validators`` in a wheel, ``validators/`` in a checkout."""
    installed = _PACKAGE_DIR / "_validators"
    return installed if installed.is_dir() else _PACKAGE_DIR.parent / "validators"


def shipped_profiles() -> dict[str, Path]:
    """Every shipped profile by name."""
    return {p.stem: p for p in sorted(profiles_root().glob("*.yaml"))}


class Layer(BaseModel):
    """One layer of configuration, as written in a profile, a pyproject table or rdstd-validate.yaml."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    extends: str | None = Field(default=None, description="a shipped profile this one builds on")
    select: list[str] | None = None
    extend_select: list[str] = Field(default_factory=list, alias="extend-select")
    ignore: list[str] = Field(default_factory=list)
    severity: dict[str, Severity] = Field(default_factory=dict)
    params: dict[str, dict[str, float]] = Field(default_factory=dict)
    pixels: bool | None = None
    fail_on: Severity | str | None = None
    suppress: list[Suppression] = Field(default_factory=list)


class Config(BaseModel):
    """The effective configuration of a run."""

    model_config = ConfigDict(extra="forbid")

    profile: str = "default"
    select: list[str] = Field(default_factory=lambda: ["RDV"])
    ignore: list[str] = Field(default_factory=list)
    severity: dict[str, Severity] = Field(default_factory=dict)
    params: dict[str, dict[str, float]] = Field(default_factory=dict)
    pixels: bool = False
    fail_on: Severity | None = Severity.ERROR
    suppress: list[Suppression] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list, description="the files the configuration was read from")

    def apply(self, layer: Layer, origin: str) -> Config:
        """This configuration with ``layer`` on top."""
        data = self.model_dump()
        if layer.select is not None:
            data["select"] = list(layer.select)
        data["select"] = [*data["select"], *layer.extend_select]
        data["ignore"] = [*data["ignore"], *layer.ignore]
        data["severity"] = {**data["severity"], **layer.severity}
        params = {k: dict(v) for k, v in data["params"].items()}
        for ident, values in layer.params.items():
            params[ident] = {**params.get(ident, {}), **values}
        data["params"] = params
        if layer.pixels is not None:
            data["pixels"] = layer.pixels
        if layer.fail_on is not None:
            data["fail_on"] = parse_fail_on(str(layer.fail_on), origin)
        data["suppress"] = [*self.suppress, *(s.model_copy(update={"origin": origin}) for s in layer.suppress)]
        data["sources"] = [*self.sources, origin]
        return Config.model_validate(data)


def parse_fail_on(value: str, origin: str = "--fail-on") -> Severity | None:
    """``error``/``warning``/``info`` as a severity, ``never`` as None; anything else is a usage error."""
    if value == "never":
        return None
    try:
        return Severity(value)
    except ValueError:
        raise UsageError(
            f"{origin}: fail_on {value!r} is not error, warning, info or never", situation="fail-on-unknown"
        ) from None


def _layer(data: Any, origin: str) -> Layer:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(
            f"{origin}: validation settings must be a mapping",
            hint="see docs/validate.md",
            situation="settings-not-a-mapping",
        )
    try:
        return Layer.model_validate(data)
    except ValidationError as exc:
        where, problem = first_problem(exc)
        raise UsageError(
            f"{origin}: invalid validation settings at {where}: {problem}", situation="settings-invalid"
        ) from exc


def _read_yaml(path: Path) -> Layer:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(
            f"{path}: cannot read the profile ({exc.strerror or exc})", situation="profile-unreadable"
        ) from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML ({exc})", situation="profile-not-yaml") from exc
    return _layer(data, str(path))


def _profile(name: str, config: Config, seen: tuple[str, ...] = ()) -> Config:
    shipped = shipped_profiles()
    if name in shipped:
        path = shipped[name]
    else:
        path = Path(name)
        if not path.is_file():
            raise UsageError(
                f"no validation profile {name!r}",
                hint=f"use one of {', '.join(shipped)} or a path to a YAML file",
                situation="profile-unknown",
            )
    if name in seen:
        raise UsageError(
            f"{path}: profiles extend each other in a loop ({' -> '.join((*seen, name))})", situation="profile-loop"
        )
    layer = _read_yaml(path)
    if layer.extends:
        config = _profile(layer.extends, config, (*seen, name))
    return config.apply(layer, str(path))


def _pyproject(path: Path) -> Layer | None:
    if not path.is_file():
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(
            f"{path}: cannot read [tool.rdstd.validate] ({exc})", situation="pyproject-unreadable"
        ) from exc
    table = data.get("tool", {}).get("rdstd", {}).get("validate")
    return None if table is None else _layer(table, f"{path} [tool.rdstd.validate]")


def load(profile: str, dataset: Path, *, cwd: Path | None = None) -> Config:
    """The configuration for validating ``dataset`` with ``profile`` (before command-line options)."""
    config = _profile(profile, Config(profile=Path(profile).stem))
    here = (cwd or Path.cwd()).resolve()
    beside = (dataset.parent if dataset.is_file() else dataset).resolve()
    places = [here / "pyproject.toml"]
    if beside != here:
        places.append(beside / "pyproject.toml")
    for place in places:
        layer = _pyproject(place)
        if layer is not None:
            config = config.apply(layer, f"{place} [tool.rdstd.validate]")
    local = beside / LOCAL_FILE
    if local.is_file():
        config = config.apply(_read_yaml(local), str(local))
    return config
