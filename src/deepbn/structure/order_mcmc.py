"""Order MCMC under BGe on bounded candidate parent sets: a DAG posterior sampler that
mixes, seeded by DiBS.

DiBS's particles settle in local modes: at d = 20 their edge marginals differ from the
exact posterior's by 0.03-0.09 on average and by up to 1 on single edges (README,
"Against the exact posterior"). A Markov chain over node *orders* (Friedman & Koller,
Mach. Learn. 50, 2003) moves between those modes: given an order ≺, the parent sets
of the nodes are independent and summed out in closed form, so the chain walks a
space of d! orders with a smooth landscape instead of the 2^O(d²) DAGs. The target is

    p(≺ | x) ∝ Π_j Σ_{S ∈ F_j, S ⊆ pred_≺(j)} β_j(S),    β_j(S) = q_j(S) p(x_j | x_S),

with q_j the per-family prior of DiBS (ER or scale-free, soft edge priors, forbidden and
required edges) and p(x_j | x_S) the BGe family score; summed over orders this is the
order-modular prior of :mod:`deepbn.structure.exact`, so on small networks the chain
can be checked against the exact sums. F_j is node j's *search space*: the parent sets
of at most K nodes among C candidates (Friedman & Koller 2003, Sec. 4.1; Kuipers,
Suter & Moffa, JCGS 31, 2022, use the same restriction), the candidates chosen by the
DiBS edge marginals and, to fill up, by the pairwise BGe gain (:func:`candidate_parents`).
Edges outside the search space get probability 0: the approximation this makes.

A step swaps two nodes' positions, adjacent ones or any two with probability 1/2 each
(both symmetric), and accepts by Metropolis-Hastings. With U the candidates of j that
precede it, node j's score is α_j(U) = Σ_{S ⊆ U} β_j(S), read from a table over all 2^C
candidate sets U built once by a zeta transform (the sums of Koivisto & Sood, JMLR 5,
2004, restricted to the candidates), so a step costs O(d C) for every node at once and
runs for all chains (vmap) inside the driver's jitted scan (:mod:`deepbn.run`). After a
burn-in of half the steps every step adds each chain's Rao-Blackwellised edge marginals
given its order (Friedman & Koller 2003, Sec. 3.2), also from the table:

    P(i → j | ≺, x) = Σ_{S ⊆ U, S ∋ i} β_j(S) / α_j(U) = 1 - α_j(U ∖ i) / α_j(U),

and every ``thin`` steps a DAG is drawn from p(G | ≺, x) exactly, a parent set per node.
The chains' edge marginals give an edge R-hat
(:func:`deepbn.structure.diagnostics.edge_rhat`, with the draws as sample size).

Example::

    from deepbn.structure.order_mcmc import order_mcmc
    res = order_mcmc(x, steps=5000, chains=8)   # x: (n, d) standardized data
    res.edge_probs[i, j]                        # P(i -> j | x)
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from deepbn import run as run_layer
from deepbn.errors import KnowledgeError, UsageError, require_count
from deepbn.structure import diagnostics, exact, scores
from deepbn.structure.knowledge import Knowledge

MAX_CANDIDATES = 20  # the table of α_j holds 2^C numbers per node
DEFAULT_CANDIDATES = 16
DEFAULT_MAX_PARENTS = 5
LARGEST_DEFAULT_MAX_PARENTS = 8  # refine's bound where DiBS found more parents
DEFAULT_THIN = 10
CHUNK = 500  # steps per jitted scan between progress updates and checkpoints


class OrderMCMCData(NamedTuple):
    """The search space as the jitted step reads it; every node's parent sets are the same
    C-bit masks (sets a node cannot have score -inf)."""

    candidates: jnp.ndarray  # (d, C) int32: candidate parents of j (padded with j itself)
    log_alpha: jnp.ndarray  # (d, 2^C) float32: log Σ_{S ⊆ U} β_j(S) for every candidate set U
    sets: jnp.ndarray  # (S,) uint32: the parent sets, as bit masks over the C candidates
    member: jnp.ndarray  # (S, C) float32: the same bits as numbers
    log_beta: jnp.ndarray  # (d, S) float32: log β_j(S); -inf for a set node j cannot have


class OrderMCMCState(NamedTuple):
    order: jnp.ndarray  # (temperatures x chains, d) int32: the node at each position
    node_scores: jnp.ndarray  # (temperatures x chains, d): log α_j(U), U the candidates before j
    edge_sums: jnp.ndarray  # (chains, d, C): Σ over the steps after burn-in of P(c -> j | ≺)
    samples: jnp.ndarray  # (chains, kept, d) int32: the parent set of each drawn DAG
    t: jnp.ndarray  # () int32: steps done
    accepted: jnp.ndarray  # (temperatures x chains,) int32: accepted moves
    exchanges: jnp.ndarray  # (2,) int32: accepted and proposed exchanges of temperature


class SearchSpace(NamedTuple):
    """:func:`search_space`'s result: the jitted arrays and, in float64, the scores."""

    data: OrderMCMCData
    log_beta: np.ndarray  # (d, S) float64: log q_j(S) + log p(x_j | x_S), -inf if excluded
    candidates: np.ndarray  # (d, C) int
    valid: np.ndarray  # (d, C) bool: a real candidate (not padding)
    max_parents: np.ndarray  # (d,) int: each node's bound


class OrderMCMCResult(NamedTuple):
    edge_probs: np.ndarray  # (d, d): pooled Rao-Blackwellised P(i -> j | x)
    chain_edge_probs: np.ndarray  # (chains, d, d)
    graphs: np.ndarray  # (chains * kept, d, d) bool: one DAG per chain and kept step
    log_joint: np.ndarray  # (chains * kept,): log q(G) p(x | G), float64
    acceptance: float  # share of accepted swaps over all chains and steps
    rhat_max: float  # largest edge R-hat across chains (nan with one chain)
    rhat_max_edge: tuple[int, int]
    candidates: np.ndarray  # (d, C): the search space's candidate parents
    valid: np.ndarray
    max_parents: np.ndarray  # (d,) each node's bound
    seconds: float
    compile_seconds: float
    resumed_from: int
    log_scores: np.ndarray  # (steps, chains): log p(≺, x) up to a constant, per step
    temperatures: int = 1
    exchange_acceptance: float = float("nan")  # share of accepted exchanges of temperature


def pairwise_gains(stats: scores.BGeStats, d: int) -> np.ndarray:
    """(d, d): log p(x_j | x_i) - log p(x_j) under BGe, the evidence for i as j's single
    parent (symmetric for observational data, BGe being score equivalent)."""
    nodes = np.repeat(np.arange(d), d)
    parents = np.tile(np.arange(d), d)[:, None]
    # i = j scores the empty set (a node is not its own parent); the diagonal is dropped below
    one = family_scores(stats, d, nodes, parents, (nodes != parents[:, 0])[:, None])
    none = family_scores(stats, d, np.arange(d), np.zeros((d, 1), int), np.zeros((d, 1), bool))
    gain = one.reshape(d, d).T - none[None, :]  # [i, j]
    np.fill_diagonal(gain, -np.inf)
    return gain


def candidate_parents(stats: scores.BGeStats, d: int, n_candidates: int = DEFAULT_CANDIDATES,
                      edge_probs: np.ndarray | None = None,
                      knowledge: Knowledge | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Node j's C candidate parents: its required parents, then the nodes most often
    adjacent to j under ``edge_probs`` (a DiBS posterior's, p_ij + p_ji ≥ 0.01), then the
    largest pairwise BGe gains; never a forbidden parent. Returns (d, C) indices and a
    (d, C) mask of real candidates (fewer when knowledge forbids the rest)."""
    C = min(int(n_candidates), d - 1)
    gain = pairwise_gains(stats, d)
    adjacent = np.zeros((d, d)) if edge_probs is None else edge_probs + edge_probs.T
    forbidden = np.zeros((d, d), bool) if knowledge is None else knowledge.forbidden
    required = np.zeros((d, d), bool) if knowledge is None else knowledge.required
    candidates = np.tile(np.arange(d)[:, None], (1, C))
    valid = np.zeros((d, C), bool)
    for j in range(d):
        # lexicographic: required first, then DiBS adjacency (when clear), then the gain
        key = (required[:, j] * 4.0 + np.where(adjacent[:, j] >= 0.01, 2.0 + adjacent[:, j], 0.0))
        order = np.lexsort((-gain[:, j], -key))
        order = [i for i in order if i != j and not forbidden[i, j]][:C]
        candidates[j, :len(order)] = order
        valid[j, :len(order)] = True
        missing = np.flatnonzero(required[:, j] & ~np.isin(np.arange(d), order))
        if len(missing):
            raise KnowledgeError(f"node {j} has more required parents than the {C} candidates "
                                 f"of order MCMC; raise the number of candidates")
    return candidates, valid


def family_scores(stats: scores.BGeStats, d: int, nodes: np.ndarray, parents: np.ndarray,
                  present: np.ndarray) -> np.ndarray:
    """BGe log p(x_j | x_S) in float64 for a batch of families: ``nodes`` (B,), ``parents``
    (B, K) indices with ``present`` (B, K) marking the real ones (the same formula as
    :func:`deepbn.structure.scores.bge_node_scores`, one (K+1)² matrix per family)."""
    R = np.asarray(stats.R, np.float64)
    per_node = R.shape[0] > 1
    idx = np.concatenate([np.where(present, parents, 0), nodes[:, None]], axis=1)
    m = np.concatenate([present, np.ones((len(nodes), 1), bool)], axis=1).astype(np.float64)
    which = nodes if per_node else np.zeros_like(nodes)
    F = R[which[:, None, None], idx[:, :, None], idx[:, None, :]]
    k = idx.shape[1]
    F = F * (m[:, :, None] * m[:, None, :]) + (1.0 - m)[:, :, None] * np.eye(k)
    log_diag = np.log(np.diagonal(np.linalg.cholesky(F), axis1=1, axis2=2))
    N = np.asarray(stats.n, np.float64)[nodes]
    return scores.bge_family_log_score(present.sum(1).astype(np.float64),
                                       2.0 * log_diag[:, :-1].sum(1), 2.0 * log_diag[:, -1], N,
                                       stats.alpha_mu, stats.alpha_w, d, xp=np)


def search_space(stats: scores.BGeStats, d: int, candidates: np.ndarray, valid: np.ndarray,
                 max_parents: int | np.ndarray = DEFAULT_MAX_PARENTS, graph_prior: str = "er",
                 edges_per_node: float = 1.0, knowledge: Knowledge | None = None
                 ) -> SearchSpace:
    """Every parent set of at most ``max_parents`` (one bound, or one per node) of each
    node's C candidates, scored,
    log β_j(S) = log q_j(S) + log p(x_j | x_S) with q_j the prior of
    :func:`deepbn.structure.exact.family_log_priors` (-inf for a set holding a padding
    slot or missing a required parent); and the table log α_j(U) = log Σ_{S ⊆ U} β_j(S)
    over all 2^C candidate sets U (one zeta transform), so that a node's score given an
    order is one lookup."""
    C = candidates.shape[1]
    if C > MAX_CANDIDATES:
        raise UsageError(f"order MCMC takes at most {MAX_CANDIDATES} candidate parents per "
                         f"node, not {C}")
    K_node = np.minimum(np.broadcast_to(np.asarray(max_parents, int), (d,)), C)
    K = int(K_node.max())
    by_count = exact.log_prior_by_parent_count(d, graph_prior, edges_per_node)
    if knowledge is not None and not knowledge.is_empty():
        on, off = (np.asarray(t, np.float64) for t in knowledge.log_prior_terms())
        required = np.asarray(knowledge.required, bool)
    else:
        on = off = np.zeros((d, d))
        required = np.zeros((d, d), bool)
    if (required.sum(0) > K_node).any():
        j = int(np.argmax(required.sum(0) - K_node))
        raise KnowledgeError(f"node {j} has {int(required[:, j].sum())} required parents, "
                             f"more than the bound of {int(K_node[j])} parents")
    masks = np.arange(2 ** C, dtype=np.int64)
    member = ((masks[:, None] >> np.arange(C)) & 1).astype(bool)
    sets, member = masks[member.sum(1) <= K], member[member.sum(1) <= K]  # (S,), (S, C)
    slot_bit = 1 << np.arange(C)
    valid_bits = (valid * slot_bit).sum(1)  # (d,)
    required_slots = required[candidates, np.arange(d)[:, None]] & valid  # (d, C)
    required_bits = (required_slots * slot_bit).sum(1)
    n_pa = member.sum(1)
    allowed = (((sets[None, :] & ~valid_bits[:, None]) == 0)
               & ((sets[None, :] & required_bits[:, None]) == required_bits[:, None])
               & (n_pa[None, :] <= K_node[:, None]))
    log_lik = np.full((d, len(sets)), -np.inf)
    # the family matrices in chunks: at d = 200, C = 16, K = 5 there are 1.4 M families
    order = np.argsort(~member, axis=1, kind="stable")[:, :K]  # (S, K): a set's slots first
    present = np.take_along_axis(member, order, axis=1)
    jj, ss = np.nonzero(allowed)
    for start in range(0, len(jj), 65536):
        j, s = jj[start:start + 65536], ss[start:start + 65536]
        parents = candidates[j[:, None], order[s]]
        log_lik[j, s] = family_scores(stats, d, j, parents, present[s])
    soft_slot = (on - off)[candidates, np.arange(d)[:, None]] * valid  # (d, C)
    soft = member.astype(np.float64) @ soft_slot.T  # (S, d)
    log_beta = log_lik + by_count[n_pa][None, :] + soft.T + (off.sum(0) - np.diag(off))[:, None]
    shift = np.max(log_beta, axis=1, keepdims=True)  # float32 keeps differences, not totals
    table = np.full((d, 2 ** C), -np.inf)
    table[:, sets] = log_beta - shift
    log_alpha = exact.log_zeta(table, C)
    data = OrderMCMCData(jnp.asarray(candidates, jnp.int32),
                         jnp.asarray(log_alpha, jnp.float32),
                         jnp.asarray(sets.astype(np.uint32)), jnp.asarray(member, jnp.float32),
                         jnp.asarray(log_beta - shift, jnp.float32))
    return SearchSpace(data, log_beta, candidates, valid, K_node)


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


def _positions(order):
    return jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0], dtype=order.dtype))


def _predecessor_bits(order, candidates):
    """(d,) uint32: bit c of node j set when j's candidate c comes before j in ``order``."""
    pos = _positions(order)
    before = pos[candidates] < pos[:, None]  # (d, C)
    C = candidates.shape[1]
    # distinct powers of two: their sum is the bitwise or
    return jnp.sum(before.astype(jnp.uint32) << jnp.arange(C, dtype=jnp.uint32), axis=1,
                   dtype=jnp.uint32)


def _node_scores(order, data: OrderMCMCData):
    U = _predecessor_bits(order, data.candidates)
    return data.log_alpha[jnp.arange(order.shape[0]), U]


def init(orders, data: OrderMCMCData, steps: int, thin: int = DEFAULT_THIN,
         temperatures: int = 1) -> OrderMCMCState:
    """Chains started at ``orders`` (chains, d), each with ``temperatures`` - 1 hotter copies
    (parallel tempering), and room for a DAG every ``thin`` steps of the second half
    (:func:`kept`) of each cold chain."""
    orders = jnp.asarray(orders, jnp.int32)
    chains, d = orders.shape
    C = data.candidates.shape[1]
    every = jnp.tile(orders, (temperatures, 1))  # temperature-major: the cold chains first
    return OrderMCMCState(every, jax.vmap(_node_scores, (0, None))(every, data),
                          jnp.zeros((chains, d, C)),
                          jnp.zeros((chains, kept(steps, thin), d), jnp.int32),
                          jnp.zeros((), jnp.int32), jnp.zeros(chains * temperatures, jnp.int32),
                          jnp.zeros(2, jnp.int32))


def kept(steps: int, thin: int) -> int:
    """DAGs drawn per chain: one every ``thin`` steps of the second half (the first half
    is burn-in)."""
    return (steps - burn_in(steps)) // thin


def burn_in(steps: int) -> int:
    return steps // 2


def _move(key, order, node_scores, data, beta):
    """One Metropolis-Hastings move at inverse temperature ``beta``: swap two neighbours,
    swap any two nodes, or move one node to another position (the nodes between shift by
    one), each with probability 1/3; all three are symmetric."""
    d = order.shape[0]
    k_kind, k_a, k_b, k_u = jax.random.split(key, 4)
    kind = jax.random.randint(k_kind, (), 0, 3)
    a = jax.random.randint(k_a, (), 0, d)
    other = jax.random.randint(k_b, (), 0, d - 1)
    other = jnp.where(other >= a, other + 1, other)
    b = jnp.where(kind == 0, jnp.where(a == d - 1, a - 1, a + 1), other)
    swapped = order.at[a].set(order[b]).at[b].set(order[a])
    p = jnp.arange(d)
    source = jnp.where((a < b) & (p >= a) & (p < b), p + 1,
                       jnp.where((a > b) & (p > b) & (p <= a), p - 1, p))
    inserted = order[jnp.where(p == b, a, source)]
    proposed = jnp.where(kind == 2, inserted, swapped)
    new_scores = _node_scores(proposed, data)
    log_ratio = beta * (jnp.sum(new_scores) - jnp.sum(node_scores))
    accept = jnp.log(jax.random.uniform(k_u)) < log_ratio  # nan (both -inf): rejected
    return (jnp.where(accept, proposed, order), jnp.where(accept, new_scores, node_scores),
            accept)


def _exchange(key, order, node_scores, betas, t):
    """Parallel tempering's exchange move: neighbouring temperatures (pairs (0, 1), (2, 3),
    ... on even steps, (1, 2), ... on odd ones) of each chain swap their orders with
    probability min(1, exp((β_k - β_k+1)(L_k+1 - L_k))), L the log score."""
    T = betas.shape[0]
    chains = order.shape[0] // T
    o = order.reshape(T, chains, -1)
    s = node_scores.reshape(T, chains, -1)
    total = jnp.sum(s, axis=2)  # (T, chains)
    k = jnp.arange(T)
    partner = jnp.where((k - t) % 2 == 0, k + 1, k - 1)
    valid = (partner >= 0) & (partner < T)
    partner = jnp.clip(partner, 0, T - 1)
    log_accept = (betas - betas[partner])[:, None] * (total[partner] - total)
    u = jax.random.uniform(key, (T, chains))[jnp.minimum(k, partner)]  # one draw per pair
    accept = valid[:, None] & (jnp.log(u) < log_accept)
    o = jnp.where(accept[:, :, None], o[partner], o)
    s = jnp.where(accept[:, :, None], s[partner], s)
    counts = jnp.stack([jnp.sum(accept), jnp.sum(valid) * chains]) // 2
    return o.reshape(order.shape), s.reshape(node_scores.shape), counts.astype(jnp.int32)


def _edge_marginals(order, node_scores, data: OrderMCMCData):
    """(d, C): P(candidate c -> j | ≺, x), Rao-Blackwellised, from the table alone: the sets
    S ⊆ U without c are the subsets of U ∖ c, so P(c ∈ pa_j | U) = 1 - α_j(U ∖ c) / α_j(U)
    (0 for c ∉ U), d C lookups whatever the number of parent sets."""
    U = _predecessor_bits(order, data.candidates)  # (d,)
    bit = jnp.uint32(1) << jnp.arange(data.candidates.shape[1], dtype=jnp.uint32)
    in_U = (U[:, None] & bit) != 0
    without = data.log_alpha[jnp.arange(order.shape[0])[:, None], U[:, None] & ~bit]
    p = 1.0 - jnp.exp(without - node_scores[:, None])
    return jnp.where(in_U & jnp.isfinite(node_scores)[:, None], jnp.clip(p, 0.0, 1.0), 0.0)


def _draw(key, orders, node_scores, data: OrderMCMCData):
    """One DAG per chain from p(G | ≺, x): a parent set per node by inverse CDF over the
    sets allowed by the order, (chains, d) set indices."""
    def one(args):  # chain by chain: (d, S) at a time, not (chains, d, S)
        k, order, scores_ = args
        U = _predecessor_bits(order, data.candidates)
        w = jnp.where((data.sets & ~U[:, None]) == 0,
                      jnp.exp(data.log_beta - scores_[:, None]), 0.0)
        cdf = jnp.cumsum(w, axis=1)
        u = jax.random.uniform(k, scores_.shape)[:, None] * cdf[:, -1:]
        return jnp.minimum(jnp.sum(cdf < u, axis=1), w.shape[1] - 1).astype(jnp.int32)

    keys = jax.random.split(key, orders.shape[0])
    return jax.lax.map(one, (keys, orders, node_scores))


class OrderMCMCConfig(NamedTuple):
    thin: int = DEFAULT_THIN
    burn_in: int = 0
    betas: tuple = (1.0,)  # inverse temperatures, the first 1 (the chains that are kept)


def step(key, state: OrderMCMCState, data: OrderMCMCData, config: OrderMCMCConfig
         ) -> tuple[OrderMCMCState, dict]:
    """One move per chain and temperature (vmapped), then an exchange between neighbouring
    temperatures; after the burn-in every step adds the cold chains' edge marginals, and
    every ``config.thin`` steps a DAG per cold chain is drawn."""
    n = state.order.shape[0]
    chains = n // len(config.betas)
    k_move, k_exchange, k_draw = jax.random.split(key, 3)
    betas = jnp.asarray(config.betas, jnp.float32)
    order, node_scores, accept = jax.vmap(_move, (0, 0, 0, None, 0))(
        jax.random.split(k_move, n), state.order, state.node_scores, data,
        jnp.repeat(betas, chains))
    t = state.t + 1
    exchanges = state.exchanges
    if len(config.betas) > 1:
        order, node_scores, counts = _exchange(k_exchange, order, node_scores, betas, t)
        exchanges = exchanges + counts
    after = t > config.burn_in
    cold, cold_scores = order[:chains], node_scores[:chains]
    # a scalar predicate: a real branch, so the burn-in skips the edge marginals' lookups
    edge_sums = jax.lax.cond(
        after, lambda e: e + jax.vmap(_edge_marginals, (0, 0, None))(cold, cold_scores, data),
        lambda e: e, state.edge_sums)
    state = state._replace(order=order, node_scores=node_scores, t=t,
                           accepted=state.accepted + accept, exchanges=exchanges,
                           edge_sums=edge_sums)

    def draw(s):
        slot = jnp.clip((t - config.burn_in) // config.thin - 1, 0, s.samples.shape[1] - 1)
        return s._replace(samples=s.samples.at[:, slot].set(
            _draw(k_draw, s.order[:chains], s.node_scores[:chains], data)))

    due = after & ((t - config.burn_in) % config.thin == 0)
    state = jax.lax.cond(due, draw, lambda s: s, state)
    return state, {"log_score": jnp.sum(cold_scores, axis=1)}


def temperature_ladder(temperatures: int, coldest_hot: float = 0.1) -> tuple:
    """Inverse temperatures 1 = β_0 > ... > β_{T-1} = ``coldest_hot``, geometric."""
    if temperatures == 1:
        return (1.0,)
    return tuple(float(coldest_hot ** (k / (temperatures - 1))) for k in range(temperatures))


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
           thin: int = DEFAULT_THIN, checkpoint_path: str | Path | None = None,
           progress=None, fingerprint_arrays=(), temperatures: int = 1) -> OrderMCMCResult:
    """Run the chains from ``orders`` (chains, d) for ``steps`` steps through the driver
    (jitted chunks, checkpointed and resumable at ``checkpoint_path``); with
    ``temperatures`` T > 1 each chain is the cold end of a parallel-tempering ladder of T
    (:func:`temperature_ladder`; Geyer 1991), whose hotter copies cross between modes and
    pass what they find down by exchanges."""
    require_count("the number of temperatures", temperatures)
    require_count("the number of order MCMC steps", steps)
    require_count("the thinning", thin)
    n_kept = kept(steps, thin)
    if n_kept < 1:
        raise UsageError(f"order MCMC keeps an order every {thin} steps after a burn-in of "
                         f"half the steps: run at least {2 * thin} steps, not {steps}")
    orders = np.asarray(orders, np.int32)
    d = orders.shape[1]
    state = init(orders, space.data, steps, thin, temperatures)
    cfg = OrderMCMCConfig(thin, burn_in(steps), temperature_ladder(temperatures))
    fp = run_layer.fingerprint((*fingerprint_arrays, orders, space.log_beta),
                               {"method": "order_mcmc", "steps": steps, "thin": thin,
                                "seed": seed, "temperatures": temperatures})

    def report(done, total, out):
        if progress is not None:
            progress(done, {"log_score": float(np.max(out["log_score"][-1]))})

    res = run_layer.run(step, state, space.data, run_layer.raw_key(seed), steps, config=cfg,
                        chunk=CHUNK,
                        checkpoint=checkpoint_path, fingerprint=fp, progress=report)
    if res.stopped:
        raise UsageError(f"order MCMC {res.stopped}")
    final = res.state
    sums = np.asarray(final.edge_sums, np.float64) / (steps - burn_in(steps))  # (chains, d, C)
    chains = len(orders)
    chain_probs = np.zeros((chains, d, d))
    cand = np.broadcast_to(space.candidates[None], sums.shape)
    ch, j, c = np.nonzero(np.broadcast_to(space.valid[None], sums.shape))
    chain_probs[ch, cand[ch, j, c], j] = sums[ch, j, c]
    G, log_joint = graphs_of(np.asarray(final.samples).reshape(chains * n_kept, d), space)
    if chains > 1:
        ess = np.full(chains, float(n_kept))
        diag = diagnostics.RunDiagnostics(diagnostics.edge_rhat(chain_probs, ess), chain_probs,
                                          ess)
        rhat_max, worst = diag.rhat_max(), diag.worst_edge()
    else:
        rhat_max, worst = float("nan"), (0, 1)
    if not np.all(np.isfinite(np.asarray(final.node_scores))):
        raise KnowledgeError("order MCMC found no order that the prior knowledge allows; "
                             "relax --require / --forbid / --tiers")
    exchanged, proposed = (int(v) for v in np.asarray(final.exchanges))
    return OrderMCMCResult(chain_probs.mean(0), chain_probs, G, log_joint,
                           float(np.asarray(final.accepted)[:chains].sum() / (chains * steps)),
                           rhat_max, worst, space.candidates, space.valid,
                           space.max_parents, res.seconds,
                           res.compile_seconds, res.resumed_from,
                           np.asarray(res.outputs["log_score"]), temperatures,
                           exchanged / proposed if proposed else float("nan"))


def order_mcmc(x, steps: int = 5000, chains: int = 4, seed: int = 0,
               edges_per_node: float = 1.0, graph_prior: str = "er",
               max_parents: int = DEFAULT_MAX_PARENTS,
               n_candidates: int = DEFAULT_CANDIDATES, edge_probs: np.ndarray | None = None,
               knowledge: Knowledge | None = None, mask=None, orders=None,
               thin: int = DEFAULT_THIN) -> OrderMCMCResult:
    """Order MCMC on standardized data ``x`` (n, d), see the module. ``edge_probs`` (a
    DiBS posterior's) guides the candidate parents, ``orders`` (chains, d) start the
    chains (default: random orders)."""
    x = np.asarray(x, np.float32)
    d = x.shape[1]
    stats = scores.bge_stats(x, mask)
    if knowledge is not None:
        knowledge = knowledge.check()
    cand, valid = candidate_parents(stats, d, n_candidates, edge_probs, knowledge)
    space = search_space(stats, d, cand, valid, max_parents, graph_prior, edges_per_node,
                         knowledge)
    if orders is None:
        rng = np.random.default_rng(seed)
        required = np.zeros((d, d), bool) if knowledge is None else knowledge.required
        orders = np.stack([random_order(required, rng) for _ in range(chains)])
    return sample(space, orders, steps, seed, thin)


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


@jax.jit
def order_log_score(order, data: OrderMCMCData):
    """log p(≺, x) up to a constant (the sum of the node scores)."""
    return jnp.sum(_node_scores(order, data))


DRAWS_PER_CHAIN = 20


def default_thin(steps: int) -> int:
    """About ``DRAWS_PER_CHAIN`` DAGs drawn per chain: a draw costs a pass over every parent
    set of every node, while the edge marginals come from every step at O(d C)."""
    return max(1, (steps - burn_in(steps)) // DRAWS_PER_CHAIN)


def refine(run, steps: int, n_candidates: int = DEFAULT_CANDIDATES,
           max_parents: int | None = None, thin: int | None = None, seed: int = 0,
           checkpoint_path: str | Path | None = None, progress=None,
           temperatures: int = 1):
    """Order MCMC seeded by a DiBS run (:class:`deepbn.structure.learn.StructureRun`, BGe):
    one chain per particle, started at a topological order of its graph, on the search
    space of :func:`candidate_parents` guided by the particles' edge marginals, with the
    run's prior and knowledge. Returns the run with the chains' posterior in place of the
    particles' (draws equally weighted, Rao-Blackwellised edge marginals) and the
    :class:`OrderMCMCResult`."""
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
    cand, valid = candidate_parents(stats, d, n_candidates, post.edge_probs(), knowledge)
    space = search_space(stats, d, cand, valid, K, cfg.graph_prior, cfg.edges_per_node,
                         knowledge)
    required = None if knowledge is None else knowledge.required
    orders = topological_orders(post.graphs, required)
    res = sample(space, orders, steps, seed, default_thin(steps) if thin is None else thin,
                 checkpoint_path, progress, fingerprint_arrays=(post.graphs,),
                 temperatures=temperatures)
    n = len(res.graphs)
    refined = post._replace(
        graphs=res.graphs, theta=None, log_joint=res.log_joint,
        weights_empirical=np.full(n, 1.0 / n), weights_mixture=np.full(n, 1.0 / n),
        cyclic=np.zeros(n, bool), beyond_max_parents=np.zeros(n, bool),
        edge_marginals=res.edge_probs)
    return run._replace(posterior=refined, runs=1), res
