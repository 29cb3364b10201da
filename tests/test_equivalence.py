"""Markov equivalence: the CPDAG against brute-force enumeration of equivalence classes, the
SHD between CPDAGs, and the pair summaries of a posterior."""

import itertools
from collections import defaultdict

import numpy as np
import pytest

from dag_enumeration import all_dags
from deepbn import cpdag, graph
from deepbn.structure.equivalence import (
    class_marks,
    edge_list,
    expected_shd_cpdag,
    fixed_pairs,
    intervention_targets,
    shd_cpdag,
)
from deepbn.structure.knowledge import Knowledge
from deepbn.structure.posterior import GraphPosterior
from deepbn.structure.report import cpdag_csv, edge_summary, edge_summary_csv


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
    for A in all_dags(4):
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


# -- classes restricted by background knowledge and interventions ---------------------------

def _orientations(A):
    """Every acyclic orientation of A's skeleton."""
    edges = [(i, j) for i, j in zip(*np.nonzero(A))]
    for flips in itertools.product([False, True], repeat=len(edges)):
        B = np.zeros_like(A)
        for flip, (i, j) in zip(flips, edges):
            B[(j, i) if flip else (i, j)] = True
        if graph.is_dag(B):
            yield B


def _restricted_class(A, forbidden, required, targets):
    """From the definitions: the DAGs with A's skeleton and v-structures that hold the
    knowledge and orient every edge with exactly one endpoint in a target as A does."""
    key = _class_key(A)
    cut = np.zeros_like(A)
    for t in targets:
        for i, j in itertools.permutations(range(len(A)), 2):
            cut[i, j] |= bool(t[i]) != bool(t[j])
    return [B for B in _orientations(A)
            if _class_key(B) == key and not np.any(B & forbidden) and not np.any(required & ~B)
            and np.array_equal(B & cut, A & cut)]


def _random_knowledge(rng, A, names):
    """Hard knowledge that A holds: forbidden non-edges, required edges, tiers along a
    topological order (some variables untiered), and a soft prior that must orient nothing."""
    d = len(A)
    off = ~np.eye(d, dtype=bool)
    absent = np.argwhere(~A & off)
    present = np.argwhere(A)
    forbid = [tuple(absent[k]) for k in np.flatnonzero(rng.random(len(absent)) < 0.15)]
    require = [tuple(present[k]) for k in np.flatnonzero(rng.random(len(present)) < 0.15)]
    order = graph.topological_order(A)
    cuts = np.cumsum(rng.random(d) < 0.4)  # tier k: a run of the topological order
    tiers = {names[v]: int(cuts[pos]) for pos, v in enumerate(order) if rng.random() < 0.5}
    prior = {(names[i], names[j]): 0.8 for i, j in absent[:2]}
    return Knowledge.from_names(names, [(names[i], names[j]) for i, j in forbid],
                                [(names[i], names[j]) for i, j in require], tiers, prior)


def _check_restricted(A, knowledge, targets):
    members = _restricted_class(A, knowledge.forbidden, knowledge.required, targets)
    assert any(np.array_equal(B, A) for B in members)
    agreed = np.logical_and.reduce(members)  # oriented the same way in every member
    skeleton = A | A.T
    C = cpdag(A, fixed_pairs(len(A), knowledge, targets))
    np.testing.assert_array_equal(C & ~C.T, agreed)
    np.testing.assert_array_equal(C & C.T, skeleton & ~agreed & ~agreed.T)
    # Hauser & Bühlmann's characterisation (Thm 18): no line cut by a target, no a -> b - c
    undirected = C & C.T
    for t in targets:
        t = np.asarray(t, bool)
        assert not np.any(undirected & (t[:, None] != t[None, :]))
    directed = C & ~C.T
    for a, b in np.argwhere(directed):
        assert not np.any(undirected[b] & ~skeleton[a] & (np.arange(len(A)) != a))
    return members


def _random_targets(rng, d):
    targets = (rng.random((int(rng.integers(1, 4)), d)) < 0.3).astype(int)
    if rng.random() < 0.5:
        targets[0] = 0  # observational rows: the empty target
    return np.repeat(targets, 2, axis=0)  # a mask repeats its targets: the family is the same


def test_restricted_classes_of_all_dags_on_4_nodes_against_enumeration():
    rng = np.random.default_rng(3)
    names = list("pqrs")
    shrunk = 0
    for A in all_dags(4):
        knowledge = _random_knowledge(rng, A, names)
        none = np.zeros((0, 4), int)
        for k, t in ((knowledge, none), (Knowledge.none(4), _random_targets(rng, 4)),
                     (knowledge, _random_targets(rng, 4))):
            members = _check_restricted(A, k, t)
            shrunk += len(members) < sum(_class_key(B) == _class_key(A)
                                         for B in _orientations(A))
    assert shrunk > 300  # the knowledge and targets do shrink most classes


def test_restricted_classes_of_random_dags_on_5_nodes_against_enumeration():
    rng = np.random.default_rng(4)
    names = list("pqrst")
    for _ in range(40):
        A = graph.random_er_dag(rng, 5, float(rng.uniform(1.0, 2.0)))
        _check_restricted(A, _random_knowledge(rng, A, names), _random_targets(rng, 5))


def test_meek_rule_4_orients_what_r1_to_r3_leave():
    A = np.zeros((4, 4), bool)  # a, b, c, d = 0, 1, 2, 3: a -> c, d, b; c -> d -> b
    A[0, [1, 2, 3]] = A[2, 3] = A[3, 1] = True
    assert cpdag(A).sum() == 2 * A.sum()  # chordal, no v-structure: all undirected
    knowledge = Knowledge.from_names(list("abcd"), require=[("c", "d"), ("d", "b")])
    members = _check_restricted(A, knowledge, np.zeros((0, 4), int))
    C = cpdag(A, fixed_pairs(4, knowledge))
    assert C[0, 1] and not C[1, 0]  # a -> b by R4 alone
    assert C[0, 2] and C[2, 0] and C[0, 3] and C[3, 0] and len(members) == 3


def test_no_knowledge_no_targets_and_soft_priors_leave_the_cpdag_as_it_was():
    rng = np.random.default_rng(5)
    names = list("pqrst")
    soft = Knowledge.from_names(names, edge_prior={("p", "q"): 0.9, ("r", "s"): 0.2})
    observational = np.zeros((3, 5), int)
    for _ in range(10):
        A = graph.random_er_dag(rng, 5, 1.5)
        for fixed in (None, fixed_pairs(5), fixed_pairs(5, soft, observational)):
            np.testing.assert_array_equal(cpdag(A, fixed), cpdag(A))


def test_the_truth_outside_the_knowledge_is_compared_within_its_own_orientations():
    chain = np.eye(3, k=1, dtype=bool)  # 0 -> 1 -> 2, all reversible
    other = chain.T  # 0 <- 1 <- 2: the same class
    fixed = fixed_pairs(3, targets=[[0, 0, 0], [0, 0, 1]])  # cuts 1 - 2
    assert expected_shd_cpdag(other[None], np.ones(1), chain) == 0.0
    # the target orients 1 - 2 each graph's own way: 0 - 1 -> 2 against 0 <- 1 <- 2 (R1),
    # so both pairs differ
    assert expected_shd_cpdag(other[None], np.ones(1), chain, fixed=fixed) == 2.0
    compelled, reversible = class_marks(np.array([chain, other]), np.array([0.5, 0.5]),
                                        fixed=fixed)
    assert compelled[1, 2] == compelled[2, 1] == compelled[1, 0] == 0.5
    assert compelled[0, 1] == 0 and reversible[0, 1] == reversible[1, 0] == 0.5
    assert reversible.sum() == 1.0
    assert intervention_targets([[0, 1], [0, 0], [0, 1]]).astype(int).tolist() == [
        [0, 0], [0, 1]]
