"""``deepbn discover``: a DiBS posterior over DAGs from a data table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from deepbn import graph
from deepbn.atomic import atomic_write
from deepbn.cli.common import JsonOption, SeedOption, console, report
from deepbn.data import SCALINGS, Table, match_columns, read_table
from deepbn.errors import DataError, UsageError
from deepbn.examples import PREFIX, load
from deepbn.plots import edge_prob_heatmap, posterior_graph
from deepbn.structure import metrics
from deepbn.structure.dibs import MODELS, DiBSConfig
from deepbn.structure.learn import StructureRun, learn_structure
from deepbn.structure.posterior import heldout_log_liks
from deepbn.structure.priors import PRIORS


def read_truth(spec: str, names: list[str]) -> np.ndarray:
    """True DAG from a ``cause,effect`` CSV or a network (file or example:NAME)."""
    if spec.startswith(PREFIX) or spec.lower().endswith(".json"):
        net = load(spec)
        unknown = [n for n in net.names if n not in names]
        missing = [n for n in names if n not in net.names]
        if unknown or missing:
            raise DataError(
                f"{spec}: network nodes do not match the data columns "
                f"(not in data: {', '.join(unknown[:5]) or '-'}; "
                f"not in network: {', '.join(missing[:5]) or '-'})"
            )
        A = net.adjacency()
        idx = [net.names.index(n) for n in names]
        return A[np.ix_(idx, idx)]
    return graph.read_edge_list(spec, names)


def read_mask(path: Path, table: Table) -> np.ndarray:
    """Intervention mask: same columns and rows as the data, entries 0 or 1."""
    mask_table = read_table(path, allow_constant=True)
    values = match_columns(mask_table, table.names, f"the data {table.path}")
    if values.shape[0] != table.values.shape[0]:
        raise DataError(
            f"{path}: the mask has {values.shape[0]} rows but the data has "
            f"{table.values.shape[0]}; give one mask row per data row"
        )
    if not np.isin(values, (0.0, 1.0)).all():
        raise DataError(f"{path}: mask entries must be 0 or 1 (1 = intervened on)")
    if values.all(axis=0).any():
        j = int(np.flatnonzero(values.all(axis=0))[0])
        raise DataError(f"{path}: variable '{table.names[j]}' is intervened on in every sample")
    return values


def write_results(out: Path, run: StructureRun, names: list[str], truth: np.ndarray | None,
                  heldout: np.ndarray | None, extra: dict) -> dict:
    """Write edge_probs.csv, graphs.json, summary.json and the two figures; return the summary."""
    post, cfg = run.posterior, run.config
    probs = post.edge_probs(mixture=True)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "edge_probs.csv") as f:
        f.write("," + ",".join(names) + "\n")
        for i, n in enumerate(names):
            f.write(n + "," + ",".join(f"{p:.6g}" for p in probs[i]) + "\n")
    particles = [
        {
            "edges": [[names[i], names[j]] for i, j in zip(*np.nonzero(g))],
            "weight_dibs": float(we), "weight_dibs_plus": float(wm),
            "log_joint": float(lj), "cyclic": bool(c),
        }
        for g, we, wm, lj, c in zip(post.graphs, post.weights_empirical, post.weights_mixture,
                                    post.log_joint, post.cyclic)
    ]
    with atomic_write(out / "graphs.json") as f:
        json.dump({"names": names, "model": cfg.model, "particles": particles}, f, indent=1)
    n, d = run.x_reference.shape
    summary = {
        "n": n, "d": d, "model": cfg.model, "graph_prior": cfg.graph_prior,
        "edges_per_node": cfg.edges_per_node, "particles": cfg.n_particles,
        "steps": int(len(run.edges)), "scaling": run.scaling,
        "seconds": round(run.seconds, 3), "resumed_from_step": run.resumed_from,
        "cyclic_particles": int(post.cyclic.sum()),
        "mean_edges": float(post.graphs.sum(axis=(1, 2)).mean()),
        **extra,
    }
    if truth is not None:
        summary["true_edges"] = int(truth.sum())
        for suffix, mixture in (("", True), ("_dibs", False)):
            w = post.weights_mixture if mixture else post.weights_empirical
            summary["eshd" + suffix] = metrics.expected_shd(post.graphs, w, truth)
            summary["auroc" + suffix] = metrics.edge_auroc(post.edge_probs(mixture), truth)
    if heldout is not None:
        ll = heldout_log_liks(post, heldout, cfg, run.scaling, run.x_reference)
        summary["neg_ll"] = metrics.neg_log_likelihood(ll, post.weights_mixture)
        summary["neg_ll_dibs"] = metrics.neg_log_likelihood(ll, post.weights_empirical)
        summary["heldout_n"] = int(heldout.shape[0])
    with atomic_write(out / "summary.json") as f:
        json.dump(summary, f, indent=1)
    edge_prob_heatmap(probs, names, out / "edge_probs.png", truth)
    posterior_graph(probs, names, out / "graph.png")
    return summary


def run_with_progress(x, cfg: DiBSConfig, steps: int, seed: int, mask, scaling: str,
                      out: Path) -> StructureRun:
    columns = [TextColumn("DiBS"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
               TextColumn("edges {task.fields[edges]:.1f}"),
               TextColumn("cyclic {task.fields[cyclic]}"), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("dibs", total=steps, edges=0.0, cyclic=cfg.n_particles)

        def update(done, info):
            bar.update(task, completed=done, edges=info["edges"], cyclic=info["cyclic"])

        run = learn_structure(x, cfg, steps=steps, seed=seed, mask=mask, scaling=scaling,
                              checkpoint_path=out / "checkpoint.npz", progress=update)
    return run


def discover(
    data: Path = typer.Argument(..., help="CSV with a header of variable names."),
    out: Path = typer.Option(..., "--out", help="Folder for the results (created)."),
    model: str = typer.Option("bge", help="bge (marginal, linear-Gaussian), linear or mlp "
                                          "(joint inference of the conditionals)."),
    graph_prior: str = typer.Option("er", help="er (Erdős–Rényi) or sf (scale-free)."),
    edges_per_node: float = typer.Option(1.0, help="Expected edges per node of the prior."),
    particles: int = typer.Option(20, help="SVGD particles."),
    steps: int = typer.Option(1000, help="SVGD steps."),
    graph_samples: int = typer.Option(16, help="Monte-Carlo graphs per particle and step."),
    interventions: Path = typer.Option(None, help="CSV mask, same columns and rows as the "
                                                  "data: 1 = variable intervened on."),
    truth: str = typer.Option(None, help="True graph: cause,effect CSV, network JSON or "
                                         "example:NAME (adds eshd, auroc)."),
    heldout: Path = typer.Option(None, help="Held-out data CSV (adds neg_ll)."),
    standardize: str = typer.Option("auto", help="auto (column for bge, global for joint "
                                                 "models), column, global or none."),
    seed: int = SeedOption,
    as_json: bool = JsonOption,
) -> None:
    """Learn a posterior over DAGs with DiBS; resumes from DIR when run again."""
    if model not in MODELS:
        raise UsageError(f"--model must be one of {', '.join(MODELS)}, got '{model}'")
    if graph_prior not in PRIORS:
        raise UsageError(f"--graph-prior must be one of {', '.join(PRIORS)}, got '{graph_prior}'")
    if standardize not in SCALINGS:
        raise UsageError(f"--standardize must be one of {', '.join(SCALINGS)}")
    if particles < 1 or graph_samples < 1:
        raise UsageError("--particles and --graph-samples must be at least 1")
    if edges_per_node <= 0:
        raise UsageError("--edges-per-node must be positive")
    table = read_table(data)
    if len(table.names) < 2:
        raise DataError(f"{data}: structure learning needs at least 2 variables (columns)")
    mask = read_mask(interventions, table) if interventions is not None else None
    true_A = read_truth(truth, table.names) if truth is not None else None
    held = None
    if heldout is not None:
        held = match_columns(read_table(heldout, allow_constant=True), table.names,
                             f"the data {data}")
    cfg = DiBSConfig(model=model, graph_prior=graph_prior, edges_per_node=edges_per_node,
                     n_particles=particles, n_graph_samples=graph_samples)
    run = run_with_progress(table.values, cfg, steps, seed, mask, standardize, out)
    summary = write_results(out, run, table.names, true_A, held, {"seed": seed})
    lines = [f"DiBS ({model}, {graph_prior} prior): {summary['d']} variables, n={summary['n']}, "
             f"{particles} particles x {steps} steps in {summary['seconds']:.1f} s"]
    lines.append(f"mean edges per particle {summary['mean_edges']:.1f}, "
                 f"cyclic particles {summary['cyclic_particles']}")
    if true_A is not None:
        auroc = summary["auroc"]
        lines.append(f"E-SHD {summary['eshd']:.2f}   AUROC "
                     f"{'n/a' if auroc is None else f'{auroc:.3f}'}   (DiBS+ weights)")
    if held is not None:
        lines.append(f"held-out neg. log-likelihood {summary['neg_ll']:.2f}")
    lines.append(f"results in {out}/ (edge_probs.csv, graphs.json, summary.json, "
                 "edge_probs.png, graph.png)")
    report(summary, as_json, lines)
