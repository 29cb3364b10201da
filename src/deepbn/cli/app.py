"""The ``deepbn`` Typer app: command registration and error handling.

User mistakes (:class:`~deepbn.errors.DeepBNError`) print one line and exit
with status 2; Ctrl-C exits 130 without a traceback.
"""

from __future__ import annotations

import sys

import typer

from deepbn import __version__
from deepbn.cli.common import console, enable_compilation_cache
from deepbn.cli.demo import demo
from deepbn.cli.discover import discover
from deepbn.cli.fit import fit
from deepbn.cli.posterior import posterior
from deepbn.cli.sample import sample
from deepbn.cli.siren import app as siren_app
from deepbn.cli.vae import app as vae_app
from deepbn.errors import DeepBNError

INTERRUPTED = 130
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``deepbn`` console script; returns the exit status."""
    try:
        # not standalone: click would turn Ctrl-C into "Aborted!" before we could say more
        result = app(args=argv, prog_name="deepbn", standalone_mode=False)
    except DeepBNError as e:
        console.print(f"[red]error:[/red] {e}", soft_wrap=True)
        return 2
    except (KeyboardInterrupt, typer.Abort):
        console.print(RESUME_HINT)
        return INTERRUPTED
    except typer.Exit as e:
        return e.exit_code
    except typer.exceptions.TyperException as e:  # usage errors: typer prints them
        e.show()
        return e.exit_code
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    if result == INTERRUPTED:  # typer turns Ctrl-C into this exit status
        console.print(RESUME_HINT)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())


def run() -> None:
    """Console-script wrapper: exit with :func:`main`'s status."""
    sys.exit(main())
