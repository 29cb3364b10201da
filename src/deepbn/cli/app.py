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
        app(args=argv, prog_name="deepbn")
    except DeepBNError as e:
        console.print(f"[red]error:[/red] {e}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("interrupted; run the same command again to resume from the last checkpoint")
        return 130
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def run() -> None:
    """Console-script wrapper: exit with :func:`main`'s status."""
    sys.exit(main())
