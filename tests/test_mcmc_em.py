import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from conftest import interrupt_after
from deepbn.bn import BayesNet
from deepbn.conditionals import LinearGaussian
from deepbn.errors import UsageError
from deepbn.inference import mcmc_em


def _factor_model(loadings, noise, bias=(0.0, 0.0, 0.0)):
    """z ~ N(0, 1) latent; x_i = loading_i z + bias_i + N(0, noise_i²), three observed."""
    conds = [LinearGaussian(jnp.zeros((1, 0)), jnp.zeros(1), jnp.ones(1))]
    for a, s, b in zip(loadings, noise, bias):
        conds.append(LinearGaussian(jnp.array([[a]], jnp.float32), jnp.array([b], jnp.float32),
                                    jnp.array([s], jnp.float32)))
    return BayesNet(["z", "x1", "x2", "x3"], [[], ["z"], ["z"], ["z"]], conds,
                    [False, True, True, True])


def _closed_form_mle(x):
    """One factor, three indicators: exactly identified, so the MLE reproduces the sample
    covariance S: λ_i² = S_ij S_ik / S_jk, ψ_i = S_ii - λ_i², μ = sample mean."""
    S = np.cov(x.T, bias=True)
    lam = np.array([np.sqrt(S[0, 1] * S[0, 2] / S[1, 2]), 0.0, 0.0])
    lam[1], lam[2] = S[0, 1] / lam[0], S[0, 2] / lam[0]
    return lam, np.sqrt(np.diag(S) - lam**2), x.mean(0)


def test_mcmc_em_reaches_the_closed_form_mle():
    truth = _factor_model([1.0, 0.8, -0.6], [0.5, 0.6, 0.4], [0.5, -1.0, 0.0])
    x = truth.sample(jax.random.key(0), 400)
    table = np.concatenate([np.asarray(x[n]) for n in ("x1", "x2", "x3")], axis=1)
    lam, psi, mu = _closed_form_mle(table)
    start = _factor_model([0.3, 0.3, 0.3], [1.0, 1.0, 1.0])
    data = {n: x[n] for n in ("x1", "x2", "x3")}
    cfg = mcmc_em.FitConfig(iterations=600, optimizer="adam", learning_rate=0.02)
    res = mcmc_em.fit(start, data, cfg, learn=["x1", "x2", "x3"])
    got = [res.network.conditionals[k] for k in (1, 2, 3)]
    w = np.array([float(c.weight[0, 0]) for c in got])
    w = w * np.sign(w[0])  # the factor's sign is not identified
    np.testing.assert_allclose(w, lam, atol=0.08)
    np.testing.assert_allclose([float(c.scale[0]) for c in got], psi, atol=0.08)
    np.testing.assert_allclose([float(c.bias[0]) for c in got], mu, atol=0.08)
    # the latent node was not to be learned
    assert float(res.network.conditionals[0].scale[0]) == 1.0
    assert res.curve[-1, 1] > res.curve[0, 1]
    assert 0.6 < res.acceptance < 0.95


def test_monte_carlo_marginal_likelihood_matches_the_gaussian_marginal():
    bn = _factor_model([1.0, 0.8, -0.6], [0.5, 0.6, 0.4])
    x = bn.sample(jax.random.key(1), 20)
    data = {n: x[n] for n in ("x1", "x2", "x3")}
    table = np.concatenate([np.asarray(x[n]) for n in ("x1", "x2", "x3")], axis=1)
    lam = np.array([1.0, 0.8, -0.6])
    exact = multivariate_normal(np.zeros(3), np.outer(lam, lam) + np.diag([0.25, 0.36, 0.16]))
    est = mcmc_em.log_marginal_likelihood(bn, data, jax.random.key(2), 4096)
    np.testing.assert_allclose(float(est), exact.logpdf(table).sum(), atol=0.5)


def test_vi_improves_the_fit_and_resume_continues(tmp_path):
    truth = _factor_model([1.0, 0.8, -0.6], [0.5, 0.6, 0.4])
    x = truth.sample(jax.random.key(3), 100)
    data = {n: x[n] for n in ("x1", "x2", "x3")}
    start = _factor_model([0.3, 0.3, 0.3], [1.0, 1.0, 1.0])
    cfg = mcmc_em.FitConfig(method="vi", iterations=100, optimizer="adam", learning_rate=0.05)
    full = mcmc_em.fit(start, data, cfg, learn=["x1", "x2", "x3"])
    assert full.curve[-1, 1] > full.curve[0, 1] + 20
    ck = tmp_path / "fit.npz"

    with pytest.raises(KeyboardInterrupt):
        mcmc_em.fit(start, data, cfg, learn=["x1", "x2", "x3"], checkpoint_path=ck,
                    progress=interrupt_after(50))
    resumed = mcmc_em.fit(start, data, cfg, learn=["x1", "x2", "x3"], checkpoint_path=ck)
    assert resumed.resumed_from == 50
    np.testing.assert_allclose(resumed.network.conditionals[1].weight,
                               full.network.conditionals[1].weight, rtol=1e-5)
    np.testing.assert_allclose(resumed.curve, full.curve, rtol=1e-5)
    # more iterations continue the same run (as more steps, epochs or draws do elsewhere)
    longer = mcmc_em.fit(start, data, cfg._replace(iterations=120), learn=["x1", "x2", "x3"],
                         checkpoint_path=ck)
    assert longer.resumed_from == 100 and longer.curve[-1, 0] == 120
    with pytest.raises(UsageError, match="more than the"):  # fewer: refused
        mcmc_em.fit(start, data, cfg._replace(iterations=60), learn=["x1", "x2", "x3"],
                    checkpoint_path=ck)
    with pytest.raises(UsageError):
        mcmc_em.fit(start, data, cfg._replace(method="nope"))
