"""Run DiBS end to end: scale data, run SVGD in jitted chunks, checkpoint, summarise.

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(100, 3))
    >>> run = learn_structure(x, steps=100, config=DiBSConfig(n_particles=4))  # doctest: +SKIP
    >>> run.posterior.edge_probs().shape  # doctest: +SKIP
    (3, 3)
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from deepbn import checkpoint
from deepbn.data import scale_columns
from deepbn.errors import DataError, UsageError
from deepbn.structure import dibs
from deepbn.structure.dibs import DiBSConfig
from deepbn.structure.posterior import GraphPosterior, summarize

CHUNK = 50  # steps per jitted scan between progress updates and checkpoints


class StructureRun(NamedTuple):
    posterior: GraphPosterior
    data: dibs.DiBSData
    config: DiBSConfig
    scaling: str
    x_reference: np.ndarray  # the training data as given, for scaling held-out data
    edges: np.ndarray  # mean edges per particle, per step
    cyclic: np.ndarray  # cyclic particles, per step
    seconds: float  # wall time of the SVGD steps run in this call (incl. compile)
    resumed_from: int  # steps already done by an earlier run (0 if fresh)


def resolve_scaling(scaling: str, model: str) -> str:
    if scaling == "auto":
        return "column" if model == "bge" else "global"
    return scaling


def _fingerprint(x, mask, cfg: DiBSConfig, scaling: str, seed: int, steps: int) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x, np.float32).tobytes())
    if mask is not None:
        h.update(np.ascontiguousarray(mask, np.float32).tobytes())
    h.update(repr((tuple(cfg), scaling, seed, steps)).encode())
    return h.hexdigest()[:16]


def shard_particles(state: dibs.DiBSState) -> dibs.DiBSState:
    """Spread the particle axis over all devices (a 1-d mesh) when there are several.

    Arrays with a leading particle axis are split across devices; everything
    else (the step counter, the key) is replicated. jit then partitions the
    vmapped per-particle work, and XLA inserts the all-gathers that SVGD's
    kernel matrix needs.
    """
    devices = jax.devices()
    P = state.z.shape[0]
    if len(devices) < 2 or P % len(devices):
        return state
    mesh = jax.sharding.Mesh(np.array(devices), ("particles",))
    split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("particles"))
    whole = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

    def place(leaf):
        if hasattr(leaf, "shape") and leaf.ndim >= 1 and leaf.shape[0] == P:
            return jax.device_put(leaf, split)
        return jax.device_put(leaf, whole)

    return jax.tree_util.tree_map(place, state)


def learn_structure(
    x: np.ndarray,
    config: DiBSConfig = DiBSConfig(),
    steps: int = 1000,
    seed: int = 0,
    mask: np.ndarray | None = None,
    scaling: str = "auto",
    checkpoint_path: str | Path | None = None,
    progress: Callable[[int, dict], None] | None = None,
    shard: bool = True,
) -> StructureRun:
    """DiBS posterior over DAGs for data ``x`` (n, d).

    ``mask[n, j] = 1`` marks node j as intervened on in sample n. With
    ``checkpoint_path`` the particles are saved after every chunk of steps and a
    matching checkpoint (same data, settings, seed) is resumed.
    """
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or x.shape[1] < 2:
        raise DataError(f"structure learning needs at least 2 variables, got shape {x.shape}")
    if x.shape[0] < 2:
        raise DataError("structure learning needs at least 2 samples")
    if steps < 1:
        raise UsageError(f"--steps must be at least 1, got {steps}")
    if config.model not in dibs.MODELS:
        raise UsageError(f"unknown model '{config.model}'; use one of {', '.join(dibs.MODELS)}")
    d = x.shape[1]
    cfg = config.resolved(d)
    scaling = resolve_scaling(scaling, cfg.model)
    xs = scale_columns(x, scaling)
    data = dibs.make_data(xs, mask, cfg)
    state = dibs.init(jax.random.key(seed), d, cfg)
    fingerprint = _fingerprint(x, mask, cfg, scaling, seed, steps)
    done, edges, cyclic = 0, [], []
    if checkpoint_path is not None:
        found = checkpoint.load(checkpoint_path, state)
        if found is not None and found[1].get("fingerprint") == fingerprint:
            state, meta = found
            done = int(meta["step"])
            edges, cyclic = list(meta["edges"]), list(meta["cyclic"])
    resumed_from = done
    if shard:
        state = shard_particles(state)
    start = time.perf_counter()
    while done < steps:
        n = min(CHUNK, steps - done)
        state, info = dibs.run(state, data, cfg, n)
        edges += np.asarray(info["edges"]).tolist()
        cyclic += np.asarray(info["cyclic"]).astype(int).tolist()
        done += n
        if checkpoint_path is not None:
            checkpoint.save(checkpoint_path, state, {"fingerprint": fingerprint, "step": done,
                                                     "edges": edges, "cyclic": cyclic})
        if progress is not None:
            progress(done, {"edges": edges[-1], "cyclic": cyclic[-1]})
    jax.block_until_ready(state.z)
    seconds = time.perf_counter() - start
    post = summarize(state, data, cfg)
    return StructureRun(post, data, cfg, scaling, x, np.array(edges), np.array(cyclic),
                        seconds, resumed_from)
