"""The counter-hash noise of DiBS's graph samples against the distributions it claims."""

import jax
import numpy as np
from scipy import stats

from deepbn.structure import noise


def test_uniform_and_logistic_pass_goodness_of_fit_and_keys_are_independent():
    u = np.asarray(noise.uniform(jax.random.key(0), (200_000,)), np.float64)
    assert 0 < u.min() and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    # neighbouring indices are not correlated (a weak mixer shows up here first)
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01
    v = np.asarray(noise.uniform(jax.random.key(1), (200_000,)), np.float64)
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.01
    e = np.asarray(noise.logistic(jax.random.key(2), (200_000,)), np.float64)
    assert stats.kstest(e, "logistic").pvalue > 1e-3
    # a pure function of the key: same key, same numbers; split keys give other numbers
    a, b = jax.random.split(jax.random.key(3))
    np.testing.assert_array_equal(noise.logistic(a, (4, 5)), noise.logistic(a, (4, 5)))
    assert not np.array_equal(noise.logistic(a, (4, 5)), noise.logistic(b, (4, 5)))


def test_the_logistic_of_a_uniform_makes_the_same_bernoulli_draw_as_comparing_with_sigmoid():
    u = noise.uniform(jax.random.key(4), (10_000,))
    logits = np.asarray(jax.random.normal(jax.random.key(5), (10_000,))) * 4
    by_logistic = np.asarray(logits + noise.logistic_of(u) > 0)
    by_uniform = np.asarray(u < jax.nn.sigmoid(logits))
    # equal except where float rounding meets the boundary
    assert np.mean(by_logistic != by_uniform) < 1e-3
