"""Canonical → canonical: merge, split, filter and resample datasets (nothing decoded, every change recorded)."""
