"""deepbn DiBS vs dibs-lib on the same data, in the same run (not a test).

Settings (issue: structure learning): ER DAGs with 20 nodes and 1 or 2 expected
edges per node; linear-Gaussian data (weights N(0, 1) with |w| >= 0.5, noise
variance 0.1: dibs-lib's own generative conventions) for BGe and the joint
linear model, and data from random ReLU MLPs (5 hidden units, the same noise)
for the MLP model; n = 100 training + 100 held-out samples; 20 particles;
seeds 0-2. Each run is its own process (peak RSS per run). dibs-lib runs in its
own venv (``bench/setup_dibslib.sh``). Metrics for both come from the same
functions (deepbn.structure.metrics) on each library's particles:
E-SHD and AUROC with DiBS+ mixture weights (and plain DiBS), held-out
negative log-likelihood with each library's own likelihood.

    bash bench/setup_dibslib.sh      # once: dibs-lib in bench/.venv-dibslib
    python bench/dibs_vs_dibslib.py --seeds 0 1 2 --steps 1000 --mlp-steps-dibslib 200

With ``--exact`` (BGe only, d <= 20), every data set also gets its exact posterior
edge probabilities (deepbn.structure.exact, an order-modular ER prior with the same k):
on the column-standardized data that deepbn scores and on the raw data that dibs-lib's
BGe scores, with the exact AUROC and E-SHD and each library's largest and mean
|P(i -> j) - P_exact(i -> j)| against the exact posterior of its own input:

    python bench/dibs_vs_dibslib.py --models bge --exact --out bench/dibs_vs_exact.json

Writes bench/dibs_vs_dibslib.json (updated after every run).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from deepbn import graph
from deepbn.structure import metrics

HERE = Path(__file__).resolve().parent


def make_data(seed: int, d: int, k: float, model: str, n: int = 100):
    rng = np.random.default_rng(1000 + seed)
    A = graph.random_er_dag(rng, d, k)
    order = graph.topological_order(A)
    if model == "mlp":
        W1 = rng.normal(size=(d, 5, d))
        w2 = rng.normal(size=(d, 5))

        def mean(x, j):
            h = np.maximum((x * A[:, j]) @ W1[j].T, 0.0)
            return h @ w2[j]
    else:
        W = rng.normal(size=(d, d))
        W = np.sign(W) * np.maximum(np.abs(W), 0.5) * A

        def mean(x, j):
            return x @ W[:, j]

    def sample(m):
        x = np.zeros((m, d))
        for j in order:
            x[:, j] = mean(x, j) + rng.normal(size=m) * np.sqrt(0.1)
        return x

    return A, sample(n), sample(n)


def run_child(python: str, script: str, data_path: str, spec: dict, timeout: float,
              env: dict | None = None):
    with tempfile.NamedTemporaryFile(suffix=".npz") as out:
        try:
            proc = subprocess.run([python, str(HERE / script), data_path, json.dumps(spec),
                                   out.name], capture_output=True, text=True, timeout=timeout,
                                  env=env)
        except subprocess.TimeoutExpired:
            return {"error": f"did not finish within {timeout:.0f} s"}
        if proc.returncode != 0:
            return {"error": proc.stderr.strip().splitlines()[-1][:300]}
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        res = np.load(out.name)
        info.update({k: res[k] for k in res.files})
        return info


def bge_heldout(graphs: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """log p(D_test | G) by BGe on the raw held-out data: one yardstick for both libraries."""
    import jax
    import jax.numpy as jnp

    from deepbn.structure.scores import bge_node_scores, bge_stats

    stats = bge_stats(x_test)
    G = jnp.asarray(graphs, jnp.float32)
    return np.asarray(jax.vmap(lambda g: jnp.sum(bge_node_scores(g, stats)))(G))


def exact_row(x: np.ndarray, k: float, A: np.ndarray) -> dict:
    """The exact BGe posterior of ``x`` as given: its metrics and edge probabilities."""
    import time

    from deepbn.structure.exact import exact_edge_probs

    start = time.perf_counter()
    P = exact_edge_probs(x, edges_per_node=k).edge_probs
    return {"seconds": round(time.perf_counter() - start, 1),
            "auroc": metrics.edge_auroc(P, A), "eshd": metrics.expected_shd_from_edge_probs(P, A),
            "mean_edges": float(P.sum()), "edge_probs": P}


def distance(scored: dict, exact: dict) -> dict:
    """The largest and mean |P(i -> j) - P_exact(i -> j)| of a scored row."""
    largest, mean, _ = metrics.edge_prob_gap(scored["edge_probs"], exact["edge_probs"])
    return {"max_abs_diff_exact": largest, "mean_abs_diff_exact": mean}


def public(row: dict) -> dict:
    """The row without its edge-probability matrices (kept out of the JSON)."""
    return {k: public(v) if isinstance(v, dict) else v for k, v in row.items()
            if k != "edge_probs"}


def score(res: dict, A: np.ndarray, model: str, x_test: np.ndarray) -> dict:
    G, w_mix, w_emp = res["graphs"].astype(bool), res["w_mix"], res["w_emp"]
    if model == "bge":
        res["heldout_ll"] = bge_heldout(G, x_test)
    cyclic = np.array([not graph.is_dag(g) for g in G])
    return {
        "seconds": round(float(res["seconds"]), 2),
        "peak_rss_mib": round(float(res["peak_rss_mib"]), 1),
        "eshd": metrics.expected_shd(G, w_mix, A),
        "auroc": metrics.edge_auroc(np.einsum("p,pij->ij", w_mix, G), A),
        "eshd_dibs": metrics.expected_shd(G, w_emp, A),
        "auroc_dibs": metrics.edge_auroc(np.einsum("p,pij->ij", w_emp, G), A),
        "neg_ll": metrics.neg_log_likelihood(res["heldout_ll"], w_mix),
        "cyclic_particles": int(cyclic.sum()),
        "mean_edges": float(G.sum(axis=(1, 2)).mean()),
        "edge_probs": np.einsum("p,pij->ij", w_mix, G),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--mlp-steps-dibslib", type=int, default=None,
                    help="fewer steps for dibs-lib's slow MLP runs (compare time per step)")
    ap.add_argument("--particles", type=int, default=20)
    ap.add_argument("--d", type=int, default=20)
    ap.add_argument("--models", nargs="+", default=["bge", "linear", "mlp"])
    ap.add_argument("--densities", type=float, nargs="+", default=[1.0, 2.0])
    ap.add_argument("--dibslib-python", default=str(HERE / ".venv-dibslib" / "bin" / "python"))
    ap.add_argument("--skip-dibslib", action="store_true")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--config", type=json.loads, default={},
                    help='further DiBSConfig fields for deepbn, as JSON (e.g. '
                         '\'{"occam": true, "occam_per_parent": 1}\')')
    ap.add_argument("--exact", action="store_true",
                    help="BGe: the exact posterior of each data set too (d <= 20)")
    ap.add_argument("--out", default=str(HERE / "dibs_vs_dibslib.json"))
    args = ap.parse_args()
    results = []
    out = Path(args.out)
    for seed in args.seeds:
        for model in args.models:
            for k in args.densities:
                A, x, x_test = make_data(seed, args.d, k, model)
                with tempfile.NamedTemporaryFile(suffix=".npz") as f:
                    np.savez(f.name, x=x.astype(np.float32), x_test=x_test.astype(np.float32))
                    row = {"seed": seed, "model": model, "edges_per_node": k, "d": args.d,
                           "n": len(x), "true_edges": int(A.sum()), "particles": args.particles}
                    spec = {"model": model, "k": k, "particles": args.particles,
                            "seed": seed, "steps": args.steps}
                    res = run_child(sys.executable, "_dibs_child_deepbn.py", f.name,
                                    {**spec, "config": args.config}, args.timeout)
                    scored = score(res, A, model, x_test) if "error" not in res else res
                    row["deepbn"] = {"steps": args.steps, "config": args.config, **scored}
                    exact = args.exact and model == "bge"
                    if exact:
                        from deepbn.io.tables import scale_columns

                        # each library's own input: deepbn standardizes columns for BGe
                        row["exact"] = exact_row(scale_columns(x, "column"), k, A)
                        row["exact_raw"] = exact_row(x, k, A)
                        if "edge_probs" in row["deepbn"]:
                            row["deepbn"].update(distance(row["deepbn"], row["exact"]))
                    if not args.skip_dibslib:
                        steps = args.steps
                        if model == "mlp" and args.mlp_steps_dibslib:
                            steps = args.mlp_steps_dibslib
                        res = run_child(args.dibslib_python, "_dibs_child_dibslib.py", f.name,
                                        {**spec, "steps": steps}, args.timeout)
                        row["dibslib"] = {"steps": steps, **(score(res, A, model, x_test)
                                                             if "error" not in res else res)}
                        if exact and "edge_probs" in row["dibslib"]:
                            row["dibslib"].update(distance(row["dibslib"], row["exact_raw"]))
                        if "seconds" in row["dibslib"] and "seconds" in row["deepbn"]:
                            per_step = (row["dibslib"]["seconds"] / steps) / (
                                row["deepbn"]["seconds"] / args.steps)
                            row["time_ratio_per_step"] = round(per_step, 2)
                results.append(public(row))
                print(json.dumps(public(row), default=float), flush=True)
                out.write_text(json.dumps({"results": results}, indent=1, default=float))


if __name__ == "__main__":
    main()
