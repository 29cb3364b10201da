"""Exact edge probabilities by sums over orders, against brute-force enumeration of DAGs."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dag_enumeration import all_dags
from deepbn.errors import KnowledgeError, UsageError
from deepbn.structure import priors, scores
from deepbn.structure.exact import exact_edge_probs
from deepbn.structure.knowledge import Knowledge
from deepbn.structure.metrics import expected_shd, expected_shd_from_edge_probs


def _linear_extensions(A):
    d = len(A)
    return sum(all(pos[i] < pos[j] for i, j in zip(*np.nonzero(A)))
               for pos in (np.argsort(p) for p in itertools.permutations(range(d))))


def _enumerated(x, k, prior="er", allowed=lambda A: True, max_parents=None, mask=None):
    """Edge posterior by enumerating every DAG, each weighted by its number of orders."""
    d = x.shape[1]
    st = scores.bge_stats(x, mask)
    dags = [A for A in all_dags(d) if allowed(A)
            and (max_parents is None or A.sum(0).max() <= max_parents)]
    G = jnp.asarray(np.array(dags), jnp.float32)
    logp = (np.asarray(jax.vmap(lambda g: jnp.sum(scores.bge_node_scores(g, st)))(G))
            + np.asarray(jnp.sum(priors.column_log_prior(prior)(G, k), axis=-1))
            + np.log([_linear_extensions(A) for A in dags]))
    post = np.exp(logp - logp.max())
    post /= post.sum()
    return np.einsum("k,kij->ij", post, np.array(dags, float)), post, dags


def _data(seed=0, n=60, d=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x[:, 2] += 0.7 * x[:, 0] - 0.6 * x[:, 1]
    x[:, 3] += 0.5 * x[:, 2]
    return (x - x.mean(0)) / x.std(0)


@pytest.mark.parametrize("prior", ["er", "sf"])
def test_exact_edge_probs_match_enumeration_of_all_dags_on_4_nodes(prior):
    x = _data()
    got = exact_edge_probs(x, edges_per_node=1.0, graph_prior=prior).edge_probs
    ref, post, dags = _enumerated(x, 1.0, prior)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert np.all(np.diag(got) == 0)
    # the data hold the v-structure 0 -> 2 <- 1: a posterior that finds it is not trivial
    assert got[0, 2] > 0.8 and got[1, 2] > 0.8
    # E-SHD from the marginals alone equals the sum over every weighted DAG
    truth = np.zeros((4, 4), bool)
    truth[0, 2] = truth[1, 2] = truth[2, 3] = True
    assert expected_shd_from_edge_probs(got, truth) == pytest.approx(
        expected_shd(np.array(dags), post, truth), abs=1e-4)


def test_interventional_data_against_enumeration():
    # with intervened samples every node has its own BGe statistics (another scoring path)
    x = _data(4)
    mask = np.zeros_like(x)
    mask[:20, 2] = 1.0  # node 2 set by hand in the first 20 samples
    got = exact_edge_probs(x, mask=mask).edge_probs
    np.testing.assert_allclose(got, _enumerated(x, 1.0, mask=mask)[0], atol=1e-5)


def test_parent_set_probs_sum_to_one_and_give_the_edges():
    post = exact_edge_probs(_data(1), edges_per_node=1.5)
    np.testing.assert_allclose(post.parent_set_probs.sum(1), 1.0, atol=1e-9)
    np.testing.assert_allclose(post.edge_probs, _enumerated(_data(1), 1.5)[0], atol=1e-5)


def test_knowledge_and_parent_bound_against_enumeration():
    x = _data(2)
    d = 4
    F = np.zeros((d, d), bool)
    F[2, 3] = True  # forbid the true edge 2 -> 3
    R = np.zeros((d, d), bool)
    R[3, 1] = True  # require a false one
    know = Knowledge(F, R, np.full((d, d), np.nan))
    got = exact_edge_probs(x, knowledge=know, max_parents=1).edge_probs
    ref = _enumerated(x, 1.0, allowed=lambda A: not A[2, 3] and A[3, 1], max_parents=1)[0]
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert got[2, 3] == 0.0 and got[3, 1] == pytest.approx(1.0, abs=1e-12)


def test_soft_edge_prior_shifts_an_uncertain_edge():
    x = _data(3, n=15)
    d = 4
    P = np.full((d, d), np.nan)
    P[0, 3] = 0.9
    base = exact_edge_probs(x).edge_probs[0, 3]
    soft = exact_edge_probs(x, knowledge=Knowledge(np.zeros((d, d), bool),
                                                    np.zeros((d, d), bool), P)).edge_probs[0, 3]
    assert soft > base + 0.05


def test_refusals_are_one_line():
    from deepbn.cli import discover as discover_cli
    from deepbn.structure import exact

    # the command checks the size before importing JAX, with its own copy of the bound
    assert discover_cli.EXACT_MAX_VARIABLES == exact.MAX_VARIABLES
    with pytest.raises(UsageError, match="d = 21"):
        exact_edge_probs(np.zeros((5, 21)))
    d = 3
    R = np.zeros((d, d), bool)
    R[0, 2] = R[1, 2] = True  # node 2 needs two parents; the bound allows none
    with pytest.raises(KnowledgeError, match="no graph"):
        exact_edge_probs(_data()[:, :3], knowledge=Knowledge(np.zeros((d, d), bool), R,
                                                              np.full((d, d), np.nan)),
                         max_parents=0)
