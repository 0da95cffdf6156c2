"""Exporters from a canonical rdstd dataset to other formats (LeRobot v3.0 and v2.1)."""
