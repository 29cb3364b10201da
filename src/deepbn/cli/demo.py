"""``deepbn demo``: the main job on a built-in default."""

from __future__ import annotations

from pathlib import Path

import typer

from deepbn.cli.common import JsonOption, SeedOption, report
from deepbn.cli.discover import run_with_progress, write_results
from deepbn.errors import require_count

NETWORK = "example:gaussian-er10"


def demo(
    out: Path = typer.Option(Path("deepbn-demo"), "--out", help="Folder for the outputs."),
    n: int = typer.Option(200, "-n", help="Number of training samples."),
    steps: int = typer.Option(1000, help="SVGD steps."),
    seed: int = SeedOption,
    as_json: bool = JsonOption,
) -> None:
    """Sample a built-in 10-variable network, learn its structure with DiBS (BGe), score it."""
    from deepbn.structure.config import check_steps

    require_count("the number of samples", n)  # before the data files are written
    check_steps(steps)
    from deepbn.results import ResultsFolder

    folder = ResultsFolder(out, "demo")  # an unusable --out is refused before JAX starts
    import jax

    from deepbn import graph
    from deepbn.examples import load
    from deepbn.io.tables import write_table
    from deepbn.structure.dibs import DiBSConfig

    net = load(NETWORK)
    key_train, key_test = jax.random.split(jax.random.key(seed))
    names = list(net.names)
    x = net.to_table(net.sample(key_train, n))
    x_test = net.to_table(net.sample(key_test, 100))
    folder.write_config({"network": NETWORK, "n": n, "steps": steps, "seed": seed})
    write_table(out / "data.csv", x, names)
    truth = net.adjacency()
    graph.write_edge_list(out / "truth.csv", truth, names)
    cfg = DiBSConfig(model="bge", graph_prior="er", edges_per_node=1.5, n_particles=20)
    run = run_with_progress(x, cfg, steps, seed, None, "auto", out, names)
    summary = write_results(folder, run, names, truth, x_test,
                            {"seed": seed, "network": NETWORK})
    report(summary, as_json, [
        f"{NETWORK}: {net.d} variables, {int(truth.sum())} true edges; "
        f"n={n} samples; DiBS with BGe, 20 particles x {steps} steps in "
        f"{summary['seconds']:.1f} s (+ {summary['compile_seconds']:.1f} s compile)",
        f"E-SHD {summary['eshd']:.2f}   AUROC {summary['auroc']:.3f}   "
        f"cyclic particles {summary['cyclic_particles']}",
        f"plots: {out / 'edge_probs.png'} and {out / 'graph.png'}; "
        f"data {out / 'data.csv'}, truth {out / 'truth.csv'}",
    ])
