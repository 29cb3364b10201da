"""``deepbn siren train``: a SIReN-VAE variant for a known network, fitted to a data table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

from deepbn.cli.common import JsonOption, SeedOption, node_list, progress_bar, report
from deepbn.errors import DataError, UsageError, require_count

app = typer.Typer(help="SIReN-VAE: a known Bayesian network inside a VAE.", no_args_is_help=True)


def default_latent(bn) -> list[str]:
    """The nodes the network marks latent, or if it marks none (or all), the non-leaf nodes."""
    if 0 < len(bn.latent_names) < bn.d:
        return list(bn.latent_names)
    A = bn.adjacency()
    return [n for j, n in enumerate(bn.names) if A[j].any()]


@app.command("train")
def train(
    bn: str = typer.Argument(..., help="Network (structure): a JSON file or example:NAME."),
    data: Path = typer.Argument(..., help="CSV with one column per observed node."),
    out: Path = typer.Option(..., "--out", help="Folder for results (created); resumable."),
    latent: str = typer.Option(None, "--latent", help="Comma-separated latent nodes (default: "
                                                      "those the network marks latent, else "
                                                      "the non-leaf nodes)."),
    variant: str = typer.Option("true", help="true (the BN), fc (fully connected latents), ind "
                                             "(independent latents) or vae (plain VAE)."),
    heldout: Path = typer.Option(None, help="CSV of held-out rows (default: the last 20% of "
                                            "DATA)."),
    heldout_rows: int = typer.Option(None, "--heldout-rows", help="Hold out the last N rows "
                                     "of DATA instead (a fixed test set across sizes)."),
    train_per_node: int = typer.Option(None, "--train-per-node",
                                       help="Train on the first K x (number of nodes) rows "
                                            "only: the papers' 2|G| (sparse) and 100|G| "
                                            "(rich) training sets."),
    epochs: int = typer.Option(300, help="Epochs (passes over the training rows)."),
    steps: int = typer.Option(None, "--steps", help="Optimiser steps instead of --epochs "
                                                   "(the same budget for every training size)."),
    batch: int = typer.Option(64, help="Minibatch size (at most the number of rows)."),
    lr: float = typer.Option(3e-3, help="Adam learning rate."),
    blocks: int = typer.Option(4, help="Residual blocks per flow."),
    warmup: float = typer.Option(0.2, help="KL warm-up: the KL term's weight rises linearly, "
                                           "step by step, from about 0 to 1 over this "
                                           "fraction of the epochs (keeps latents from "
                                           "collapsing); 0 turns it off."),
    iw: int = typer.Option(1000, "--iw", help="Importance samples for the held-out NLL."),
    seed: int = SeedOption,
    as_json: bool = JsonOption,
) -> None:
    """Fit one variant; writes eval.json (nll, nll_network, re, seconds) and plots."""
    from deepbn import plots
    from deepbn.examples import load
    from deepbn.io.tables import match_columns, read_table
    from deepbn.results import ResultsFolder
    from deepbn.siren import experiment as siren_experiment
    from deepbn.siren import model as siren

    net = load(bn)
    names = default_latent(net) if latent is None else node_list(latent)
    spec = siren.SirenSpec.from_network(net, names, variant)
    siren_experiment.check_settings(epochs if steps is None else 1, batch, lr, blocks, iw=iw,
                                    warmup=warmup)
    table = read_table(data, allow_constant=True)
    x = match_columns(table, list(spec.observed), f"the observed nodes of {bn}",
                      ignore=list(spec.latent))
    x_train, x_test = _split_rows(x, data, heldout, heldout_rows, train_per_node, net.d)
    if heldout is not None:
        x_test = match_columns(read_table(heldout, allow_constant=True), list(spec.observed),
                               f"the observed nodes of {bn}", ignore=list(spec.latent))
    if steps is not None:
        require_count("the number of steps", steps)
        epochs = siren_experiment.epochs_for_steps(steps, len(x_train), batch)
    folder = ResultsFolder(out, "siren train")
    folder.write_config({"network": bn, "data": str(data), "latent": names, "variant": variant,
                         "heldout": heldout, "heldout_rows": heldout_rows,
                         "train_per_node": train_per_node, "steps": steps, "epochs": epochs,
                         "batch": batch, "lr": lr, "blocks": blocks, "iw": iw,
                         "warmup": warmup, "seed": seed})
    with progress_bar(TextColumn(f"siren {variant}"), BarColumn(),
                      TextColumn("epoch {task.completed}/{task.total}"),
                      TextColumn("ELBO {task.fields[elbo]:.3f}"), TimeElapsedColumn()) as bar:
        task = bar.add_task("train", total=epochs, elbo=float("nan"))
        result = siren_experiment.train(
            net, names, variant, x_train, x_test, epochs=epochs, batch=batch, lr=lr,
            blocks=blocks, seed=seed, out=out, iw=iw, warmup=warmup,
            on_epoch_end=lambda r: bar.update(task, completed=r["epoch"], elbo=r["elbo"]))
    if result["elbo_curve"]:
        plots.training_curve(np.array(result["elbo_curve"]), out / "training_curve.png",
                             "ELBO (standardised data)", title=f"SIReN-VAE ({variant})",
                             xlabel="epoch")
    _inverse_plot(net, names, out / "inverse_graph.png")
    folder.write_history([{"epoch": k + 1, "elbo": e} for k, e in enumerate(result["elbo_curve"])])
    summary = folder.write_summary({k: v for k, v in result.items()
                                    if k not in ("model", "spec", "elbo_curve")},
                                   siren_experiment.NULL_REASONS)
    exact = summary["nll_network"]
    report(summary, as_json, [
        f"{variant}: held-out NLL {summary['nll']:.3f} nats"
        + ("" if exact is None else f" (the network's own exact NLL: {exact:.3f})")
        + f", reconstruction error {summary['re']:.4f} (standardised), "
          f"{summary['epochs']} epochs, {summary['seconds']:.1f} s",
        f"latent: {', '.join(summary['latent'])}; observed: {', '.join(summary['observed'])}",
        f"results in {out}/ (eval.json, training_curve.png, inverse_graph.png)",
    ])


def _split_rows(x: np.ndarray, data: Path, heldout: Path | None, heldout_rows: int | None,
                train_per_node: int | None, d: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Training rows and held-out rows of DATA (``None`` when a --heldout file gives them)."""
    if heldout is not None and heldout_rows is not None:
        raise UsageError("give --heldout FILE or --heldout-rows N, not both")
    if heldout_rows is not None:
        require_count("--heldout-rows", heldout_rows)
    if train_per_node is not None:
        require_count("--train-per-node", train_per_node)
    if heldout is not None:
        n_test = 0
    elif heldout_rows is not None:
        n_test = heldout_rows
        if n_test >= len(x):
            raise DataError(f"{data}: has {len(x)} rows; --heldout-rows {n_test} leaves none "
                            "to train on")
    else:
        n_test = max(1, len(x) // 5)
    n_train = len(x) - n_test if train_per_node is None else train_per_node * d
    if n_train + n_test > len(x):
        raise DataError(f"{data}: has {len(x)} rows; the run needs {n_train} training rows "
                        f"(--train-per-node {train_per_node} x {d} nodes) plus {n_test} "
                        "held out: sample more rows or lower the numbers")
    if n_train < 2:
        raise DataError(f"{data}: need at least 2 training rows, got {n_train}")
    return x[:n_train], (x[len(x) - n_test:] if n_test else None)


def _inverse_plot(net, latent, path: Path) -> None:
    from deepbn import graph, plots

    is_latent = np.array([n in set(latent) for n in net.names])
    H = graph.faithful_inverse(net.adjacency(), ~is_latent)
    plots.posterior_graph(H.astype(float), list(net.names), path,
                          title="faithful inverse (encoder structure): observed → latent")
