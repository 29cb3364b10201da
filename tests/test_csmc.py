"""Particle Gibbs over a recurrent chain (deepbn.inference.csmc) against the Kalman smoother."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from blackjax.diagnostics import effective_sample_size, rhat

from conftest import interrupt_after
from deepbn import examples
from deepbn.bn import BayesNet
from deepbn.conditionals import LinearGaussian
from deepbn.errors import UsageError
from deepbn.inference import csmc, hmc

A = np.array([[0.9, 0.25], [-0.25, 0.9]], np.float32)  # a damped rotation
Q, C, R = 0.4, np.array([[1.0, 0.5]], np.float32), 0.5


def _linear_gaussian_ssm(T: int) -> BayesNet:
    """z_1 ~ N(0, I), z_{t+1} ~ N(A z_t, Q² I), x_t ~ N(C z_t, R²): a tied state-space model."""
    names, parents, conds, observed = [], [], [], []
    for t in range(1, T + 1):
        names.append(f"z{t}")
        parents.append([] if t == 1 else [f"z{t - 1}"])
        conds.append(LinearGaussian(jnp.zeros((2, 0)), jnp.zeros(2), jnp.ones(2)) if t == 1 else
                     LinearGaussian(jnp.asarray(A), jnp.zeros(2), jnp.full(2, Q, jnp.float32)))
        observed.append(False)
    for t in range(1, T + 1):
        names.append(f"x{t}")
        parents.append([f"z{t}"])
        conds.append(LinearGaussian(jnp.asarray(C), jnp.zeros(1), jnp.full(1, R, jnp.float32)))
        observed.append(True)
    ties = {n: "transition" for n in names[1:T]} | {n: "emission" for n in names[T:]}
    return BayesNet(names, parents, conds, observed, ties=ties)


def _simulate(T: int, rng) -> np.ndarray:
    """x_1..x_T of the model in numpy (ancestral, float64)."""
    z, xs = rng.normal(size=2), []
    for t in range(T):
        if t > 0:
            z = A @ z + Q * rng.normal(size=2)
        xs.append(float((C @ z)[0] + R * rng.normal()))
    return np.array(xs)


def _kalman_smoother(x: np.ndarray):
    """Rauch-Tung-Striebel smoother in float64: means (T, 2) and marginal variances (T, 2)."""
    T = len(x)
    m_f, P_f, m_p, P_p = [], [], [], []
    m, P = np.zeros(2), np.eye(2)  # the prior of z_1 as the first prediction
    for t in range(T):
        if t > 0:
            m, P = A @ m, A @ P @ A.T + Q**2 * np.eye(2)
        m_p.append(m)
        P_p.append(P)
        S = C @ P @ C.T + R**2
        K = P @ C.T / S
        m = m + (K * (x[t] - C @ m)).ravel()
        P = P - K @ C @ P
        m_f.append(m)
        P_f.append(P)
    means, variances = [m_f[-1]], [np.diag(P_f[-1])]
    m_s, P_s = m_f[-1], P_f[-1]
    for t in range(T - 2, -1, -1):
        G = P_f[t] @ A.T @ np.linalg.inv(P_p[t + 1])
        m_s = m_f[t] + G @ (m_s - m_p[t + 1])
        P_s = P_f[t] + G @ (P_s - P_p[t + 1]) @ G.T
        means.append(m_s)
        variances.append(np.diag(P_s))
    return np.array(means[::-1]), np.array(variances[::-1])


def _particle_gibbs_and_smoother(T: int, data_seed: int, **sampler):
    """Particle Gibbs (4 chains, 1000 draws) on simulated data and the exact answer:
    (the posterior, draws (chains, draws, T, 2), smoothed means, smoothed variances)."""
    bn = _linear_gaussian_ssm(T)
    x = _simulate(T, np.random.default_rng(data_seed))
    obs = {f"x{t + 1}": jnp.asarray([[x[t]]], jnp.float32) for t in range(T)}
    post = hmc.sample_posterior(bn, obs, form="particle", chains=4, samples=1000, **sampler)
    z = np.stack([post.samples[f"z{t}"][:, :, 0, :] for t in range(1, T + 1)], axis=2)
    return (post, z, *_kalman_smoother(x))


def _check_against_kalman(z, mean, var, rhat_q95=1.01):
    """Means and variances of every coordinate within Monte-Carlo error of the smoother's
    (the error from each coordinate's own ESS), and R-hat over all coordinates."""
    chains, draws, T, _ = z.shape
    flat = jnp.asarray(z.reshape(chains, draws, -1))
    ess = np.asarray(effective_sample_size(flat, 0, 1)).reshape(T, 2)
    pooled = z.reshape(chains * draws, T, 2)
    z_mean = (pooled.mean(0) - mean) / np.sqrt(var / ess)
    z_var = (pooled.var(0) / var - 1.0) / np.sqrt(2.0 / ess)
    # neighbouring states' errors are correlated, so the mean square has few degrees of
    # freedom: 2.5 allows for that and still fails a shifted or mis-scaled posterior
    assert np.max(np.abs(z_mean)) < 4.5 and np.mean(z_mean**2) < 2.5
    assert np.max(np.abs(z_var)) < 4.5 and abs(np.mean(pooled.var(0) / var) - 1.0) < 0.05
    r = np.asarray(rhat(flat, chain_axis=0, sample_axis=1))
    assert np.quantile(r, 0.95) < rhat_q95


def test_particle_gibbs_matches_the_kalman_smoother_at_T_100():
    """The whole chain in one conditional SMC (adaptive resampling, ancestor sampling)."""
    T = 100
    post, z, mean, var = _particle_gibbs_and_smoother(T, 3, warmup=50, seed=0, particles=32,
                                                      block=0)
    assert post.summary["scheme"]["name"] == "particle-gibbs"
    assert post.summary["scheme"]["block"] == 0
    assert post.summary["rhat_max"] < 1.03  # the worst of 200 coordinates
    _check_against_kalman(z, mean, var)


def test_blocked_particle_gibbs_matches_the_kalman_smoother():
    """Blocks of 8 states conditioned on their neighbours, two staggered partitions; T = 30
    is not a multiple of the block, so partial blocks at both ends are exercised."""
    T = 30
    post, z, mean, var = _particle_gibbs_and_smoother(T, 3, warmup=50, seed=1, particles=16,
                                                      block=8)
    assert post.summary["scheme"]["block"] == 8
    assert post.summary["scheme"]["sweeps_per_draw"] == 2
    _check_against_kalman(z, mean, var)


def test_block_layout_covers_every_state_and_every_neighbour_pair():
    for T, L in ((30, 8), (17, 4), (1000, 20), (9, 2)):
        halves = csmc.block_starts(T, L)
        cover = np.zeros(T, int)
        pairs = set()
        for h in halves:
            blocks = [range(max(s, 0), min(s + L, T)) for s in h]
            for a, b in zip(blocks, blocks[1:], strict=False):
                assert b.start - a.stop >= 1  # a fixed state between blocks drawn together
            for blk in blocks:
                cover[list(blk)] += 1
                pairs |= {(t, t + 1) for t in blk if t + 1 in blk}
        assert np.all(cover == 2)  # once per partition
        assert pairs == {(t, t + 1) for t in range(T - 1)}  # no pair is always split


def test_an_interrupted_blocked_run_resumes_to_the_uninterrupted_draws(tmp_path):
    bn = examples.kingma_dbn(T=7, dim=2)
    x = bn.sample(jax.random.key(0), 1)
    obs = {n: x[n] for n in bn.observed_names}
    kw = dict(form="particle", warmup=10, samples=20, chains=2, seed=3, chunk=10,
              particles=4, block=3)
    whole = hmc.sample_posterior(bn, obs, **kw)
    ck = tmp_path / "pg.npz"

    with pytest.raises(KeyboardInterrupt):
        hmc.sample_posterior(bn, obs, checkpoint_path=ck, progress=interrupt_after(20), **kw)
    resumed = hmc.sample_posterior(bn, obs, checkpoint_path=ck, **kw)
    assert resumed.summary["resumed_from"] == 10
    for name in whole.samples:
        np.testing.assert_array_equal(resumed.samples[name], whole.samples[name])
    with pytest.raises(UsageError, match="other data or settings"):
        hmc.sample_posterior(bn, obs, checkpoint_path=ck, **{**kw, "block": 2})


def test_chain_model_finds_state_space_networks_only():
    model = csmc.chain_model(examples.kingma_dbn(T=6, dim=2))
    assert model is not None and len(model.nodes) == 6 and None not in model.emissions
    assert csmc.chain_model(examples.kingma_dbn(T=6, dim=2, tie=False)).tied
    assert csmc.chain_model(examples.load("example:gaussian-hierarchy")) is None
    with pytest.raises(UsageError, match="state-space network"):
        hmc.choose_scheme(examples.load("example:gaussian-hierarchy"), "particle")


def test_auto_takes_particle_gibbs_for_long_chains_only():
    # kingma-dbn: NUTS in the auxiliary form mixes at T = 20, no HMC form does at T = 100
    assert hmc.choose_scheme(examples.kingma_dbn(T=20, dim=2), "auto") is None
    assert hmc.choose_scheme(examples.kingma_dbn(T=100, dim=2), "auto") is not None
    assert hmc.choose_scheme(examples.kingma_dbn(T=100, dim=2), "auto", sampler="hmc") is None
    assert hmc.choose_scheme(examples.kingma_dbn(T=100, dim=2), "centred") is None


def test_few_particles_still_leave_the_posterior_invariant():
    """Conditional SMC is exact for any number of particles (Andrieu et al. 2010, Thm 5)."""
    T = 4
    _, z, mean, var = _particle_gibbs_and_smoother(T, 1, warmup=20, seed=1, particles=3,
                                                   block=0)
    draws = z.reshape(-1, T, 2)
    se = np.sqrt(var / 1000.0)  # a conservative ESS: a quarter of the 4000 draws
    assert np.all(np.abs(draws.mean(0) - mean) < 4.5 * se)
    assert np.all(np.abs(draws.var(0) / var - 1.0) < 0.25)


def test_posterior_and_fit_cli_report_particle_gibbs(tmp_path, capsys):
    import json

    from deepbn.cli.app import main

    spec = "example:kingma-dbn?T=6&dim=2"  # auto's choice at 50 states: tested above
    data = tmp_path / "seq.csv"
    assert main(["sample", spec, "-n", "2", "-o", str(data), "--seed", "1"]) == 0
    out = tmp_path / "post"
    assert main(["posterior", spec, str(data), "--out", str(out), "--samples", "20",
                 "--particles", "8", "--form", "particle", "--json"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["warmup"] == 200  # particle Gibbs's burn-in, not NUTS's 1000 steps
    assert summary["scheme"] == {"name": "particle-gibbs", "form": "particle", "particles": 8,
                                 "chain": "z1..z6", "length": 6, "block": 0,
                                 "sweeps_per_draw": 1, "resample_below": 0.5}
    with np.load(out / "samples.npz") as f:
        assert f["z6"].shape == (4, 20, 2, 2)  # 4 chains by default
    fit = tmp_path / "fit"
    assert main(["fit", spec, str(data), "--out", str(fit), "--form", "particle",
                 "--particles", "8", "--iterations", "4", "--json"]) == 0
    assert json.loads((fit / "summary.json").read_text())["scheme"]["name"] == "particle-gibbs"
    hier = tmp_path / "h.csv"
    assert main(["sample", "example:gaussian-hierarchy", "-n", "1", "-o", str(hier)]) == 0
    capsys.readouterr()
    assert main(["posterior", "example:gaussian-hierarchy", str(hier), "--out",
                 str(tmp_path / "bad"), "--form", "particle"]) == 2
    assert "state-space network" in capsys.readouterr().err


def test_particle_defaults_are_filled_in_and_bad_ones_refused():
    from deepbn.inference.config import particle_settings

    assert particle_settings(1000) == (256, 0)  # the default: the whole chain, 256 particles
    assert particle_settings(1000, block=20) == (32, 20)
    assert particle_settings(10, block=20) == (256, 0)  # a block as long as the chain: whole
    assert particle_settings(1000, 64, 20) == (64, 20)
    for particles, block in ((1, None), (None, 1), (None, -3)):
        with pytest.raises(UsageError):
            particle_settings(1000, particles, block)


def test_warmup_defaults_to_each_schemes_own():
    from deepbn.inference.config import BURN_IN_SWEEPS, WARMUP, default_warmup

    assert (default_warmup(None, True), default_warmup(None, False)) == (BURN_IN_SWEEPS, WARMUP)
    assert default_warmup(7, True) == default_warmup(7, False) == 7
