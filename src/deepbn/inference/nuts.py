"""NUTS / HMC over a network's latent nodes as an ``init`` / ``step`` pair (BlackJAX kernels).

One :func:`step` advances every chain by one transition. The first
``warmup`` steps are Stan's window adaptation (Hoffman & Gelman, JMLR 2014;
the Stan reference manual's warmup schedule): BlackJAX's dual-averaging
step-size adaptation and Welford diagonal mass-matrix adaptation, composed
over BlackJAX's schedule exactly as ``blackjax.window_adaptation`` does, but
one step at a time so that :func:`deepbn.run.run` can checkpoint in the
middle of warmup. After warmup the adapted step size and inverse mass matrix
stay fixed. The chains adapt together: one dual averaging on their mean
acceptance rate and one Welford estimate over all of their positions, so
every chain gets the same step size and mass matrix. The chains are vmapped,
so each NUTS transition costs the longest trajectory among them; with a step
size per chain the chain with the smallest one set that length while the
others used a fraction of it (on kingma-dbn, T = 20, 4 chains: 1.34 gradient
slots per gradient used, against 1.16 for hand-written BlackJAX's per-chain
adaptation), and the pooled mass matrix sees four times the draws. The step
counter in the state says which phase a step is in, so the kernels are
never written twice.

The target is :func:`deepbn.reparam.log_density` in the given
centring; every step also returns each chain's new position u (the
sampler's coordinates, which :func:`deepbn.reparam.latent_values` maps to z),
the log-density and BlackJAX's transition statistics.

Example:
    >>> cfg = SamplerConfig("nuts", warmup=200, integration_steps=16, space=space,
    ...                     runs=(), n_cases=1)                     # doctest: +SKIP
    >>> state = init(u0, data, cfg)                                  # doctest: +SKIP
    >>> res = deepbn.run.run(step, state, data, key, 400, config=cfg)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, NamedTuple

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.mass_matrix import mass_matrix_adaptation
from blackjax.adaptation.step_size import dual_averaging_adaptation
from blackjax.adaptation.window_adaptation import build_schedule

from deepbn.bn import BayesNet
from deepbn.inference.config import SAMPLERS  # noqa: E402, F401
from deepbn.reparam import LatentSpace, Reparam, Run, log_density


class Frozen:
    """A hashable wrapper of a small numpy array (a static compile-time constant)."""

    def __init__(self, array: np.ndarray):
        self.array = np.ascontiguousarray(array, np.float32)
        self._key = (self.array.shape, self.array.tobytes())

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other) -> bool:
        return isinstance(other, Frozen) and self._key == other._key


class SamplerConfig(NamedTuple):
    """Static settings of the sampler (hashable)."""

    sampler: str  # nuts | hmc
    warmup: int
    integration_steps: int  # leapfrog steps per HMC transition (hmc only)
    space: LatentSpace
    runs: tuple[Run, ...]  # the reparam's recurrent runs, found outside jit (tied ones known)
    n_cases: int
    fixed_centring: Frozen | None = None  # a 0/1 centring known when compiling
    target_acceptance: float = 0.8


class SamplerData(NamedTuple):
    bn: BayesNet
    observed: dict  # name -> (cases, dim)
    centring: jnp.ndarray  # (cases, size)
    schedule: jnp.ndarray  # (max(warmup, 1), 2) int32: window stage, end of a slow window


class AdaptationState(NamedTuple):
    step_size_state: Any  # dual averaging, shared by the chains (its step size is warmup's)
    mass_matrix_state: Any  # Welford over every chain's draws (its matrix is warmup's)


class SamplerState(NamedTuple):
    t: jnp.ndarray  # steps taken (int32 scalar)
    chain: Any  # BlackJAX HMCState, leading axis chains
    adaptation: AdaptationState
    step_size: jnp.ndarray  # (chains,) the adapted step size (final once t >= warmup)
    inverse_mass_matrix: jnp.ndarray  # (chains, size)


def make_data(bn: BayesNet, observed, centring, warmup: int) -> SamplerData:
    schedule = np.asarray(build_schedule(max(warmup, 1)), np.int32).reshape(-1, 2)
    return SamplerData(bn, dict(observed), jnp.asarray(centring, jnp.float32),
                       jnp.asarray(schedule))


def sampler_reparam(data: SamplerData, cfg: SamplerConfig) -> Reparam:
    """The form the sampler moves in (its fixed 0/1 centring folded in when known)."""
    weights = data.centring
    if cfg.fixed_centring is not None:
        # a 0/1 centring known when compiling: XLA folds the weights away, and the
        # walk skips what a fully centred or auxiliary run does not need (numpy, since
        # any jnp operation inside a trace is staged)
        weights = cfg.fixed_centring.array
    return Reparam(cfg.space, weights, cfg.runs)


def _logdensity(data: SamplerData, cfg: SamplerConfig):
    size = cfg.space.size
    reparam = sampler_reparam(data, cfg)

    # one traced copy of the network walk, reused at every call site inside NUTS
    @jax.jit
    def logdensity(u_flat):
        return log_density(data.bn, reparam, u_flat.reshape(cfg.n_cases, size), data.observed)

    return logdensity


def _adaptation(cfg: SamplerConfig):
    mm_init, mm_update, mm_final = mass_matrix_adaptation(True)
    da_init, da_update, da_final = dual_averaging_adaptation(cfg.target_acceptance)
    return (mm_init, mm_update, mm_final), (da_init, da_update, da_final)


def _kernel(cfg: SamplerConfig):
    if cfg.sampler == "nuts":
        return blackjax.nuts.build_kernel(), {}
    return blackjax.hmc.build_kernel(), {"num_integration_steps": cfg.integration_steps}


def init(u0: jnp.ndarray, data: SamplerData, cfg: SamplerConfig) -> SamplerState:
    """Chains at the flat positions ``u0`` (chains, cases * size), adaptation at its start."""
    logdensity = _logdensity(data, cfg)
    (mm_init, _, _), (da_init, _, _) = _adaptation(cfg)
    n_chains, dim = u0.shape
    chain = jax.vmap(lambda u: blackjax.nuts.init(u, logdensity))(u0)
    # arrays throughout (the initial states hold Python scalars, which a checkpoint
    # would store as float64 / int64)
    mm = jax.tree_util.tree_map(jnp.asarray, mm_init(dim))
    da = jax.tree_util.tree_map(jnp.asarray, da_init(jnp.float32(1.0)))
    ones = jnp.ones((n_chains,), jnp.float32)
    mass = jnp.broadcast_to(mm.inverse_mass_matrix, (n_chains, dim))
    return SamplerState(jnp.zeros((), jnp.int32), chain, AdaptationState(da, mm), ones, mass)


def _adapt(ad: AdaptationState, stage, positions, acceptance, cfg: SamplerConfig):
    """One step of Stan's window adaptation, pooled over the chains (fast or slow window):
    ``positions`` (chains, size), ``acceptance`` (chains,)."""
    (_, mm_update, mm_final), (da_init, da_update, da_final) = _adaptation(cfg)
    da = da_update(ad.step_size_state, jnp.mean(acceptance))

    def welford():
        return jax.lax.scan(lambda m, p: (mm_update(m, p), None), ad.mass_matrix_state,
                            positions)[0]

    mm = jax.lax.cond(stage[0] == 1, welford, lambda: ad.mass_matrix_state)

    def window_end():
        mm_new = mm_final(mm)
        return da_init(da_final(da)), mm_new

    return AdaptationState(*jax.lax.cond(stage[1] == 1, window_end, lambda: (da, mm)))


def step(key, state: SamplerState, data: SamplerData, cfg: SamplerConfig):
    """One transition of every chain: adaptive while ``state.t < warmup``, then fixed."""
    logdensity = _logdensity(data, cfg)
    kernel, extra = _kernel(cfg)
    in_warmup = state.t < cfg.warmup
    ad = state.adaptation
    step_size = jnp.where(in_warmup, jnp.exp(ad.step_size_state.log_step_size),
                          state.step_size)
    inverse_mass = jnp.where(in_warmup, ad.mass_matrix_state.inverse_mass_matrix,
                             state.inverse_mass_matrix)
    keys = jax.random.split(key, step_size.shape[0])
    chain, info = jax.vmap(lambda k, s, e, m: kernel(k, s, logdensity, e, m, **extra))(
        keys, state.chain, step_size, inverse_mass)

    def adapt():
        stage = data.schedule[jnp.minimum(state.t, data.schedule.shape[0] - 1)]
        new = _adapt(ad, stage, chain.position, info.acceptance_rate, cfg)
        final = jnp.exp(new.step_size_state.log_step_size_avg)
        return (new, jnp.full_like(state.step_size, final),
                jnp.broadcast_to(new.mass_matrix_state.inverse_mass_matrix,
                                 state.inverse_mass_matrix.shape))

    ad, final_step, final_mass = jax.lax.cond(
        in_warmup, adapt, lambda: (ad, state.step_size, state.inverse_mass_matrix))
    outputs = {
        # the coordinates, not z: walking the network once per step to map them cost ~12%
        # of sampling on kingma-dbn (T = 20); hmc.sample_posterior maps the kept draws
        "u": chain.position.reshape(-1, cfg.n_cases, cfg.space.size),  # (chains, cases, size)
        "lp": chain.logdensity,
        "energy": info.energy,
        "acceptance_rate": info.acceptance_rate,
        "diverging": info.is_divergent,
        "n_steps": info.num_integration_steps,
        "step_size": step_size,
    }
    if cfg.sampler == "nuts":
        outputs["tree_depth"] = info.num_trajectory_expansions
    return SamplerState(state.t + 1, chain, ad, final_step, final_mass), outputs
