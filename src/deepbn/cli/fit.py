"""``deepbn fit``: learn a network's parameters from data (MCMC-EM or VI with latent nodes).

The data are a CSV of the observed nodes or, for a network with one observed node
(e.g. ``example:kingma-mnist``), an image set (``mnist`` or ``PATH.npz``): then a
subset of the training images is fitted, the held-out log-likelihood of test images is
estimated by importance sampling, and a 2-D latent space is drawn as a manifold.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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
from deepbn.cli.posterior import check_binary, network_for_run, read_observed
from deepbn.inference.config import E_STEP_PARTICLES

if TYPE_CHECKING:  # the library is imported inside the commands: --help stays fast
    from deepbn.bn import BayesNet

IMAGE_CASES = 1000  # training images by default: a subset a CPU fits in minutes
TEST_CASES = 1000
MANIFOLD_SIDE = 20  # latent grid points per side of the manifold plot


def is_image_set(data: str) -> bool:
    """``mnist`` or an ``.npz`` file: an image set rather than a CSV table."""
    return data == "mnist" or data.lower().endswith(".npz")


def read_images(net: BayesNet, spec: str, data: str, cases: int,
                test_cases: int) -> tuple[dict, dict]:
    """(training, test) values of the network's one observed node from an image set: the
    first ``cases`` training and ``test_cases`` test images."""
    from deepbn.errors import DataError, UsageError
    from deepbn.io.datasets import load_images

    observed = net.observed_names
    if len(observed) != 1:
        raise UsageError(f"an image set ({data}) gives the values of one observed node, but "
                         f"{spec} observes {len(observed)} ({', '.join(observed[:5])}); "
                         "give a CSV of the observed nodes")
    name = observed[0]
    width = net.dims[net.index(name)]
    images = load_images(data)
    if images.input_dim != width:
        raise DataError(f"{data}: images of {images.input_dim} values, but node '{name}' of "
                        f"{spec} takes {width}")
    train, test = images.train[:cases], images.test[:test_cases]
    for block in (train, test):
        check_binary(net, name, block, data)
    return {name: train.astype("float32")}, {name: test.astype("float32")}


def fit(
    bn: str = typer.Argument(..., help="Network (its structure and starting parameters): "
                                       "a JSON file or example:NAME."),
    data: str = typer.Argument(..., help="CSV of the observed nodes (one row per case); for a "
                                         "network with one observed node also an image set: "
                                         "mnist (downloaded once) or PATH.npz (keys train, "
                                         "test[, valid])."),
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
    particles: int = typer.Option(E_STEP_PARTICLES,
                                  help="Particles per E-step sweep (--form particle)."),
    optimizer: str = typer.Option("adagrad", help="M-step optimiser: adagrad, adam or sgd."),
    learning_rate: float = typer.Option(0.05, help="M-step learning rate."),
    hmc_transitions: int = typer.Option(5, help="HMC transitions per case per E-step."),
    integration_steps: int = typer.Option(10, help="Leapfrog steps per HMC transition."),
    learn: str = typer.Option(None, help="Comma-separated nodes whose parameters to learn "
                                         "(default: all); a tied node learns its tie group."),
    cases: int = typer.Option(None, help="Fit the first N cases (default: every CSV row; "
                                         f"{IMAGE_CASES} training images of an image set)."),
    test_cases: int = typer.Option(None, help="Image sets: test images whose log-likelihood "
                                              f"is estimated (default {TEST_CASES})."),
    ll_samples: int = typer.Option(1000, help="Image sets: importance samples per test image "
                                              "and stage (a prior pilot, then 2 rounds of a "
                                              "fitted Gaussian mixed with the prior)."),
    seed: int = SeedOption,
    as_json: bool = JsonOption,
) -> None:
    """Fit parameters by MCMC-EM (or VI; plain ML without latent nodes); resumable."""
    from deepbn.errors import UsageError, require_count
    from deepbn.inference.config import FitConfig  # no JAX: errors at once

    cfg = FitConfig(method=method, iterations=iterations, form=form, optimizer=optimizer,
                    learning_rate=learning_rate, hmc_transitions=hmc_transitions,
                    integration_steps=integration_steps, particles=particles).check()
    images = is_image_set(data)
    for what, value in (("cases", cases), ("test cases", test_cases),
                        ("importance samples", ll_samples)):
        if value is not None:
            require_count(f"the {what}", value)
    if test_cases is not None and not images:
        raise UsageError("--test-cases needs an image set (mnist or PATH.npz); a CSV has no "
                         "test split")
    from deepbn.inference import mcmc_em
    from deepbn.io.networks import write_network
    from deepbn.plots import training_curve
    from deepbn.results import ResultsFolder

    net = network_for_run(bn, latent)
    if images:
        observed, test = read_images(net, bn, data, cases or IMAGE_CASES,
                                     test_cases or TEST_CASES)
    else:
        observed = read_observed(net, bn, Path(data), need_latent=False)
        observed = {k: v[:cases] for k, v in observed.items()}
    nodes = node_list(learn)
    n_cases = int(next(iter(observed.values())).shape[0])
    folder = ResultsFolder(out, "fit")
    folder.write_config({"network": bn, "data": str(data), "latent": list(net.latent_names),
                         "learn": nodes, "seed": seed, "cases": n_cases, **cfg._asdict(),
                         **({"test_cases": int(next(iter(test.values())).shape[0]),
                             "ll_samples": ll_samples} if images else {})})
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
    name = "mnist" if data == "mnist" else Path(data).name
    training_curve(res.curve[:, 1], out / "learning_curve.png", res.objective_name,
                   title=f"{res.method} on {name}", xlabel="iteration", steps=res.curve[:, 0])
    folder.write_history([{"iteration": int(i), "objective": float(v)} for i, v in res.curve])
    extra, written = {}, ["network.json", "learning_curve.png", "summary.json"]
    if images and net.latent_names:
        extra, files = _held_out(res.network, test, out, seed, ll_samples, res.method, name)
        written[2:2] = files
    reasons = {"test_log_lik_se": "one test image: no standard error"} if extra.get(
        "test_cases") == 1 else None
    summary = folder.write_summary({
        "network": bn, "data": str(data), "method": res.method, "iterations": iterations,
        "latent": list(net.latent_names), "form": form, "optimizer": optimizer,
        "learning_rate": learning_rate, "cases": n_cases,
        "log_lik_start": float(res.curve[0, 1]), "log_lik_end": float(res.curve[-1, 1]),
        "log_lik_end_per_case": float(res.curve[-1, 1]) / n_cases,
        "objective": res.objective_name,
        "curve": res.curve.tolist(), "acceptance": res.acceptance,
        "seconds": round(res.seconds, 3), "resumed_from_iteration": res.resumed_from,
        "seed": seed, **extra,
        "scheme": ({"name": "particle-gibbs", "particles": particles,
                    "sweeps_per_iteration": hmc_transitions} if form == "particle" and
                   res.method == "mcmc-em" else {"name": res.method, "form": form}),
    }, reasons=reasons)
    what = {"ml": "maximum likelihood (no latent nodes: no E-step)",
            "mcmc-em": "MCMC-EM", "vi": "VI"}[res.method]
    lines = [
        f"{what}: {iterations} iterations on {n_cases} case(s) in {res.seconds:.1f} s",
        f"{res.objective_name}: {summary['log_lik_start']:.2f} -> {summary['log_lik_end']:.2f}",
        f"results in {out}/ ({', '.join(written)})",
    ]
    if extra:
        se = extra["test_log_lik_se"]
        lines.insert(2, f"test log-likelihood {extra['test_log_lik']:.2f}"
                        f"{'' if se is None else f' ± {se:.2f}'} nats per image "
                        f"({extra['test_cases']} test image(s), importance sampling)")
    if res.resumed_from:
        lines.insert(0, f"resumed from iteration {res.resumed_from} in {out}/checkpoint.npz")
    report(summary, as_json, lines)


def _held_out(network: BayesNet, test: dict, out: Path, seed: int, samples: int, method: str,
              name: str) -> tuple[dict, list[str]]:
    """The importance-sampled test log-likelihood and, for a 2-d latent node, manifold.png."""
    import jax
    import numpy as np

    from deepbn.inference.manifold import manifold_images
    from deepbn.inference.marginal import network_log_likelihood
    from deepbn.plots import manifold

    ll = network_log_likelihood(network, test, jax.random.key(seed + 1), samples)
    n = len(ll)
    extra = {"test_log_lik": float(np.mean(ll)),
             "test_log_lik_se": float(np.std(ll, ddof=1) / np.sqrt(n)) if n > 1 else None,
             "test_cases": n, "ll_samples": samples,
             "ll_proposal": "adaptive importance sampling over u = ε: a prior pilot, then 2 "
                            "rounds of 0.2 N(0, I) + 0.8 N(fitted mean, 2 x fitted covariance)"}
    files = []
    z = network.latent_names
    if len(z) == 1 and network.dims[network.index(z[0])] == 2 and len(test) == 1:
        side = MANIFOLD_SIDE
        manifold(manifold_images(network, side), side, out / "manifold.png",
                 title=f"learned 2-D manifold ({method} on {name})")
        files.append("manifold.png")
    return extra, files
