"""Moved to :mod:`rdstd.testing.hdf5` (the demo and plugin authors use the generators); the tests import
them from here as before."""

from rdstd.testing.hdf5 import *  # noqa: F403
