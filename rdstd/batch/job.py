"""A batch conversion job as it is staged on disk: the plan every worker and every resumed run follows.

The job lives in the staging folder beside OUT (``.OUT.rdstd-batch/``): ``job.json`` (source, spec, options,
work units), ``units/unit-NNNNN/`` (each unit's complete canonical dataset, renamed into place by the writer) and
``journal/unit-NNNNN.json`` (written last, atomically, once a unit is complete: its report and partial stats).
A unit is finished exactly when its journal entry exists.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdstd.batch.place import Place
from rdstd.errors import UsageError
from rdstd.formats.base import EpisodeRef, WorkUnit
from rdstd.io.remote import is_url
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


def staging_location(out: str) -> str:
    """The staging folder of ``out``, a local path or a URL (then a hidden sibling prefix in the same bucket)."""
    if is_url(out):
        parent, _, name = out.rstrip("/").rpartition("/")
        return f"{parent}/.{name}{STAGING_MARK}"
    return str(staging_path(Path(out)))


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
    #: Whether the user named the spec: only then does its ``source:`` block configure the source in the workers
    #: (a spec matched by its keys is not applied to the source, as in a conversion in one process, so a bag's
    #: own ``<bag>.rdstd.yaml`` plan is kept whatever the worker count).
    spec_named: bool = False

    @property
    def staging(self) -> Place:
        """The staging folder (local, or in object storage beside a remote output)."""
        return Place(staging_location(self.output))

    @staticmethod
    def unit_rel(index: int) -> str:
        """Where unit ``index``'s dataset is, in the staging folder."""
        return f"{UNITS_DIR}/unit-{index:05d}"

    @staticmethod
    def journal_rel(index: int) -> str:
        """The journal entry of unit ``index`` in the staging folder (present once the unit is finished)."""
        return f"{JOURNAL_DIR}/unit-{index:05d}.json"

    @staticmethod
    def stats_rel(index: int) -> str:
        """Unit ``index``'s statistics (:func:`rdstd.store.stats.partials_to_bytes`), written before its entry."""
        return f"{JOURNAL_DIR}/unit-{index:05d}.stats.npz"

    def planned_start(self, index: int) -> tuple[int, int] | None:
        """The dataset-wide numbers (episode, frame) unit ``index``'s first episode gets if every unit before it
        converts every episode at the length the source states; ``None`` when a length is not stated (RLDS, ROS).
        A unit written so numbered is placed by a link instead of a rewrite; one whose place turns out otherwise
        (a skipped episode, a length that changed) is still renumbered by the assembly."""
        return self._planned_starts.get(index)

    @functools.cached_property
    def _planned_starts(self) -> dict[int, tuple[int, int]]:
        """:meth:`planned_start` of every unit that has one (worked out once per job object)."""
        starts: dict[int, tuple[int, int]] = {}
        episodes = frames = 0
        for unit in self.units:
            starts[unit.index] = (episodes, frames)
            if any(ref.length is None for ref in unit.refs):
                break
            episodes += len(unit.refs)
            frames += sum(ref.length or 0 for ref in unit.refs)
        return starts

    def read_entry(self, index: int) -> dict[str, Any]:
        """Unit ``index``'s journal entry."""
        data: dict[str, Any] = json.loads(self.staging.read_bytes(self.journal_rel(index)))
        return data

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
            "spec_named": self.spec_named,
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
            spec_named=bool(data.get("spec_named", False)),
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
    if not resume:
        staging.remove()
    elif staging.exists(JOB):
        try:
            previous = json.loads(staging.read_bytes(JOB))
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"{staging.url(JOB)}: the staged job cannot be read ({exc})",
                hint="run again without --resume to start over",
                situation="staged-job-unreadable",
            ) from exc
        if previous.get("fingerprint") != fingerprint:
            raise UsageError(
                f"{job.output}: the staged job in {staging} was started with other options, spec or episodes",
                hint="resume with the same command line, or run without --resume to start over",
                situation="staged-job-differs",
            )
        return [u.index for u in job.units if staging.exists(job.journal_rel(u.index))]
    if not staging.remote:
        for folder in (UNITS_DIR, JOURNAL_DIR):
            staging.path(folder).mkdir(parents=True, exist_ok=True)
    staging.write_bytes(JOB, json.dumps(job.to_json() | {"fingerprint": fingerprint}).encode())
    return []


def load_job(out: str) -> Job:
    """The job staged for output ``out`` (for a SLURM array task)."""
    staging = Place(staging_location(out))
    try:
        return Job.from_json(json.loads(staging.read_bytes(JOB)))
    except FileNotFoundError as exc:
        raise UsageError(
            f"{staging.url(JOB)}: no batch job is staged for {out}",
            hint="stage it first: rdstd convert SRC OUT --executor slurm",
            situation="staged-job-missing",
        ) from exc
