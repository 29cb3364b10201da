"""DiBS: the gradient estimator against exact enumeration, posterior against exact
enumeration, recovery of planted structures, determinism, particle sharding."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dag_enumeration import all_dags, all_graphs
from deepbn import examples
from deepbn.errors import UsageError
from deepbn.structure import dibs, scores
from deepbn.structure.dibs import DiBSConfig
from deepbn.structure.learn import learn_structure


@pytest.mark.parametrize("draw", ["threefry", "hash"])
def test_column_score_grad_matches_exact_gradient_by_enumeration(draw):
    """With JAX's uniforms and with the counter-hash uniforms DiBS steps use."""
    from deepbn.structure import noise

    uniform = {"threefry": jax.random.uniform, "hash": noise.uniform}[draw]
    d = 3
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(d, d)), jnp.float32) * (1 - jnp.eye(d))
    table = jnp.asarray(rng.normal(size=(d, 2**d)), jnp.float32)  # arbitrary log f_j(column)

    def log_terms(G):
        code = jnp.sum(G * (2 ** jnp.arange(d))[:, None], axis=0).astype(jnp.int32)
        return table[jnp.arange(d), code]

    graphs = jnp.asarray(np.array(list(all_graphs(d))), jnp.float32)

    def exact(L):  # log E_{p(G|L)}[∏ f_j], by summing over all 64 graphs
        off = 1 - jnp.eye(d)
        logp = jnp.sum(off * (graphs * jax.nn.log_sigmoid(L) +
                              (1 - graphs) * jax.nn.log_sigmoid(-L)), axis=(1, 2))
        return jax.scipy.special.logsumexp(logp + jax.vmap(lambda g: log_terms(g).sum())(graphs))

    ref = np.asarray(jax.grad(exact)(logits))
    keys = jax.random.split(jax.random.key(1), 200)
    grad = jax.jit(lambda k: dibs.column_score_grad(
        logits, uniform(k, (256, d, d)), log_terms)[0])
    est = np.mean([np.asarray(grad(k)) for k in keys], axis=0)
    np.testing.assert_allclose(est, ref, atol=0.01)


def _exact_edge_posterior(x, k_edges):
    st = scores.bge_stats(x)
    from deepbn.structure.priors import er_column_log_prior

    d = x.shape[1]
    dags, logp = [], []
    for A in all_dags(d):
        A = A.astype(np.float32)
        dags.append(A)
        logp.append(float(jnp.sum(scores.bge_node_scores(jnp.asarray(A), st)
                                  + er_column_log_prior(jnp.asarray(A), k_edges))))
    post = np.exp(np.array(logp) - max(logp))
    post /= post.sum()
    return np.einsum("k,kij->ij", post, np.array(dags))


def test_posterior_edge_marginals_match_exact_enumeration_on_3_nodes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3))
    x[:, 2] += 0.8 * x[:, 0] - 0.8 * x[:, 1]
    x = (x - x.mean(0)) / x.std(0)
    exact = _exact_edge_posterior(x, 1.0)
    run = learn_structure(x, DiBSConfig(n_particles=20), steps=400, scaling="none")
    got = run.posterior.edge_probs(mixture=True)
    assert np.abs(got - exact).max() < 0.15
    assert run.posterior.cyclic.sum() == 0


def _planted(seed=0, n=500, d=5):
    # v-structures 0 -> 2 <- 1 and 3 -> 4 <- 1, with 2 -> 3 forced by Meek's rule 1:
    # every edge is compelled, so its direction is identifiable from observational data
    # (a random DAG would leave some edges reversible and the AUROC at the mercy of chance)
    A = np.zeros((d, d), bool)
    A[0, 2] = A[1, 2] = A[2, 3] = A[3, 4] = A[1, 4] = True
    net = examples.linear_gaussian_network(A, seed=seed)
    x = net.to_table(net.sample(jax.random.key(seed), n))
    return A, np.asarray(x)


def test_recovers_a_planted_5_node_structure_bge():
    from deepbn.structure.metrics import edge_auroc

    # particles settle in local modes (DiBS's SVGD freezes once α is large), so one run can
    # be unlucky: over 30 runs (10 data sets x 3 seeds) the AUROC was 0.85 ± 0.08 (sd), so
    # the mean of three clears 0.7 unless the method is broken (a random graph gives 0.5)
    aurocs, cyclic = [], 0
    for seed in range(3):
        A, x = _planted(seed)
        # DiBS's seed apart from the data's: the same key for both correlated them
        run = learn_structure(x, DiBSConfig(n_particles=20, edges_per_node=1.5), steps=400,
                              seed=100 + seed)
        aurocs.append(edge_auroc(run.posterior.edge_probs(), A))
        cyclic += run.posterior.cyclic.sum()
        assert run.posterior.weights_mixture[run.posterior.cyclic].sum() == 0
    assert np.mean(aurocs) > 0.7, aurocs
    assert cyclic <= 3  # of 60 particles; a cyclic particle frozen at large α stays cyclic


def test_recovers_a_planted_5_node_structure_joint_linear():
    from deepbn.structure.metrics import edge_auroc

    aurocs = []
    for seed in range(3):
        A, x = _planted(seed)
        run = learn_structure(x, DiBSConfig(model="linear", n_particles=20, edges_per_node=1.5),
                              steps=400, seed=seed)
        aurocs.append(edge_auroc(run.posterior.edge_probs(mixture=False), A))
        assert run.posterior.cyclic.sum() == 0
    assert np.mean(aurocs) > 0.82, aurocs
    assert run.posterior.theta["w"].shape == (20, 5, 5)


def test_joint_mlp_runs_and_finds_a_nonlinear_dependency():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))  # x3: independent of the rest
    x[:, 1] = np.tanh(2 * x[:, 0]) + 0.1 * rng.normal(size=300)
    x[:, 2] = 0.1 * rng.normal(size=300) + x[:, 1] ** 2
    run = learn_structure(x, DiBSConfig(model="mlp", n_particles=6), steps=300)
    probs = run.posterior.edge_probs(mixture=False)
    adjacent = probs + probs.T
    # the tanh dependency is found in every seed tried (0-3 with the old and the new key
    # streams); the weaker quadratic x1 -> x2 only in about half of them, and the joint MLP
    # model adds spurious edges to x3 (up to 0.67) at this budget: see the structure issue
    assert adjacent[0, 1] > 0.8
    assert adjacent[0, 1] > adjacent[3, :3].max()
    # particles, nodes, inputs, hidden units
    assert run.posterior.theta["net"].layers[0][0].shape == (6, 4, 4, 5)


def test_same_seed_same_result_and_resume(tmp_path):
    _, x = _planted(n=100)
    cfg = DiBSConfig(n_particles=4)
    a = learn_structure(x, cfg, steps=60, seed=3, checkpoint_path=tmp_path / "c.npz")
    b = learn_structure(x, cfg, steps=60, seed=3)
    np.testing.assert_array_equal(a.posterior.log_joint, b.posterior.log_joint)
    np.testing.assert_array_equal(a.posterior.graphs, b.posterior.graphs)
    resumed = learn_structure(x, cfg, steps=60, seed=3, checkpoint_path=tmp_path / "c.npz")
    assert resumed.resumed_from == 60
    np.testing.assert_array_equal(resumed.posterior.graphs, a.posterior.graphs)
    with pytest.raises(UsageError, match="other data or settings"):
        learn_structure(x, cfg, steps=60, seed=4, checkpoint_path=tmp_path / "c.npz")


@pytest.mark.parametrize("model, init", [("linear", scores.init_linear_theta),
                                         ("mlp", scores.init_mlp_theta)])
def test_occam_factor_enters_the_joint_models_log_terms_by_default(model, init):
    """-(1/2) log n per parent by default (one parameter per parent, for both joint models);
    ``occam_per_parent`` scales it."""
    assert DiBSConfig(model=model).resolved(3).occam is True
    assert DiBSConfig(model="bge").resolved(3).occam is False
    x = np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32)
    G = jnp.asarray([[0, 1, 1], [0, 0, 1], [0, 0, 0]], jnp.float32)
    cfg = DiBSConfig(model=model).resolved(3)
    data = dibs.make_data(x, config=cfg)
    theta = init(jax.random.PRNGKey(0), 3)
    off = dibs.node_log_terms(G, theta, data, cfg._replace(occam=False))
    for p in (1.0, 2.5):
        gap = dibs.node_log_terms(G, theta, data, cfg._replace(occam_per_parent=p)) - off
        np.testing.assert_allclose(gap, -0.5 * p * np.log(30) * np.array([0, 1, 2]),
                                   rtol=1e-5, atol=1e-4)
