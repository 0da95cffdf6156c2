"""Conversion: converter specs, canonicalization (units, rotations, grippers, images, time) and the pipeline."""

from rdstd.convert.mapper import EpisodeConverter, resolve_spec
from rdstd.convert.pipeline import ConvertReport, SkippedEpisode, convert, open_source
from rdstd.convert.specs import LoadedSpec, draft_spec, load_spec, match_spec, shipped_specs, spec_to_yaml

__all__ = [
    "ConvertReport",
    "EpisodeConverter",
    "LoadedSpec",
    "SkippedEpisode",
    "convert",
    "draft_spec",
    "load_spec",
    "match_spec",
    "open_source",
    "resolve_spec",
    "shipped_specs",
    "spec_to_yaml",
]
