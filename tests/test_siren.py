import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepbn import examples, graph
from deepbn.bn import BayesNet
from deepbn.cli.app import main
from deepbn.conditionals import LinearGaussian
from deepbn.errors import UsageError
from deepbn.io.tables import write_table
from deepbn.siren import model as siren


def _circuit():
    return examples.load("example:arithmetic-circuit")


def test_prior_density_integrates_to_one():
    # two latents z0 -> z1 with one observed child: the prior flow is 2-d, integrate on a grid
    net = BayesNet(["a", "b", "x"], [[], ["a"], ["b"]],
                   [LinearGaussian(jnp.zeros((1, 0)), jnp.zeros(1), jnp.ones(1)),
                    LinearGaussian(jnp.ones((1, 1)), jnp.zeros(1), jnp.ones(1)),
                    LinearGaussian(jnp.ones((1, 1)), jnp.zeros(1), jnp.ones(1))],
                   [False, False, True])
    spec = siren.SirenSpec.from_network(net, ["a", "b"], "true")
    model = siren.init(jax.random.key(0), spec, blocks=3, hidden=(16,))
    g = jnp.linspace(-9.0, 9.0, 361)
    za, zb = jnp.meshgrid(g, g, indexing="ij")
    z = jnp.stack([za.ravel(), zb.ravel()], -1)
    dens = jnp.exp(siren.prior_log_prob(model, z)).reshape(za.shape)
    total = float(jnp.trapezoid(jnp.trapezoid(dens, g, axis=1), g))
    assert total == pytest.approx(1.0, abs=5e-3)


def test_decoder_and_encoder_follow_the_network_and_its_faithful_inverse():
    bn = _circuit()
    spec = siren.SirenSpec.from_network(bn, bn.latent_names, "true")
    model = siren.init(jax.random.key(1), spec, blocks=2, hidden=(16,))
    nz, nx = len(spec.latent), len(spec.observed)
    # decoder: x_j reads only its parents in the BN
    z0 = jax.random.normal(jax.random.key(2), (nz,))
    x0 = jax.random.normal(jax.random.key(3), (nx,))
    J = jax.jacfwd(lambda z: model.decoder.mean(jnp.concatenate([z, x0])))(z0)  # (nx, nz)
    A = bn.adjacency()
    for a, xn in enumerate(spec.observed):
        for b, zn in enumerate(spec.latent):
            parent = A[bn.index(zn), bn.index(xn)]
            assert (abs(float(J[a, b])) > 0) == bool(parent), (zn, xn)
    # encoder: z_j depends on x_k only if x_k is an ancestor of z_j in the inverse graph
    is_latent = np.array([n in spec.latent for n in bn.names])
    H = graph.faithful_inverse(A, ~is_latent)
    Jx = jax.jacfwd(lambda x: siren.encode_sample(model, jax.random.key(4), x[None])[0][0])(x0)
    for b, zn in enumerate(spec.latent):
        anc = graph.ancestors(H, bn.index(zn))
        for a, xn in enumerate(spec.observed):
            if bn.index(xn) not in anc:
                assert float(Jx[b, a]) == 0.0, (xn, zn)


def test_importance_estimate_is_at_least_the_elbo():
    bn = _circuit()
    spec = siren.SirenSpec.from_network(bn, bn.latent_names, "true")
    model = siren.init(jax.random.key(1), spec, blocks=2, hidden=(16,))
    x = jax.random.normal(jax.random.key(5), (64, 2))
    elbo = float(jnp.mean(jax.jit(lambda m: siren.elbo(m, jax.random.key(6), x, spec))(model)))
    ll = float(jnp.mean(jax.jit(lambda m: siren.importance_log_likelihood(
        m, jax.random.key(7), x, spec, 200))(model)))
    assert ll > elbo


@pytest.mark.parametrize("latent, message", [
    (["z0", "nope"], "not in the network"),
    (["z0", "z1", "z2", "z3", "z4", "z5", "x0", "x1"], "at least one latent and one observed"),
    ([], "at least one latent and one observed"),
])
def test_bad_latent_choices_are_refused(latent, message):
    with pytest.raises(UsageError, match=message):
        siren.SirenSpec.from_network(_circuit(), latent, "true")


def test_cli_train_writes_eval_and_refuses_bad_input(tmp_path, capsys):
    bn = _circuit()
    s = bn.sample(jax.random.key(0), 40)
    x = np.concatenate([np.asarray(s[n]) for n in ("x0", "x1")], axis=1)
    write_table(tmp_path / "d.csv", x, ["x0", "x1"])
    out = tmp_path / "run"
    args = ["siren", "train", "example:arithmetic-circuit", str(tmp_path / "d.csv"),
            "--latent", "z0,z1,z2,z3,z4,z5", "--variant", "true", "--epochs", "3",
            "--blocks", "2", "--iw", "20", "--out", str(out), "--json"]
    # without --latent: the nodes the example marks latent (z0..z5), as README's example runs it
    plain = [a for a in args if a not in ("--latent", "z0,z1,z2,z3,z4,z5")]
    plain[plain.index(str(out))] = str(tmp_path / "run-default")
    assert main(plain) == 0
    assert sorted(json.loads(capsys.readouterr().out)["latent"]) == ["z0", "z1", "z2", "z3", "z4",
                                                                    "z5"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "eval.json").read_text())
    assert {"nll", "re", "seconds"} <= set(saved) and np.isfinite(saved["nll"])
    assert saved["nll"] == summary["nll"]
    assert (out / "inverse_graph.png").exists() and (out / "training_curve.png").exists()
    bad = args.copy()
    bad[bad.index("--latent") + 1] = "z0,zz"
    assert main(bad) == 2
    assert "zz" in capsys.readouterr().err
    write_table(tmp_path / "e.csv", x, ["x0", "y"])
    bad = args.copy()
    bad[3] = str(tmp_path / "e.csv")
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert "x1" in err and "Traceback" not in err


def test_network_nll_is_the_closed_form_marginal():
    # a -> b with a latent: b ~ N(w mu_a + c, w^2 s_a^2 + s_b^2), worked by hand
    from scipy.stats import norm

    from deepbn.siren.experiment import network_nll
    net = BayesNet(["a", "b"], [[], ["a"]],
                   [LinearGaussian(jnp.zeros((1, 0)), jnp.array([1.5]), jnp.array([2.0])),
                    LinearGaussian(jnp.array([[-0.7]]), jnp.array([0.3]), jnp.array([0.5]))],
                   [False, True])
    b = np.array([[0.1], [-2.0], [3.3]])
    sd = np.sqrt(0.7**2 * 2.0**2 + 0.5**2)
    expected = -norm(-0.7 * 1.5 + 0.3, sd).logpdf(b[:, 0]).mean()
    assert network_nll(net, ["b"], b) == pytest.approx(expected, rel=1e-6)  # float32 parameters
    assert network_nll(_circuit(), ["x0", "x1"], np.zeros((2, 2))) is None


def test_cli_train_rows_per_node_heldout_rows_and_steps(tmp_path, capsys):
    from deepbn.siren.experiment import network_nll
    tree = examples.load("example:gaussian-binary-tree")
    spec = siren.SirenSpec.from_network(tree, [n for n in tree.names
                                               if tree.adjacency()[tree.index(n)].any()], "true")
    s = tree.sample(jax.random.key(0), 40)
    x = np.concatenate([np.asarray(s[n]) for n in spec.observed], axis=1)
    write_table(tmp_path / "d.csv", x, list(spec.observed))
    # 31 nodes x 1 = the first 31 rows train, the last 5 are held out; 31 // 8 = 3 steps
    # per epoch, so 7 steps take 3 epochs
    assert main(["siren", "train", "example:gaussian-binary-tree", str(tmp_path / "d.csv"),
                 "--train-per-node", "1", "--heldout-rows", "5", "--steps", "7", "--batch", "8",
                 "--blocks", "1", "--iw", "4", "--out", str(tmp_path / "o"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["n_train"], summary["n_test"], summary["epochs"]) == (31, 5, 3)
    assert summary["nll_network"] == pytest.approx(network_nll(tree, spec.observed, x[-5:]),
                                                   rel=1e-6)


def test_kl_weight_rises_linearly_to_one_over_the_warmup():
    from deepbn.siren.experiment import kl_weight
    assert [kl_weight(e, 10, 0.4) for e in range(10)] == [0.25, 0.5, 0.75] + [1.0] * 7
    assert [kl_weight(e, 5, 0.0) for e in range(5)] == [1.0] * 5
    assert kl_weight(0, 2000, 0.2) == pytest.approx(1 / 400)
    assert kl_weight(-1, 10, 0.4) == 0.0 and kl_weight(-1, 10, 0.0) == 1.0


def test_kl_weight_ramps_step_by_step_inside_the_epochs():
    """40 rows in minibatches of 10: 4 steps an epoch, warm-up over 3 of 6 epochs = 12
    steps, step s weighted (s + 1) / 12; an epoch's record is the mean over its steps."""
    from deepbn.siren.experiment import train
    bn = examples.load("example:arithmetic-circuit")
    s = bn.sample(jax.random.key(0), 48)
    x = np.concatenate([np.asarray(s[n]) for n in ("x0", "x1")], axis=1)
    for warmup, expected in ((0.5, [2.5 / 12, 6.5 / 12, 10.5 / 12, 1.0, 1.0, 1.0]),
                             (0.0, [1.0] * 6)):
        seen: list[float] = []
        train(bn, bn.latent_names, "true", x[:40], x[40:], epochs=6, batch=10, blocks=1,
              iw=4, warmup=warmup, on_epoch_end=lambda r, seen=seen: seen.append(r["kl_weight"]))
        np.testing.assert_allclose(seen, expected, rtol=1e-6)
