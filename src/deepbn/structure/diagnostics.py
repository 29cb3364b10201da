"""Agreement of R independent DiBS runs: an R-hat per edge marginal, the ESS of the weights.

SVGD particles are not a Markov chain: within a run they are exchangeable and
carry no order, so there is nothing to split in halves and no autocorrelation.
What can disagree is the *runs*: R independent particle sets (own initialisation,
own random numbers) that should reach the same posterior. The diagnostic is
Gelman and Rubin's (1992) potential scale reduction applied to the edge
indicator g_ij, with each run's DiBS+ weights (Lorch et al. 2021, Sec. 4.3)
in place of a chain's draws:

    m_r   = Σ_k w_rk g^k_ij                       run r's edge marginal p_r(i -> j)
    n_r   = (Σ_k w_rk)² / Σ_k w_rk²               Kish's effective sample size of w_r
    m̃_r  = (n_r m_r + 1/2) / (n_r + 1)            (Krichevsky–Trofimov: a run of n_r
                                                    effective particles never claims
                                                    a variance of exactly 0)
    W     = 1/R Σ_r m̃_r (1 - m̃_r)                within-run (Bernoulli) variance
    B     = 1/(R-1) Σ_r (m_r - m̄)²,  m̄ = 1/R Σ_r m_r      between-run variance
    R̂_ij = sqrt((W + B) / W)

This is the long-chain form of Gelman–Rubin's pooled variance (W + B in place
of (n-1)/n W + B, since DiBS+ weights often sit on one graph, n_r ≈ 1, where the
finite-n form breaks down). R̂ = 1 exactly when the runs' marginals agree and
grows with their spread relative to the uncertainty within a run; 1.1 is the
usual threshold. Two runs certain of opposite answers with n_r = 1 give
sqrt(0.6875 / 0.1875) ≈ 1.91.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from deepbn.structure.posterior import GraphPosterior, _weighted_share, dibs_plus_weights

RHAT_WARN = 1.1  # above it the runs are reported as disagreeing


class RunDiagnostics(NamedTuple):
    rhat: np.ndarray  # (d, d) R-hat per edge marginal (1 on the diagonal)
    run_edge_probs: np.ndarray  # (R, d, d) each run's DiBS+ edge marginals
    ess: np.ndarray  # (R,) Kish ESS of each run's DiBS+ weights

    def worst_edge(self) -> tuple[int, int]:
        """(i, j) of the largest off-diagonal R-hat."""
        r = np.where(np.eye(len(self.rhat), dtype=bool), -np.inf, self.rhat)
        i, j = np.unravel_index(int(np.argmax(r)), r.shape)
        return int(i), int(j)

    def rhat_max(self) -> float:
        i, j = self.worst_edge()
        return float(self.rhat[i, j])


def kish_ess(w: np.ndarray) -> float:
    """(Σ w)² / Σ w²: between 1 (one particle holds all the weight) and the particle count."""
    w = np.asarray(w, np.float64)
    return float(w.sum() ** 2 / np.sum(w * w))


def edge_rhat(run_marginals: np.ndarray, ess: np.ndarray) -> np.ndarray:
    """R-hat per edge from the runs' marginals (R, d, d) and ESS (R,) (module doc formula)."""
    m = np.asarray(run_marginals, np.float64)
    n = np.asarray(ess, np.float64)[:, None, None]
    smoothed = (n * m + 0.5) / (n + 1.0)
    within = np.mean(smoothed * (1.0 - smoothed), axis=0)
    between = np.var(m, axis=0, ddof=1)
    return np.sqrt((within + between) / within)


def run_diagnostics(post: GraphPosterior, runs: int) -> RunDiagnostics:
    """The :func:`edge_rhat` of a posterior whose particles are ``runs`` equal blocks, run
    after run (:func:`deepbn.structure.learn.learn_structure` with ``runs``). Each run gets
    its own DiBS+ weights over its own particles."""
    if runs < 2:
        raise ValueError("run diagnostics need at least 2 runs")
    P = len(post.graphs) // runs
    marginals, ess = [], []
    for r in range(runs):
        part = slice(r * P, (r + 1) * P)
        g = np.asarray(post.graphs[part], bool)
        w = dibs_plus_weights(g, post.log_joint[part], post.outside_prior()[part],
                              joint=post.theta is not None)
        marginals.append(_weighted_share(w, g))
        ess.append(kish_ess(w))
    marginals, ess = np.stack(marginals), np.array(ess)
    return RunDiagnostics(edge_rhat(marginals, ess), marginals, ess)
