"""``deepbn vae train`` and ``deepbn vae eval``: the gated latent-DAG VAE family."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from deepbn.cli.common import JsonOption, SeedOption, console, report
from deepbn.errors import UsageError

app = typer.Typer(help="Graph VAE (learned latent DAG), VAE, Ladder VAE and FC-VAE.",
                  no_args_is_help=True)

# Minibatches an epoch needs before the bar also moves inside it. A progress callback inside
# the compiled epoch keeps that program out of the compilation cache (a host callback cannot
# be stored): it would compile again in every run, which short epochs do not repay.
IN_EPOCH_PROGRESS = 100


def _structure_plot(cfg, gate_probs, path: Path) -> None:
    from deepbn import plots
    from deepbn.graph_vae import model

    probs = np.zeros((cfg.nodes, cfg.nodes))
    for (i, j), p in zip(model.edges(cfg.nodes), gate_probs):
        probs[i, j] = p
    plots.posterior_graph(probs, [f"z{k + 1}" for k in range(cfg.nodes)], path,
                          title=f"latent structure ({cfg.structure}; width = gate μ, "
                                "drawn where μ > 0.5)")


def _pictures(cfg, params, fixed, d, out: Path, seed: int) -> None:
    import jax
    import jax.numpy as jnp

    from deepbn import plots
    from deepbn.graph_vae import model

    key = jax.random.key(seed + 1)
    plots.image_grid(np.asarray(model.sample(cfg, params, fixed, key, 50)),
                     out / "samples.png", "samples from the model (decoder means)")
    x = d.test[:10].astype(np.float32)
    res, _ = model.forward(cfg, params, fixed, key, jnp.asarray(x), 1.0, train=False,
                           hard_gates=True)
    rec = jax.nn.sigmoid(res.logits) if cfg.likelihood == "bernoulli" else res.logits
    plots.image_grid(np.concatenate([x, np.asarray(rec)]), out / "reconstructions.png",
                     "test images (top) and their reconstructions (bottom)")


@app.command("train")
def train(
    data: str = typer.Option(..., "--data", help="'mnist' (downloaded once, cached) or an .npz "
                                                 "with keys train/valid/test."),
    out: Path = typer.Option(..., "--out", help="Folder for checkpoints and results (created); "
                                                "run again with the same folder to resume."),
    structure: str = typer.Option("learned", help="none (VAE), chain (Ladder VAE), full "
                                                  "(FC-VAE) or learned (Graph VAE)."),
    nodes: int = typer.Option(5, help="Number of latent nodes N."),
    latent_dim: int = typer.Option(80, help="Total latent dimensions M (divisible by N)."),
    epochs: int = typer.Option(50, help="Epochs to train (counting epochs already done)."),
    batch: int = typer.Option(64, help="Minibatch size."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    lr_decay: float = typer.Option(0.99, help="Learning-rate factor per epoch."),
    temperature_decay: float = typer.Option(0.99, help="Gate temperature τ = this^epoch."),
    seed: int = SeedOption,
    as_json: bool = JsonOption,
) -> None:
    """Train a latent-DAG VAE; a progress bar shows the running ELBO."""
    from deepbn import plots
    from deepbn.graph_vae import experiment, model
    from deepbn.io import datasets
    from deepbn.results import ResultsFolder

    experiment.make_config(1, structure, nodes, latent_dim)  # settings first, data after
    experiment.check_training(epochs, batch, lr, lr_decay, temperature_decay)
    folder = ResultsFolder(out, "vae train")
    d = datasets.load_images(data)
    cfg = experiment.make_config(d.input_dim, structure, nodes, latent_dim, d.likelihood)
    # before the progress bar starts, so that a refusal is the only line printed
    experiment.check_folder(cfg, d, out, batch, lr, lr_decay, temperature_decay, seed)
    steps = d.train.shape[0] // max(batch, 1)
    columns = [TextColumn(f"{structure}"), BarColumn(), TextColumn("epoch {task.fields[epoch]}"),
               TextColumn("ELBO {task.fields[elbo]:.2f}"), TimeElapsedColumn()]
    t0 = time.perf_counter()
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("train", total=epochs * steps, epoch=0, elbo=float("nan"))
        state = {"epoch": 0}

        def in_epoch(done, loss):
            bar.update(task, completed=state["epoch"] * steps + int(done), elbo=-float(loss))

        def epoch_end(rec):
            state["epoch"] = rec["epoch"]
            bar.update(task, completed=rec["epoch"] * steps, epoch=rec["epoch"],
                       elbo=rec["elbo"])

        result = experiment.train(cfg, d, folder, epochs, batch=batch, lr=lr, lr_decay=lr_decay,
                                  temperature_decay=temperature_decay, seed=seed,
                                  progress=in_epoch if steps >= IN_EPOCH_PROGRESS else None,
                                  on_epoch_end=epoch_end)
        if result["message"] and not result["history"]:
            bar.live.transient = True  # the error is the one line left
            raise UsageError(result["message"])
    seconds = time.perf_counter() - t0
    history = result["history"]
    cfg, params, fixed = result["config"], result["params"], result["fixed"]
    if history:
        plots.curves({"train": [h["elbo"] for h in history],
                      "valid": [h["valid_elbo"] for h in history]},
                     out / "training_curves.png", "ELBO (nats)",
                     title=f"{structure}: ELBO per epoch")
        if structure == "learned":
            plots.gate_history(np.array([h["gates"] for h in history]),
                               [f"z{i + 1}→z{j + 1}" for i, j in model.edges(nodes)],
                               out / "gates.png")
        _structure_plot(cfg, model.gate_probabilities(cfg, params), out / "structure.png")
        _pictures(cfg, params, fixed, d, out, seed)
    epoch_seconds = [h["seconds"] for h in history]
    summary = {
        "data": data, "structure": structure, "nodes": nodes, "latent_dim": latent_dim,
        "epochs": len(history), "batch": batch, "seconds": round(seconds, 3),
        "elbo": history[-1]["elbo"] if history else None,
        "valid_elbo": history[-1]["valid_elbo"] if history else None,
        "steps_per_second": (steps / float(np.median(epoch_seconds[1:] or epoch_seconds))
                             if epoch_seconds else None),
        "structure_edges": experiment.structure_edges(cfg, params),
        "stopped": result["message"],
    }
    summary = folder.write_summary(summary)
    if result["message"]:
        raise UsageError(result["message"])
    edges = ", ".join(f"z{i + 1}→z{j + 1}" for i, j in summary["structure_edges"]) or "none"
    report(summary, as_json, [
        f"{structure}: {len(history)} epochs, train ELBO {summary['elbo']:.2f}, "
        f"valid ELBO {summary['valid_elbo']:.2f} ({seconds:.1f} s, "
        f"{summary['steps_per_second']:.1f} steps/s)",
        f"structure (μ > 0.5): {edges}",
        f"results in {out}/ (training_curves.png, structure.png, samples.png, "
        f"reconstructions.png{', gates.png' if structure == 'learned' else ''}); "
        f"next: deepbn vae eval {out}",
    ])


@app.command("eval")
def evaluate(
    folder: Path = typer.Argument(..., help="A folder written by 'deepbn vae train'."),
    iw: int = typer.Option(5000, "--iw", help="Importance samples per test example."),
    max_examples: int = typer.Option(None, help="Evaluate only the first N test examples."),
    seed: int = SeedOption,
    as_json: bool = JsonOption,
) -> None:
    """Test-set IWAE log-likelihood, ELBO and KL -> FOLDER/eval.json."""
    from deepbn.graph_vae import experiment
    from deepbn.io import datasets

    experiment.check_evaluation(iw, max_examples)
    cfg, settings = experiment.read_config(folder)
    d = datasets.load_images(settings["data"])
    n = d.test.shape[0] if max_examples is None else min(max_examples, d.test.shape[0])
    columns = [TextColumn(f"IWAE k={iw}"), BarColumn(),
               TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn()]
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("eval", total=n)
        result = experiment.evaluate_folder(folder, iw=iw, max_examples=n, seed=seed, data=d,
                                            progress=lambda k: bar.update(task, completed=k))
    _structure_plot(cfg, result["gate_probabilities"], folder / "structure.png")
    edges = ", ".join(f"z{i + 1}→z{j + 1}" for i, j in result["structure"]) or "none"
    report(result, as_json, [
        f"test log-likelihood (IWAE, k={iw}, {n} examples): {result['ll']:.2f} "
        f"± {result['ll_stderr']:.2f} nats",
        f"ELBO {result['elbo']:.2f}, KL {result['kl']:.2f}; structure: {edges}",
        f"written {folder}/eval.json, {folder}/structure.png",
    ])
