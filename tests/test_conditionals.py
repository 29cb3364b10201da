"""Each family's log_prob against scipy, and its reparam sampler against scipy's law."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from deepbn.conditionals import (
    ActivationGaussian,
    Bernoulli,
    Laplace,
    LinearGaussian,
    MLPGaussian,
)

KEY = jax.random.key(0)
PARENTS = jnp.array([0.3, -1.2, 0.8])


def _linear(cls, **kw):
    w = jnp.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]])
    return cls(weight=w, bias=jnp.array([0.1, -0.2]), scale=jnp.array([0.7, 1.3]), **kw)


def _np_mlp(layers, x, act):
    for k, (w, b) in enumerate(layers):
        x = np.asarray(w, np.float64).T @ x + np.asarray(b, np.float64)  # w is (in, out)
        if k < len(layers) - 1:
            x = act(x)
    return x


def _expected_law(c, parents):
    """(scipy frozen distribution per dimension) computed with numpy, not deepbn."""
    pa = np.asarray(parents, np.float64)
    if isinstance(c, (LinearGaussian, Laplace, ActivationGaussian)):
        lin = np.asarray(c.weight, np.float64) @ pa + np.asarray(c.bias, np.float64)
        loc = np.tanh(lin) if isinstance(c, ActivationGaussian) else lin
        law = stats.laplace if isinstance(c, Laplace) else stats.norm
        return [law(loc[k], float(c.scale[k])) for k in range(c.dim)]
    if isinstance(c, MLPGaussian):
        out = _np_mlp(c.net.layers, pa, np.tanh)
        if c.learn_scale:
            return [stats.norm(out[k], np.exp(out[c.dim + k])) for k in range(c.dim)]
        return [stats.norm(out[k], float(c.scale[k])) for k in range(c.dim)]
    logits = _np_mlp(c.net.layers, pa, np.tanh)
    return [stats.bernoulli(1 / (1 + np.exp(-lg))) for lg in logits]


FAMILIES = {
    "linear-gaussian": lambda: _linear(LinearGaussian),
    "laplace": lambda: _linear(Laplace),
    "activation-gaussian": lambda: _linear(ActivationGaussian, activation="tanh"),
    "mlp-gaussian": lambda: MLPGaussian.init(KEY, 3, 2, hidden=(5,)),
    "mlp-gaussian-learned-scale": lambda: MLPGaussian.init(KEY, 3, 2, hidden=(4,),
                                                           learn_scale=True),
    "bernoulli-linear": lambda: Bernoulli.init(KEY, 3, 2),
    "bernoulli-mlp": lambda: Bernoulli.init(KEY, 3, 1, hidden=(6,)),
}


@pytest.mark.parametrize("name", FAMILIES)
def test_log_prob_matches_scipy(name):
    c = FAMILIES[name]()
    laws = _expected_law(c, PARENTS)
    if isinstance(c, Bernoulli):
        values = [np.array(v, np.float32) for v in ([0] * c.dim, [1] * c.dim)]
        ref = [sum(law.logpmf(v[k]) for k, law in enumerate(laws)) for v in values]
    else:
        rng = np.random.default_rng(1)
        values = [rng.normal(size=c.dim).astype(np.float32) for _ in range(4)]
        ref = [sum(law.logpdf(v[k]) for k, law in enumerate(laws)) for v in values]
    got = [float(c.log_prob(jnp.asarray(v), PARENTS)) for v in values]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", FAMILIES)
def test_reparam_sampler_has_the_right_law(name):
    c = FAMILIES[name]()
    n = 20_000
    batch = jnp.broadcast_to(PARENTS, (n, 3))
    eps = c.base_sample(jax.random.key(7), (n,))
    draws = np.asarray(c.reparam(eps, batch), np.float64)
    assert draws.shape == (n, c.dim)
    sampled = np.asarray(c.sample(jax.random.key(8), batch))
    for k, law in enumerate(_expected_law(c, PARENTS)):
        if isinstance(c, Bernoulli):
            p = law.mean()
            se = np.sqrt(p * (1 - p) / n)
            assert abs(draws[:, k].mean() - p) < 5 * se
            assert abs(sampled[:, k].mean() - p) < 5 * se
        else:
            assert stats.kstest(draws[:, k], law.cdf).pvalue > 1e-3
            assert stats.kstest(sampled[:, k], law.cdf).pvalue > 1e-3


@pytest.mark.parametrize("name", ["linear-gaussian", "laplace", "mlp-gaussian"])
def test_base_log_prob_matches_scipy(name):
    c = FAMILIES[name]()
    eps = np.array([0.3, -1.7], np.float32)
    law = stats.laplace if name == "laplace" else stats.norm
    np.testing.assert_allclose(float(c.base_log_prob(jnp.asarray(eps))),
                               law.logpdf(eps).sum(), rtol=1e-5)


def test_root_node_and_batch_broadcasting():
    c = LinearGaussian(jnp.zeros((3, 0)), jnp.array([1.0, 2.0, 3.0]), jnp.ones(3))
    v = c.sample(KEY, jnp.zeros((5, 4, 0)))
    assert v.shape == (5, 4, 3)
    assert c.log_prob(v, jnp.zeros((5, 4, 0))).shape == (5, 4)


def test_product_gaussian_mean_is_the_product_of_scaled_parents():
    import jax.numpy as jnp
    import numpy as np
    from scipy import stats

    from deepbn.conditionals import ProductGaussian

    c = ProductGaussian(jnp.array([[1.0, 2.0]]), jnp.array([0.5]), jnp.array([0.1]))
    pa = jnp.array([[3.0, -2.0], [0.5, 4.0]])
    np.testing.assert_allclose(c.loc(pa)[:, 0], [3.0 * -4.0 + 0.5, 0.5 * 8.0 + 0.5])
    v = jnp.array([[-11.4], [4.6]])
    ref = stats.norm.logpdf(np.asarray(v[:, 0]), [-11.5, 4.5], 0.1)
    np.testing.assert_allclose(c.log_prob(v, pa), ref, rtol=1e-5)
