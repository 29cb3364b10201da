"""Sachs et al. (2005), observational data: deepbn discover vs dibs-lib vs GES (not a test).

Data, pinned by deepbn.io.datasets (SACHS_PIN): the 853 cells of the cd3cd28 condition
(the first 853 rows of cdt 0.6.0's cyto_full_data.csv, or the '1. cd3cd28' table itself),
natural log of the raw concentrations, then each column standardized (discover's default
for BGe; dibs-lib and GES get the same standardized matrix). Truth: the 17-edge consensus
graph (deepbn.io.datasets.SACHS_CONSENSUS).

Methods, each in its own process:
- deepbn: ``deepbn discover sachs.csv --truth sachs_consensus.csv`` with its defaults
  (BGe, ER prior with 1 edge per node, 20 particles x 1000 steps), one run per seed;
  metrics from its summary.json (DiBS+ weights);
- dibs-lib: MarginalDiBS with BGe, ER prior with 1 edge per node, 20 particles x 1000
  steps (bench/_dibs_child_dibslib.py, venv bench/.venv-dibslib: bench/setup_dibslib.sh),
  scored by the same functions on its particles with DiBS+ weights;
- GES (causal-learn, BIC; bench/_ges_child_causallearn.py, venv bench/.venv-causallearn:
  bench/setup_causallearn.sh): one CPDAG, deterministic. No AUROC (a point estimate has
  no ranking of edges); its SHD to the consensus DAG (an undirected edge where the truth
  has a directed one counts 1), its SHD between CPDAGs, and TPR/FPR of the skeleton.

    pip download cdt==0.6.0 --no-deps -d /tmp/cdt && unzip -o /tmp/cdt/cdt-0.6.0-*.whl \
        'cdt/data/resources/*' -d /tmp/cdt
    python bench/sachs.py --data /tmp/cdt/cdt/data/resources/cyto_full_data.csv

Writes bench/sachs.json and bench/sachs.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deepbn import graph
from deepbn.io.datasets import SACHS_PIN, write_sachs
from deepbn.io.tables import scale_columns
from deepbn.structure import equivalence, metrics

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _paths import settings  # noqa: E402
from dibs_vs_dibslib import distance, exact_row, run_child  # noqa: E402

DEEPBN = "from deepbn.cli.app import main; main()"


def run_deepbn(data: Path, truth: Path, seed: int, args, workdir: Path) -> dict:
    out = workdir / f"deepbn-seed{seed}"
    cmd = [sys.executable, "-c", DEEPBN, "discover", str(data), "--truth", str(truth),
           "--out", str(out), "--particles", str(args.particles), "--steps", str(args.steps),
           "--seed", str(seed), "--edges-per-node", str(args.edges_per_node), "--json"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:300]}
    s = json.loads((out / "summary.json").read_text())
    probs = np.loadtxt(out / "edge_probs.csv", delimiter=",", skiprows=1, usecols=range(1, 12))
    return {"edge_probs": probs.round(4).tolist(),
            "auroc": s["auroc"], "eshd": s["eshd"], "eshd_cpdag": s["eshd_cpdag"],
            "auroc_dibs": s["auroc_dibs"], "eshd_dibs": s["eshd_dibs"],
            "mean_edges": s["mean_edges"], "cyclic_particles": s["cyclic_particles"],
            "seconds": round(s["seconds"], 2), "compile_seconds": round(s["compile_seconds"], 2),
            "seconds_with_compile": round(s["seconds"] + s["compile_seconds"], 2),
            "wall_seconds": round(wall, 2)}


def score_particles(res: dict, A: np.ndarray) -> dict:
    G, w_mix, w_emp = res["graphs"].astype(bool), res["w_mix"], res["w_emp"]
    cyclic = np.array([not graph.is_dag(g) for g in G])
    return {
        "auroc": metrics.edge_auroc(np.einsum("p,pij->ij", w_mix, G), A),
        "eshd": metrics.expected_shd(G, w_mix, A),
        "eshd_cpdag": equivalence.expected_shd_cpdag(G, w_mix, A, cyclic),
        "auroc_dibs": metrics.edge_auroc(np.einsum("p,pij->ij", w_emp, G), A),
        "edge_probs": np.einsum("p,pij->ij", w_mix, G).round(4).tolist(),
        "eshd_dibs": metrics.expected_shd(G, w_emp, A),
        "mean_edges": float(G.sum(axis=(1, 2)).mean()),
        "cyclic_particles": int(cyclic.sum()),
        "seconds": round(float(res["seconds"]), 2),
        # dibs-lib's sample() time includes its JIT compilation
        "seconds_with_compile": round(float(res["seconds"]), 2),
    }


def run_exact(x: np.ndarray, A: np.ndarray, args) -> dict:
    """The exact BGe posterior's edge marginals (order-modular ER prior, same k)."""
    row = exact_row(x, args.edges_per_node, A)
    return {**row, "edge_probs": row["edge_probs"].round(4).tolist()}


def score_cpdag(C: np.ndarray, A: np.ndarray) -> dict:
    skeleton, true_skeleton = np.triu(C | C.T, 1), np.triu(A | A.T, 1)
    pairs = np.triu(np.ones_like(A, bool), 1)
    tp = int((skeleton & true_skeleton).sum())
    fp = int((skeleton & ~true_skeleton).sum())
    directed = C & ~C.T
    return {
        "shd": graph.shd(C, A),
        "shd_cpdag": equivalence.shd_cpdag(C, equivalence.cpdag(A)),
        "edges": int(skeleton.sum()), "directed_edges": int(directed.sum()),
        "skeleton_tpr": tp / int(true_skeleton.sum()),
        "skeleton_fpr": fp / int((pairs & ~true_skeleton).sum()),
        "directed_correct": int((directed & A).sum()),
    }


def mean_sd(rows: list[dict], key: str) -> tuple[float, float] | None:
    vals = [r[key] for r in rows if key in r and r[key] is not None]
    return (float(np.mean(vals)), float(np.std(vals))) if vals else None


def markdown(result: dict) -> str:
    def cell(rows, key, digits=2):
        ms = mean_sd(rows, key)
        if ms is None:
            return "-"
        text = f"{ms[0]:.{digits}f}"
        return text if len(rows) == 1 else f"{text} ± {ms[1]:.{digits}f}"

    st = result["settings"]
    seeds = ", ".join(map(str, st["seeds"]))
    lines = [f"Data: {result['data']['description']}. deepbn and dibs-lib: {st['particles']} "
             f"particles x {st['steps']} steps, ER prior with {st.get('edges_per_node', 1.0):g} "
             f"edge(s) per node, seeds {seeds} (mean ± sd over seeds); DiBS+ weights. "
             f"Machine: {result['machine']}.", "",
             "| method | AUROC | E-SHD | E-SHD CPDAG | mean edges | seconds (with compile) "
             "| max / mean abs. diff. to exact edge probs |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    ex = result.get("exact")
    if ex and "error" not in ex:
        lines.append(f"| exact BGe posterior (order-modular ER prior, deepbn.structure.exact) | "
                     f"{ex['auroc']:.3f} | {ex['eshd']:.1f} | - | {ex['mean_edges']:.1f} | "
                     f"{ex['seconds']:.1f} | 0 |")
    for name, label in (("deepbn", "deepbn discover (DiBS+, BGe)"),
                        ("dibslib", "dibs-lib MarginalDiBS (DiBS+, BGe)")):
        rows = [r for r in result[name] if "error" not in r]
        if rows:
            lines.append(f"| {label} | {cell(rows, 'auroc')} | {cell(rows, 'eshd', 1)} | "
                         f"{cell(rows, 'eshd_cpdag', 1)} | {cell(rows, 'mean_edges', 1)} | "
                         f"{cell(rows, 'seconds_with_compile', 1)} | "
                         f"{cell(rows, 'max_abs_diff_exact')} / "
                         f"{cell(rows, 'mean_abs_diff_exact', 3)} |")
    g = result.get("ges")
    if g and "error" not in g:
        lines.append(f"| GES (causal-learn, BIC), one CPDAG | - (point estimate; skeleton "
                     f"TPR {g['skeleton_tpr']:.2f}, FPR {g['skeleton_fpr']:.2f}) | {g['shd']} | "
                     f"{g['shd_cpdag']} | {g['edges']} ({g['directed_edges']} directed) | "
                     f"{g['seconds']:.1f} | - |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True,
                    help="cdt's cyto_full_data.csv or the 853-row cd3cd28 table")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--particles", type=int, default=20)
    ap.add_argument("--edges-per-node", type=float, default=1.0,
                    help="ER prior of deepbn and dibs-lib (discover's default 1)")
    ap.add_argument("--raw", action="store_true",
                    help="sensitivity: raw concentrations instead of their log")
    ap.add_argument("--dibslib-python", default=str(HERE / ".venv-dibslib" / "bin" / "python"))
    ap.add_argument("--causallearn-python",
                    default=str(HERE / ".venv-causallearn" / "bin" / "python"))
    ap.add_argument("--skip-dibslib", action="store_true")
    ap.add_argument("--skip-ges", action="store_true")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--out", default=str(HERE / "sachs.json"))
    ap.add_argument("--table-only", action="store_true",
                    help="rewrite the .md table from an existing --out JSON and stop")
    args = ap.parse_args()
    if args.table_only:
        out = Path(args.out)
        out.with_suffix(".md").write_text(markdown(json.loads(out.read_text())) + "\n")
        return
    # the data file by name only: where a copy lies on this machine means nothing elsewhere
    result = {"settings": {**settings(args), "data": Path(args.data).name}, "data": {
        "rows": SACHS_PIN.rows, "sha256_raw_values": SACHS_PIN.sha256,
        "description": "Sachs et al. (2005) cd3cd28 condition (observational), 853 cells x "
        f"11 variables, {'raw values' if args.raw else 'natural log of the raw values'}, each "
        "column standardized; truth: the 17-edge consensus graph "
        "(deepbn.io.datasets.SACHS_CONSENSUS)"},
        "deepbn": [], "dibslib": [], "ges": None, "exact": None,
        "machine": f"{os.cpu_count()} CPU cores, shared with other work"}
    out = Path(args.out)

    def save():
        out.write_text(json.dumps(result, indent=1, default=float))
        out.with_suffix(".md").write_text(markdown(result) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data, truth = write_sachs(args.data, work / "sachs.csv", log_transform=not args.raw)
        from deepbn.io.tables import read_table

        table = read_table(data)
        x = scale_columns(table.values, "column").astype(np.float32)
        A = graph.read_edge_list(truth, table.names)
        result["exact"] = run_exact(x, A, args)
        print(json.dumps({"exact": {k: v for k, v in result["exact"].items()
                                    if k != "edge_probs"}}), flush=True)
        npz = work / "x.npz"
        np.savez(npz, x=x, x_test=x)
        for seed in args.seeds:
            row = {"seed": seed, **run_deepbn(data, truth, seed, args, work)}
            if "edge_probs" in row:
                row.update(distance(row, result["exact"]))
            result["deepbn"].append(row)
            print(json.dumps({"deepbn": {k: v for k, v in row.items() if k != "edge_probs"}}),
                  flush=True)
            save()
            if not args.skip_dibslib:
                spec = {"model": "bge", "k": args.edges_per_node, "particles": args.particles,
                        "seed": seed, "steps": args.steps}
                res = run_child(args.dibslib_python, "_dibs_child_dibslib.py", str(npz), spec,
                                args.timeout)
                row = {"seed": seed, **(score_particles(res, A) if "error" not in res else res)}
                if "edge_probs" in row:
                    row.update(distance(row, result["exact"]))
                result["dibslib"].append(row)
                print(json.dumps({"dibslib": {k: v for k, v in row.items() if k != "edge_probs"}}),
                      flush=True)
                save()
        if not args.skip_ges:
            res = run_child(args.causallearn_python, "_ges_child_causallearn.py", str(npz), {},
                            args.timeout)
            if "error" in res:
                result["ges"] = res
            else:
                C = res["cpdag"].astype(bool)
                result["ges"] = {**score_cpdag(C, A), "seconds": round(float(res["seconds"]), 2),
                                 "cpdag_edges": [[table.names[i], table.names[j]]
                                                 for i, j in np.argwhere(C)]}
            print(json.dumps({"ges": result["ges"]}), flush=True)
        save()
    print(markdown(result))


if __name__ == "__main__":
    main()
