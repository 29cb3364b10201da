"""Markdown table (mean over seeds per setting) from dibs_vs_dibslib JSON results.

    python bench/dibs_table.py bench/dibs_vs_dibslib*.json

E-SHD is given with DiBS+ weights / plain DiBS weights; "dibs-lib best" is the
smaller of its two per seed, then averaged (the issue's yardstick).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

import numpy as np


def _mean(rows, side, field):
    vals = [r[side][field] for r in rows if field in r.get(side, {})]
    return np.mean(vals) if vals else np.nan


def main(paths: list[str]) -> None:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for p in paths:
        for row in json.load(open(p))["results"]:
            groups[(row["model"], row["edges_per_node"])].append(row)
    head = ["setting", "seeds", "true edges", "E-SHD DiBS+ / DiBS deepbn",
            "E-SHD DiBS+ / DiBS dibs-lib", "dibs-lib best", "AUROC deepbn / dibs-lib",
            "edges deepbn / dibs-lib", "seconds deepbn / dibs-lib (steps)", "time ratio/step"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for (model, k), rows in sorted(groups.items()):
        best = [min(r["dibslib"]["eshd"], r["dibslib"]["eshd_dibs"]) for r in rows
                if "eshd" in r.get("dibslib", {})]
        steps = {r["dibslib"].get("steps") for r in rows if "dibslib" in r}
        ratios = [r["time_ratio_per_step"] for r in rows if "time_ratio_per_step" in r]
        cells = [
            f"{model} k={k:g}", ",".join(str(r["seed"]) for r in rows),
            f"{np.mean([r['true_edges'] for r in rows]):.1f}",
            f"{_mean(rows, 'deepbn', 'eshd'):.1f} / {_mean(rows, 'deepbn', 'eshd_dibs'):.1f}",
            f"{_mean(rows, 'dibslib', 'eshd'):.1f} / {_mean(rows, 'dibslib', 'eshd_dibs'):.1f}",
            f"{np.mean(best):.1f}" if best else "-",
            f"{_mean(rows, 'deepbn', 'auroc'):.3f} / {_mean(rows, 'dibslib', 'auroc'):.3f}",
            f"{_mean(rows, 'deepbn', 'mean_edges'):.1f} / "
            f"{_mean(rows, 'dibslib', 'mean_edges'):.1f}",
            f"{_mean(rows, 'deepbn', 'seconds'):.0f} / {_mean(rows, 'dibslib', 'seconds'):.0f}"
            + (f" ({'/'.join(str(s) for s in sorted(steps))})" if steps else ""),
            f"{np.mean(ratios):.1f}x" if ratios else "-",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
