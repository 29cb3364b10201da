"""Test-set numbers for a trained latent-DAG VAE: IWAE log-likelihood, ELBO, KL.

The importance-weighted bound with k draws from the encoder (Burda, Grosse &
Salakhutdinov, ICLR 2016, Eq. 8),

    log p(x) >= L_k = E[log (1/k) Σ_i p(x, z_i) / q(z_i | x)],

is at least the ELBO (L_1) and grows with k; k = 5000 is the usual reporting
setting. Draws are processed in chunks with a running log-sum-exp, and the
examples in batches, so memory stays bounded whatever k is.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from deepbn.graph_vae import model
    >>> cfg = model.GraphVAEConfig(input_dim=6, nodes=2, node_dim=2, encoder_hidden=(8,),
    ...                            node_hidden=4, decoder_hidden=(8,))
    >>> params, fixed = model.init(jax.random.key(0), cfg)
    >>> ll = iwae_log_likelihood(cfg, params, fixed, jax.random.key(1), jnp.ones((3, 6)), k=10)
    >>> ll.shape
    (3,)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from deepbn.graph_vae import model


@partial(jax.jit, static_argnums=(0, 5, 6))
def _iwae_batch(cfg, params, fixed, key, x, chunks: int, chunk: int):
    def body(acc, k):
        w = model.importance_log_weights(cfg, params, fixed, k, x, chunk)
        return jnp.logaddexp(acc, jax.nn.logsumexp(w, axis=0)), None

    acc, _ = jax.lax.scan(body, jnp.full(x.shape[0], -jnp.inf), jax.random.split(key, chunks))
    return acc - jnp.log(chunks * chunk)


def iwae_log_likelihood(cfg: model.GraphVAEConfig, params, fixed, key, x, k: int = 5000,
                        chunk: int = 100, batch: int = 250,
                        progress: Callable[[int], None] | None = None) -> np.ndarray:
    """L_k per example of ``x`` (n, input_dim); ``k`` is rounded up to a multiple of ``chunk``."""
    chunk = max(1, min(chunk, k))
    chunks = -(-k // chunk)
    out = []
    for start in range(0, x.shape[0], batch):
        xb = jnp.asarray(x[start : start + batch], jnp.float32)
        out.append(np.asarray(_iwae_batch(cfg, params, fixed, jax.random.fold_in(key, start), xb,
                                          chunks, chunk)))
        if progress is not None:
            progress(min(start + batch, x.shape[0]))
    return np.concatenate(out)


@partial(jax.jit, static_argnums=(0,))
def _elbo_batch(cfg, params, fixed, key, x):
    out, _ = model.forward(cfg, params, fixed, key, x, 1.0, train=False, hard_gates=True)
    return out.elbo, out.kl, out.log_lik


def elbo_terms(cfg: model.GraphVAEConfig, params, fixed, key, x,
               batch: int = 1000) -> dict[str, float]:
    """Mean single-sample ELBO, KL and reconstruction log-likelihood (evaluation mode)."""
    parts = [_elbo_batch(cfg, params, fixed, jax.random.fold_in(key, s),
                         jnp.asarray(x[s : s + batch], jnp.float32))
             for s in range(0, x.shape[0], batch)]
    elbo, kl, rec = (np.concatenate([np.asarray(p[i]) for p in parts]) for i in range(3))
    return {"elbo": float(elbo.mean()), "kl": float(kl.mean()), "reconstruction": float(rec.mean())}
