"""Moved to :mod:`rdstd.testing.rosbag` (the demo and plugin authors use the generators); the tests import
them from here as before."""

from rdstd.testing.rosbag import *  # noqa: F403
from rdstd.testing.rosbag import _stores  # noqa: F401
