import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from deepbn.structure import priors


def test_er_prior_is_a_product_of_bernoullis():
    rng = np.random.default_rng(0)
    d, k = 6, 1.5
    G = (rng.random((d, d)) < 0.3) & ~np.eye(d, dtype=bool)
    q = k / (d - 1)
    ref = [stats.bernoulli(q).logpmf(G[np.arange(d) != j, j]).sum() for j in range(d)]
    got = np.asarray(priors.er_column_log_prior(G.astype(np.float32), k))
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    # the expected edge count under the prior is k * d
    assert q * d * (d - 1) == pytest.approx(k * d)


def test_sf_prior_is_a_power_law_in_the_in_degree():
    G = np.zeros((4, 4), np.float32)
    G[[0, 1, 2], 3] = 1
    G[0, 1] = 1
    got = np.asarray(priors.sf_column_log_prior(G))
    np.testing.assert_allclose(got, -3 * np.log([1, 2, 1, 4]), rtol=1e-6)


def test_in_degree_bound_gives_probability_zero_beyond_k():
    G = np.zeros((6, 6), np.float32)
    G[:4, 5] = 1  # node 5: 4 parents
    G[0, 1] = 1
    lp = np.asarray(priors.in_degree_bound_log_prior(jnp.asarray(G), 2))
    assert lp.tolist() == [0.0, 0.0, 0.0, 0.0, 0.0, 2 * priors.EXCESS_PARENT_LOG_PRIOR]
    assert priors.EXCESS_PARENT_LOG_PRIOR <= -1e6
