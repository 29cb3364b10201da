"""A DAG posterior at 50-500 variables: time, memory, accuracy and the agreement of two
independent runs, deepbn's order MCMC (discover's default) beside Gadget and yesterday's
DiBS + order MCMC (not a test).

Data: linear-Gaussian networks on ER graphs (1.5 or 2 expected edges per node) or a
scale-free graph (``graph.random_sf_dag``, 1.5), weights of magnitude 0.5-2 and noise
variance 0.1 (the data of ``dibs_vs_dibslib.make_data``), n = 100 or 500 rows.

Methods, each in its own process (peak RSS apart), one at a time, the same data:

- ``order``: ``structure.learn.sample_structure`` with its defaults, twice, with sampler
  seeds s and s + 1000 (two independent runs: their own random starts and random
  numbers); a third run reads the data through a CSV round trip (``--csv``);
- ``gadget``: sumu 0.1.2 (bench/setup_gadget.sh) with its documented defaults, twice,
  where ``--gadget-ds`` includes d (it has a 30-minute limit per run);
- ``before``: DiBS (20 particles x 1000 steps) + 10 000 steps of order MCMC as
  ``discover --order-mcmc 10000`` ran before this change, from a checkout of
  ``--before`` (a git commit; a worktree under /tmp), twice, where ``--before-ds``
  includes d.

Reports per run seconds, peak RSS, AUROC, E-SHD (from the edge marginals), the sampler's
edge R-hat; per method the agreement of its two runs (max |dP| and pairs above 0.1).

    python bench/structure_scale.py --ds 50 100 200 --graphs er1.5 --ns 500 --seeds 0
    python bench/structure_scale.py --ds 100 --graphs er2 sf --ns 500 --append

Writes bench/structure_scale.json (after every run), .md and .png.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _paths import ROOT, settings  # noqa: E402

GADGET_PY = HERE / ".venv-gadget" / "bin" / "python"


def make_data(seed: int, d: int, graph_kind: str, n: int):
    from deepbn import graph

    rng = np.random.default_rng(1000 + seed)
    k = 2.0 if graph_kind == "er2" else 1.5
    A = (graph.random_sf_dag(rng, d, k) if graph_kind == "sf"
         else graph.random_er_dag(rng, d, k)).astype(bool)
    W = rng.normal(size=(d, d))
    W = np.sign(W) * np.clip(np.abs(W), 0.5, 2.0) * A
    x = np.zeros((n, d))
    for j in graph.topological_order(A):
        x[:, j] = x @ W[:, j] + rng.normal(size=n) * np.sqrt(0.1)
    return A, x, k


def child(cmd: list[str], timeout: float, env=None) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".npz") as out:
        start = time.perf_counter()
        try:
            proc = subprocess.run([*cmd, out.name], capture_output=True, text=True,
                                  timeout=timeout, env=env, cwd=tempfile.gettempdir())
        except subprocess.TimeoutExpired:
            return {"error": f"did not finish within {timeout:.0f} s"}
        if proc.returncode != 0:
            return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:300]}
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        info["wall_seconds"] = time.perf_counter() - start
        info["edge_probs"] = np.load(out.name)["edge_probs"]
        return info


def scored(P, A) -> dict:
    from deepbn.structure import metrics

    return {"auroc": metrics.edge_auroc(P, A), "eshd": metrics.expected_shd_from_edge_probs(P, A),
            "mean_edges": float(P.sum())}


def agreement(P, Q) -> dict:
    diff = np.abs(P - Q)
    return {"max_abs_dp": float(diff.max()), "pairs_above_0.1": int((diff > 0.1).sum())}


def before_checkout(commit: str) -> Path:
    path = Path(tempfile.gettempdir()) / f"deepbn-before-{commit[:10]}"
    if not path.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path),
                        commit], check=True, capture_output=True)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ds", type=int, nargs="+", default=[50, 100, 200])
    ap.add_argument("--graphs", nargs="+", default=["er1.5"], choices=["er1.5", "er2", "sf"])
    ap.add_argument("--ns", type=int, nargs="+", default=[500])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--gadget-ds", type=int, nargs="*", default=[])
    ap.add_argument("--before-ds", type=int, nargs="*", default=[])
    ap.add_argument("--before", default="054f98a")
    ap.add_argument("--csv-ds", type=int, nargs="*", default=[100],
                    help="d at which a third order run reads the data through a CSV file")
    ap.add_argument("--order-steps", nargs="*", default=[],
                    help="D:STEPS, the order MCMC budget at d = D (default: its own)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--append", action="store_true")
    ap.add_argument("--out", default=str(HERE / "structure_scale.json"))
    args = ap.parse_args()
    out = Path(args.out)
    rows = json.loads(out.read_text())["results"] if args.append and out.exists() else []
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    budgets = {int(a): int(b) for a, b in (v.split(":") for v in args.order_steps)}
    for graph_kind in args.graphs:
        for n in args.ns:
            for d in args.ds:
                for seed in args.seeds:
                    A, x, k = make_data(seed, d, graph_kind, n)
                    row = {"graph": graph_kind, "n": n, "d": d, "seed": seed,
                           "true_edges": int(A.sum()), "methods": {}}
                    exact = exact_probs(x, k) if d <= 20 else None
                    with tempfile.TemporaryDirectory() as tmp:
                        np.savez(f"{tmp}/x.npz", x=x, seed=seed)
                        plan = [("order", [sys.executable, str(HERE / "_structure_child.py"),
                                           f"{tmp}/x.npz"], True, env)]
                        if d in args.gadget_ds and GADGET_PY.exists():
                            plan.append(("gadget", [str(GADGET_PY),
                                                    str(HERE / "_gadget_child.py")], False,
                                         None))
                        if d in args.before_ds:
                            src = before_checkout(args.before) / "src"
                            plan.append(("before", [sys.executable,
                                                    str(HERE / "_structure_child.py"),
                                                    f"{tmp}/x.npz"], True,
                                         {**env, "PYTHONPATH": str(src)}))
                        for name, cmd, ours, cenv in plan:
                            runs = []
                            for r, s in enumerate((seed, seed + 1000)):
                                if ours:
                                    spec = {"method": "order" if name == "order"
                                            else "dibs+order", "seed": s, "k": k}
                                    if name == "order" and d in budgets:
                                        spec["steps"] = budgets[d]
                                    full = [*cmd, json.dumps(spec)]
                                else:
                                    np.savez(f"{tmp}/g{r}.npz", x=x, seed=s)
                                    full = [*cmd, f"{tmp}/g{r}.npz"]
                                info = child(full, args.timeout, cenv)
                                print(graph_kind, n, d, seed, name, r, {
                                    k_: v for k_, v in info.items() if k_ != "edge_probs"},
                                    flush=True)
                                runs.append(info)
                            if name == "order" and d in args.csv_ds:
                                spec = {"method": "order", "seed": seed, "k": k, "csv": True}
                                runs.append(child([*cmd, json.dumps(spec)], args.timeout, cenv))
                            row["methods"][name] = summarize_runs(runs, A, exact)
                    rows.append(row)
                    write(out, rows, args)
    write(out, rows, args)


def exact_probs(x, k: float) -> np.ndarray:
    """The exact edge probabilities (no parent bound) on the column-standardized data."""
    from deepbn.io.tables import scale_columns
    from deepbn.structure.exact import exact_edge_probs

    return exact_edge_probs(scale_columns(np.asarray(x, np.float32), "column"),
                            edges_per_node=k).edge_probs


def summarize_runs(runs: list[dict], A, exact=None) -> dict:
    good = [r for r in runs if "error" not in r]
    res = {"runs": [{k: v for k, v in r.items() if k != "edge_probs"} for r in runs]}
    for r, info in zip(res["runs"], runs):
        if "error" not in info:
            r.update(scored(info["edge_probs"], A))
            if exact is not None:
                gap = np.abs(info["edge_probs"] - exact)
                r.update(exact_mean_abs_dp=float(gap.sum() / (len(gap) ** 2 - len(gap))),
                         exact_max_abs_dp=float(gap.max()))
    if len(good) >= 2 and "error" not in runs[0] and "error" not in runs[1]:
        res["agreement"] = agreement(runs[0]["edge_probs"], runs[1]["edge_probs"])
    if len(runs) == 3 and len(good) == 3:
        res["csv_agreement"] = agreement(runs[0]["edge_probs"], runs[2]["edge_probs"])
    return res


def write(out: Path, rows: list[dict], args) -> None:
    out.write_text(json.dumps({"settings": settings(args), "results": rows}, indent=1,
                              default=float) + "\n")
    lines = ["| graph | n | d | true edges | method | seconds (2 runs) | peak RSS GiB | AUROC | "
             "E-SHD | R-hat | steps | max abs dP / pairs > 0.1 | CSV round trip max abs dP | "
             "to exact: mean / max abs dP |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    names = {"order": "deepbn order MCMC (default)", "gadget": "Gadget (sumu 0.1.2)",
             "before": "DiBS + order MCMC (before)"}
    for r in rows:
        for name, m in r["methods"].items():
            runs = [x for x in m["runs"][:2] if "error" not in x]
            if not runs:
                lines.append(f"| {r['graph']} | {r['n']} | {r['d']} | {r['true_edges']} | "
                             f"{names[name]} | {m['runs'][0]['error']} |  |  |  |  |  |  |  |  |")
                continue

            def mean(key, runs=runs):
                vals = [x[key] for x in runs if x.get(key) is not None]
                return float(np.mean(vals)) if vals else float("nan")

            secs = " / ".join(f"{x['wall_seconds']:.0f}" for x in runs)
            agree = m.get("agreement")
            agree = f"{agree['max_abs_dp']:.3f} / {agree['pairs_above_0.1']}" if agree else "–"
            csv = m.get("csv_agreement")
            csv = f"{csv['max_abs_dp']:.3f}" if csv else "–"
            rhat = " / ".join(f"{x['rhat_max']:.3f}" for x in runs if "rhat_max" in x) or "–"
            steps = " / ".join(str(x["steps"]) for x in runs if "steps" in x) or "–"
            lines.append(f"| {r['graph']} | {r['n']} | {r['d']} | {r['true_edges']} | "
                         f"{names[name]} | {secs} | {mean('peak_rss_mib') / 1024:.2f} | "
                         f"{mean('auroc'):.3f} | {mean('eshd'):.1f} | {rhat} | {steps} | "
                         f"{agree} | {csv} | " + (
                             f"{mean('exact_mean_abs_dp'):.4f} / {mean('exact_max_abs_dp'):.3f}"
                             if any("exact_mean_abs_dp" in x for x in runs) else "–") + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    plot(rows, out.with_suffix(".png"))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, style in (("order", "o-"), ("gadget", "s--"), ("before", "^:")):
        pts = sorted((r["d"], np.mean([x["wall_seconds"] for x in r["methods"][name]["runs"][:2]
                                       if "wall_seconds" in x]),
                      r["methods"][name].get("agreement", {}).get("max_abs_dp", np.nan))
                     for r in rows if name in r["methods"]
                     and r["graph"] == "er1.5" and r["n"] == 500)
        if not pts:
            continue
        ds, secs, agree = zip(*pts)
        label = {"order": "deepbn order MCMC", "gadget": "Gadget",
                 "before": "DiBS + order (before)"}
        a1.plot(ds, secs, style, label=label[name])
        a2.plot(ds, agree, style, label=label[name])
    a1.set(xlabel="variables d", ylabel="seconds per run", xscale="log", yscale="log",
           title="time (ER-1.5, n = 500)")
    a2.axhline(0.1, color="grey", lw=0.8)
    a2.set(xlabel="variables d", ylabel="max |P1 - P2| of two runs", xscale="log",
           title="agreement of independent runs")
    a1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
