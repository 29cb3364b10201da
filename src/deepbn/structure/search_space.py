"""The search space of the order sampler: each node's candidate parents, every parent set
of them scored, the tables a move reads, and how the space grows.

A node j may take its parents only among its C *candidates* (Friedman & Koller, Mach.
Learn. 50, 2003, Sec. 4.1; Kuipers, Suter & Moffa, JCGS 31, 2022): an edge from
outside them has probability 0, the approximation the sampler makes. The candidates are
chosen in three ways, strongest evidence first (:func:`candidate_parents`):

- **greedy forward selection** of j's regression under BGe (:func:`greedy_parents`): the
  node whose addition raises log q_j(S) + log p(x_j | x_S) most, until none does; this
  finds parents that only help given the others (a parent with no marginal correlation),
  which pairwise screening misses;
- the nodes a DiBS posterior makes adjacent to j, when one is given;
- the largest pairwise BGe gains log p(x_j | x_i) - log p(x_j), to fill up.

The space is not fixed once (:func:`grow`, BiDAG's iterative search in spirit, Kuipers et
al. 2022, Sec. 4): after a round of sampling, each node's most probable parent set S is
scored with every node i outside its candidates added, log β_j(S ∪ i) - log β_j(S); the
gainers replace the candidates the chains gave least probability, and the sampler runs
again, until no node gains.

Given the candidates, :func:`build` scores every parent set of at most K_j of them,
log β_j(S) = log q_j(S) + log p(x_j | x_S) with q_j the per-family prior of DiBS (ER or
scale-free, soft edge priors, forbidden and required edges,
:func:`deepbn.structure.exact.family_log_priors`), and tabulates
log α_j(U) = log Σ_{S ⊆ U} β_j(S) over all 2^C candidate sets U by one zeta transform
(the sums of Koivisto & Sood, JMLR 5, 2004, restricted to the candidates).

Memory: the table holds d 2^C float32 numbers (C = 16: 256 KiB a node, 128 MiB at
d = 500), the scores d Σ_{k ≤ K} binom(C, k) (C = 16, K = 5: 6885 a node) in float64
and float32; building it factorises one (K+1)² matrix per node and set.

Example::

    from deepbn.structure import scores, search_space
    stats = scores.bge_stats(x)                                  # x: (n, d) standardized
    cand, valid = search_space.candidate_parents(stats, d)
    space = search_space.build(stats, d, cand, valid, max_parents=5)
    space.data.log_alpha.shape                                   # (d, 2 ** 16)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from deepbn.errors import KnowledgeError, UsageError
from deepbn.structure import exact, scores
from deepbn.structure.config import DEFAULT_CANDIDATES, DEFAULT_MAX_PARENTS, MAX_CANDIDATES
from deepbn.structure.knowledge import Knowledge

GREEDY_ROUNDS = 8  # parents added by forward selection at most, per node
DROP = 0.01  # a candidate the sampler gives less than this is what growth may replace
BATCH = 65536  # families factorised at once


class ScoreTables(NamedTuple):
    """The search space as the jitted sampler reads it; every node's parent sets are the same
    C-bit masks (the sets a node cannot have score -inf)."""

    candidates: jnp.ndarray  # (d, C) int32: candidate parents of j (padded with j itself)
    log_alpha: jnp.ndarray  # (d, 2^C) float32: log Σ_{S ⊆ U} β_j(S) for every candidate set U
    sets: jnp.ndarray  # (S,) uint32: the parent sets, as bit masks over the C candidates
    member: jnp.ndarray  # (S, C) float32: the same bits as numbers
    log_beta: jnp.ndarray  # (d, S) float32: log β_j(S); -inf for a set node j cannot have
    slot_bits: jnp.ndarray  # (d, d) uint32: [j, i] the bit of i among j's candidates, or 0


class SearchSpace(NamedTuple):
    """:func:`build`'s result: the jitted tables and, in float64, the scores."""

    data: ScoreTables
    log_beta: np.ndarray  # (d, S) float64: log q_j(S) + log p(x_j | x_S), -inf if excluded
    candidates: np.ndarray  # (d, C) int
    valid: np.ndarray  # (d, C) bool: a real candidate (not padding)
    max_parents: np.ndarray  # (d,) int: each node's bound


class Prior(NamedTuple):
    """The per-family prior q_j(S) as the scoring needs it, float64."""

    by_count: np.ndarray  # (d,) log prior of a node with k parents (structure prior)
    on: np.ndarray  # (d, d) log p_ij where a soft opinion on i -> j exists, else 0
    off: np.ndarray  # (d, d) log (1 - p_ij) likewise
    forbidden: np.ndarray  # (d, d) bool
    required: np.ndarray  # (d, d) bool

    def family(self, j: np.ndarray, parents: np.ndarray, present: np.ndarray) -> np.ndarray:
        """log q_j(S) for families (B,) with parents (B, K) marked by ``present``."""
        soft = np.where(present, self.on[parents, j[:, None]] - self.off[parents, j[:, None]],
                        0.0).sum(1)
        return (self.by_count[present.sum(1)] + soft
                + self.off[:, j].sum(0) - self.off[j, j])


def prior(d: int, graph_prior: str = "er", edges_per_node: float = 1.0,
          knowledge: Knowledge | None = None) -> Prior:
    by_count = exact.log_prior_by_parent_count(d, graph_prior, edges_per_node)
    if knowledge is not None and not knowledge.is_empty():
        on, off = (np.asarray(t, np.float64) for t in knowledge.log_prior_terms())
        return Prior(by_count, on, off, np.asarray(knowledge.forbidden, bool),
                     np.asarray(knowledge.required, bool))
    zero = np.zeros((d, d))
    return Prior(by_count, zero, zero, np.zeros((d, d), bool), np.zeros((d, d), bool))


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


def _batched_family_scores(stats, d, nodes, parents, present):
    out = np.empty(len(nodes))
    for s in range(0, len(nodes), BATCH):
        e = s + BATCH
        out[s:e] = family_scores(stats, d, nodes[s:e], parents[s:e], present[s:e])
    return out


def pairwise_gains(stats: scores.BGeStats, d: int) -> np.ndarray:
    """(d, d): log p(x_j | x_i) - log p(x_j) under BGe, the evidence for i as j's single
    parent (symmetric for observational data, BGe being score equivalent)."""
    nodes = np.repeat(np.arange(d), d)
    parents = np.tile(np.arange(d), d)[:, None]
    # i = j scores the empty set (a node is not its own parent); the diagonal is dropped below
    one = _batched_family_scores(stats, d, nodes, parents, (nodes != parents[:, 0])[:, None])
    none = family_scores(stats, d, np.arange(d), np.zeros((d, 1), int), np.zeros((d, 1), bool))
    gain = one.reshape(d, d).T - none[None, :]  # [i, j]
    np.fill_diagonal(gain, -np.inf)
    return gain


def _with_one_more(stats, d, q: Prior, nodes: np.ndarray, sets: list[np.ndarray],
                   outside: np.ndarray) -> np.ndarray:
    """(B, d) log β_j(S ∪ i) - log β_j(S) for each family (j, S) = (``nodes[b]``,
    ``sets[b]``) and every i with ``outside[b, i]`` (-inf elsewhere): the gain of one more
    parent."""
    B = len(nodes)
    k = max((len(s) for s in sets), default=0) + 1
    bb, ii = np.nonzero(outside)
    gain = np.full((B, d), -np.inf)
    if not len(bb):
        return gain
    base = np.zeros((B, k), int)
    have = np.zeros((B, k), bool)
    for b, s in enumerate(sets):
        base[b, :len(s)], have[b, :len(s)] = s, True
    parents, present = base[bb].copy(), have[bb].copy()
    size = have.sum(1)[bb]
    parents[np.arange(len(bb)), size] = ii
    present[np.arange(len(bb)), size] = True
    jj = nodes[bb]
    with_i = (_batched_family_scores(stats, d, jj, parents, present)
              + q.family(jj, parents, present))
    without = _batched_family_scores(stats, d, nodes, base, have) + q.family(nodes, base, have)
    gain[bb, ii] = with_i - without[bb]
    return gain


def greedy_parents(stats: scores.BGeStats, d: int, q: Prior, rounds: int = GREEDY_ROUNDS,
                   start: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Each node's parents by forward selection: from its required parents (or ``start``),
    add the node that raises log β_j(S) most while one does (at most ``rounds`` more),
    never a forbidden one; all nodes at once, d² families a round."""
    sets = ([np.flatnonzero(q.required[:, j]) for j in range(d)] if start is None
            else [np.asarray(s, int) for s in start])
    active = np.ones(d, bool)
    for _ in range(rounds):
        outside = (~q.forbidden & ~np.eye(d, dtype=bool) & active[None, :]).T  # [j, i]
        for j, s in enumerate(sets):
            outside[j, s] = False
        gain = _with_one_more(stats, d, q, np.arange(d), sets, outside)  # [j, i]
        best = np.argmax(gain, axis=1)
        grows = gain[np.arange(d), best] > 0.0
        if not grows.any():
            break
        sets = [np.append(s, best[j]) if grows[j] else s for j, s in enumerate(sets)]
        active &= grows
    return sets


def candidate_parents(stats: scores.BGeStats, d: int, n_candidates: int = DEFAULT_CANDIDATES,
                      edge_probs: np.ndarray | None = None,
                      knowledge: Knowledge | None = None, greedy: bool = True,
                      graph_prior: str = "er", edges_per_node: float = 1.0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Node j's C candidate parents: its required parents, then (``greedy``) those of
    :func:`greedy_parents`, then the nodes most often adjacent to j under ``edge_probs`` (a
    DiBS posterior's, p_ij + p_ji ≥ 0.01), then the largest pairwise BGe gains; never a
    forbidden parent. Returns (d, C) indices and a (d, C) mask of real candidates (fewer
    when knowledge forbids the rest)."""
    C = min(int(n_candidates), d - 1)
    gain = pairwise_gains(stats, d)
    q = prior(d, graph_prior, edges_per_node, knowledge)
    chosen = np.zeros((d, d), bool)
    if greedy:
        for j, s in enumerate(greedy_parents(stats, d, q)):
            chosen[s, j] = True
    adjacent = np.zeros((d, d)) if edge_probs is None else edge_probs + edge_probs.T
    candidates = np.tile(np.arange(d)[:, None], (1, C))
    valid = np.zeros((d, C), bool)
    for j in range(d):
        # lexicographic: required, then greedy, then DiBS adjacency (when clear), then gain
        key = (q.required[:, j] * 8.0 + chosen[:, j] * 4.0
               + np.where(adjacent[:, j] >= 0.01, 2.0 + adjacent[:, j], 0.0))
        order = np.lexsort((-gain[:, j], -key))
        order = [i for i in order if i != j and not q.forbidden[i, j]][:C]
        candidates[j, :len(order)] = order
        valid[j, :len(order)] = True
        missing = np.flatnonzero(q.required[:, j] & ~np.isin(np.arange(d), order))
        if len(missing):
            raise KnowledgeError(f"node {j} has more required parents than the {C} candidates "
                                 f"of order MCMC; raise the number of candidates")
    return candidates, valid


def grow(stats: scores.BGeStats, d: int, candidates: np.ndarray, valid: np.ndarray,
         graphs: np.ndarray, edge_probs: np.ndarray, max_parents: np.ndarray, q: Prior,
         sets_per_node: int = 8, widest: int | None = None
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One round of search-space growth from the sampler's draws ``graphs`` (N, d, d): for
    each node j and each i outside its candidates, the posterior odds of one more parent,

        g_ij = log Σ_S p̂(pa_j = S) β_j(S ∪ i) / β_j(S),

    over the ``sets_per_node`` most frequent parent sets S of j among the draws (a set at
    j's bound contributes nothing): the plus-one neighbourhood of BiDAG (Kuipers et al.
    2022, Sec. 4.2) on the sets the sampler visits. Every i with g_ij > 0 takes, largest
    gain first, an empty slot, else the slot of the candidate of least P(c -> j)
    (``edge_probs``, the round's sampler) below :data:`DROP` that is neither required nor
    in j's most frequent set, else a new slot: every node's candidates widen by one, up to
    ``widest`` (default :data:`DEFAULT_CANDIDATES` + 2, at most :data:`MAX_CANDIDATES`; each
    slot doubles the table). Returns the new (candidates, valid) and the (d,) number of
    candidates each node gained.

    Whether i -> j closes a cycle in a draw is not asked: a descendant of j that explains
    it beyond its parents is what another member of its equivalence class may need as a
    parent (requiring acyclicity, ER-100 gained no candidate and its E-SHD stayed 17.6;
    without, 14.1-14.4).
    """
    candidates, valid = candidates.copy(), valid.copy()
    graphs = np.asarray(graphs, bool)
    inside = np.zeros((d, d), bool)  # [j, i]: i a candidate of j
    jj, cc = np.nonzero(valid)
    inside[jj, candidates[jj, cc]] = True
    nodes, sets, log_w, top_set = [], [], [], []
    for j in range(d):
        found, counts = np.unique(graphs[:, :, j], axis=0, return_counts=True)
        top = np.argsort(-counts, kind="stable")[:sets_per_node]
        top_set.append(found[top[0]])
        for f, c in zip(found[top], counts[top]):
            if f.sum() < max_parents[j]:
                nodes.append(j)
                sets.append(np.flatnonzero(f))
                log_w.append(np.log(c / len(graphs)))
    nodes = np.asarray(nodes, int)
    outside = (~inside & ~q.forbidden.T & ~np.eye(d, dtype=bool))[nodes]
    gain = np.full((d, d), -np.inf)  # [j, i]
    if len(nodes):
        per_set = (_with_one_more(stats, d, q, nodes, sets, outside)
                   + np.asarray(log_w)[:, None])
        for j in np.unique(nodes):
            gain[j] = np.logaddexp.reduce(per_set[nodes == j], axis=0)
    widest = min(MAX_CANDIDATES, d - 1, DEFAULT_CANDIDATES + 2 if widest is None else widest)
    gained = np.zeros(d, int)
    for j in np.flatnonzero((gain > 0.0).any(1)):
        new = np.flatnonzero(gain[j] > 0.0)
        new = new[np.argsort(-gain[j, new], kind="stable")]
        p = edge_probs[candidates[j], j]
        keep = (p >= DROP) | q.required[candidates[j], j] | top_set[j][candidates[j]]
        used = np.flatnonzero(valid[j] & ~keep)
        slots = list(np.flatnonzero(~valid[j])) + list(used[np.argsort(p[used], kind="stable")])
        for i in new:
            if not slots:
                if candidates.shape[1] >= widest:
                    break
                candidates = np.concatenate([candidates, np.arange(d)[:, None]], axis=1)
                valid = np.concatenate([valid, np.zeros((d, 1), bool)], axis=1)
                slots = [candidates.shape[1] - 1]
            slot = slots.pop(0)
            candidates[j, slot], valid[j, slot] = i, True
            gained[j] += 1
    return candidates, valid, gained


def build(stats: scores.BGeStats, d: int, candidates: np.ndarray, valid: np.ndarray,
          max_parents: int | np.ndarray = DEFAULT_MAX_PARENTS, graph_prior: str = "er",
          edges_per_node: float = 1.0, knowledge: Knowledge | None = None) -> SearchSpace:
    """Every parent set of at most ``max_parents`` (one bound, or one per node) of each
    node's C candidates, scored, log β_j(S) = log q_j(S) + log p(x_j | x_S) (-inf for a
    set holding a padding slot or missing a required parent); and the table
    log α_j(U) = log Σ_{S ⊆ U} β_j(S) over all 2^C candidate sets U (one zeta transform),
    so that a node's score given an order is one lookup."""
    C = candidates.shape[1]
    if C > MAX_CANDIDATES:
        raise UsageError(f"order MCMC takes at most {MAX_CANDIDATES} candidate parents per "
                         f"node, not {C}")
    K_node = np.minimum(np.broadcast_to(np.asarray(max_parents, int), (d,)), C)
    K = int(K_node.max())
    q = prior(d, graph_prior, edges_per_node, knowledge)
    if (q.required.sum(0) > K_node).any():
        j = int(np.argmax(q.required.sum(0) - K_node))
        raise KnowledgeError(f"node {j} has {int(q.required[:, j].sum())} required parents, "
                             f"more than the bound of {int(K_node[j])} parents")
    masks = np.arange(2 ** C, dtype=np.int64)
    member = ((masks[:, None] >> np.arange(C)) & 1).astype(bool)
    sets, member = masks[member.sum(1) <= K], member[member.sum(1) <= K]  # (S,), (S, C)
    slot_bit = 1 << np.arange(C)
    valid_bits = (valid * slot_bit).sum(1)  # (d,)
    required_slots = q.required[candidates, np.arange(d)[:, None]] & valid  # (d, C)
    required_bits = (required_slots * slot_bit).sum(1)
    n_pa = member.sum(1)
    allowed = (((sets[None, :] & ~valid_bits[:, None]) == 0)
               & ((sets[None, :] & required_bits[:, None]) == required_bits[:, None])
               & (n_pa[None, :] <= K_node[:, None]))
    log_lik = np.full((d, len(sets)), -np.inf)
    order = np.argsort(~member, axis=1, kind="stable")[:, :K]  # (S, K): a set's slots first
    present = np.take_along_axis(member, order, axis=1)
    jj, ss = np.nonzero(allowed)
    log_lik[jj, ss] = _batched_family_scores(stats, d, jj, candidates[jj[:, None], order[ss]],
                                             present[ss])
    soft_slot = (q.on - q.off)[candidates, np.arange(d)[:, None]] * valid  # (d, C)
    soft = member.astype(np.float64) @ soft_slot.T  # (S, d)
    log_beta = (log_lik + q.by_count[n_pa][None, :] + soft.T
                + (q.off.sum(0) - np.diag(q.off))[:, None])
    shift = np.max(log_beta, axis=1, keepdims=True)  # float32 keeps differences, not totals
    table = np.full((d, 2 ** C), -np.inf, np.float32)
    table[:, sets] = log_beta - shift
    log_alpha = _log_zeta_in_place(table, C)
    bits = np.zeros((d, d), np.uint32)
    jj, cc = np.nonzero(valid)
    bits[jj, candidates[jj, cc]] = (1 << cc).astype(np.uint32)
    data = ScoreTables(jnp.asarray(candidates, jnp.int32), jnp.asarray(log_alpha, jnp.float32),
                       jnp.asarray(sets.astype(np.uint32)), jnp.asarray(member, jnp.float32),
                       jnp.asarray(log_beta - shift, jnp.float32), jnp.asarray(bits))
    return SearchSpace(data, log_beta, candidates, valid, K_node)


def _log_zeta_in_place(a: np.ndarray, C: int) -> np.ndarray:
    """log Σ_{S ⊆ U} exp a[:, S] for every U, overwriting ``a`` (the zeta transform of
    :func:`deepbn.structure.exact.log_zeta` without its copy, in float32: at C = 18 and
    d = 500 the float64 table and its copy were 2 GiB)."""
    for b in range(C):
        v = a.reshape(a.shape[0], -1, 2, 2 ** b)
        with np.errstate(invalid="ignore"):  # -inf + -inf: logaddexp gives -inf, warns
            np.logaddexp(v[:, :, 1, :], v[:, :, 0, :], out=v[:, :, 1, :])
    return a


def memory_bytes(d: int, n_candidates: int = DEFAULT_CANDIDATES,
                 max_parents: int = DEFAULT_MAX_PARENTS) -> int:
    """The bytes the tables of :func:`build` hold at their peak, on the host and the device:
    the 2^C table (float32, twice while it moves to the device), the scores of the sets
    (float64 likelihoods and priors, float32 on the device) and the (d, d) candidate bits."""
    C = min(n_candidates, d - 1)
    n_sets = sum(math.comb(C, k) for k in range(min(max_parents, C) + 1))
    return d * (2 ** C * (4 + 4) + n_sets * (8 + 8 + 4) + d * 4)
