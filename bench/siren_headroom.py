"""How much a known structure can win on each SIReN-VAE network (not a test; no training).

For a linear-Gaussian network the observed nodes are jointly Gaussian, so two
numbers are exact: the held-out NLL of the generating network itself (the floor
of every model, ``nll_network``), and the **total correlation** of the observed
nodes, TC = sum_i H(x_i) - H(x) = 1/2 (sum_i log S_ii - log det S): how many nats
per row a model that captures every dependence gains over the best model of
independent observed nodes, in the population. Where TC is near 0, no variant can
beat another by more than what it loses to estimation error on the training rows.

For each network and latent/observed split: D observed, K latent, E edges, TC, and
the floor. Splits: the default of ``siren train`` (non-leaf nodes latent), and
the roots latent (every node with a parent observed).

    python bench/siren_headroom.py      # writes bench/siren_headroom.md
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepbn import examples
from deepbn.cli.siren import default_latent

HERE = Path(__file__).resolve().parent
NETWORKS = ("gaussian-binary-tree", "ecoli70", "magic-niab")


def total_correlation(cov: np.ndarray, idx: list[int]) -> float:
    c = cov[np.ix_(idx, idx)]
    return 0.5 * float(np.sum(np.log(np.diag(c))) - np.linalg.slogdet(c)[1])


def floor(cov: np.ndarray, idx: list[int]) -> float:
    """Expected NLL of the true marginal: the entropy of N(., S_obs)."""
    c = cov[np.ix_(idx, idx)]
    return 0.5 * float(np.linalg.slogdet(2 * np.pi * np.e * c)[1])


def main() -> None:
    lines = ["Exact, from the networks' parameters (no sampling): D observed / K latent nodes, "
             "E edges, the total correlation TC of the observed nodes (nats per row: the most "
             "any dependence-aware model gains over independent observed nodes) and the "
             "expected held-out NLL of the generating network (the floor).",
             "`python bench/siren_headroom.py`", "",
             "| network | split | D | K | E | TC (nats) | floor NLL |",
             "|---|---|---|---|---|---|---|"]
    for network in NETWORKS:
        bn = examples.load(f"example:{network}")
        assert set(bn.dims) == {1}, "node indices below are covariance indices: scalar nodes"
        _, cov = bn.linear_gaussian_moments()
        A = bn.adjacency()
        splits = {"non-leaf latent (default)": set(default_latent(bn)),
                  "roots latent": {n for j, n in enumerate(bn.names) if not A[:, j].any()}}
        for split, latent in splits.items():
            idx = [j for j, n in enumerate(bn.names) if n not in latent]
            lines.append(f"| {network} | {split} | {len(idx)} | {len(latent)} | {int(A.sum())} "
                         f"| {total_correlation(cov, idx):.3f} | {floor(cov, idx):.3f} |")
    text = "\n".join(lines) + "\n"
    (HERE / "siren_headroom.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
