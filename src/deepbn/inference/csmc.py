"""Particle Gibbs for a long recurrent run: conditional SMC with ancestor sampling.

A dynamic Bayes net whose latent nodes are one chain z_1 -> z_2 -> ... -> z_T
(a root *head* z_1 and a recurrent :class:`~deepbn.reparam.Run` z_2..z_T),
each z_t with one observed child x_t, is a state-space model. Over long runs
neither HMC form mixes (see the README, "Long runs"): the centred form couples
neighbouring states tightly, the auxiliary form makes late data depend on early
noise through a long composition of the dynamics, and on ``kingma-dbn`` the
posterior over the trajectory is multimodal (the dynamics is a noisy limit
cycle whose phase the data pin down only loosely), which no local move crosses.
Conditional SMC moves the whole trajectory at once:

- a bootstrap particle filter with ``N`` particles, one of which is held at the
  current trajectory (the *reference*; Andrieu, Doucet & Holenstein, JRSS-B 2010,
  Sec. 4.5, conditional SMC);
- the reference's ancestor at every step is redrawn with weights
  w_{t-1}^i p(z*_t | z_{t-1}^i) (*ancestor sampling*; Lindsten, Jordan & Schön,
  JMLR 2014, Alg. 2), so that the whole path, not only its end, is renewed;
- the new trajectory is one path traced back from a particle drawn by its final
  weight;
- resampling is adaptive (only where the weights' ESS is below
  :data:`RESAMPLE_BELOW` of the particles; Del Moral, Doucet & Jasra, JRSS-B 2006):
  with weak observations the genealogies then coalesce slowly and far more of the
  path is renewed per sweep.

*Blocked* particle Gibbs (``block`` > 0; Singh, Lindsten & Moulines, Biometrika
2017) runs the same conditional SMC on blocks of the chain conditioned on the
states around them, two staggered partitions per sweep (:func:`block_starts`),
the blocks of one half-sweep vmapped. It is exact but not the default: on
``kingma-dbn`` the expanding dynamics leaves a block's fixed end reachable only
from paths next to the reference's, and it mixes far worse (README, "Long runs").

Each sweep leaves the posterior p(z_{1:T} | x_{1:T}) invariant whatever ``N``
(ibid., Thm. 1); more particles mix faster. Cases are independent sequences,
vmapped, as are the chains. :func:`init` / :func:`step` are an ``init`` / ``step``
pair for :func:`deepbn.run.run` (checkpointed chunks, resume); the first
``warmup`` sweeps are burn-in. Any continuous family serves as a transition
(its ``sample`` and ``log_prob``) and any family as an emission (``log_prob``).

Example:
    >>> from deepbn import examples
    >>> model = chain_model(examples.kingma_dbn(T=5, dim=2))
    >>> model.nodes, model.emissions
    ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from deepbn.bn import BayesNet
from deepbn.reparam import LatentSpace, Reparam, Run, log_density, runs, stack_modules

HEAD_FACTOR = 8  # particles at the head, per particle of the run
RESAMPLE_BELOW = 0.5  # resample when the weights' ESS falls below this share of the particles


class ChainModel(NamedTuple):
    """Which nodes form the state-space model (static, found outside ``jit``)."""

    nodes: tuple[int, ...]  # the latent chain in time order: head, then the run
    emissions: tuple[int | None, ...]  # observed child of each (the head's may be None)
    tied: bool  # the run's steps (and emissions) share one parameter set


def chain_model(bn: BayesNet, tie: bool = True) -> ChainModel | None:
    """The network as a state-space model, or None when it is not one.

    It is one when its latent nodes are exactly a root head and one recurrent
    run of :func:`deepbn.reparam.runs` starting at the head's child, every run
    node has its emission, and every observed node is the single-parent child
    of a chain node (nothing else in the network for the filter to ignore).
    """
    found = [r for r in runs(bn, tie=tie) if r.emissions is not None]
    latent = [j for j in range(bn.d) if not bn.observed[j]]
    if len(found) != 1:
        return None
    run = found[0]
    parents = bn.parents[run.nodes[0]]
    if len(parents) != 1:
        return None
    head = bn.index(parents[0])
    if bn.observed[head] or bn.parents[head] or bn.dims[head] != bn.dims[run.nodes[0]]:
        return None
    if not bn.conditional(head).continuous:
        return None
    if sorted(latent) != sorted((head,) + run.nodes):
        return None
    head_emissions = [j for j in range(bn.d)
                      if bn.observed[j] and bn.parents[j] == (bn.names[head],)]
    if len(head_emissions) > 1:
        return None
    emissions = (head_emissions[0] if head_emissions else None,) + run.emissions
    observed = {j for j in range(bn.d) if bn.observed[j]}
    if observed != {e for e in emissions if e is not None}:
        return None
    return ChainModel((head,) + run.nodes, emissions, run.tied)


class ParticleConfig(NamedTuple):
    """Static settings of particle Gibbs (hashable)."""

    model: ChainModel
    particles: int
    space: LatentSpace
    n_cases: int
    warmup: int
    runs: tuple[Run, ...] = ()  # the network's runs, for the log-density (walked as scans)
    block: int = 0  # block length of blocked particle Gibbs; 0: the whole chain at once


class ParticleData(NamedTuple):
    bn: BayesNet
    observed: dict  # name -> (cases, dim)


class ParticleState(NamedTuple):
    t: jnp.ndarray  # sweeps taken (int32 scalar)
    reference: jnp.ndarray  # (chains, cases, T, dim): each chain's current trajectory


def _resample(key, log_w, n):
    """n ancestors drawn i.i.d. with probabilities ∝ exp(log_w) (inverse CDF, O(N log N))."""
    cdf = jnp.cumsum(jax.nn.softmax(log_w))
    idx = jnp.searchsorted(cdf, jax.random.uniform(key, (n,)) * cdf[-1])
    return jnp.minimum(idx, log_w.shape[0] - 1)


def _propagate(k_a, k_z, k_as, cond, z, log_w, z_ref, n: int,
               resample_below: float | None = None):
    """One step of conditional SMC: the n - 1 free particles resampled by their weights
    and moved by ``cond``, the reference's state ``z_ref`` kept last, its parent drawn by
    ancestor sampling. Returns (the new particles (n, dim), their parents' indices (n,),
    the log-weights they carry over: 0 after resampling).

    ``resample_below`` (adaptive resampling): resample only when the weights' ESS is below
    this share of the particles; None: always.
    """
    a = _resample(k_a, log_w, n - 1)
    # ancestor sampling: the reference's parent redrawn ∝ w_{t-1}^i p(z*_t | z_{t-1}^i)
    a_ref = jax.random.categorical(k_as, log_w + cond.log_prob(
        jnp.broadcast_to(z_ref, z.shape), z))
    w_prev = 0.0
    if resample_below is not None:
        # while the weights are even, particles keep their own parents (and weights), so
        # the genealogies coalesce far more slowly
        p = jax.nn.softmax(log_w)
        again = 1.0 / jnp.sum(p * p) < resample_below * n
        a = jnp.where(again, a, jnp.arange(n - 1))
        a_ref = jnp.where(again, a_ref, n - 1)
        w_prev = jnp.where(again, 0.0, log_w)
    moved = cond.sample(k_z, z[a])
    return (jnp.concatenate([moved, z_ref[None]]), jnp.concatenate([a, a_ref[None]]), w_prev)


def _sweep(key, reference, bn: BayesNet, xs, x_head, model: ChainModel, n: int,
           resample_below: float = RESAMPLE_BELOW):
    """One conditional-SMC sweep with ancestor sampling for one case: a new (T, dim) path.

    ``xs`` (T-1, e): the run's emissions; ``x_head`` (e,) or None: the head's. The particles
    are resampled (and the reference's ancestor redrawn) only at steps where the weights'
    effective sample size is below ``resample_below`` times the particles (1.01: always).
    """
    conds = bn.conditionals
    head = conds[model.nodes[0]]
    run_nodes, run_em = model.nodes[1:], model.emissions[1:]
    if model.tied:
        step_cond, step_em = conds[run_nodes[0]], conds[run_em[0]]
        per_step = None
    else:
        per_step = (stack_modules([conds[k] for k in run_nodes]),
                    stack_modules([conds[e] for e in run_em]))
    k0, k1, k_run, k_end = jax.random.split(key, 4)
    # the head is drawn from its prior, usually far broader than its posterior: HEAD_FACTOR
    # times more particles there, so that ancestor sampling finds alternatives to the
    # reference's z_1 (a valid CSMC: the particle number may vary with t)
    m = HEAD_FACTOR * n
    z0 = head.sample(k0, jnp.zeros((m, 0))).at[-1].set(reference[0])
    if x_head is None:
        log_w0 = jnp.zeros(m)
    else:
        log_w0 = conds[model.emissions[0]].log_prob(jnp.broadcast_to(x_head, (m,) + x_head.shape),
                                                    z0)

    def step(carry, inp, force=False):
        z, log_w = carry
        k, z_ref, x_t = inp[:3]
        cond, em = (step_cond, step_em) if per_step is None else inp[3]
        z_new, anc, w_prev = _propagate(*jax.random.split(k, 3), cond, z, log_w, z_ref, n,
                                        None if force else resample_below)
        log_w = w_prev + em.log_prob(jnp.broadcast_to(x_t, (n,) + x_t.shape), z_new)
        return (z_new, log_w), (z_new, anc)

    first = (k1, reference[1], xs[0])
    if per_step is not None:
        first = first + (jax.tree_util.tree_map(lambda a: a[0], per_step),)
    (z1, log_w1), (_, a1) = step((z0, log_w0), first, force=True)  # m -> n particles
    steps = reference.shape[0] - 2
    inputs = (jax.random.split(k_run, steps), reference[2:], xs[1:])
    if per_step is not None:
        inputs = inputs + (jax.tree_util.tree_map(lambda a: a[1:], per_step),)
    (_, log_w), (zs, ancestors) = jax.lax.scan(step, (z1, log_w1), inputs)
    zs = jnp.concatenate([z1[None], zs])  # (T - 1, n, dim): steps 2..T
    last = jax.random.categorical(k_end, log_w)

    def trace(b, t):  # the particle at time t + 1 (0-based), then its parent's index
        return jnp.where(t > 0, ancestors[jnp.maximum(t - 1, 0)][b], b), zs[t][b]

    b1, path = jax.lax.scan(trace, last, jnp.arange(steps, -1, -1))
    return jnp.concatenate([z0[a1[b1]][None], path[::-1]])


def block_starts(T: int, block: int) -> tuple[tuple[int, ...], ...]:
    """The four half-sweeps of a blocked sweep, as the start of each block (static).

    Partition A cuts the chain at 0, L, 2L, ...; partition B at L/2, 3L/2, ...
    (its first block, starting before 0, is cut short there), so a pair of
    neighbours split by one partition lies inside a block of the other. Each
    partition is swept in two halves, its even blocks then its odd ones: blocks of
    one half are separated by a block held fixed, hence conditionally independent
    given their boundary states, and are drawn together (vmapped). Singh, Lindsten &
    Moulines (Biometrika 2017), Sec. 3: blocked particle Gibbs with overlapping blocks.
    """
    halves = []
    for shift in (0, block // 2):
        ks = range(-1 if shift else 0, -(-(T - shift) // block))
        starts = [shift + k * block for k in ks]
        halves += [tuple(s for i, s in enumerate(starts) if i % 2 == p) for p in (0, 1)]
    return tuple(h for h in halves if h)


def _block(key, reference, xs, x_head, start, length: int, bn: BayesNet, model: ChainModel,
           n: int, per_step):
    """Conditional SMC with ancestor sampling on the states start..start+length-1 of one case,
    given the states just before and after the block (the reference's): a new path and the
    time index of each of its states (T, out of range, where the window leaves the chain).

    The window has a fixed length so that blocks vmap; steps outside 0..T-1 leave the
    particles as they are. The first state of the chain is drawn from the head's prior,
    any other first state of a block from the transition out of the fixed state before
    it, and the final weights take in the transition into the fixed state after the
    block (the target is p(z_block | z_before, z_after, x_block): Singh et al. 2017, eq. 5).
    """
    conds = bn.conditionals
    T = reference.shape[0]
    head = conds[model.nodes[0]]
    head_em = None if model.emissions[0] is None else conds[model.emissions[0]]
    ts = start + jnp.arange(length)
    inside = (ts >= 0) & (ts < T)
    tc = jnp.clip(ts, 0, T - 1)
    end = start + length

    def at(t):  # the run step's (transition, emission) into time t >= 1
        if per_step is None:
            return conds[model.nodes[1]], conds[model.emissions[1]]
        return jax.tree_util.tree_map(lambda a: a[jnp.clip(t - 1, 0, T - 2)], per_step)

    def step(carry, inp):
        z, log_w = carry
        k, z_ref, x_t, t, ok = inp
        cond, em = at(t)
        k_a, k_z, k_as, k_h = jax.random.split(k, 4)
        z_run, anc_run, _ = _propagate(k_a, k_z, k_as, cond, z, log_w, z_ref, n)
        w_run = em.log_prob(jnp.broadcast_to(x_t, (n,) + x_t.shape), z_run)
        is_head = t == 0
        z_head = head.sample(k_h, jnp.zeros((n, 0))).at[-1].set(z_ref)
        w_head = (jnp.zeros(n) if head_em is None else
                  head_em.log_prob(jnp.broadcast_to(x_head, (n,) + x_head.shape), z_head))
        keep = jnp.arange(n)
        z_new = jnp.where(is_head, z_head, z_run)
        w_new = jnp.where(is_head, w_head, w_run)
        anc = jnp.where(is_head, keep, anc_run)
        z_new, w_new = jnp.where(ok, z_new, z), jnp.where(ok, w_new, log_w)
        return (z_new, w_new), (z_new, jnp.where(ok, anc, keep))

    k_run, k_end = jax.random.split(key)
    # the state before the block: every particle starts there (the head block ignores it)
    z_before = jnp.broadcast_to(reference[jnp.clip(start - 1, 0, T - 1)], (n, reference.shape[1]))
    (z_last, log_w), (zs, ancestors) = jax.lax.scan(
        step, (z_before, jnp.zeros(n)),
        (jax.random.split(k_run, length), reference[tc], xs[tc], ts, inside))
    after, _ = at(end)
    z_after = reference[jnp.clip(end, 0, T - 1)]
    log_w = log_w + jnp.where(end < T, after.log_prob(jnp.broadcast_to(z_after, z_last.shape),
                                                      z_last), 0.0)
    last = jax.random.categorical(k_end, log_w)

    def trace(b, j):  # the particle at step j, then its parent's index
        return ancestors[j][b], zs[j][b]

    _, path = jax.lax.scan(trace, last, jnp.arange(length - 1, -1, -1))
    return path[::-1], jnp.where(inside, ts, T)


def _blocked_sweep(key, reference, bn: BayesNet, xs, x_head, model: ChainModel, n: int,
                   block: int):
    """One blocked particle-Gibbs sweep of one case: every half-sweep of :func:`block_starts`
    in turn, its blocks vmapped; ``xs`` (T, e): the emissions, row 0 unused."""
    conds = bn.conditionals
    per_step = None
    if not model.tied:
        per_step = (stack_modules([conds[k] for k in model.nodes[1:]]),
                    stack_modules([conds[e] for e in model.emissions[1:]]))
    T = reference.shape[0]
    halves = block_starts(T, block)
    # every half padded with blocks past the end (they change nothing) to one shape, so that
    # the halves are one scan and the block's conditional SMC compiles once
    width = max(len(h) for h in halves)
    starts = np.array([h + (T + block,) * (width - len(h)) for h in halves], np.int32)

    def half(ref, inp):
        k, s = inp
        paths, idx = jax.vmap(lambda kk, ss: _block(kk, ref, xs, x_head, ss, block, bn, model,
                                                     n, per_step))(jax.random.split(k, width), s)
        return ref.at[idx.ravel()].set(paths.reshape(-1, ref.shape[1]), mode="drop"), None

    reference, _ = jax.lax.scan(half, reference,
                                (jax.random.split(key, len(halves)), jnp.asarray(starts)))
    return reference


def to_flat(space: LatentSpace, bn: BayesNet, model: ChainModel,
            paths: jnp.ndarray) -> jnp.ndarray:
    """(..., T, dim) trajectories -> (..., size) latent values in the space's order."""
    return space.join({bn.names[k]: paths[..., t, :] for t, k in enumerate(model.nodes)})


def from_flat(space: LatentSpace, bn: BayesNet, model: ChainModel,
              z: jnp.ndarray) -> jnp.ndarray:
    """Inverse of :func:`to_flat`."""
    parts = space.split(z)
    return jnp.stack([parts[bn.names[k]] for k in model.nodes], axis=-2)


def init(z0: jnp.ndarray, data: ParticleData, cfg: ParticleConfig) -> ParticleState:
    """Chains at the latent values ``z0`` (chains, cases, size)."""
    return ParticleState(jnp.zeros((), jnp.int32), from_flat(cfg.space, data.bn, cfg.model, z0))


def sweep_cases(key, reference, bn: BayesNet, observed, model: ChainModel, n: int,
                block: int = 0):
    """One sweep for every case: ``reference`` (cases, T, dim) -> the new trajectories.

    ``block``: 0 (or at least T) for one conditional SMC over the whole chain, else the
    block length of a blocked sweep (:func:`block_starts`)."""
    # (cases, T-1, e): the run's emissions
    xs = jnp.stack([observed[bn.names[e]] for e in model.emissions[1:]], axis=1)
    keys = jax.random.split(key, reference.shape[0])
    if 0 < block < reference.shape[1]:
        xs = jnp.concatenate([xs[:, :1], xs], axis=1)  # row t: x_t's value (row 0 unused)
        x_head = (jnp.zeros((reference.shape[0], 0)) if model.emissions[0] is None
                  else observed[bn.names[model.emissions[0]]])
        return jax.vmap(lambda k, r, x, x0: _blocked_sweep(k, r, bn, x, x0, model, n, block))(
            keys, reference, xs, x_head)
    if model.emissions[0] is None:
        return jax.vmap(lambda k, r, x: _sweep(k, r, bn, x, None, model, n))(keys, reference, xs)
    x_head = observed[bn.names[model.emissions[0]]]
    return jax.vmap(lambda k, r, x, x0: _sweep(k, r, bn, x, x0, model, n))(
        keys, reference, xs, x_head)


def step(key, state: ParticleState, data: ParticleData, cfg: ParticleConfig):
    """One particle-Gibbs sweep of every chain (burn-in while ``state.t < warmup``)."""
    bn = data.bn
    keys = jax.random.split(key, state.reference.shape[0])
    new = jax.vmap(lambda k, r: sweep_cases(k, r, bn, data.observed, cfg.model,
                                            cfg.particles, cfg.block))(keys, state.reference)
    z = to_flat(cfg.space, bn, cfg.model, new)  # (chains, cases, size)
    centred = Reparam(cfg.space, jnp.ones((cfg.n_cases, cfg.space.size)), cfg.runs)
    lp = jax.vmap(lambda zz: log_density(bn, centred, zz, data.observed))(z)
    # the share of states the sweep renewed: low values flag a degenerate path
    moved = jnp.mean(jnp.any(new != state.reference, axis=-1), axis=(1, 2))
    return ParticleState(state.t + 1, new), {"z": z, "lp": lp, "update_rate": moved}
