"""``deepbn sample``: ancestral samples from a network."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer

from deepbn.cli.common import JsonOption, SeedOption, check_output_file, report
from deepbn.errors import UsageError


def sample(
    bn: str = typer.Argument(..., help="Network: a JSON file (deepbn or bnlearn) or example:NAME."),
    n: int = typer.Option(100, "-n", "--n", help="Number of samples (rows)."),
    output: Path = typer.Option(..., "-o", "--output", help="CSV file to write."),
    all_nodes: bool = typer.Option(False, "--all", help="Also write the latent nodes."),
    seed: int = SeedOption,
    as_json: bool = JsonOption,
) -> None:
    """Draw N joint samples (ancestral sampling) and write the observed nodes as CSV."""
    check_output_file(output)
    import jax

    from deepbn.examples import load
    from deepbn.io.tables import write_table

    net = load(bn)
    start = time.perf_counter()
    values = net.sample(jax.random.key(seed), n)
    names = list(net.names if all_nodes else net.observed_names)
    if not names:
        raise UsageError(f"{bn}: the network has no observed nodes; pass --all to write latents")
    table = net.to_table(values, names)
    write_table(output, table, net.columns(names))
    seconds = time.perf_counter() - start
    summary = {
        "network": bn, "n": n, "columns": table.shape[1], "nodes": len(names),
        "output": str(output), "seed": seed, "seconds": round(seconds, 3),
        "mean_min": float(np.min(table.mean(0))), "mean_max": float(np.max(table.mean(0))),
    }
    report(summary, as_json, [
        f"wrote {n} samples of {len(names)} nodes ({table.shape[1]} columns) to {output}",
        f"[dim]{bn}: {net.d} nodes, {int(net.adjacency().sum())} edges; {seconds:.2f} s[/dim]",
    ])
