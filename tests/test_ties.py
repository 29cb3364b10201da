"""Tied parameters: nodes sharing one parameter set (a DBN's transitions across time).

Checked against an untied copy of the same network: equal densities, the group's gradient
is the sum of the copies' gradients (autodiff), files round-trip exactly, mismatched ties
are one-line errors, and MCMC-EM with ties recovers a transition matrix better than
without (Kingma & Welling, ICML 2014, arXiv 1402.0480, Sec. 5).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepbn import examples
from deepbn.bn import BayesNet
from deepbn.conditionals import ActivationGaussian, LinearGaussian
from deepbn.errors import NetworkFileError
from deepbn.inference import mcmc_em
from deepbn.io.networks import network_from_json, network_to_json, read_network, write_network
from deepbn.io.tables import write_table
from deepbn.reparam import Reparam, log_density

EXE = shutil.which("deepbn") or str(Path(sys.executable).parent / "deepbn")


def _dbn(W, T, tie=True, sigma_z=0.3, noise=0.2, seed=0):
    """z1 ~ N(0, I), z_t ~ N(tanh(W z_{t-1}), sigma_z² I), x_t ~ N(A z_t + c, noise² I):
    transitions tied as 'transition', emissions as 'emission' (random A, c)."""
    d = W.shape[0]
    rng = np.random.default_rng(seed)
    A = np.eye(d) + 0.3 * rng.normal(size=(d, d))
    c = 0.1 * rng.normal(size=d)
    names, parents, conds, observed = [], [], [], []
    for t in range(1, T + 1):
        names.append(f"z{t}")
        parents.append([f"z{t - 1}"] if t > 1 else [])
        conds.append(ActivationGaussian(jnp.asarray(W, jnp.float32), jnp.zeros(d),
                                        jnp.full(d, sigma_z, jnp.float32))
                     if t > 1 else LinearGaussian(jnp.zeros((d, 0)), jnp.zeros(d), jnp.ones(d)))
        observed.append(False)
    for t in range(1, T + 1):
        names.append(f"x{t}")
        parents.append([f"z{t}"])
        conds.append(LinearGaussian(jnp.asarray(A, jnp.float32), jnp.asarray(c, jnp.float32),
                                    jnp.full(d, noise, jnp.float32)))
        observed.append(True)
    ties = {f"z{t}": "transition" for t in range(2, T + 1)} | {
        f"x{t}": "emission" for t in range(1, T + 1)}
    return BayesNet(names, parents, conds, observed, ties=ties if tie else None)


def _perturbed(bn: BayesNet, seed: int) -> BayesNet:
    """The network with every parameter set moved at random (tied nodes stay equal)."""
    rng = np.random.default_rng(seed)
    leaves, tree = jax.tree_util.tree_flatten_with_path(bn)

    def move(path, x):
        noise = rng.normal(size=x.shape).astype(np.float32)
        if any(getattr(p, "name", None) == "scale" for p in path):  # stays positive
            return x * np.exp(0.2 * noise)
        return x + 0.3 * noise

    return jax.tree_util.tree_unflatten(tree, [jnp.asarray(move(p, np.asarray(x)))
                                               for p, x in leaves])


def _untied_copy(bn: BayesNet) -> BayesNet:
    """Every node with its own copy of its parameters, built node by node."""
    return BayesNet(bn.names, bn.parents, [jax.tree_util.tree_map(jnp.array, c)
                                           for c in bn.conditionals], bn.observed)


@eqx.filter_jit
def _log_joint(bn, values):
    return bn.log_joint(values)


def test_a_tie_is_one_parameter_set_with_the_untied_density():
    tied = _perturbed(_dbn(0.8 * np.eye(2), T=4), 0)
    untied = _untied_copy(tied)
    assert tied.tie_groups == {"transition": ("z2", "z3", "z4"),
                               "emission": ("x1", "x2", "x3", "x4")}
    assert len(tied.parameter_sets) == 3 and len(untied.parameter_sets) == 8
    assert len(jax.tree_util.tree_leaves(tied)) == 9  # 3 sets of weight, bias, scale
    values = tied.sample(jax.random.key(1), 5)
    np.testing.assert_allclose(_log_joint(tied, values), _log_joint(untied, values), rtol=1e-6)
    # sampling reads the group's parameters at every node: the untied copy's draws
    copies = untied.sample(jax.random.key(1), 5)
    for n in tied.names:
        np.testing.assert_array_equal(values[n], copies[n])
    # replacing one tied node's conditional replaces its group's; the network keeps its ties
    new = LinearGaussian(jnp.ones((2, 2)), jnp.zeros(2), jnp.full(2, 0.5))
    moved = tied.replace_conditional("x3", new).with_latent(["z1", "z2", "z3", "z4"])
    assert moved.ties == tied.ties
    assert all(moved.conditionals[moved.index(f"x{t}")] is new for t in range(1, 5))
    by_hand = untied
    for t in range(1, 5):
        by_hand = by_hand.replace_conditional(f"x{t}", new)
    np.testing.assert_allclose(_log_joint(moved, values), _log_joint(by_hand, values),
                               rtol=1e-6)
    unbound = tied.with_ties(None)
    assert len(unbound.parameter_sets) == 8
    np.testing.assert_allclose(_log_joint(unbound, values), _log_joint(untied, values),
                               rtol=1e-6)


def test_the_group_gradient_is_the_sum_of_the_per_node_gradients():
    tied = _perturbed(_dbn(0.8 * np.eye(2), T=4), 3)
    untied = _untied_copy(tied)
    rng = np.random.default_rng(4)
    values = {n: jnp.asarray(rng.normal(size=(6, 2)), jnp.float32) for n in tied.names}
    observed = {n: values[n] for n in tied.observed_names}

    def total(net):
        return jnp.sum(net.log_joint(values))

    def form(net, reparam):
        u = reparam.space.join({n: values[n] for n in reparam.space.names})
        return log_density(net, reparam, u, observed)

    gradient = eqx.filter_jit(eqx.filter_grad(total))
    g_tied, g_untied = gradient(tied), gradient(untied)
    # the centred form (u = z: the same density), through the tied run that the scan
    # closes over as one parameter
    r_tied = Reparam.centred(tied, 6, tie=False)
    assert r_tied.runs and r_tied.runs[0].tied
    f_tied = eqx.filter_jit(eqx.filter_grad(form))(tied, r_tied)
    for got, want in ((g_tied, g_untied), (f_tied, g_untied)):
        for members in tied.tie_groups.values():
            summed = jax.tree_util.tree_map(
                lambda *g: sum(g), *[want.conditionals[untied.index(n)] for n in members])
            for a, b in zip(jax.tree_util.tree_leaves(got.conditionals[tied.index(members[0])]),
                            jax.tree_util.tree_leaves(summed)):
                np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-4)
        for a, b in zip(jax.tree_util.tree_leaves(got.conditionals[0]),
                        jax.tree_util.tree_leaves(want.conditionals[0])):  # z1, untied
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-4)


def test_learning_one_tied_node_learns_its_group():
    bn = examples.kingma_dbn(T=4, dim=2)
    params, _ = mcmc_em.split_network(bn, learn=["z3"])
    trainable = [s for s in params.parameter_sets
                 if jax.tree_util.tree_leaves(s)]
    assert len(trainable) == 1 and trainable[0] is params.parameter_sets[bn.slots[2]]


def test_tied_network_files_round_trip_exactly_and_read_without_ties(tmp_path):
    bn = _perturbed(examples.kingma_dbn(T=3, dim=2), 5)
    path = tmp_path / "net.json"
    write_network(path, bn)
    doc = json.loads(path.read_text())
    assert [node.get("tie") for node in doc["nodes"]] == [None, "transition", "transition",
                                                           "emission", "emission", "emission"]
    back = read_network(path)
    assert back.ties == bn.ties and back.slots == bn.slots
    assert network_to_json(back) == doc
    for a, b in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(bn)):
        np.testing.assert_array_equal(a, b)

    def same_conditionals(a, b):
        return all(type(p) is type(q) and all(np.array_equal(x, y) for x, y in zip(
            jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(q)))
            for p, q in zip(a.conditionals, b.conditionals))

    # a reader without ties (every node gives its params) gets the untied copies
    plain = {**doc, "nodes": [{k: v for k, v in n.items() if k != "tie"} for n in doc["nodes"]]}
    untied = network_from_json(plain)
    assert untied.ties == (None,) * 6 and len(untied.parameter_sets) == 6
    assert same_conditionals(untied, bn)
    # a tied node may leave out family and params: it has its group's
    short = {**doc, "nodes": [n if n["name"] in ("z2", "x1") else
                              {k: v for k, v in n.items() if k not in ("family", "params")}
                              if "tie" in n else n for n in doc["nodes"]]}
    assert "params" not in short["nodes"][2] and "params" not in short["nodes"][5]
    shortened = network_from_json(short)
    assert shortened.ties == bn.ties and same_conditionals(shortened, bn)


def _two_nodes(second, tie_b="g", params_b=True):
    first = {"name": "a", "family": "linear-gaussian", "tie": "g",
             "params": {"weight": [[]], "bias": [0.0], "scale": [1.0]}}
    node = {"name": "b", "tie": tie_b, **second}
    if not params_b:
        node.pop("params", None)
    return {"format": "deepbn", "version": 1, "nodes": [first, node]}


ROOT = {"family": "linear-gaussian", "params": {"weight": [[]], "bias": [0.0], "scale": [1.0]}}


@pytest.mark.parametrize("second, message", [
    ({"family": "laplace", "params": ROOT["params"]},
     "nodes 'a' and 'b' are tied ('g') but are linear-gaussian and laplace; tie only nodes "
     "of the same family"),
    ({"family": "linear-gaussian", "params": {"weight": [[], []], "bias": [0.0, 0.0],
                                              "scale": [1.0, 1.0]}},
     "nodes 'a' and 'b' are tied ('g') but have parameters of shapes (1, 0) and (2, 0)"),
    ({"family": "linear-gaussian", "params": {"weight": [[]], "bias": [0.5], "scale": [1.0]}},
     "nodes 'a' and 'b' are tied ('g') but have different parameter values"),
])
def test_a_mismatched_tie_is_a_one_line_error(second, message):
    with pytest.raises(NetworkFileError, match=r"^net\.json: " + message.replace("(", r"\(")
                       .replace(")", r"\)")) as err:
        network_from_json(_two_nodes(second), "net.json")
    assert "\n" not in str(err.value)


def test_bad_tie_entries_are_one_line_errors():
    with pytest.raises(NetworkFileError, match="node 'b': 'tie' must be a group name"):
        network_from_json(_two_nodes(ROOT, tie_b=3), "net.json")
    doc = _two_nodes(ROOT, tie_b="h", params_b=False)
    with pytest.raises(NetworkFileError, match="no node of tie group 'h' gives 'params'"):
        network_from_json(doc, "net.json")
    bn = examples.kingma_dbn(T=3, dim=2)
    with pytest.raises(NetworkFileError, match="tie of unknown node"):
        bn.with_ties({"z9": "g"})
    with pytest.raises(NetworkFileError, match="nodes 'z1' and 'z2' are tied"):
        bn.with_ties({"z1": "g", "z2": "g"})  # a root (no parent inputs) and a transition


def test_mcmc_em_with_ties_recovers_the_transition_matrix_better(tmp_path):
    """Data from a tied DBN; a start with W = 0. With ties every transition informs the one
    W; untied, each copy W_t learns from its own step alone: a larger error (RMS over the
    copies). The tied fit runs through ``deepbn fit``, which writes the tied network back."""
    T, dim, cases = 8, 2, 20
    rotation = np.array([[np.cos(0.5), -np.sin(0.5)], [np.sin(0.5), np.cos(0.5)]])
    W = 0.9 * rotation
    truth = _dbn(W, T)
    x = truth.sample(jax.random.key(1), cases)
    start = _dbn(np.zeros((dim, dim)), T)
    write_network(tmp_path / "start.json", start)
    write_table(tmp_path / "data.csv", truth.to_table(x, truth.observed_names),
                truth.columns(truth.observed_names))
    settings = {"iterations": 50, "form": "centred", "optimizer": "adam", "learning_rate": 0.05}
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    options = [a for k, v in settings.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    # one node of a tie group stands for the group; the untied fit runs meanwhile
    log = tmp_path / "fit.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen([EXE, "fit", str(tmp_path / "start.json"),
                                 str(tmp_path / "data.csv"), "--out", str(tmp_path / "fit"),
                                 "--learn", "z2", *options], env=env, stdout=sink, stderr=sink)
        try:
            data = {n: x[n] for n in truth.observed_names}
            untied = mcmc_em.fit(start.with_ties(None), data, mcmc_em.FitConfig(**settings),
                                 seed=0, learn=[f"z{t}" for t in range(2, T + 1)]).network
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, log.read_text()[-2000:]
    tied = read_network(tmp_path / "fit" / "network.json")
    assert tied.ties == start.ties and len(tied.parameter_sets) == 3
    assert untied.ties == (None,) * (2 * T)

    def error(net):
        return float(np.sqrt(np.mean([(np.asarray(net.conditionals[net.index(f"z{t}")].weight)
                                       - W) ** 2 for t in range(2, T + 1)])))

    e_start, e_tied, e_untied = error(start), error(tied), error(untied)
    assert e_tied < 0.5 * e_start and e_tied < 0.75 * e_untied, (e_start, e_tied, e_untied)
    # the emissions were not to be learned
    np.testing.assert_array_equal(tied.conditionals[T].weight, start.conditionals[T].weight)


def test_kingma_dbn_ties_its_transitions_and_emissions():
    bn = examples.load("example:kingma-dbn")
    assert bn.tie_groups == {"transition": tuple(f"z{t}" for t in range(2, 21)),
                             "emission": tuple(f"x{t}" for t in range(1, 21))}
    assert len(bn.parameter_sets) == 3
    untied = examples.kingma_dbn(tie=False)
    assert untied.ties == (None,) * 40
    for a, b in zip(bn.conditionals, untied.conditionals):
        assert all(np.array_equal(p, q) for p, q in zip(jax.tree_util.tree_leaves(a),
                                                        jax.tree_util.tree_leaves(b)))
