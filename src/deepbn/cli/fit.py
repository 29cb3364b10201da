"""``deepbn fit``: learn a network's parameters from data (MCMC-EM or VI with latent nodes)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

from deepbn.cli.common import (
    JsonOption,
    LatentOption,
    SeedOption,
    node_list,
    progress_bar,
    report,
)
from deepbn.cli.posterior import network_for_run, read_observed


def fit(
    bn: str = typer.Argument(..., help="Network (its structure and starting parameters): "
                                       "a JSON file or example:NAME."),
    data: Path = typer.Argument(..., help="CSV of the observed nodes (one row per case)."),
    out: Path = typer.Option(..., "--out", help="Folder for the results (created); run "
                                                "again with the same folder to resume."),
    latent: str = LatentOption,
    method: str = typer.Option("mcmc-em", help="mcmc-em or vi (a network without latent "
                                               "nodes is fitted by plain maximum likelihood)."),
    iterations: int = typer.Option(500, help="EM (or VI, or ML) iterations."),
    form: str = typer.Option("auxiliary", help="Coordinates of the E-step chains / the VI "
                                               "guide: auxiliary or centred; particle: an "
                                               "E-step of particle-Gibbs sweeps over a "
                                               "state-space chain (MCMC-EM)."),
    particles: int = typer.Option(128, help="Particles per E-step sweep (--form particle)."),
    optimizer: str = typer.Option("adagrad", help="M-step optimiser: adagrad, adam or sgd."),
    learning_rate: float = typer.Option(0.05, help="M-step learning rate."),
    hmc_transitions: int = typer.Option(5, help="HMC transitions per case per E-step."),
    learn: str = typer.Option(None, help="Comma-separated nodes whose parameters to learn "
                                         "(default: all); a tied node learns its tie group."),
    seed: int = SeedOption,
    as_json: bool = JsonOption,
) -> None:
    """Fit parameters by MCMC-EM (or VI; plain ML without latent nodes); resumable."""
    from deepbn.inference.config import FitConfig  # no JAX: errors at once

    cfg = FitConfig(method=method, iterations=iterations, form=form, optimizer=optimizer,
                    learning_rate=learning_rate, hmc_transitions=hmc_transitions,
                    particles=particles).check()
    from deepbn.inference import mcmc_em
    from deepbn.io.networks import write_network
    from deepbn.plots import training_curve
    from deepbn.results import ResultsFolder

    net = network_for_run(bn, latent)
    observed = read_observed(net, bn, data, need_latent=False)
    nodes = node_list(learn)
    folder = ResultsFolder(out, "fit")
    folder.write_config({"network": bn, "data": str(data), "latent": list(net.latent_names),
                         "learn": nodes, "seed": seed, **cfg._asdict()})
    label = method if net.latent_names else "ml"
    columns = [TextColumn(label), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("log p(x) ≈ {task.fields[objective]:.1f}"), TimeElapsedColumn()]
    with progress_bar(*columns) as bar:
        task = bar.add_task("fit", total=iterations, objective=float("nan"))

        def update(done, info):
            bar.update(task, completed=done, objective=info["objective"])

        res = mcmc_em.fit(net, observed, cfg, seed=seed, learn=nodes,
                          checkpoint_path=folder.checkpoint, progress=update)
    write_network(out / "network.json", res.network)
    training_curve(res.curve[:, 1], out / "learning_curve.png", res.objective_name,
                   title=f"{res.method} on {Path(str(data)).name}", xlabel="iteration",
                   steps=res.curve[:, 0])
    n_cases = int(next(iter(observed.values())).shape[0])
    folder.write_history([{"iteration": int(i), "objective": float(v)} for i, v in res.curve])
    summary = folder.write_summary({
        "network": bn, "data": str(data), "method": res.method, "iterations": iterations,
        "latent": list(net.latent_names), "form": form, "optimizer": optimizer,
        "learning_rate": learning_rate, "cases": n_cases,
        "log_lik_start": float(res.curve[0, 1]), "log_lik_end": float(res.curve[-1, 1]),
        "objective": res.objective_name,
        "curve": res.curve.tolist(), "acceptance": res.acceptance,
        "seconds": round(res.seconds, 3), "resumed_from_iteration": res.resumed_from,
        "seed": seed,
        "scheme": ({"name": "particle-gibbs", "particles": particles,
                    "sweeps_per_iteration": hmc_transitions} if form == "particle" and
                   res.method == "mcmc-em" else {"name": res.method, "form": form}),
    })
    what = {"ml": "maximum likelihood (no latent nodes: no E-step)",
            "mcmc-em": "MCMC-EM", "vi": "VI"}[res.method]
    lines = [
        f"{what}: {iterations} iterations on {n_cases} case(s) in {res.seconds:.1f} s",
        f"{res.objective_name}: {summary['log_lik_start']:.2f} -> {summary['log_lik_end']:.2f}",
        f"results in {out}/ (network.json, learning_curve.png, summary.json)",
    ]
    if res.resumed_from:
        lines.insert(0, f"resumed from iteration {res.resumed_from} in {out}/checkpoint.npz")
    report(summary, as_json, lines)
