"""The shared MLP, the Gaussian log-density and the trained / fixed split."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from deepbn import masks, nn


def test_normal_log_prob_matches_scipy_elementwise_and_summed():
    rng = np.random.default_rng(0)
    x, loc, log_scale = rng.normal(size=(3, 4, 5))
    want = stats.norm.logpdf(x, loc, np.exp(log_scale))
    np.testing.assert_allclose(nn.normal_log_prob(x, loc, log_scale, axis=None), want,
                               rtol=1e-5)
    np.testing.assert_allclose(nn.normal_log_prob(x, loc, log_scale), want.sum(-1), rtol=1e-5)
    np.testing.assert_allclose(nn.normal_log_prob(x), stats.norm.logpdf(x).sum(-1), rtol=1e-5)


def _numpy_forward(layers, x, f):
    for k, (w, b) in enumerate(layers):
        x = x @ np.asarray(w) + np.asarray(b)
        if k < len(layers) - 1:
            x = f(x)
    return x


def test_mlp_matches_a_numpy_forward_pass():
    net = nn.MLP.init(jax.random.key(0), (4, 7, 6, 3), activation="tanh")
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(net(x), _numpy_forward(net.layers, x, np.tanh), rtol=1e-5,
                               atol=1e-6)


def test_masked_mlp_jacobian_is_zero_exactly_where_the_dag_forbids():
    A = np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]], bool)  # 0 -> 1 -> 2, 0 -> 2
    allowed = masks.dependency_sets(A, self_loops=False)
    net = nn.MLP.init(jax.random.key(0), (3, 16, 3), allowed=allowed)
    net = eqx.tree_at(lambda m: m.layers, net,  # non-zero biases: no accidental zeros
                      tuple((w, b + 0.3) for w, b in net.layers))
    J = np.asarray(jax.jacobian(net)(jnp.array([0.2, -0.5, 0.9])))  # (out, in)
    for j in range(3):
        for i in range(3):
            assert (abs(J[j, i]) > 1e-7) == bool(A[i, j]), (i, j)


def test_batch_norm_uses_batch_statistics_in_training_and_running_ones_in_evaluation():
    net = nn.MLP.init(jax.random.key(0), (3, 5, 2), batch_norm=True)
    x = jax.random.normal(jax.random.key(1), (256, 3)) * 3.0 + 1.0
    w, b = net.layers[0]
    pre = x @ w + b
    y_train, new = net.train_apply(x)
    mean, var = new.running[0].value
    np.testing.assert_allclose(mean, 0.1 * jnp.mean(pre, 0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(var, 0.9 + 0.1 * jnp.var(pre, 0), rtol=1e-4)
    # evaluation with running averages equal to the batch's reproduces training mode
    exact = eqx.tree_at(lambda m: m.running, net,
                        (nn.Fixed((jnp.mean(pre, 0), jnp.var(pre, 0))),))
    np.testing.assert_allclose(y_train, exact(x), rtol=1e-4, atol=1e-5)


def test_split_keeps_masks_and_running_averages_away_from_the_optimiser():
    A = np.array([[0, 1], [0, 0]], bool)
    net = nn.MLP.init(jax.random.key(0), (2, 4, 2), batch_norm=True,
                      allowed=masks.dependency_sets(A, self_loops=True))
    params, fixed = nn.split(net)
    fixed_leaves = jax.tree_util.tree_leaves(fixed)
    n_fixed = sum(a.size for m in net.masks for a in [m.value]) + sum(
        a.size for r in net.running for a in r.value)
    assert sum(a.size for a in fixed_leaves) == n_fixed
    # weight decay moves every trained leaf and no fixed one
    opt = optax.adamw(0.1, weight_decay=0.5)
    grads = jax.tree_util.tree_map(jnp.zeros_like, params)
    updates, _ = opt.update(grads, opt.init(params), params)
    moved = nn.merge(optax.apply_updates(params, updates), fixed)
    for old, new in zip(net.masks, moved.masks):
        np.testing.assert_array_equal(old.value, new.value)
    assert not np.allclose(moved.layers[0][0], net.layers[0][0])


def test_apply_many_matches_each_network_and_its_gradients():
    keys = jax.random.split(jax.random.key(3), 4)
    nets = [nn.MLP.init(k, (6, 5, 4)) for k in keys[:3]]
    x = jax.random.normal(keys[3], (7, 6))
    np.testing.assert_allclose(nn.apply_many(nets, x), np.stack([n(x) for n in nets]),
                               rtol=1e-5, atol=1e-6)
    one_by_one = jax.grad(lambda ns: sum(jnp.sum(jnp.sin(n(x))) for n in ns))(nets)
    together = jax.grad(lambda ns: jnp.sum(jnp.sin(nn.apply_many(ns, x))))(nets)
    for a, b in zip(jax.tree_util.tree_leaves(one_by_one), jax.tree_util.tree_leaves(together)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # a batch of inputs with extra leading axes, and an activated last layer
    last = [nn.MLP.init(k, (6, 3), activate_last=True) for k in keys[:2]]
    x3 = x.reshape(7, 1, 6)
    np.testing.assert_allclose(nn.apply_many(last, x3), np.stack([n(x3) for n in last]),
                               rtol=1e-5, atol=1e-6)


def test_apply_many_refuses_masked_or_batch_normalised_networks():
    masked = nn.MLP.init(jax.random.key(0), (2, 3, 2),
                         allowed=[frozenset(), frozenset({0})])
    with pytest.raises(ValueError, match="unmasked"):
        nn.apply_many([masked], jnp.ones((1, 2)))
