"""Order MCMC after DiBS (``discover --order-mcmc``): how close to the exact posterior, and
at what cost (not a test).

1. ER-20 (the data of ``dibs_vs_dibslib.py``: d = 20, k = 1 and 2 edges per node,
   n = 100, seeds 0-2), BGe on column-standardized data: DiBS (20 particles x 1000
   steps), then order MCMC from its particles (``order_mcmc.refine``, 10 000 steps, 16
   candidates, at most 5 parents); for reference the exact posterior
   (``structure.exact``, no parent bound), order MCMC from random orders with candidates
   by pairwise BGe gain only (what DiBS contributes), and dibs-lib's row of the same data
   from ``bench/dibs_vs_exact.json`` (dibs-lib is deterministic; it scores the raw data,
   so its distance is to the exact posterior of the raw data).
2. Scale: ER, d = 50 and 100, 1.5 edges per node, n = 500 (the data of
   ``dibs_scale.py``), DiBS with its large-graph defaults, then the same order MCMC.

One thing at a time, in this process:

    python bench/order_mcmc.py                    # both parts
    python bench/order_mcmc.py --part er20 --seeds 0

Writes bench/order_mcmc.json (after every row) and bench/order_mcmc.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def scored(P: np.ndarray, A: np.ndarray, exact: np.ndarray | None, graphs=None) -> dict:
    from deepbn.structure import metrics

    row = {"auroc": metrics.edge_auroc(P, A), "mean_edges": float(P.sum()),
           "eshd": (metrics.expected_shd_from_edge_probs(P, A) if graphs is None else
                    metrics.expected_shd(graphs[0], graphs[1], A))}
    if exact is not None:
        largest, mean, _ = metrics.edge_prob_gap(P, exact)
        row.update(max_abs_diff_exact=largest, mean_abs_diff_exact=mean)
    return row


def one(seed: int, d: int, k: float, n: int, steps: int, exact: bool, random_start: bool
        ) -> dict:
    from deepbn.structure import order_mcmc as om
    from deepbn.structure.config import DiBSConfig
    from deepbn.structure.exact import exact_posterior
    from deepbn.structure.learn import learn_structure
    from dibs_vs_dibslib import make_data

    A, x, _ = make_data(seed, d, k, "bge", n=n)
    row = {"seed": seed, "d": d, "edges_per_node": k, "n": n, "true_edges": int(A.sum())}
    t = time.perf_counter()
    run = learn_structure(x, DiBSConfig(edges_per_node=k), steps=1000, seed=seed)
    dibs_wall = time.perf_counter() - t
    post = run.posterior
    P_exact = None
    if exact:
        t0 = time.perf_counter()
        P_exact = exact_posterior(run.data.bge, d, k).edge_probs
        row["exact"] = {**scored(P_exact, A, None), "seconds": time.perf_counter() - t0}
    row["dibs"] = {**scored(post.edge_probs(), A, P_exact, (post.graphs, post.weights_mixture)),
                   "seconds": run.seconds + run.compile_seconds,
                   "wall_seconds": dibs_wall}
    t = time.perf_counter()
    refined, res = om.refine(run, steps, seed=seed)
    wall = time.perf_counter() - t
    row["order_mcmc"] = {**scored(res.edge_probs, A, P_exact), "eshd_draws": scored(
        res.edge_probs, A, None, (res.graphs, np.full(len(res.graphs), 1 / len(res.graphs)))
    )["eshd"], "seconds": res.seconds, "compile_seconds": res.compile_seconds,
        "wall_seconds": wall, "rhat_max": res.rhat_max, "acceptance": res.acceptance,
        "steps": steps, "chains": int(len(res.chain_edge_probs))}
    if random_start:
        from deepbn.io.tables import scale_columns

        t = time.perf_counter()
        alone = om.order_mcmc(scale_columns(x, "column"), steps=steps, chains=20, seed=seed,
                              edges_per_node=k)
        row["order_mcmc_alone"] = {**scored(alone.edge_probs, A, P_exact),
                                   "wall_seconds": time.perf_counter() - t,
                                   "rhat_max": alone.rhat_max}
    return row


def dibslib_row(seed: int, k: float) -> dict | None:
    path = HERE / "dibs_vs_exact.json"
    if not path.exists():
        return None
    for r in json.loads(path.read_text())["results"]:
        if r["seed"] == seed and r["edges_per_node"] == k and r.get("dibslib"):
            lib = r["dibslib"]
            return {key: lib[key] for key in ("auroc", "eshd", "mean_edges", "seconds",
                                              "max_abs_diff_exact", "mean_abs_diff_exact")}
    return None


def table(rows: list[dict]) -> str:
    def mean(group, part, key):
        vals = [r[part][key] for r in group if r.get(part) and r[part].get(key) is not None]
        return float(np.mean(vals)) if vals else float("nan")

    lines = ["| data | seeds | method | AUROC | E-SHD | edges | mean / max abs. diff. to exact "
             "| seconds | edge R-hat max |", "|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["d"], r["edges_per_node"], r["n"]) for r in rows})
    for d, k, n in keys:
        group = [r for r in rows if (r["d"], r["edges_per_node"], r["n"]) == (d, k, n)]
        seeds = ",".join(str(r["seed"]) for r in group)
        true_edges = np.mean([r["true_edges"] for r in group])
        label = f"ER-{d}, k={k:g}, n={n} ({true_edges:.1f} true edges)"
        for part, name in (("exact", "exact posterior"), ("dibs", "deepbn DiBS"),
                           ("order_mcmc", "deepbn DiBS + order MCMC"),
                           ("order_mcmc_alone", "order MCMC alone (random starts)"),
                           ("dibslib", "dibs-lib (bench/dibs_vs_exact.json)")):
            if not any(r.get(part) for r in group):
                continue
            gap = (f"{mean(group, part, 'mean_abs_diff_exact'):.3f} / "
                   f"{mean(group, part, 'max_abs_diff_exact'):.2f}"
                   if part != "exact" and any("mean_abs_diff_exact" in (r.get(part) or {})
                                              for r in group) else "–")
            secs = mean(group, part, "wall_seconds" if part in ("dibs", "order_mcmc",
                                                                "order_mcmc_alone")
                        else "seconds")
            rhat = mean(group, part, "rhat_max")
            lines.append(f"| {label} | {seeds} | {name} | {mean(group, part, 'auroc'):.3f} | "
                         f"{mean(group, part, 'eshd'):.1f} | {mean(group, part, 'mean_edges'):.1f}"
                         f" | {gap} | {secs:.1f} | "
                         f"{'–' if np.isnan(rhat) else f'{rhat:.2f}'} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["er20", "scale", "all"], default="all")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ks", type=float, nargs="+", default=[1.0, 2.0])
    ap.add_argument("--ds", type=int, nargs="+", default=[50, 100])
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--out", default=str(HERE / "order_mcmc.json"))
    args = ap.parse_args()
    out = Path(args.out)
    rows = []
    jobs = []
    if args.part in ("er20", "all"):
        jobs += [(s, 20, k, 100, True, True) for k in args.ks for s in args.seeds]
    if args.part in ("scale", "all"):
        jobs += [(s, d, 1.5, 500, False, False) for d in args.ds for s in args.seeds[:1]]
    for seed, d, k, n, exact, alone in jobs:
        row = one(seed, d, k, n, args.steps, exact, alone)
        if d == 20:
            row["dibslib"] = dibslib_row(seed, k)
        rows.append(row)
        print(json.dumps(row), flush=True)
        out.write_text(json.dumps({"steps": args.steps, "rows": rows}, indent=1))
    md = table(rows)
    out.with_suffix(".md").write_text(
        "Order MCMC after DiBS: `python bench/order_mcmc.py` (mean over seeds; seconds of "
        "DiBS and of order MCMC include compilation, wall clock in this process).\n\n"
        + md + "\n")
    print(md)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(HERE))
    main()
