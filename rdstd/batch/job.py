"""A batch conversion job as it is staged on disk: the plan every worker and every resumed run follows.

The job lives in the staging folder beside OUT (``.OUT.rdstd-batch/``): ``job.json`` (source, spec, options,
work units), ``units/unit-NNNNN/`` (each unit's complete canonical dataset, renamed into place by the writer) and
``journal/unit-NNNNN.json`` (written last, atomically, once a unit is complete: its report and partial stats).
A unit is finished exactly when its journal entry exists.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdstd.errors import UsageError
from rdstd.formats.base import EpisodeRef, WorkUnit
from rdstd.io import atomic
from rdstd.schema.manifest import Provenance
from rdstd.schema.spec import ConverterSpec
from rdstd.schema.vocabulary import ImageCodec

STAGING_MARK = ".rdstd-batch"
JOB = "job.json"
UNITS_DIR = "units"
JOURNAL_DIR = "journal"


def staging_path(out: Path) -> Path:
    """The staging folder of a batch conversion into ``out`` (a hidden sibling: same file system)."""
    return out.parent / f".{out.name}{STAGING_MARK}"


@dataclass
class Job:
    """Everything a worker needs to convert one unit, and what the final assembly writes into the manifest."""

    source: str
    output: str
    format_name: str | None
    spec: ConverterSpec
    provenance: Provenance
    units: list[WorkUnit]
    images: ImageCodec | None = None
    drop_unmapped: bool = False
    rate_hz: float | None = None
    row_group_frames: int = 8
    salvage: bool = False
    on_error: str = "fail"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def staging(self) -> Path:
        """The staging folder."""
        return staging_path(Path(self.output))

    def unit_dir(self, index: int) -> Path:
        """Where unit ``index`` writes its dataset."""
        return self.staging / UNITS_DIR / f"unit-{index:05d}"

    def journal_entry(self, index: int) -> Path:
        """The journal entry of unit ``index`` (present once it is finished)."""
        return self.staging / JOURNAL_DIR / f"unit-{index:05d}.json"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (``job.json``)."""
        return {
            "source": self.source,
            "output": self.output,
            "format_name": self.format_name,
            "spec": self.spec.model_dump(mode="json"),
            "provenance": self.provenance.model_dump(mode="json"),
            "units": [
                {"index": u.index, "name": u.name, "refs": [[r.index, r.key, r.path, r.length] for r in u.refs]}
                for u in self.units
            ],
            "images": self.images.value if self.images else None,
            "drop_unmapped": self.drop_unmapped,
            "rate_hz": self.rate_hz,
            "row_group_frames": self.row_group_frames,
            "salvage": self.salvage,
            "on_error": self.on_error,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        """The job :meth:`to_json` wrote."""
        units = [WorkUnit(u["index"], u["name"], tuple(EpisodeRef(*ref) for ref in u["refs"])) for u in data["units"]]
        return cls(
            source=data["source"],
            output=data["output"],
            format_name=data["format_name"],
            spec=ConverterSpec.model_validate(data["spec"]),
            provenance=Provenance.model_validate(data["provenance"]),
            units=units,
            images=ImageCodec(data["images"]) if data["images"] else None,
            drop_unmapped=data["drop_unmapped"],
            rate_hz=data["rate_hz"],
            row_group_frames=data["row_group_frames"],
            salvage=data["salvage"],
            on_error=data["on_error"],
            extra=data["extra"],
        )

    def fingerprint(self) -> str:
        """What must match for a resumed run to reuse finished units: everything but the time and the error policy."""
        data = self.to_json()
        data["provenance"].pop("created_utc", None)
        data.pop("on_error")
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def stage(job: Job, *, resume: bool) -> list[int]:
    """Prepare the staging folder for ``job``; returns the units already finished (only with ``resume``).

    Without ``resume`` a previous run's staging is removed. With it, the staged job must be the same job (same
    source, spec, options and units), else the run is refused: mixing units of two jobs would corrupt the output.
    """
    staging = job.staging
    fingerprint = job.fingerprint()
    if staging.exists() and not resume:
        shutil.rmtree(staging)
    if resume and (staging / JOB).exists():
        try:
            previous = json.loads((staging / JOB).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"{staging / JOB}: the staged job cannot be read ({exc})",
                hint="run again without --resume to start over",
            ) from exc
        if previous.get("fingerprint") != fingerprint:
            raise UsageError(
                f"{job.output}: the staged job in {staging} was started with other options, spec or episodes",
                hint="resume with the same command line, or run without --resume to start over",
            )
        return [u.index for u in job.units if job.journal_entry(u.index).exists()]
    (staging / UNITS_DIR).mkdir(parents=True, exist_ok=True)
    (staging / JOURNAL_DIR).mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(staging / JOB, json.dumps(job.to_json() | {"fingerprint": fingerprint}).encode())
    return []


def load_job(out: Path) -> Job:
    """The job staged for output ``out`` (for a SLURM array task)."""
    path = staging_path(out) / JOB
    try:
        return Job.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise UsageError(
            f"{path}: no batch job is staged for {out}",
            hint="stage it first: rdstd convert SRC OUT --executor slurm",
        ) from exc
