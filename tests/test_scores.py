"""BGe against an independent Normal-Wishart implementation and exact enumeration;
joint likelihoods against direct formulas; interventional masks."""


import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import multigammaln

from dag_enumeration import all_dags
from deepbn import graph
from deepbn.structure import scores


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    x[:, 2] += 0.9 * x[:, 0] - 0.7 * x[:, 1]  # a v-structure 0 -> 2 <- 1
    return x


def _marginal_nw(x, Y, alpha_mu, alpha_w, d):
    """log p(x_Y) under the Normal-Wishart prior (Kuipers et al. 2014, Eq. 2), by hand."""
    if not Y:
        return 0.0
    n = x.shape[0]
    size = len(Y)
    t = alpha_mu * (alpha_w - d - 1) / (alpha_mu + 1)
    xb = x.mean(0)
    S = (x - xb).T @ (x - xb)
    R = t * np.eye(d) + S + (n * alpha_mu / (n + alpha_mu)) * np.outer(xb, xb)
    RY = R[np.ix_(Y, Y)]
    aw = alpha_w - d + size
    return (-n * size / 2 * np.log(np.pi) + size / 2 * np.log(alpha_mu / (n + alpha_mu))
            + multigammaln((n + aw) / 2, size) - multigammaln(aw / 2, size)
            + aw / 2 * size * np.log(t) - (n + aw) / 2 * np.linalg.slogdet(RY)[1])


def test_bge_matches_normal_wishart_on_every_3_node_dag():
    x = _data()
    st = scores.bge_stats(x)
    dags = list(all_dags(3))
    assert len(dags) == 25
    for A in dags:
        ref = sum(
            _marginal_nw(x, sorted([j, *graph.parents(A, j)]), 1.0, 5.0, 3)
            - _marginal_nw(x, sorted(graph.parents(A, j)), 1.0, 5.0, 3)
            for j in range(3)
        )
        got = float(jnp.sum(scores.bge_node_scores(jnp.asarray(A, jnp.float32), st)))
        assert got == pytest.approx(ref, abs=2e-3)


def test_bge_is_score_equivalent_and_exact_posterior_finds_the_v_structure():
    x = _data(n=200)
    st = scores.bge_stats(x)
    dags = list(all_dags(3))
    logp = np.array([float(jnp.sum(scores.bge_node_scores(jnp.asarray(A, jnp.float32), st)))
                     for A in dags])
    # Markov-equivalent DAGs (same skeleton and v-structures) score the same
    full = [k for k, A in enumerate(dags) if A.sum() == 3]
    assert np.ptp(logp[full]) < 1e-3
    post = np.exp(logp - logp.max())
    post /= post.sum()
    edge = np.einsum("k,kij->ij", post, np.array(dags, float))
    vstruct = next(k for k, A in enumerate(dags) if A[0, 2] and A[1, 2] and A.sum() == 2)
    assert np.argmax(post) == vstruct and post[vstruct] > 0.5
    assert edge[0, 2] > 0.9 and edge[1, 2] > 0.9


def test_bge_interventional_mask_drops_samples_of_the_intervened_node():
    x = _data(n=80)
    mask = np.zeros_like(x)
    mask[:30, 2] = 1  # node 2 clamped in the first 30 samples
    A = jnp.asarray([[0, 0, 1], [0, 0, 1], [0, 0, 0]], jnp.float32)
    masked = scores.bge_node_scores(A, scores.bge_stats(x, mask))
    full = scores.bge_node_scores(A, scores.bge_stats(x))
    subset = scores.bge_node_scores(A, scores.bge_stats(x[30:]))
    np.testing.assert_allclose(masked[:2], full[:2], rtol=1e-5)  # nodes 0, 1 use every sample
    np.testing.assert_allclose(masked[2], subset[2], rtol=1e-5)  # node 2 only the rest
    assert abs(float(masked[2] - full[2])) > 1.0


@pytest.mark.parametrize("intervened", [False, True])
def test_bounded_parent_bge_equals_the_full_score_and_normal_wishart(intervened):
    """d = 20: the full families (20 x 20, LAPACK) and families gathered on K = 5 padded
    parents (unrolled factorisation) give the same scores when no node has more than K
    parents, and both match the Normal-Wishart marginals computed by hand."""
    d = 20
    rng = np.random.default_rng(5)
    A = graph.random_er_dag(rng, d, 1.5)
    A[:, A.sum(0) > 5] = False  # in-degrees <= 5
    x = rng.normal(size=(150, d))
    for j in graph.topological_order(A):
        x[:, j] += x @ (A[:, j] * 0.8)
    mask = None
    if intervened:
        mask = np.zeros_like(x)
        mask[:40, [3, 7]] = 1
    st = scores.bge_stats(x, mask)
    G = jnp.asarray(A, jnp.float32)
    full = np.asarray(scores.bge_node_scores(G, st))
    bounded = np.asarray(scores.bge_node_scores(G, st, max_parents=5))
    np.testing.assert_allclose(bounded, full, rtol=1e-5, atol=1e-2)
    if not intervened:
        ref = [_marginal_nw(x, sorted([j, *graph.parents(A, j)]), 1.0, d + 2.0, d)
               - _marginal_nw(x, sorted(graph.parents(A, j)), 1.0, d + 2.0, d)
               for j in range(d)]
        np.testing.assert_allclose(full, ref, rtol=1e-4, atol=5e-2)
    # a node beyond the bound is scored on its first K parents only (callers give its
    # graph prior probability 0: priors.in_degree_bound_log_prior)
    dense = A.copy()
    dense[:6, 19] = True
    over = np.asarray(scores.bge_node_scores(jnp.asarray(dense, jnp.float32), st, 5))
    first5 = dense.copy()
    first5[5:, 19] = False
    ref5 = np.asarray(scores.bge_node_scores(jnp.asarray(first5, jnp.float32), st))
    assert over[19] == pytest.approx(ref5[19], rel=1e-5)


def test_first_parents_are_each_columns_lowest_indices_across_word_boundaries():
    """The bit-packed search against numpy at d = 70 (three 32-bit words per column):
    empty columns, columns with fewer than K parents and with more, parents on both sides
    of a word boundary."""
    d, K = 70, 6
    rng = np.random.default_rng(2)
    G = (rng.random((d, d)) < rng.random(d)[None, :] * 0.3).astype(np.float32)
    G[:, :2] = 0
    G[[31, 32, 63, 64, 69], 1] = 1
    found, index = (np.asarray(a) for a in scores.first_parents(jnp.asarray(G), K))
    for j in range(d):
        parents = np.flatnonzero(G[:, j])[:K]
        np.testing.assert_array_equal(found[:, j], np.arange(K) < len(parents))
        np.testing.assert_array_equal(index[: len(parents), j], parents)
    assert found[:, 0].sum() == 0 and list(index[:5, 1]) == [31, 32, 63, 64, 69]


def test_linear_and_mlp_likelihoods_against_direct_formulas():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 3)).astype(np.float32)
    G = np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]], np.float32)
    theta = {"w": rng.normal(size=(3, 3)).astype(np.float32),
             "log_sigma": np.array([0.1, -0.3, 0.2], np.float32)}
    keep = np.ones_like(x)
    keep[:5, 1] = 0
    got = scores.linear_node_log_lik(jnp.asarray(G), theta, jnp.asarray(x), jnp.asarray(keep))
    for j in range(3):
        mean = x @ (G[:, j] * theta["w"][:, j])
        lp = stats.norm(mean, np.exp(theta["log_sigma"][j])).logpdf(x[:, j])
        assert float(got[j]) == pytest.approx(float((lp * keep[:, j]).sum()), rel=1e-4)
    mlp = scores.init_mlp_theta(__import__("jax").random.key(0), 3, 4)
    got = scores.mlp_node_log_lik(jnp.asarray(G), mlp, jnp.asarray(x), jnp.asarray(keep))
    (W1, b1), (W2, b2) = (tuple(np.asarray(a) for a in layer) for layer in mlp["net"].layers)
    log_sigma = np.asarray(mlp["log_sigma"])
    for j in range(3):
        h = np.maximum((x * G[:, j]) @ W1[j] + b1[j], 0)
        mean = h @ W2[j][:, 0] + b2[j, 0]
        lp = stats.norm(mean, np.exp(log_sigma[j])).logpdf(x[:, j])
        assert float(got[j]) == pytest.approx(float((lp * keep[:, j]).sum()), rel=1e-4)


def test_heldout_log_lik_is_in_the_original_units():
    """A joint linear particle evaluated on scaled data plus the log-Jacobian equals the
    Gaussian density of the raw data under the same model mapped back to raw units."""
    from deepbn.io.tables import column_scales
    from deepbn.structure.dibs import DiBSConfig
    from deepbn.structure.posterior import GraphPosterior, heldout_log_liks

    rng = np.random.default_rng(0)
    x_train = rng.normal(size=(50, 2)) * [3.0, 0.5] + [1.0, -2.0]
    x_test = rng.normal(size=(20, 2)) * [3.0, 0.5] + [1.0, -2.0]
    G = np.array([[[0, 1], [0, 0]]], bool)
    theta = {"w": np.array([[[0.0, 0.7], [0.0, 0.0]]], np.float32),
             "log_sigma": np.array([[0.1, -0.4]], np.float32)}
    post = GraphPosterior(G, theta, np.zeros(1), np.ones(1), np.ones(1), np.zeros(1, bool))
    got = heldout_log_liks(post, x_test, DiBSConfig(model="linear"), "column", x_train)[0]
    mu, s = x_train.mean(0), column_scales(x_train, "column")
    # raw-unit model: x0 ~ N(mu0, (s0 e^0.1)^2); x1 ~ N(mu1 + s1*0.7*(x0-mu0)/s0, (s1 e^-0.4)^2)
    ref = stats.norm(mu[0], s[0] * np.exp(0.1)).logpdf(x_test[:, 0]).sum()
    ref += stats.norm(mu[1] + s[1] * 0.7 * (x_test[:, 0] - mu[0]) / s[0],
                      s[1] * np.exp(-0.4)).logpdf(x_test[:, 1]).sum()
    assert got == pytest.approx(ref, rel=1e-4)


def test_occam_factor_is_the_laplace_volume_of_a_parents_weight():
    # y = w x + noise, w ~ N(0, 1): the evidence log ∫ p(y | w) p(w) dw (by quadrature on a
    # fine grid) minus the peak max_w log p(y, w) is the parameter's log volume; the Occam
    # factor -½ log n must follow it up to a constant that does not grow with n
    rng = np.random.default_rng(0)
    sigma2, gaps = 0.3, []
    for n in (50, 2000):
        x = rng.normal(size=n)
        y = 0.7 * x + np.sqrt(sigma2) * rng.normal(size=n)
        w = np.linspace(-3.0, 4.0, 400_001)
        sse = y @ y - 2 * w * (x @ y) + w**2 * (x @ x)
        log_joint = (-0.5 * sse / sigma2 - 0.5 * n * np.log(2 * np.pi * sigma2)
                     + stats.norm.logpdf(w))
        evidence = np.logaddexp.reduce(log_joint) + np.log(w[1] - w[0])
        G = jnp.asarray([[0.0, 1.0], [0.0, 0.0]])
        occam = scores.occam_log_factor(G, jnp.ones((n, 2)))
        assert float(occam[0]) == 0.0  # no parents, no parameters
        gaps.append((evidence - log_joint.max()) - float(occam[1]))
    # the two volumes differ by ½ log(40) = 1.84 nats; the gap moves only with Σx²/n
    assert abs(gaps[0] - gaps[1]) < 0.2, gaps


def test_occam_factor_counts_each_parents_parameters_and_kept_samples():
    G = jnp.asarray([[0, 1, 1], [0, 0, 1], [0, 0, 0]], jnp.float32)
    keep = jnp.ones((40, 3)).at[:10, 2].set(0.0)  # node 2 intervened on in 10 samples
    parents = np.array([0.0, 1.0, 2.0])
    n = np.array([40.0, 40.0, 30.0])
    np.testing.assert_allclose(scores.occam_log_factor(G, keep),
                               -0.5 * parents * np.log(n), rtol=1e-6)
    np.testing.assert_allclose(scores.occam_log_factor(G, keep, per_parent=5),
                               -2.5 * parents * np.log(n), rtol=1e-6)
