"""DiBS: SVGD over latent graph embeddings (Lorch et al., NeurIPS 2021).

Each particle holds Z = (U, V), U, V ∈ R^{d×k}; the graph model is
p(G | Z) = ∏_{i≠j} Bernoulli(g_ij; σ(α u_i·v_j)) (paper Eq. 7) and the
latent prior p(Z) ∝ exp(-β E_{p(G|Z)}[h(G)]) ∏ N(z; 0, σ_z²) (Eq. 8), with α
and β annealed linearly in the step count. SVGD (Liu & Wang 2016) moves the
particles (Z, or (Z, Θ) for joint models) along
φ(x_i) = 1/n Σ_j [k(x_j, x_i) ∇ log p(x_j | D) + ∇_{x_j} k(x_j, x_i)].

**Column-wise gradient estimator** (deepbn's own; the reference uses whole
graphs). Under p(G | Z) the columns of G (the parent sets) are independent,
and the graph prior and every likelihood here factorise over columns:
p(G) p(D | G) = ∏_j f_j(G[:, j]). Hence

    log E_{p(G|Z)}[p(G) p(D | G)] = Σ_j log E_{p(G[:,j]|Z)}[f_j(G[:, j])],

and each column gets its own self-normalised estimator from the same M graph
samples. With logits L = α U Vᵀ the score-function form (Eq. B.9) becomes

    ∂/∂L_ij ≈ Σ_m w_mj g^m_ij - (1/M) Σ_m g^m_ij,   w_mj = softmax_m(log f_j(g^m)),

i.e. a leave-nothing-out baseline (the sample mean of ∇ log p(G | Z), whose
expectation is zero) and d independent importance weightings instead of one
over the whole graph: far lower variance for the same M. The Gumbel-softmax
(reparameterisation) estimator of Eq. B.10 is available per column too.

**Prior knowledge** (:mod:`deepbn.structure.knowledge`) lives in the graph
model itself: p(g_ij = 1 | Z) is 1 for a required edge and 0 for a forbidden
one (:func:`with_knowledge`), so the sampled graphs, the Gumbel-softmax graphs,
the acyclicity penalty's graphs and the particles' hard graphs all hold it, and
those entries carry no gradient. Soft edge priors are one more column term of
log p(G).

:func:`init` / :func:`step` is the method; :func:`deepbn.run.run` scans the
steps in jitted chunks. Particles are vmapped, and sharded across devices when
several are present. :func:`init_runs` / :func:`step_runs` run R independent
particle sets at once (a leading run axis; SVGD never couples two runs), for the
across-run diagnostics of :mod:`deepbn.structure.diagnostics`.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepbn.graph import acyclicity_poly, has_cycle
from deepbn.structure import noise as graph_noise
from deepbn.structure import priors, scores
from deepbn.structure.config import MODELS, DiBSConfig  # noqa: F401  (defined apart: no JAX)
from deepbn.structure.knowledge import Knowledge


class DiBSData(NamedTuple):
    """The (standardised) data, what the likelihood needs of it, and the prior knowledge."""

    x: jnp.ndarray  # (n, d)
    keep: jnp.ndarray  # (n, d): 1 where node j was not intervened on in sample n
    bge: Any  # scores.BGeStats or None
    # prior knowledge (:mod:`deepbn.structure.knowledge`) as (d, d) arrays
    # (None: no hard / no soft knowledge)
    free: jnp.ndarray | None  # 1 where g_ij is left to the data (off-diagonal, neither fixed)
    required: jnp.ndarray | None  # 1 where g_ij = 1 is required
    prior_on: jnp.ndarray | None  # log p_ij where a soft edge prior has an opinion, else 0
    prior_off: jnp.ndarray | None  # log(1 - p_ij) there, else 0


class DiBSState(NamedTuple):
    z: jnp.ndarray  # (P, d, k, 2)
    theta: Any  # pytree with leading P, or None (marginal model)
    opt_state: Any
    step: jnp.ndarray  # int32 scalar, number of steps taken


def make_data(x, mask=None, config: DiBSConfig = DiBSConfig(),
              knowledge: Knowledge | None = None) -> DiBSData:
    """The arrays DiBS runs on; ``knowledge`` (:class:`Knowledge`, ``None``: none) is checked
    here too, with names x0, x1, ... (:func:`~deepbn.structure.learn.learn_structure` checks it
    first with the variables' names)."""
    x = jnp.asarray(x, jnp.float32)
    keep = jnp.ones_like(x) if mask is None else 1.0 - jnp.asarray(mask, jnp.float32)
    bge = scores.bge_stats(x, None if mask is None else mask) if config.model == "bge" else None
    knowledge = Knowledge.none(x.shape[1]) if knowledge is None else knowledge.check()
    on, off = knowledge.log_prior_terms()
    f32 = partial(jnp.asarray, dtype=jnp.float32)
    # None where there is no such knowledge: the traced program is then the plain one
    hard = bool(knowledge.required.any() or knowledge.forbidden.any())
    soft = bool(np.any(on) or np.any(off))
    return DiBSData(x, keep, bge, f32(knowledge.free()) if hard else None,
                    f32(knowledge.required) if hard else None, f32(on) if soft else None,
                    f32(off) if soft else None)


def _optimizer(cfg: DiBSConfig):
    return optax.rmsprop(cfg.step_size, decay=0.9, eps=1e-8)


def init(key, d: int, config: DiBSConfig) -> DiBSState:
    """Particles from the prior: Z ~ N(0, 1/k), Θ ~ its prior."""
    return _init(key, d, config.resolved(d))


@partial(jax.jit, static_argnums=(1, 2))
def _init(key, d: int, cfg: DiBSConfig) -> DiBSState:
    kz, kt = jax.random.split(key)
    k = cfg.latent_dim
    z = jax.random.normal(kz, (cfg.n_particles, d, k, 2)) / np.sqrt(k)
    theta = None
    if cfg.model != "bge":
        init_theta, _ = scores.JOINT_MODELS[cfg.model]
        keys = jax.random.split(kt, cfg.n_particles)
        if cfg.model == "mlp":
            theta = jax.vmap(lambda kk: init_theta(kk, d, cfg.hidden))(keys)
        else:
            theta = jax.vmap(lambda kk: init_theta(kk, d))(keys)
    params = (z, theta)
    return DiBSState(z, theta, _optimizer(cfg).init(params), jnp.zeros((), jnp.int32))


def _offdiag(d, dtype=jnp.float32):
    return 1.0 - jnp.eye(d, dtype=dtype)


def edge_logits(z, alpha):
    """α u_i·v_j with the diagonal left at 0 (masked wherever probabilities are used)."""
    return alpha * jnp.einsum("...ik,...jk->...ij", z[..., 0], z[..., 1])


def with_knowledge(G, data: DiBSData | None):
    """A (hard or soft) graph with the entries fixed by prior knowledge set: free entries
    kept, required ones 1, forbidden ones and the diagonal 0. Every graph of the model goes
    through it, so p(g_ij = 1 | Z) is σ(α u_i·v_j) on the free pairs and 1 or 0 on the others."""
    if data is None or data.free is None:
        return G * _offdiag(G.shape[-1], G.dtype)
    return G * data.free + data.required


def edge_probs(z, alpha, data: DiBSData | None = None):
    """p(g_ij = 1 | Z) = σ(α u_i·v_j), zero on the diagonal (and fixed by ``data``'s knowledge)."""
    return with_knowledge(jax.nn.sigmoid(edge_logits(z, alpha)), data)


def hard_graphs(z, data: DiBSData | None = None) -> jnp.ndarray:
    """The α → ∞ limit of p(G | Z): g_ij = 1[u_i·v_j > 0], no self-loops (and ``data``'s
    knowledge)."""
    return with_knowledge((edge_logits(z, 1.0) > 0).astype(jnp.float32), data)


def node_log_terms(G, theta, data: DiBSData, cfg: DiBSConfig) -> jnp.ndarray:
    """log f_j(G[:, j]) = log p(G[:, j]) + log p(x_j | x_pa_j [, θ]) per column, (d,).

    log p(G[:, j]) is the structural prior's column plus the soft edge prior's,
    Σ_i g_ij log p_ij + (1 - g_ij) log(1 - p_ij) over the pairs with an opinion
    (:mod:`deepbn.structure.knowledge`)."""
    prior = priors.column_log_prior(cfg.graph_prior)(G, cfg.edges_per_node)
    if cfg.max_parents is not None and cfg.max_parents < G.shape[-1] - 1:
        prior = prior + priors.in_degree_bound_log_prior(G, cfg.max_parents)
    if data.prior_on is not None:
        prior = prior + jnp.sum(G * data.prior_on + (1.0 - G) * data.prior_off, axis=-2)
    if cfg.model == "bge":
        return prior + scores.bge_node_scores(G, data.bge, cfg.max_parents)
    _, loglik = scores.JOINT_MODELS[cfg.model]
    if cfg.occam:
        prior = prior + scores.occam_log_factor(G, data.keep, cfg.occam_per_parent)
    return prior + loglik(G, theta, data.x, data.keep)


def log_joint(G, theta, data: DiBSData, cfg: DiBSConfig) -> jnp.ndarray:
    """Unnormalised log p(G [, Θ], D) of one hard graph: DiBS+ mixture weights."""
    lp = jnp.sum(node_log_terms(G, theta, data, cfg))
    if theta is not None:
        lp = lp + scores.theta_log_prior(theta, cfg.theta_prior_sigma)
    return lp


def column_score_grad(logits, u, log_terms, data: DiBSData | None = None):
    """Column-wise score-function estimate of ∂/∂L log E_{p(G|L)}[∏_j f_j(G[:, j])].

    ``u`` (M, d, d) is uniform on (0, 1): g^m_ij = 1[u^m_ij < p_ij] with p = σ(L) (and
    ``data``'s knowledge: p = 1 where required, 0 where forbidden and on the diagonal)
    is a draw from Bernoulli(p_ij), the same draw as 1[L_ij + ε > 0] with the logistic
    ε = :func:`~deepbn.structure.noise.logistic_of` (u). A comparison with p, computed once
    per particle, replaces two logarithms per graph entry: at d = 100 this made the
    estimator's machinery 6x cheaper (``bench/dibs_scale.py``). ``log_terms(G)`` returns
    log f_j for every column j, shape (d,). With per-column weights
    w_mj = softmax_m log f_j(g^m):
    ∂/∂L_ij ≈ Σ_m w_mj g^m_ij - (1/M) Σ_m g^m_ij (zero on the diagonal, and on the
    entries the knowledge fixes, which do not depend on L).
    Returns (gradient (d, d), the graphs (M, d, d), the weights (M, d)).
    """
    d = logits.shape[-1]
    free = _offdiag(d) if data is None or data.free is None else data.free
    G = (u < with_knowledge(jax.nn.sigmoid(logits), data)).astype(jnp.float32)
    terms = jax.vmap(log_terms)(G)  # (M, d)
    w = jax.lax.stop_gradient(jax.nn.softmax(terms, axis=0))
    # a sum over the leading axis (no transpose for a dot over m)
    grad = jnp.sum((w - 1.0 / G.shape[0])[:, None, :] * G, axis=0) * free
    return grad, G, w


def expected_acyclicity(z, noise, alpha, tau, data: DiBSData | None = None):
    """E_ε[h(G_soft)] over Gumbel-softmax graphs G_soft = σ(τ(ε + α u_i·v_j)) (``noise``:
    (S, d, d) standard logistic), with the entries the knowledge fixes held at 0 or 1."""
    Gs = with_knowledge(jax.nn.sigmoid(tau * (noise + edge_logits(z, alpha))), data)
    return jnp.mean(acyclicity_poly(Gs))


def _particle_grads(z, theta, key, t, data: DiBSData, cfg: DiBSConfig):
    """∇_Z log p(Z, [Θ,] D) and ∇_Θ for one particle (before SVGD's kernel)."""
    d, k = z.shape[0], z.shape[1]
    alpha = cfg.alpha_slope * t
    beta = cfg.beta_slope * t
    M = cfg.n_graph_samples
    # one set of uniforms serves the graph samples (hard: 1[u < σ(L)] = 1[L + ε > 0], or
    # Gumbel-softmax) and the acyclicity term, with ε = logit(1 - u) where a logistic
    # variable is needed: each estimate stays unbiased, and random bits are a large share
    # of a step's cost on CPU (hence the hash generator)
    u = graph_noise.uniform(key, (max(M, cfg.n_acyclicity_samples), d, d))

    if cfg.estimator == "score" or cfg.model == "bge":
        logits = edge_logits(z, alpha)
        grad_logits, G, w = column_score_grad(
            logits, u[:M], lambda g: node_log_terms(g, theta, data, cfg), data)
        gz_lik = jax.grad(lambda zz: jnp.sum(edge_logits(zz, alpha) * grad_logits))(z)
        gtheta = None
        if theta is not None:
            def weighted(th):
                terms = jax.vmap(lambda g: node_log_terms(g, th, data, cfg))(G)
                return jnp.sum(w * terms)

            gtheta = jax.grad(weighted)(theta)
    else:  # Gumbel-softmax reparameterisation, column-wise self-normalised
        eps = graph_noise.logistic_of(u[:M])

        def soft_terms(zz, th):
            Gs = with_knowledge(jax.nn.sigmoid(cfg.tau * (eps + edge_logits(zz, alpha))), data)
            return jax.vmap(lambda g: node_log_terms(g, th, data, cfg))(Gs)

        w = jax.lax.stop_gradient(jax.nn.softmax(soft_terms(z, theta), axis=0))
        gz_lik, gtheta = jax.grad(lambda zz, th: jnp.sum(w * soft_terms(zz, th)),
                                  argnums=(0, 1))(z, theta)

    if theta is not None:
        prior_grad = jax.grad(lambda th: scores.theta_log_prior(th, cfg.theta_prior_sigma))(theta)
        gtheta = jax.tree_util.tree_map(jnp.add, gtheta, prior_grad)

    # acyclicity prior: -β E_ε[h(G_soft(Z, ε))] by Gumbel-softmax samples
    eps_h = graph_noise.logistic_of(u[:cfg.n_acyclicity_samples])
    gz_acyc = -beta * jax.grad(expected_acyclicity)(z, eps_h, alpha, cfg.tau, data)
    gz_prior = -z * k  # N(0, 1/k) prior on every entry of Z
    return gz_lik + gz_acyc + gz_prior, gtheta


def _flat(tree, n):
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.concatenate([leaf.reshape(n, -1) for leaf in leaves], axis=1)


def _svgd_direction(x_flat, grads_flat, K, h):
    """φ_i = 1/n Σ_j [K_ji ∇_j + ∇_{x_j} K(x_j, x_i)] for an RBF block of bandwidth h."""
    n = x_flat.shape[0]
    drive = K.T @ grads_flat
    repulse = (-2.0 / h) * (K.T @ x_flat - x_flat * K.sum(0)[:, None])
    return (drive + repulse) / n


def _sqdist(a):
    sq = jnp.sum(a * a, axis=1)
    return jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * a @ a.T, 0.0)


def step(key, state: DiBSState, data: DiBSData, cfg: DiBSConfig) -> tuple[DiBSState, dict]:
    """One SVGD step for all particles (``cfg`` resolved); run it with :func:`deepbn.run.run`."""
    P = state.z.shape[0]
    t = (state.step + 1).astype(jnp.float32)
    keys = jax.random.split(key, P)
    gz, gtheta = jax.vmap(lambda z, th, kk: _particle_grads(z, th, kk, t, data, cfg),
                          in_axes=(0, 0 if state.theta is not None else None, 0))(
        state.z, state.theta, keys)

    z_flat = state.z.reshape(P, -1)
    K_z = jnp.exp(-_sqdist(z_flat) / cfg.h_latent)
    if state.theta is None:
        K = K_z
        phi_z = _svgd_direction(z_flat, gz.reshape(P, -1), K, cfg.h_latent)
        phi_theta = None
    else:
        th_flat = _flat(state.theta, P)
        K_t = jnp.exp(-_sqdist(th_flat) / cfg.h_theta)
        # product kernel k_z · k_θ: an RBF on the joint space, so each particle is driven
        # mainly by its own gradient (an additive kernel averages them when k_θ ≈ 1)
        K = K_z * K_t
        phi_z = _svgd_direction(z_flat, gz.reshape(P, -1), K, cfg.h_latent)
        phi_theta = jax.tree_util.tree_map(
            lambda leaf, g: _svgd_direction(leaf.reshape(P, -1), g.reshape(P, -1), K,
                                            cfg.h_theta).reshape(leaf.shape),
            state.theta, gtheta,
        )
    phi = (phi_z.reshape(state.z.shape), phi_theta)
    params = (state.z, state.theta)
    neg = jax.tree_util.tree_map(lambda p: -p, phi)
    updates, opt_state = _optimizer(cfg).update(neg, state.opt_state, params)
    z, theta = optax.apply_updates(params, updates)

    G = hard_graphs(z, data)
    info = {"edges": jnp.mean(jnp.sum(G, axis=(1, 2))), "cyclic": jnp.sum(has_cycle(G))}
    return DiBSState(z, theta, opt_state, state.step + 1), info


class RunsData(NamedTuple):
    """The data of R independent runs: the shared :class:`DiBSData` and each run's key."""

    data: DiBSData
    keys: jnp.ndarray  # (R, 2) raw keys: run r's step t draws from fold_in(keys[r], t)


def init_runs(init_keys, d: int, config: DiBSConfig) -> DiBSState:
    """R independent particle sets, one per key of ``init_keys``, stacked on a leading run
    axis (every leaf of the state, the step counter and optimiser included)."""
    states = [init(k, d, config) for k in init_keys]
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *states)


def step_runs(key, state: DiBSState, runs: RunsData, cfg: DiBSConfig) -> tuple[DiBSState, dict]:
    """One SVGD step of R independent runs: :func:`step` vmapped over the run axis, so the
    kernel of each run couples only that run's particles. Run r's step draws its randomness
    from ``fold_in(runs.keys[r], t)``, exactly as a single run with that key does under
    :func:`deepbn.run.run`; the driver's ``key`` is not used. The progress outputs pool the
    runs: mean edges per particle, cyclic particles in all."""
    del key

    def one(run_key, s):
        return step(jax.random.fold_in(run_key, s.step), s, runs.data, cfg)

    state, info = jax.vmap(one)(runs.keys, state)
    return state, {"edges": jnp.mean(info["edges"]), "cyclic": jnp.sum(info["cyclic"])}
