"""How close does deepbn's DiBS get to the exact BGe posterior, and what brings it closer?

ER-20 data of bench/dibs_vs_dibslib.py (same generator and seeds), BGe, column-standardized;
the exact edge probabilities (deepbn.structure.exact) once per data set, then DiBS with
more particles, more independent runs (pooled) and more steps. Reports AUROC, E-SHD, the
largest and mean |P_DiBS(i -> j) - P_exact(i -> j)| and seconds; one setting at a time.

    python bench/dibs_vs_exact_scan.py --seeds 0 1 2 --k 2

Writes bench/dibs_vs_exact_scan.json and .md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from deepbn.io.tables import scale_columns
from deepbn.structure import metrics
from deepbn.structure.config import DiBSConfig
from deepbn.structure.learn import learn_structure

HERE = Path(__file__).resolve().parent
SETTINGS = [{"particles": 20, "runs": 1, "steps": 1000},
            {"particles": 20, "runs": 1, "steps": 3000},
            {"particles": 100, "runs": 1, "steps": 1000},
            {"particles": 20, "runs": 5, "steps": 1000}]


def main() -> None:
    from dibs_vs_dibslib import exact_row, make_data

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--k", type=float, default=2.0)
    ap.add_argument("--d", type=int, default=20)
    ap.add_argument("--out", default=str(HERE / "dibs_vs_exact_scan.json"))
    args = ap.parse_args()
    rows = []
    out = Path(args.out)
    for seed in args.seeds:
        A, x, _ = make_data(seed, args.d, args.k, "bge")
        xs = scale_columns(x, "column")
        exact = exact_row(xs, args.k, A)
        P = exact.pop("edge_probs")
        rows.append({"seed": seed, "method": "exact", **exact})
        print(json.dumps(rows[-1]), flush=True)
        for st in SETTINGS:
            cfg = DiBSConfig(edges_per_node=args.k, n_particles=st["particles"])
            start = time.perf_counter()
            run = learn_structure(x, cfg, steps=st["steps"], seed=seed, runs=st["runs"])
            seconds = time.perf_counter() - start
            post = run.posterior
            Q = post.edge_probs(mixture=True)
            largest, mean, _ = metrics.edge_prob_gap(Q, P)
            rows.append({"seed": seed, "method": "dibs", **st,
                         "auroc": metrics.edge_auroc(Q, A),
                         "eshd": metrics.expected_shd(post.graphs, post.weights_mixture, A),
                         "mean_edges": float(Q.sum()), "distinct_graphs":
                         int(len({g.tobytes() for g in np.asarray(post.graphs, bool)})),
                         "max_abs_diff_exact": largest, "mean_abs_diff_exact": mean,
                         "seconds": seconds})
            print(json.dumps(rows[-1]), flush=True)
            out.write_text(json.dumps({"k": args.k, "d": args.d, "rows": rows}, indent=1))
    lines = [f"ER-{args.d}, k = {args.k:g}, n = 100, BGe; seeds {args.seeds}; mean over seeds.",
             "", "| method | AUROC | E-SHD | edges | max / mean abs. diff. to exact | seconds |",
             "| --- | --- | --- | --- | --- | --- |"]
    groups = [("exact", lambda r: r["method"] == "exact")] + [
        (f"DiBS {s['particles']} particles x {s['steps']} steps x {s['runs']} run(s)",
         lambda r, s=s: r["method"] == "dibs" and all(r[k] == v for k, v in s.items()))
        for s in SETTINGS]
    for label, keep in groups:
        g = [r for r in rows if keep(r)]
        if not g:
            continue
        mean = {k: float(np.mean([r[k] for r in g])) for k in g[0] if isinstance(g[0][k], float)}
        diff = (f"{mean['max_abs_diff_exact']:.2f} / {mean['mean_abs_diff_exact']:.3f}"
                if "max_abs_diff_exact" in mean else "0")
        lines.append(f"| {label} | {mean['auroc']:.3f} | {mean['eshd']:.1f} | "
                     f"{mean['mean_edges']:.1f} | {diff} | {mean['seconds']:.0f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(HERE))
    main()
