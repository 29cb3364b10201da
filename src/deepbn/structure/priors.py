"""Graph priors log p(G), column by column.

Both priors factorise over the columns of the adjacency matrix (the parent
sets), which lets DiBS estimate its gradient one column at a time
(see :mod:`deepbn.structure.dibs`). Each function takes a (hard or soft)
adjacency matrix ``G`` with ``G[i, j]`` = edge i -> j and returns the
log-prior contribution of every column, shape ``(..., d)``.

- Erdős–Rényi: each of the d(d-1) possible directed edges is present with
  probability q = k / (d - 1), so the expected number of edges is k·d (the
  acyclicity prior then removes roughly half of the mass of 2-cycles).
- Scale-free: p(G) ∝ ∏_j (1 + |pa_j|)^-3, the power law of Barabási–Albert
  in-degrees (as in Lorch et al. 2021, App. C).
"""

from __future__ import annotations

import jax.numpy as jnp

from deepbn.structure.config import GRAPH_PRIORS as PRIORS  # noqa: F401


def er_column_log_prior(G: jnp.ndarray, edges_per_node: float) -> jnp.ndarray:
    """Σ_i [g_ij log q + (1 - g_ij) log(1 - q)] per column j (diagonal excluded)."""
    d = G.shape[-1]
    q = jnp.clip(edges_per_node / max(d - 1, 1), 1e-6, 1 - 1e-6)
    off = 1.0 - jnp.eye(d, dtype=G.dtype)
    edges = jnp.sum(G * off, axis=-2)
    return edges * jnp.log(q) + ((d - 1) - edges) * jnp.log1p(-q)


def sf_column_log_prior(G: jnp.ndarray, edges_per_node: float = 1.0) -> jnp.ndarray:
    """-3 log(1 + in-degree_j) per column j."""
    d = G.shape[-1]
    off = 1.0 - jnp.eye(d, dtype=G.dtype)
    return -3.0 * jnp.log1p(jnp.sum(G * off, axis=-2))


EXCESS_PARENT_LOG_PRIOR = -1.0e6
"""log p(G[:, j]) per parent beyond the bound: probability 0 in effect, yet finite, so that
among graph samples which all exceed the bound the one exceeding it least still weighs most
(and pulls the gradient towards fewer parents)."""


def in_degree_bound_log_prior(G: jnp.ndarray, max_parents: int) -> jnp.ndarray:
    """0 for a column with at most ``max_parents`` parents, else -10⁶ per parent beyond.

    Truncates any graph prior to in-degrees ≤ K (the bounded-parent BGe of
    :func:`deepbn.structure.scores.bge_node_scores` scores only such families).
    """
    d = G.shape[-1]
    off = 1.0 - jnp.eye(d, dtype=G.dtype)
    excess = jnp.maximum(jnp.sum(G * off, axis=-2) - max_parents, 0.0)
    return EXCESS_PARENT_LOG_PRIOR * excess


def column_log_prior(name: str):
    """The column log-prior function for ``er`` or ``sf``."""
    return {"er": er_column_log_prior, "sf": sf_column_log_prior}[name]
