"""Order MCMC under BGe: a DAG posterior sampler that mixes at hundreds of variables.

A Markov chain over node *orders* ≺ (Friedman & Koller, Mach. Learn. 50, 2003): given
an order the parent sets of the nodes are independent and summed out in closed form, so
the chain walks the d! orders with a smooth landscape instead of the 2^O(d²) DAGs. The
target is

    p(≺ | x) ∝ Π_j α_j(U_j),    α_j(U) = Σ_{S ⊆ U, |S| ≤ K_j} β_j(S),

β_j(S) = q_j(S) p(x_j | x_S) (BGe family score times DiBS's per-family prior) and U_j the
candidate parents of j that precede it (:mod:`deepbn.structure.search_space`); summed
over orders this is the order-modular prior of :mod:`deepbn.structure.exact`, so on small
networks the chains are checked against the exact sums.

**Moves.** A move rearranges a window of L consecutive positions (L = 16): it swaps two
of its nodes or moves one to another place in it (the nodes between shift by one), each
with probability 1/2; the window's start is uniform, the pair uniform in it, so every
move is its own reverse with the same probability (symmetric) and Metropolis-Hastings
accepts with the score ratio. Only the window's nodes change their predecessor sets, so
the state keeps each node's set U_j as a C-bit mask and a move updates L masks from an
L x L block of the (d, d) table of candidate bits: L lookups of log α_j instead of d C,
which is what lets a chain take millions of steps at d = 100-500 in a minute.

**Tempering** (MC3, Geyer 1991; as Gadget, Viinikka et al. NeurIPS 2020): each chain is
the cold end of T copies at inverse temperatures 1 = β_0 > ... > β_{T-1}; after every
move, neighbouring copies (alternately the even and the odd pairs) exchange their states
with probability min(1, exp((β_k - β_k+1)(L_k+1 - L_k))). The ladder adapts during the
first block of steps (Robbins-Monro on the log gaps, towards an exchange acceptance of
0.234, Atchadé, Roberts & Rosenthal 2011) and is then fixed.

**Estimates and convergence.** The run is cut into 20 blocks. Every few steps each cold
chain adds its Rao-Blackwellised edge marginals given its order (Friedman & Koller 2003,
Sec. 3.2) to the block's sum, P(i → j | ≺, x) = 1 - α_j(U_j ∖ i) / α_j(U_j), and twice
a block it draws a DAG from p(G | ≺, x) exactly. The estimate after b blocks uses the
second half, blocks b/2 .. b-1 (the first half is burn-in); with ``until_rhat`` the run
stops at the first b ≥ 4 whose edge R-hat across chains
(:func:`deepbn.structure.diagnostics.edge_rhat`, the chains' draws as sample size) is
below it, and otherwise runs its whole budget and says it stopped short.

Example::

    from deepbn.structure.order_mcmc import order_mcmc
    res = order_mcmc(x, steps=100_000, chains=16)   # x: (n, d) standardized data
    res.edge_probs[i, j]                             # P(i -> j | x)
    res.rhat_max                                     # the chains' agreement
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from deepbn import run as run_layer
from deepbn.errors import KnowledgeError, UsageError, require_count
from deepbn.structure import diagnostics, scores, search_space
from deepbn.structure.config import (
    DEFAULT_CANDIDATES,
    DEFAULT_CHAINS,
    DEFAULT_MAX_PARENTS,
    DEFAULT_TEMPERATURES,
    DEFAULT_UNTIL_RHAT,
    GROW_ROUNDS,
    MAX_CANDIDATES,
    default_order_steps,
)
from deepbn.structure.knowledge import Knowledge
from deepbn.structure.search_space import ScoreTables, SearchSpace

LARGEST_DEFAULT_MAX_PARENTS = 8  # refine's bound where DiBS found more parents
WINDOW = 16  # positions a move rearranges
BLOCKS = 20  # a run's budget in blocks: estimates and R-hat checks at their ends
MIN_BLOCKS = 4  # blocks before the first convergence check
DRAWS_PER_BLOCK = 2  # DAGs each cold chain draws per block
EXCHANGE_TARGET = 0.234  # the ladder's exchange acceptance
COLDEST = 0.05  # the hottest copy's inverse temperature before adaptation
EXPLORE_SHARE = 8  # an exploring round runs 1/8 of the budget


class OrderMCMCState(NamedTuple):
    order: jnp.ndarray  # (T x chains, d) int32: the node at each position, temperature-major
    U: jnp.ndarray  # (T x chains, d) uint32: bit c of node j set when candidate c precedes j
    node_scores: jnp.ndarray  # (T x chains, d): log α_j(U_j)
    betas: jnp.ndarray  # (T,) inverse temperatures, betas[0] = 1
    block_sums: jnp.ndarray  # (blocks, chains, d, C): Σ of P(c -> j | ≺) over a block
    samples: jnp.ndarray  # (blocks, draws, chains, d) int32: each drawn DAG's parent sets
    t: jnp.ndarray  # () int32: steps done
    accepted: jnp.ndarray  # (T x chains,) int32: accepted moves
    exchanges: jnp.ndarray  # (T - 1, 2) float32: accepted (expected) and proposed exchanges


class OrderMCMCConfig(NamedTuple):
    temperatures: int = 1
    window: int = WINDOW
    block: int = 1000  # steps per block
    every: int = 1  # steps between two additions of the edge marginals
    adapt: int = 0  # steps of ladder adaptation
    insert: float = 0.5  # probability that a move is an insertion (else a swap)
    draws: int = DRAWS_PER_BLOCK  # DAGs each cold chain draws per block


class OrderMCMCResult(NamedTuple):
    edge_probs: np.ndarray  # (d, d): pooled Rao-Blackwellised P(i -> j | x)
    chain_edge_probs: np.ndarray  # (chains, d, d)
    graphs: np.ndarray  # (draws, d, d) bool: the kept DAGs of every chain
    log_joint: np.ndarray  # (draws,): log q(G) p(x | G), float64
    acceptance: float  # share of accepted moves of the cold chains
    rhat_max: float  # largest edge R-hat across chains (nan with one chain)
    rhat_max_edge: tuple[int, int]
    candidates: np.ndarray  # (d, C): the search space's candidate parents
    valid: np.ndarray
    max_parents: np.ndarray  # (d,) each node's bound
    seconds: float
    compile_seconds: float
    resumed_from: int
    steps: int  # steps each chain ran (less than the budget when it converged early)
    budget: int  # the most steps it could run
    converged: bool | None  # below ``until_rhat`` (None: no target given)
    temperatures: int = 1
    exchange_acceptance: float = float("nan")  # of the coldest pair of copies
    betas: tuple = (1.0,)
    log_score_max: float = float("nan")  # the best cold chain's log p(≺, x) at the end
    grow_rounds: int = 0  # times the search space grew before this run
    candidates_added: int = 0  # candidate parents those growths added
    records: tuple = ()  # per block: step, rhat_max, log_score_max


def _score(U, data: ScoreTables):
    """(d,) log α_j(U_j) of every node from its predecessor mask."""
    return data.log_alpha[jnp.arange(U.shape[0]), U]


def predecessor_bits(order, data: ScoreTables):
    """(d,) uint32: bit c of node j set when j's candidate c comes before j in ``order``."""
    pos = jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0], dtype=order.dtype))
    before = pos[data.candidates] < pos[:, None]  # (d, C)
    C = data.candidates.shape[1]
    # distinct powers of two: their sum is the bitwise or
    return jnp.sum(before.astype(jnp.uint32) << jnp.arange(C, dtype=jnp.uint32), axis=1,
                   dtype=jnp.uint32)


@jax.jit
def order_log_score(order, data: ScoreTables):
    """log p(≺, x) up to a constant (the sum of the node scores)."""
    return jnp.sum(_score(predecessor_bits(order, data), data))


def _move(key, order, U, node_scores, data: ScoreTables, beta, window: int, insert: float):
    """One Metropolis-Hastings move at inverse temperature ``beta`` on a window of positions
    (module doc): swap two of its nodes or move one to another place in it."""
    d = order.shape[0]
    k_s, k_i, k_j, k_kind, k_u = jax.random.split(key, 5)
    s = jax.random.randint(k_s, (), 0, d - window + 1)
    i = jax.random.randint(k_i, (), 0, window)
    j = jax.random.randint(k_j, (), 0, window - 1)
    j = jnp.where(j >= i, j + 1, j)
    p = jnp.arange(window)
    swapped = jnp.where(p == i, j, jnp.where(p == j, i, p))
    inserted = jnp.where(p == i, j, jnp.where((i < j) & (p > i) & (p <= j), p - 1,
                                              jnp.where((i > j) & (p >= j) & (p < i), p + 1, p)))
    new_pos = jnp.where(jax.random.bernoulli(k_kind, insert), inserted, swapped)  # of slot p
    w = jax.lax.dynamic_slice(order, (s,), (window,))
    bits = data.slot_bits[w[:, None], w[None, :]]  # [k, l]: bit of w_l among w_k's candidates
    before = jnp.sum(jnp.where(p[None, :] < p[:, None], bits, 0), axis=1, dtype=jnp.uint32)
    after = jnp.sum(jnp.where(new_pos[None, :] < new_pos[:, None], bits, 0), axis=1,
                    dtype=jnp.uint32)
    new_U = U[w] - before + after  # the window's predecessors before it are set in U[w]
    new = data.log_alpha[w, new_U]
    log_ratio = beta * (jnp.sum(new) - jnp.sum(node_scores[w]))
    accept = jnp.log(jax.random.uniform(k_u)) < log_ratio  # nan (both -inf): rejected
    moved = jax.lax.dynamic_update_slice(order, jnp.zeros_like(w).at[new_pos].set(w), (s,))
    return (jnp.where(accept, moved, order), jnp.where(accept, U.at[w].set(new_U), U),
            jnp.where(accept, node_scores.at[w].set(new), node_scores), accept)


def _exchange(key, state: OrderMCMCState, t, adapting, start):
    """Exchanges between neighbouring temperatures (the even pairs on even steps, the odd
    ones on odd steps) of every chain, and during adaptation a Robbins-Monro step of the
    ladder's log gaps towards :data:`EXCHANGE_TARGET`."""
    betas = state.betas
    T = betas.shape[0]
    chains = state.order.shape[0] // T
    total = jnp.sum(state.node_scores, axis=1).reshape(T, chains)
    k = jnp.arange(T - 1)
    active = (k % 2) == (t % 2)
    log_accept = (betas[k] - betas[k + 1])[:, None] * (total[k + 1] - total[k])
    log_accept = jnp.where(jnp.isnan(log_accept), -jnp.inf, log_accept)
    swap = active[:, None] & (jnp.log(jax.random.uniform(key, (T - 1, chains))) < log_accept)
    none = jnp.zeros((1, chains), bool)
    source = (jnp.arange(T)[:, None] + jnp.concatenate([swap, none]).astype(jnp.int32)
              - jnp.concatenate([none, swap]).astype(jnp.int32))  # (T, chains)

    def exchanged(a):
        a = a.reshape(T, chains, -1)
        return a[source, jnp.arange(chains)[None, :]].reshape(T * chains, -1)

    p_accept = jnp.mean(jnp.exp(jnp.minimum(log_accept, 0.0)), axis=1)  # (T - 1,)
    # the log of each gap log β_k - log β_k+1 moves: a gap can shrink and grow back by
    # orders of magnitude within the adaptation
    log_gaps = jnp.log(jnp.log(betas[:-1]) - jnp.log(betas[1:]))
    rate = 1.0 / (1.0 + jnp.maximum(t - start, 0).astype(jnp.float32) / 1000.0) ** 0.6
    log_gaps = jnp.where(adapting & active,
                         log_gaps + rate * (p_accept - EXCHANGE_TARGET), log_gaps)
    gaps = jnp.exp(jnp.clip(log_gaps, np.log(1e-4), np.log(3.0)))
    betas = jnp.exp(-jnp.concatenate([jnp.zeros(1), jnp.cumsum(gaps)]))
    counts = jnp.stack([jnp.where(active, p_accept, 0.0) * chains,
                        active.astype(jnp.float32) * chains], axis=1)
    return state._replace(order=exchanged(state.order), U=exchanged(state.U),
                          node_scores=exchanged(state.node_scores), betas=betas,
                          exchanges=state.exchanges + counts)


def _edge_marginals(U, node_scores, data: ScoreTables):
    """(d, C): P(candidate c -> j | ≺, x), Rao-Blackwellised, from the table alone: the sets
    S ⊆ U without c are the subsets of U ∖ c, so P(c ∈ pa_j | U) = 1 - α_j(U ∖ c) / α_j(U)
    (0 for c ∉ U), d C lookups whatever the number of parent sets."""
    bit = jnp.uint32(1) << jnp.arange(data.candidates.shape[1], dtype=jnp.uint32)
    in_U = (U[:, None] & bit) != 0
    without = data.log_alpha[jnp.arange(U.shape[0])[:, None], U[:, None] & ~bit]
    p = 1.0 - jnp.exp(without - node_scores[:, None])
    return jnp.where(in_U & jnp.isfinite(node_scores)[:, None], jnp.clip(p, 0.0, 1.0), 0.0)


def _draw(key, U, node_scores, data: ScoreTables):
    """One DAG per chain from p(G | ≺, x): a parent set per node by inverse CDF over the
    sets allowed by the order, (chains, d) set indices."""
    def one(args):  # chain by chain: (d, S) at a time, not (chains, d, S)
        k, U_, scores_ = args
        w = jnp.where((data.sets & ~U_[:, None]) == 0,
                      jnp.exp(data.log_beta - scores_[:, None]), 0.0)
        cdf = jnp.cumsum(w, axis=1)
        u = jax.random.uniform(k, scores_.shape)[:, None] * cdf[:, -1:]
        return jnp.minimum(jnp.sum(cdf < u, axis=1), w.shape[1] - 1).astype(jnp.int32)

    return jax.lax.map(one, (jax.random.split(key, U.shape[0]), U, node_scores))


def init(orders, data: ScoreTables, config: OrderMCMCConfig, blocks: int = BLOCKS,
         betas=None) -> OrderMCMCState:
    """The state of chains started at ``orders``: (T x chains, d), temperature-major (the
    cold chains first), each copy at its own order; ``betas`` (T,) the ladder to start
    from (default geometric down to :data:`COLDEST`)."""
    orders = jnp.asarray(orders, jnp.int32)
    T = config.temperatures
    chains = orders.shape[0] // T
    d = orders.shape[1]
    C = data.candidates.shape[1]
    U = jax.vmap(predecessor_bits, (0, None))(orders, data)
    ladder = COLDEST ** (np.arange(T) / max(T - 1, 1)) if betas is None else betas
    return OrderMCMCState(orders, U, jax.vmap(_score, (0, None))(U, data),
                          jnp.asarray(ladder, jnp.float32),
                          jnp.zeros((blocks, chains, d, C)),
                          jnp.zeros((blocks, config.draws, chains, d), jnp.int32),
                          jnp.zeros((), jnp.int32), jnp.zeros(T * chains, jnp.int32),
                          jnp.zeros((max(T - 1, 1), 2), jnp.float32))


def step(key, state: OrderMCMCState, data: ScoreTables, config: OrderMCMCConfig
         ) -> tuple[OrderMCMCState, dict]:
    """One move per chain and temperature (vmapped), then the exchanges; every
    ``config.every`` steps the cold chains' edge marginals join their block's sum, twice a
    block each cold chain draws a DAG."""
    n = state.order.shape[0]
    T = config.temperatures
    chains = n // T
    k_move, k_exchange, k_draw = jax.random.split(key, 3)
    order, U, node_scores, accept = jax.vmap(_move, (0, 0, 0, 0, None, 0, None, None))(
        jax.random.split(k_move, n), state.order, state.U, state.node_scores, data,
        jnp.repeat(state.betas, chains), config.window, config.insert)
    t = state.t + 1
    state = state._replace(order=order, U=U, node_scores=node_scores, t=t,
                           accepted=state.accepted + accept)
    if T > 1:
        # the copies of a chain start at one order: exchanges are then free, and a ladder
        # adapted to that would be too wide; adaptation waits a quarter of its span
        start = config.adapt // 4
        state = _exchange(k_exchange, state, t, (t > start) & (t <= config.adapt), start)
    block = (t - 1) // config.block

    def add(s):
        m = jax.vmap(_edge_marginals, (0, 0, None))(s.U[:chains], s.node_scores[:chains], data)
        return s._replace(block_sums=s.block_sums.at[block].add(m))

    # scalar predicates: real branches, so the other steps skip the lookups
    state = jax.lax.cond(t % config.every == 0, add, lambda s: s, state)
    draw_every = config.block // config.draws

    def draw(s):
        slot = ((t - 1) % config.block) // draw_every
        return s._replace(samples=s.samples.at[block, slot].set(
            _draw(k_draw, s.U[:chains], s.node_scores[:chains], data)))

    state = jax.lax.cond(t % draw_every == 0, draw, lambda s: s, state)
    return state, {}


def schedule(steps: int, d: int, draws: int = DRAWS_PER_BLOCK, blocks: int = BLOCKS
             ) -> tuple[int, int]:
    """(steps per block, steps between additions of the edge marginals) for a budget of
    ``steps``: the budget rounded up to whole blocks, a block a multiple of the steps
    between additions and of those between draws."""
    every = int(np.clip(d // 4, 1, 32))
    unit = every * draws
    return -(-max(int(steps), 1) // (blocks * unit)) * unit, every


def kept_blocks(done_blocks: int) -> slice:
    """The blocks an estimate after ``done_blocks`` blocks uses: the second half."""
    return slice(done_blocks // 2, done_blocks)


def chain_marginals(state: OrderMCMCState, space: SearchSpace, done_blocks: int,
                    every: int, block: int) -> np.ndarray:
    """(chains, d, d) each cold chain's edge marginals over the kept blocks."""
    kept = kept_blocks(done_blocks)
    sums = np.asarray(state.block_sums[kept], np.float64).sum(0)
    sums /= (kept.stop - kept.start) * (block // every)
    chains, d = sums.shape[:2]
    probs = np.zeros((chains, d, d))
    cand = np.broadcast_to(space.candidates[None], sums.shape)
    ch, j, c = np.nonzero(np.broadcast_to(space.valid[None], sums.shape))
    probs[ch, cand[ch, j, c], j] = sums[ch, j, c]
    return probs


def rhat(chain_probs: np.ndarray, draws_per_chain: int) -> diagnostics.RunDiagnostics:
    ess = np.full(len(chain_probs), float(draws_per_chain))
    return diagnostics.RunDiagnostics(diagnostics.edge_rhat(chain_probs, ess), chain_probs,
                                      ess)


def graphs_of(samples: np.ndarray, space: SearchSpace) -> tuple[np.ndarray, np.ndarray]:
    """DAGs (N, d, d) and their log q(G) p(x | G) from drawn parent-set indices (N, d)."""
    samples = np.asarray(samples)
    d = samples.shape[1]
    member = np.asarray(space.data.member, bool)[samples]  # (N, d, C)
    G = np.zeros((len(samples), d, d), bool)
    rows = np.broadcast_to(space.candidates[None], member.shape)
    n, j, c = np.nonzero(member)
    G[n, rows[n, j, c], j] = True
    log_joint = space.log_beta[np.arange(d), samples].sum(1)
    return G, log_joint


def sample(space: SearchSpace, orders: np.ndarray, steps: int, seed: int = 0,
           temperatures: int = 1, until_rhat: float | None = None,
           checkpoint_path: str | Path | None = None,
           progress: Callable[[int, dict], None] | None = None, fingerprint_arrays=(),
           window: int = WINDOW, insert_share: float = 0.5, draws: int = DRAWS_PER_BLOCK,
           betas=None) -> OrderMCMCResult:
    """Run the chains from ``orders`` (chains, d) for at most ``steps`` steps (rounded up to
    whole blocks) through the driver (jitted chunks of a block, checkpointed and resumable
    at ``checkpoint_path``), each chain the cold end of ``temperatures`` tempered copies;
    with ``until_rhat`` stop at the first block end whose edge R-hat is below it.
    ``progress(done, info)`` gets the best log score, the R-hat and the budget after each
    block;
    ``insert_share`` is the probability that a move is an insertion rather than a swap;
    each cold chain draws ``draws`` DAGs a block; ``betas`` is the ladder to adapt from."""
    require_count("the number of temperatures", temperatures)
    require_count("the number of order MCMC steps", steps)
    if until_rhat is not None and not until_rhat > 1.0:
        raise UsageError(f"the R-hat target must be above 1, not {until_rhat}")
    orders = np.asarray(orders, np.int32)
    chains, d = orders.shape
    require_count("the draws per block", draws)
    block, every = schedule(steps, d, draws)
    budget = block * BLOCKS
    window = min(int(window), d)
    if window < 2:
        raise UsageError(f"a move rearranges a window of at least 2 positions, not {window}")
    if not 0.0 <= insert_share <= 1.0:
        raise UsageError(f"the share of insertions must be in [0, 1], not {insert_share}")
    cfg = OrderMCMCConfig(temperatures, window, block, every,
                          block if temperatures > 1 else 0, float(insert_share), draws)
    # a chain's hotter copies start where it starts: a random start would leave them far
    # below the cold one, and the ladder would adapt to that gap instead of the posterior's
    state = init(np.tile(orders, (temperatures, 1)), space.data, cfg, betas=betas)
    fp = run_layer.fingerprint((*fingerprint_arrays, orders, space.log_beta),
                               {"method": "order_mcmc", "budget": budget, "seed": seed,
                                "temperatures": temperatures, "window": window,
                                "until_rhat": until_rhat, "blocks": BLOCKS,
                                "betas": None if betas is None else [float(b) for b in betas],
                                "insert_share": insert_share, "draws": draws})
    info = {"rhat": float("nan"), "log_score": float("nan"), "budget": budget, "done": 0}

    def check(s, done):
        b = done // block
        if b < 1:
            return False
        if info["done"] != done:  # after_chunk and until ask at the same block end
            probs = chain_marginals(s, space, b, every, block)
            if chains > 1:
                info["rhat"] = rhat(probs, (b - b // 2) * draws).rhat_max()
            info["log_score"] = float(np.max(np.asarray(s.node_scores[:chains]).sum(1)))
            info["done"] = done
        return (until_rhat is not None and chains > 1 and b >= MIN_BLOCKS
                and info["rhat"] < until_rhat)

    def after(s, done, out, seconds):
        check(s, done)
        return [{"step": done, "rhat_max": info["rhat"], "log_score_max": info["log_score"]}]

    def report(done, total, out):
        if progress is not None:
            progress(done, {k: v for k, v in info.items() if k != "done"})

    res = run_layer.run(step, state, space.data, run_layer.raw_key(seed), budget, config=cfg,
                        chunk=block, checkpoint=checkpoint_path, fingerprint=fp,
                        progress=report, after_chunk=after, until=check,
                        place=lambda st: run_layer.shard_batch(st, len(orders) * temperatures,
                                                               "chains"))
    if res.stopped:
        raise UsageError(f"order MCMC {res.stopped}")
    final = res.state
    if not np.all(np.isfinite(np.asarray(final.node_scores[:chains]))):
        raise KnowledgeError("order MCMC found no order that the prior knowledge allows; "
                             "relax --require / --forbid / --tiers")
    done_blocks = res.steps // block
    probs = chain_marginals(final, space, done_blocks, every, block)
    kept = kept_blocks(done_blocks)
    drawn = np.asarray(final.samples[kept])  # (blocks, draws, chains, d)
    G, log_joint = graphs_of(np.moveaxis(drawn, 2, 0).reshape(-1, d), space)  # chain by chain
    if chains > 1:
        diag = rhat(probs, (kept.stop - kept.start) * draws)
        rhat_max, worst = diag.rhat_max(), diag.worst_edge()
    else:
        rhat_max, worst = float("nan"), (0, 1)
    exchanged = np.asarray(final.exchanges, np.float64)
    converged = None if until_rhat is None or chains < 2 else bool(rhat_max < until_rhat)
    return OrderMCMCResult(
        probs.mean(0), probs, G, log_joint,
        float(np.asarray(final.accepted)[:chains].sum() / (chains * res.steps)),
        rhat_max, worst, space.candidates, space.valid, space.max_parents, res.seconds,
        res.compile_seconds, res.resumed_from, res.steps, budget, converged, temperatures,
        float(exchanged[0, 0] / exchanged[0, 1]) if temperatures > 1 and exchanged[0, 1]
        else float("nan"), tuple(float(b) for b in np.asarray(final.betas)),
        float(np.max(np.asarray(final.node_scores[:chains]).sum(1))), records=tuple(res.records))


def random_order(required: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random node order that keeps every required edge forward (Kahn's algorithm with
    random tie-breaks; with no required edge a uniform permutation)."""
    d = len(required)
    left = np.ones(d, bool)
    out = []
    for _ in range(d):
        ready = np.flatnonzero(left & ~(required & left[:, None]).any(0))
        j = int(rng.choice(ready))
        out.append(j)
        left[j] = False
    return np.asarray(out, np.int32)


def topological_orders(graphs: np.ndarray, required: np.ndarray | None = None) -> np.ndarray:
    """(P, d) a node order per graph: a topological order where the graph is a DAG; where
    it is cyclic, Kahn's algorithm that, when stuck, takes the node with the fewest
    remaining parents (never one with a remaining required parent)."""
    graphs = np.asarray(graphs, bool)
    d = graphs.shape[-1]
    req = np.zeros((d, d), bool) if required is None else np.asarray(required, bool)
    orders = np.zeros((len(graphs), d), np.int32)
    for p, g in enumerate(graphs):
        g = (g | req) & ~np.eye(d, dtype=bool)
        left = np.ones(d, bool)
        for k in range(d):
            indeg = np.where(left, (g & left[:, None]).sum(0), np.inf)
            blocked = (req & left[:, None]).any(0)
            cost = np.where(blocked & left, np.inf, indeg)
            if np.isinf(cost).all():  # only required parents left
                cost = indeg
            j = int(np.argmin(cost))
            orders[p, k] = j
            left[j] = False
    return orders


def order_mcmc(x, steps: int | None = None, chains: int = DEFAULT_CHAINS, seed: int = 0,
               edges_per_node: float = 1.0, graph_prior: str = "er",
               max_parents: int | np.ndarray = DEFAULT_MAX_PARENTS,
               n_candidates: int = DEFAULT_CANDIDATES, edge_probs: np.ndarray | None = None,
               knowledge: Knowledge | None = None, mask=None, orders=None,
               temperatures: int = DEFAULT_TEMPERATURES,
               until_rhat: float | None = DEFAULT_UNTIL_RHAT, grow_rounds: int = GROW_ROUNDS,
               candidates: tuple[np.ndarray, np.ndarray] | None = None,
               checkpoint_dir: str | Path | None = None,
               progress: Callable[[int, dict], None] | None = None,
               window: int = WINDOW, stats: scores.BGeStats | None = None
               ) -> OrderMCMCResult:
    """Order MCMC on standardized data ``x`` (n, d), see the module: the search space of
    :func:`deepbn.structure.search_space.candidate_parents` (``edge_probs``, a DiBS
    posterior's, guides it; ``candidates`` = (indices, valid) replaces it), ``chains`` chains
    from ``orders`` (default: random orders), each with ``temperatures`` tempered copies,
    at most ``steps`` steps (default
    :func:`deepbn.structure.config.default_order_steps`) or until the edge R-hat is below
    ``until_rhat``. Then, up to ``grow_rounds`` times, the search space grows
    (:func:`deepbn.structure.search_space.grow`) and, where it did, the chains run again
    from where they stopped. ``checkpoint_dir`` holds a checkpoint per round (a rerun
    resumes each); ``progress(done, info)`` hears of every block (info: ``round``,
    ``budget``, ``final``, ``rhat``, ``log_score``); ``stats`` are the data's BGe statistics
    when already computed. The result's seconds add up all rounds."""
    x = np.asarray(x, np.float32)
    d = x.shape[1]
    require_count("the number of chains", chains)
    require_count("the growth rounds", grow_rounds, minimum=0)
    steps = default_order_steps(d) if steps is None else steps
    stats = scores.bge_stats(x, mask) if stats is None else stats
    if knowledge is not None:
        knowledge = knowledge.check()
    if candidates is None:
        cand, valid = search_space.candidate_parents(stats, d, n_candidates, edge_probs,
                                                     knowledge, graph_prior=graph_prior,
                                                     edges_per_node=edges_per_node)
    else:
        cand, valid = (np.asarray(a) for a in candidates)
    K = np.minimum(np.broadcast_to(np.asarray(max_parents, int), (d,)), d - 1)
    q = search_space.prior(d, graph_prior, edges_per_node, knowledge)
    if orders is None:
        rng = np.random.default_rng(seed)
        orders = np.stack([random_order(q.required, rng) for _ in range(chains)])
    added, rounds, seconds, compile_seconds, ladder = 0, 0, 0.0, 0.0, None
    for round_ in range(grow_rounds + 1):
        space = search_space.build(stats, d, cand, valid, K, graph_prior, edges_per_node,
                                   knowledge)
        final = round_ == grow_rounds
        name = "order_mcmc.npz" if final else f"order_mcmc_explore{round_}.npz"
        path = None if checkpoint_dir is None else Path(checkpoint_dir) / name
        # an exploring round only has to find the modes' parent sets: an eighth of the budget
        budget = steps if final else max(steps // EXPLORE_SHARE, 1)

        def told(done, info, round_=round_, final=final):
            if progress is not None:
                progress(done, {**info, "round": round_, "final": final})

        res = sample(space, orders, budget, seed + round_, temperatures, until_rhat, path,
                     told, window=window, betas=ladder)
        ladder = res.betas  # the next round adapts on from this round's ladder
        seconds += res.seconds
        compile_seconds += res.compile_seconds
        # the next round's chains start at a topological order of each chain's last draw
        per_chain = len(res.graphs) // len(res.chain_edge_probs)
        orders = topological_orders(res.graphs[per_chain - 1::per_chain], q.required)
        if final:
            break
        cand, valid, gained = search_space.grow(stats, d, cand, valid, res.graphs,
                                                res.edge_probs, K, q)
        rounds += 1
        added += int(gained.sum())
        if not gained.any():
            grow_rounds = round_ + 1  # the next round is the last, on the same space
    return res._replace(grow_rounds=rounds, candidates_added=added, seconds=seconds,
                        compile_seconds=compile_seconds)


def refine(run, steps: int, n_candidates: int = DEFAULT_CANDIDATES,
           max_parents: int | None = None, seed: int = 0,
           checkpoint_path: str | Path | None = None, progress=None,
           temperatures: int = 1, until_rhat: float | None = None):
    """Order MCMC seeded by a DiBS run (:class:`deepbn.structure.learn.StructureRun`, BGe):
    one chain per particle, started at a topological order of its graph, on the search
    space of :func:`deepbn.structure.search_space.candidate_parents` guided by the
    particles' edge marginals, with the run's prior and knowledge. Returns the run with the
    chains' posterior in place of the particles' and the :class:`OrderMCMCResult`."""
    cfg = run.config
    if cfg.model != "bge":
        raise UsageError("order MCMC sums parent sets out under BGe: use it with --model bge")
    post = run.posterior
    d = post.graphs.shape[1]
    if max_parents is None:
        # one more parent than any particle gives the node, from 5 to 8, within the run's bound
        found = np.asarray(post.graphs, bool).sum(1).max(0) + 1
        K = np.clip(found, DEFAULT_MAX_PARENTS, LARGEST_DEFAULT_MAX_PARENTS)
        K = np.minimum(K, min(cfg.max_parents, d - 1))
        if run.knowledge is not None:  # never below a node's required parents
            K = np.maximum(K, np.asarray(run.knowledge.required).sum(0))
    else:
        K = np.full(d, min(int(max_parents), d - 1))
    if not 1 <= n_candidates <= MAX_CANDIDATES:
        raise UsageError(f"the number of candidate parents must be 1 to {MAX_CANDIDATES}, "
                         f"not {n_candidates}")
    stats = run.data.bge
    knowledge = run.knowledge
    cand, valid = search_space.candidate_parents(stats, d, n_candidates, post.edge_probs(),
                                                 knowledge, greedy=False)
    space = search_space.build(stats, d, cand, valid, K, cfg.graph_prior, cfg.edges_per_node,
                               knowledge)
    required = None if knowledge is None else knowledge.required
    orders = topological_orders(post.graphs, required)
    res = sample(space, orders, steps, seed, temperatures, until_rhat, checkpoint_path,
                 progress, fingerprint_arrays=(post.graphs,))
    return with_draws(run, res), res


def with_draws(run, res: OrderMCMCResult):
    """The structure run with the sampler's posterior in place of the particles': its draws,
    equally weighted, and its Rao-Blackwellised edge marginals."""
    n = len(res.graphs)
    refined = run.posterior._replace(
        graphs=res.graphs, theta=None, log_joint=res.log_joint,
        weights_empirical=np.full(n, 1.0 / n), weights_mixture=np.full(n, 1.0 / n),
        cyclic=np.zeros(n, bool), beyond_max_parents=np.zeros(n, bool),
        edge_marginals=res.edge_probs)
    return run._replace(posterior=refined, runs=1)
