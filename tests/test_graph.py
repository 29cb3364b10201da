import itertools

import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepbn import graph
from deepbn.errors import CycleError, DataError


def adjacency_matrices(max_d=6):
    return st.integers(1, max_d).flatmap(
        lambda d: st.lists(st.booleans(), min_size=d * d, max_size=d * d).map(
            lambda bits: np.array(bits, bool).reshape(d, d)
        )
    )


@settings(max_examples=60, deadline=None)
@given(adjacency_matrices())
def test_acyclicity_zero_exactly_on_dags(A):
    dag = nx.is_directed_acyclic_graph(graph.to_networkx(A))
    assert graph.is_dag(A) == dag
    h_poly = float(graph.acyclicity_poly(A))
    h_expm = float(graph.acyclicity_expm(A))
    if dag:
        assert abs(h_poly) < 1e-5 and abs(h_expm) < 1e-4
    else:
        assert h_poly > 1e-6 and h_expm > 1e-4
    assert bool(graph.has_cycle(A)) == (not dag)


@settings(max_examples=60, deadline=None)
@given(adjacency_matrices())
def test_topological_order_or_cycle(A):
    names = [f"v{k}" for k in range(A.shape[0])]
    if graph.is_dag(A):
        order = graph.topological_order(A, names)
        pos = {v: k for k, v in enumerate(order)}
        for i, j in zip(*np.nonzero(A)):
            assert pos[i] < pos[j]
    else:
        with pytest.raises(CycleError) as e:
            graph.topological_order(A, names)
        cycle = graph.find_cycle(A)
        for k in range(len(cycle)):  # the reported cycle is a real cycle
            assert A[cycle[k], cycle[(k + 1) % len(cycle)]]
        assert names[cycle[0]] in str(e.value)


@settings(max_examples=40, deadline=None)
@given(adjacency_matrices())
def test_ancestors_match_networkx(A):
    G = graph.to_networkx(A)
    R = graph.transitive_closure(A)
    for j in range(A.shape[0]):
        anc = graph.ancestors(A, j)
        assert anc - {j} == nx.ancestors(G, j)
        assert graph.descendants(A, j) - {j} == nx.descendants(G, j)
        assert {i for i in range(A.shape[0]) if R[i, j]} == anc
    assert list(graph.parents(A, 0)) == sorted(G.predecessors(0))
    assert list(graph.children(A, 0)) == sorted(G.successors(0))


@settings(max_examples=40, deadline=None)
@given(adjacency_matrices())
def test_longest_path_matches_networkx(A):
    A = np.triu(A, 1)  # a DAG
    assert graph.longest_path(A) == nx.dag_longest_path_length(graph.to_networkx(A))


def test_acyclicity_above_d_100_is_exact_below_the_cap_and_finite_when_dense():
    rng = np.random.default_rng(0)
    d = 130
    A = (rng.random((2, d, d)) < 0.004) * rng.random((2, d, d)) * (1 - np.eye(d))
    h, grad = graph._acyclicity_poly_and_grad(jnp.asarray(A, jnp.float32))
    M = np.eye(d) + A / d
    P = np.stack([np.linalg.matrix_power(m, d - 1) for m in M])
    np.testing.assert_allclose(h, np.einsum("bij,bji->b", P, M) - d, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(grad, P.transpose(0, 2, 1), rtol=1e-3, atol=1e-6)
    dense = jnp.full((200, 200), 0.5) * (1 - jnp.eye(200))  # (I + A/d)^199 ~ 1e35: overflow
    h, grad = graph._acyclicity_poly_and_grad(dense)
    assert np.isfinite(float(h)) and np.all(np.isfinite(grad)) and float(grad.max()) > 1e14
    assert np.isfinite(np.square(np.float32(grad.max())))  # the optimiser squares it


def test_has_cycle_batched_matches_networkx():
    rng = np.random.default_rng(3)
    As = (rng.random((64, 12, 12)) < 0.08) & ~np.eye(12, dtype=bool)
    want = [not nx.is_directed_acyclic_graph(graph.to_networkx(A)) for A in As]
    assert np.asarray(graph.has_cycle(As)).tolist() == want
    assert 5 < sum(want) < 60  # both kinds occur


def test_acyclicity_is_differentiable_and_batched():
    import jax
    import jax.numpy as jnp

    A = jnp.array([[0.0, 0.7], [0.4, 0.0]])
    g = jax.grad(graph.acyclicity_poly)(A)
    assert np.all(np.isfinite(g)) and g[0, 1] > 0
    batch = jnp.stack([A, jnp.triu(A)])
    h = graph.acyclicity_expm(batch)
    assert h.shape == (2,) and h[0] > 0 and abs(h[1]) < 1e-6


@pytest.mark.parametrize("d,k", [(20, 1.0), (20, 2.0), (10, 1.5)])
def test_er_expected_edges(d, k):
    counts = [graph.random_er_dag(s, d, k).sum() for s in range(300)]
    assert all(graph.is_dag(graph.random_er_dag(s, d, k)) for s in range(20))
    se = np.std(counts) / np.sqrt(len(counts))
    assert abs(np.mean(counts) - k * d) < 4 * se + 0.05


@pytest.mark.parametrize("d,k", [(20, 1.0), (20, 2.0), (15, 1.5)])
def test_sf_expected_edges_and_heavy_tail(d, k):
    counts, maxdeg = [], []
    for s in range(200):
        A = graph.random_sf_dag(s, d, k)
        assert graph.is_dag(A)
        counts.append(A.sum())
        maxdeg.append((A.sum(0) + A.sum(1)).max())
    base, frac = int(np.floor(k)), k - np.floor(k)
    expected = sum(
        (1 - frac) * min(t, base) + frac * min(t, base + 1) for t in range(1, d)
    )
    se = max(np.std(counts) / np.sqrt(len(counts)), 1e-9)
    assert abs(np.mean(counts) - expected) < 4 * se + 1e-9
    er_maxdeg = [(lambda A: (A.sum(0) + A.sum(1)).max())(graph.random_er_dag(s, d, k))
                 for s in range(200)]
    assert np.mean(maxdeg) > np.mean(er_maxdeg)  # hubs: the point of a scale-free graph


def _shd_bruteforce(A, B):
    d = A.shape[0]
    return sum(
        (A[i, j], A[j, i]) != (B[i, j], B[j, i]) for i, j in itertools.combinations(range(d), 2)
    )


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 7))
def test_shd_against_pairwise_definition(seed, d):
    A = graph.random_er_dag(seed, d, 1.0)
    B = graph.random_er_dag(seed + 1, d, 1.0)
    assert graph.shd(A, B) == _shd_bruteforce(A, B)
    assert graph.shd(A, A) == 0
    assert graph.shd(A, A.T) == A.sum()  # every edge reversed counts once


def test_networkx_and_edge_list_round_trip(tmp_path):
    A = graph.random_er_dag(3, 8, 2.0)
    names = [f"g{k}" for k in range(8)]
    B, labels = graph.from_networkx(graph.to_networkx(A, names))
    assert labels == names and np.array_equal(A, B)
    path = tmp_path / "edges.csv"
    graph.write_edge_list(path, A, names)
    assert path.read_text().splitlines()[0] == "cause,effect"
    assert np.array_equal(graph.read_edge_list(path, names), A)


def test_edge_list_errors(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("cause,effect\na,zzz\n")
    with pytest.raises(DataError, match="line 2: unknown variable 'zzz'"):
        graph.read_edge_list(p, ["a", "b"])
    p.write_text("from,to\na,b\n")
    with pytest.raises(DataError, match="header"):
        graph.read_edge_list(p, ["a", "b"])
    with pytest.raises(DataError, match="cannot read"):
        graph.read_edge_list(tmp_path / "missing.csv", ["a"])
