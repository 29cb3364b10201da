import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepbn import examples
from deepbn.bn import BayesNet
from deepbn.conditionals import ActivationGaussian, Bernoulli, LinearGaussian, MLPGaussian
from deepbn.errors import UsageError
from deepbn.inference import forms
from deepbn.nn import MLP


def _mixed_network():
    """Root, tanh child, an MLP child with a parent-dependent scale, observed leaves."""
    key = jax.random.key(0)
    conds = [
        LinearGaussian(jnp.zeros((2, 0)), jnp.array([0.3, -0.2]), jnp.array([1.5, 0.7])),
        ActivationGaussian(jnp.array([[0.8, -1.1], [0.4, 0.9]]), jnp.array([0.1, 0.0]),
                           jnp.array([0.2, 0.3]), "tanh"),
        MLPGaussian.init(key, 2, 1, hidden=(4,), learn_scale=True),
        LinearGaussian(jnp.array([[1.0, 0.5, -0.3]]), jnp.zeros(1), jnp.array([0.5])),
        Bernoulli(MLP(((jnp.array([[1.0, -2.0]]), jnp.zeros(1)),))),
    ]
    return BayesNet(["a", "b", "c", "y", "s"], [[], ["a"], ["b"], ["b", "c"], ["a"]], conds,
                    [False, False, False, True, True])


def _case(bn, key, n=3):
    x = bn.sample(key, n)
    return {k: x[k] for k in bn.observed_names}, x


def test_auxiliary_density_is_centred_density_plus_log_scales():
    bn = _mixed_network()
    space = forms.LatentSpace.from_network(bn)
    observed, x = _case(bn, jax.random.key(1))
    z = space.join({n: x[n] for n in space.names})
    ones, zeros = jnp.ones_like(z), jnp.zeros_like(z)
    eps = forms.coordinates(bn, space, z, observed, zeros)
    np.testing.assert_allclose(forms.latent_values(bn, space, eps, observed, zeros), z, atol=1e-5)
    centred = forms.log_density(bn, space, z, observed, ones)
    # the centred density is the network's own log joint
    np.testing.assert_allclose(centred, jnp.sum(bn.log_joint(x)), rtol=1e-5)
    log_scales = 0.0
    for name in space.names:
        j = bn.index(name)
        _, scale = bn.conditionals[j].loc_scale(bn.parent_values(x, j, (3,)))
        log_scales += jnp.sum(jnp.log(scale))
    auxiliary = forms.log_density(bn, space, eps, observed, zeros)
    np.testing.assert_allclose(auxiliary, centred + log_scales, rtol=1e-5)


def test_partial_centring_density_matches_change_of_variables_by_autodiff():
    bn = _mixed_network()
    space = forms.LatentSpace.from_network(bn)
    observed, x = _case(bn, jax.random.key(2), n=1)
    c = jax.random.uniform(jax.random.key(3), (1, space.size))
    u = jax.random.normal(jax.random.key(4), (1, space.size))

    def to_z(flat):
        return forms.latent_values(bn, space, flat[None], observed, c)[0]

    jac = jax.jacfwd(to_z)(u[0])
    z = to_z(u[0])[None]
    centred = forms.log_density(bn, space, z, observed, jnp.ones_like(z))
    expected = centred + jnp.linalg.slogdet(jac)[1]
    np.testing.assert_allclose(forms.log_density(bn, space, u, observed, c), expected,
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(forms.coordinates(bn, space, z, observed, c), u, atol=1e-4)


def test_auto_centres_pinned_nodes_and_not_the_dbn_chain():
    bn = examples.load("example:gaussian-hierarchy")
    space = forms.LatentSpace.from_network(bn)
    observed, _ = _case(bn, jax.random.key(0), n=1)
    assert np.all(np.asarray(forms.auto_centring(bn, space, observed, 1)) == 1)
    dbn = examples.kingma_dbn(T=6, dim=3)
    space = forms.LatentSpace.from_network(dbn)
    observed, _ = _case(dbn, jax.random.key(0), n=1)
    c = space.node_values(forms.auto_centring(dbn, space, observed, 1))
    assert all(c[f"z{t}"] == 0 for t in range(2, 7))
    kappa = space.node_values(forms.auto_centring(dbn, space, observed, 1, partial=True))
    assert all(0 <= kappa[f"z{t}"] < 0.5 for t in range(2, 7))


def test_networks_without_continuous_latents_are_refused():
    bn = examples.load("example:gaussian-er10")
    with pytest.raises(UsageError, match="no latent nodes"):
        forms.LatentSpace.from_network(bn)
    net = BayesNet(["b", "y"], [[], ["b"]],
                   [Bernoulli(MLP(((jnp.zeros((1, 0)), jnp.zeros(1)),))),
                    LinearGaussian(jnp.ones((1, 1)), jnp.zeros(1), jnp.ones(1))],
                   [False, True])
    with pytest.raises(UsageError, match="'b' is bernoulli"):
        forms.LatentSpace.from_network(net)


def test_recurrent_chains_are_scanned_with_the_same_density():
    dbn = examples.kingma_dbn(T=8, dim=3)
    runs = forms.chains(dbn)
    assert len(runs) == 1 and [dbn.names[k] for k in runs[0].nodes] == [f"z{t}" for t in
                                                                         range(2, 9)]
    assert [dbn.names[k] for k in runs[0].emissions] == [f"x{t}" for t in range(2, 9)]
    space = forms.LatentSpace.from_network(dbn)
    observed, _ = _case(dbn, jax.random.key(0), n=2)
    u = jax.random.normal(jax.random.key(1), (2, space.size))
    c = jax.random.uniform(jax.random.key(2), (2, space.size))
    assert runs[0].tied
    unrolled, lp_unrolled = forms._walk(dbn, space, u, observed, c, plan=())
    for plan in (runs, (runs[0]._replace(tied=False),)):
        scanned, lp_scan = forms._walk(dbn, space, u, observed, c, plan=plan)
        np.testing.assert_allclose(lp_scan, lp_unrolled, rtol=1e-5)
        for name in dbn.names:
            np.testing.assert_allclose(scanned[name], unrolled[name], atol=1e-5)
    # parameters that differ at one step, or that are being traced, are not tied
    k = dbn.index("z5")
    conds = list(dbn.conditionals)
    conds[k] = eqx.tree_at(lambda m: m.bias, conds[k], conds[k].bias + 0.5)
    untied = BayesNet(dbn.names, dbn.parents, conds, dbn.observed)
    assert not forms.chains(untied)[0].tied
    np.testing.assert_allclose(forms._walk(untied, space, u, observed, c)[1],
                               forms._walk(untied, space, u, observed, c, plan=())[1], rtol=1e-5)
    assert not eqx.filter_jit(lambda net: forms.chains(net)[0].tied)(dbn)
    # a node with two children in the run's position breaks the chain there
    assert forms.chains(_mixed_network()) == ()


def test_chain_with_parent_dependent_scale_matches_unrolled_walk():
    keys = jax.random.split(jax.random.key(3), 8)
    names = [f"h{t}" for t in range(4)] + [f"y{t}" for t in range(4)]
    parents = [[]] + [[f"h{t - 1}"] for t in range(1, 4)] + [[f"h{t}"] for t in range(4)]
    conds = [LinearGaussian(jnp.zeros((2, 0)), jnp.zeros(2), jnp.ones(2))]
    conds += [MLPGaussian.init(keys[t], 2, 2, hidden=(5,), learn_scale=True) for t in range(1, 4)]
    conds += [LinearGaussian(jax.random.normal(keys[4 + t], (1, 2)), jnp.zeros(1),
                             jnp.full(1, 0.3)) for t in range(4)]
    net = BayesNet(names, parents, conds, [False] * 4 + [True] * 4)
    runs = forms.chains(net)
    assert len(runs) == 1 and not runs[0].tied and runs[0].emissions is not None
    space = forms.LatentSpace.from_network(net)
    observed, _ = _case(net, jax.random.key(4), n=3)
    u = jax.random.normal(jax.random.key(5), (3, space.size))
    c = jax.random.uniform(jax.random.key(6), (3, space.size))
    scanned, lp_scan = forms._walk(net, space, u, observed, c)
    unrolled, lp_unrolled = forms._walk(net, space, u, observed, c, plan=())
    np.testing.assert_allclose(lp_scan, lp_unrolled, rtol=1e-5)
    for name in net.names:
        np.testing.assert_allclose(scanned[name], unrolled[name], atol=1e-5)
