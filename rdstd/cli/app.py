"""The ``rdstd`` command: a thin typer app. Commands live one per module in :mod:`rdstd.cli.commands`.

Adding a command is a one-file change: a module in ``rdstd/cli/commands/`` with a ``register(app)`` function.
Errors are mapped to one-line messages and exit codes here, in one place (0 ok, 1 findings or failed episodes,
2 usage, 3 environment or source, 130 interrupted, 143 terminated); tracebacks of rdstd's own errors only with
``--debug``, while an internal error (a bug to report) always prints its traceback, to stderr.

SIGTERM (what SLURM, Kubernetes and ``kill`` send) is handled like Ctrl-C: it becomes :class:`Terminated`, a
``KeyboardInterrupt``, in the main thread, so every ``with`` block aborts and removes what the run made.
"""

from __future__ import annotations

import importlib
import pkgutil
import signal
import sys
import threading
import traceback
from types import FrameType

import typer

from rdstd.cli import commands
from rdstd.errors import RdstdError

app = typer.Typer(
    name="rdstd",
    help="Make robot-learning data from any lab into one canonical, self-describing dataset.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_STATE = {"debug": False}


class Terminated(KeyboardInterrupt):
    """The process got SIGTERM; raised in the main thread so that everything unwinds and cleans up."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the cleanup
    raise Terminated


def _print_version(value: bool) -> None:
    if value:
        from rdstd import __version__

        print(f"rdstd {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors (accepted anywhere on the line)."),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print rdstd's version and exit."
    ),
) -> None:
    _STATE["debug"] = debug


def _register_commands() -> None:
    for module in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"{commands.__name__}.{module.name}").register(app)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns (and, as a script, exits with) the exit code."""
    args = sys.argv[1:] if argv is None else argv
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    try:
        return _run(args, argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args: list[str], argv: list[str] | None) -> int:
    debug = "--debug" in args
    if debug:  # a shared option: accepted before or after the command, given to the app once, first
        args = ["--debug", *(a for a in args if a != "--debug")]
    try:
        app(args=args, prog_name="rdstd")  # typer exits through SystemExit, usage errors with code 2
    except SystemExit as exc:
        interrupt = _interrupt_behind(exc)  # typer turns an interrupt into SystemExit(130)
        if interrupt is not None:
            return _interrupted(interrupt, argv)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        return _exit(code, argv)
    except RdstdError as exc:
        if debug:
            traceback.print_exc()
        print(f"rdstd: error: {exc.one_line()}", file=sys.stderr)
        return _exit(exc.exit_code, argv)
    except KeyboardInterrupt as exc:
        return _interrupted(exc, argv)
    except Exception as exc:  # the boundary: a bug in rdstd, shown in full so it can be reported
        traceback.print_exc()
        print(
            f"rdstd: internal error: {type(exc).__name__}: {exc} (a bug in rdstd: please report it with the traceback)",
            file=sys.stderr,
        )
        return _exit(3, argv)
    return _exit(0, argv)


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The interrupt (Ctrl-C or SIGTERM) that ``exc`` was raised while handling, if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _interrupted(exc: KeyboardInterrupt, argv: list[str] | None) -> int:
    """Exit 143 after SIGTERM, 130 after Ctrl-C; by now every ``with`` block has cleaned up."""
    if isinstance(exc, Terminated):
        print("rdstd: terminated (SIGTERM); nothing of this run was left behind", file=sys.stderr)
        return _exit(143, argv)
    print("rdstd: interrupted; nothing of this run was left behind", file=sys.stderr)
    return _exit(130, argv)


def _exit(code: int, argv: list[str] | None) -> int:
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
