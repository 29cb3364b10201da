"""Run DiBS end to end: scale data, run SVGD through the driver (:mod:`deepbn.run`), summarise.

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(100, 3))
    >>> run = learn_structure(x, steps=100, config=DiBSConfig(n_particles=4))  # doctest: +SKIP
    >>> run.posterior.edge_probs().shape  # doctest: +SKIP
    (3, 3)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from deepbn import run as run_layer
from deepbn.errors import DataError, UsageError, require_choice, require_count
from deepbn.io.tables import SCALINGS, column_centers, column_scales, scale_columns
from deepbn.structure import dibs
from deepbn.structure.dibs import DiBSConfig
from deepbn.structure.knowledge import Knowledge
from deepbn.structure.posterior import GraphPosterior, from_particles

CHUNK = 50  # steps per jitted scan between progress updates and checkpoints


class StructureRun(NamedTuple):
    posterior: GraphPosterior
    data: dibs.DiBSData
    config: DiBSConfig
    scaling: str
    x_reference: np.ndarray  # the training data as given, for scaling held-out data
    edges: np.ndarray  # mean edges per particle, per step
    cyclic: np.ndarray  # cyclic particles, per step
    seconds: float  # wall time of the SVGD steps run in this call (compile excluded)
    resumed_from: int  # steps already done by an earlier run (0 if fresh)
    compile_seconds: float = 0.0
    knowledge: Knowledge | None = None  # checked; None when none was given


def check_scaling(scaling: str) -> str:
    require_choice("scaling", scaling, SCALINGS)
    return scaling


def resolve_scaling(scaling: str, model: str) -> str:
    if scaling == "auto":
        return "column" if model == "bge" else "global"
    return scaling


def shard_particles(state: dibs.DiBSState) -> dibs.DiBSState:
    """The particle axis spread over all devices (:func:`deepbn.run.shard_batch`)."""
    return run_layer.shard_batch(state, state.z.shape[0], "particles")


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
    names: list[str] | None = None,
    knowledge: Knowledge | None = None,
) -> StructureRun:
    """DiBS posterior over DAGs for data ``x`` (n, d).

    ``mask[n, j] = 1`` marks node j as intervened on in sample n. ``knowledge``
    (:class:`~deepbn.structure.knowledge.Knowledge`) fixes required and forbidden
    edges exactly and adds soft edge priors to p(G); it is part of the run's
    identity, like the settings. With
    ``checkpoint_path`` the particles are saved after every chunk of steps and a
    checkpoint of the same data, settings and seed is resumed (more steps than
    it holds continue it); one of other data or settings is refused.
    ``names`` label the variables of the posterior's networks.
    """
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or x.shape[1] < 2:
        raise DataError(f"structure learning needs at least 2 variables, got shape {x.shape}")
    if x.shape[0] < 2:
        raise DataError("structure learning needs at least 2 samples")
    require_count("the number of SVGD steps", steps)
    config.check()
    check_scaling(scaling)
    d = x.shape[1]
    if names is not None and len(names) != d:
        raise DataError(f"{len(names)} names for {d} variables")
    if knowledge is not None:
        knowledge = knowledge.check(names if names is not None else
                                    [f"x{i}" for i in range(d)])
        if knowledge.is_empty():
            knowledge = None  # no knowledge: the same run as without
    cfg = config.resolved(d)
    scaling = resolve_scaling(scaling, cfg.model)
    xs = scale_columns(x, scaling)
    data = dibs.make_data(xs, mask, cfg, knowledge)
    key_init, key_run = jax.random.split(jax.random.key(seed))
    state = dibs.init(key_init, d, cfg)
    # knowledge joins the identity only when given, so runs without it keep their fingerprint
    arrays = (x, mask) if knowledge is None else (x, mask, *knowledge)
    fp = run_layer.fingerprint(arrays, {"method": "dibs", "config": cfg._asdict(),
                                        "scaling": scaling, "seed": seed})

    def report(done, total, out):
        if progress is not None:
            progress(done, {"edges": float(out["edges"][-1]), "cyclic": int(out["cyclic"][-1])})

    res = run_layer.run(dibs.step, state, data, key_run, steps, config=cfg, chunk=CHUNK,
                        checkpoint=checkpoint_path, fingerprint=fp, progress=report,
                        place=shard_particles if shard else None)
    if res.stopped:
        raise UsageError(f"DiBS {res.stopped}; try a smaller step size")
    post = from_particles(res.state, data, cfg)
    post = post._replace(names=tuple(names) if names is not None else None, model=cfg.model,
                         x_scaled=np.asarray(xs), keep=np.asarray(data.keep),
                         center=column_centers(x, scaling), scale=column_scales(x, scaling))
    return StructureRun(post, data, cfg, scaling, x, res.outputs["edges"],
                        res.outputs["cyclic"].astype(int), res.seconds, res.resumed_from,
                        res.compile_seconds, knowledge)
