"""The error taxonomy. Every error rdstd raises is an :class:`RdstdError` with a stable code, a situation and a
hint.

The codes are a fixed list (:data:`ERROR_CODES`); under each code, every raise site names its *situation*, a
kebab-case word for what happened (``output-not-empty``, ``spec-key-missing``), so that ``docs/errors.md`` can say
what to do about each one under its own anchor (:attr:`RdstdError.doc`). A test keeps the codes, the situations
raised in the code and the documentation in step. The CLI maps the classes to exit codes in one place
(:mod:`rdstd.cli.app`).
"""

from __future__ import annotations

import re
from typing import ClassVar

#: Where the situations are explained; every one-line error ends with a pointer into it.
ERRORS_DOC = "docs/errors.md"
#: What a situation looks like (a test holds every raise site to it).
SITUATION_PATTERN = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


def default_situation(cls: type[RdstdError]) -> str:
    """The situation of an error raised without one: its class name in kebab case (``CorruptSourceError`` ->
    ``corrupt-source``)."""
    name = cls.__name__.removesuffix("Error") or "rdstd"
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


class RdstdError(Exception):
    """Root of every error rdstd raises on purpose.

    ``message`` says what went wrong and where (a file, a record); ``hint`` says what to do next; ``situation``
    (kebab case) names the case under the class's code, documented under :attr:`anchor` in ``docs/errors.md``.
    """

    code: ClassVar[str] = "RD000"
    exit_code: ClassVar[int] = 3

    def __init__(self, message: str, *, hint: str = "", situation: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.situation = situation or default_situation(type(self))

    @property
    def anchor(self) -> str:
        """The situation's anchor in ``docs/errors.md`` (``rd404-video-missing``)."""
        return f"{self.code.lower()}-{self.situation}"

    @property
    def doc(self) -> str:
        """Where this situation is explained: ``docs/errors.md#<anchor>``."""
        return f"{ERRORS_DOC}#{self.anchor}"

    def one_line(self) -> str:
        """The error as one line: code, message, the next step when there is one, and where it is explained."""
        text = f"[{self.code}] {self.message}"
        if self.hint:
            text = f"{text} ({self.hint})"
        return f"{text} [see {self.doc}]"

    def as_dict(self) -> dict[str, str]:
        """The error as JSON-ready data: code, situation, message and hint (the hint ends with the doc pointer)."""
        hint = f"{self.hint}; see {self.doc}" if self.hint else f"see {self.doc}"
        return {"code": self.code, "situation": self.situation, "message": self.message, "hint": hint}


class UsageError(RdstdError):
    """The call itself is wrong: a bad option, an output that exists, an unknown spec name."""

    code = "RD100"
    exit_code = 2


class MappingError(RdstdError):
    """A converter spec does not fit the source: a missing key, a wrong dimension count, a bad unit."""

    code = "RD200"
    exit_code = 2


class MissingDependencyError(RdstdError):
    """A backend needs an optional dependency that is not installed; the hint names the extra."""

    code = "RD300"
    exit_code = 3

    def __init__(self, module: str, extra: str, *, purpose: str = "") -> None:
        why = f" to {purpose}" if purpose else ""
        super().__init__(
            f"the Python package {module!r} is needed{why} but is not installed",
            hint=f"install it with: pip install 'rdstd[{extra}]'",
            situation="extra-not-installed",
        )
        self.module = module
        self.extra = extra


class PluginError(RdstdError):
    """An installed format plugin (``rdstd.formats`` entry point) cannot be loaded; the message names it."""

    code = "RD310"
    exit_code = 3


class SourceError(RdstdError):
    """A source cannot be read: not found, unknown format, unsupported version, corrupt file."""

    code = "RD400"
    exit_code = 3


class SourceNotFoundError(SourceError):
    """The path does not exist."""

    code = "RD401"


class UnknownFormatError(SourceError):
    """No format backend recognises the path."""

    code = "RD402"


class UnsupportedVersionError(SourceError):
    """The format is known but this version of it is not."""

    code = "RD403"


class CorruptSourceError(SourceError):
    """A file is truncated, fails a checksum, or does not decode."""

    code = "RD404"


class LfsPointerError(CorruptSourceError):
    """A Git LFS pointer stands where the real file should be (a clone without ``git lfs pull``)."""

    code = "RD405"


class SchemaError(RdstdError):
    """A canonical dataset is invalid: a corrupt manifest, an unknown schema version, a missing shard."""

    code = "RD500"
    exit_code = 3


class IncompleteDatasetError(SchemaError):
    """A canonical dataset whose write did not finish (no manifest, or a writer still holds it)."""

    code = "RD501"


class EpisodeError(RdstdError):
    """One episode failed; with ``--on-error skip`` it is listed and the others go on."""

    code = "RD600"
    exit_code = 1


# -- the store: outputs and canonical data on disk ------------------------------------------------------------


class CorruptDatasetError(SchemaError):
    """Bytes of a canonical dataset are damaged: a page checksum fails, a stored image does not decode."""

    code = "RD502"


class OutputError(RdstdError):
    """The output cannot be written: disk full, quota, no permission, read-only file system."""

    code = "RD700"
    exit_code = 3


class OutputLockedError(OutputError):
    """Another rdstd process is writing the same output right now (its lock file names it)."""

    code = "RD701"


class InternalError(RdstdError):
    """A fault in rdstd or in a backend (a bug, not bad data): the run stops; ``--debug`` shows the cause."""

    code = "RD900"
    exit_code = 3


class MergeConflictError(UsageError):
    """Datasets to merge disagree on what a feature means (units, frames, rotations, grippers); the report names
    each dimension and the fix."""

    code = "RD110"
    #: The whole report (``rdstd.ops.merge.MergeReport``) when raised by a merge, for the CLI to print.
    report: object | None = None


def _all_subclasses(cls: type[RdstdError]) -> list[type[RdstdError]]:
    found: list[type[RdstdError]] = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_subclasses(sub))
    return found


#: Every error code and the class that carries it.
ERROR_CODES: dict[str, type[RdstdError]] = {c.code: c for c in _all_subclasses(RdstdError)}
