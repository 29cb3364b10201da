import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal, norm

from deepbn import examples
from deepbn.bn import BayesNet
from deepbn.conditionals import ActivationGaussian, Bernoulli, LinearGaussian, MLPGaussian
from deepbn.errors import UsageError
from deepbn.nn import MLP
from deepbn.reparam import (
    LatentSpace,
    Reparam,
    coordinates,
    latent_values,
    log_density,
    runs,
    values,
)


def _mixed_network():
    """Root, tanh child, an MLP child with a parent-dependent scale, observed leaves."""
    key = jax.random.key(0)
    conds = [
        LinearGaussian(jnp.zeros((2, 0)), jnp.array([0.3, -0.2]), jnp.array([1.5, 0.7])),
        ActivationGaussian(jnp.array([[0.8, -1.1], [0.4, 0.9]]), jnp.array([0.1, 0.0]),
                           jnp.array([0.2, 0.3]), "tanh"),
        MLPGaussian.init(key, 2, 1, hidden=(4,), learn_scale=True),
        LinearGaussian(jnp.array([[1.0, 0.5, -0.3]]), jnp.zeros(1), jnp.array([0.5])),
        Bernoulli(MLP(((jnp.array([[1.0], [-2.0]]), jnp.zeros(1)),))),  # W (in, out)
    ]
    return BayesNet(["a", "b", "c", "y", "s"], [[], ["a"], ["b"], ["b", "c"], ["a"]], conds,
                    [False, False, False, True, True])


def _case(bn, key, n=3):
    x = bn.sample(key, n)
    return {k: x[k] for k in bn.observed_names}, x


def test_auxiliary_density_is_centred_density_plus_log_scales():
    bn = _mixed_network()
    cp, ncp = Reparam.centred(bn, 3), Reparam.auxiliary(bn, 3)
    space = cp.space
    observed, x = _case(bn, jax.random.key(1))
    z = space.join({n: x[n] for n in space.names})
    eps = coordinates(bn, ncp, z, observed)
    np.testing.assert_allclose(latent_values(bn, ncp, eps, observed), z, atol=1e-5)
    centred = log_density(bn, cp, z, observed)
    # the centred density is the network's own log joint
    np.testing.assert_allclose(centred, jnp.sum(bn.log_joint(x)), rtol=1e-5)
    log_scales = 0.0
    for name in space.names:
        j = bn.index(name)
        _, scale = bn.conditionals[j].loc_scale(bn.parent_values(x, j, (3,)))
        log_scales += jnp.sum(jnp.log(scale))
    auxiliary = log_density(bn, ncp, eps, observed)
    np.testing.assert_allclose(auxiliary, centred + log_scales, rtol=1e-5)


def test_partial_centring_density_matches_change_of_variables_by_autodiff():
    bn = _mixed_network()
    space = LatentSpace.from_network(bn)
    observed, x = _case(bn, jax.random.key(2), n=1)
    c = Reparam.from_weights(bn, jax.random.uniform(jax.random.key(3), (1, space.size)), 1)
    u = jax.random.normal(jax.random.key(4), (1, space.size))

    def to_z(flat):
        return latent_values(bn, c, flat[None], observed)[0]

    jac = jax.jacfwd(to_z)(u[0])
    z = to_z(u[0])[None]
    centred = log_density(bn, Reparam.centred(bn, 1), z, observed)
    expected = centred + jnp.linalg.slogdet(jac)[1]
    np.testing.assert_allclose(log_density(bn, c, u, observed), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(coordinates(bn, c, z, observed), u, atol=1e-4)


def test_auto_centres_pinned_nodes_and_not_the_dbn_run():
    bn = examples.load("example:gaussian-hierarchy")
    observed, _ = _case(bn, jax.random.key(0), n=1)
    assert np.all(np.asarray(Reparam.auto(bn, observed, 1).weights) == 1)
    dbn = examples.kingma_dbn(T=6, dim=3)
    space = LatentSpace.from_network(dbn)
    observed, _ = _case(dbn, jax.random.key(0), n=1)
    c = space.node_values(Reparam.auto(dbn, observed, 1).weights)
    assert all(c[f"z{t}"] == 0 for t in range(2, 7))
    kappa = space.node_values(Reparam.auto(dbn, observed, 1, partial=True).weights)
    assert all(0 <= kappa[f"z{t}"] < 0.5 for t in range(2, 7))


def test_networks_without_continuous_latents_are_refused():
    bn = examples.load("example:gaussian-er10")
    with pytest.raises(UsageError, match="no latent nodes"):
        LatentSpace.from_network(bn)
    net = BayesNet(["b", "y"], [[], ["b"]],
                   [Bernoulli(MLP(((jnp.zeros((0, 1)), jnp.zeros(1)),))),
                    LinearGaussian(jnp.ones((1, 1)), jnp.zeros(1), jnp.ones(1))],
                   [False, True])
    with pytest.raises(UsageError, match="'b' is bernoulli"):
        LatentSpace.from_network(net)


def test_recurrent_runs_are_scanned_with_the_same_density():
    dbn = examples.kingma_dbn(T=8, dim=3, tie=False)  # tied by equal values only
    found = runs(dbn)
    assert len(found) == 1 and [dbn.names[k] for k in found[0].nodes] == [f"z{t}" for t in
                                                                          range(2, 9)]
    assert [dbn.names[k] for k in found[0].emissions] == [f"x{t}" for t in range(2, 9)]
    observed, _ = _case(dbn, jax.random.key(0), n=2)
    space = LatentSpace.from_network(dbn)
    u = jax.random.normal(jax.random.key(1), (2, space.size))
    c = Reparam.from_weights(dbn, jax.random.uniform(jax.random.key(2), (2, space.size)), 2)
    assert c.runs == found and found[0].tied
    unrolled, lp_unrolled = values(dbn, c.node_by_node(), u, observed)
    untied_runs = Reparam.from_weights(dbn, c.weights, 2, tie=False)
    assert untied_runs.runs == (found[0]._replace(tied=False),)
    for r in (c, untied_runs):
        scanned, lp_scan = values(dbn, r, u, observed)
        np.testing.assert_allclose(lp_scan, lp_unrolled, rtol=1e-5)
        for name in dbn.names:
            np.testing.assert_allclose(scanned[name], unrolled[name], atol=1e-5)
    # parameters that differ at one step, or that are being traced, are not tied
    k = dbn.index("z5")
    conds = list(dbn.conditionals)
    conds[k] = eqx.tree_at(lambda m: m.bias, conds[k], conds[k].bias + 0.5)
    untied = BayesNet(dbn.names, dbn.parents, conds, dbn.observed)
    r = Reparam.from_weights(untied, c.weights, 2)
    assert not r.runs[0].tied
    np.testing.assert_allclose(values(untied, r, u, observed)[1],
                               values(untied, r.node_by_node(), u, observed)[1], rtol=1e-5)
    assert not eqx.filter_jit(lambda net: runs(net)[0].tied)(dbn)
    # a tie group's run shares one parameter: tied however it is learned, and while traced
    grouped = dbn.with_ties({f"z{t}": "T" for t in range(2, 9)}
                            | {f"x{t}": "E" for t in range(1, 9)})
    assert runs(grouped, tie=False) == found
    assert eqx.filter_jit(lambda net: runs(net, tie=False)[0].tied)(grouped)
    np.testing.assert_allclose(values(grouped, Reparam.from_weights(grouped, c.weights, 2,
                                                                    tie=False), u, observed)[1],
                               lp_unrolled, rtol=1e-5)
    # a node with two children in the run's position breaks the run there
    assert runs(_mixed_network()) == ()


def test_run_with_parent_dependent_scale_matches_node_by_node_walk():
    keys = jax.random.split(jax.random.key(3), 8)
    names = [f"h{t}" for t in range(4)] + [f"y{t}" for t in range(4)]
    parents = [[]] + [[f"h{t - 1}"] for t in range(1, 4)] + [[f"h{t}"] for t in range(4)]
    conds = [LinearGaussian(jnp.zeros((2, 0)), jnp.zeros(2), jnp.ones(2))]
    conds += [MLPGaussian.init(keys[t], 2, 2, hidden=(5,), learn_scale=True) for t in range(1, 4)]
    conds += [LinearGaussian(jax.random.normal(keys[4 + t], (1, 2)), jnp.zeros(1),
                             jnp.full(1, 0.3)) for t in range(4)]
    net = BayesNet(names, parents, conds, [False] * 4 + [True] * 4)
    found = runs(net)
    assert len(found) == 1 and not found[0].tied and found[0].emissions is not None
    space = LatentSpace.from_network(net)
    observed, _ = _case(net, jax.random.key(4), n=3)
    u = jax.random.normal(jax.random.key(5), (3, space.size))
    c = Reparam.from_weights(net, jax.random.uniform(jax.random.key(6), (3, space.size)), 3)
    scanned, lp_scan = values(net, c, u, observed)
    unrolled, lp_unrolled = values(net, c.node_by_node(), u, observed)
    np.testing.assert_allclose(lp_scan, lp_unrolled, rtol=1e-5)
    for name in net.names:
        np.testing.assert_allclose(scanned[name], unrolled[name], atol=1e-5)


def _linear_gaussian_network():
    """a -> b -> y, a -> y: latent a, b (2-d and 1-d) with non-unit scales, y observed."""
    conds = [
        LinearGaussian(jnp.zeros((2, 0)), jnp.array([0.5, -1.0]), jnp.array([2.0, 0.3])),
        LinearGaussian(jnp.array([[0.7, -0.4]]), jnp.array([0.2]), jnp.array([0.6])),
        LinearGaussian(jnp.array([[1.0, 0.5, -2.0]]), jnp.array([0.0]), jnp.array([0.8])),
    ]
    return BayesNet(["a", "b", "y"], [[], ["a"], ["a", "b"]], conds, [False, False, True])


def test_centred_and_auxiliary_differ_by_the_log_scales_of_a_linear_gaussian_network():
    bn = _linear_gaussian_network()
    n = 4
    observed, x = _case(bn, jax.random.key(7), n=n)
    table = np.concatenate([np.asarray(x[k], np.float64) for k in ("a", "b", "y")], axis=1)
    # computed apart from the library's walk: the joint Gaussian, and ε by hand
    mean, cov = bn.linear_gaussian_moments()
    joint = multivariate_normal(mean, cov).logpdf(table).sum()
    eps_a = (table[:, :2] - [0.5, -1.0]) / [2.0, 0.3]
    eps_b = (table[:, 2:3] - table[:, :2] @ [[0.7], [-0.4]] - 0.2) / 0.6
    jacobian = n * (np.log(2.0) + np.log(0.3) + np.log(0.6))  # Σ log σ over cases, coordinates
    cp, ncp = Reparam.centred(bn, n), Reparam.auxiliary(bn, n)
    assert cp.runs == ncp.runs == ()
    z = jnp.asarray(table[:, :3], jnp.float32)
    np.testing.assert_allclose(log_density(bn, cp, z, observed), joint, rtol=1e-5)
    eps = jnp.asarray(np.concatenate([eps_a, eps_b], axis=1), jnp.float32)
    np.testing.assert_allclose(coordinates(bn, ncp, z, observed), eps, atol=1e-5)
    np.testing.assert_allclose(log_density(bn, ncp, eps, observed), joint + jacobian, rtol=1e-5)


@pytest.mark.parametrize("c", [0.0, 0.3, 0.75, 1.0])
def test_partial_weight_gives_the_closed_form_density_of_one_gaussian_node(c):
    """z ~ N(μ, σ²), x | z ~ N(z, τ²); at weight c, z = σ^{1-c} u + (1-c) μ and
    u ~ σ^{c-1} N(cμ, σ²) = N(c μ σ^{c-1}, σ^{2c})."""
    mu, sigma, tau = 0.8, 1.7, 0.4
    bn = BayesNet(["z", "x"], [[], ["z"]],
                  [LinearGaussian(jnp.zeros((1, 0)), jnp.array([mu]), jnp.array([sigma])),
                   LinearGaussian(jnp.ones((1, 1)), jnp.zeros(1), jnp.array([tau]))],
                  [False, True])
    r = Reparam.from_weights(bn, c, 1)
    assert r.weights.shape == (1, 1) and r.n_cases == 1
    x = jnp.array([[1.3]])
    for u in (-1.1, 0.0, 0.6, 2.5):
        z = sigma ** (1 - c) * u + (1 - c) * mu
        expected = (norm.logpdf(u, c * mu * sigma ** (c - 1), sigma**c)
                    + norm.logpdf(1.3, z, tau))
        got = log_density(bn, r, jnp.array([[u]]), {"x": x})
        np.testing.assert_allclose(got, expected, rtol=1e-5)
        np.testing.assert_allclose(latent_values(bn, r, jnp.array([[u]]), {"x": x}), [[z]],
                                   rtol=1e-5)
        np.testing.assert_allclose(coordinates(bn, r, jnp.array([[z]]), {"x": x}), [[u]],
                                   atol=1e-5)


def test_reparam_is_a_pytree_of_its_weights_and_checks_its_inputs():
    bn = examples.kingma_dbn(T=5, dim=2)
    r = Reparam.from_form(bn, "auxiliary", {}, 3)
    assert jax.tree_util.tree_leaves(r) == [r.weights] and r.weights.shape == (3, 10)
    assert Reparam.from_form(bn, "centred", {}, 3).runs == r.runs == runs(bn)
    assert r.case(1).weights.shape == (1, 10) and r.node_by_node().runs == ()
    doubled = jax.jit(lambda q: Reparam(q.space, 2 * q.weights + 1, q.runs))(r)
    assert doubled.runs == r.runs and np.all(np.asarray(doubled.weights) == 1)
    with pytest.raises(UsageError, match="unknown form 'partial'"):
        Reparam.from_form(bn, "partial", {}, 3)
    with pytest.raises(UsageError, match="do not fit 3 case"):
        Reparam.from_weights(bn, np.ones((2, 10)), 3)
