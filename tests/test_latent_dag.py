import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepbn import nn
from deepbn.errors import UsageError
from deepbn.graph_vae import model as L

SMALL = dict(input_dim=6, nodes=3, node_dim=2, encoder_hidden=(16, 8), node_hidden=8,
             decoder_hidden=(8, 16))


def _x(n, width=6, seed=0):
    return (jax.random.uniform(jax.random.key(seed), (n, width)) < 0.4).astype(jnp.float32)


def test_kl_with_all_gates_off_is_the_analytic_kl_of_a_classic_vae():
    cfg = L.GraphVAEConfig(**SMALL, structure="none")
    params, stats = L.init(jax.random.key(0), cfg)
    x = jnp.repeat(_x(1), 40000, axis=0)
    forward = jax.jit(lambda p, s, k, x: L.forward(cfg, p, s, k, x, 1.0, train=False))
    out, _ = forward(params, stats, jax.random.key(1), x)
    h = nn.merge(params, stats)["encoder"](x[:1])
    analytic = 0.0
    for j in range(cfg.nodes):
        mean, logvar = L._gaussian_head(params["bottom_up"][j], h, cfg.node_dim)
        analytic += 0.5 * float(jnp.sum(jnp.exp(logvar) + mean**2 - 1.0 - logvar))
    kl = np.asarray(out.kl)
    assert abs(kl.mean() - analytic) < 4 * kl.std() / np.sqrt(len(kl)) + 1e-4
    # no gate anywhere: every node is a root with prior N(0, I)
    assert all(p is None for p in params["prior"])


def test_gated_off_parent_has_zero_gradient_in_prior_and_posterior():
    cfg = L.GraphVAEConfig(**SMALL, structure="learned")
    params, _ = L.init(jax.random.key(0), cfg)
    edges = L.edges(cfg.nodes)  # (1,0), (2,0), (2,1)
    params["gate_logits"] = jnp.array([3.0, -3.0, 3.0])  # z2 -> z0 off at test time
    gates = L.sample_gates(cfg, params, jax.random.key(1), 1, 1.0, hard=True)
    assert np.asarray(gates).tolist() == [[1.0, 0.0, 1.0]]
    z1, z2 = jnp.ones((1, 2)), jnp.full((1, 2), 0.5)

    def head(which, z1, z2):
        pa = L._gated_parents(cfg, 0, [None, z1, z2], gates)
        mean, logvar = L._gaussian_head(params[which][0], pa, cfg.node_dim)
        return jnp.sum(mean) + jnp.sum(logvar)

    for which in ("prior", "posterior"):
        g1, g2 = jax.grad(head, argnums=(1, 2))(which, z1, z2)
        assert np.all(np.asarray(g2) == 0.0)
        assert np.any(np.abs(np.asarray(g1)) > 1e-6)
    assert edges == [(1, 0), (2, 0), (2, 1)]


def test_fixed_structures_have_the_expected_gates():
    assert L.fixed_gates(L.GraphVAEConfig(nodes=3, structure="chain")).tolist() == [1, 0, 1]
    assert L.fixed_gates(L.GraphVAEConfig(nodes=3, structure="full")).tolist() == [1, 1, 1]
    assert L.fixed_gates(L.GraphVAEConfig(nodes=3, structure="none")).tolist() == [0, 0, 0]
    assert L.fixed_gates(L.GraphVAEConfig(nodes=3, structure="learned")) is None
    with pytest.raises(UsageError, match="unknown structure"):
        L.GraphVAEConfig(structure="tree").check()


def test_relaxed_gates_are_learnable_and_sharpen_as_the_temperature_falls():
    cfg = L.GraphVAEConfig(**SMALL, structure="learned")
    params, stats = L.init(jax.random.key(0), cfg)
    soft = L.sample_gates(cfg, params, jax.random.key(1), 2000, 1.0)
    cold = L.sample_gates(cfg, params, jax.random.key(1), 2000, 0.05)
    middle = lambda g: float(jnp.mean((g > 0.05) & (g < 0.95)))  # noqa: E731
    assert middle(cold) < 0.1 < middle(soft)
    # μ = 1/2: a relaxed Bernoulli(1/2) gate is on half the time
    assert abs(float(jnp.mean(cold > 0.5)) - 0.5) < 0.05

    def loss(p):
        out, _ = L.forward(cfg, p, stats, jax.random.key(2), _x(32), 0.5, train=True)
        return -jnp.mean(out.elbo)

    g = jax.jit(jax.grad(loss))(params)
    assert np.all(np.isfinite(np.asarray(g["gate_logits"])))
    assert np.any(np.abs(np.asarray(g["gate_logits"])) > 0)


def test_precision_weighted_fusion_is_the_product_of_gaussians():
    m1, lv1, m2, lv2 = jnp.array([1.0]), jnp.log(jnp.array([4.0])), jnp.array([-2.0]), \
        jnp.log(jnp.array([1.0]))
    mean, logvar = L.fuse(m1, lv1, m2, lv2)
    z = jnp.linspace(-8, 8, 4001)
    dens = jnp.exp(-0.5 * (z - 1.0) ** 2 / 4.0 - 0.5 * (z + 2.0) ** 2)
    dens = dens / jnp.trapezoid(dens, z)
    np.testing.assert_allclose(float(mean[0]), float(jnp.trapezoid(z * dens, z)), atol=1e-4)
    np.testing.assert_allclose(float(jnp.exp(logvar[0])),
                               float(jnp.trapezoid((z - mean[0]) ** 2 * dens, z)), atol=1e-4)
