"""``deepbn demo``: the main job on a built-in default."""

from __future__ import annotations

from pathlib import Path

import typer

from deepbn.cli.common import JsonOption, SeedOption, report
from deepbn.cli.discover import (
    refine_with_order_mcmc,
    run_with_progress,
    sample_with_progress,
    write_results,
)
from deepbn.errors import require_choice, require_count
from deepbn.structure.config import DEFAULT_CANDIDATES, SAMPLERS, OrderMCMCOptions

NETWORK = "example:gaussian-er10"


def demo(
    out: Path = typer.Option(Path("deepbn-demo"), "--out", help="Folder for the outputs."),
    n: int = typer.Option(200, "-n", help="Number of training samples."),
    sampler: str = typer.Option("order", help="order (order MCMC, discover's default for "
                                              "BGe) or dibs (DiBS's particles)."),
    steps: int = typer.Option(1000, help="DiBS: SVGD steps."),
    order_mcmc: int = typer.Option(0, "--order-mcmc", metavar="STEPS",
                                   help="Order MCMC's budget per chain (0: automatic); with "
                                        "--sampler dibs, steps of order MCMC from the "
                                        "particles (0: DiBS alone)."),
    seed: int = SeedOption,
    as_json: bool = JsonOption,
) -> None:
    """Sample a built-in 10-variable network, learn a posterior over its DAGs (BGe) as
    discover does by default, order MCMC (or DiBS), and score it."""
    from deepbn.structure.config import check_steps

    require_count("the number of samples", n)  # before the data files are written
    require_choice("sampler", sampler, SAMPLERS)
    check_steps(steps)
    require_count("--order-mcmc", order_mcmc, minimum=0)
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
    folder.write_config({"network": NETWORK, "n": n, "sampler": sampler, "steps": steps,
                         "seed": seed, "order_mcmc": order_mcmc})
    write_table(out / "data.csv", x, names)
    truth = net.adjacency()
    graph.write_edge_list(out / "truth.csv", truth, names)
    cfg = DiBSConfig(model="bge", graph_prior="er", edges_per_node=1.5, n_particles=20)
    extra, history = {"seed": seed, "example": NETWORK}, None  # "network" names network.json
    head = f"{NETWORK}: {net.d} variables, {int(truth.sum())} true edges; n={n} samples; "
    if sampler == "order":
        options = OrderMCMCOptions(steps=order_mcmc or None)
        run, fields, history = sample_with_progress(x, cfg, options, seed, None, "auto", out,
                                                    names, None)
        extra.update(fields)
    else:
        run = run_with_progress(x, cfg, steps, seed, None, "auto", out, names)
        if order_mcmc:
            run, fields = refine_with_order_mcmc(run, order_mcmc, DEFAULT_CANDIDATES, None,
                                                 seed, truth, out)
            extra.update(fields)
    summary = write_results(folder, run, names, truth, x_test, extra, history)
    if sampler == "order":
        lines = [head + f"order MCMC (BGe), {summary['order_mcmc_chains']} chains x "
                 f"{summary['order_mcmc_temperatures']} temperatures, "
                 f"{summary['order_mcmc_steps']} steps in {summary['order_mcmc_seconds']:.1f} s "
                 f"(+ {summary['order_mcmc_compile_seconds']:.1f} s compile), edge R-hat max "
                 f"{summary['order_mcmc_rhat_max']:.3f}",
                 f"E-SHD {summary['eshd']:.2f}   AUROC {summary['auroc']:.3f}"]
    else:
        lines = [head + f"DiBS with BGe, 20 particles x {steps} steps in "
                 f"{summary['seconds']:.1f} s (+ {summary['compile_seconds']:.1f} s compile)"]
        if order_mcmc:
            lines += [f"then order MCMC, {summary['order_mcmc_chains']} chains x {order_mcmc} "
                      f"steps in {summary['order_mcmc_seconds']:.1f} s (+ "
                      f"{summary['order_mcmc_compile_seconds']:.1f} s compile), edge R-hat max "
                      f"{summary['order_mcmc_rhat_max']:.2f}",
                      f"E-SHD {summary['eshd']:.2f}   AUROC {summary['auroc']:.3f}   (DiBS "
                      f"particles alone: E-SHD {summary['dibs_eshd']:.2f}   AUROC "
                      f"{summary['dibs_auroc']:.3f})"]
        else:
            lines.append(f"E-SHD {summary['eshd']:.2f}   AUROC {summary['auroc']:.3f}   "
                         f"cyclic particles {summary['cyclic_particles']}")
    report(summary, as_json, [
        *lines,
        f"plots: {out / 'edge_probs.png'} and {out / 'graph.png'}; "
        f"data {out / 'data.csv'}, truth {out / 'truth.csv'}",
    ])
