"""Metrics of a posterior over DAGs against a ground truth or held-out data.

- expected SHD: E_{p(G|D)}[SHD(G, G*)] (Lorch et al. 2021, Sec. 6), over weighted
  graphs or, for an exact posterior, from its edge marginals,
- AUROC of the edge marginals p(g_ij = 1 | D) against the true edges
  (scikit-learn's ``roc_auc_score`` over the off-diagonal entries),
- negative held-out log-likelihood -log Σ_k w_k p(D_test | G_k [, Θ_k]),
  summed over the held-out samples.
"""

from __future__ import annotations

import numpy as np

from deepbn.graph import shd


def expected_shd(graphs: np.ndarray, weights: np.ndarray, truth: np.ndarray) -> float:
    """Σ_k w_k SHD(G_k, G*)."""
    return float(sum(w * shd(g, truth) for g, w in zip(graphs, weights)))


def expected_shd_from_edge_probs(edge_probs: np.ndarray, truth: np.ndarray) -> float:
    """E[SHD(G, G*)] from the edge marginals of a distribution over DAGs alone.

    In a DAG the states of a pair {i, j} (absent, i -> j, j -> i) exclude each other,
    so their probabilities are p_ij, p_ji and 1 - p_ij - p_ji, and the SHD counts each
    pair whose state differs from the truth's: E-SHD = Σ_{i<j} (1 - P(true state)).
    """
    P = np.asarray(edge_probs, np.float64)
    A = np.asarray(truth, bool)
    i, j = np.triu_indices(len(A), 1)
    p_true = np.where(A[i, j], P[i, j], np.where(A[j, i], P[j, i], 1.0 - P[i, j] - P[j, i]))
    return float(np.sum(1.0 - p_true))


def edge_prob_gap(edge_probs: np.ndarray, reference: np.ndarray
                  ) -> tuple[float, float, tuple[int, int]]:
    """How far edge probabilities are from a reference (e.g. the exact posterior's): the
    largest |p_ij - r_ij|, the mean over the off-diagonal pairs, and the pair (i, j) of
    the largest."""
    diff = np.abs(np.asarray(edge_probs, np.float64) - np.asarray(reference, np.float64))
    np.fill_diagonal(diff, 0.0)
    d = len(diff)
    i, j = np.unravel_index(int(np.argmax(diff)), diff.shape)
    return float(diff[i, j]), float(diff.sum() / (d * (d - 1))), (int(i), int(j))


def edge_auroc(edge_probs: np.ndarray, truth: np.ndarray) -> float | None:
    """AUROC of edge marginals vs. true edges; ``None`` when undefined (no or all edges)."""
    off = ~np.eye(truth.shape[0], dtype=bool)
    labels = np.asarray(truth, bool)[off]
    if labels.all() or not labels.any():
        return None
    from sklearn.metrics import roc_auc_score  # scikit-learn takes seconds to import

    return float(roc_auc_score(labels, np.asarray(edge_probs)[off]))


def neg_log_likelihood(log_liks: np.ndarray, weights: np.ndarray) -> float:
    """-log Σ_k w_k exp(log p(D_test | particle k)); zero-weight particles drop out."""
    w = np.asarray(weights, np.float64)
    keep = w > 0
    from scipy.special import logsumexp

    return float(-logsumexp(np.asarray(log_liks, np.float64)[keep] + np.log(w[keep])))
