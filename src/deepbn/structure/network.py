"""From one graph of a DiBS posterior to a :class:`~deepbn.bn.BayesNet` with fitted conditionals.

- **BGe** (marginal model): each node gets the linear-Gaussian conditional at the
  *posterior mean* of its parameters given the graph, in closed form under the
  BGe's normal-Wishart prior (Geiger & Heckerman 1994; Kuipers, Moffa &
  Heckerman 2014). With the posterior scale matrix R = T + S + (N α_μ / (N + α_μ))
  x̄ x̄ᵀ (prior mean ν = 0), the covariance Σ has the posterior IW(R, α_w + N);
  for the family (pa, j) the regression of x_j on x_pa is then

      E[β]  = R_pa,pa⁻¹ R_pa,j,
      E[σ²] = (R_jj − R_j,pa R_pa,pa⁻¹ R_pa,j) / (α_w + N − d + l − 1),   l = |pa|,

  (the family block Σ_FF is IW(R_FF, α_w + N − d + l + 1), and so is the 1 × 1
  Schur complement σ² = Σ_jj·pa, whose mean this is), and the intercept's posterior mean is
  μ̄_j − E[β]ᵀ μ̄_pa with μ̄ = N x̄ / (N + α_μ), because E[μ | Σ] = μ̄ does not
  depend on Σ. The conditional's scale is √E[σ²].
- **linear / mlp** (joint models): the particle's own parameters Θ_k, as a
  linear-Gaussian or an MLP-Gaussian (ReLU, one hidden layer) conditional.

Every conditional is mapped back from the standardised data DiBS ran on to
the data's original units: with x = m + c ⊙ x_s, a weight β_ij becomes
c_j β_ij / c_i, the intercept absorbs the column means and the noise scale
becomes c_j σ_j. Interventional rows (mask 1) are left out of their own node's
fit, as in the likelihood.

Example:
    >>> net = run.posterior.network()            # doctest: +SKIP
    >>> net.sample(jax.random.key(0), 1000)      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from deepbn.bn import BayesNet
from deepbn.conditionals import LinearGaussian, MLPGaussian
from deepbn.errors import UsageError
from deepbn.nn import MLP


def bge_posterior_mean(x: np.ndarray, keep: np.ndarray, parents: Sequence[int], j: int,
                       alpha_mu: float = 1.0, alpha_w: float | None = None
                       ) -> tuple[np.ndarray, float, float]:
    """(weights β, intercept b, noise variance σ²) of node ``j`` on ``parents`` (standardised data).

    Posterior means under the BGe normal-Wishart prior with ν = 0, α_μ, α_w
    (default d + 2) and T = t·I, t = α_μ (α_w − d − 1) / (α_μ + 1), as in
    :func:`deepbn.structure.scores.bge_stats`.
    """
    x = np.asarray(x, np.float64)
    n, d = x.shape
    alpha_w = float(d + 2 if alpha_w is None else alpha_w)
    t = alpha_mu * (alpha_w - d - 1) / (alpha_mu + 1)
    rows = np.asarray(keep[:, j], bool)
    xj = x[rows]
    N = len(xj)
    mean = xj.mean(0) if N else np.zeros(d)
    xc = xj - mean
    R = t * np.eye(d) + xc.T @ xc + (N * alpha_mu / (N + alpha_mu)) * np.outer(mean, mean)
    mu = N * mean / (N + alpha_mu)
    pa = list(parents)
    if pa:
        beta = np.linalg.solve(R[np.ix_(pa, pa)], R[pa, j])
        schur = R[j, j] - R[j, pa] @ beta
    else:
        beta = np.zeros(0)
        schur = R[j, j]
    variance = schur / (alpha_w + N - d + len(pa) - 1)
    return beta, float(mu[j] - beta @ mu[pa]), float(variance)


def network_from_graph(G: np.ndarray, names: Sequence[str], model: str, x_scaled: np.ndarray,
                       keep: np.ndarray, center: np.ndarray, scale: np.ndarray,
                       theta: dict | None = None) -> BayesNet:
    """The network of graph ``G`` (d, d) with conditionals fitted as the module docstring says.

    ``x_scaled`` is the data DiBS saw, ``x = center + scale * x_scaled`` the
    original; ``theta`` is one particle's parameters (joint models).
    """
    G = np.asarray(G, bool)
    d = G.shape[0]
    center = np.asarray(center, np.float64)
    scale = np.asarray(scale, np.float64)
    parents = [list(np.flatnonzero(G[:, j])) for j in range(d)]
    conditionals = []
    for j in range(d):
        pa = parents[j]
        if model == "bge":
            beta, b, var = bge_posterior_mean(x_scaled, keep, pa, j)
            sigma = np.sqrt(var)
        elif model == "linear":
            beta = np.asarray(theta["w"], np.float64)[pa, j]
            b, sigma = 0.0, float(np.exp(theta["log_sigma"][j]))
        elif model == "mlp":
            conditionals.append(_mlp_conditional(theta, j, pa, center, scale))
            continue
        else:
            raise UsageError(f"unknown model '{model}'; use one of bge, linear, mlp")
        w = scale[j] * np.asarray(beta) / scale[pa]
        bias = center[j] + scale[j] * b - w @ center[pa]
        conditionals.append(LinearGaussian(jnp.asarray(w[None, :], jnp.float32),
                                           jnp.asarray([bias], jnp.float32),
                                           jnp.asarray([scale[j] * sigma], jnp.float32)))
    return BayesNet(list(names), [[names[i] for i in pa] for pa in parents], conditionals,
                    source="learned network")


def _mlp_conditional(theta, j: int, pa: list[int], center, scale):
    """mean_j = w2 · relu(W1 (x_s,pa) + b1) + b2 in standardised units, as an MLP on x_pa."""
    (W1, b1), (W2, b2) = theta["net"].layers  # node j's MLP is row j of each stacked array
    W1 = np.asarray(W1[j], np.float64)[pa, :].T  # (hidden, |pa|)
    b1 = np.asarray(b1[j], np.float64)
    w2 = np.asarray(W2[j][:, 0], np.float64)
    b2 = float(b2[j, 0])
    sigma = float(np.exp(theta["log_sigma"][j]))
    if not pa:
        mean = center[j] + scale[j] * (w2 @ np.maximum(b1, 0.0) + b2)
        return LinearGaussian(jnp.zeros((1, 0)), jnp.asarray([mean], jnp.float32),
                              jnp.asarray([scale[j] * sigma], jnp.float32))
    W1_orig = W1 / scale[pa]
    b1_orig = b1 - W1_orig @ center[pa]
    layers = ((jnp.asarray(W1_orig.T, jnp.float32), jnp.asarray(b1_orig, jnp.float32)),
              (jnp.asarray(scale[j] * w2[:, None], jnp.float32),
               jnp.asarray([center[j] + scale[j] * b2], jnp.float32)))
    return MLPGaussian(MLP(layers, activation="relu"), jnp.asarray([scale[j] * sigma],
                                                                   jnp.float32), False)
