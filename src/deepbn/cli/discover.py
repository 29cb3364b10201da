"""``deepbn discover``: a posterior over DAGs from a data table, by order MCMC (BGe) or DiBS."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import typer
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from deepbn.cli.common import JsonOption, SeedOption, console, progress_bar, report
from deepbn.errors import DataError, UsageError, require_choice, require_count
from deepbn.structure.config import (  # no JAX
    DEFAULT_CANDIDATES,
    DEFAULT_CHAINS,
    DEFAULT_TEMPERATURES,
    DEFAULT_UNTIL_RHAT,
    MAX_CANDIDATES,
    SAMPLERS,
    OrderMCMCOptions,
)

RHAT_WARN = 1.1  # deepbn.structure.diagnostics.RHAT_WARN (that module imports JAX)

if TYPE_CHECKING:  # the library is imported inside the commands: --help stays fast
    from deepbn.results import ResultsFolder
    from deepbn.structure.config import DiBSConfig
    from deepbn.structure.learn import StructureRun


def write_results(folder: ResultsFolder, run: StructureRun, names: list[str],
                  truth: np.ndarray | None, heldout: np.ndarray | None, extra: dict,
                  history: list[dict] | None = None) -> dict:
    """Write every output of a structure run into ``folder``; return the summary.
    ``history`` replaces the DiBS steps' history (mean edges, cyclic particles)."""
    from deepbn.atomic import atomic_write
    from deepbn.io.networks import write_network
    from deepbn.plots import edge_prob_heatmap, structure_graph
    from deepbn.structure.report import (
        ORDER_MCMC_NULL_REASONS,
        cpdag_csv,
        edge_probs_csv,
        edge_summary_csv,
        particles_json,
        summarize,
    )

    out = folder.path
    probs = run.posterior.edge_probs(mixture=True)
    with atomic_write(out / "edge_probs.csv") as f:
        f.write(edge_probs_csv(probs, names))
    with atomic_write(out / "edge_summary.csv") as f:
        f.write(edge_summary_csv(run.posterior, names))
    folder.write_json("graphs.json", particles_json(run, names))
    summary = {**summarize(run, truth, heldout), **extra}
    if run.posterior.cyclic.all():
        summary["network"] = summary["cpdag"] = None
        console.print("[yellow]warning: every particle's graph is cyclic, so no network.json "
                      "or cpdag.csv was written; run more --steps[/yellow]")
    else:
        k = run.posterior.most_probable()
        write_network(out / "network.json", run.posterior.network(k))
        with atomic_write(out / "cpdag.csv") as f:
            f.write(cpdag_csv(run.posterior.graphs[k], names, run.posterior.fixed_pairs))
        summary["network"] = "network.json"
        summary["cpdag"] = "cpdag.csv"
        summary["network_particle"] = k
    if history is None:
        history = [{"step": i + 1, "mean_edges": float(e), "cyclic_particles": int(c)}
                   for i, (e, c) in enumerate(zip(run.edges, run.cyclic))]
    folder.write_history(history)
    cyclic = "every particle's graph is cyclic"
    one_class = "the true graph has no edges or every edge: AUROC needs both classes"
    summary = folder.write_summary(summary, reasons={
        **ORDER_MCMC_NULL_REASONS, "network": cyclic, "cpdag": cyclic, "auroc": one_class,
        "auroc_dibs": one_class, "particles": "order MCMC has chains, not particles"})
    classes = run.posterior.class_marks()
    edge_prob_heatmap(probs, names, out / "edge_probs.png", truth, classes=classes)
    structure_graph(probs, names, out / "graph.png", truth, classes=classes)
    return summary


EXACT_MAX_VARIABLES = 20  # deepbn.structure.exact.MAX_VARIABLES, without importing JAX here
EXACT_WARN = 0.3
EXACT_TIP_VARIABLES = 14  # up to here the exact sums take seconds


def compare_exact(run: StructureRun, names: list[str], truth: np.ndarray | None,
                  out: Path) -> dict:
    """Exact edge probabilities on the run's own data, prior and knowledge: written to
    edge_probs_exact.csv; the summary fields comparing the sampled posterior with them."""
    from deepbn.atomic import atomic_write
    from deepbn.structure.exact import exact_posterior
    from deepbn.structure.metrics import (
        edge_auroc,
        edge_prob_gap,
        expected_shd_from_edge_probs,
    )
    from deepbn.structure.report import edge_probs_csv

    d = len(names)
    cfg = run.config.resolved(d)
    with console.status(f"exact edge probabilities: summing over the 2^{d} parent sets of "
                        f"each node", spinner="dots"):
        exact = exact_posterior(run.data.bge, d, cfg.edges_per_node, cfg.graph_prior,
                                cfg.max_parents, run.knowledge).edge_probs
    with atomic_write(out / "edge_probs_exact.csv") as f:
        f.write(edge_probs_csv(exact, names))
    largest, mean, (i, j) = edge_prob_gap(run.posterior.edge_probs(mixture=True), exact)
    fields = {"exact_max_abs_diff": largest, "exact_max_abs_diff_edge": [names[i], names[j]],
              "exact_mean_abs_diff": mean, "exact_mean_edges": float(exact.sum())}
    if truth is not None:
        fields["exact_eshd"] = expected_shd_from_edge_probs(exact, truth)
        fields["exact_auroc"] = edge_auroc(exact, truth)
    return fields


ORDER_MCMC_TIP_STEPS = 10000


def _order_bar():
    columns = [TextColumn("{task.description}"), BarColumn(bar_width=20),
               TextColumn("{task.completed}/{task.total}"),
               TextColumn("R-hat {task.fields[rhat]:.3f}"),
               TextColumn("log p {task.fields[best]:.1f}"), TimeElapsedColumn()]
    return progress_bar(*columns)


def _round_updater(bar):
    """A progress callback that opens a bar per round of the sampler."""
    tasks = {}

    def update(done, info):
        r = info.get("round", 0)
        if r not in tasks:
            label = "order MCMC" if "final" not in info or info["final"] else f"exploring {r + 1}"
            tasks[r] = bar.add_task(label, total=info.get("budget", done), rhat=float("nan"),
                                    best=float("nan"))
        bar.update(tasks[r], completed=done, rhat=info["rhat"], best=info["log_score"])

    return update


def refine_with_order_mcmc(run: StructureRun, steps: int, candidates: int,
                           max_parents: int | None, seed: int, truth: np.ndarray | None,
                           out: Path) -> tuple[StructureRun, dict]:
    """Order MCMC from the run's particles (progress bar, checkpoint in ``out``): the refined
    run and its summary fields (with a truth, also the particles' own E-SHD and AUROC)."""
    from deepbn.structure import metrics
    from deepbn.structure.order_mcmc import refine
    from deepbn.structure.report import order_mcmc_fields, runs_summary

    fields = runs_summary(run) if run.runs > 1 else {}  # the DiBS runs' agreement
    if truth is not None:
        post = run.posterior
        fields["dibs_eshd"] = post.expected_shd(truth)
        fields["dibs_auroc"] = metrics.edge_auroc(post.edge_probs(), truth)
    with _order_bar() as bar:
        refined, res = refine(run, steps, n_candidates=candidates, max_parents=max_parents,
                              seed=seed, checkpoint_path=out / "order_mcmc.npz",
                              progress=_round_updater(bar))
    fields["sampler"] = "dibs+order"
    fields.update(order_mcmc_fields(res, run.posterior.names))
    return refined, fields


def sample_with_progress(x, cfg: DiBSConfig, options: OrderMCMCOptions, seed: int, mask,
                         scaling: str, out: Path, names: list[str], knowledge
                         ) -> tuple[StructureRun, dict, list[dict]]:
    """Order MCMC alone (a bar per round, checkpoints in ``out``): the run, its summary
    fields and the history of its final round's blocks."""
    from deepbn.structure.learn import sample_structure
    from deepbn.structure.report import order_mcmc_fields

    with _order_bar() as bar:
        run, res = sample_structure(x, cfg, options, seed, mask, scaling, out,
                                    _round_updater(bar), names, knowledge)
    fields = {"sampler": "order", "steps": res.steps, "particles": None,
              "order_mcmc_until_rhat": options.until_rhat, **order_mcmc_fields(res, names)}
    return run, fields, list(res.records)


def run_with_progress(x, cfg: DiBSConfig, steps: int, seed: int, mask, scaling: str,
                      out: Path, names: list[str] | None = None,
                      knowledge=None, runs: int = 1) -> StructureRun:
    columns = [TextColumn("DiBS"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
               TextColumn("edges {task.fields[edges]:.1f}"),
               TextColumn("cyclic {task.fields[cyclic]}"), TimeElapsedColumn()]
    from deepbn.structure.learn import learn_structure

    with progress_bar(*columns) as bar:
        task = bar.add_task("dibs", total=steps, edges=0.0, cyclic=cfg.n_particles * runs)

        def update(done, info):
            bar.update(task, completed=done, edges=info["edges"], cyclic=info["cyclic"])

        run = learn_structure(x, cfg, steps=steps, seed=seed, mask=mask, scaling=scaling,
                              checkpoint_path=out / "checkpoint.npz", progress=update,
                              names=names, knowledge=knowledge, runs=runs)
    return run


def discover(
    data: Path = typer.Argument(..., help="CSV with a header of variable names."),
    out: Path = typer.Option(..., "--out", help="Folder for the results (created)."),
    model: str = typer.Option("bge", help="bge (marginal, linear-Gaussian), linear or mlp "
                                          "(joint inference of the conditionals)."),
    graph_prior: str = typer.Option("er", help="er (Erdős–Rényi) or sf (scale-free)."),
    edges_per_node: float = typer.Option(1.0, help="Expected edges per node of the prior."),
    sampler: str = typer.Option("auto", help="order (order MCMC: tempered chains that run "
                                             "until they agree; BGe only), dibs (DiBS's "
                                             "SVGD particles), or auto: order for bge, dibs "
                                             "for linear and mlp."),
    particles: int = typer.Option(20, help="DiBS: SVGD particles."),
    steps: int = typer.Option(1000, help="DiBS: SVGD steps."),
    runs: int = typer.Option(1, help="DiBS: independent runs at once (vmapped): pooled edge "
                                     "probabilities, edge R-hat across runs."),
    graph_samples: int = typer.Option(16, help="DiBS: Monte-Carlo graphs per particle and step."),
    max_parents: int = typer.Option(None, help="Largest parent set K: graphs with more "
                                               "parents have prior probability 0. Default: "
                                               "order MCMC none up to 20 variables (beyond "
                                               "the candidates), 5 above; DiBS none up to 32 "
                                               "variables, 8 above."),
    interventions: Path = typer.Option(None, help="CSV mask, same columns and rows as the "
                                                  "data: 1 = variable intervened on."),
    truth: str = typer.Option(None, help="True graph: cause,effect CSV, network JSON or "
                                         "example:NAME (adds eshd, auroc)."),
    heldout: Path = typer.Option(None, help="Held-out data CSV (adds neg_ll)."),
    forbid: Path = typer.Option(None, help="cause,effect CSV of edges that must be absent."),
    require: Path = typer.Option(None, help="cause,effect CSV of edges that must be present."),
    tiers: Path = typer.Option(None, help="variable,tier CSV: no edge from a later tier into "
                                          "an earlier one."),
    edge_prior: Path = typer.Option(None, help="Prior edge probabilities, a table like "
                                               "edge_probs.csv (blank = no opinion)."),
    standardize: str = typer.Option("auto", help="auto (column for bge, global for joint "
                                                 "models), column, global or none."),
    order_mcmc: int = typer.Option(0, "--order-mcmc", metavar="STEPS",
                                   help="Order MCMC's budget of steps per chain (0: 2000 per "
                                        "variable, at least 20000; it stops earlier once the "
                                        "chains agree). With --sampler dibs: STEPS steps of "
                                        "order MCMC after DiBS, one chain per particle, "
                                        "whose draws replace the particles' (0: DiBS alone)."),
    chains: int = typer.Option(DEFAULT_CHAINS, help="Order MCMC: independent chains from "
                                                    "random orders (vmapped)."),
    temperatures: int = typer.Option(DEFAULT_TEMPERATURES,
                                     help="Order MCMC: tempered copies per chain (MC3); 1: "
                                          "none."),
    until_rhat: float = typer.Option(DEFAULT_UNTIL_RHAT,
                                     help="Order MCMC: stop once the edge R-hat across chains "
                                          "is below this (checked every 1/20 of the budget); "
                                          "0: run the whole budget."),
    candidates: int = typer.Option(DEFAULT_CANDIDATES,
                                   help=f"Order MCMC: candidate parents per node (at most "
                                        f"{MAX_CANDIDATES}; the search space grows by up to 2 "
                                        f"where the chains find better parents outside): edges "
                                        f"outside get probability 0."),
    exact: bool = typer.Option(False, "--exact", help="Also sum over every DAG (BGe, at most "
                                                      "20 variables; order-modular prior): "
                                                      "edge_probs_exact.csv and the sampled "
                                                      "posterior's distance to it."),
    seed: int = SeedOption,
    as_json: bool = JsonOption,
) -> None:
    """Learn a posterior over DAGs (order MCMC for BGe, else DiBS); resumes from DIR when run
    again."""
    from deepbn.structure.config import DiBSConfig, check_scaling, check_steps  # no JAX

    require_choice("sampler", sampler, ("auto", *SAMPLERS))
    if sampler == "auto":
        sampler = "order" if model == "bge" else "dibs"
    if sampler == "order" and model != "bge":
        raise UsageError("--sampler order sums parent sets out under BGe: use it with --model "
                         "bge, or --sampler dibs")
    if sampler == "order" and runs > 1:
        raise UsageError("--runs counts DiBS runs; order MCMC's independent runs are its "
                         "--chains")
    require_count("--runs", runs)
    check_steps(steps)
    cfg = DiBSConfig(model=model, graph_prior=graph_prior, edges_per_node=edges_per_node,
                     n_particles=particles, n_graph_samples=graph_samples,
                     max_parents=max_parents).check()
    check_scaling(standardize)
    if exact and model != "bge":
        raise UsageError("--exact sums BGe marginal likelihoods: use it with --model bge")
    require_count("--order-mcmc", order_mcmc, minimum=0)
    if order_mcmc and model != "bge":
        raise UsageError("--order-mcmc sums parent sets out under BGe: use it with --model bge")
    if not 1 <= candidates <= MAX_CANDIDATES:
        raise UsageError(f"--candidates must be 1 to {MAX_CANDIDATES}, not {candidates}")
    require_count("--chains", chains)
    require_count("--temperatures", temperatures)
    if until_rhat != 0 and not until_rhat > 1:
        raise UsageError(f"--until-rhat must be above 1 (or 0: the whole budget), not "
                         f"{until_rhat}")
    options = OrderMCMCOptions(order_mcmc or None, chains, temperatures,
                               until_rhat or None, candidates, max_parents).check()
    from deepbn.io.tables import match_columns, read_table  # pandas, no JAX

    table = read_table(data)
    if len(table.names) < 2:
        raise DataError(f"{data}: structure learning needs at least 2 variables (columns)")
    if exact and len(table.names) > EXACT_MAX_VARIABLES:
        raise UsageError(f"{data}: --exact sums over 2^d parent sets per node, at most "
                         f"{EXACT_MAX_VARIABLES} variables; this table has "
                         f"{len(table.names)}: leave --exact out")
    # JAX (through deepbn.graph) only once the data are read: a bad table is refused at once
    from deepbn.results import ResultsFolder
    from deepbn.structure.inputs import read_mask, read_truth
    from deepbn.structure.knowledge import read_knowledge

    mask = read_mask(interventions, table) if interventions is not None else None
    true_A = read_truth(truth, table.names) if truth is not None else None
    held = None
    if heldout is not None:
        held = match_columns(read_table(heldout, allow_constant=True), table.names,
                             f"the data {data}")
    knowledge = read_knowledge(table.names, forbid, require, tiers, edge_prior)
    folder = ResultsFolder(out, "discover")
    folder.write_config({"data": str(data), "model": model, "graph_prior": graph_prior,
                         "edges_per_node": edges_per_node, "particles": particles,
                         "steps": steps, "graph_samples": graph_samples,
                         "max_parents": max_parents,
                         "interventions": interventions, "truth": truth, "heldout": heldout,
                         "standardize": standardize, "seed": seed,
                         "forbid": forbid, "require": require, "tiers": tiers,
                         "edge_prior": edge_prior,
                         "knowledge": None if knowledge is None
                         else knowledge.describe(table.names),
                         **({"runs": runs} if runs > 1 else {}),
                         **({"exact": True} if exact else {}),
                         "sampler": sampler,
                         **({"order_mcmc": order_mcmc, "candidates": candidates}
                            if order_mcmc or sampler == "order" else {}),
                         **({"chains": chains, "temperatures": temperatures,
                             "until_rhat": until_rhat} if sampler == "order" else {})})
    extra, history = {"seed": seed}, None
    if sampler == "order":
        run, fields, history = sample_with_progress(table.values, cfg, options, seed, mask,
                                                    standardize, out, table.names, knowledge)
        extra.update(fields)
    else:
        run = run_with_progress(table.values, cfg, steps, seed, mask, standardize, out,
                                table.names, knowledge, runs)
        if order_mcmc:
            run, fields = refine_with_order_mcmc(run, order_mcmc, candidates, max_parents,
                                                 seed, true_A, out)
            extra.update(fields)
        else:
            extra["sampler"] = "dibs"
    if exact:
        extra.update(compare_exact(run, table.names, true_A, out))
    summary = write_results(folder, run, table.names, true_A, held, extra, history)
    chains_ran = sampler == "order" or order_mcmc
    if sampler == "order":
        lines = [f"order MCMC (bge, {graph_prior} prior): {summary['d']} variables, "
                 f"n={summary['n']}, {summary['order_mcmc_chains']} chains x "
                 f"{summary['order_mcmc_temperatures']} temperatures, "
                 f"{summary['order_mcmc_steps']} of {summary['order_mcmc_budget']} steps in "
                 f"{summary['order_mcmc_seconds']:.1f} s (+ "
                 f"{summary['order_mcmc_compile_seconds']:.1f} s compile)"]
    else:
        lines = [f"DiBS ({model}, {graph_prior} prior): {summary['d']} variables, "
                 f"n={summary['n']}, {particles} particles x {steps} steps"
                 f"{f' x {runs} runs' if runs > 1 else ''} in {summary['seconds']:.1f} s"]
        bound = (f", at most {summary['max_parents']} parents per node"
                 if summary["max_parents"] < summary["d"] - 1 else "")
        lines.append(f"mean edges per particle {summary['mean_edges']:.1f}, "
                     f"cyclic particles {summary['cyclic_particles']}{bound}")
    if true_A is not None:
        auroc = summary["auroc"]
        lines.append(f"E-SHD {summary['eshd']:.2f}   E-SHD of the CPDAGs "
                     f"{summary['eshd_cpdag']:.2f}   AUROC "
                     f"{'n/a' if auroc is None else f'{auroc:.3f}'}   "
                     f"({'order MCMC draws' if chains_ran else 'DiBS+ weights'})")
    if chains_ran:
        rhat = "no edge R-hat (one chain)"
        if summary["order_mcmc_rhat_max"] is not None:
            cause, effect = summary["order_mcmc_rhat_max_edge"]
            rhat = f"edge R-hat max {summary['order_mcmc_rhat_max']:.3f} ({cause} -> {effect})"
        exchange = summary["order_mcmc_exchange_acceptance"]
        grown = (f" (+{summary['order_mcmc_candidates_added']} in "
                 f"{summary['order_mcmc_grow_rounds']} growth rounds)"
                 if summary["order_mcmc_grow_rounds"] else "")
        lines.append(f"order MCMC: {rhat}, acceptance {summary['order_mcmc_acceptance']:.2f}"
                     + (f", exchanges {exchange:.2f}" if exchange is not None else "")
                     + f", {summary['order_mcmc_draws']} DAGs drawn; "
                     f"{summary['order_mcmc_candidates']} candidate parents{grown}, at most "
                     f"{summary['order_mcmc_max_parents']} parents per node")
        if true_A is not None and sampler == "dibs":
            auroc = summary["dibs_auroc"]
            lines.append(f"the DiBS particles alone: E-SHD {summary['dibs_eshd']:.2f}   AUROC "
                         f"{'n/a' if auroc is None else f'{auroc:.3f}'}")
    if runs > 1:
        cause, effect = summary["rhat_edges_max_edge"]
        lines.append(f"{runs} runs: edge R-hat max {summary['rhat_edges_max']:.2f} "
                     f"({cause} -> {effect}), DiBS+ weights ESS min "
                     f"{summary['weights_ess_min']:.1f} mean {summary['weights_ess_mean']:.1f}")
    if held is not None:
        lines.append(f"held-out neg. log-likelihood {summary['neg_ll']:.2f}")
    if exact:
        cause, effect = summary["exact_max_abs_diff_edge"]
        truth_part = ""
        if true_A is not None:
            auroc = summary["exact_auroc"]
            truth_part = (f"; exact E-SHD {summary['exact_eshd']:.2f}   exact AUROC "
                          f"{'n/a' if auroc is None else f'{auroc:.3f}'}")
        lines.append(f"exact edge probabilities (edge_probs_exact.csv): largest difference "
                     f"{summary['exact_max_abs_diff']:.2f} ({cause} -> {effect}), mean "
                     f"{summary['exact_mean_abs_diff']:.3f}{truth_part}")
    if run.resumed_from:
        where = "order_mcmc.npz" if sampler == "order" else "checkpoint.npz"
        lines.insert(0, f"resumed from step {run.resumed_from} in {out}/{where}")
    if knowledge is not None:
        lines.append(f"prior knowledge: {int(knowledge.required.sum())} required and "
                     f"{int(knowledge.forbidden.sum())} forbidden edges, "
                     f"{int((~np.isnan(knowledge.prior)).sum())} soft edge priors")
    network = "network.json, cpdag.csv, " if summary["network"] else ""
    lines.append(f"results in {out}/ (edge_probs.csv, edge_summary.csv, graphs.json, "
                 f"{network}summary.json, edge_probs.png, graph.png)")
    report(summary, as_json, lines)
    if summary["particles_beyond_max_parents"]:
        console.print(Text(f"warning: {summary['particles_beyond_max_parents']} particles' "
                           f"graphs give a node more than {summary['max_parents']} parents "
                           f"(prior probability 0: DiBS+ weight 0); raise --max-parents or "
                           f"run more --steps", style="yellow"), soft_wrap=True)
    if exact and summary["exact_max_abs_diff"] > EXACT_WARN:
        cause, effect = summary["exact_max_abs_diff_edge"]
        console.print(Text(f"warning: the sampled posterior is far from the exact one "
                           f"(P({cause} -> {effect}) differs by "
                           f"{summary['exact_max_abs_diff']:.2f}); "
                           + ("raise --max-parents (order MCMC's parent bound) or --candidates"
                              if chains_ran else "run more --particles or --runs, or try "
                              "--sampler order") + ", or use edge_probs_exact.csv",
                           style="yellow"),
                      soft_wrap=True)
    if not exact and model == "bge" and summary["d"] <= EXACT_TIP_VARIABLES:
        console.print(Text(f"tip: with {summary['d']} variables, --exact also gives the exact "
                           f"edge probabilities (seconds), and how far the particles are from "
                           f"them", style="dim"), soft_wrap=True)
    elif not chains_ran and not exact and model == "bge":
        console.print(Text(f"tip: order MCMC, discover's default for BGe (--sampler order), "
                           f"or --order-mcmc {ORDER_MCMC_TIP_STEPS} after DiBS, samples between "
                           f"the particles' modes", style="dim"), soft_wrap=True)
    target = options.until_rhat if sampler == "order" else None
    rhat_max = summary.get("order_mcmc_rhat_max") or 0.0
    if chains_ran and rhat_max > (target or RHAT_WARN):
        cause, effect = summary["order_mcmc_rhat_max_edge"]
        console.print(Text(f"warning: the order MCMC chains disagree: edge R-hat "
                           f"{rhat_max:.3f} > {target or RHAT_WARN} on {cause} -> {effect} "
                           f"after {summary['order_mcmc_steps']} steps; raise the "
                           f"--order-mcmc budget (or --temperatures), and trust edge "
                           f"probabilities only as far as the chains agree",
                           style="yellow"), soft_wrap=True)
    if runs > 1 and summary["rhat_edges_max"] > RHAT_WARN:
        cause, effect = summary["rhat_edges_max_edge"]
        console.print(Text(f"warning: the runs disagree (edge R-hat "
                           f"{summary['rhat_edges_max']:.2f} > {RHAT_WARN} on "
                           f"{cause} -> {effect}); run more --steps",
                           style="yellow"), soft_wrap=True)
