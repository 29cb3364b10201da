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


def _grid_log_likelihood(bn, x, half_width=6.0, points=401):
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


@pytest.mark.parametrize("proposal, samples, tol", [("prior", 20000, 0.1),
                                                     ("gaussian", 2000, 0.12)])
def test_the_importance_sampled_likelihood_matches_a_brute_force_integral(proposal, samples, tol):
    # 40 informative pixels: a posterior far narrower than the prior
    bn = kingma_mnist(hidden=8, pixels=40, seed=3)
    dec = bn.conditionals[1]
    bn = bn.replace_conditional("x", jax.tree_util.tree_map(lambda a: 2.5 * a, dec))
    x = np.asarray(bn.sample(jax.random.key(1), 4)["x"], np.float64)
    exact = _grid_log_likelihood(bn, x)
    est = network_log_likelihood(bn, {"x": jnp.asarray(x)}, jax.random.key(2), samples, proposal)
    assert np.all(np.isfinite(exact)) and exact.max() < -5.0
    np.testing.assert_allclose(est, exact, atol=tol)


def test_a_tiny_fit_on_images_writes_the_manifold_and_the_test_likelihood(tmp_path):
    import json
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    rng = np.random.default_rng(0)
    p = rng.random(784)
    np.savez(tmp_path / "digits.npz", **{k: (rng.random((n, 784)) < p).astype(np.uint8)
                                         for k, n in [("train", 20), ("valid", 2), ("test", 6)]})
    exe = shutil.which("deepbn") or str(Path(sys.executable).parent / "deepbn")
    out = tmp_path / "fit"
    proc = subprocess.run([exe, "fit", "example:kingma-mnist", str(tmp_path / "digits.npz"),
                           "--out", str(out), "--iterations", "4", "--hmc-transitions", "1",
                           "--integration-steps", "3", "--ll-samples", "20", "--learn", "x",
                           "--json"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    s = json.loads(proc.stdout)
    assert s["cases"] == 20 and s["test_cases"] == 6 and s["ll_samples"] == 20
    # 784 pixels of log-probability at most 0 each; a random decoder is far from 0
    assert -784 * 10 < s["test_log_lik"] < 0 and s["test_log_lik_se"] > 0
    assert s["log_lik_end"] > s["log_lik_start"]  # four Adagrad steps already help
    for name in ("manifold.png", "learning_curve.png", "network.json"):
        assert (out / name).stat().st_size > 0
