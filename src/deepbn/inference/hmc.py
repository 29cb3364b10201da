"""Posterior sampling of a network's latent nodes with BlackJAX NUTS or HMC.

The target is :func:`deepbn.reparam.log_density` in the chosen form (a
:class:`deepbn.reparam.Reparam`: centring weights per node and case);
warmup (Stan's window adaptation from BlackJAX's pieces: step size and
diagonal mass matrix) and sampling are :mod:`deepbn.inference.nuts`'s
``init`` / ``step``, run by :func:`deepbn.run.run` in checkpointed chunks,
chains vmapped. Samples come back as latent values z whatever the form.

Example:
    >>> import jax
    >>> from deepbn import examples
    >>> bn = examples.load("example:gaussian-hierarchy")
    >>> x = bn.sample(jax.random.key(0), 1)
    >>> obs = {n: x[n] for n in bn.observed_names}
    >>> post = sample_posterior(bn, obs, warmup=200, samples=200)  # doctest: +SKIP
    >>> post.samples["mu"].shape  # doctest: +SKIP
    (2, 200, 1, 1)

References: Hoffman & Gelman, JMLR 2014 (NUTS); Kingma & Welling, ICML 2014
(arXiv 1402.0480) for the forms; Vehtari et al., Bayesian Analysis 2021
(bulk ESS, rank-normalised split R-hat).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from deepbn import run as run_layer
from deepbn.bn import BayesNet
from deepbn.errors import UsageError
from deepbn.inference import diagnostics, nuts
from deepbn.inference.config import (
    PARTICLE_MIN_LENGTH,
    check_settings,
    default_warmup,
    particle_settings,
)
from deepbn.reparam import (
    LatentSpace,
    Reparam,
    coordinates,
    latent_values,
    log_density,
    prior_latents,
    values,
)


class PosteriorSamples(NamedTuple):
    samples: dict[str, np.ndarray]  # node -> (chains, draws, cases, dim), latent values z
    space: LatentSpace
    centring: np.ndarray  # (cases, size): 1 centred, 0 auxiliary
    form: str
    summary: dict  # diagnostics, timings, centring per node
    stats: dict | None = None  # name -> (chains, draws): lp, energy, diverging, step_size, ...
    observed: dict | None = None  # observed node -> (cases, dim), the data conditioned on


def observed_values(bn: BayesNet, table: np.ndarray) -> dict[str, jnp.ndarray]:
    """Observed nodes' values from a table whose columns are ``bn.columns(observed)``."""
    table = np.atleast_2d(np.asarray(table, np.float32))
    return bn.from_table(table, bn.observed_names)


@eqx.filter_jit
def _initial_positions(bn, reparam: Reparam, keys, observed):
    # jitted: vmapped op by op, drawing from the prior took ~5 s on kingma-dbn
    z0 = jax.vmap(lambda k: prior_latents(bn, reparam, k, observed))(keys)
    return jax.vmap(lambda z: coordinates(bn, reparam, z, observed))(z0)


@eqx.filter_jit
def _prior_draws(bn, reparam: Reparam, keys, observed):
    return jax.vmap(lambda k: prior_latents(bn, reparam, k, observed))(keys)


@eqx.filter_jit
def _log_density_at(bn, reparam: Reparam, u0, observed):
    return log_density(bn, reparam, u0, observed)


@eqx.filter_jit
def _log_prob_nodes_at(bn, reparam: Reparam, u0, observed):
    return bn.log_prob_nodes(values(bn, reparam, u0, observed)[0])


def _check_finite(bn, reparam: Reparam, u0, observed):
    per_node = _log_prob_nodes_at(bn, reparam, u0, observed)
    for name in bn.names:
        if not np.all(np.isfinite(np.asarray(per_node[name]))):
            raise UsageError(f"log-density is not finite at initialisation at node '{name}'; "
                             "check the data for values impossible under that node "
                             "(e.g. a Bernoulli column holding something other than 0/1)")


def sample_posterior(
    bn: BayesNet,
    observed: Mapping[str, jnp.ndarray],
    form: str = "auto",
    sampler: str = "nuts",
    chains: int = 4,
    warmup: int | None = None,
    samples: int = 1000,
    seed: int = 0,
    integration_steps: int = 16,
    centring: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
    checkpoint_path: str | Path | None = None,
    chunk: int = 100,
    shard: bool = True,
    particles: int | None = None,
    block: int | None = None,
) -> PosteriorSamples:
    """Posterior draws of the latent nodes given ``observed`` ((cases, dim) per node).

    ``form``: ``centred``, ``auxiliary`` or ``auto`` (:meth:`Reparam.auto`);
    an explicit ``centring`` array (weights per coordinate, or per case and
    coordinate: :meth:`Reparam.from_weights`) overrides it. ``warmup`` None: 1000
    window-adaptation steps for NUTS/HMC, 200 burn-in sweeps for particle Gibbs
    (:func:`deepbn.inference.config.default_warmup`). Warmup and draws run through
    :func:`deepbn.run.run` in chunks of ``chunk`` transitions;
    ``progress(done, total)`` is called after each. With ``checkpoint_path``
    every chunk is checkpointed (adapted step size and mass matrix, every
    chain's state, the draws so far) and a run of the same network, data and
    settings resumes from it, ending with the draws an uninterrupted run gives.

    ``particles`` and ``block``: particle Gibbs's settings (the run goes that way when
    :func:`choose_scheme` says so); None fills in
    :func:`deepbn.inference.config.particle_settings`'s defaults, reported in the
    summary's ``scheme``.
    """
    check_settings(sampler, form, chains, warmup, samples, integration_steps, chunk,
                   particles, block)
    space = LatentSpace.from_network(bn)  # no latent nodes / discrete latents: say so first
    missing = [n for n in bn.observed_names if n not in observed]
    if missing:
        raise UsageError(f"no data for observed node(s) {', '.join(missing[:5])}")
    observed = {n: jnp.asarray(observed[n], jnp.float32) for n in bn.observed_names}
    n_cases = int(next(iter(observed.values())).shape[0]) if observed else 1

    scheme = choose_scheme(bn, form, sampler, centring)
    warmup = default_warmup(warmup, scheme is not None)
    if scheme is not None:
        return _sample_particle(bn, observed, scheme, form, chains, warmup, samples, seed,
                                particles, block, n_cases, progress, checkpoint_path, chunk,
                                shard)
    start = time.perf_counter()
    # built outside jit, so that tied recurrent runs are seen as tied
    if centring is not None:
        reparam = Reparam.from_weights(bn, centring, n_cases)
    else:
        reparam = Reparam.from_form(bn, form, observed, n_cases)
    c = jax.block_until_ready(reparam.weights)
    pilot_seconds = time.perf_counter() - start if form == "auto" and centring is None else 0.0

    key = jax.random.key(seed)
    k_init, k_run = jax.random.split(key)
    u0 = _initial_positions(bn, reparam, jax.random.split(k_init, chains), observed)
    _check_finite(bn, reparam, u0[0], observed)
    u0 = u0.reshape(chains, -1)

    c_np = np.asarray(c)
    binary = bool(np.all((c_np == 0.0) | (c_np == 1.0)))
    cfg = nuts.SamplerConfig(sampler, warmup, integration_steps, space, reparam.runs, n_cases,
                             nuts.Frozen(c_np) if binary else None)
    data = nuts.make_data(bn, observed, c, warmup)
    state = eqx.filter_jit(nuts.init)(u0, data, cfg)  # op by op it took ~1.5 s
    # ``shard``: chains spread over the devices when there are several (same draws)
    settings = {"method": "posterior", "sampler": sampler, "form": form, "chains": chains,
                "warmup": warmup, "integration_steps": integration_steps, "seed": seed,
                "names": bn.names, "parents": bn.parents, "observed": bn.observed,
                "families": [c.family for c in bn.conditionals], "draws": "u"}
    fp = run_layer.fingerprint((eqx.filter(bn, eqx.is_array), observed, c), settings)
    res, u, stats, out = _run_chains(nuts.step, state, data, k_run, warmup, samples, cfg, chunk,
                                     checkpoint_path, fp, progress, shard, chains, draws="u")
    # mapping the draws to z is part of sampling (the hand-written peers do it too)
    args = (bn, nuts.sampler_reparam(data, cfg), jnp.asarray(u), observed)
    t0 = time.perf_counter()
    to_z = _latent_draws.lower(*args).compile()
    t1 = time.perf_counter()
    z = np.asarray(to_z(*args))
    map_seconds, map_compile = time.perf_counter() - t1, t1 - t0
    warm_steps = out["n_steps"][:, :warmup]
    grads = stats["n_steps"]
    seconds = res.seconds + map_seconds
    diag = diagnostics.convergence(z.reshape(chains, samples, -1))
    ess_min = diag["ess_min"]
    summary = {
        **diag,
        "divergences": int(np.sum(stats["diverging"])),
        "gradient_evaluations": int(np.sum(grads) + np.sum(warm_steps)),
        "gradient_evaluations_sampling": int(np.sum(grads)),
        "seconds": round(seconds, 3),
        "compile_seconds": round(res.compile_seconds + map_compile, 3),
        "pilot_seconds": round(pilot_seconds, 3),
        "ess_min_per_s": ess_min / seconds if seconds > 0 else None,
        "ess_median_per_s": diag["ess_median"] / seconds if seconds > 0 else None,
        # per gradient of the sampling phase, the draws the ESS is computed from
        "ess_min_per_1000_grads": 1000.0 * ess_min / max(int(np.sum(grads)), 1),
        "step_size": [float(s) for s in np.asarray(res.state.step_size)],
        "sampler": sampler,
        "seed": seed,
        "chains": chains,
        "warmup": warmup,
        "samples": samples,
        "cases": n_cases,
        "form": {n: round(v, 4) for n, v in space.node_values(c_np).items()},
        "form_name": form if centring is None else "custom",
        "scheme": {"name": sampler, "form": form if centring is None else "custom"},
        "resumed_from": max(0, res.resumed_from - warmup),
        "resumed_from_step": res.resumed_from,
    }
    return PosteriorSamples(space.split(z), space, c_np, summary["form_name"], summary, stats,
                            {n: np.asarray(v) for n, v in observed.items()})


def choose_scheme(bn: BayesNet, form: str, sampler: str = "nuts",
                  centring: np.ndarray | None = None):
    """The state-space model to sample by particle Gibbs, or None for NUTS/HMC.

    ``particle`` asks for it (a one-line error when the network is not a
    state-space chain); ``auto`` takes it for a chain of at least
    :data:`PARTICLE_MIN_LENGTH` states (measured on ``kingma-dbn``: at T = 20 NUTS in
    the auxiliary form mixes, from T = 100 no HMC form does; README "Long runs").
    """
    from deepbn.inference import csmc

    if form not in ("auto", "particle") or centring is not None:
        return None
    model = csmc.chain_model(bn)
    if form == "particle":
        if model is None:
            raise UsageError("--form particle needs a state-space network: a root latent node "
                             "and a recurrent run of latent nodes after it, each with one "
                             "observed child and nothing else")
        return model
    if sampler != "nuts" or model is None or len(model.nodes) < PARTICLE_MIN_LENGTH:
        return None
    return model


def _sample_particle(bn, observed, model, form, chains, warmup, samples, seed, particles,
                     block, n_cases, progress, checkpoint_path, chunk, shard) -> PosteriorSamples:
    """:func:`sample_posterior` by particle Gibbs (:mod:`deepbn.inference.csmc`)."""
    from deepbn.inference import csmc

    particles, block = particle_settings(len(model.nodes), particles, block)

    space = LatentSpace.from_network(bn)
    centred = Reparam.centred(bn, n_cases)
    key = jax.random.key(seed)
    k_init, k_run = jax.random.split(key)
    z0 = _prior_draws(bn, centred, jax.random.split(k_init, chains), observed)
    if not np.isfinite(float(_log_density_at(bn, centred, z0[0], observed))):
        _check_finite(bn, centred, z0[0], observed)  # names the node (slower to compile)
    cfg = csmc.ParticleConfig(model, particles, space, n_cases, warmup, centred.runs, block)
    data = csmc.ParticleData(bn, observed)
    state = eqx.filter_jit(csmc.init)(z0, data, cfg)
    settings = {"method": "posterior", "sampler": "particle-gibbs", "form": form,
                "chains": chains, "warmup": warmup, "particles": particles, "block": block,
                "seed": seed,
                "names": bn.names, "parents": bn.parents, "observed": bn.observed,
                "families": [c.family for c in bn.conditionals]}
    fp = run_layer.fingerprint((eqx.filter(bn, eqx.is_array), observed), settings)
    res, z, stats, _ = _run_chains(csmc.step, state, data, k_run, warmup, samples, cfg, chunk,
                                   checkpoint_path, fp, progress, shard, chains)
    seconds = res.seconds
    diag = diagnostics.convergence(z.reshape(chains, samples, -1))
    c_np = np.ones((n_cases, space.size), np.float32)  # the sweep moves z itself
    names = [bn.names[k] for k in model.nodes]
    summary = {
        **diag,
        "divergences": 0,
        "seconds": round(seconds, 3),
        "compile_seconds": round(res.compile_seconds, 3),
        "pilot_seconds": 0.0,
        "ess_min_per_s": diag["ess_min"] / seconds if seconds > 0 else None,
        "ess_median_per_s": diag["ess_median"] / seconds if seconds > 0 else None,
        "update_rate": float(np.mean(stats["update_rate"])),
        "sampler": "particle-gibbs",
        "seed": seed,
        "chains": chains,
        "warmup": warmup,
        "samples": samples,
        "cases": n_cases,
        "form": {n: 1.0 for n in space.names},
        "form_name": form,
        "scheme": {"name": "particle-gibbs", "form": "particle", "particles": particles,
                   "chain": f"{names[0]}..{names[-1]}", "length": len(names),
                   # 0: one conditional SMC over the whole chain per draw; else each draw
                   # sweeps two staggered partitions into blocks of this many states
                   "block": block,
                   "sweeps_per_draw": 2 if block else 1,
                   "resample_below": None if block else csmc.RESAMPLE_BELOW},
        "resumed_from": max(0, res.resumed_from - warmup),
        "resumed_from_step": res.resumed_from,
    }
    return PosteriorSamples(space.split(z), space, c_np, "particle", summary, stats,
                            {n: np.asarray(v) for n, v in observed.items()})


@eqx.filter_jit
def _latent_draws(bn, reparam: Reparam, u, observed):
    """z for the draws u (chains, draws, cases, size): one batched walk after the run."""
    flat = u.reshape(-1, *u.shape[2:])
    return jax.vmap(lambda v: latent_values(bn, reparam, v, observed))(flat).reshape(u.shape)


def _run_chains(step, state, data, k_run, warmup: int, samples: int, cfg, chunk: int,
                checkpoint_path, fingerprint: str, progress, shard: bool, chains: int,
                draws: str = "z"):
    """Warmup + sampling steps of every chain through the driver (checkpoints, resume,
    sharding); returns (the driver's result, the ``draws`` output of the sampling phase
    (chains, draws, cases, size), its statistics, every step's outputs as
    (chains, steps, ...))."""
    res = run_layer.run(step, state, data, run_layer.raw_key(k_run), warmup + samples,
                        config=cfg, chunk=chunk, checkpoint=checkpoint_path,
                        fingerprint=fingerprint,
                        progress=None if progress is None else (lambda d, t, o: progress(d, t)),
                        place=(lambda s: run_layer.shard_batch(s, chains, "chains"))
                        if shard else None)
    if res.stopped:
        raise UsageError(f"sampling {res.stopped}")
    out = {k: np.swapaxes(v, 0, 1) for k, v in res.outputs.items()}
    kept = out.pop(draws)[:, warmup:]
    return res, kept, {k: v[:, warmup:] for k, v in out.items()}, out
