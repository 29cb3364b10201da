"""Order MCMC on bounded candidate parent sets, against the exact sums over orders
(deepbn.structure.exact, itself checked against enumeration of all DAGs) and brute force."""

import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepbn.errors import UsageError
from deepbn.graph import is_dag
from deepbn.structure import order_mcmc as om
from deepbn.structure import scores
from deepbn.structure import search_space as ss
from deepbn.structure.config import DiBSConfig
from deepbn.structure.exact import exact_edge_probs
from deepbn.structure.knowledge import Knowledge
from deepbn.structure.learn import learn_structure


def _data(seed=0, n=60, d=5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x[:, 1] += 0.8 * x[:, 0]
    x[:, 2] += 0.6 * x[:, 1] - 0.5 * x[:, 3]
    x[:, 4] += 0.4 * x[:, 2]
    return (x - x.mean(0)) / x.std(0)


def test_family_scores_equal_the_bge_node_scores_of_whole_graphs():
    x = _data(1)
    mask = np.zeros_like(x)
    mask[:15, 2] = 1.0
    rng = np.random.default_rng(0)
    for m in (None, mask):  # one shared R, and one per node (interventions)
        st = scores.bge_stats(x, m)
        for _ in range(5):
            G = np.triu(rng.random((5, 5)) < 0.5, 1)
            want = np.asarray(scores.bge_node_scores(jnp.asarray(G, jnp.float32), st))
            parents = np.zeros((5, 4), int)
            present = np.zeros((5, 4), bool)
            for j in range(5):
                pa = np.flatnonzero(G[:, j])
                parents[j, :len(pa)], present[j, :len(pa)] = pa, True
            got = ss.family_scores(st, 5, np.arange(5), parents, present)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


def _node_scores(order, space):
    order = jnp.asarray(order, jnp.int32)
    U = om.predecessor_bits(order, space.data)
    return np.asarray(space.data.log_alpha[jnp.arange(len(order)), U])


def test_node_score_is_the_sum_over_the_allowed_parent_sets():
    x = _data(2)
    st = scores.bge_stats(x)
    cand, valid = ss.candidate_parents(st, 5, 3)
    space = ss.build(st, 5, cand, valid, max_parents=2)
    order = np.array([3, 0, 4, 1, 2], np.int32)
    pos = np.argsort(order)
    got = _node_scores(order, space)
    member = np.asarray(space.data.member, bool)
    for j in range(5):
        terms = [space.log_beta[j, s] for s in range(len(member))
                 if all(pos[cand[j, c]] < pos[j] for c in np.flatnonzero(member[s]))]
        shift = space.log_beta[j].max()
        want = np.logaddexp.reduce(np.array(terms) - shift)
        assert got[j] == pytest.approx(want, abs=1e-4)
    # at most 3 candidates, of which at most 2 are parents: 1 + 3 + 3 sets
    assert member.shape == (7, 3) and member.sum(1).max() == 2


def test_a_windowed_move_updates_the_predecessor_sets_as_a_recount_would():
    # the state keeps U_j and log alpha_j(U_j) and a move updates only its window: after
    # many accepted moves they must equal what the order gives from scratch
    x = _data(8, d=9)
    st = scores.bge_stats(x)
    cand, valid = ss.candidate_parents(st, 9, 5)
    space = ss.build(st, 9, cand, valid, max_parents=3)
    cfg = om.OrderMCMCConfig(temperatures=2, window=4, block=100, every=1, adapt=50)
    orders = np.stack([np.random.default_rng(s).permutation(9) for s in range(4)])
    state = om.init(orders, space.data, cfg)
    step = jax.jit(om.step, static_argnums=3)
    for t in range(300):
        state, _ = step(jax.random.key(t), state, space.data, cfg)
    assert int(np.asarray(state.accepted).sum()) > 100
    for order, U, s in zip(np.asarray(state.order), np.asarray(state.U),
                           np.asarray(state.node_scores)):
        assert sorted(order) == list(range(9))
        np.testing.assert_array_equal(U, np.asarray(om.predecessor_bits(jnp.asarray(order),
                                                                        space.data)))
        np.testing.assert_allclose(s, _node_scores(order, space), atol=1e-5)


@pytest.mark.parametrize("max_parents", [4, 2])
def test_chains_reach_the_exact_edge_probabilities(max_parents):
    x = _data()
    exact = exact_edge_probs(x, edges_per_node=1.0, max_parents=max_parents).edge_probs
    res = om.order_mcmc(x, steps=6000, chains=4, max_parents=max_parents, n_candidates=4,
                        temperatures=1, until_rhat=None, grow_rounds=0)
    assert np.abs(res.edge_probs - exact).max() < 0.03
    assert res.rhat_max < 1.05
    # the draws are DAGs
    assert all(is_dag(g) for g in res.graphs)
    assert res.graphs.sum(1).max() <= max_parents


@pytest.mark.parametrize("window, insert_share, temperatures", [
    (2, 0.0, 1),  # neighbours swapped, nothing else
    (5, 0.0, 1),  # any two nodes of the window swapped
    (5, 1.0, 1),  # one node moved within the window
    (5, 0.5, 3),  # both, with tempered copies and their exchanges
])
def test_every_move_keeps_the_exact_posterior(window, insert_share, temperatures):
    x = _data(7)
    exact = exact_edge_probs(x, edges_per_node=1.0).edge_probs
    st = scores.bge_stats(x)
    cand, valid = ss.candidate_parents(st, 5, 4)
    space = ss.build(st, 5, cand, valid, max_parents=4)
    orders = np.stack([np.random.default_rng(s).permutation(5) for s in range(4)])
    res = om.sample(space, orders, 20000, seed=1, temperatures=temperatures, window=window,
                    insert_share=insert_share, draws=50)
    assert np.abs(res.edge_probs - exact).max() < 0.03
    # the drawn DAGs' edge shares agree with the Rao-Blackwellised marginals
    assert len(res.graphs) == 4 * 10 * 50
    assert np.abs(res.graphs.mean(0) - res.edge_probs).max() < 0.06
    if temperatures > 1:
        assert 0 < res.exchange_acceptance <= 1 and res.betas[0] == 1.0
        assert all(a > b for a, b in zip(res.betas, res.betas[1:]))


def test_knowledge_and_interventions_against_the_exact_sums():
    x = _data(3)
    mask = np.zeros_like(x)
    mask[:15, 1] = 1.0
    prior = np.full((5, 5), np.nan)
    prior[3, 4] = 0.9
    forbidden = np.zeros((5, 5), bool)
    forbidden[0, 1] = True
    required = np.zeros((5, 5), bool)
    required[2, 4] = True
    k = Knowledge(forbidden, required, prior).check()
    exact = exact_edge_probs(x, 1.5, knowledge=k, mask=mask).edge_probs
    res = om.order_mcmc(x, steps=6000, chains=4, edges_per_node=1.5, n_candidates=4,
                        knowledge=k, mask=mask, temperatures=2, until_rhat=None)
    assert np.abs(res.edge_probs - exact).max() < 0.03
    # hard knowledge holds exactly, in the marginals and in every draw
    assert res.edge_probs[0, 1] == 0 and res.edge_probs[2, 4] == pytest.approx(1.0)
    assert not res.graphs[:, 0, 1].any() and res.graphs[:, 2, 4].all()


def _hidden_parent_data(seed=0, n=400):
    """x2 = 2 x1 + 0.6 x0 + noise and two strong children x3, x4 of x2 (x5 noise): x0 is a
    weak parent of x2 that pairwise screening ranks below the children and x1."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    x[:, 2] = 2.0 * x[:, 1] + 0.6 * x[:, 0] + 0.3 * x[:, 2]
    x[:, 3] += 1.5 * x[:, 2]
    x[:, 4] += 1.5 * x[:, 2]
    return (x - x.mean(0)) / x.std(0)


def test_a_planted_parent_the_first_candidates_miss_is_found_by_growing_the_space():
    x = _hidden_parent_data()
    st = scores.bge_stats(x)
    first = ss.candidate_parents(st, 6, 3, greedy=False)  # pairwise screening alone
    assert 0 not in first[0][2]  # x2 has its children and x1 as its 3 first candidates
    exact = exact_edge_probs(x, edges_per_node=1.0, max_parents=3).edge_probs
    kw = dict(steps=16000, chains=4, max_parents=3, n_candidates=3, temperatures=2,
              until_rhat=None, candidates=first)
    fixed = om.order_mcmc(x, grow_rounds=0, **kw)
    assert fixed.edge_probs[0, 2] == 0.0  # outside the space
    grown = om.order_mcmc(x, grow_rounds=3, **kw)
    assert grown.grow_rounds >= 2 and grown.candidates_added >= 2
    assert 0 in grown.candidates[2][grown.valid[2]]
    assert exact[0, 2] > 0.8 and grown.edge_probs[0, 2] > 0.8
    # the grown space holds the posterior's mass: the exact sums within 0.05 everywhere
    assert np.abs(grown.edge_probs - exact).max() < 0.05


def test_forward_selection_finds_a_parent_without_marginal_correlation():
    # x2 = x1 - x0 + noise with x1 = x0 + noise: x0 is uncorrelated with x2, yet given x1 it
    # is half of x2; x2's child x3 and grandchild x4 outrank it pairwise
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 5))
    x[:, 1] = x[:, 0] + 0.5 * x[:, 1]
    x[:, 2] = x[:, 1] - x[:, 0] + 0.3 * x[:, 2]
    x[:, 3] += 1.5 * x[:, 2]
    x[:, 4] += 1.5 * x[:, 3]
    x = (x - x.mean(0)) / x.std(0)
    st = scores.bge_stats(x)
    assert abs(np.corrcoef(x[:, 0], x[:, 2])[0, 1]) < 0.1
    assert set(ss.candidate_parents(st, 5, 3, greedy=False)[0][2]) == {1, 3, 4}
    # the regression's support is x2's Markov blanket: parents x0, x1 and child x3
    assert set(ss.greedy_parents(st, 5, ss.prior(5))[2]) == {0, 1, 3}
    assert set(ss.candidate_parents(st, 5, 3)[0][2]) == {0, 1, 3}


def test_the_run_stops_when_the_chains_agree_and_says_when_it_could_not():
    x = _data(9)
    res = om.order_mcmc(x, steps=40000, chains=4, temperatures=1, until_rhat=1.05,
                        grow_rounds=0)
    assert res.converged and res.rhat_max < 1.05
    assert res.steps < res.budget and res.steps % (res.budget // om.BLOCKS) == 0
    # chains held apart by knowledge-free but contradictory starts cannot meet in 4 blocks
    # of a few steps: the target is missed and the result says so
    short = om.order_mcmc(_hidden_parent_data(), steps=80, chains=4, temperatures=1,
                          until_rhat=1.0001, grow_rounds=0, window=2)
    assert short.converged is False and short.steps == short.budget
    with pytest.raises(UsageError, match="above 1"):
        om.order_mcmc(x, steps=100, until_rhat=1.0)


def test_a_required_parent_is_always_a_candidate_and_a_forbidden_one_never():
    x = _data(4)
    st = scores.bge_stats(x)
    F = np.zeros((5, 5), bool)
    F[1, 2] = True
    R = np.zeros((5, 5), bool)
    R[4, 0] = True
    k = Knowledge(F, R, np.full((5, 5), np.nan)).check()
    cand, valid = ss.candidate_parents(st, 5, 1, knowledge=k)
    assert cand[0, 0] == 4 and valid.all()  # node 0's one candidate is its required parent
    cand, valid = ss.candidate_parents(st, 5, 4, knowledge=k)
    assert 1 not in cand[2][valid[2]] and valid.sum(1)[2] == 3


def test_topological_orders_respect_dags_and_required_edges():
    rng = np.random.default_rng(0)
    graphs = np.array([np.triu(rng.random((6, 6)) < 0.4, 1)[np.ix_(p, p)]
                       for p in (rng.permutation(6) for _ in range(5))])
    for g, order in zip(graphs, om.topological_orders(graphs)):
        pos = np.argsort(order)
        assert all(pos[i] < pos[j] for i, j in zip(*np.nonzero(g)))
    cycle = np.zeros((1, 3, 3), bool)
    cycle[0, 0, 1] = cycle[0, 1, 2] = cycle[0, 2, 0] = True
    required = np.zeros((3, 3), bool)
    required[2, 0] = True  # the cycle is broken elsewhere: 2 stays before 0
    pos = np.argsort(om.topological_orders(cycle, required)[0])
    assert pos[2] < pos[0] and sorted(pos) == [0, 1, 2]


def test_same_seed_same_result_and_resume_from_the_checkpoint(tmp_path):
    x = _data(5)
    st = scores.bge_stats(x)
    cand, valid = ss.candidate_parents(st, 5, 4)
    space = ss.build(st, 5, cand, valid)
    orders = np.stack([np.arange(5), np.arange(5)[::-1]]).astype(np.int32)
    kw = dict(seed=3, temperatures=2, until_rhat=1.05)
    a = om.sample(space, orders, 1200, **kw)
    b = om.sample(space, orders, 1200, checkpoint_path=tmp_path / "c.npz", **kw)
    c = om.sample(space, orders, 1200, checkpoint_path=tmp_path / "c.npz", **kw)
    np.testing.assert_array_equal(a.edge_probs, b.edge_probs)
    np.testing.assert_array_equal(a.graphs, c.graphs)
    assert c.resumed_from == b.steps == a.steps and c.steps == a.steps
    d = om.sample(space, orders, 1200, seed=4, temperatures=2)
    assert not np.array_equal(a.graphs, d.graphs)
    with pytest.raises(UsageError, match="window of at least 2"):
        om.sample(space, orders, 100, window=1)


def test_refine_a_dibs_run_finds_the_planted_chain():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    for j in range(1, 4):
        x[:, j] += 1.2 * x[:, j - 1]
    run = learn_structure(x, DiBSConfig(n_particles=4), steps=50, seed=0)
    refined, res = om.refine(run, 2000, seed=0)
    post = refined.posterior
    assert post.edge_marginals is not None and len(post.graphs) == 4 * 10 * om.DRAWS_PER_BLOCK
    skeleton = post.adjacency_probs()
    for j in range(1, 4):
        assert skeleton[j - 1, j] > 0.9
    assert skeleton[0, 3] < 0.2
    np.testing.assert_allclose(post.weights_mixture.sum(), 1.0)
    assert refined.posterior.network().names == tuple(f"x{i}" for i in range(4))
    joint = run._replace(config=run.config._replace(model="linear"))
    with pytest.raises(UsageError, match="--model bge"):
        om.refine(joint, 100)


def test_order_scores_of_a_three_node_cycle_of_candidates_by_hand():
    x = np.random.default_rng(6).normal(size=(80, 3))
    st = scores.bge_stats((x - x.mean(0)) / x.std(0))
    cand = np.array([[1], [2], [0]])  # the only candidates: 0 <- 1, 1 <- 2, 2 <- 0
    space = ss.build(st, 3, cand, np.ones((3, 1), bool), max_parents=1)
    beta = space.log_beta  # [j, 0]: no parent, [j, 1]: the candidate
    lse = np.logaddexp(beta[:, 0], beta[:, 1])
    shift = beta.max(1)
    for order in itertools.permutations(range(3)):
        pos = np.argsort(order)
        want = sum((lse[j] if pos[cand[j, 0]] < pos[j] else beta[j, 0]) - shift[j]
                   for j in range(3))
        got = float(om.order_log_score(jnp.asarray(order, jnp.int32), space.data))
        assert got == pytest.approx(want, abs=1e-4)


def _shard_case():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    x[:, 1] += x[:, 0]
    x = (x - x.mean(0)) / x.std(0)
    st = scores.bge_stats(x)
    space = ss.build(st, 5, *ss.candidate_parents(st, 5, 4), max_parents=3)
    return space, np.stack([rng.permutation(5) for _ in range(4)])


def test_the_chains_shard_across_two_devices_with_the_same_result(tmp_path):
    from conftest import run_on_two_host_devices

    run_on_two_host_devices(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import jax
        import numpy as np
        from deepbn.structure import order_mcmc as om
        from test_order_mcmc import _shard_case
        assert jax.device_count() == 2
        space, orders = _shard_case()
        state = om.init(np.tile(orders, (2, 1)), space.data, om.OrderMCMCConfig(2, 5, 20, 1))
        placed = om.run_layer.shard_batch(state, 8, "chains")
        assert len(placed.order.sharding.device_set) == 2  # the chains' axis is split
        res = om.sample(space, orders, 400, seed=2, temperatures=2)
        np.savez({str(tmp_path / "two.npz")!r}, p=res.edge_probs, g=res.graphs)
        print("ok")
    """)
    space, orders = _shard_case()
    one = om.sample(space, orders, 400, seed=2, temperatures=2)
    two = np.load(tmp_path / "two.npz")
    np.testing.assert_allclose(two["p"], one.edge_probs, atol=1e-6)
    np.testing.assert_array_equal(two["g"], one.graphs)
