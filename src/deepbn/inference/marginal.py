"""Importance-sampled marginal likelihood log p(x) of held-out cases, in the auxiliary form.

In the auxiliary form every latent coordinate u has a fixed base prior (N(0, I)
for Gaussian latents) and x depends on u through the network, so

    p(x) = E_{u ~ q}[p(x, u) / q(u)]

for any proposal q that covers the posterior (Kingma & Welling, ICML 2014,
arXiv 1402.0480, Sec. 4 use q = the prior). Two proposals:

- ``prior``: u_s ~ p(u): the paper's estimator; unbiased in p(x) but needs many
  draws once the posterior is much narrower than the prior.
- ``gaussian`` (default): adaptive importance sampling (population Monte
  Carlo; Cappé et al., J. Comput. Graph. Stat. 2004). A prior pilot gives each
  case a Gaussian (self-normalised mean and per-coordinate variance, the
  variance doubled); ``rounds`` times, draws from the *defensive* mixture
  q_i = ½ p(u) + ½ N(m_i, diag(v_i)) (Hesterberg, Technometrics 1995) refit the
  Gaussian, and the last round's draws give the estimate. The prior half bounds
  every weight by 2 p(x | u) ≤ 2, so the estimator stays unbiased in p(x) with
  finite variance even where the fitted Gaussian misses a mode.

Either way the log of the mean weight is a (slightly downward-biased, by
Jensen) estimate of log p(x) that tends to it as the draws grow. Test images have
no E-step chains of their own, so the Gaussian is fitted to importance draws,
not to chains.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from deepbn.nn import normal_log_prob
    >>> log_joint = lambda u: normal_log_prob(u)   # p(x | u) = 1: log p(x) = 0
    >>> ll = importance_log_likelihood(log_joint, 3, 2, jax.random.key(0), 64, "prior")
    >>> [round(float(v), 4) for v in ll]   # every weight p(x | u) = 1
    [0.0, 0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from deepbn.bn import BayesNet
from deepbn.errors import UsageError, require_choice, require_count
from deepbn.nn import normal_log_prob
from deepbn.reparam import Reparam, values

PROPOSALS = ("gaussian", "prior")
MIN_VARIANCE = 1e-6  # a pilot whose weight sits on one draw still gives a usable Gaussian
INFLATION = 2.0  # the fitted covariance, widened: a proposal's tails must exceed the target's
DEFENSIVE = 0.2  # the prior's share of the mixture: every weight is at most 5 p(x | u)


def _map(f, xs, batch: int):
    """``jax.lax.map`` over the leading axis, ``batch`` draws at a time (vectorised)."""
    return jax.lax.map(f, xs, batch_size=min(batch, xs.shape[0]))


def importance_log_likelihood(log_joint: Callable[[jnp.ndarray], jnp.ndarray], n_cases: int,
                              size: int, key, n_samples: int, proposal: str = "gaussian",
                              rounds: int = 2, batch: int = 16) -> jnp.ndarray:
    """log p(x_i) per case (n_cases,) by importance sampling over u with prior N(0, I).

    ``log_joint(u)`` takes u (n_cases, size) and returns log p(x_i, u_i) (n_cases,);
    ``n_samples`` draws per case and stage (the ``gaussian`` proposal runs a pilot
    and ``rounds`` stages: (1 + rounds) x ``n_samples`` evaluations per case).
    """
    require_choice("proposal", proposal, PROPOSALS)
    require_count("the importance samples", n_samples)

    def log_weights(u, log_q):
        return _map(log_joint, u, batch) - log_q  # (S, cases)

    def estimate(lw):
        return jax.nn.logsumexp(lw, axis=0) - jnp.log(n_samples)

    k_pilot, key = jax.random.split(key)
    u = jax.random.normal(k_pilot, (n_samples, n_cases, size))
    lw = log_weights(u, normal_log_prob(u))
    if proposal == "prior":
        return estimate(lw)
    eye = jnp.eye(size)
    for k in jax.random.split(key, rounds):
        w = jax.nn.softmax(lw, axis=0)[..., None]  # self-normalised, (S, cases, 1)
        mean = jnp.sum(w * u, axis=0)
        d = u - mean
        cov = INFLATION * jnp.einsum("sci,scj->cij", w * d, d) + MIN_VARIANCE * eye
        chol = jnp.linalg.cholesky(cov)  # (cases, size, size)
        k_pick, k_prior, k_gauss = jax.random.split(k, 3)
        from_prior = jax.random.bernoulli(k_pick, DEFENSIVE, (n_samples, n_cases, 1))
        gauss = mean + jnp.einsum("cij,scj->sci", chol, jax.random.normal(k_gauss, u.shape))
        u = jnp.where(from_prior, jax.random.normal(k_prior, u.shape), gauss)
        # log N(u; mean, cov) through the Cholesky factor
        white = jax.scipy.linalg.solve_triangular(chol[None], (u - mean)[..., None],
                                                  lower=True)[..., 0]
        log_det = jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
        log_gauss = normal_log_prob(white) - log_det
        log_q = jnp.logaddexp(jnp.log(DEFENSIVE) + normal_log_prob(u),
                              jnp.log1p(-DEFENSIVE) + log_gauss)
        lw = log_weights(u, log_q)
    return estimate(lw)


def network_log_likelihood(bn: BayesNet, observed: Mapping[str, jnp.ndarray], key,
                           n_samples: int, proposal: str = "gaussian", rounds: int = 2,
                           batch: int = 16) -> np.ndarray:
    """log p(x_i) per case (float64 array) of a network whose latent nodes have a normal
    base (Gaussian families): importance sampling over the auxiliary coordinates u = ε,
    where the network's log-density in that form is ``log_joint``.
    """
    bases = {bn.conditionals[bn.index(n)].base for n in bn.latent_names}
    if bases - {"normal"}:
        raise UsageError("the importance-sampled likelihood needs latent nodes with a normal "
                         f"base (Gaussian families); this network has {', '.join(sorted(bases))}")
    require_choice("proposal", proposal, PROPOSALS)
    require_count("the importance samples", n_samples)
    observed = {n: jnp.asarray(observed[n], jnp.float32) for n in bn.observed_names}
    n_cases = int(next(iter(observed.values())).shape[0])
    reparam = Reparam.auxiliary(bn, n_cases, tie=False)
    return np.asarray(_network_ll(bn, reparam, observed, key, n_samples, proposal, rounds,
                                  batch), np.float64)


@eqx.filter_jit
def _network_ll(bn, reparam, observed, key, n_samples, proposal, rounds, batch):
    n_cases, size = reparam.weights.shape
    return importance_log_likelihood(lambda u: values(bn, reparam, u, observed)[1], n_cases,
                                     size, key, n_samples, proposal, rounds, batch)
