import copy
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from deepbn import examples, graph
from deepbn.bn import BayesNet
from deepbn.conditionals import (
    ActivationGaussian,
    Bernoulli,
    Laplace,
    LinearGaussian,
    MLPGaussian,
)
from deepbn.errors import CycleError, NetworkFileError
from deepbn.io.networks import network_from_json, network_to_json, read_network, write_network


def test_ecoli70_sample_moments_match_closed_form():
    bn = examples.load("example:ecoli70")
    n = 40_000
    x = np.asarray(bn.to_table(bn.sample(jax.random.key(1), n)), np.float64)
    mean, cov = bn.linear_gaussian_moments()
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(x.mean(0) - mean) < 5 * se_mean)
    s = np.sqrt(np.diag(cov))
    se_cov = np.sqrt((np.outer(s, s) ** 2 + cov**2) / n)
    assert np.all(np.abs(np.cov(x.T) - cov) < 5.5 * se_cov)


def test_closed_form_moments_of_a_two_node_network_by_hand():
    # a -> b with b = 2 a + 1 + e: mean [0, 1], cov [[1, 2], [2, 4 + 0.25]]
    bn = BayesNet(["a", "b"], [[], ["a"]], [
        LinearGaussian(jnp.zeros((1, 0)), jnp.zeros(1), jnp.ones(1)),
        LinearGaussian(jnp.array([[2.0]]), jnp.array([1.0]), jnp.array([0.5])),
    ])
    mean, cov = bn.linear_gaussian_moments()
    np.testing.assert_allclose(mean, [0, 1])
    np.testing.assert_allclose(cov, [[1, 2], [2, 4.25]])


@pytest.mark.parametrize("name", ["gaussian-er10", "ecoli70", "gaussian-binary-tree"])
def test_log_joint_equals_multivariate_normal(name):
    bn = examples.load(f"example:{name}")
    values = bn.sample(jax.random.key(3), 50)
    mean, cov = bn.linear_gaussian_moments()
    ref = stats.multivariate_normal(mean, cov).logpdf(np.asarray(bn.to_table(values), np.float64))
    got = np.asarray(jax.jit(BayesNet.log_joint)(bn, values), np.float64)
    np.testing.assert_allclose(got, ref, rtol=2e-4, atol=2e-3)


def _every_family_network():
    k = jax.random.split(jax.random.key(0), 4)
    return BayesNet(
        ["root", "act", "mlp", "lap", "bern", "mlp2"],
        [[], ["root"], ["root", "act"], ["mlp"], ["lap", "root"], ["bern"]],
        [
            LinearGaussian(jnp.zeros((2, 0)), jnp.array([0.5, -0.5]), jnp.array([1.0, 0.3])),
            ActivationGaussian(jax.random.normal(k[0], (3, 2)), jnp.zeros(3),
                               jnp.full(3, 0.2), "relu"),
            MLPGaussian.init(k[1], 5, 1, hidden=(4, 3), learn_scale=True, activation="elu"),
            Laplace(jnp.array([[0.7]]), jnp.array([0.1]), jnp.array([0.4])),
            Bernoulli.init(k[2], 3, 2, hidden=(3,)),
            MLPGaussian.init(k[3], 2, 2, hidden=(), scale=0.5),
        ],
        observed=[False, False, True, True, True, False],
    )


def test_deepbn_json_round_trips_exactly(tmp_path):
    bn = _every_family_network()
    path = tmp_path / "net.json"
    write_network(path, bn)
    back = read_network(path)
    assert back.names == bn.names and back.parents == bn.parents
    assert back.observed == bn.observed
    for a, b in zip(jax.tree_util.tree_leaves(bn), jax.tree_util.tree_leaves(back)):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert [type(c) for c in back.conditionals] == [type(c) for c in bn.conditionals]
    assert network_to_json(back) == network_to_json(bn)
    v = bn.sample(jax.random.key(2), 7)
    np.testing.assert_array_equal(bn.log_joint(v), back.log_joint(v))


def test_sampling_is_deterministic_and_log_joint_batched():
    bn = _every_family_network()
    a, b = bn.sample(jax.random.key(5), 3), bn.sample(jax.random.key(5), 3)
    c = bn.sample(jax.random.key(6), 3)
    for n in bn.names:
        np.testing.assert_array_equal(a[n], b[n])
    assert not np.array_equal(a["root"], c["root"])
    one = bn.sample(jax.random.key(5))
    assert one["act"].shape == (3,) and bn.log_joint(one).shape == ()
    assert np.all(np.isfinite(bn.log_joint(a)))
    assert set(np.unique(np.asarray(a["bern"]))) <= {0.0, 1.0}


def test_reparam_keeps_given_values():
    bn = examples.load("example:gaussian-er10")
    eps = bn.base_sample(jax.random.key(0), 4)
    fixed = {"x0": jnp.full((4, 1), 3.0)}
    v = bn.reparam(eps, given=fixed)
    np.testing.assert_array_equal(v["x0"], fixed["x0"])


def test_shipped_bnlearn_networks_read():
    for name, d, arcs in [("ecoli70", 46, 70), ("magic-niab", 44, 66)]:
        bn = examples.load(f"example:{name}")
        assert bn.d == d and bn.adjacency().sum() == arcs
        assert graph.is_dag(bn.adjacency())


def test_examples_follow_their_definitions():
    dbn = examples.kingma_dbn(T=5, dim=4, sigma_z=0.1)
    assert dbn.latent_names == tuple(f"z{t}" for t in range(1, 6))
    assert dbn.parents[dbn.index("z3")] == ("z2",)
    assert dbn.parents[dbn.index("x3")] == ("z3",)
    np.testing.assert_allclose(dbn.conditionals[dbn.index("z2")].scale, 0.1)
    W = np.asarray(examples.kingma_dbn(T=2, dim=200).conditionals[1].weight)
    assert abs(W.std() - 2 / np.sqrt(200)) < 0.01
    tree = examples.gaussian_binary_tree(depth=5)
    assert tree.d == 31 and len(tree.observed_names) == 16
    A = tree.adjacency()
    for leaf in tree.observed_names:
        assert A[tree.index(leaf)].sum() == 0
    w = np.concatenate([np.asarray(c.weight).ravel() for c in tree.conditionals])
    assert w.min() >= 0.5 and w.max() <= 2.0


# ---------------------------------------------------------------------------
# bad network files: one clear error each
BASE = {
    "nodes": ["a", "b"],
    "arcs": [["a", "b"]],
    "cpds": {
        "a": {"coefficients": {"(Intercept)": [0.0]}, "variance": [1.0], "parents": []},
        "b": {"coefficients": {"(Intercept)": [0.0], "a": [2.0]}, "variance": [1.0],
              "parents": ["a"]},
    },
}


def _broken(edit):
    doc = copy.deepcopy(BASE)
    edit(doc)
    return doc


@pytest.mark.parametrize("edit,message", [
    (lambda d: d["arcs"].append(["a", "zz"]), "unknown node 'zz'"),
    (lambda d: (d["arcs"].append(["b", "a"]), d["cpds"]["a"].update(
        parents=["b"], coefficients={"(Intercept)": [0], "b": [1]})), "cycle: a -> b -> a"),
    (lambda d: d["cpds"]["b"].update(parents=[]), "disagree with the arcs"),
    (lambda d: d["cpds"]["b"].pop("variance"), "missing 'variance'"),
    (lambda d: d["cpds"]["b"].update(variance=[0.0]), "variance must be positive"),
    (lambda d: d["cpds"]["b"].update(variance=[-2.0]), "variance must be positive"),
    (lambda d: d["cpds"].pop("a"), "node 'a': no cpd"),
    (lambda d: d["cpds"]["b"]["coefficients"].pop("a"), "no coefficient for parent"),
])
def test_bnlearn_file_errors(tmp_path, edit, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_broken(edit)))
    with pytest.raises((NetworkFileError, CycleError), match=message) as e:
        read_network(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def _deepbn_doc():
    return network_to_json(_every_family_network())


@pytest.mark.parametrize("edit,message", [
    (lambda d: d["nodes"][1].update(family="gamma"), "unknown family 'gamma'"),
    (lambda d: d["nodes"][1]["params"].update(weight=[[1.0, 2.0]] * 3 + [[1.0]]),
     "expected a numeric array|wrong dimensions"),
    (lambda d: d["nodes"][1]["params"].update(weight=[[1.0]] * 3), "wrong dimensions"),
    (lambda d: d["nodes"][3]["params"].update(scale=[0.0]), "must be positive"),
    (lambda d: d["nodes"][1].update(parents=["nobody"]), "unknown parent 'nobody'"),
    (lambda d: d["nodes"][0].update(parents=["mlp2"]), "cycle"),
    (lambda d: d["nodes"][1]["params"].update(activation="swish"), "unknown activation"),
    (lambda d: d["nodes"][1]["params"].pop("bias"), "missing parameter 'bias'"),
])
def test_deepbn_file_errors(edit, message):
    doc = _deepbn_doc()
    edit(doc)
    with pytest.raises((NetworkFileError, CycleError), match=message):
        network_from_json(doc, "net.json")


def test_unreadable_files(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(NetworkFileError, match="not valid JSON"):
        read_network(bad)
    with pytest.raises(NetworkFileError, match="no such network file"):
        read_network(tmp_path / "nope.json")
    bad.write_text("[1, 2]")
    with pytest.raises(NetworkFileError, match="expected a JSON object"):
        read_network(bad)
    with pytest.raises(NetworkFileError, match="unknown example"):
        examples.load("example:nonesuch")


@pytest.mark.parametrize("tie", [True, False])
def test_sampling_walks_recurrent_runs_as_the_unrolled_network_would(tie):
    """A run and its emissions are sampled by one scan (tied: one parameter set; untied:
    a stacked copy per step); node by node from the same noise gives the same values."""
    from deepbn.reparam import runs

    bn = examples.kingma_dbn(T=12, dim=3, tie=tie)
    if not tie:  # a different bias per step: the run cannot be tied by equal values
        conds = [ActivationGaussian(c.weight, c.bias + 0.1 * j, c.scale, "tanh")
                 if isinstance(c, ActivationGaussian) else c
                 for j, c in enumerate(bn.conditionals)]
        bn = BayesNet(bn.names, bn.parents, conds, bn.observed)
    # a node outside the run that reads a state inside it
    bn = BayesNet([*bn.names, "y"], [*bn.parents, ["z6"]],
                  list(bn.conditionals) + [LinearGaussian(jnp.ones((2, 3)), jnp.zeros(2),
                                                          jnp.ones(2))],
                  [*bn.observed, True], ties=[*bn.ties, None])
    assert len(runs(bn)) == 1 and runs(bn)[0].tied == tie
    key = jax.random.key(3)
    walked = bn.sample(key, 5)
    unrolled = bn.reparam(bn.base_sample(key, 5))
    assert set(walked) == set(unrolled) == set(bn.names)
    for n in bn.names:
        np.testing.assert_allclose(walked[n], unrolled[n], rtol=1e-5, atol=1e-6)
    one = bn.sample(key)
    assert one["z12"].shape == (3,) and one["x12"].shape == (1,) and one["y"].shape == (2,)
