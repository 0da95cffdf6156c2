"""The canonical dataset on disk: streaming writer (atomic shards), random-access reader, stats."""

from rdstd.store.reader import Dataset, EpisodeData, LazyImages, read_manifest
from rdstd.store.writer import DatasetWriter

__all__ = ["Dataset", "DatasetWriter", "EpisodeData", "LazyImages", "read_manifest"]
