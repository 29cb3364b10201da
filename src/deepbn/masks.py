"""Weight masks that make a multi-layer network respect a DAG (MADE-style).

Every unit carries a set of nodes. An input unit of node i carries {i}; output
unit j carries ``allowed[j]``, the inputs it may depend on (its parents, and
itself for a flow's triangular Jacobian, and any conditioning inputs). Hidden
units carry the output sets in turn. A weight from unit a to unit b exists
when b's set contains a's, so a path from input i to output j exists only if
i ∈ allowed[j]: the network's Jacobian is zero wherever the DAG has no edge
(Germain et al., "MADE", ICML 2015, Sec. 4, generalised from orderings to
sets as in Mouton & Kroon, "Graphical Residual Flows", 2022, Sec. 3 and
Wehenkel & Louppe, "Graphical Normalizing Flows", AISTATS 2021).

Example:
    >>> import numpy as np
    >>> A = np.array([[0, 1], [0, 0]], bool)                 # z0 -> z1
    >>> allowed = dependency_sets(A, self_loops=True)        # [{0}, {0, 1}]
    >>> [m.shape for m in mlp_masks(allowed, n_inputs=2, hidden=(4,))]
    [(2, 4), (4, 2)]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepbn.graph import as_adjacency


def dependency_sets(A, self_loops: bool, conditions: np.ndarray | None = None,
                    ) -> list[frozenset[int]]:
    """Per node j, the input indices output j may read: parents (+ j) (+ conditions).

    Inputs are numbered 0..d-1 for the nodes, then d.. for conditioning variables;
    ``conditions[c, j]`` says whether output j may read conditioning input c.
    """
    A = as_adjacency(A)
    d = A.shape[0]
    sets = []
    for j in range(d):
        s = set(np.flatnonzero(A[:, j]).tolist())
        if self_loops:
            s.add(j)
        if conditions is not None:
            s.update((d + np.flatnonzero(np.asarray(conditions, bool)[:, j])).tolist())
        sets.append(frozenset(s))
    return sets


def mlp_masks(allowed: Sequence[frozenset[int]], n_inputs: int, hidden: Sequence[int]
              ) -> list[np.ndarray]:
    """Boolean masks (in, out) per layer of an MLP ``n_inputs -> hidden... -> len(allowed)``.

    Hidden unit k of every layer carries the k-th non-empty output set (cycling),
    so every allowed input-output pair has a path when the hidden layers are at
    least as wide as the number of outputs with a non-empty set.
    """
    sets = [s for s in allowed if s]
    if not sets:
        return [np.zeros((a, b), bool) for a, b in
                zip((n_inputs, *hidden), (*hidden, len(allowed)))]
    unit_sets: list[list[frozenset[int]]] = [[frozenset({i}) for i in range(n_inputs)]]
    for width in hidden:
        unit_sets.append([sets[k % len(sets)] for k in range(width)])
    unit_sets.append(list(allowed))
    return [np.array([[a <= b for b in receivers] for a in senders], bool).reshape(
                len(senders), len(receivers))
            for senders, receivers in zip(unit_sets[:-1], unit_sets[1:])]


def connectivity(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Which inputs reach which outputs through the masked layers: (in, out) boolean."""
    reach = np.asarray(masks[0], bool)
    for m in masks[1:]:
        reach = (reach.astype(np.int64) @ np.asarray(m, np.int64)) > 0
    return reach
