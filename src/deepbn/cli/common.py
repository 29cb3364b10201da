"""Options and helpers shared by every command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console

SeedOption = typer.Option(0, "--seed", help="Random seed; the same seed gives the same result.")
JsonOption = typer.Option(False, "--json", help="Print the summary as JSON instead of text.")

console = Console(stderr=True, highlight=False)


def enable_compilation_cache() -> None:
    """Keep compiled XLA programs across runs so repeated commands start fast."""
    import jax

    cache = Path(os.environ.get("DEEPBN_CACHE", Path.home() / ".cache" / "deepbn")) / "jax"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    except OSError:
        pass  # a read-only home only costs compile time


def report(summary: dict, as_json: bool, lines: list[str]) -> None:
    """Print the summary: JSON on stdout, or short human lines."""
    if as_json:
        typer.echo(json.dumps(summary, indent=1, default=float))
    else:
        for line in lines:
            console.print(line)
