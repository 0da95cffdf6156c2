"""Outputs that are built aside, renamed into place, locked, and never destructive.

Every writer of a folder (the canonical :class:`~rdstd.store.DatasetWriter`, the LeRobot export, merge and
split) goes through :class:`Output`:

- the whole output is written into a hidden temporary sibling of OUT (``.OUT.rdstd-tmp-<pid>``: same parent,
  so the final rename is atomic) and renamed into place only by :meth:`Output.commit`;
- an existing OUT is replaced only when it is an output of the kind being written (the caller's predicate) and
  the caller said ``overwrite``; it is swapped with the new one in one ``renameat2(RENAME_EXCHANGE)`` where the
  kernel has it (else two renames, which a rerun recovers from), then removed; until then it is untouched, so a
  failed overwrite leaves it byte for byte;
- an OUT that overlaps a source (equal, inside, or containing it), a plain file, a symbolic link, or a folder of
  something else is refused;
- ``.OUT.rdstd-lock`` next to OUT guards it: an exclusive ``flock`` held for the whole write (the kernel releases
  it when the process dies, however it dies) and, inside, the owner's pid, host, start time and command. A second
  writer is refused naming the first; a lock left by a dead writer is named and taken over, and the leftovers of
  that run (its temporary sibling; an old OUT set aside mid-swap is put back) are removed first;
- ``ENOSPC``/``EDQUOT``/``EACCES``/``EPERM``/``EROFS`` become :class:`~rdstd.errors.OutputError` naming the path
  (:meth:`Output.guard`, :func:`output_error`), and :meth:`Output.abort` leaves nothing behind;
- Ctrl-C and SIGTERM can land between any two steps: they are held back (:func:`~rdstd.io.interrupts.held_interrupts`)
  while the lock is taken and recorded and while a finished output is swapped in and its lock released, and every
  output not yet finished is listed, so that :func:`abandon_unfinished` (which the CLI calls on an interrupt, and
  which runs at interpreter exit) removes what an interrupt landing anywhere else left.

A lock file is used (not a lock on OUT itself) because OUT is replaced by the rename.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime as dt
import errno
import fcntl
import json
import os
import shutil
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from rdstd.errors import OutputLockedError, UsageError
from rdstd.io.atomic import fsync_dir
from rdstd.io.interrupts import held_interrupts
from rdstd.io.write_errors import output_error

LOCK_SUFFIX = ".rdstd-lock"
TEMP_MARK = ".rdstd-tmp-"
OLD_MARK = ".rdstd-old-"


def lock_path(final: Path) -> Path:
    """The lock file guarding output ``final``."""
    return final.parent / f".{final.name}{LOCK_SUFFIX}"


def temp_path(final: Path, pid: int | None = None) -> Path:
    """The hidden sibling an output is built in by process ``pid`` (default: this one)."""
    return final.parent / f".{final.name}{TEMP_MARK}{os.getpid() if pid is None else pid}"


def _old_path(final: Path, pid: int) -> Path:
    return final.parent / f".{final.name}{OLD_MARK}{pid}"


@dataclass(frozen=True)
class LockInfo:
    """Who holds (or held) an output's lock."""

    pid: int
    host: str
    started_utc: str
    command: str

    def describe(self) -> str:
        """``pid 123 on host, since 2026-…`` plus the command, for messages."""
        return f"pid {self.pid} on {self.host}, since {self.started_utc} ({self.command})"

    def alive(self) -> bool | None:
        """Whether the owner still runs (None when it ran on another host: unknowable from here)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def read_lock(final: Path) -> LockInfo | None:
    """The owner named in ``final``'s lock file, or None when there is no (readable) lock file."""
    try:
        raw = json.loads(lock_path(final).read_text(encoding="utf-8"))
        return LockInfo(int(raw["pid"]), str(raw["host"]), str(raw["started_utc"]), str(raw["command"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_state(final: Path) -> tuple[str, str] | None:
    """For readers: (why, what to do) when ``final`` cannot be read now, else None.

    Either a writer holds its lock right now, or a write into it died before the output was complete.
    """
    final = _absolute(final)
    owner = read_lock(final)
    alive = owner.alive() if owner is not None else False
    if owner is not None and alive:
        return f"another process is writing it right now ({owner.describe()})", "wait for that process to finish"
    if owner is not None and alive is None and not final.exists():  # another host: running or died, unknowable
        return (
            f"a write into it has not finished: {owner.describe()} is still running or died",
            "if that process is gone, run the same command again: the leftover is replaced",
        )
    if not final.exists() and (owner is not None or _leftovers(final, TEMP_MARK)):
        who = f" ({owner.describe()})" if owner else ""
        return (
            f"its write did not finish: the writer died{who} before the output was complete",
            "run the same command again: the leftover is recognised and replaced, no --overwrite needed",
        )
    return None


def _absolute(path: Path) -> Path:
    """``path`` made absolute and normalised (``..`` folded), symbolic links left as they are."""
    return Path(os.path.normpath(Path(path).absolute()))


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def check_overlap(final: Path, sources: Sequence[Path]) -> None:
    """Refuse an output equal to, inside, or containing any source (normalised and resolved paths both)."""
    out_abs = _absolute(final)
    out_real = final.resolve()
    for source in sources:
        if _overlaps(out_abs, _absolute(Path(source))) or _overlaps(out_real, Path(source).resolve()):
            beside = Path(source).parent / f"{Path(source).name}-rdstd"
            raise UsageError(
                f"{final}: the output overlaps the source {source}; rdstd never writes into (or over) a source",
                hint=f"choose an output folder outside the source and not containing it, e.g. {beside}",
                situation="output-overlaps-source",
            )


def _leftovers(final: Path, mark: str) -> list[Path]:
    prefix = f".{final.name}{mark}"
    try:
        return sorted(p for p in final.parent.iterdir() if p.name.startswith(prefix))
    except OSError:
        return []


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` atomically (``renameat2(RENAME_EXCHANGE)``); False where the kernel or libc lacks it."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _fsync_tree(root: Path) -> None:
    """fsync every folder under ``root`` (files are fsynced by whoever wrote them)."""
    for folder, _, _ in os.walk(root):
        fsync_dir(Path(folder))


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Output:
    """One output folder being written: build in :attr:`tmp`, then :meth:`commit` (or :meth:`abort`).

    Use :meth:`begin`; as a context manager, a clean exit commits and an exception aborts.
    """

    def __init__(self, final: Path, tmp: Path, lock_fd: int, recovered: LockInfo | None, kind: str) -> None:
        self.final = final
        #: The folder to write everything into.
        self.tmp = tmp
        #: The owner of a lock left by a writer that died, whose leftovers were removed (None when there was none).
        self.recovered = recovered
        self.kind = kind
        self._is_kind: Callable[[Path], bool] = lambda _: False
        self._lock_fd: int | None = lock_fd
        self._made_parents: list[Path] = []
        self.done = False
        self._pid = os.getpid()
        _UNFINISHED.add(self)

    @classmethod
    def begin(
        cls,
        final: Path,
        *,
        is_kind: Callable[[Path], bool],
        kind: str,
        overwrite: bool = False,
        sources: Sequence[Path] = (),
        command: str | None = None,
    ) -> Output:
        """Check ``final``, take its lock, clear a dead run's leftovers, and create the temporary sibling.

        ``is_kind(path)`` says whether an existing folder is an output of the kind being written (only such a
        folder, or an empty one, is ever replaced; the former only with ``overwrite``); ``kind`` names it in
        messages; ``sources`` are the inputs the output must not overlap; ``command`` goes into the lock file
        (default: this process's command line).
        """
        final = _absolute(final)
        check_overlap(final, sources)
        if final.is_symlink():
            raise UsageError(
                f"{final}: the output is a symbolic link",
                hint="give the real path of the output",
                situation="output-is-symlink",
            )
        made = [p for p in [final.parent, *final.parent.parents] if not p.exists()]
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            owner = LockInfo(os.getpid(), socket.gethostname(), _utc_now(), command or " ".join(sys.argv))
            with held_interrupts():  # the lock taken is always an Output's, listed for abandon_unfinished
                lock_fd, previous = _acquire(final, owner)
                output = cls(final, temp_path(final), lock_fd, previous, kind)
        except OSError as exc:
            _remove_empty(made)
            error = output_error(exc, final)
            if error is None:
                raise
            raise error from exc
        output._is_kind = is_kind
        output._made_parents = made
        try:
            if previous is not None or _leftovers(final, TEMP_MARK) or _leftovers(final, OLD_MARK):
                output._clear_leftovers()
            output._check_existing(overwrite)
            output.tmp.mkdir()
        except OSError as exc:
            output._release()
            _remove_empty(made)
            error = output_error(exc, final)
            if error is None:
                raise
            raise error from exc
        except BaseException:
            output._release()
            _remove_empty(made)
            raise
        return output

    # -- checks ------------------------------------------------------------------------------------------------

    def _check_existing(self, overwrite: bool) -> None:
        final = self.final
        if not final.exists():
            return
        if not final.is_dir():
            raise UsageError(
                f"{final}: exists and is not a folder",
                hint="choose another output path",
                situation="output-not-a-folder",
            )
        if not any(final.iterdir()):
            return  # an empty folder is replaced
        if not self._is_kind(final):
            raise UsageError(
                f"{final}: exists and is not a {self.kind}; rdstd will not replace it",
                hint="choose a new output path (or move that folder away yourself)",
                situation="output-not-replaceable",
            )
        if not overwrite:
            raise UsageError(
                f"{final}: a {self.kind} is already there",
                hint="choose a new path, or pass --overwrite to replace it (it stays until the new one is complete)",
                situation="output-not-empty",
            )

    def _clear_leftovers(self) -> None:
        """Remove what a dead run left: its temporary sibling; an old OUT it set aside mid-swap is put back."""
        for old in _leftovers(self.final, OLD_MARK):
            if not self.final.exists():
                old.rename(self.final)
            else:
                _remove(old)
        for tmp in _leftovers(self.final, TEMP_MARK):
            _remove(tmp)

    # -- finishing ---------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Translate disk-full, quota, permission and read-only errors raised inside into :class:`OutputError`."""
        try:
            yield
        except OSError as exc:
            error = output_error(exc, self.final)
            if error is None:
                raise
            raise error from exc

    def commit(self) -> Path:
        """Move the finished output into place (swapping out a replaced one, then removing it); returns OUT."""
        if self.done or self._lock_fd is None:
            raise UsageError(f"{self.final}: the output is already finished", situation="output-finished")
        try:
            with self.guard():
                _fsync_tree(self.tmp)
        except BaseException:
            self.abort()
            raise
        # From the swap to the lock's release an interrupt waits: it must not land between the new output going
        # into place and `done` saying so, nor leave the replaced output half removed or the lock behind.
        with held_interrupts(note=self._finished_note):
            try:
                with self.guard():
                    self._check_existing(overwrite=True)  # nobody put something else there meanwhile
                    replaced: Path | None = None
                    if self.final.exists():
                        replaced = self._swap()
                    else:
                        self.tmp.rename(self.final)
            except BaseException:
                self.abort()
                raise
            self.done = True  # the new output is in place: from here on nothing undoes it
            _FINISHED.append(self.final)
            try:
                with self.guard():
                    fsync_dir(self.final.parent)
            finally:
                if replaced is not None:
                    _remove(replaced)
                self._release()
        return self.final

    def _finished_note(self) -> str | None:
        return finished_note(self.final) if self.done else None

    def _swap(self) -> Path:
        """Put the new output in place of the old one; returns where the old one now is (to be removed)."""
        if _exchange(self.tmp, self.final):
            return self.tmp
        old = _old_path(self.final, os.getpid())
        self.final.rename(old)  # a death between these two renames is undone by the next run (_clear_leftovers)
        try:
            self.tmp.rename(self.final)
        except BaseException:
            old.rename(self.final)
            raise
        return old

    def abort(self) -> None:
        """Remove the temporary sibling and release the lock; OUT is as it was before. A no-op once committed or
        aborted; an abort cut short by a second interrupt can be called again (:func:`abandon_unfinished` does)."""
        if self.done or self._lock_fd is None:
            return
        _remove(self.tmp)
        self._release()
        _remove_empty(self._made_parents)

    def _release(self) -> None:
        if self._lock_fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            lock_path(self.final).unlink()  # unlinked while still locked: see _acquire
        os.close(self._lock_fd)
        self._lock_fd = None
        _UNFINISHED.discard(self)

    def __enter__(self) -> Output:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


#: The outputs of this process still holding their lock (neither committed nor aborted).
_UNFINISHED: set[Output] = set()
#: Every output this process put into place, in order.
_FINISHED: list[Path] = []


def finished_outputs() -> list[Path]:
    """The outputs this process has put into place so far, in order (a caller keeps how many there were before
    its own work, to tell which are its own)."""
    return list(_FINISHED)


def finished_note(final: Path) -> str:
    """What to say of output ``final`` when an interrupt comes after it was put into place."""
    return f"{final} was complete before the signal came and is in place"


def abandon_unfinished() -> list[Path]:
    """Abort every output this process began and neither committed nor aborted; returns their OUT paths.

    The ``with`` blocks around an output abort it on any exception, but an interrupt can land before one is
    entered (between taking the lock and the ``try``); the CLI calls this when it stops on an interrupt, and it
    runs at interpreter exit. Outputs inherited by a forked child are its parent's, never touched here.
    """
    left = [o for o in _UNFINISHED if o._pid == os.getpid()]
    for output in left:
        output.abort()
    return [o.final for o in left]


atexit.register(abandon_unfinished)


def _remove_empty(folders: list[Path]) -> None:
    """Remove folders this run created (innermost first) while they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _acquire(final: Path, owner: LockInfo) -> tuple[int, LockInfo | None]:
    """Take the lock of ``final``: returns the locked descriptor and the previous (dead) owner, if any."""
    path = lock_path(final)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = read_lock(final)
            who = holder.describe() if holder else "an rdstd process that is just starting"
            raise OutputLockedError(
                f"{final}: another rdstd process is writing this output: {who}",
                hint=f"wait for it to finish or stop it; its lock is {path}",
                situation="output-locked",
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # The holder before us may have unlinked the file between our open and our flock: lock the file at the path.
        mine = os.fstat(fd)
        try:
            current = path.stat()
        except FileNotFoundError:
            current = None
        if current is None or (current.st_ino, current.st_dev) != (mine.st_ino, mine.st_dev):
            os.close(fd)
            continue
        previous = read_lock(final) if mine.st_size else None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(owner)).encode(), 0)
        os.fsync(fd)
        return fd, previous
