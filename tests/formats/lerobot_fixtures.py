"""Moved to :mod:`rdstd.testing.lerobot` (the demo and plugin authors use the generators); the tests import
them from here as before."""

from rdstd.testing.lerobot import *  # noqa: F403
