"""Options and helpers shared by every command."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress

LatentOption = typer.Option(None, "--latent", help="Comma-separated nodes to treat as latent "
                            "for this run (every other node is then observed); default: the "
                            "nodes the network marks latent.")
SeedOption = typer.Option(0, "--seed", help="Random seed; the same seed gives the same result.")
JsonOption = typer.Option(False, "--json", help="Print the summary as JSON instead of text.")

console = Console(stderr=True, highlight=False)

CACHE_BYTES = 2 * 1024**3  # the compilation cache's limit on disk


def enable_compilation_cache() -> None:
    """Keep compiled XLA programs across runs so repeated commands start fast.

    Every program is kept, however quick to compile: a command compiles over a hundred
    small ones (each eager array operation outside a jitted loop is its own program), which
    together cost more than its one big loop. Programs with host callbacks (a progress bar
    inside a compiled loop) cannot be stored and compile every run.
    """
    cache = Path(os.environ.get("DEEPBN_CACHE", Path.home() / ".cache" / "deepbn")) / "jax"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        trim_cache(cache, CACHE_BYTES)
    except OSError:
        return  # a read-only home only costs compile time
    settings = {"jax_compilation_cache_dir": str(cache),
                "jax_persistent_cache_min_compile_time_secs": 0.0}
    if "jax" in sys.modules:
        import jax

        for name, value in settings.items():
            jax.config.update(name, value)
    else:  # JAX reads these when (and only if) a command imports it: --help stays fast
        os.environ.update({name.upper(): str(value) for name, value in settings.items()})


def trim_cache(folder: Path, limit: int) -> None:
    """Delete the oldest files in ``folder`` (by modification time) until it holds at most
    ``limit`` bytes.

    Once per command, not JAX's own limit (``jax_compilation_cache_max_size``), which
    lists and stats the whole folder on every program it stores: thousands of small
    programs made that quadratic.
    """
    entries = []
    with os.scandir(folder) as listing:
        for entry in listing:
            if entry.is_file(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)
                entries.append((info.st_mtime, info.st_size, entry.path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= limit:
            break
        with contextlib.suppress(FileNotFoundError):  # another command trimmed it first
            os.unlink(path)
        total -= size


@contextlib.contextmanager
def progress_bar(*columns) -> Iterator[Progress]:
    """A Rich progress bar on stderr that vanishes if the work fails, so that an error
    stays the one line the user sees."""
    bar = Progress(*columns, console=console)
    with bar:
        try:
            yield bar
        except BaseException:
            bar.live.transient = True
            raise


def check_output_file(path: Path) -> None:
    """Refuse an output file that cannot be written, before any work is done."""
    from deepbn.errors import UsageError

    if path.is_dir():
        raise UsageError(f"{path}: is a folder; give a file name")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{path}: {parent} is a file, not a folder; choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{path}: the folder {parent} is not writable; choose another path")


def node_list(text: str | None) -> list[str] | None:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; ``None`` stays ``None``."""
    if text is None:
        return None
    return [s.strip() for s in text.split(",") if s.strip()]


def report(summary: dict, as_json: bool, lines: list[str]) -> None:
    """Print the summary: JSON on stdout, or short human lines."""
    if as_json:
        typer.echo(json.dumps(summary, indent=1, default=float))
    else:
        for line in lines:
            console.print(line)
