"""``deepbn fit``: learn a network's parameters from data with latent nodes."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from deepbn.atomic import atomic_write
from deepbn.bnfile import write_network
from deepbn.cli.common import JsonOption, SeedOption, console, report
from deepbn.cli.posterior import read_observed
from deepbn.errors import UsageError
from deepbn.examples import load
from deepbn.inference import em
from deepbn.plots import training_curve


def fit(
    bn: str = typer.Argument(..., help="Network (its structure and starting parameters): "
                                       "a JSON file or example:NAME."),
    data: Path = typer.Argument(..., help="CSV of the observed nodes (one row per case)."),
    out: Path = typer.Option(..., "--out", help="Folder for the results (created)."),
    method: str = typer.Option("mcmc-em", help="mcmc-em or vi."),
    iterations: int = typer.Option(500, help="EM (or VI) iterations."),
    form: str = typer.Option("auxiliary", help="Coordinates of the E-step chains / the VI "
                                               "guide: auxiliary or centred."),
    optimizer: str = typer.Option("adagrad", help="M-step optimiser: adagrad, adam or sgd."),
    learning_rate: float = typer.Option(0.05, help="M-step learning rate."),
    hmc_transitions: int = typer.Option(5, help="HMC transitions per case per E-step."),
    learn: str = typer.Option(None, help="Comma-separated nodes whose parameters to learn "
                                         "(default: all)."),
    seed: int = SeedOption,
    as_json: bool = JsonOption,
) -> None:
    """Fit parameters by MCMC-EM (or VI); resumes from DIR when run again."""
    if method not in em.METHODS:
        raise UsageError(f"--method must be one of {', '.join(em.METHODS)}, got '{method}'")
    net = load(bn)
    observed = read_observed(net, bn, data)
    nodes = None if learn is None else [s.strip() for s in learn.split(",") if s.strip()]
    cfg = em.FitConfig(method=method, iterations=iterations, form=form, optimizer=optimizer,
                       learning_rate=learning_rate, hmc_transitions=hmc_transitions)
    out.mkdir(parents=True, exist_ok=True)
    columns = [TextColumn(method), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("log p(x) ≈ {task.fields[objective]:.1f}"), TimeElapsedColumn()]
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("fit", total=iterations, objective=float("nan"))

        def update(done, info):
            bar.update(task, completed=done, objective=info["objective"])

        res = em.fit(net, observed, cfg, seed=seed, learn=nodes,
                     checkpoint_path=out / "checkpoint.npz", progress=update)
    write_network(out / "network.json", res.network)
    training_curve(res.curve[:, 1], out / "learning_curve.png", res.objective_name,
                   title=f"{method} on {Path(str(data)).name}", xlabel="iteration",
                   steps=res.curve[:, 0])
    n_cases = int(next(iter(observed.values())).shape[0])
    summary = {
        "network": bn, "data": str(data), "method": method, "iterations": iterations,
        "form": form, "optimizer": optimizer, "learning_rate": learning_rate, "cases": n_cases,
        "log_lik_start": float(res.curve[0, 1]), "log_lik_end": float(res.curve[-1, 1]),
        "curve": res.curve.tolist(), "acceptance": res.acceptance,
        "seconds": round(res.seconds, 3), "resumed_from_iteration": res.resumed_from,
        "seed": seed,
    }
    with atomic_write(out / "summary.json") as f:
        json.dump(summary, f, indent=1, default=float)
    report(summary, as_json, [
        f"{method}: {iterations} iterations on {n_cases} case(s) in {res.seconds:.1f} s",
        f"log p(x) (Monte-Carlo estimate) {summary['log_lik_start']:.2f} -> "
        f"{summary['log_lik_end']:.2f}",
        f"results in {out}/ (network.json, learning_curve.png, summary.json)",
    ])
