import itertools

import networkx as nx
import numpy as np
import pytest

from deepbn import graph
from deepbn.errors import UsageError


def _d_separated(A, a, b, given) -> bool:
    G = nx.DiGraph()
    G.add_nodes_from(range(A.shape[0]))
    G.add_edges_from(zip(*np.nonzero(A)))
    return nx.is_d_separator(G, {a}, {b}, set(given))


def test_the_inverse_asserts_no_independence_the_forward_model_lacks():
    checked = 0
    for seed in range(12):
        checked += _check_inverse(np.random.default_rng(seed))
    assert checked > 20  # the inverses do assert independences: the check is not vacuous


def _check_inverse(rng) -> int:
    d = int(rng.integers(4, 7))
    A = graph.random_er_dag(rng, d, 1.5)
    observed = rng.random(d) < 0.4
    observed[graph.topological_order(A)[-1]] = True  # at least one observed node
    H = graph.faithful_inverse(A, observed)
    assert graph.is_dag(H)
    obs = set(np.flatnonzero(observed).tolist())
    latent = sorted(set(range(d)) - obs)
    # observed nodes are roots of the inverse; latents have only inverse parents
    assert not H[:, sorted(obs)].any()
    checked = 0
    for a, b in itertools.combinations(latent, 2):
        rest = [v for v in latent if v not in (a, b)]
        for r in range(len(rest) + 1):
            for s in itertools.combinations(rest, r):
                given = obs | set(s)
                if _d_separated(H, a, b, given):
                    checked += 1
                    assert _d_separated(A, a, b, given), (a, b, given)
    return checked


def test_a_collider_parent_pair_is_joined_in_the_inverse():
    # z0 -> x <- z1: independent a priori, dependent given x (explaining away)
    A = np.zeros((3, 3), bool)
    A[0, 2] = A[1, 2] = True
    H = graph.faithful_inverse(A, [False, False, True])
    assert H[0, 1] or H[1, 0]
    assert H[2, 0] or H[2, 1]


def test_a_path_inverts_to_the_reversed_path():
    A = np.zeros((4, 4), bool)
    A[0, 1] = A[1, 2] = A[2, 3] = True  # z0 -> z1 -> z2 -> x
    H = graph.faithful_inverse(A, [False, False, False, True])
    assert H.astype(int).sum() == 3 and H[3, 2] and H[2, 1] and H[1, 0]


def test_moral_graph_marries_parents_and_orders_are_checked():
    A = np.zeros((3, 3), bool)
    A[0, 2] = A[1, 2] = True
    M = graph.moralize(A)
    assert M[0, 1] and M[1, 0] and M[0, 2] and not M.diagonal().any()
    with pytest.raises(UsageError, match="observed, unknown or repeated"):
        graph.faithful_inverse(A, [False, False, True], order=[0, 2])
