import jax
import numpy as np
import pytest

from deepbn import examples
from deepbn.inference import diagnostics, hmc


def _exact_posterior(bn, observed):
    """Gaussian conditioning of the joint N(m, S) of an all-linear-Gaussian network."""
    m, S = bn.linear_gaussian_moments()
    offsets = np.cumsum([0] + list(bn.dims))
    idx = {n: np.arange(offsets[k], offsets[k + 1]) for k, n in enumerate(bn.names)}
    lat = np.concatenate([idx[n] for n in bn.names if n in bn.latent_names])
    obs = np.concatenate([idx[n] for n in bn.observed_names])
    x = np.concatenate([np.asarray(observed[n])[0] for n in bn.observed_names])
    K = S[np.ix_(lat, obs)] @ np.linalg.inv(S[np.ix_(obs, obs)])
    mean = m[lat] + K @ (x - m[obs])
    cov = S[np.ix_(lat, lat)] - K @ S[np.ix_(obs, lat)]
    return mean, cov


@pytest.mark.parametrize("form", ["centred", "auxiliary"])
def test_nuts_matches_the_closed_form_posterior(form):
    bn = examples.gaussian_hierarchy(groups=3, per_group=2, noise=0.7)
    x = bn.sample(jax.random.key(5), 1)
    observed = {n: x[n] for n in bn.observed_names}
    mean, cov = _exact_posterior(bn, observed)
    post = hmc.sample_posterior(bn, observed, form=form, chains=2, warmup=400, samples=1500,
                                seed=1)
    draws = np.concatenate([post.samples[n][:, :, 0, :] for n in post.space.names], axis=-1)
    flat = draws.reshape(-1, draws.shape[-1])
    ess = post.summary["ess_min"]
    assert ess > 300 and post.summary["rhat_max"] < 1.02
    se = np.sqrt(np.diag(cov) / ess)
    assert np.all(np.abs(flat.mean(0) - mean) < 4 * se)
    # sample covariance: relative error of a variance estimate is about sqrt(2 / ess)
    np.testing.assert_allclose(np.cov(flat.T), cov, atol=4 * np.sqrt(2 / ess) * np.max(cov))


def test_same_seed_same_draws_and_summary_fields():
    bn = examples.gaussian_hierarchy(groups=2, per_group=3)
    x = bn.sample(jax.random.key(0), 2)  # two independent cases
    observed = {n: x[n] for n in bn.observed_names}
    a = hmc.sample_posterior(bn, observed, form="auto", sampler="hmc", warmup=100, samples=50)
    b = hmc.sample_posterior(bn, observed, form="auto", sampler="hmc", warmup=100, samples=50)
    np.testing.assert_array_equal(a.samples["mu"], b.samples["mu"])
    assert a.samples["mu"].shape == (4, 50, 2, 1)  # 4 chains by default
    assert a.summary["form"] == {"mu": 1.0, "z1": 1.0, "z2": 1.0}
    assert a.summary["gradient_evaluations"] == 4 * 150 * 16  # chains x transitions x leapfrog
    for key in ("ess_min", "ess_median", "rhat_max", "divergences", "seconds",
                "compile_seconds", "ess_min_per_s"):
        assert key in a.summary


def test_diagnostics_flag_a_stuck_chain_and_count_iid_draws():
    rng = np.random.default_rng(0)
    iid = rng.normal(size=(2, 1000, 2))
    s = diagnostics.convergence(iid)
    assert 1500 < s["ess_min"] < 2600 and s["rhat_max"] < 1.01
    stuck = iid.copy()
    stuck[:, :, 1] = 3.0
    s = diagnostics.convergence(stuck)
    assert s["ess_min"] == 0 and s["rhat_max"] == np.inf
    # two chains in different places do not pass as converged
    apart = iid + np.array([0.0, 5.0])[:, None, None]
    assert diagnostics.convergence(apart)["rhat_max"] > 1.5
    ac = diagnostics.autocorrelation(np.cumsum(rng.normal(size=2000)))
    assert ac[0] == 1 and ac[10] > 0.8
