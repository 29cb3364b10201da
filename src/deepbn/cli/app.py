"""The ``deepbn`` Typer app: command registration and error handling.

User mistakes (:class:`~deepbn.errors.DeepBNError`) print one line and exit
with status 2, as does a file that cannot be read or written; Ctrl-C exits 130 and
SIGTERM 143, each after one line saying how to resume, never with a traceback.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

import typer
from rich.text import Text

from deepbn import __version__
from deepbn.cli.common import console, enable_compilation_cache
from deepbn.cli.demo import demo
from deepbn.cli.discover import discover
from deepbn.cli.fit import fit
from deepbn.cli.posterior import posterior
from deepbn.cli.sample import sample
from deepbn.cli.siren import app as siren_app
from deepbn.cli.sweep import sweep
from deepbn.cli.vae import app as vae_app
from deepbn.errors import DeepBNError

INTERRUPTED = 130
TERMINATED = 143  # 128 + SIGTERM
RESUME_HINT = "interrupted; run the same command again to resume from the last checkpoint"

app = typer.Typer(
    name="deepbn",
    help="Bayesian networks with continuous variables and neural conditionals.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"deepbn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    enable_compilation_cache()


app.command("demo")(demo)
app.command("sample")(sample)
app.command("discover")(discover)
app.command("posterior")(posterior)
app.command("fit")(fit)
app.add_typer(vae_app, name="vae")
app.add_typer(siren_app, name="siren")
app.command("sweep")(sweep)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the last checkpoint is kept."""


_signals_received: list[int] = []


def _terminate(signum, frame):
    _signals_received.append(signum)  # typer may turn the exception into exit status 130
    raise Terminated()


def _interrupted() -> int:
    """Say how to resume; the exit status of the signal that stopped the command."""
    console.print(RESUME_HINT)
    return TERMINATED if _signals_received else INTERRUPTED


def _print_error(message: str) -> None:
    # plain text: a message naming a file or a value in brackets is never read as markup
    console.print(Text.assemble(("error:", "red"), " ", message), soft_wrap=True)


class _ConsoleHandler(logging.Handler):
    """The library's INFO lines (e.g. "resuming from ...") on stderr, as plain text."""

    def emit(self, record: logging.LogRecord) -> None:
        console.print(Text(record.getMessage()), soft_wrap=True)


def _show_library_messages() -> None:
    log = logging.getLogger("deepbn")
    if not any(isinstance(h, _ConsoleHandler) for h in log.handlers):
        log.addHandler(_ConsoleHandler())
        log.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``deepbn`` console script; returns the exit status."""
    _show_library_messages()
    _signals_received.clear()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    status = 1  # an unexpected exception: a bug, shown with its traceback
    try:
        status = _dispatch(argv)
    finally:
        if "deepbn.results" in sys.modules:  # a command took a folder's lock
            sys.modules["deepbn.results"].release_locks(failed=status != 0)
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return status


def _dispatch(argv: list[str] | None) -> int:
    try:
        # not standalone: click would turn Ctrl-C into "Aborted!" before we could say more
        result = app(args=argv, prog_name="deepbn", standalone_mode=False)
    except DeepBNError as e:
        _print_error(str(e))
        return 2
    except (KeyboardInterrupt, typer.Abort):
        return _interrupted()
    except typer.Exit as e:
        return e.exit_code
    except typer.exceptions.TyperException as e:  # usage errors: typer prints them
        e.show()
        return e.exit_code
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except OSError as e:  # a file the command could not read or write: one line, no traceback
        where = f"{e.filename}: " if e.filename else ""
        _print_error(f"{where}{e.strerror or e}; check the path and its permissions")
        return 2
    if result == INTERRUPTED:  # typer turns Ctrl-C (and our SIGTERM) into this exit status
        return _interrupted()
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())


def run() -> None:
    """Console-script wrapper: exit with :func:`main`'s status."""
    sys.exit(main())
