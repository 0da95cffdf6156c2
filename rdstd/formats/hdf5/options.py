"""What a converter spec's ``source:`` block may say about an HDF5 source (validated here; see docs/formats/hdf5.md).

::

    source:
      episodes: {split_after: [terminals, timeouts]}   # D4RL: one flat array of steps, an episode ends after a
                                                        # step where any of these is true
      # or: episodes: {ends: data/episode_ends}         # exclusive end rows, as replay buffers write
      shift: {action: 1}   # the dataset logs at step t the command of step t-1: action[t] is read from row t+1,
                           # and the episode loses its last step (whose command was not logged)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, ValidationError, model_validator

from rdstd.errors import MappingError
from rdstd.schema.features import StrictModel
from rdstd.schema.validation import first_problem


class EpisodeLayout(StrictModel):
    """Where the episodes of a file of concatenated steps begin and end (give exactly one way)."""

    split_after: list[str] | None = Field(
        default=None, min_length=1, description="per-step flag datasets: an episode ends after a step where any is true"
    )
    ends: str | None = Field(default=None, description="a dataset of exclusive episode end rows")

    @model_validator(mode="after")
    def _one(self) -> EpisodeLayout:
        if (self.split_after is None) == (self.ends is None):
            raise ValueError("give either split_after (flag datasets) or ends (an end-row dataset)")
        return self


class Hdf5Options(StrictModel):
    """The HDF5 backend's ``source:`` options."""

    episodes: EpisodeLayout | None = None
    shift: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict,
        description="per-step key -> k: step t takes the key's row t+k (a dataset that logs the previous command); "
        "the episode loses its last k steps",
    )


def parse_options(options: Mapping[str, Any], origin: str) -> Hdf5Options:
    """Validate a ``source:`` block; errors name the spec and the field."""
    try:
        return Hdf5Options.model_validate(dict(options))
    except ValidationError as exc:
        where, problem = first_problem(exc)
        raise MappingError(
            f"{origin}: source: invalid HDF5 options at {where}: {problem}",
            hint="see docs/formats/hdf5.md (episodes: split_after or ends; shift: {key: steps})",
            situation="source-options-invalid",
        ) from exc
