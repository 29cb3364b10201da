"""The one driver: chunked scans, bit-identical resume, refusal of foreign checkpoints,
stop on non-finite values — for a toy method and for every method that runs through it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import interrupt_after, run_on_two_host_devices
from deepbn import examples, run
from deepbn.errors import UsageError
from deepbn.inference import hmc, mcmc_em
from deepbn.results import ResultsFolder, jsonable, release_locks


def _walk(key, state, data, config):
    """A random walk whose step size is data; blows up to inf after ``config`` steps."""
    x, t = state
    x = x + data * jax.random.normal(key, x.shape)
    x = jnp.where(t + 1 >= config, jnp.inf, x) if config else x
    return (x, t + 1), {"x": x, "t": t}


def test_chunking_never_changes_the_result_and_resume_is_bit_identical(tmp_path):
    state = (jnp.zeros(3), jnp.zeros((), jnp.int32))
    key = run.raw_key(7)
    whole = run.run(_walk, state, jnp.float32(0.5), key, 23, chunk=100)
    chunked = run.run(_walk, state, jnp.float32(0.5), key, 23, chunk=5)
    np.testing.assert_array_equal(whole.outputs["x"], chunked.outputs["x"])
    np.testing.assert_array_equal(chunked.outputs["t"], np.arange(23))
    ck = tmp_path / "c.npz"
    with pytest.raises(KeyboardInterrupt):
        run.run(_walk, state, jnp.float32(0.5), key, 23, chunk=5, checkpoint=ck,
                fingerprint="f", progress=interrupt_after(10))
    resumed = run.run(_walk, state, jnp.float32(0.5), key, 23, chunk=5, checkpoint=ck,
                      fingerprint="f")
    assert resumed.resumed_from == 10
    np.testing.assert_array_equal(resumed.outputs["x"], whole.outputs["x"])
    np.testing.assert_array_equal(resumed.state[0], whole.state[0])
    # more steps continue the same run
    longer = run.run(_walk, state, jnp.float32(0.5), key, 30, chunk=5, checkpoint=ck,
                     fingerprint="f")
    assert longer.resumed_from == 23
    np.testing.assert_array_equal(longer.outputs["x"],
                                  run.run(_walk, state, jnp.float32(0.5), key, 30).outputs["x"])
    with pytest.raises(UsageError, match="other data or settings"):
        run.run(_walk, state, jnp.float32(0.5), key, 30, checkpoint=ck, fingerprint="g")
    with pytest.raises(UsageError, match="more than"):
        run.run(_walk, state, jnp.float32(0.5), key, 20, checkpoint=ck, fingerprint="f")


def test_non_finite_values_stop_the_run_keeping_the_last_good_checkpoint(tmp_path):
    state = (jnp.zeros(2), jnp.zeros((), jnp.int32))
    ck = tmp_path / "c.npz"
    res = run.run(_walk, state, jnp.float32(1.0), run.raw_key(0), 40, config=12, chunk=5,
                  checkpoint=ck, fingerprint="f")
    assert res.stopped and "non-finite" in res.stopped
    assert res.steps == 10 and np.all(np.isfinite(res.state[0]))
    with np.load(ck) as f:
        assert int(__import__("json").loads(str(f["meta"]))["steps"]) == 10


def test_fingerprint_sees_data_bytes_and_settings():
    a = np.arange(6, dtype=np.float32)
    assert run.fingerprint(a, {"s": 1}) == run.fingerprint(a.copy(), {"s": 1})
    assert run.fingerprint(a, {"s": 1}) != run.fingerprint(a, {"s": 2})
    b = a.copy()
    b[3] += 1e-6
    assert run.fingerprint(a, {"s": 1}) != run.fingerprint(b, {"s": 1})


def test_nuts_resumes_bit_identically_after_an_interruption(tmp_path):
    bn = examples.load("example:gaussian-hierarchy")
    x = bn.sample(jax.random.key(0), 1)
    obs = {n: x[n] for n in bn.observed_names}
    kw = dict(warmup=120, samples=80, chains=2, seed=3, chunk=50)
    whole = hmc.sample_posterior(bn, obs, **kw)
    ck = tmp_path / "nuts.npz"

    with pytest.raises(KeyboardInterrupt):  # after warmup, in the middle of the draws
        hmc.sample_posterior(bn, obs, checkpoint_path=ck, progress=interrupt_after(150), **kw)
    resumed = hmc.sample_posterior(bn, obs, checkpoint_path=ck, **kw)
    assert resumed.summary["resumed_from"] == 30
    for name in whole.samples:
        np.testing.assert_array_equal(resumed.samples[name], whole.samples[name])
    np.testing.assert_array_equal(resumed.summary["step_size"], whole.summary["step_size"])
    # interrupted during warmup: the adaptation state is in the checkpoint too
    ck2 = tmp_path / "warm.npz"

    with pytest.raises(KeyboardInterrupt):
        hmc.sample_posterior(bn, obs, checkpoint_path=ck2, progress=interrupt_after(50), **kw)
    again = hmc.sample_posterior(bn, obs, checkpoint_path=ck2, **kw)
    np.testing.assert_array_equal(again.samples["mu"], whole.samples["mu"])
    with pytest.raises(UsageError, match="other data or settings"):
        hmc.sample_posterior(bn, obs, checkpoint_path=ck, **{**kw, "seed": 4})


def test_nuts_draws_follow_a_known_gaussian_posterior():
    """mu ~ N(0, 1), z_k ~ N(mu, 1), x_k ~ N(z_k, 0.1²): the posterior of mu is Gaussian."""
    bn = examples.gaussian_hierarchy(groups=3, per_group=2, noise=0.1)
    x = bn.sample(jax.random.key(5), 1)
    obs = {n: x[n] for n in bn.observed_names}
    post = hmc.sample_posterior(bn, obs, warmup=300, samples=600, chains=2, seed=0)
    # closed form: x_bar_k ~ N(mu, 1 + 0.1²/2) given mu, three groups, prior N(0, 1)
    xbar = np.array([float(np.mean(x[f"x{k + 1}"])) for k in range(3)])
    v = 1.0 + 0.01 / 2
    prec = 1.0 + 3 / v
    mean, sd = xbar.sum() / v / prec, prec ** -0.5
    draws = post.samples["mu"].ravel()
    ess = post.summary["ess_min"]
    assert abs(draws.mean() - mean) < 4 * sd / np.sqrt(ess)
    assert abs(draws.std() - sd) < 0.15 * sd


def test_em_refuses_a_foreign_checkpoint_and_stops_on_divergence(tmp_path):
    bn = examples.gaussian_hierarchy(groups=2, per_group=2)
    x = bn.sample(jax.random.key(0), 20)
    data = {n: x[n] for n in bn.observed_names}
    cfg = mcmc_em.FitConfig(iterations=25, optimizer="adam", learning_rate=0.05)
    ck = tmp_path / "fit.npz"
    mcmc_em.fit(bn, data, cfg, checkpoint_path=ck)
    with pytest.raises(UsageError, match="other data or settings"):
        mcmc_em.fit(bn, data, cfg._replace(learning_rate=0.01), checkpoint_path=ck)
    with pytest.raises(UsageError, match="non-finite"):
        mcmc_em.fit(bn, data, cfg._replace(optimizer="sgd", learning_rate=1e8),
                    checkpoint_path=tmp_path / "nan.npz")


def test_results_folder_writes_strict_json_and_refuses_a_file(tmp_path):
    folder = ResultsFolder(tmp_path / "r", "test")
    summary = folder.write_summary({"a": float("nan"), "b": np.float32(2.5), "c": [np.inf],
                                    "d": None, "e": None}, reasons={"d": "no truth", "b": "x"})
    assert summary == {"a": None, "b": 2.5, "c": [None], "d": None, "e": None,
                       "null_reasons": {"a": "not a finite number: nan", "d": "no truth"}}
    text = (tmp_path / "r" / "summary.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        ResultsFolder(tmp_path / "f", "test")
    assert jsonable({"k": (np.int64(3), True)}) == {"k": [3, True]}


def test_a_failed_command_leaves_no_folder_and_no_settings_behind(tmp_path):
    fresh = ResultsFolder(tmp_path / "new" / "run", "test")
    fresh.write_config({"steps": 5})
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "notes.txt").write_text("mine")
    kept = ResultsFolder(tmp_path / "old", "test")
    kept.write_config({"steps": 5})
    done = ResultsFolder(tmp_path / "done", "test")
    done.write_config({"steps": 5})
    done.checkpoint.write_bytes(b"state")
    release_locks(failed=True)
    assert not (tmp_path / "new" / "run").exists()
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == ["notes.txt"]
    assert (tmp_path / "done" / "config.json").exists()
    ok = ResultsFolder(tmp_path / "ok", "test")
    ok.write_config({"steps": 5})
    release_locks(failed=False)
    assert (tmp_path / "ok" / "config.json").exists()


def test_particles_and_chains_shard_across_two_devices_with_the_same_results():
    import textwrap

    code = textwrap.dedent("""
        import jax, numpy as np
        from deepbn import examples, run
        from deepbn.inference import hmc
        assert jax.device_count() == 2
        bn = examples.gaussian_hierarchy(groups=3, per_group=2)
        x = bn.sample(jax.random.key(0), 1)
        obs = {n: x[n] for n in bn.observed_names}
        # short: each device compiles its chains' arithmetic a little differently, and
        # MCMC amplifies float differences (1e-6 after 20 steps, O(1) after ~150)
        kw = dict(warmup=10, samples=8, chains=2, seed=1, chunk=6)
        a = hmc.sample_posterior(bn, obs, shard=True, **kw)
        placed = run.shard_batch({"chains": np.zeros((2, 3)), "other": np.zeros(3)}, 2)
        assert len(placed["chains"].sharding.device_set) == 2
        assert placed["other"].sharding.is_fully_replicated
        b = hmc.sample_posterior(bn, obs, shard=False, **kw)
        np.testing.assert_allclose(a.samples["mu"], b.samples["mu"], rtol=1e-4, atol=1e-5)
        # DiBS: the particle axis
        from deepbn.structure import dibs
        from deepbn.structure.learn import learn_structure, shard_particles
        x = np.random.default_rng(0).normal(size=(60, 4)); x[:, 1] += x[:, 0]
        cfg = dibs.DiBSConfig(n_particles=4)
        state = shard_particles(dibs.init(jax.random.key(0), 4, cfg.resolved(4)))
        assert len(state.z.sharding.device_set) == 2
        a = learn_structure(x, cfg, steps=30, shard=True)
        b = learn_structure(x, cfg, steps=30, shard=False)
        assert np.allclose(a.posterior.log_joint, b.posterior.log_joint, rtol=1e-4)
        # MCMC-EM: the cases' chains
        from deepbn.inference import mcmc_em as em
        bn = examples.gaussian_hierarchy(groups=2, per_group=2)
        x = bn.sample(jax.random.key(1), 8)
        obs = {n: x[n] for n in bn.observed_names}
        cfg = em.FitConfig(iterations=6, hmc_transitions=2)
        a = em.fit(bn, obs, cfg, seed=2, shard=True)
        b = em.fit(bn, obs, cfg, seed=2, shard=False)
        np.testing.assert_allclose(a.curve, b.curve, rtol=1e-4, atol=1e-4)
        # minibatch rows (Graph VAE): a batch of 8 rows split 4 + 4, batch norm included
        import optax
        from deepbn import train
        from deepbn.graph_vae import experiment
        from deepbn.graph_vae import model as latent_dag
        gcfg = latent_dag.GraphVAEConfig(input_dim=6, nodes=2, node_dim=2, encoder_hidden=(8,),
                                         node_hidden=4, decoder_hidden=(8,))
        params, fixed = latent_dag.init(jax.random.key(0), gcfg)
        rows = (np.random.default_rng(0).random((32, 6)) < 0.5).astype(np.float32)
        opt = optax.adam(1e-2)
        assert len(run.batch_sharding(8, "rows").device_set) == 2
        assert run.batch_sharding(7, "rows") is None  # uneven: not split
        out = []
        for shard in (True, False):
            epoch = train.make_epoch(experiment.loss_fn(gcfg), opt, 8, shard=shard)
            carry, metrics = epoch((params, fixed, opt.init(params)), rows, jax.random.key(3),
                                   {"temperature": np.float32(1.0)})
            out.append(np.asarray(metrics["elbo"]))
        np.testing.assert_allclose(out[0], out[1], rtol=1e-4, atol=1e-4)
        print("ok")
    """)
    run_on_two_host_devices(code)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_the_finite_check_sees_a_non_finite_value_in_any_float_leaf(bad):
    def tree(w=1.0, half=1.0, b=1.0):
        return {"w": jnp.ones((3, 4)).at[2, 1].set(w), "steps": jnp.arange(3),
                "half": jnp.ones(5, jnp.float16).at[4].set(half),
                "nested": (jnp.zeros(2), {"b": jnp.asarray(b, jnp.float32)})}

    check = jax.jit(run._all_finite)
    assert bool(check(tree()))
    for where in ("w", "half", "b"):
        assert not bool(check(tree(**{where: bad}))), where
    assert bool(run._all_finite({"steps": jnp.arange(3)}))  # no float leaf: nothing to check
