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


def _pair_marks(probs: np.ndarray, classes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P(adjacent), and per pair the most probable mark with its probability given adjacent:
    mark 1 = row -> column, -1 = column -> row (compelled), 0 = reversible (no orientation).

    ``classes`` = (compelled, reversible) over the particles' equivalence classes; without
    it every edge of the DAGs counts as oriented."""
    probs = np.asarray(probs, float)
    compelled, reversible = (probs, np.zeros_like(probs)) if classes is None else classes
    options = np.stack([reversible, compelled, compelled.T])  # marks 0, 1, -1
    adjacent = np.minimum(options.sum(0), 1.0)
    best = options.argmax(0)
    mark = np.array([0, 1, -1])[best]
    share = np.take_along_axis(options, best[None], 0)[0] / np.where(adjacent > 0, adjacent, 1)
    return adjacent, mark, share


def edge_prob_heatmap(probs: np.ndarray, names: Sequence[str], path: str | os.PathLike,
                      truth: np.ndarray | None = None, title: str = "",
                      classes: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Two heatmaps of a posterior over DAGs whose ``probs[i, j]`` = P(i -> j).

    Left: P(cause -> effect). Right: for each unordered pair (upper triangle),
    P(adjacent) as colour and, written in the cell, what the pair most probably
    is in the particles' Markov equivalence classes (``classes``, see
    :meth:`GraphPosterior.class_marks`): → row causes column or ← the reverse
    (oriented: compelled in the class), — adjacent but reversible (no data of
    this kind can orient it), with that mark's probability given adjacent.
    True edges / adjacencies are outlined in red.
    """
    plt = _pyplot()
    d = len(names)
    probs = np.asarray(probs, float)
    adjacent, mark, share = _pair_marks(probs, classes)
    upper = np.triu(np.ones((d, d), bool), k=1)
    size = min(max(4.0, 0.35 * d + 2.0), 16.0)
    fig, (ax, ax_adj) = plt.subplots(1, 2, figsize=(2 * size + 2.4, size))
    im = ax.imshow(probs, vmin=0.0, vmax=1.0, cmap="viridis")
    ax_adj.imshow(np.where(upper, adjacent, np.nan), vmin=0.0, vmax=1.0, cmap="viridis")
    fontsize = max(5, 10 - d // 8)
    for axis in (ax, ax_adj):
        axis.set_xticks(range(d), names, rotation=90, fontsize=fontsize)
        axis.set_yticks(range(d), names, fontsize=fontsize)
    ax.set_xlabel("effect")
    ax.set_ylabel("cause")
    if d <= 30:  # the text would not fit in smaller cells
        symbol = {1: "→", -1: "←", 0: "—"}
        for i, j in zip(*np.nonzero(upper & (adjacent >= 0.05))):
            ax_adj.text(j, i, f"{symbol[int(mark[i, j])]}\n{share[i, j]:.2f}", ha="center",
                        va="center", fontsize=max(4, fontsize - 2),
                        color="black" if adjacent[i, j] > 0.6 else "white")
    if truth is not None:
        truth = np.asarray(truth, bool)
        for i, j in zip(*np.nonzero(truth)):
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=1.2))
            a, b = min(i, j), max(i, j)
            ax_adj.add_patch(plt.Rectangle((b - 0.5, a - 0.5), 1, 1, fill=False, ec="red",
                                           lw=1.2))
    ax.set_title(title or "posterior edge probabilities" +
                 (" (red: true edges)" if truth is not None else ""))
    ax_adj.set_title("P(adjacent); text: → / ← oriented, — reversible\n"
                     "(in the equivalence class), with its probability given adjacent")
    fig.colorbar(im, ax=[ax, ax_adj], fraction=0.046, pad=0.04, label="probability")
    _save(fig, path)


def structure_graph(probs: np.ndarray, names: Sequence[str], path: str | os.PathLike,
                    truth: np.ndarray | None = None, threshold: float = 0.1,
                    classes: tuple[np.ndarray, np.ndarray] | None = None,
                    title: str = "") -> None:
    """A posterior over DAGs drawn pair by pair (``probs[i, j]`` = P(i -> j)).

    Every pair with P(adjacent) > ``threshold`` is a line whose width and
    opacity grow with P(adjacent): an arrow where the pair's most probable mark
    in the particles' equivalence classes (``classes``, as in
    :func:`edge_prob_heatmap`) is an orientation, a plain line where it is
    reversible (adjacent only). With ``truth``: green = a true adjacency (orange
    when oriented against the true direction), red = an extra edge, grey dashed
    = a true edge that is missing (drawn in its true direction); a legend says so.
    """
    import networkx as nx
    from matplotlib.lines import Line2D

    plt = _pyplot()
    d = len(names)
    adjacent, mark, _ = _pair_marks(probs, classes)
    truth = None if truth is None else np.asarray(truth, bool)
    true_adj = None if truth is None else truth | truth.T
    drawn = [(i, j) for i in range(d) for j in range(i + 1, d) if adjacent[i, j] > threshold]
    missing = [] if truth is None else [
        (i, j) for i, j in zip(*np.nonzero(truth)) if adjacent[i, j] <= threshold]
    G = nx.DiGraph()
    G.add_nodes_from(range(d))
    G.add_edges_from(drawn + missing)
    pos = nx.kamada_kawai_layout(G.to_undirected()) if d > 2 else nx.circular_layout(G)
    size = min(max(5.0, 0.3 * d + 3.0), 14.0)
    fig, ax = plt.subplots(figsize=(size, size))
    nx.draw_networkx_nodes(G, pos, ax=ax, node_color="#dde8f4", edgecolors="#335", node_size=600)
    nx.draw_networkx_labels(G, pos, {k: names[k] for k in range(d)}, ax=ax, font_size=8)
    colours = {"true": "#1a9850", "reversed": "#f46d43", "extra": "#d73027",
               "missing": "#888888", "edge": "#334"}
    used = set()
    for i, j in drawn:
        p = adjacent[i, j]
        u, v = (j, i) if mark[i, j] == -1 else (i, j)
        oriented = mark[i, j] != 0
        if truth is None:
            kind = "edge"
        elif not true_adj[i, j]:
            kind = "extra"
        else:
            kind = "reversed" if oriented and truth[v, u] else "true"
        used.update((kind, "oriented" if oriented else "open"))
        nx.draw_networkx_edges(G, pos, [(u, v)], ax=ax, width=0.5 + 3.5 * p,
                               alpha=0.35 + 0.65 * p, edge_color=colours[kind],
                               arrowstyle="-|>" if oriented else "-", arrowsize=14,
                               node_size=600)
    for i, j in missing:
        used.add("missing")
        nx.draw_networkx_edges(G, pos, [(i, j)], ax=ax, width=1.2, style="dashed",
                               edge_color=colours["missing"], arrowsize=12, node_size=600)
    labels = {"edge": "edge (width = P(adjacent))", "true": "true adjacency",
              "reversed": "true adjacency, oriented against the truth",
              "extra": "extra edge (not in the truth)", "missing": "missing true edge",
              "oriented": "arrow: oriented (compelled in its equivalence class)",
              "open": "plain line: adjacent, reversible in its class"}
    handles = [Line2D([], [], color=colours.get(k, "black"), lw=2,
                      ls="--" if k == "missing" else "-", label=labels[k])
               for k in ("edge", "true", "reversed", "extra", "missing") if k in used]
    handles += [Line2D([], [], color="black", lw=0 if k == "oriented" else 2,
                       marker=">" if k == "oriented" else None, label=labels[k])
                for k in ("oriented", "open") if k in used]
    if handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2,
                  fontsize=7, frameon=False)
    ax.set_title(title or f"posterior graph (pairs with P(adjacent) > {threshold:g})")
    ax.axis("off")
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


def manifold(images: np.ndarray, side: int, path: str | os.PathLike, title: str = "",
             inches: float = 6.0) -> None:
    """side x side square images (side², w²) as one mosaic, the 2-D latent manifold figure."""
    plt = _pyplot()
    w = int(round(np.sqrt(images.shape[1])))
    tiles = np.asarray(images).reshape(side, side, w, w)
    mosaic = tiles.transpose(0, 2, 1, 3).reshape(side * w, side * w)
    fig, ax = plt.subplots(figsize=(inches, inches))
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def sweep_lines(lines: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
                path: str | os.PathLike, xlabel: str, ylabel: str,
                ticks: Sequence[str] | None = None, logx: bool = False, title: str = "",
                logy: bool = False) -> None:
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
    if logy:
        ax.set_yscale("log")
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
