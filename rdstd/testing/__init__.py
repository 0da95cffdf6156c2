"""Test support shipped with rdstd: fixture generators and the backend contract suite.

See :mod:`rdstd.testing.fixtures` and :mod:`rdstd.testing.contract`.
"""
