"""``deepbn posterior``: NUTS/HMC over a network's latent nodes given observed data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
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
from deepbn.errors import DataError
from deepbn.inference.config import (  # no JAX: the defaults the help states
    BLOCK_PARTICLES,
    BURN_IN_SWEEPS,
    PARTICLES,
    WARMUP,
)

if TYPE_CHECKING:  # the library is imported inside the commands: --help stays fast
    from deepbn.bn import BayesNet
    from deepbn.inference.hmc import PosteriorSamples


def network_for_run(spec: str, latent: str | None) -> BayesNet:
    """The network ``spec`` with ``--latent`` applied (exactly those nodes hidden)."""
    from deepbn.examples import load

    net = load(spec)
    names = node_list(latent)
    return net if names is None else net.with_latent(names)


def read_observed(bn: BayesNet, spec: str, data: Path, need_latent: bool = True) -> dict:
    """The observed nodes' values from DATA.csv (columns: the observed nodes, any order).

    Columns of latent nodes, if present, are left out: the same table serves
    every choice of ``--latent``.
    """
    from deepbn.inference import hmc
    from deepbn.io.tables import match_columns, read_table
    from deepbn.reparam import LatentSpace

    if need_latent:
        LatentSpace.from_network(bn)  # no latent nodes / discrete latents: say so first
    table = read_table(data, allow_constant=True)
    values = match_columns(table, bn.columns(bn.observed_names), f"the network's observed nodes "
                                                                 f"({spec})",
                           ignore=bn.columns(bn.latent_names))
    if len(values) == 0:
        raise DataError(f"{data}: no data rows")
    col = 0
    for name in bn.observed_names:
        width = bn.dims[bn.index(name)]
        check_binary(bn, name, values[:, col : col + width], data)
        col += width
    return hmc.observed_values(bn, values)


def check_binary(bn: BayesNet, name: str, block: np.ndarray, data) -> None:
    """One-line error if discrete node ``name``'s values (cases, dim) are not all 0 or 1."""
    j = bn.index(name)
    if bn.conditional(j).continuous:
        return
    bad = ~np.isin(block, (0.0, 1.0))
    if bad.any():
        column = bn.columns([name])[int(np.flatnonzero(bad)[0]) % bn.dims[j]]
        raise DataError(f"{data}: column '{column}' of {bn.conditional(j).family} "
                        f"node '{name}' must hold 0 or 1")


def _write_samples(out: Path, post: PosteriorSamples) -> None:
    from deepbn.atomic import atomic_write

    with atomic_write(out / "samples.npz", "wb") as f:
        np.savez(f, **post.samples, centring=post.centring)


def posterior(
    bn: str = typer.Argument(..., help="Network: a JSON file or example:NAME."),
    data: Path = typer.Argument(..., help="CSV of the observed nodes (one row per case)."),
    out: Path = typer.Option(..., "--out", help="Folder for the results (created); run "
                                                "again with the same folder to resume."),
    latent: str = LatentOption,
    form: str = typer.Option("auto", help="auto (particle Gibbs for a long state-space "
                                          "chain, else per node from the data's curvature), "
                                          "centred, auxiliary or particle."),
    sampler: str = typer.Option("nuts", help="nuts or hmc."),
    chains: int = typer.Option(4, help="Chains (vmapped); R-hat compares them."),
    warmup: int = typer.Option(None, help=f"Warmup per chain: NUTS/HMC window-adaptation "
                                          f"steps (default {WARMUP}) or particle-Gibbs "
                                          f"burn-in sweeps (default {BURN_IN_SWEEPS})."),
    samples: int = typer.Option(1000, help="Draws per chain after warmup."),
    integration_steps: int = typer.Option(16, help="Leapfrog steps per HMC transition "
                                                   "(--sampler hmc)."),
    particles: int = typer.Option(None, help="Particles per conditional-SMC sweep (particle "
                                             "Gibbs: --form particle, or auto's choice); "
                                             f"default {PARTICLES}, or {BLOCK_PARTICLES} per "
                                             "block with --block."),
    block: int = typer.Option(None, help="Particle Gibbs in blocks of this many states "
                                         "(two staggered partitions); default 0: the "
                                         "whole chain in one sweep."),
    checkpoint_every: int = typer.Option(100, help="Transitions (warmup or draws) between "
                                                   "checkpoints; Ctrl-C loses at most these."),
    seed: int = SeedOption,
    as_json: bool = JsonOption,
) -> None:
    """Sample the latent nodes' posterior; writes samples.npz, posterior.nc (ArviZ),
    summary.json, trace.png."""
    from deepbn.inference.config import check_settings, default_warmup  # no JAX: at once

    check_settings(sampler, form, chains, warmup, samples, integration_steps, checkpoint_every,
                   particles, block)
    from deepbn.inference import arviz_export, hmc
    from deepbn.plots import traces
    from deepbn.results import ResultsFolder

    net = network_for_run(bn, latent)
    # --form particle on a non-chain: say so first
    warmup = default_warmup(warmup, hmc.choose_scheme(net, form, sampler) is not None)
    observed = read_observed(net, bn, data)
    folder = ResultsFolder(out, "posterior")
    folder.write_config({"network": bn, "data": str(data), "latent": list(net.latent_names),
                         "form": form, "sampler": sampler, "chains": chains, "warmup": warmup,
                         "samples": samples, "integration_steps": integration_steps,
                         "particles": particles, "block": block, "seed": seed})
    columns = [TextColumn("sampling"), BarColumn(),
               TextColumn("{task.fields[phase]}"), TimeElapsedColumn()]
    with progress_bar(*columns) as bar:
        task = bar.add_task("sampling", total=warmup + samples, phase="compiling")

        def update(done, total):
            phase = (f"warmup {done}/{warmup}" if done <= warmup
                     else f"{done - warmup}/{samples} draws")
            bar.update(task, completed=int(done), phase=phase)

        post = hmc.sample_posterior(net, observed, form=form, sampler=sampler, chains=chains,
                                    warmup=warmup, samples=samples, seed=seed,
                                    integration_steps=integration_steps, progress=update,
                                    checkpoint_path=folder.checkpoint, chunk=checkpoint_every,
                                    particles=particles, block=block)
    no_time = "no sampling in this call (it resumed a finished run)"
    s = folder.write_summary({"network": bn, "data": str(data), "seed": seed, **post.summary},
                             reasons={"ess_min_per_s": no_time, "ess_median_per_s": no_time})
    _write_samples(out, post)
    folder.write_history([{"draw": int(k + 1), **{n: float(np.mean(v[:, k])) for n, v in
                                                  post.stats.items()}}
                          for k in range(0, samples, max(1, samples // 100))])
    first = post.space.names[: min(3, len(post.space.names))]
    draws = np.concatenate([post.samples[n][:, :, 0, :1] for n in first], axis=-1)
    traces({post.form: draws}, [net.columns([n])[0] for n in first], out / "trace.png")
    no_arviz = arviz_export.arviz_missing()
    if no_arviz is None:
        arviz_export.write_netcdf(arviz_export.to_arviz(post), out / "posterior.nc")
    else:
        (out / "posterior.nc").unlink(missing_ok=True)  # an earlier run's draws, not these
    centred = [n for n, c in s["form"].items() if c >= 0.5]
    # infinite (a chain that never moved, or too few draws) is null in strict JSON
    rhat = "inf" if s["rhat_max"] is None else f"{s['rhat_max']:.3f}"
    scheme = s["scheme"]
    if scheme["name"] == "particle-gibbs":
        blocks = (f", blocks of {scheme['block']} states" if scheme["block"] else "")
        how = (f"particle Gibbs (conditional SMC, ancestor sampling, {scheme['particles']} "
               f"particles{blocks}) over the chain {scheme['chain']} ({scheme['length']} "
               "states)")
    else:
        how = (f"form {post.form}: {len(centred)} node(s) centred, "
               f"{len(post.space.names) - len(centred)} auxiliary")
    sampler_name = {"particle-gibbs": "particle Gibbs"}.get(s["sampler"], s["sampler"].upper())
    lines = [
        f"{sampler_name} on {len(post.space.names)} latent nodes ({post.space.size} "
        f"coordinates x {s['cases']} case(s)), {chains} chains x {samples} draws",
        how,
        f"ESS min {s['ess_min']:.0f} / median {s['ess_median']:.0f}, R-hat max "
        f"{rhat}, divergences {s['divergences']}",
        f"{s['seconds']:.1f} s sampling + {s['compile_seconds']:.1f} s compile: "
        f"ESS_min/s {s['ess_min_per_s'] or 0:.1f}",
        f"results in {out}/ (samples.npz{'' if no_arviz else ', posterior.nc'}, "
        "summary.json, trace.png)",
    ]
    if s["resumed_from_step"]:
        lines.insert(0, f"resumed from step {s['resumed_from_step']} of {warmup + samples} "
                        f"({s['resumed_from']} draws) in {out}/checkpoint.npz")
    if s["rhat_max"] is None or s["rhat_max"] > 1.01:
        lines.insert(3, "[yellow]warning: R-hat > 1.01, the chains have not mixed; "
                        "run longer or try another --form[/yellow]")
    report(s, as_json, lines)
    if no_arviz:
        typer.echo(no_arviz, err=True)
