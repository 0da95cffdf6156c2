"""Batch conversion: a source cut into work units, converted in parallel (a process pool, Ray, or SLURM array
tasks), journaled so a killed run resumes, and assembled into one canonical dataset identical whatever the
executor or the number of workers (see ``docs/batch.md``)."""

from rdstd.batch.run import ExecutorName, convert_batch

__all__ = ["ExecutorName", "convert_batch"]
