"""How large is the largest R-hat of chains that mix perfectly? (Not a test.)

`bench/hmc_long.py` reports the maximum R-hat over every latent coordinate (10 x T of
them on kingma-dbn). Over thousands of coordinates that maximum exceeds 1.01 by chance
alone when the ESS per coordinate is a few hundred. Here: 4 independent stationary
Gaussian AR(1) chains per coordinate, exactly in their target from the first draw (so any
R-hat above 1 is Monte-Carlo noise), with the autocorrelation that gives a chosen ESS per
draw, (1 - rho) / (1 + rho); R-hat and ESS by deepbn.inference.diagnostics.convergence,
the statistic hmc_long.py reports (BlackJAX's rank-normalised split R-hat, folded).

    python bench/rhat_null.py                 # writes bench/rhat_null.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from deepbn.inference.diagnostics import convergence

HERE = Path(__file__).resolve().parent


def ar1_chains(rng, chains: int, draws: int, coords: int, ess_per_draw: float) -> np.ndarray:
    rho = (1 - ess_per_draw) / (1 + ess_per_draw)
    e = rng.normal(size=(chains, draws, coords))
    x = np.empty_like(e)
    x[:, 0] = e[:, 0]
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + np.sqrt(1 - rho**2) * e[:, t]
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--coords", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--ess-per-draw", type=float, nargs="+", default=[0.19, 0.57])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "rhat_null.md"))
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    lines = [f"Perfectly mixing chains: {args.chains} chains x {args.draws} draws of "
             "stationary AR(1) per coordinate (`python bench/rhat_null.py`); largest R-hat "
             f"over the coordinates in {args.repeats} repeats.", "",
             f"| coordinates | ESS per draw | ESS ({args.chains} chains) | R-hat max, each "
             "repeat | share of repeats with R-hat max < 1.01 |", "|---|---|---|---|---|"]
    for coords in args.coords:
        for ess_per_draw in args.ess_per_draw:
            res = [convergence(ar1_chains(rng, args.chains, args.draws, coords, ess_per_draw))
                   for _ in range(args.repeats)]
            maxes = [r["rhat_max"] for r in res]
            ess = np.median([r["ess_median"] for r in res])
            lines.append(f"| {coords} | {ess_per_draw} | {ess:.0f} | "
                         f"{', '.join(f'{m:.4f}' for m in maxes)} | "
                         f"{np.mean(np.array(maxes) < 1.01):.1f} |")
            print(lines[-1], flush=True)
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
