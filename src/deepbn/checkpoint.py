"""Checkpoints of pytrees: save atomically, load into the structure of a template.

A checkpoint is an ``.npz`` with one array per pytree leaf plus a JSON
``meta`` record (what produced it, how far it got). Loading checks that the
leaves match the template's shapes, so a folder from a different run is
detected instead of silently mixed in.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import numpy as np

from deepbn.atomic import atomic_write


def save(path: str | os.PathLike, tree, meta: dict) -> None:
    leaves = jax.tree_util.tree_leaves(tree)
    arrays = {f"leaf_{k}": np.asarray(leaf) for k, leaf in enumerate(leaves)}
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def load(path: str | os.PathLike, template) -> tuple | None:
    """(tree, meta) from ``path`` shaped like ``template``; ``None`` if absent or mismatched."""
    path = Path(path)
    if not path.exists():
        return None
    leaves, treedef = jax.tree_util.tree_flatten(template)
    with np.load(path) as f:
        meta = json.loads(str(f["meta"]))
        loaded = [f[f"leaf_{k}"] for k in range(len(leaves)) if f"leaf_{k}" in f.files]
    if len(loaded) != len(leaves) or any(
        a.shape != np.shape(b) for a, b in zip(loaded, leaves)
    ):
        return None
    tree = jax.tree_util.tree_unflatten(
        treedef, [jax.numpy.asarray(a, dtype=np.asarray(b).dtype) for a, b in zip(loaded, leaves)]
    )
    return tree, meta
