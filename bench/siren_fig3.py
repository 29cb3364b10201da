"""Fig. 3 of Mouton & Kroon (2022) from two runs of bench/siren_sizes_ecoli70.toml (not a test).

Plots each variant's held-out NLL above the generating network's exact NLL on the
same rows (``nll - nll_network``, per run, then mean ± standard error over seeds)
against the training rows per node, log-log: solid lines from the sweep with
KL warm-up (the default), dashed from one without (``--warmup 0``), so the gap the
warm-up closes is visible next to the gap structure closes.

    deepbn sweep bench/siren_sizes_ecoli70.toml --out sweep-siren-ecoli70
    python bench/siren_fig3.py sweep-siren-ecoli70/results.csv \\
        --before <the same sweep with --warmup 0>/results.csv
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
VARIANTS = ("true", "fc", "ind", "vae")


def gaps(path: str) -> dict[str, dict[int, list[float]]]:
    """variant -> rows per node -> nll - nll_network per finished run."""
    out: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    with open(path) as f:
        for row in csv.DictReader(f):
            if row["status"] == "done":
                out[row["variant"]][int(row["per_node"])].append(
                    float(row["nll"]) - float(row["nll_network"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("after", help="results.csv of the sweep with KL warm-up")
    ap.add_argument("--before", help="results.csv of the sweep without it")
    ap.add_argument("--out", default=str(HERE / "siren_fig3.png"))
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colours = dict(zip(VARIANTS, ("C0", "C1", "C2", "C3")))
    for path, style, tag in ((args.after, "-", "warm-up"), (args.before, "--", "no warm-up")):
        if path is None:
            continue
        for variant, by_size in gaps(path).items():
            sizes = sorted(by_size)
            mean = [np.mean(by_size[s]) for s in sizes]
            se = [np.std(by_size[s], ddof=1) / np.sqrt(len(by_size[s]))
                  if len(by_size[s]) > 1 else 0.0 for s in sizes]
            ax.errorbar(sizes, mean, yerr=se, fmt="o" + style, color=colours[variant],
                        capsize=3, alpha=1.0 if style == "-" else 0.5,
                        label=f"{variant} ({tag})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks([2, 5, 10, 30, 100], ["2", "5", "10", "30", "100"])
    ax.minorticks_off()
    ax.set_xlabel("training rows per node (|G| = 46 nodes)")
    ax.set_ylabel("held-out NLL above the exact NLL (nats)")
    ax.set_title("ecoli70, SIReN-VAE variants (mean ± s.e., 3 seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
