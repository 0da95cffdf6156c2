"""The ``rdstd`` command: a thin typer app. Commands live one per module in :mod:`rdstd.cli.commands`.

Adding a command is a one-file change: a module in ``rdstd/cli/commands/`` with a ``register(app)`` function.
Errors are mapped to one-line messages and exit codes here, in one place (0 ok, 1 findings or failed episodes,
2 usage, 3 environment or source, 130 interrupted, 143 terminated); tracebacks of rdstd's own errors only with
``--debug``, while an internal error (a bug to report) always prints its traceback, to stderr. With
``--format json`` every error, usage errors included, is one JSON object on stderr
(``{"error": {"code", "situation", "message", "hint"}}``) with the same exit code.

The shared options ``--format``, ``--quiet`` and ``--debug`` are accepted anywhere on the line (before or after the
command, as in ruff and uv): :func:`lift_shared_options` moves them where typer expects them. Usage lines name
arguments in capitals (``rdstd info [OPTIONS] PATH``), and ``--install-completion`` installs shell completion.

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
from dataclasses import dataclass, field
from functools import cache
from types import FrameType
from typing import Any

import typer
import typer.core
import typer.main

from rdstd.cli import commands
from rdstd.cli.output import GLOBAL, GlobalOptions, error_json
from rdstd.errors import RdstdError, UsageError


class _Interrupt(BaseException):  # a BaseException: click would turn a KeyboardInterrupt into exit 130
    """An interrupt (Ctrl-C or SIGTERM) inside a command, carried out of click with the original."""

    def __init__(self, original: KeyboardInterrupt) -> None:
        super().__init__()
        self.original = original


class Command(typer.core.TyperCommand):
    """A command whose usage line names its arguments in capitals (``PATH``, ``[WHICH]``), as click and most
    CLIs do, and whose interrupts reach :func:`main` intact."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, typer.core.TyperArgument) and param.metavar is None and param.name:
                param.metavar = param.name.upper()

    def collect_usage_pieces(self, ctx: Any) -> list[str]:  # typer's own click Context (private module)
        """``[OPTIONS] PATH [WHICH]``: required arguments bare, optional ones in brackets."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.params:
            if isinstance(param, typer.core.TyperArgument):
                name = param.metavar or (param.name or "").upper()
                name = name if param.required else f"[{name}]"
                pieces.append(f"{name}..." if param.nargs != 1 else name)
        return pieces

    def invoke(self, ctx: Any) -> Any:
        """Run the command; an interrupt leaves as :class:`_Interrupt` so that its kind (Ctrl-C or SIGTERM)
        decides the exit code."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise _Interrupt(exc) from exc


app = typer.Typer(
    name="rdstd",
    help="Make robot-learning data from any lab into one canonical, self-describing dataset.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

#: The shared options: flags (any of their spellings) and the one that takes a value.
_FLAGS = {"--debug": "debug", "--quiet": "quiet", "-q": "quiet"}
_FORMAT = "--format"


class Terminated(KeyboardInterrupt):
    """The process got SIGTERM; raised in the main thread so that everything unwinds and cleans up."""


#: Set when SIGTERM came during :func:`main` (typer turns an interrupt outside a command into exit 130 silently).
_SIGTERM_CAME = threading.Event()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the cleanup
    _SIGTERM_CAME.set()
    raise Terminated


def _print_version(value: bool) -> None:
    if value:
        from rdstd import __version__

        print(f"rdstd {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors (accepted anywhere on the line)."),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="No plan, notes or progress on stderr; results and errors still print (anywhere)."
    ),
    output_format: str = typer.Option(
        "text", _FORMAT, help="text or json; also accepted after the command, where some take more (anywhere)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print rdstd's version and exit."
    ),
) -> None:
    """Make robot-learning data from any lab into one canonical, self-describing dataset."""
    if output_format not in {"text", "json"}:
        raise UsageError(
            f"--format {output_format!r} is not known for this command",
            hint="choose text or json",
            situation="format-unknown",
        )


def _register_commands() -> None:
    for module in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"{commands.__name__}.{module.name}").register(app)
    for info in app.registered_commands:
        if info.cls in (None, typer.core.TyperCommand):  # a command with its own class keeps it
            info.cls = Command


_register_commands()


@cache
def _click_app() -> typer.core.TyperGroup:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    return group


@dataclass
class _Line:
    """A command line with the shared options taken out of it."""

    args: list[str]
    options: GlobalOptions = field(default_factory=GlobalOptions)
    format_given: bool = False


def lift_shared_options(args: list[str]) -> list[str]:
    """``args`` with ``--debug``, ``--quiet``/``-q`` and ``--format X`` moved where typer expects them: flags
    before the command; ``--format`` right after the command when the command has a ``--format`` of its own
    (``rdstd validate --format sarif``), else before it. Also sets :data:`rdstd.cli.output.GLOBAL`."""
    line = _split(args)
    GLOBAL.format, GLOBAL.quiet, GLOBAL.debug = line.options.format, line.options.quiet, line.options.debug
    head = [flag for flag, on in (("--debug", line.options.debug), ("--quiet", line.options.quiet)) if on]
    rest = line.args
    if not line.format_given:
        return [*head, *rest]
    given = [_FORMAT, line.options.format]
    position = _command_position(rest)
    if position is None:
        return [*head, *given, *rest]
    command = _click_app().commands.get(rest[position])
    if command is not None and any(_FORMAT in p.opts for p in command.params):
        return [*head, *rest[: position + 1], *given, *rest[position + 1 :]]
    return [*head, *given, *rest]


def _split(args: list[str]) -> _Line:
    line = _Line(args=[])
    tokens = iter(enumerate(args))
    for i, token in tokens:
        if token == "--":
            line.args.extend(args[i:])
            break
        if token in _FLAGS:
            setattr(line.options, _FLAGS[token], True)
        elif token == _FORMAT and i + 1 < len(args):
            line.options.format, line.format_given = args[i + 1], True
            next(tokens)
        elif token.startswith(f"{_FORMAT}="):
            line.options.format, line.format_given = token.split("=", 1)[1], True
        else:
            line.args.append(token)
    return line


def _command_position(args: list[str]) -> int | None:
    """Where the command name is: the first word that is not a root option."""
    for i, token in enumerate(args):
        if not token.startswith("-"):
            return i
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns (and, as a script, exits with) the exit code."""
    args = sys.argv[1:] if argv is None else argv
    in_main = threading.current_thread() is threading.main_thread()
    _SIGTERM_CAME.clear()
    from rdstd.store.output import finished_outputs

    finished_before = len(finished_outputs())
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    try:
        return _run(args, argv, finished_before)
    except KeyboardInterrupt as exc:  # it landed between the handler's install and _run's own try
        return _interrupted(exc, argv, finished_before)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args: list[str], argv: list[str] | None, finished_before: int) -> int:
    try:
        args = lift_shared_options(args)
        code = _click_app().main(args=args, prog_name="rdstd", standalone_mode=False)
    except _Interrupt as exc:
        return _interrupted(exc.original, argv, finished_before)
    except typer.TyperException as exc:  # a usage error found by the parser: a bad option, a missing argument
        _print_usage_error(exc)
        return _exit(exc.exit_code, argv)
    except typer.Abort:
        return _interrupted(KeyboardInterrupt(), argv, finished_before)
    except RdstdError as exc:
        if GLOBAL.debug:
            traceback.print_exc()
        _print_error(exc)
        return _exit(exc.exit_code, argv)
    except KeyboardInterrupt as exc:
        return _interrupted(exc, argv, finished_before)
    except Exception as exc:  # the boundary: a bug in rdstd, shown in full so it can be reported
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}"
        hint = "a bug in rdstd: please report it with the traceback"
        if GLOBAL.format == "json":
            print(error_json("RD900", "internal", message, hint), file=sys.stderr)
        else:
            print(f"rdstd: internal error: {message} ({hint})", file=sys.stderr)
        return _exit(3, argv)
    if code == 130:  # typer's own exit for an interrupt outside any command (parsing the line, closing up)
        return _interrupted(Terminated() if _SIGTERM_CAME.is_set() else KeyboardInterrupt(), argv, finished_before)
    return _exit(code if isinstance(code, int) else 0, argv)


def _print_error(exc: RdstdError) -> None:
    if GLOBAL.format == "json":
        d = exc.as_dict()
        print(error_json(d["code"], d["situation"], d["message"], d["hint"]), file=sys.stderr)
    else:
        print(f"rdstd: error: {exc.one_line()}", file=sys.stderr)


def _print_usage_error(exc: typer.TyperException) -> None:
    """Text: what the parser prints (usage line, a pointer to --help, the error); JSON: one object."""
    where = str(getattr(getattr(exc, "ctx", None), "command_path", "rdstd"))
    hint = f"see `{where} --help`"
    json_format = GLOBAL.format == "json"
    if type(exc).__name__ == "NoArgsIsHelpError":  # ``rdstd`` or ``rdstd info`` alone: the help itself
        if json_format:
            print(error_json(UsageError.code, "arguments-missing", f"{where} needs arguments", hint), file=sys.stderr)
        else:
            print(exc.format_message(), file=sys.stderr)
    elif json_format:
        print(error_json(UsageError.code, "cli-usage", exc.format_message(), hint), file=sys.stderr)
    else:
        show = getattr(exc, "show", None)
        show() if callable(show) else print(f"rdstd: error: {exc.format_message()}", file=sys.stderr)


def _interrupted(exc: KeyboardInterrupt, argv: list[str] | None, finished_before: int) -> int:
    """Exit 143 after SIGTERM, 130 after Ctrl-C; by now every ``with`` block has cleaned up, and an output the
    interrupt caught before its ``with`` block began is removed here. What the run finished before the signal
    (outputs in place) and what it kept (a batch's units) is said."""
    from rdstd.store.output import abandon_unfinished, finished_note, finished_outputs

    abandon_unfinished()
    notes = list(getattr(exc, "__notes__", ()))
    notes += [n for n in map(finished_note, finished_outputs()[finished_before:]) if n not in notes]
    left = "; ".join(notes) or "nothing of this run was left behind"
    if isinstance(exc, Terminated):
        print(f"rdstd: terminated (SIGTERM); {left}", file=sys.stderr)
        return _exit(143, argv)
    print(f"rdstd: interrupted; {left}", file=sys.stderr)
    return _exit(130, argv)


def _exit(code: int, argv: list[str] | None) -> int:
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
