"""The numbers and files of a structure-learning run: metrics against a truth or held-out
data, the particles as JSON, the edge-probability table."""

from __future__ import annotations

import numpy as np

from deepbn.structure import metrics
from deepbn.structure.learn import StructureRun
from deepbn.structure.posterior import heldout_log_liks


def summarize(run: StructureRun, truth: np.ndarray | None = None,
              heldout: np.ndarray | None = None) -> dict:
    """n, d, settings, timings, cyclic particles, and E-SHD / AUROC (truth) and
    held-out negative log-likelihood (heldout), with DiBS+ and plain DiBS weights."""
    post, cfg = run.posterior, run.config
    n, d = run.x_reference.shape
    summary = {
        "n": n, "d": d, "model": cfg.model, "graph_prior": cfg.graph_prior,
        "edges_per_node": cfg.edges_per_node, "particles": cfg.n_particles,
        "steps": int(len(run.edges)), "scaling": run.scaling,
        "seconds": round(run.seconds, 3), "compile_seconds": round(run.compile_seconds, 3),
        "resumed_from_step": run.resumed_from,
        "cyclic_particles": int(post.cyclic.sum()),
        "mean_edges": float(post.graphs.sum(axis=(1, 2)).mean()),
    }
    if truth is not None:
        summary["true_edges"] = int(truth.sum())
        for suffix, mixture in (("", True), ("_dibs", False)):
            w = post.weights_mixture if mixture else post.weights_empirical
            summary["eshd" + suffix] = metrics.expected_shd(post.graphs, w, truth)
            summary["auroc" + suffix] = metrics.edge_auroc(post.edge_probs(mixture), truth)
    if heldout is not None:
        ll = heldout_log_liks(post, heldout, cfg, run.scaling, run.x_reference)
        summary["neg_ll"] = metrics.neg_log_likelihood(ll, post.weights_mixture)
        summary["neg_ll_dibs"] = metrics.neg_log_likelihood(ll, post.weights_empirical)
        summary["heldout_n"] = int(heldout.shape[0])
    return summary


def particles_json(run: StructureRun, names: list[str]) -> dict:
    """graphs.json: every particle's edges, weights, log-joint and cyclicity."""
    post = run.posterior
    particles = [
        {
            "edges": [[names[i], names[j]] for i, j in zip(*np.nonzero(g))],
            "weight_dibs": float(we), "weight_dibs_plus": float(wm),
            "log_joint": float(lj), "cyclic": bool(c),
        }
        for g, we, wm, lj, c in zip(post.graphs, post.weights_empirical, post.weights_mixture,
                                    post.log_joint, post.cyclic)
    ]
    return {"names": names, "model": run.config.model, "particles": particles}


def edge_probs_csv(probs: np.ndarray, names: list[str]) -> str:
    """The d x d edge-probability table with the names as header and index."""
    lines = ["," + ",".join(names)]
    lines += [n + "," + ",".join(f"{p:.6g}" for p in probs[i]) for i, n in enumerate(names)]
    return "\n".join(lines) + "\n"
