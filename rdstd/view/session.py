"""Where recordings go: .rrd files (one per episode, written aside and renamed), the web viewer on 127.0.0.1, or
the native viewer when there is a display."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import rerun as rr
import rerun.blueprint as rrb

from rdstd.errors import UsageError
from rdstd.io.atomic import commit
from rdstd.validate.model import Finding
from rdstd.view.episodes import ViewSource
from rdstd.view.record import Side, file_name, record

#: The memory the viewer (or the web viewer's gRPC server) may use unless told otherwise.
DEFAULT_MEMORY_LIMIT = "2GiB"


@dataclass
class Written:
    """What :func:`save` wrote, and what it could not pair (``--compare``)."""

    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _sides(
    view: ViewSource,
    index: int,
    findings: Sequence[Finding],
    compare: ViewSource | None,
    compare_findings: Sequence[Finding],
    notes: list[str],
) -> list[Side]:
    episode = view.episode(index)
    if compare is None:
        return [Side("", view.facts, episode, findings)]
    other = compare.find(episode.meta.episode_id)
    if other is None:
        notes.append(
            f"episode {index} ({episode.meta.episode_id}): {compare.facts.location} has no episode with this id, "
            "shown alone"
        )
        return [Side("a", view.facts, episode, findings)]
    return [Side("a", view.facts, episode, findings), Side("b", compare.facts, other, compare_findings)]


def write_rrd(sides: Sequence[Side], file: Path) -> Path:
    """Log ``sides`` into ``file``: written under a temporary name beside it, renamed when complete."""
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.stem}.tmp-{os.getpid()}.rrd")

    def to_file(rec: rr.RecordingStream, layout: rrb.Blueprint) -> None:
        rec.save(tmp, default_blueprint=layout)

    try:
        rec = record(sides, to_file)
        rec.disconnect()  # closes the file sink and writes the footer
        commit(tmp, file)
    finally:
        tmp.unlink(missing_ok=True)
    return file


def save(
    view: ViewSource,
    indices: Sequence[int],
    out: Path,
    *,
    findings: Sequence[Finding] = (),
    compare: ViewSource | None = None,
    compare_findings: Sequence[Finding] = (),
    progress: Callable[[Path], None] | None = None,
) -> Written:
    """One .rrd per episode: ``out`` itself when it ends in ``.rrd`` and one episode is asked for, else files named
    ``<dataset>_episode_NNNNNN.rrd`` in the folder ``out``."""
    single = out.suffix == ".rrd"
    if single and len(indices) != 1:
        raise UsageError(
            f"{out}: one .rrd file holds one episode, and {len(indices)} were asked for",
            hint="pass a folder to --save to write one .rrd per episode",
            situation="rrd-holds-one-episode",
        )
    written = Written()
    for index in indices:
        sides = _sides(view, index, findings, compare, compare_findings, written.notes)
        target = out if single else out / file_name(view.facts, index)
        written.files.append(write_rrd(sides, target))
        if progress is not None:
            progress(target)
    return written


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def has_display() -> bool:
    """Whether a native window can open: macOS and Windows always, elsewhere when X11 or Wayland is there."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def rerun_command(*args: str) -> list[str]:
    """The bundled ``rerun`` executable (the SDK's), run with ``args``."""
    return [sys.executable, "-m", "rerun_cli", *args]


@dataclass
class Served:
    """A running web viewer: its page, its gRPC address, and the process (stop with :meth:`stop`)."""

    url: str
    grpc_url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Stop the server (see :func:`stop`)."""
        stop(self.process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a viewer or server started here, and the ``rerun`` binary its launcher started: both are in the process
    group of its own session (``start_new_session``), and only that group is signalled."""
    if process.poll() is None or _group_alive(process.pid):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                continue
            deadline = time.monotonic() + 10
            while _group_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not _group_alive(process.pid):
                return


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def serve(files: Sequence[Path], *, memory_limit: str = DEFAULT_MEMORY_LIMIT, wait_s: float = 30.0) -> Served:
    """Serve ``files`` to the bundled web viewer, bound to 127.0.0.1 on free ports, with the gRPC server's memory
    limited to ``memory_limit``; returns once the page answers."""
    grpc_port, web_port = free_port(), free_port()
    args = [str(f) for f in files]
    args += ["--serve-web", "--bind", "127.0.0.1", "--port", str(grpc_port), "--web-viewer-port", str(web_port)]
    args += ["--server-memory-limit", memory_limit]
    env = os.environ | {"RERUN_ANALYTICS": "false"}
    process = subprocess.Popen(
        rerun_command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True
    )
    grpc_url = f"rerun+http://127.0.0.1:{grpc_port}/proxy"
    from urllib.parse import quote

    url = f"http://127.0.0.1:{web_port}/?url={quote(grpc_url, safe='')}"
    served = Served(url, grpc_url, process)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace").strip() if process.stderr else ""
            raise UsageError(
                f"the Rerun web viewer stopped at start (exit {process.returncode}): {err.splitlines()[-1:] or ''}",
                hint="save the recordings with --save OUT and open them with: rerun OUT",
                situation="viewer-exited",
            )
        try:
            with socket.create_connection(("127.0.0.1", web_port), timeout=0.5):
                return served
        except OSError:
            time.sleep(0.2)
    served.stop()
    raise UsageError(
        f"the Rerun web viewer did not answer on 127.0.0.1:{web_port} within {wait_s:.0f} s",
        hint="save the recordings with --save OUT and open them with: rerun OUT",
        situation="viewer-not-answering",
    )


def spawn(files: Sequence[Path], *, memory_limit: str = DEFAULT_MEMORY_LIMIT) -> subprocess.Popen[bytes]:
    """Open ``files`` in the native viewer (a new one, on a free port) with an explicit memory limit; end it with
    :func:`stop`."""
    args = [*(str(f) for f in files), "--memory-limit", memory_limit, "--port", str(free_port())]
    return subprocess.Popen(rerun_command(*args), start_new_session=True)


@contextmanager
def scratch() -> Iterator[Path]:
    """A temporary folder for recordings that are only served or shown (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="rdstd-view-") as tmp:
        yield Path(tmp)
