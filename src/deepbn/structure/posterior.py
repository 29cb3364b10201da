"""From SVGD particles to a posterior over DAGs: graphs, weights, edge marginals.

Two particle approximations (Lorch et al. 2021, Sec. 4.3): **DiBS**, the
empirical distribution of the particles' graphs, and **DiBS+**, the mixture
weighting each particle by its unnormalised posterior p(G [, Θ], D).
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from deepbn.data import column_scales, scale_columns
from deepbn.graph import is_dag
from deepbn.structure import dibs, scores


class GraphPosterior(NamedTuple):
    graphs: np.ndarray  # (P, d, d) hard DAG per particle
    theta: Any  # per-particle parameters (joint models) or None
    log_joint: np.ndarray  # (P,) unnormalised log p(G [, Θ], D)
    weights_empirical: np.ndarray  # (P,)
    weights_mixture: np.ndarray  # (P,)
    cyclic: np.ndarray  # (P,) bool

    def edge_probs(self, mixture: bool = True) -> np.ndarray:
        w = self.weights_mixture if mixture else self.weights_empirical
        return np.einsum("p,pij->ij", w, self.graphs)


def _softmax_dags(log_joint: np.ndarray, cyclic: np.ndarray) -> np.ndarray:
    if np.all(cyclic):
        return np.full(len(log_joint), 1.0 / len(log_joint))
    masked = np.where(cyclic, -np.inf, log_joint)
    w = np.exp(masked - masked.max())
    return w / w.sum()


def mixture_weights(graphs: np.ndarray, log_joint: np.ndarray, cyclic: np.ndarray) -> np.ndarray:
    """DiBS+ weights over the *distinct* graphs, ∝ p(G, D), split among the particles holding one.

    A graph found by several particles must not count several times: the
    mixture approximates p(G | D) on the support the particles found.
    (Joint models keep one weight per particle: each holds its own Θ.)
    """
    _, first, inverse = np.unique(graphs.reshape(len(graphs), -1), axis=0, return_index=True,
                                  return_inverse=True)
    inverse = inverse.ravel()
    unique_w = _softmax_dags(log_joint[first], cyclic[first])
    counts = np.bincount(inverse, minlength=len(first))
    return unique_w[inverse] / counts[inverse]


def summarize(state: dibs.DiBSState, data: dibs.DiBSData, cfg: dibs.DiBSConfig) -> GraphPosterior:
    """Hard graphs (α → ∞), their log-joints and the DiBS / DiBS+ weights.

    Cyclic particles keep their place in the empirical distribution (they are
    reported, never silently dropped) but get zero mixture weight, because
    p(G) is zero for a cyclic graph.
    """
    G, lj = _hard_graphs_and_log_joints(state.z, state.theta, data, cfg)
    G = np.asarray(G).astype(bool)
    lj = np.asarray(lj, np.float64)
    cyclic = np.array([not is_dag(g) for g in G])
    P = len(G)
    emp = np.full(P, 1.0 / P)
    mix = mixture_weights(G, lj, cyclic) if state.theta is None else _softmax_dags(lj, cyclic)
    theta = None if state.theta is None else jax.tree_util.tree_map(np.asarray, state.theta)
    return GraphPosterior(G, theta, lj, emp, mix, cyclic)


@partial(jax.jit, static_argnums=(3,))
def _hard_graphs_and_log_joints(z, theta, data, cfg):
    G = dibs.hard_graphs(z)
    lj = jax.vmap(lambda g, th: dibs.log_joint(g, th, data, cfg),
                  in_axes=(0, 0 if theta is not None else None))(G, theta)
    return G, lj


def heldout_log_liks(post: GraphPosterior, x_test, cfg: dibs.DiBSConfig, scaling: str = "none",
                     x_train=None) -> np.ndarray:
    """log p(D_test | G_k [, Θ_k]) for every particle k (BGe: marginal likelihood).

    ``x_test`` is in the data's original units; it is scaled like the training
    data ``x_train`` and the log-Jacobian of that scaling is added back, so the
    numbers are densities of the original data whatever the scaling.
    """
    x_test = np.asarray(x_test, np.float64)
    log_jacobian = 0.0
    if scaling != "none":
        x_test = scale_columns(x_test, scaling, reference=x_train)
        log_jacobian = -len(x_test) * float(np.sum(np.log(column_scales(x_train, scaling))))
    return _heldout_scaled(post, x_test, cfg) + log_jacobian


def _heldout_scaled(post: GraphPosterior, x_test, cfg: dibs.DiBSConfig) -> np.ndarray:
    x_test = jnp.asarray(x_test, jnp.float32)
    G = jnp.asarray(post.graphs, jnp.float32)
    if cfg.model == "bge":
        return np.asarray(_bge_graph_scores(G, scores.bge_stats(x_test)))
    theta = jax.tree_util.tree_map(jnp.asarray, post.theta)
    return np.asarray(_joint_graph_log_liks(G, theta, x_test, cfg.model))


@jax.jit
def _bge_graph_scores(G, stats):
    return jax.vmap(lambda g: jnp.sum(scores.bge_node_scores(g, stats)))(G)


@partial(jax.jit, static_argnums=(3,))
def _joint_graph_log_liks(G, theta, x, model: str):
    _, loglik = scores.JOINT_MODELS[model]
    keep = jnp.ones_like(x)
    return jax.vmap(lambda g, th: jnp.sum(loglik(g, th, x, keep)))(G, theta)
