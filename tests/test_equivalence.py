"""Markov equivalence: the CPDAG against brute-force enumeration of equivalence classes, the
SHD between CPDAGs, and the pair summaries of a posterior."""

import itertools
from collections import defaultdict

import numpy as np
import pytest

from deepbn import cpdag, graph
from deepbn.structure.equivalence import class_marks, edge_list, expected_shd_cpdag, shd_cpdag
from deepbn.structure.posterior import GraphPosterior
from deepbn.structure.report import cpdag_csv, edge_summary, edge_summary_csv


def _all_dags(d):
    pairs = [(i, j) for i in range(d) for j in range(d) if i != j]
    for bits in itertools.product([False, True], repeat=len(pairs)):
        A = np.zeros((d, d), bool)
        for b, (i, j) in zip(bits, pairs):
            A[i, j] = b
        if graph.is_dag(A):
            yield A


def _class_key(A):
    """Skeleton and v-structures, written here from the definition (Verma & Pearl 1990)."""
    d = len(A)
    skeleton = frozenset((i, j) for i in range(d) for j in range(i + 1, d) if A[i, j] or A[j, i])
    colliders = frozenset((min(a, b), c, max(a, b)) for c in range(d)
                          for a in range(d) for b in range(d)
                          if a < b and A[a, c] and A[b, c] and not (A[a, b] or A[b, a]))
    return skeleton, colliders


def _check_class(members):
    # compelled: oriented the same way in every member of the class
    compelled = np.logical_and.reduce(members)
    skeleton = members[0] | members[0].T
    for A in members:
        C = cpdag(A)
        np.testing.assert_array_equal(C & ~C.T, compelled)
        np.testing.assert_array_equal(C & C.T, skeleton & ~compelled & ~compelled.T)


def test_cpdag_matches_the_equivalence_classes_of_all_dags_on_4_nodes():
    classes = defaultdict(list)
    for A in _all_dags(4):
        classes[_class_key(A)].append(A)
    assert sum(map(len, classes.values())) == 543 and len(classes) == 185  # OEIS A003024, A035512
    for members in classes.values():
        _check_class(members)


def test_cpdag_matches_the_class_of_random_dags_on_5_nodes():
    rng = np.random.default_rng(0)
    for _ in range(12):
        A = graph.random_er_dag(rng, 5, float(rng.uniform(1.0, 2.0)))
        key = _class_key(A)
        edges = [(i, j) for i, j in zip(*np.nonzero(A))]
        members = []  # every acyclic orientation of the skeleton with the same v-structures
        for flips in itertools.product([False, True], repeat=len(edges)):
            B = np.zeros_like(A)
            for flip, (i, j) in zip(flips, edges):
                B[(j, i) if flip else (i, j)] = True
            if graph.is_dag(B) and _class_key(B) == key:
                members.append(B)
        _check_class(members)


def test_shd_between_cpdags_counts_each_differing_pair_once():
    directed = np.zeros((3, 3), bool)
    directed[0, 1] = True
    undirected = directed | directed.T
    reversed_ = directed.T
    empty = np.zeros((3, 3), bool)
    assert shd_cpdag(directed, undirected) == 1  # oriented vs open
    assert shd_cpdag(directed, reversed_) == 1
    assert shd_cpdag(undirected, empty) == 1
    assert shd_cpdag(undirected, undirected) == 0
    rng = np.random.default_rng(1)
    for _ in range(20):  # on fully directed graphs it is the plain SHD
        A, B = graph.random_er_dag(rng, 5, 1.5), graph.random_er_dag(rng, 5, 1.5)
        assert shd_cpdag(A, B) == graph.shd(A, B)


def test_expected_shd_and_marks_over_the_classes_of_weighted_graphs():
    chain = np.zeros((3, 3), bool)
    chain[0, 1] = chain[1, 2] = True  # 0 -> 1 -> 2, equivalent to 0 <- 1 <- 2 and 0 <- 1 -> 2
    collider = np.zeros((3, 3), bool)
    collider[0, 1] = collider[2, 1] = True
    graphs = np.array([chain, chain.T, collider])
    assert expected_shd_cpdag(graphs[:2], np.array([0.5, 0.5]), chain) == 0.0
    # the collider's CPDAG differs from the chain's in the marks of both pairs
    assert expected_shd_cpdag(graphs, np.array([0.25, 0.25, 0.5]), chain) == 1.0
    compelled, reversible = class_marks(graphs, np.array([0.25, 0.25, 0.5]))
    assert compelled[0, 1] == compelled[2, 1] == 0.5 and compelled.sum() == 1.0
    assert reversible[0, 1] == reversible[1, 0] == reversible[1, 2] == 0.5
    assert reversible[0, 2] == 0 and np.all(np.diag(reversible) == 0)
    cyclic = np.zeros((3, 3), bool)
    cyclic[0, 1] = cyclic[1, 2] = cyclic[2, 0] = True  # compared as it is: 3 pairs differ
    assert expected_shd_cpdag(np.array([cyclic]), np.array([1.0]), chain,
                              np.array([True])) == 3.0


def test_edge_summary_and_cpdag_files():
    rng = np.random.default_rng(2)
    graphs = np.array([graph.random_er_dag(rng, 4, 1.5) for _ in range(6)])
    w = rng.random(6)
    w /= w.sum()
    post = GraphPosterior(graphs, None, np.zeros(6), np.full(6, 1 / 6), w, np.zeros(6, bool))
    names = ["p", "q", "r", "s"]
    rows = edge_summary(post)
    assert [(a, b) for a, b, *_ in rows] == list(itertools.combinations(range(4), 2))
    for a, b, p_adj, p_f, p_b, p_dir in rows:
        assert p_f == pytest.approx(sum(wk for wk, g in zip(w, graphs) if g[a, b]))
        assert p_b == pytest.approx(sum(wk for wk, g in zip(w, graphs) if g[b, a]))
        assert p_adj == pytest.approx(p_f + p_b)
        assert p_dir is None if p_adj == 0 else p_dir == pytest.approx(p_f / p_adj)
    lines = edge_summary_csv(post, names).splitlines()
    assert lines[0] == "a,b,p_adjacent,p_forward,p_backward,p_direction_given_adjacent"
    assert len(lines) == 7 and lines[1].startswith("p,q,")
    G = np.zeros((4, 4), bool)
    G[0, 2] = G[1, 2] = G[2, 3] = True  # p -> r <- q is compelled, and so r -> s (Meek R1)
    assert edge_list(cpdag(G), names) == [("p", "r", "directed"), ("q", "r", "directed"),
                                          ("r", "s", "directed")]
    chain = np.eye(4, k=1, dtype=bool)  # p -> q -> r -> s: no v-structure, nothing compelled
    assert cpdag_csv(chain, names).splitlines() == [
        "cause,effect,directed", "p,q,0", "q,r,0", "r,s,0"]
