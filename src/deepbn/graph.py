"""DAG utilities on boolean adjacency matrices.

Convention: ``A[i, j] == True`` means an edge ``i -> j`` (i is a parent of j).
Discrete utilities (orders, ancestors, random DAGs, SHD, files) work on numpy
arrays; the differentiable acyclicity functions work on JAX arrays so they can
be used inside jitted, differentiated code (DiBS).

Example:
    >>> import numpy as np
    >>> A = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]], bool)
    >>> topological_order(A)
    [0, 1, 2]
    >>> float(acyclicity_poly(A))
    0.0
"""

from __future__ import annotations

import csv
import os
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import jax.scipy.linalg
import numpy as np

from deepbn.atomic import atomic_write
from deepbn.errors import CycleError, DataError, UsageError
from deepbn.io.tables import read_csv_rows

if TYPE_CHECKING:  # networkx is imported where it is used: it adds 0.1 s to every command
    import networkx as nx


def as_adjacency(A) -> np.ndarray:
    """Return ``A`` as a square boolean numpy array (raises on a bad shape)."""
    A = np.asarray(A)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise UsageError(f"an adjacency matrix must be square, got shape {A.shape}")
    return A.astype(bool)


def _label(i: int, names: Sequence[str] | None) -> str:
    return str(names[i]) if names is not None else str(i)


def find_cycle(A) -> list[int] | None:
    """Return the nodes of one directed cycle in order, or ``None`` for a DAG."""
    A = as_adjacency(A)
    d = A.shape[0]
    colour = np.zeros(d, np.int8)  # 0 new, 1 on the stack, 2 finished
    parent = -np.ones(d, np.int64)
    for root in range(d):
        if colour[root]:
            continue
        stack = [(root, iter(np.flatnonzero(A[root])))]
        colour[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = 2
                stack.pop()
            elif colour[nxt] == 1:
                cycle = [int(node)]
                while cycle[-1] != nxt:
                    cycle.append(int(parent[cycle[-1]]))
                return cycle[::-1]
            elif colour[nxt] == 0:
                colour[nxt] = 1
                parent[nxt] = node
                stack.append((nxt, iter(np.flatnonzero(A[nxt]))))
    return None


def topological_order(A, names: Sequence[str] | None = None) -> list[int]:
    """Kahn's algorithm; ties broken by index so the order is deterministic.

    Raises :class:`CycleError` naming the nodes of a cycle when ``A`` is cyclic.
    """
    A = as_adjacency(A)
    indegree = A.sum(0).astype(np.int64)
    ready = deque(int(i) for i in np.flatnonzero(indegree == 0))
    order: list[int] = []
    while ready:
        i = ready.popleft()
        order.append(i)
        for j in np.flatnonzero(A[i]):
            indegree[j] -= 1
            if indegree[j] == 0:
                ready.append(int(j))
    if len(order) < A.shape[0]:
        cycle = find_cycle(A)
        path = " -> ".join(_label(i, names) for i in cycle + cycle[:1])
        raise CycleError(f"the graph has a directed cycle: {path}; remove one of these edges")
    return order


def is_dag(A) -> bool:
    """True when ``A`` has no directed cycle (self-loops count as cycles)."""
    return find_cycle(A) is None


def longest_path(A) -> int:
    """The number of edges on the longest directed path of DAG ``A`` (0 without edges)."""
    A = as_adjacency(A)
    length = np.zeros(A.shape[0], int)
    for j in topological_order(A):
        pa = np.flatnonzero(A[:, j])
        if pa.size:
            length[j] = 1 + length[pa].max()
    return int(length.max()) if length.size else 0


def parents(A, j: int) -> np.ndarray:
    """Indices of the parents of node ``j``."""
    return np.flatnonzero(as_adjacency(A)[:, j])


def children(A, i: int) -> np.ndarray:
    """Indices of the children of node ``i``."""
    return np.flatnonzero(as_adjacency(A)[i])


def _reachable(M: np.ndarray, start: int) -> set[int]:
    seen: set[int] = set()
    frontier = [start]
    while frontier:
        k = frontier.pop()
        for nxt in np.flatnonzero(M[k]):
            if int(nxt) not in seen:
                seen.add(int(nxt))
                frontier.append(int(nxt))
    return seen


def ancestors(A, j: int) -> set[int]:
    """All nodes with a directed path into ``j`` (excluding ``j`` unless cyclic)."""
    return _reachable(as_adjacency(A).T, j)


def descendants(A, i: int) -> set[int]:
    """All nodes reachable from ``i`` by a directed path."""
    return _reachable(as_adjacency(A), i)


def transitive_closure(A) -> np.ndarray:
    """``R[i, j]`` is True when there is a directed path of length >= 1 from i to j."""
    A = as_adjacency(A)
    R = A.copy()
    for k in range(A.shape[0]):  # Warshall
        R |= R[:, k : k + 1] & R[k : k + 1, :]
    return R


@jax.custom_jvp
def acyclicity_poly(A: jnp.ndarray) -> jnp.ndarray:
    """h(A) = tr[(I + A/d)^d] - d for a non-negative (soft) adjacency matrix.

    Zero exactly when ``A`` has no directed cycle and positive otherwise; smooth
    in ``A``. Yu et al. (DAG-GNN, 2019) polynomial form, used by DiBS (Lorch et
    al. 2021, Eq. 4). ``A`` may carry leading batch dimensions.

    The derivative is the closed form ∂h/∂A = ((I + A/d)^{d-1})ᵀ, computed from
    the same matrix power as the value, so a gradient costs no backward pass
    through the repeated squaring. Above d = 100 the power is computed with a
    running scale and capped near 10¹⁵ (float32 would overflow); value and gradient
    are exact below the cap.
    """
    return _acyclicity_poly_and_grad(A)[0]


# (I + A/d)^(d-1) has entries up to 2^(d-1) for 0 <= A <= 1, and the optimiser squares the
# gradient built from it: in float32 a dense soft graph early in a DiBS run overflows that
# at d = 200 (d = 100 runs fine: bench/dibs_scale.py). Above d = 100 the power is taken
# with a running log scale and its size capped at e^34.5 ≈ 1e15: the gradient keeps its
# direction (RMSprop rescales it anyway) instead of becoming inf. Not below: the
# normalisation after every product made d = 100 about a third slower.
OVERFLOW_FREE_D = 100
LOG_SCALE_CAP = 34.5


def _scaled_matrix_power(M, n: int):
    """(P, s) with M^n = e^s · P and max |P| = 1 per matrix, by repeated squaring."""
    def normalise(X, log_scale):
        c = jnp.max(jnp.abs(X), axis=(-2, -1))
        c = jnp.where(c > 0, c, 1.0)
        return X / c[..., None, None], log_scale + jnp.log(c)

    base, base_log = normalise(M, jnp.zeros(M.shape[:-2], M.dtype))
    result = None
    while True:
        if n & 1:
            result = (base, base_log) if result is None else normalise(
                result[0] @ base, result[1] + base_log)
        n >>= 1
        if not n:
            return result
        base, base_log = normalise(base @ base, 2.0 * base_log)


def _acyclicity_poly_and_grad(A):
    A = jnp.asarray(A, dtype=jnp.result_type(float))
    d = A.shape[-1]
    M = jnp.eye(d, dtype=A.dtype) + A / d
    if d <= OVERFLOW_FREE_D:
        P = jnp.linalg.matrix_power(M, d - 1)
    else:
        P, log_scale = _scaled_matrix_power(M, d - 1)
        P = P * jnp.exp(jnp.minimum(log_scale, LOG_SCALE_CAP))[..., None, None]
    Pt = jnp.swapaxes(P, -1, -2)
    return jnp.sum(Pt * M, axis=(-2, -1)) - d, Pt


@acyclicity_poly.defjvp
def _acyclicity_poly_jvp(primals, tangents):
    (A,), (dA,) = primals, tangents
    h, grad = _acyclicity_poly_and_grad(A)
    return h, jnp.sum(grad * dA, axis=(-2, -1))


def has_cycle(A: jnp.ndarray) -> jnp.ndarray:
    """Whether a hard graph ``A`` (..., d, d) has a directed cycle, by peeling sources.

    Kahn's algorithm in matrix form: drop every node with no parent left among the
    remaining nodes until nothing changes; a cycle is what remains. Each round is one
    matrix-vector product, and the rounds stop after the longest path, so on sparse
    graphs this costs a few O(d²) products where :func:`acyclicity_poly` needs
    log₂ d matrix products.
    """
    A = (jnp.asarray(A) != 0).astype(jnp.float32)

    def peel(state):
        alive, _ = state
        parents_left = jnp.einsum("...i,...ij->...j", alive, A)
        new = alive * (parents_left > 0)
        return new, jnp.any(new != alive)

    alive, _ = jax.lax.while_loop(lambda s: s[1], peel,
                                  (jnp.ones(A.shape[:-1], A.dtype), jnp.array(True)))
    return jnp.any(alive > 0, axis=-1)


def acyclicity_expm(A: jnp.ndarray) -> jnp.ndarray:
    """h(A) = tr(exp(A * A)) - d (Zheng et al., NOTEARS, 2018, Eq. 7)."""
    A = jnp.asarray(A, dtype=jnp.result_type(float))
    d = A.shape[-1]
    expm = jax.scipy.linalg.expm
    for _ in range(A.ndim - 2):
        expm = jax.vmap(expm)
    return jnp.trace(expm(A * A), axis1=-2, axis2=-1) - d


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def random_er_dag(seed, d: int, edges_per_node: float) -> np.ndarray:
    """Erdős–Rényi DAG with ``edges_per_node * d`` edges in expectation.

    Each of the d(d-1)/2 pairs of a random node order gets an edge with
    probability p = 2 k / (d - 1), directed from earlier to later.
    """
    rng = _rng(seed)
    if d < 1 or edges_per_node < 0:
        raise UsageError("need d >= 1 nodes and a non-negative number of edges per node")
    p = min(1.0, 2.0 * edges_per_node / max(d - 1, 1))
    lower = np.tril(rng.random((d, d)) < p, k=-1)  # edge j -> i for j < i in generation order
    perm = rng.permutation(d)
    A = np.zeros((d, d), bool)
    A[np.ix_(perm, perm)] = lower.T
    return A


def random_sf_dag(seed, d: int, edges_per_node: float) -> np.ndarray:
    """Scale-free DAG by preferential attachment (Barabási & Albert, 1999).

    Nodes arrive one at a time; node t takes ``min(t, m_t)`` parents among the
    earlier nodes, chosen without replacement with probability proportional to
    (degree + 1), where ``m_t = floor(k) + Bernoulli(k - floor(k))``. The
    expected number of edges is ``sum_t E[min(t, m_t)]`` (≈ k·d for d ≫ k).
    """
    rng = _rng(seed)
    if d < 1 or edges_per_node < 0:
        raise UsageError("need d >= 1 nodes and a non-negative number of edges per node")
    base, frac = int(np.floor(edges_per_node)), edges_per_node - np.floor(edges_per_node)
    degree = np.zeros(d)
    gen = np.zeros((d, d), bool)
    for t in range(1, d):
        m = min(t, base + int(rng.random() < frac))
        if m == 0:
            continue
        w = degree[:t] + 1.0
        chosen = rng.choice(t, size=m, replace=False, p=w / w.sum())
        gen[chosen, t] = True
        degree[chosen] += 1
        degree[t] += m
    perm = rng.permutation(d)
    A = np.zeros((d, d), bool)
    A[np.ix_(perm, perm)] = gen
    return A


def shd(A, B) -> int:
    """Structural Hamming distance: edge insertions, deletions and reversals.

    Counts the unordered pairs {i, j} whose edge status differs; a reversed
    edge counts once (Tsamardinos et al., 2006).
    """
    A, B = as_adjacency(A), as_adjacency(B)
    if A.shape != B.shape:
        raise UsageError(f"cannot compare graphs of {A.shape[0]} and {B.shape[0]} nodes")
    differs = (A != B) | (A.T != B.T)
    return int(np.triu(differs, k=1).sum() + np.diag(A != B).sum())


def to_networkx(A, names: Sequence[str] | None = None) -> nx.DiGraph:
    """A ``networkx.DiGraph`` whose nodes are ``names`` (or 0..d-1)."""
    A = as_adjacency(A)
    import networkx as nx

    labels = list(names) if names is not None else list(range(A.shape[0]))
    G = nx.DiGraph()
    G.add_nodes_from(labels)
    G.add_edges_from((labels[i], labels[j]) for i, j in zip(*np.nonzero(A)))
    return G


def from_networkx(G: nx.DiGraph, names: Sequence | None = None) -> tuple[np.ndarray, list]:
    """Adjacency matrix of ``G`` in the order ``names`` (default: ``G``'s node order)."""
    labels = list(names) if names is not None else list(G.nodes)
    index = {n: k for k, n in enumerate(labels)}
    A = np.zeros((len(labels), len(labels)), bool)
    for u, v in G.edges:
        if u not in index or v not in index:
            raise UsageError(f"edge {u} -> {v} names a node not in the given order")
        A[index[u], index[v]] = True
    return A, labels


def read_edge_list(path: str | os.PathLike, names: Sequence[str]) -> np.ndarray:
    """Read a ``cause,effect`` CSV of variable names into an adjacency matrix."""
    index = {n: k for k, n in enumerate(names)}
    A = np.zeros((len(names), len(names)), bool)
    rows = read_csv_rows(path, "edge list")
    if not rows or [c.strip().lower() for c in rows[0]] != ["cause", "effect"]:
        raise DataError(f"{path}: an edge list needs the header line 'cause,effect'")
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise DataError(f"{path}, line {lineno}: expected two names 'cause,effect'")
        cause, effect = (c.strip() for c in row)
        for name in (cause, effect):
            if name not in index:
                raise DataError(
                    f"{path}, line {lineno}: unknown variable '{name}'; "
                    f"known variables are the data columns ({', '.join(names[:8])}"
                    f"{', ...' if len(names) > 8 else ''})"
                )
        A[index[cause], index[effect]] = True
    return A


def write_edge_list(path: str | os.PathLike, A, names: Sequence[str]) -> None:
    """Write the edges of ``A`` as a ``cause,effect`` CSV (atomically)."""
    A = as_adjacency(A)
    with atomic_write(path) as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["cause", "effect"])
        for i, j in zip(*np.nonzero(A)):
            w.writerow([names[i], names[j]])


def moralize(A) -> np.ndarray:
    """The moral graph (symmetric boolean): the skeleton plus edges between co-parents."""
    A = as_adjacency(A)
    M = A | A.T
    for j in range(A.shape[0]):
        pa = np.flatnonzero(A[:, j])
        M[np.ix_(pa, pa)] = True
    np.fill_diagonal(M, False)
    return M


def faithful_inverse(A, observed: Sequence[bool], order: Sequence[int] | None = None
                     ) -> np.ndarray:
    """The inverse DAG for amortised inference of the latents given the observed nodes.

    Moralise the forward DAG, then eliminate the latent nodes one at a time
    (``order``, or greedily by fewest fill-in edges, ties broken by latest
    position in a topological order of the forward DAG): the eliminated node's
    remaining neighbours become its parents in the inverse and are joined into a
    clique. Observed nodes are never eliminated: they are roots of the inverse.
    Eliminating a node's Markov blanket this way keeps every dependence the
    posterior has, so the inverse asserts no conditional independence the
    forward model lacks given the observations (Webb et al., "Faithful
    Inversion of Generative Models for Effective Amortized Inference",
    NeurIPS 2018, Sec. 3-4 and Alg. 1).

    Example:
        >>> A = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]], bool)   # z0 -> z1 -> x
        >>> faithful_inverse(A, [False, False, True]).astype(int).tolist()  # x -> z1 -> z0
        [[0, 0, 0], [1, 0, 0], [0, 1, 0]]
    """
    A = as_adjacency(A)
    d = A.shape[0]
    observed = np.asarray(observed, bool)
    if observed.shape != (d,):
        raise UsageError(f"observed has {observed.shape[0]} entries for {d} nodes")
    M = moralize(A)
    rank = {j: k for k, j in enumerate(topological_order(A))}
    remaining = set(np.flatnonzero(~observed).tolist())
    inverse = np.zeros((d, d), bool)
    plan = list(order) if order is not None else None

    def fill_in(z):
        nb = np.flatnonzero(M[z])
        sub = M[np.ix_(nb, nb)]
        return (len(nb) * (len(nb) - 1) - int(sub.sum())) // 2

    while remaining:
        if plan is not None:
            z = plan.pop(0)
            if z not in remaining:
                raise UsageError(f"elimination order names node {z}, which is observed, "
                                 "unknown or repeated")
        else:
            z = min(remaining, key=lambda v: (fill_in(v), -rank[v]))
        nb = np.flatnonzero(M[z])
        inverse[nb, z] = True
        M[np.ix_(nb, nb)] = True
        np.fill_diagonal(M, False)
        M[z, :] = M[:, z] = False
        remaining.discard(z)
    return inverse
