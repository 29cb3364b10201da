"""Markov equivalence classes of DAGs, restricted by background knowledge and
interventions: the (maximally oriented) CPDAG and the SHD between CPDAGs.

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

**Background knowledge and interventions** shrink the class. Hard knowledge
(a forbidden edge, a tier order, a required edge) excludes one orientation of
an edge; an intervention target I (a set of nodes intervened on together)
tells the orientation of every edge with exactly one endpoint in I.
:func:`fixed_pairs` lists these pairs; ``cpdag(A, fixed)`` orients each of them
as in ``A`` and closes under R1–R4, where

- R4: a - b, c -> d -> b, a adjacent to c and d, c and b non-adjacent => a -> b

(b -> a would force d -> a and c -> a, and with it the new v-structure c -> a <- b).

- Knowledge (Meek 1995): the DAGs of the class that satisfy consistent
  background knowledge (required and forbidden orientations) are exactly
  represented by the pattern with the knowledge's orientations added and closed
  under R1–R4: an edge comes out directed exactly when every such DAG agrees
  on it (the maximally oriented PDAG). A DAG that satisfies the knowledge
  orients a fixed pair as the knowledge demands, so orienting it "as in A" is
  orienting it by the knowledge; for a DAG that violates the knowledge (a true
  graph, say) it is the class of the DAGs that agree with it on those pairs.
- Interventions (Hauser & Bühlmann, JMLR 13, 2012, "Characterization and
  greedy learning of interventional Markov equivalence classes of DAGs"): for a
  conservative family of targets 𝓘 (every node is left alone by some target;
  ``read_mask`` refuses a variable intervened on in every sample), D1 and D2 are
  𝓘-Markov equivalent iff for every I ∈ 𝓘 the intervention graphs D1^(I) and
  D2^(I) (the arrows into I removed) have the same skeleton and v-structures
  (their criterion for 𝓘-Markov equivalence; taking for each node a target that
  leaves it alone shows that 𝓘-equivalent DAGs are Markov equivalent). For two
  Markov-equivalent DAGs an edge a – b survives in D^(I) unless it points into
  I, so the skeletons agree exactly when every
  edge with one endpoint in I and one outside is oriented alike, and then the
  v-structures agree too (the arrows into a collider outside I are kept, the
  cut ones are common, and acyclicity settles a kept edge closing a triangle).
  The class is thus the observational class restricted to the DAGs that orient
  the cut edges as D does, and the 𝓘-essential graph E_𝓘(D) (an edge directed
  iff every member of the class agrees) is the maximally oriented PDAG of
  Meek (1995) with those orientations as background knowledge. As their
  characterisation of 𝓘-essential graphs requires, it has no line
  cut by a target and no induced a -> b - c; ``tests/test_equivalence.py``
  checks both and, against brute-force enumeration of the restricted classes,
  every mark. The family is the set of distinct rows of the intervention mask
  (the empty target among them when some rows are observational; it cuts
  nothing).

A partially directed graph is one boolean matrix ``C``: ``C[i, j]`` and not
``C[j, i]`` is the directed edge i -> j; ``C[i, j]`` and ``C[j, i]`` is the
undirected edge i - j.

Example:
    >>> A = np.zeros((3, 3), bool); A[0, 2] = A[1, 2] = True    # 0 -> 2 <- 1
    >>> cpdag(A).astype(int).tolist()                          # a v-structure: compelled
    [[0, 0, 1], [0, 0, 1], [0, 0, 0]]
    >>> cpdag(A.T).astype(int).tolist()                         # 0 <- 2 -> 1: all reversible
    [[0, 0, 1], [0, 0, 1], [1, 1, 0]]
    >>> chain = np.eye(3, k=1, dtype=bool)                       # 0 -> 1 -> 2
    >>> cpdag(chain, fixed_pairs(3, targets=[[0, 0, 0], [1, 0, 0]])).astype(int).tolist()
    [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
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


def fixed_pairs(d: int, knowledge=None, targets=None) -> np.ndarray:
    """(d, d) symmetric bool: the pairs whose orientation background knowledge or
    interventions fix (see the module doc).

    ``knowledge``: a checked :class:`~deepbn.structure.knowledge.Knowledge` (tiers
    and prior probabilities 0 / 1 already folded into ``forbidden`` / ``required``);
    a pair with either direction forbidden or required is fixed, soft edge priors
    fix nothing. ``targets``: (m, d) 0/1, one intervention target per row; an
    intervention mask (``mask[n, j] = 1``: node j intervened on in sample n) can
    be given as it is, its distinct rows being the family of targets. A pair is
    fixed when some target holds exactly one of its nodes.
    """
    fixed = np.zeros((d, d), bool)
    if knowledge is not None:
        hard = np.asarray(knowledge.forbidden, bool) | np.asarray(knowledge.required, bool)
        fixed |= hard | hard.T
    if targets is not None:
        for t in intervention_targets(targets):
            fixed |= t[:, None] != t[None, :]
    np.fill_diagonal(fixed, False)
    return fixed


def intervention_targets(mask) -> np.ndarray:
    """The family of intervention targets of a mask: its distinct rows, (m, d) bool."""
    return np.unique(np.asarray(mask) != 0, axis=0)


def cpdag(A, fixed=None) -> np.ndarray:
    """The CPDAG of the DAG ``A`` (see the module doc for the matrix convention); with
    ``fixed`` (:func:`fixed_pairs`) the maximally oriented graph of ``A``'s class
    restricted to the DAGs that orient those pairs as ``A`` does."""
    A = as_adjacency(A)
    skeleton = A | A.T
    C = skeleton.copy()  # every edge undirected ...
    for a, c, b in v_structures(A):  # ... but the v-structures'
        C[c, a] = C[c, b] = False
    # R4 only with background orientations: from v-structures alone it never fires
    # (Meek 1995, Thm 3), and leaving it out keeps the plain CPDAG exactly as it was
    background = fixed is not None and bool(np.any(np.asarray(fixed, bool) & skeleton))
    if background:
        C &= ~(np.asarray(fixed, bool) & A.T)  # ... and the fixed pairs', as in A
    while _apply_meek_rules(C, skeleton, r4=background):
        pass
    return C


def _apply_meek_rules(C: np.ndarray, skeleton: np.ndarray, r4: bool = False) -> bool:
    """One pass of R1–R3 (and R4) over every undirected edge, orienting in place; True if
    any fired."""
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
        if r4 and not (r1 or r2 or r3):
            d_ = np.flatnonzero(skeleton[x] & directed[:, y])  # x ~ d -> y
            c_ = np.flatnonzero(skeleton[x] & ~skeleton[:, y])  # x ~ c, c and y non-adjacent
            c_ = c_[c_ != y]
            r4_fires = bool(np.any(directed[np.ix_(c_, d_)]))  # c -> d
        else:
            r4_fires = False
        if r1 or r2 or r3 or r4_fires:
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
                       cyclic: np.ndarray | None = None, fixed: np.ndarray | None = None
                       ) -> float:
    """Σ_k w_k SHD(CPDAG(G_k), CPDAG(G*)), every class restricted by the same ``fixed``
    pairs (:func:`fixed_pairs`). A cyclic graph has no equivalence class: it is
    compared as it is, every edge directed (DiBS+ gives it weight 0 anyway)."""
    reference = cpdag(truth, fixed)
    total = 0.0
    for k, (g, w) in enumerate(zip(graphs, weights)):
        if w == 0:
            continue
        own = as_adjacency(g) if cyclic is not None and cyclic[k] else cpdag(g, fixed)
        total += float(w) * shd_cpdag(own, reference)
    return total


def class_marks(graphs: np.ndarray, weights: np.ndarray, cyclic: np.ndarray | None = None,
                fixed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(compelled, reversible): compelled[i, j] = Σ_k w_k 1[i -> j is directed in CPDAG(G_k)],
    reversible[i, j] = Σ_k w_k 1[i - j is undirected in CPDAG(G_k)] (symmetric), each class
    restricted by the ``fixed`` pairs (:func:`fixed_pairs`). A pair's P(adjacent) is
    compelled[i, j] + compelled[j, i] + reversible[i, j]; a cyclic graph counts as it is,
    every edge directed."""
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
                C = seen[g.tobytes()] = cpdag(g, fixed)
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
