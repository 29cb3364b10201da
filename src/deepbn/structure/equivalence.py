"""Markov equivalence classes of DAGs: the CPDAG and the SHD between CPDAGs.

Two DAGs are Markov equivalent (they imply the same conditional
independences, and observational data cannot tell them apart) exactly when
they have the same skeleton and the same v-structures a -> c <- b with a, b
non-adjacent (Verma & Pearl 1990). A class is represented by its **CPDAG**
(completed partially directed acyclic graph): an edge is directed when every
DAG of the class orients it the same way (a compelled edge), undirected
otherwise.

:func:`cpdag` builds it as Meek (1995) does: keep the skeleton, orient the
v-structures, then apply rules R1–R3 until none applies (R4 is never needed
when the only orientations to start from are v-structures, Meek 1995, Thm 3):

- R1: a -> b - c, a and c non-adjacent          => b -> c  (no new v-structure)
- R2: a -> b -> c and a - c                      => a -> c  (no cycle)
- R3: a - c -> b, a - d -> b, a - b, c and d non-adjacent => a -> b.

A partially directed graph is one boolean matrix ``C``: ``C[i, j]`` and not
``C[j, i]`` is the directed edge i -> j; ``C[i, j]`` and ``C[j, i]`` is the
undirected edge i - j.

Example:
    >>> A = np.zeros((3, 3), bool); A[0, 2] = A[1, 2] = True    # 0 -> 2 <- 1
    >>> cpdag(A).astype(int).tolist()                          # a v-structure: compelled
    [[0, 0, 1], [0, 0, 1], [0, 0, 0]]
    >>> cpdag(A.T).astype(int).tolist()                         # 0 <- 2 -> 1: all reversible
    [[0, 0, 1], [0, 0, 1], [1, 1, 0]]
"""

from __future__ import annotations

import numpy as np

from deepbn.graph import as_adjacency


def v_structures(A) -> set[tuple[int, int, int]]:
    """The v-structures (a, c, b), a < b: a -> c <- b with a and b non-adjacent."""
    A = as_adjacency(A)
    adjacent = A | A.T
    found = set()
    for c in range(A.shape[0]):
        pa = np.flatnonzero(A[:, c])
        for x, a in enumerate(pa):
            for b in pa[x + 1:]:
                if not adjacent[a, b]:
                    found.add((int(a), c, int(b)))
    return found


def cpdag(A) -> np.ndarray:
    """The CPDAG of the DAG ``A`` (see the module doc for the matrix convention)."""
    A = as_adjacency(A)
    skeleton = A | A.T
    C = skeleton.copy()  # every edge undirected ...
    for a, c, b in v_structures(A):  # ... but the v-structures'
        C[c, a] = C[c, b] = False
    while _apply_meek_rules(C, skeleton):
        pass
    return C


def _apply_meek_rules(C: np.ndarray, skeleton: np.ndarray) -> bool:
    """One pass of R1–R3 over every undirected edge, orienting in place; True if any fired."""
    directed = C & ~C.T  # directed[i, j]: i -> j
    changed = False
    for x, y in np.argwhere(C & C.T):
        if not (C[x, y] and C[y, x]):  # oriented earlier in this pass
            continue
        # may x - y become x -> y?
        r1 = bool(np.any(directed[:, x] & ~skeleton[:, y]))
        r2 = bool(np.any(directed[x] & directed[:, y]))
        into_y = np.flatnonzero(C[x] & C[:, x] & directed[:, y])  # x - c -> y
        r3 = bool(np.any(~skeleton[np.ix_(into_y, into_y)] & ~np.eye(len(into_y), dtype=bool)))
        if r1 or r2 or r3:
            C[y, x] = False
            directed[x, y] = True
            changed = True
    return changed


def shd_cpdag(C1, C2) -> int:
    """Structural Hamming distance between two partially directed graphs: the number of
    unordered pairs whose mark differs among none, i -> j, j -> i and i - j (so a directed
    edge against an undirected one counts 1, as do a missing, an extra and a reversed edge)."""
    C1, C2 = as_adjacency(C1), as_adjacency(C2)
    differs = (C1 != C2) | (C1.T != C2.T)
    return int(np.triu(differs, k=1).sum())


def expected_shd_cpdag(graphs: np.ndarray, weights: np.ndarray, truth: np.ndarray,
                       cyclic: np.ndarray | None = None) -> float:
    """Σ_k w_k SHD(CPDAG(G_k), CPDAG(G*)). A cyclic graph has no equivalence class: it is
    compared as it is, every edge directed (DiBS+ gives it weight 0 anyway)."""
    reference = cpdag(truth)
    total = 0.0
    for k, (g, w) in enumerate(zip(graphs, weights)):
        if w == 0:
            continue
        own = as_adjacency(g) if cyclic is not None and cyclic[k] else cpdag(g)
        total += float(w) * shd_cpdag(own, reference)
    return total


def class_marks(graphs: np.ndarray, weights: np.ndarray, cyclic: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(compelled, reversible): compelled[i, j] = Σ_k w_k 1[i -> j is directed in CPDAG(G_k)],
    reversible[i, j] = Σ_k w_k 1[i - j is undirected in CPDAG(G_k)] (symmetric). A pair's
    P(adjacent) is compelled[i, j] + compelled[j, i] + reversible[i, j]; a cyclic graph counts
    as it is, every edge directed."""
    graphs = np.asarray(graphs, bool)
    cyclic = np.zeros(len(graphs), bool) if cyclic is None else np.asarray(cyclic, bool)
    d = graphs.shape[1]
    compelled, reversible = np.zeros((d, d)), np.zeros((d, d))
    seen: dict[bytes, np.ndarray] = {}
    for g, w, c in zip(graphs, weights, cyclic):
        if w == 0:
            continue
        if c:
            C = g
        else:
            C = seen.get(g.tobytes())
            if C is None:
                C = seen[g.tobytes()] = cpdag(g)
        compelled += w * (C & ~C.T)
        reversible += w * (C & C.T)
    return compelled, reversible


def edge_list(C, names) -> list[tuple[str, str, str]]:
    """(cause, effect, "directed" | "undirected") rows; an undirected edge once, in column
    order (the earlier variable first)."""
    C = as_adjacency(C)
    rows = []
    for i, j in zip(*np.nonzero(C)):
        if not C[j, i]:
            rows.append((names[i], names[j], "directed"))
        elif i < j:
            rows.append((names[i], names[j], "undirected"))
    return rows
