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

from deepbn.bn import BayesNet
from deepbn.errors import CycleError, UsageError
from deepbn.graph import is_dag
from deepbn.io.tables import column_scales, scale_columns
from deepbn.structure import dibs, equivalence, metrics, scores
from deepbn.structure.network import network_from_graph


class GraphPosterior(NamedTuple):
    graphs: np.ndarray  # (P, d, d) hard DAG per particle
    theta: Any  # per-particle parameters (joint models) or None
    log_joint: np.ndarray  # (P,) unnormalised log p(G [, Θ], D)
    weights_empirical: np.ndarray  # (P,)
    weights_mixture: np.ndarray  # (P,)
    cyclic: np.ndarray  # (P,) bool
    # what turning a graph into a network needs (see :mod:`deepbn.structure.network`)
    names: tuple | None = None  # variable names, in column order
    model: str = "bge"
    x_scaled: np.ndarray | None = None  # (n, d) the data DiBS ran on
    keep: np.ndarray | None = None  # (n, d) 0 where a node was intervened on
    center: np.ndarray | None = None  # (d,) x = center + scale * x_scaled
    scale: np.ndarray | None = None
    # (P,) bool: a node has more parents than the bound (prior probability 0), or None
    beyond_max_parents: np.ndarray | None = None
    # (d, d) bool, symmetric: the pairs whose orientation the run's hard knowledge or
    # intervention targets fix (equivalence.fixed_pairs); None: the plain Markov classes
    fixed_pairs: np.ndarray | None = None
    # (d, d) Rao-Blackwellised edge marginals of a sampler that has them (order MCMC,
    # :mod:`deepbn.structure.order_mcmc`): then the graphs are its draws, equally weighted,
    # and edge_probs returns these, which are more precise than the draws' shares
    edge_marginals: np.ndarray | None = None

    def outside_prior(self) -> np.ndarray:
        """(P,) bool: graphs of prior probability 0, cyclic or beyond the parent bound; they
        get no DiBS+ weight."""
        if self.beyond_max_parents is None:
            return np.asarray(self.cyclic)
        return np.asarray(self.cyclic) | np.asarray(self.beyond_max_parents)

    def edge_probs(self, mixture: bool = True) -> np.ndarray:
        """P(i -> j): the weight of the graphs holding the edge (or the sampler's
        ``edge_marginals``)."""
        if self.edge_marginals is not None:
            return np.asarray(self.edge_marginals)
        w = self.weights_mixture if mixture else self.weights_empirical
        return _weighted_share(w, np.asarray(self.graphs, bool))

    def expected_shd(self, truth: np.ndarray, mixture: bool = True) -> float:
        """E[SHD(G, G*)] under the DiBS+ (``mixture``) or DiBS weights; from the
        ``edge_marginals`` when the sampler has them (exact given them, where its draws
        would only estimate it)."""
        if self.edge_marginals is not None:
            return metrics.expected_shd_from_edge_probs(self.edge_marginals, truth)
        w = self.weights_mixture if mixture else self.weights_empirical
        return metrics.expected_shd(self.graphs, w, truth)

    def adjacency_probs(self, mixture: bool = True) -> np.ndarray:
        """P(i and j adjacent), symmetric: the weight of the graphs with i -> j or j -> i."""
        if self.edge_marginals is not None:  # DAGs: the two directions exclude each other
            p = np.asarray(self.edge_marginals)
            return p + p.T
        w = self.weights_mixture if mixture else self.weights_empirical
        g = np.asarray(self.graphs, bool)
        return _weighted_share(w, g | np.swapaxes(g, 1, 2))

    def class_marks(self, mixture: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(compelled, reversible) edge probabilities over the particles' Markov equivalence
        classes (:func:`deepbn.structure.equivalence.class_marks`), restricted by the hard
        knowledge and the intervention targets (``fixed_pairs``): what the data, knowledge
        and interventions can orient and what they only make adjacent."""
        w = self.weights_mixture if mixture else self.weights_empirical
        return equivalence.class_marks(self.graphs, w, self.cyclic, self.fixed_pairs)

    def most_probable(self) -> int:
        """Index of the graph of highest log p(G [, Θ], D) among those of positive prior
        probability (any acyclic one if none is). Not the highest DiBS+ weight: a graph
        several particles found has its weight split among them."""
        outside = self.outside_prior()
        if outside.all():
            return int(np.argmax(~np.asarray(self.cyclic)))
        return int(np.argmax(np.where(outside, -np.inf, self.log_joint)))

    def network(self, k: int | None = None) -> BayesNet:
        """Particle ``k``'s graph (default: the most probable) as a network with fitted
        conditionals in the data's original units (:mod:`deepbn.structure.network`)."""
        if self.x_scaled is None:
            raise UsageError("this posterior holds no data; build it with learn_structure")
        if k is None:
            k = self.most_probable()
        if not 0 <= k < len(self.graphs):
            raise UsageError(f"particle {k} does not exist; there are {len(self.graphs)}")
        if self.cyclic[k]:
            raise CycleError(f"particle {k}'s graph is cyclic: no network; run more steps")
        theta = None if self.theta is None else jax.tree_util.tree_map(lambda a: a[k], self.theta)
        names = self.names or tuple(f"x{i}" for i in range(self.graphs.shape[1]))
        return network_from_graph(self.graphs[k], names, self.model, self.x_scaled, self.keep,
                                  self.center, self.scale, theta)


def _weighted_share(w: np.ndarray, indicators: np.ndarray) -> np.ndarray:
    """Σ_k w_k 1[k holds it], exactly 1 where every weighted graph holds it (a required
    edge), not a rounded sum of weights."""
    share = np.einsum("p,pij->ij", w, indicators)
    if not np.any(w > 0):
        return share
    return np.where(np.all(indicators[w > 0], axis=0), 1.0, share)


def _softmax_dags(log_joint: np.ndarray, outside: np.ndarray) -> np.ndarray:
    if np.all(outside):
        return np.full(len(log_joint), 1.0 / len(log_joint))
    masked = np.where(outside, -np.inf, log_joint)
    w = np.exp(masked - masked.max())
    return w / w.sum()


def mixture_weights(graphs: np.ndarray, log_joint: np.ndarray, outside: np.ndarray
                    ) -> np.ndarray:
    """DiBS+ weights over the *distinct* graphs, ∝ p(G, D), split among the particles holding one.

    A graph found by several particles must not count several times: the
    mixture approximates p(G | D) on the support the particles found.
    (Joint models keep one weight per particle: each holds its own Θ.) ``outside``
    marks graphs of prior probability 0 (cyclic, or beyond the parent bound): weight 0
    unless every graph is such.
    """
    _, first, inverse = np.unique(graphs.reshape(len(graphs), -1), axis=0, return_index=True,
                                  return_inverse=True)
    inverse = inverse.ravel()
    unique_w = _softmax_dags(log_joint[first], outside[first])
    counts = np.bincount(inverse, minlength=len(first))
    return unique_w[inverse] / counts[inverse]


def dibs_plus_weights(graphs: np.ndarray, log_joint: np.ndarray, outside: np.ndarray,
                      joint: bool) -> np.ndarray:
    """DiBS+ weights of a set of particles: :func:`mixture_weights` over the distinct graphs
    (marginal models), a softmax over the particles (``joint``: each holds its own Θ)."""
    return _softmax_dags(log_joint, outside) if joint else mixture_weights(graphs, log_joint,
                                                                           outside)


def from_particles(state: dibs.DiBSState, data: dibs.DiBSData,
                   cfg: dibs.DiBSConfig) -> GraphPosterior:
    """The posterior of DiBS's particles: hard graphs (α → ∞), their log-joints and the
    DiBS / DiBS+ weights.

    Cyclic particles keep their place in the empirical distribution (they are
    reported, never silently dropped) but get zero mixture weight, because
    p(G) is zero for a cyclic graph; so do graphs with a node of more than
    ``cfg.max_parents`` parents (the truncated prior). If every particle is such a
    graph, the mixture weights are uniform.
    """
    G, lj = _hard_graphs_and_log_joints(state.z, state.theta, data, cfg)
    G = np.asarray(G).astype(bool)
    lj = np.asarray(lj, np.float64)
    cyclic = np.array([not is_dag(g) for g in G])
    beyond = G.sum(axis=1).max(axis=1) > cfg.max_parents
    P = len(G)
    emp = np.full(P, 1.0 / P)
    mix = dibs_plus_weights(G, lj, cyclic | beyond, joint=state.theta is not None)
    theta = None if state.theta is None else jax.tree_util.tree_map(np.asarray, state.theta)
    return GraphPosterior(G, theta, lj, emp, mix, cyclic, beyond_max_parents=beyond)


@partial(jax.jit, static_argnums=(3,))
def _hard_graphs_and_log_joints(z, theta, data, cfg):
    G = dibs.hard_graphs(z, data)
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
