"""The numbers and files of a structure-learning run: metrics against a truth or held-out
data, the particles as JSON, the edge-probability table."""

from __future__ import annotations

import numpy as np

from deepbn.structure import diagnostics, equivalence, metrics
from deepbn.structure.learn import StructureRun
from deepbn.structure.posterior import GraphPosterior, heldout_log_liks


def summarize(run: StructureRun, truth: np.ndarray | None = None,
              heldout: np.ndarray | None = None) -> dict:
    """n, d, settings, timings, cyclic particles, and E-SHD / AUROC (truth) and
    held-out negative log-likelihood (heldout), with DiBS+ and plain DiBS weights.

    With several runs also ``runs``, ``rhat_edges_max`` (the largest edge R-hat across
    runs, :mod:`deepbn.structure.diagnostics`), ``rhat_edges_max_edge`` ([cause, effect]
    names of that edge) and ``weights_ess_min`` / ``weights_ess_mean`` (Kish ESS of each run's DiBS+
    weights, over the runs); ``particles`` stays the number per run."""
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
        "max_parents": cfg.max_parents,
        # graphs with a node of more than max_parents parents: prior probability 0, so their
        # DiBS+ weight is 0 (their empirical weight is not)
        "particles_beyond_max_parents": int(np.sum(post.beyond_max_parents))
        if post.beyond_max_parents is not None else 0,
    }
    if run.runs > 1:
        summary.update(runs_summary(run))
    if truth is not None:
        summary["true_edges"] = int(truth.sum())
        for suffix, mixture in (("", True), ("_dibs", False)):
            summary["eshd" + suffix] = post.expected_shd(truth, mixture)
            summary["auroc" + suffix] = metrics.edge_auroc(post.edge_probs(mixture), truth)
        for suffix, mixture in (("", True), ("_dibs", False)):
            w = post.weights_mixture if mixture else post.weights_empirical
            summary["eshd_cpdag" + suffix] = equivalence.expected_shd_cpdag(
                post.graphs, w, truth, post.cyclic, post.fixed_pairs)
    if heldout is not None:
        ll = heldout_log_liks(post, heldout, cfg, run.scaling, run.x_reference)
        summary["neg_ll"] = metrics.neg_log_likelihood(ll, post.weights_mixture)
        summary["neg_ll_dibs"] = metrics.neg_log_likelihood(ll, post.weights_empirical)
        summary["heldout_n"] = int(heldout.shape[0])
    return summary


def runs_summary(run: StructureRun) -> dict:
    """``runs``, ``rhat_edges_max`` (+ ``_edge``), ``weights_ess_min`` / ``_mean`` of a run of
    several DiBS runs (:mod:`deepbn.structure.diagnostics`)."""
    post = run.posterior
    diag = diagnostics.run_diagnostics(post, run.runs)
    names = post.names or tuple(f"x{i}" for i in range(post.graphs.shape[1]))
    return {"runs": run.runs, "rhat_edges_max": diag.rhat_max(),
            "rhat_edges_max_edge": [names[i] for i in diag.worst_edge()],
            "weights_ess_min": float(diag.ess.min()), "weights_ess_mean": float(diag.ess.mean())}


def particles_json(run: StructureRun, names: list[str]) -> dict:
    """graphs.json: every particle's edges, weights, log-joint and cyclicity (and, with
    several runs, its run: 0 .. R-1). The weights are those of the pooled posterior."""
    post = run.posterior
    particles = [
        {
            "edges": [[names[i], names[j]] for i, j in zip(*np.nonzero(g))],
            "weight_dibs": float(we), "weight_dibs_plus": float(wm),
            "log_joint": float(lj), "cyclic": bool(c),
            **({"run": int(r)} if run.runs > 1 else {}),
        }
        for g, we, wm, lj, c, r in zip(post.graphs, post.weights_empirical,
                                       post.weights_mixture, post.log_joint, post.cyclic,
                                       run.particle_runs())
    ]
    return {"names": names, "model": run.config.model, "particles": particles}


def edge_probs_csv(probs: np.ndarray, names: list[str]) -> str:
    """The d x d edge-probability table with the names as header and index."""
    lines = ["," + ",".join(names)]
    lines += [n + "," + ",".join(f"{p:.6g}" for p in probs[i]) for i, n in enumerate(names)]
    return "\n".join(lines) + "\n"


EDGE_SUMMARY_COLUMNS = ("a", "b", "p_adjacent", "p_forward", "p_backward",
                        "p_direction_given_adjacent")


def edge_summary(post: GraphPosterior, mixture: bool = True) -> list[tuple]:
    """One row per unordered pair a < b (column order): (a, b, P(adjacent), P(a -> b),
    P(b -> a), P(a -> b | adjacent)), the last ``None`` when the pair is never adjacent."""
    probs = post.edge_probs(mixture)
    adjacent = post.adjacency_probs(mixture)
    d = probs.shape[0]
    rows = []
    for a in range(d):
        for b in range(a + 1, d):
            p_adj = float(adjacent[a, b])
            direction = float(probs[a, b]) / p_adj if p_adj > 0 else None
            rows.append((a, b, p_adj, float(probs[a, b]), float(probs[b, a]), direction))
    return rows


def edge_summary_csv(post: GraphPosterior, names: list[str]) -> str:
    """edge_summary.csv: the :func:`edge_summary` rows (DiBS+ weights) with variable names;
    an empty p_direction_given_adjacent where the pair is never adjacent."""
    lines = [",".join(EDGE_SUMMARY_COLUMNS)]
    for a, b, *numbers in edge_summary(post):
        cells = ["" if v is None else f"{v:.6g}" for v in numbers]
        lines.append(",".join([names[a], names[b], *cells]))
    return "\n".join(lines) + "\n"


def cpdag_csv(G: np.ndarray, names: list[str], fixed: np.ndarray | None = None) -> str:
    """cpdag.csv: the equivalence class of the DAG ``G`` as ``cause,effect,directed`` rows
    (directed 1: oriented so in every DAG of the class; 0: either way, listed once with the
    earlier column first); with ``fixed`` (:func:`deepbn.structure.equivalence.fixed_pairs`)
    the class of the DAGs that also agree with ``G`` on the pairs that hard knowledge or
    interventions orient."""
    rows = equivalence.edge_list(equivalence.cpdag(G, fixed), names)
    lines = [f"{a},{b},{int(kind == 'directed')}" for a, b, kind in rows]
    return "\n".join(["cause,effect,directed", *lines]) + "\n"


def order_mcmc_fields(res, names: list[str] | tuple | None) -> dict:
    """The summary fields of an order MCMC run (:class:`deepbn.structure.order_mcmc.
    OrderMCMCResult`): its size, timings, acceptance, edge R-hat and whether it met its
    target, and how its search space grew. With one chain the R-hat fields are ``None``."""
    d = res.edge_probs.shape[0]
    names = list(names) if names is not None else [f"x{i}" for i in range(d)]
    several = len(res.chain_edge_probs) > 1
    return {
        "order_mcmc_steps": int(res.steps), "order_mcmc_budget": int(res.budget),
        "order_mcmc_chains": int(res.chain_edge_probs.shape[0]),
        "order_mcmc_temperatures": int(res.temperatures),
        "order_mcmc_candidates": int(res.candidates.shape[1]),
        "order_mcmc_max_parents": int(res.max_parents.max()),
        "order_mcmc_draws": len(res.graphs),
        "order_mcmc_seconds": round(res.seconds, 3),
        "order_mcmc_compile_seconds": round(res.compile_seconds, 3),
        "order_mcmc_resumed_from": int(res.resumed_from),
        "order_mcmc_acceptance": res.acceptance,
        "order_mcmc_exchange_acceptance": (res.exchange_acceptance if res.temperatures > 1
                                           else None),
        "order_mcmc_rhat_max": res.rhat_max if several else None,
        "order_mcmc_rhat_max_edge": [names[i] for i in res.rhat_max_edge] if several else None,
        "order_mcmc_converged": res.converged,
        "order_mcmc_grow_rounds": int(res.grow_rounds),
        "order_mcmc_candidates_added": int(res.candidates_added),
    }


ORDER_MCMC_NULL_REASONS = {
    "order_mcmc_rhat_max": "one chain: an R-hat needs two",
    "order_mcmc_rhat_max_edge": "one chain: an R-hat needs two",
    "order_mcmc_exchange_acceptance": "one temperature: no exchanges",
    "order_mcmc_converged": "no R-hat target (or one chain)",
}
