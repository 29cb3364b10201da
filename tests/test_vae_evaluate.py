import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from deepbn import nn
from deepbn.graph_vae import evaluate
from deepbn.graph_vae import model as L

TINY = dict(input_dim=4, nodes=1, node_dim=1, structure="none", encoder_hidden=(8,),
            node_hidden=4, decoder_hidden=(8,))


def _x(n, width, seed=0):
    return (jax.random.uniform(jax.random.key(seed), (n, width)) < 0.5).astype(jnp.float32)


def _exact_log_marginal(cfg, params, stats, x):
    """log ∫ N(z; 0, 1) p(x | z) dz by quadrature on a fine grid (one latent dimension)."""
    z = jnp.linspace(-12.0, 12.0, 24001)
    logits = nn.merge(params, stats)["decoder"](z[:, None])
    log_lik = jax.vmap(lambda xi: L.log_likelihood(cfg, logits, xi))(x)  # (n, grid)
    log_prior = -0.5 * z**2 - 0.5 * np.log(2 * np.pi)
    return jax.nn.logsumexp(log_lik + log_prior, axis=1) + jnp.log(z[1] - z[0])


def test_iwae_converges_to_the_exact_marginal_likelihood():
    cfg = L.GraphVAEConfig(**TINY)
    params, stats = L.init(jax.random.key(3), cfg)
    # a decoder that depends strongly on z, so the posterior is far from the prior
    params["decoder"] = eqx.tree_at(lambda m: m.layers[0][0], params["decoder"],
                                    params["decoder"].layers[0][0] * 4.0)
    x = _x(6, 4)
    exact = np.asarray(_exact_log_marginal(cfg, params, stats, x))
    l1 = evaluate.iwae_log_likelihood(cfg, params, stats, jax.random.key(0), x, k=1)
    l5000 = evaluate.iwae_log_likelihood(cfg, params, stats, jax.random.key(0), x, k=5000,
                                         chunk=500)
    np.testing.assert_allclose(l5000, exact, atol=0.03)
    assert np.mean(l5000) <= np.mean(exact) + 0.01  # a lower bound in expectation
    assert np.mean(l1) < np.mean(l5000) - 0.05


def test_iwae_is_at_least_the_elbo_and_grows_with_k():
    cfg = L.GraphVAEConfig(input_dim=12, nodes=3, node_dim=2, structure="chain",
                           encoder_hidden=(16,), node_hidden=8, decoder_hidden=(16,))
    params, stats = L.init(jax.random.key(0), cfg)
    x = _x(300, 12, seed=1)
    elbo = evaluate.elbo_terms(cfg, params, stats, jax.random.key(1), x)
    ks = [evaluate.iwae_log_likelihood(cfg, params, stats, jax.random.key(2), x, k=k,
                                       chunk=10).mean() for k in (10, 100)]
    assert elbo["elbo"] < ks[0] < ks[1]
    assert abs(elbo["elbo"] - (elbo["reconstruction"] - elbo["kl"])) < 1e-3
