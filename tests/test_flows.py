import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepbn import graph, masks
from deepbn.flows import (
    FlowDensity,
    GraphicalResidualFlow,
    ResidualBlock,
    spectral_norm,
    spectral_norm_estimate,
)


def _dag(seed, d=5):
    return graph.random_er_dag(np.random.default_rng(seed), d, 1.5)


@pytest.mark.parametrize("seed", range(4))
def test_masked_network_jacobian_is_zero_exactly_where_the_dag_has_no_edge(seed):
    A = _dag(seed)
    d = A.shape[0]
    cond = np.random.default_rng(seed + 10).random((2, d)) < 0.5  # 2 conditioning inputs
    allowed = masks.dependency_sets(A, self_loops=True, conditions=cond)
    block = ResidualBlock.init(jax.random.key(seed), allowed, d + 2, d, hidden=(16, 16))
    inputs = jax.random.normal(jax.random.key(seed + 1), (d + 2,))
    J = jax.jacfwd(lambda v: block.residual(v[:d], v[d:]))(inputs)  # (out d, in d + 2)
    expected = np.zeros((d, d + 2), bool)
    for j, s in enumerate(allowed):
        expected[j, sorted(s)] = True
    assert np.all(np.asarray(J)[~expected] == 0.0)
    assert np.all(np.abs(np.asarray(J)[expected]) > 1e-7)
    np.testing.assert_array_equal(masks.connectivity(masks.mlp_masks(allowed, d + 2, (16, 16))),
                                  expected.T)


@pytest.mark.parametrize("seed, hidden, affine", [(0, (24,), False), (1, (24,), True),
                                                  (2, (16, 16), True)])
def test_log_determinant_matches_autodiff_jacobian(seed, hidden, affine):
    # one hidden layer: the diagonal in closed form; two: by Jacobian-vector products
    A = _dag(seed, d=6)
    cond = np.ones((1, 6), bool)
    flow = GraphicalResidualFlow.init(jax.random.key(seed), A, blocks=3, hidden=hidden,
                                      conditions=cond, affine=affine)
    if affine:  # a non-trivial scale and shift after each block
        flow = eqx.tree_at(lambda f: (f.blocks.out_shift, f.blocks.out_log_scale), flow,
                           (jax.random.normal(jax.random.key(seed + 7), (3, 6)),
                            0.3 * jax.random.normal(jax.random.key(seed + 8), (3, 6))))
    z = jax.random.normal(jax.random.key(seed + 5), (4, 6))
    x = jax.random.normal(jax.random.key(seed + 6), (4, 1))
    _, logdet = flow.forward(z, x)
    for k in range(4):
        J = jax.jacfwd(lambda v, xk=x[k]: flow.forward(v, xk)[0])(z[k])
        sign, ref = jnp.linalg.slogdet(J)
        assert float(sign) > 0
        np.testing.assert_allclose(float(logdet[k]), float(ref), atol=1e-4)
        # each block's Jacobian is lower triangular in a topological order
        order = graph.topological_order(A)
        Jb = jax.jacfwd(lambda v, xk=x[k]: flow.block(0).forward(v, xk)[0])(z[k])
        P = np.asarray(Jb)[np.ix_(order, order)]
        assert np.allclose(np.triu(P, 1), 0.0)


@pytest.mark.parametrize("hidden, affine", [((32, 32), False), ((32,), True)])
def test_inverse_round_trip_and_reported_convergence(hidden, affine):
    A = _dag(1, d=6)
    flow = GraphicalResidualFlow.init(jax.random.key(0), A, blocks=4, hidden=hidden,
                                      affine=affine)
    if affine:
        flow = eqx.tree_at(lambda f: (f.blocks.out_shift, f.blocks.out_log_scale), flow,
                           (jax.random.normal(jax.random.key(2), (4, 6)),
                            0.3 * jax.random.normal(jax.random.key(3), (4, 6))))
    z = 2.0 * jax.random.normal(jax.random.key(1), (64, 6))
    y, _ = flow.forward(z)
    back, info = flow.inverse(y)
    assert bool(info.converged.all())
    assert float(jnp.max(jnp.abs(back - z))) < 1e-4
    assert float(jnp.max(info.residual)) < 1e-4
    # a capped iteration count is reported, not hidden
    _, short = flow.inverse(y, max_iterations=1)
    assert not bool(short.converged.all()) and int(short.iterations) == 1


@pytest.mark.parametrize("spectral", ["exact", "power"])
def test_each_layer_and_the_residual_are_contractions(spectral):
    A = _dag(2, d=5)
    flow = GraphicalResidualFlow.init(jax.random.key(3), A, blocks=2, hidden=(32,),
                                      lipschitz=0.9, spectral=spectral)
    for block in (flow.block(k) for k in range(flow.n_blocks)):
        weights, _ = block.refresh(100).normalised_weights(100)
        for w, _ in weights:
            assert float(jnp.linalg.norm(w, 2)) <= 0.9 + 1e-3
        # empirical Lipschitz constant of g on random pairs stays below 1
        a = jax.random.normal(jax.random.key(4), (2000, 5)) * 3
        b = a + 0.1 * jax.random.normal(jax.random.key(5), (2000, 5))
        ratio = jnp.linalg.norm(block.residual(a) - block.residual(b), axis=-1) / \
            jnp.linalg.norm(a - b, axis=-1)
        assert float(jnp.max(ratio)) < 1.0


def test_spectral_norm_where_a_persistent_power_vector_settles_in_one_block():
    # block-diagonal: a persistent power vector living in the first block never sees the second
    w = jnp.zeros((4, 4)).at[0, 0].set(1.0).at[1, 1].set(0.5).at[2:, 2:].set(3.0 * jnp.eye(2))
    u = jnp.array([1.0, 0.0, 0.0, 0.0])
    stuck, _ = spectral_norm_estimate(w, u, 100, restart=0.0)
    assert float(stuck) == pytest.approx(1.0, abs=1e-5)
    assert float(spectral_norm(w)) == pytest.approx(3.0, abs=1e-5)
    # restarting from u plus a dense vector finds the other block within a few iterations
    found, _ = spectral_norm_estimate(w, u, 5)
    assert float(found) == pytest.approx(3.0, rel=1e-3)


def _with_random_regression(density, key):
    """The regression MLP's weights drawn at random (the last layer starts at 0)."""
    leaves = density.regression_net.layers
    keys = jax.random.split(key, 2 * len(leaves))
    layers = tuple((0.7 * jax.random.normal(kw, w.shape), 0.3 * jax.random.normal(kb, b.shape))
                   for (w, b), kw, kb in zip(leaves, keys[::2], keys[1::2]))
    return eqx.tree_at(lambda m: m.regression_net.layers, density, layers)


@pytest.mark.parametrize("regression", [None, "linear", "mlp"])
def test_flow_density_integrates_to_one_and_its_samples_follow_it(regression):
    """With a regression, x1 on x0 (slope 1.5, plus a random MLP of x0 for "mlp") in front
    of the flow: its log-determinant is 0 and the draws invert it."""
    A = np.array([[0, 1], [0, 0]], bool)
    density = FlowDensity.init(jax.random.key(3), A, blocks=3, hidden=(16,),
                               regression=regression, regression_hidden=(8,))
    density = eqx.tree_at(lambda m: (m.shift, m.log_scale), density,
                          (jnp.array([0.5, -1.0]), jnp.array([0.3, -0.4])))
    if regression is not None:
        density = eqx.tree_at(lambda m: m.linear, density, jnp.array([[0.0, 1.5], [0.7, 0.0]]))
    if regression == "mlp":
        density = _with_random_regression(density, jax.random.key(5))
    g = jnp.linspace(-12.0, 12.0, 481)
    x0, x1 = jnp.meshgrid(g, g, indexing="ij")
    x = jnp.stack([x0.ravel(), x1.ravel()], -1)
    dens = jnp.exp(density.log_prob(x)).reshape(x0.shape)
    integral = lambda f: float(jnp.trapezoid(jnp.trapezoid(f * dens, g, axis=1), g))  # noqa: E731
    assert integral(1.0) == pytest.approx(1.0, abs=5e-3)
    draws, info = density.sample(jax.random.key(4), 40000)
    assert bool(info.converged.all())
    # moments by quadrature of the density against moments of the inverted draws
    for f, h in [(x0, draws[:, 0]), (x1, draws[:, 1]), (x0 * x1, draws[:, 0] * draws[:, 1])]:
        se = float(jnp.std(h)) / np.sqrt(len(h))
        assert float(jnp.mean(h)) == pytest.approx(integral(f), abs=4 * se)


def test_mlp_regression_reads_only_parents_and_its_draws_invert_it_on_a_deep_dag():
    """On a 4-node chain with a collider, L(u) = u - Bu - m(u) has a unit-triangular Jacobian
    (autodiff) that is zero off the DAG, and sampling's substitution sweeps (one per level,
    one more for the MLP's bias) map the flow's inverse back to x exactly."""
    A = np.zeros((4, 4), bool)
    A[0, 1] = A[1, 2] = A[2, 3] = A[0, 3] = True
    density = FlowDensity.init(jax.random.key(0), A, blocks=2, hidden=(8,), regression="mlp",
                               regression_hidden=(8, 8))
    density = _with_random_regression(density, jax.random.key(1))
    density = eqx.tree_at(lambda m: m.linear, density,
                          jax.random.normal(jax.random.key(2), (4, 4)))
    whiten = lambda u: u - density._parent_mean(u)  # noqa: E731
    J = np.asarray(jax.jacfwd(whiten)(jax.random.normal(jax.random.key(3), (4,))))
    np.testing.assert_array_equal(np.diag(J), np.ones(4))
    assert np.all(J.T[~(A | np.eye(4, dtype=bool))] == 0.0)  # J[j, i] = 0 unless i -> j
    assert np.all(np.abs(J.T[A]) > 1e-6)
    draws, info = density.sample(jax.random.key(4), 64)
    eps = jax.random.normal(jax.random.key(4), (64, 4))  # what sample drew
    u = draws * jnp.exp(density.log_scale) + density.shift
    back, _ = density.flow.forward(whiten(u))
    np.testing.assert_allclose(np.asarray(back), np.asarray(eps), atol=2e-4)


def test_initial_parameters_are_strongly_typed():
    # a weak-typed leaf turns strong after the first optimiser update, and a jitted
    # training loop would compile a second time
    density = FlowDensity.init(jax.random.key(0), _dag(0), blocks=2, hidden=(8,), affine=True,
                               linear=True)
    weak = [a.shape for a in jax.tree_util.tree_leaves(eqx.filter(density, eqx.is_array))
            if a.weak_type]
    assert weak == []
