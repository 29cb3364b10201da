"""Figures written by the commands (matplotlib, Agg backend, atomic writes)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from deepbn.atomic import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> None:
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(fig)


def edge_prob_heatmap(probs: np.ndarray, names: Sequence[str], path: str | os.PathLike,
                      truth: np.ndarray | None = None, title: str = "") -> None:
    """Heatmap of P(i -> j) (rows: cause, columns: effect); true edges outlined."""
    plt = _pyplot()
    d = len(names)
    size = min(max(4.0, 0.35 * d + 2.0), 16.0)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(probs, vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(d), names, rotation=90, fontsize=max(5, 10 - d // 8))
    ax.set_yticks(range(d), names, fontsize=max(5, 10 - d // 8))
    ax.set_xlabel("effect")
    ax.set_ylabel("cause")
    if truth is not None:
        for i, j in zip(*np.nonzero(truth)):
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=1.2))
    ax.set_title(title or "posterior edge probabilities" +
                 (" (red: true edges)" if truth is not None else ""))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="P(cause -> effect)")
    _save(fig, path)


def posterior_graph(probs: np.ndarray, names: Sequence[str], path: str | os.PathLike,
                    threshold: float = 0.1, title: str = "") -> None:
    """The posterior-mean graph: edges with P > threshold, width and opacity = P."""
    import networkx as nx

    plt = _pyplot()
    d = len(names)
    G = nx.DiGraph()
    G.add_nodes_from(range(d))
    # a mixture's probabilities can sum to 1 + rounding; matplotlib refuses an alpha above 1
    edges = [(i, j, min(float(probs[i, j]), 1.0)) for i, j in zip(*np.nonzero(probs > threshold))]
    G.add_weighted_edges_from(edges)
    pos = nx.kamada_kawai_layout(G.to_undirected()) if d > 2 else nx.circular_layout(G)
    size = min(max(5.0, 0.3 * d + 3.0), 14.0)
    fig, ax = plt.subplots(figsize=(size, size))
    nx.draw_networkx_nodes(G, pos, ax=ax, node_color="#dde8f4", edgecolors="#335", node_size=600)
    nx.draw_networkx_labels(G, pos, {k: names[k] for k in range(d)}, ax=ax, font_size=8)
    for i, j, p in edges:
        nx.draw_networkx_edges(G, pos, [(i, j)], ax=ax, width=0.5 + 3.5 * p, alpha=0.25 + 0.75 * p,
                               arrowsize=12, node_size=600, connectionstyle="arc3,rad=0.08")
    ax.set_title(title or f"posterior mean graph (edges with P > {threshold:g}; width = P)")
    ax.axis("off")
    _save(fig, path)


def training_curve(values: np.ndarray, path: str | os.PathLike, ylabel: str,
                   title: str = "", xlabel: str = "step", steps: np.ndarray | None = None) -> None:
    """A single curve over steps (progress of a run); ``steps`` default 1..len(values)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.arange(1, len(values) + 1) if steps is None else steps, values, marker=".")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _save(fig, path)


def traces(runs: dict[str, np.ndarray], coordinate_names: Sequence[str],
           path: str | os.PathLike, max_lag: int = 100) -> None:
    """Trace and autocorrelation of a few coordinates, one column pair per run.

    ``runs`` maps a label (e.g. "centred", "auxiliary") to draws of shape
    (chains, draws, coordinates): the side-by-side comparison of Kingma &
    Welling (ICML 2014, Fig. 3).
    """
    from deepbn.inference.diagnostics import autocorrelation

    plt = _pyplot()
    k = len(coordinate_names)
    fig, axes = plt.subplots(k, 2 * len(runs), figsize=(4.2 * len(runs), 1.9 * k + 0.6),
                             squeeze=False)
    for col, (label, draws) in enumerate(runs.items()):
        for row, name in enumerate(coordinate_names):
            ax_t, ax_a = axes[row, 2 * col], axes[row, 2 * col + 1]
            for chain in draws[:, :, row]:
                ax_t.plot(chain, lw=0.6)
                ax_a.plot(autocorrelation(chain, max_lag), lw=0.9)
            ax_a.axhline(0.0, color="grey", lw=0.5)
            ax_t.set_ylabel(name)
            if row == 0:
                ax_t.set_title(f"{label}: trace")
                ax_a.set_title(f"{label}: autocorrelation")
            if row == k - 1:
                ax_t.set_xlabel("draw")
                ax_a.set_xlabel("lag")
    _save(fig, path)


def curves(series: dict[str, np.ndarray], path: str | os.PathLike, ylabel: str, title: str = "",
           xlabel: str = "epoch") -> None:
    """Several curves on one axis, e.g. training and validation ELBO per epoch."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, values in series.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def gate_history(probs: np.ndarray, labels: Sequence[str], path: str | os.PathLike) -> None:
    """Gate probabilities μ_ij per epoch (He et al., ICLR 2019, Fig. 3a): (epochs, edges)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    epochs = np.arange(1, probs.shape[0] + 1)
    for k, label in enumerate(labels):
        ax.plot(epochs, probs[:, k], label=label)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("epoch")
    ax.set_ylabel("gate probability μ")
    ax.set_title("edge gates during training")
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path)


def image_grid(images: np.ndarray, path: str | os.PathLike, title: str = "",
               columns: int = 10) -> None:
    """Flattened square images (n, side²) in a grid; other widths are drawn as rows of pixels."""
    plt = _pyplot()
    n, width = images.shape
    side = int(round(np.sqrt(width)))
    shape = (side, side) if side * side == width else (1, width)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.9, rows * 0.9 + 0.4),
                             squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k < n:
            ax.imshow(images[k].reshape(shape), cmap="gray_r", vmin=0, vmax=1,
                      aspect="auto" if shape[0] == 1 else "equal")
    fig.suptitle(title)
    _save(fig, path)


def sweep_lines(lines: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
                path: str | os.PathLike, xlabel: str, ylabel: str,
                ticks: Sequence[str] | None = None, logx: bool = False, title: str = "") -> None:
    """A metric against a setting, one line per variant: ``lines`` maps a label to
    (x, mean, standard error); ``ticks`` names the positions 0, 1, ... of a setting
    whose values are not numbers."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (x, mean, se) in lines.items():
        order = np.argsort(np.asarray(x, dtype=float))
        ax.errorbar(np.asarray(x, dtype=float)[order], np.asarray(mean)[order],
                    yerr=np.asarray(se)[order], marker="o", capsize=3, label=label)
    if logx:
        ax.set_xscale("log")
    if ticks is None:  # a tick at each value of the setting, where they are few
        values = sorted({float(v) for x, _, _ in lines.values() for v in x})
        ticks = [f"{v:g}" for v in values] if len(values) <= 12 else None
    else:
        values = range(len(ticks))
    if ticks is not None:
        ax.set_xticks(values, ticks)
        ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(lines) > 1:
        ax.legend(fontsize=7)
    _save(fig, path)
