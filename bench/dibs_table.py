"""Markdown table (mean over seeds per setting) from dibs_vs_dibslib JSON results.

    python bench/dibs_table.py bench/dibs_vs_dibslib*.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

import numpy as np

FIELDS = ["seconds", "peak_rss_mib", "eshd", "auroc", "neg_ll", "cyclic_particles"]


def main(paths: list[str]) -> None:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for p in paths:
        for row in json.load(open(p))["results"]:
            groups[(row["model"], row["edges_per_node"])].append(row)
    head = ["setting", "seeds"] + [f"{f} deepbn / dibs-lib" for f in FIELDS] + ["time ratio/step"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for (model, k), rows in sorted(groups.items()):
        cells = [f"{model} k={k:g}", ",".join(str(r["seed"]) for r in rows)]
        for f in FIELDS:
            a = np.mean([r["deepbn"][f] for r in rows])
            b = [r["dibslib"][f] for r in rows if f in r.get("dibslib", {})]
            cells.append(f"{a:.3g} / {np.mean(b):.3g}" if b else f"{a:.3g} / -")
        ratios = [r["time_ratio_per_step"] for r in rows if "time_ratio_per_step" in r]
        cells.append(f"{np.mean(ratios):.1f}x" if ratios else "-")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
