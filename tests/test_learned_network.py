"""A learned network is a BayesNet: its conditionals, its units, and every command taking it."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import invwishart

from deepbn.bn import BayesNet
from deepbn.cli.app import main
from deepbn.conditionals import LinearGaussian
from deepbn.errors import UsageError
from deepbn.examples import linear_gaussian_network
from deepbn.inference import mcmc_em
from deepbn.io.networks import read_network
from deepbn.structure import scores
from deepbn.structure.dibs import DiBSConfig
from deepbn.structure.learn import learn_structure
from deepbn.structure.network import bge_posterior_mean


def _tree_data(n, seed=0):
    """a -> b -> c, a -> d, in units far from standard (offsets, scales)."""
    rng = np.random.default_rng(seed)
    a = 3.0 + 2.0 * rng.normal(size=n)
    b = 10.0 - 1.5 * a + 0.7 * rng.normal(size=n)
    c = 0.5 * b + 0.3 * rng.normal(size=n)
    d = -100.0 + 4.0 * a + 5.0 * rng.normal(size=n)
    return np.stack([a, b, c, d], axis=1)


def test_bge_posterior_mean_matches_monte_carlo_over_the_normal_wishart_posterior():
    """Closed-form E[β], E[σ²], E[b] against draws of Σ ~ IW(R, α_w + N), μ | Σ (few rows:
    the prior matters)."""
    rng = np.random.default_rng(1)
    x = _tree_data(8, seed=1)
    x = (x - x.mean(0)) / x.std(0) + rng.normal(size=x.shape) * 0.1 + 0.3
    n, d = x.shape
    keep = np.ones_like(x)
    beta, b, var = bge_posterior_mean(x, keep, [0, 3], 1)
    alpha_mu, alpha_w = 1.0, d + 2.0
    t = alpha_mu * (alpha_w - d - 1) / (alpha_mu + 1)
    mean = x.mean(0)
    R = t * np.eye(d) + (x - mean).T @ (x - mean) + (n * alpha_mu / (n + alpha_mu)) * np.outer(
        mean, mean)
    sigmas = invwishart(df=alpha_w + n, scale=R).rvs(size=200_000, random_state=2)
    mu_n = n * mean / (n + alpha_mu)
    pa = [0, 3]
    S_pp = sigmas[:, pa][:, :, pa]
    S_pj = sigmas[:, pa, 1]
    betas = np.linalg.solve(S_pp, S_pj[..., None])[..., 0]
    schur = sigmas[:, 1, 1] - np.einsum("si,si->s", S_pj, betas)
    # the mean of μ given Σ is μ_n whatever Σ: E[b] = μ_n,j - E[β]·μ_n,pa
    intercepts = mu_n[1] - betas @ mu_n[pa]
    se = betas.std(0) / np.sqrt(len(betas))
    np.testing.assert_allclose(beta, betas.mean(0), atol=5 * se.max())
    np.testing.assert_allclose(var, schur.mean(), rtol=0.02)
    np.testing.assert_allclose(b, intercepts.mean(), atol=5 * intercepts.std() / np.sqrt(2e5))


def test_bge_network_approaches_least_squares_with_many_rows():
    x = _tree_data(20_000)
    xs = (x - x.mean(0)) / x.std(0)
    beta, b, var = bge_posterior_mean(xs, np.ones_like(xs), [0], 3)
    design = np.stack([np.ones(len(xs)), xs[:, 0]], axis=1)
    coef, res, *_ = np.linalg.lstsq(design, xs[:, 3], rcond=None)
    np.testing.assert_allclose([b, beta[0]], coef, atol=2e-3)
    np.testing.assert_allclose(var, res[0] / len(xs), rtol=2e-3)


def test_learned_network_reproduces_the_data_correlations_and_units():
    x = _tree_data(1000)
    run = learn_structure(x, DiBSConfig(n_particles=10), steps=300, seed=0,
                          names=["a", "b", "c", "d"])
    net = run.posterior.network()
    assert net.names == ("a", "b", "c", "d")
    assert net.is_linear_gaussian() and set(net.observed_names) == set(net.names)
    mean, cov = net.linear_gaussian_moments()
    n = len(x)
    # the data's moments, within Monte-Carlo error of n rows
    np.testing.assert_allclose(mean, x.mean(0), atol=4 * np.sqrt(np.diag(cov) / n).max())
    corr_net = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    np.testing.assert_allclose(corr_net, np.corrcoef(x.T), atol=0.05)
    np.testing.assert_allclose(np.diag(cov), x.var(0), rtol=0.15)
    draws = net.to_table(net.sample(jax.random.key(1), 20_000))
    np.testing.assert_allclose(np.corrcoef(draws.T), np.corrcoef(x.T), atol=0.06)


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_joint_model_network_is_the_particle_in_original_units(model):
    """log p(x) of the network = the particle's likelihood of the scaled data - n Σ log c."""
    x = _tree_data(200)
    run = learn_structure(x, DiBSConfig(model=model, n_particles=4), steps=40, seed=0)
    post = run.posterior
    k = post.most_probable()
    net = post.network(k)
    theta = jax.tree_util.tree_map(lambda a: jnp.asarray(a[k]), post.theta)
    G = jnp.asarray(post.graphs[k], jnp.float32)
    _, loglik = scores.JOINT_MODELS[model]
    scaled = float(jnp.sum(loglik(G, theta, jnp.asarray(post.x_scaled), jnp.ones_like(G[:1]))))
    expected = scaled - len(x) * np.sum(np.log(post.scale))
    got = float(jnp.sum(net.log_joint(net.from_table(jnp.asarray(x, jnp.float32)))))
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    np.testing.assert_array_equal(net.adjacency(), post.graphs[k])


def test_with_latent_marks_exactly_those_nodes_and_refuses_bad_names():
    net = linear_gaussian_network(np.triu(np.ones((3, 3)), 1), names=["a", "b", "c"])
    hidden = net.with_latent(["b"])
    assert hidden.latent_names == ("b",) and hidden.observed_names == ("a", "c")
    with pytest.raises(UsageError, match="unknown node.*zz"):
        net.with_latent(["zz"])
    with pytest.raises(UsageError, match="every node"):
        net.with_latent(["a", "b", "c"])
    with pytest.raises(UsageError, match="no latent node"):
        net.with_latent([])


def test_fit_without_latent_nodes_is_maximum_likelihood():
    """x -> y linear-Gaussian: the ML fit equals least squares (closed form)."""
    rng = np.random.default_rng(0)
    xv = 1.0 + rng.normal(size=(400, 1))
    yv = 2.0 - 0.8 * xv + 0.5 * rng.normal(size=(400, 1))
    start = BayesNet(["x", "y"], [[], ["x"]],
                     [LinearGaussian(jnp.zeros((1, 0)), jnp.zeros(1), jnp.ones(1)),
                      LinearGaussian(jnp.zeros((1, 1)), jnp.zeros(1), jnp.ones(1))])
    cfg = mcmc_em.FitConfig(iterations=400, optimizer="adam", learning_rate=0.05)
    res = mcmc_em.fit(start, {"x": xv, "y": yv}, cfg)
    assert res.method == "ml" and "exact" in res.objective_name
    design = np.concatenate([np.ones_like(xv), xv], axis=1)
    coef, resid, *_ = np.linalg.lstsq(design, yv[:, 0], rcond=None)
    y_node = res.network.conditionals[1]
    np.testing.assert_allclose([float(y_node.bias[0]), float(y_node.weight[0, 0])], coef,
                               atol=0.02)
    np.testing.assert_allclose(float(y_node.scale[0]), np.sqrt(resid[0] / 400), atol=0.02)
    np.testing.assert_allclose(float(res.network.conditionals[0].bias[0]), xv.mean(), atol=0.02)
    # the curve is the exact log-likelihood
    final = float(jnp.sum(res.network.log_joint({"x": xv, "y": yv})))
    np.testing.assert_allclose(res.curve[-1, 1], final, rtol=1e-4)


def test_every_command_takes_a_learned_network(tmp_path, capsys):
    data = tmp_path / "data.csv"
    assert main(["sample", "example:gaussian-er10", "-n", "200", "-o", str(data)]) == 0
    disc = tmp_path / "disc"
    assert main(["discover", str(data), "--out", str(disc), "--sampler", "dibs", "--steps", "100",
                 "--particles", "6", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["network"] == "network.json"
    for name in ("config.json", "history.json", "summary.json", "checkpoint.npz"):
        assert (disc / name).exists()
    net_path = disc / "network.json"
    net = read_network(net_path)
    assert list(net.names) == [f"x{i}" for i in range(10)]
    resampled = tmp_path / "resampled.csv"
    assert main(["sample", str(net_path), "-n", "50", "-o", str(resampled)]) == 0
    fit = tmp_path / "fit"
    assert main(["fit", str(net_path), str(data), "--out", str(fit), "--iterations", "25",
                 "--json"]) == 0
    fitted = json.loads(capsys.readouterr().out)
    assert fitted["method"] == "ml" and fitted["log_lik_end"] >= fitted["log_lik_start"] - 1.0
    hidden = net.names[int(np.argmax(net.adjacency().sum(0) + net.adjacency().sum(1)))]
    post = tmp_path / "post"
    assert main(["posterior", str(net_path), str(data), "--latent", hidden, "--out", str(post),
                 "--warmup", "60", "--samples", "20", "--chains", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["form"]) == [hidden] and out["cases"] == 200
    fit_em = tmp_path / "fit-em"
    assert main(["fit", str(net_path), str(data), "--latent", hidden, "--out", str(fit_em),
                 "--iterations", "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["method"] == "mcmc-em"
    siren = tmp_path / "siren"
    assert main(["siren", "train", str(net_path), str(data), "--latent", hidden, "--out",
                 str(siren), "--epochs", "2", "--iw", "8", "--blocks", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["latent"] == [hidden]
    assert main(["posterior", str(net_path), str(data), "--latent", "nope",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "unknown node" in capsys.readouterr().err
