"""``--executor slurm``: an ``sbatch --array`` script over the staged work units, and the final assembly.

SLURM is the engine: each array task runs one unit (``rdstd convert SRC OUT --run-unit $SLURM_ARRAY_TASK_ID``,
which reads the staged ``job.json``), and a job that depends on the whole array (``afterok``) runs the final
assembly (the same convert command with ``--resume``: every unit is then found finished in the journal).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from rdstd.batch.job import Job
from rdstd.io import atomic

SLURM_DIR = "slurm"
ARRAY_SCRIPT = "units.sbatch"
SUBMIT_SCRIPT = "submit.sh"


def write_slurm(job: Job, assemble_command: str, *, python: str | None = None, parallel: int | None = None) -> Path:
    """Write the array script and ``submit.sh`` (which submits it, then the assembly after it); returns submit.sh.

    They go into the staging folder's ``slurm/`` (for an output in object storage: ``./<OUT name>.rdstd-slurm/``).

    ``parallel`` caps how many array tasks run at once (``--array=0-N%P``); ``python`` is the interpreter the
    nodes run (default: this one).
    """
    staging = job.staging
    name = job.output.rstrip("/").rsplit("/", 1)[-1]
    folder = Path.cwd() / f"{name}.rdstd-slurm" if staging.remote else staging.path(SLURM_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    q = shlex.quote
    interpreter = python or sys.executable
    last = len(job.units) - 1
    cap = f"%{parallel}" if parallel else ""
    unit = f'{q(interpreter)} -m rdstd convert {q(job.source)} {q(job.output)} --run-unit "$SLURM_ARRAY_TASK_ID"'
    array = "\n".join(
        [
            "#!/bin/bash",
            "#SBATCH --job-name=rdstd-convert",
            f"#SBATCH --array=0-{last}{cap}",
            "#SBATCH --cpus-per-task=1",
            f"#SBATCH --output={folder}/unit-%a.log",
            "# One rdstd work unit per array task; a unit already in the journal is not redone.",
            "set -euo pipefail",
            unit,
            "",
        ]
    )
    array_path = folder / ARRAY_SCRIPT
    atomic.write_bytes(array_path, array.encode())
    submit = "\n".join(
        [
            "#!/bin/bash",
            "# Submit the work units, then the final assembly once every unit succeeded.",
            "set -euo pipefail",
            f"units=$(sbatch --parsable {q(str(array_path))})",
            'sbatch --dependency=afterok:"${units%%;*}" --job-name=rdstd-assemble '
            f"--output={q(str(folder / 'assemble.log'))} --wrap {q(assemble_command)}",
            "",
        ]
    )
    submit_path = folder / SUBMIT_SCRIPT
    atomic.write_bytes(submit_path, submit.encode())
    submit_path.chmod(0o755)
    return submit_path


def assemble_command(argv: list[str]) -> str:
    """The final-assembly command for a convert command line given with ``--executor slurm``: the same options
    with the local executor and ``--resume``."""
    out: list[str] = []
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "--executor":
            skip = i + 1 < len(argv)
            continue
        if arg.startswith("--executor="):
            continue
        out.append(arg)
    return shlex.join([*out, "--executor", "local", "--resume"])
