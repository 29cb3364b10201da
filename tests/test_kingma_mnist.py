"""Kingma's MNIST model: the example's shapes, the importance-sampled log p(x) against a
brute-force 2-D integral, and a tiny ``deepbn fit`` on images through the executable."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepbn.examples import kingma_mnist, load
from deepbn.inference.marginal import network_log_likelihood


def test_the_example_has_a_2d_gaussian_latent_and_a_784_pixel_bernoulli_decoder():
    bn = load("example:kingma-mnist")
    assert bn.names == ("z", "x") and bn.latent_names == ("z",) and bn.dims == (2, 784)
    x = bn.conditionals[1]
    assert x.family == "bernoulli" and [w.shape for w, _ in x.net.layers] == [(2, 200),
                                                                             (200, 784)]
    values = bn.sample(jax.random.key(0), 5)
    assert set(np.unique(np.asarray(values["x"]))) <= {0.0, 1.0}
    assert bn.log_joint(values).shape == (5,)


def _grid_log_likelihood(bn, x, half_width=6.0, points=1201):
    """log p(x) = log ∫ N(z; 0, I) p(x | z) dz on a fine 2-D grid, in float64."""
    (w1, b1), (w2, b2) = [(np.asarray(w, np.float64), np.asarray(b, np.float64))
                          for w, b in bn.conditionals[1].net.layers]
    g = np.linspace(-half_width, half_width, points)
    z = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    logits = np.tanh(z @ w1 + b1) @ w2 + b2  # (grid, pixels)
    softplus = np.logaddexp(0.0, logits).sum(1)
    log_lik = x @ logits.T - softplus  # (cases, grid): Σ x l - log(1 + e^l)
    log_prior = -0.5 * (z ** 2).sum(1) - np.log(2 * np.pi)
    cell = (g[1] - g[0]) ** 2
    a = log_lik + log_prior
    m = a.max(1, keepdims=True)
    return (m[:, 0] + np.log(np.exp(a - m).sum(1) * cell))


@pytest.mark.parametrize("proposal, samples, tol", [("prior", 4000, 0.08),
                                                     ("gaussian", 500, 0.03)])
def test_the_importance_sampled_likelihood_matches_a_brute_force_integral(proposal, samples, tol):
    # a sharp posterior (40 informative pixels): the prior needs 8x the draws for 3x the error
    bn = kingma_mnist(hidden=8, pixels=40, seed=3)
    dec = bn.conditionals[1]
    bn = bn.replace_conditional("x", jax.tree_util.tree_map(lambda a: 2.5 * a, dec))
    x = np.asarray(bn.sample(jax.random.key(1), 4)["x"], np.float64)
    exact = _grid_log_likelihood(bn, x)
    est = network_log_likelihood(bn, {"x": jnp.asarray(x)}, jax.random.key(2), samples, proposal)
    assert np.all(np.isfinite(exact)) and exact.max() < -5.0
    np.testing.assert_allclose(est, exact, atol=tol)
