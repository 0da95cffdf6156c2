"""The clock of a dataset: whether frame times were measured (by which clock) or synthesized from a rate."""

from __future__ import annotations

from pydantic import Field

from rdstd.schema.features import StrictModel
from rdstd.schema.vocabulary import ClockKind


class Clock(StrictModel):
    """Where the ``timestamp`` column came from.

    ``measured``: times recorded with the data (``source`` names the clock, e.g. ``source_timestamps`` for a
    backend's own per-frame times, ``header_stamp`` or ``log_time`` for ROS, ``key:<source key>`` for a spec's
    timestamp key). ``synthesized``: frame ``i`` is at ``i / rate_hz`` from a declared rate. rdstd's convert
    never resamples; ``resampling`` says what the source did before, as far as the spec states it.
    """

    kind: ClockKind = Field(default=ClockKind.UNKNOWN, description="measured, synthesized, or unknown")
    source: str = Field(
        default="unknown",
        description="for measured times: the clock (source_timestamps, header_stamp, log_time, key:<name>)",
    )
    rate_hz: float | None = Field(default=None, gt=0, description="for synthesized times: the rate used")
    resampling: str = Field(
        default="unknown",
        description="resampling the frames went through before rdstd ('none' when stated so); rdstd never resamples",
    )
    description: str = ""
