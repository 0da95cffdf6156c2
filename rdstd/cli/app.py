"""The ``rdstd`` command: a thin typer app. Commands live one per module in :mod:`rdstd.cli.commands`.

Adding a command is a one-file change: a module in ``rdstd/cli/commands/`` with a ``register(app)`` function.
Errors are mapped to one-line messages and exit codes here, in one place (0 ok, 1 findings or failed episodes,
2 usage, 3 environment or source); tracebacks only with ``--debug``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import traceback

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


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors.")) -> None:
    _STATE["debug"] = debug


def _register_commands() -> None:
    for module in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"{commands.__name__}.{module.name}").register(app)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns (and, as a script, exits with) the exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        app(args=args, prog_name="rdstd")  # typer exits through SystemExit, usage errors with code 2
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        return _exit(code, argv)
    except RdstdError as exc:
        if debug:
            traceback.print_exc()
        print(f"rdstd: error: {exc.one_line()}", file=sys.stderr)
        return _exit(exc.exit_code, argv)
    except KeyboardInterrupt:
        print("rdstd: interrupted", file=sys.stderr)
        return _exit(130, argv)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        print(
            f"rdstd: internal error: {type(exc).__name__}: {exc} (re-run with --debug for the traceback and report it)",
            file=sys.stderr,
        )
        return _exit(3, argv)
    return _exit(0, argv)


def _exit(code: int, argv: list[str] | None) -> int:
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
