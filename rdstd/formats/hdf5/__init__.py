"""HDF5 robot datasets with h5py: flavor detection with evidence, lazy per-step reads, nothing dropped silently.

Flavors (:mod:`.detect`): robomimic, LIBERO, MimicGen, Isaac Lab (recorder and Mimic), robosuite raw,
ALOHA/ACT, RoboMIND, DROID raw, RoboHive traces, flat one-episode files (D4RL-style) and stacked arrays.
A folder of files is one dataset. Per-step datasets are read on demand (:mod:`.frames`); episode-level values
and long attributes are kept (:mod:`.episode`); links, virtual datasets and filters are checked (:mod:`.h5`).
The backend is :mod:`.reader`; ``docs/formats/hdf5.md`` documents the rules.
"""

from rdstd.formats.hdf5.detect import Detection, classify
from rdstd.formats.hdf5.reader import Hdf5Backend, Hdf5Source

__all__ = ["Detection", "Hdf5Backend", "Hdf5Source", "classify"]
