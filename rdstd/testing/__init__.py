"""Test support shipped with rdstd: fixture generators and the backend contract suite (:mod:`rdstd.testing.contract`)."""
