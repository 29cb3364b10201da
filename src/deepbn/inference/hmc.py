"""Posterior sampling of a network's latent nodes with BlackJAX NUTS or HMC.

The target is :func:`deepbn.inference.forms.log_density` in the chosen form;
warmup (BlackJAX window adaptation: step size and diagonal mass matrix) and
sampling for all chains are one jitted computation, chains vmapped. Samples
come back as latent values z whatever the form.

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
from functools import lru_cache
from typing import NamedTuple

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from deepbn.bn import BayesNet
from deepbn.errors import UsageError
from deepbn.inference import diagnostics, forms

SAMPLERS = ("nuts", "hmc")


class PosteriorSamples(NamedTuple):
    samples: dict[str, np.ndarray]  # node -> (chains, draws, cases, dim), latent values z
    space: forms.LatentSpace
    centring: np.ndarray  # (cases, size): 1 centred, 0 auxiliary
    form: str
    summary: dict  # diagnostics, timings, centring per node


def observed_values(bn: BayesNet, table: np.ndarray) -> dict[str, jnp.ndarray]:
    """Observed nodes' values from a table whose columns are ``bn.columns(observed)``."""
    table = np.atleast_2d(np.asarray(table, np.float32))
    return bn.from_table(table, bn.observed_names)


@eqx.filter_jit
def _initial_positions(bn, space, keys, observed, n_cases: int, centring):
    # jitted: vmapped op by op, drawing from the prior took ~5 s on kingma-dbn
    z0 = jax.vmap(lambda k: forms.prior_latents(bn, space, k, observed, n_cases))(keys)
    return jax.vmap(lambda z: forms.coordinates(bn, space, z, observed, centring))(z0)


@eqx.filter_jit
def _log_prob_nodes_at(bn, space, u0, observed, centring):
    values, _ = forms._walk(bn, space, u0, observed, centring)
    return bn.log_prob_nodes(values)


def _check_finite(bn, space, u0, observed, centring):
    per_node = _log_prob_nodes_at(bn, space, u0, observed, centring)
    for name in bn.names:
        if not np.all(np.isfinite(np.asarray(per_node[name]))):
            raise UsageError(f"log-density is not finite at initialisation at node '{name}'; "
                             "check the data for values impossible under that node "
                             "(e.g. a Bernoulli column holding something other than 0/1)")


class _Frozen:
    """A hashable wrapper of a small numpy array (a static compile-time constant)."""

    def __init__(self, array: np.ndarray):
        self.array = np.ascontiguousarray(array, np.float32)
        self._key = (self.array.shape, self.array.tobytes())

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other) -> bool:
        return isinstance(other, _Frozen) and self._key == other._key


@lru_cache(maxsize=16)
def _program(space: forms.LatentSpace, plan: tuple[forms.Chain, ...], sampler: str, warmup: int,
             samples: int, n_cases: int, integration_steps: int, progress: Callable | None,
             fixed_centring: _Frozen | None = None):
    """The jitted warmup + sampling for all chains (cached per shape and settings)."""
    size = space.size

    def run(keys, u0, bn, observed, centring):
        if fixed_centring is not None:
            # a 0/1 centring known when compiling: XLA folds the forms' weights away
            centring = jnp.asarray(fixed_centring.array)
        # one traced copy of the network walk, reused at every call site inside NUTS
        @jax.jit
        def logdensity(u_flat):
            return forms.log_density(bn, space, u_flat.reshape(n_cases, size), observed, centring,
                                     plan)

        algorithm = blackjax.nuts if sampler == "nuts" else blackjax.hmc
        extra = {} if sampler == "nuts" else {"num_integration_steps": integration_steps}
        info_fn = blackjax.adaptation.base.get_filter_adapt_info_fn(
            info_keys={"num_integration_steps", "is_divergent"})

        def one_chain(key, u_start):
            k_warm, k_draw = jax.random.split(key)
            adapt = blackjax.window_adaptation(algorithm, logdensity, adaptation_info_fn=info_fn,
                                               **extra)
            (state, params), warm_info = adapt.run(k_warm, u_start, num_steps=warmup)
            kernel = algorithm(logdensity, **{**extra, **params})

            def body(s, xs):
                k, i = xs
                s, info = kernel.step(k, s)
                if progress is not None:
                    jax.lax.cond(i % 50 == 49, lambda: jax.debug.callback(progress, i + 1),
                                 lambda: None)
                return s, (s.position, info.num_integration_steps, info.is_divergent)

            _, (draws, n_steps, divergent) = jax.lax.scan(
                body, state, (jax.random.split(k_draw, samples), jnp.arange(samples)))
            z = jax.vmap(lambda u: forms.latent_values(bn, space, u.reshape(n_cases, size),
                                                       observed, centring, plan))(draws)
            warm_steps = _integration_steps(warm_info, sampler, integration_steps)
            return z, jnp.sum(n_steps), warm_steps, jnp.sum(divergent), params["step_size"]

        return jax.vmap(one_chain)(keys, u0)

    return jax.jit(run)


def _integration_steps(warm_info, sampler, integration_steps):
    steps = warm_info.info.num_integration_steps
    if sampler == "hmc":
        return integration_steps * steps.shape[0]
    return jnp.sum(steps)


def sample_posterior(
    bn: BayesNet,
    observed: Mapping[str, jnp.ndarray],
    form: str = "auto",
    sampler: str = "nuts",
    chains: int = 2,
    warmup: int = 1000,
    samples: int = 1000,
    seed: int = 0,
    integration_steps: int = 16,
    centring: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
) -> PosteriorSamples:
    """Posterior draws of the latent nodes given ``observed`` ((cases, dim) per node).

    ``form``: ``centred``, ``auxiliary`` or ``auto`` (:func:`forms.auto_centring`);
    an explicit ``centring`` array overrides it. ``progress(draw)`` is called
    every 50 draws from inside the jitted loop.
    """
    if sampler not in SAMPLERS:
        raise UsageError(f"unknown sampler '{sampler}'; use one of {', '.join(SAMPLERS)}")
    if form not in forms.FORMS:
        raise UsageError(f"unknown form '{form}'; use one of {', '.join(forms.FORMS)}")
    if chains < 1 or warmup < 1 or samples < 4:
        raise UsageError("need at least 1 chain, 1 warmup step and 4 samples")
    space = forms.LatentSpace.from_network(bn)
    missing = [n for n in bn.observed_names if n not in observed]
    if missing:
        raise UsageError(f"no data for observed node(s) {', '.join(missing[:5])}")
    observed = {n: jnp.asarray(observed[n], jnp.float32) for n in bn.observed_names}
    n_cases = int(next(iter(observed.values())).shape[0]) if observed else 1

    plan = forms.chains(bn)  # outside jit: tied recurrent runs are seen as tied
    start = time.perf_counter()
    if centring is not None:
        c = jnp.broadcast_to(jnp.asarray(centring, jnp.float32), (n_cases, space.size))
    elif form == "auto":
        c = forms.auto_centring(bn, space, observed, n_cases, plan=plan)
    else:
        c = forms.centring_for(form, space, n_cases)
    c = jax.block_until_ready(c)
    pilot_seconds = time.perf_counter() - start if form == "auto" and centring is None else 0.0

    key = jax.random.key(seed)
    k_init, k_run = jax.random.split(key)
    u0 = _initial_positions(bn, space, jax.random.split(k_init, chains), observed, n_cases, c)
    _check_finite(bn, space, u0[0], observed, c)
    u0 = u0.reshape(chains, -1)
    keys = jax.random.split(k_run, chains)

    c_np = np.asarray(c)
    binary = bool(np.all((c_np == 0.0) | (c_np == 1.0)))
    program = _program(space, plan, sampler, warmup, samples, n_cases, integration_steps, progress,
                       _Frozen(c_np) if binary else None)
    t0 = time.perf_counter()
    compiled = program.lower(keys, u0, bn, observed, c).compile()
    compile_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    z, grads, warm_grads, divergences, step_size = jax.block_until_ready(
        compiled(keys, u0, bn, observed, c))
    seconds = time.perf_counter() - t0

    z = np.asarray(z)  # (chains, draws, cases, size)
    diag = diagnostics.summarize(z.reshape(chains, samples, -1))
    ess_min = diag["ess_min"]
    summary = {
        **diag,
        "divergences": int(np.sum(divergences)),
        "gradient_evaluations": int(np.sum(grads) + np.sum(warm_grads)),
        "gradient_evaluations_sampling": int(np.sum(grads)),
        "seconds": round(seconds, 3),
        "compile_seconds": round(compile_seconds, 3),
        "pilot_seconds": round(pilot_seconds, 3),
        "ess_min_per_s": ess_min / seconds,
        "ess_median_per_s": diag["ess_median"] / seconds,
        # per gradient of the sampling phase, the draws the ESS is computed from
        "ess_min_per_1000_grads": 1000.0 * ess_min / max(int(np.sum(grads)), 1),
        "step_size": [float(s) for s in np.asarray(step_size)],
        "sampler": sampler,
        "chains": chains,
        "warmup": warmup,
        "samples": samples,
        "cases": n_cases,
        "form": {n: round(v, 4) for n, v in space.node_values(np.asarray(c)).items()},
        "form_name": form if centring is None else "custom",
    }
    return PosteriorSamples(space.split(z), space, np.asarray(c), summary["form_name"], summary)
