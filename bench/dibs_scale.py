"""DiBS (BGe) on larger graphs: seconds, peak memory, AUROC and E-SHD against d (not a test).

Issue "Structure learning for real users", item 4. ER DAGs with 1.5 expected edges
per node, linear-Gaussian data (the conventions of ``dibs_vs_dibslib.py``), n = 500
training + 100 held-out rows, 20 particles x 1000 SVGD steps, for d = 10, 20, 50,
100, 200. Each run is its own process (peak RSS per run), one at a time:

- ``deepbn``: this checkout, default settings (bounded parent sets and the other
  large-graph defaults of ``DiBSConfig.resolved`` apply from d > 32);
- ``deepbn-full``: this checkout with every family allowed (``max_parents = d - 1``)
  and the small-graph sampling settings, i.e. today's model at every d;
- ``deepbn-before``: an older checkout (``--before-src``, e.g. a git worktree of the
  commit before the change), to measure the change itself;
- ``dibslib``: dibs-lib in its own venv (``bash bench/setup_dibslib.sh``).

Runs slower than ``--timeout`` (default 30 min) are stopped and reported as such; a
variant that timed out at some d is not tried at larger d.

    python bench/dibs_scale.py                        # all variants, d = 10 ... 200
    python bench/dibs_scale.py --variants deepbn --ds 100 200

Writes bench/dibs_scale.json (after every run), bench/dibs_scale.md and
bench/dibs_scale.png (seconds and peak RSS against d).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from _paths import portable
from dibs_vs_dibslib import make_data, run_child, score

HERE = Path(__file__).resolve().parent
VARIANTS = ("deepbn", "deepbn-full", "deepbn-before", "dibslib")


def variant_spec(variant: str, d: int, base: dict) -> dict:
    if variant == "deepbn-full":
        return {**base, "config": {"max_parents": d - 1, "n_graph_samples": 16,
                                   "n_acyclicity_samples": 16}}
    return base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ds", type=int, nargs="+", default=[10, 20, 50, 100, 200])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--edges-per-node", type=float, default=1.5)
    ap.add_argument("--particles", type=int, default=20)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--before-src", default=None,
                    help="src/ folder of the older checkout for the deepbn-before variant")
    ap.add_argument("--dibslib-python", default=str(HERE / ".venv-dibslib" / "bin" / "python"))
    ap.add_argument("--out", default=str(HERE / "dibs_scale.json"))
    args = ap.parse_args()
    out = Path(args.out)
    results = json.loads(out.read_text())["results"] if out.exists() else []
    done = {(r["variant"], r["d"], r["seed"]) for r in results}
    timed_out: set[str] = {r["variant"] for r in results if "timed out" in r.get("error", "")}
    for seed in args.seeds:
        for d in args.ds:
            rng_seed = seed + 100 * d
            A, x, x_test = make_data(rng_seed, d, args.edges_per_node, "linear", n=args.n)
            for variant in args.variants:
                if (variant, d, seed) in done or variant in timed_out:
                    continue
                if variant == "deepbn-before" and not args.before_src:
                    continue
                base = {"model": "bge", "k": args.edges_per_node, "particles": args.particles,
                        "seed": seed, "steps": args.steps}
                spec = variant_spec(variant, d, base)
                python, script, env = sys.executable, "_dibs_child_deepbn.py", None
                if variant == "deepbn-before":
                    env = {**os.environ, "PYTHONPATH": args.before_src}
                if variant == "dibslib":
                    python, script = args.dibslib_python, "_dibs_child_dibslib.py"
                with tempfile.NamedTemporaryFile(suffix=".npz") as f:
                    np.savez(f.name, x=x.astype(np.float32), x_test=x_test.astype(np.float32))
                    res = run_child(python, script, f.name, spec, args.timeout, env)
                row = {"variant": variant, "d": d, "seed": seed, "n": args.n,
                       "true_edges": int(A.sum()), "particles": args.particles,
                       "steps": args.steps}
                if "error" in res:
                    row["error"] = res["error"]
                    if "did not finish" in res["error"]:
                        row["error"] = f"timed out ({res['error']})"
                        timed_out.add(variant)
                else:
                    row.update(score(res, A, "bge", x_test))
                    for key in ("svgd_seconds", "compile_seconds", "config"):
                        if key in res:
                            row[key] = res[key]
                results.append(row)
                print(json.dumps(row, default=float), flush=True)
                out.write_text(json.dumps({"results": portable(results)}, indent=1,
                                          default=float))
    write_table(results, out.with_suffix(".md"))
    plot(results, out.with_suffix(".png"))


def write_table(results: list[dict], path: Path) -> None:
    lines = ["| variant | d | true edges | seconds (SVGD) | peak RSS MiB | AUROC | E-SHD | "
             "settings |", "|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r["d"], VARIANTS.index(r["variant"]), r["seed"])):
        if "error" in r:
            note = f" [{r['note']}]" if "note" in r else ""
            lines.append(f"| {r['variant']} | {r['d']} | {r['true_edges']} | {r['error']}{note} "
                         "| | | | |")
            continue
        svgd = f" ({r['svgd_seconds']:.1f})" if "svgd_seconds" in r else ""
        svgd += f" [{r['note']}]" if "note" in r else ""
        lines.append(f"| {r['variant']} | {r['d']} | {r['true_edges']} | {r['seconds']:.1f}"
                     f"{svgd} | {r['peak_rss_mib']:.0f} | {r['auroc']:.3f} | {r['eshd']:.1f} "
                     f"| {r.get('config', '')} |")
    path.write_text("\n".join(lines) + "\n")


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for variant in VARIANTS:
        rows = sorted((r for r in results if r["variant"] == variant and "error" not in r),
                      key=lambda r: r["d"])
        if not rows:
            continue
        ds = [r["d"] for r in rows]
        axes[0].plot(ds, [r["seconds"] for r in rows], "o-", label=variant)
        axes[1].plot(ds, [r["peak_rss_mib"] for r in rows], "o-", label=variant)
    for ax, what in zip(axes, ("seconds (20 particles x 1000 steps, incl. compile)",
                               "peak RSS (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("variables d")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].axhline(60, color="grey", ls=":", lw=1)
    axes[1].axhline(1024, color="grey", ls=":", lw=1)
    axes[0].legend()
    fig.suptitle("DiBS with BGe on ER graphs (1.5 edges per node, n = 500), 2 CPU cores")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
