"""Learn a posterior over DAGs end to end: scale the data, run DiBS's SVGD through the driver
(:mod:`deepbn.run`) or order MCMC (:func:`sample_structure`), summarise as a
:class:`StructureRun`.

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
import jax.numpy as jnp
import numpy as np

from deepbn import run as run_layer
from deepbn.errors import DataError, KnowledgeError, UsageError, require_count
from deepbn.io.tables import column_centers, column_scales, scale_columns
from deepbn.structure import dibs, equivalence, order_mcmc
from deepbn.structure.config import DiBSConfig, OrderMCMCOptions, check_scaling, check_steps
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
    runs: int = 1  # independent runs; the posterior's particles are R blocks, run after run

    def particle_runs(self) -> np.ndarray:
        """The run of every particle of the posterior (all 0 for one run)."""
        return np.repeat(np.arange(self.runs), len(self.posterior.graphs) // self.runs)


def resolve_scaling(scaling: str, model: str) -> str:
    if scaling == "auto":
        return "column" if model == "bge" else "global"
    return scaling


def shard_particles(state: dibs.DiBSState) -> dibs.DiBSState:
    """The particle axis spread over all devices (:func:`deepbn.run.shard_batch`)."""
    return run_layer.shard_batch(state, state.z.shape[0], "particles")


def shard_runs(state: dibs.DiBSState) -> dibs.DiBSState:
    """The run axis of R runs spread over all devices (:func:`deepbn.run.shard_batch`)."""
    return run_layer.shard_batch(state, state.z.shape[0], "runs")


def run_keys(seed: int, runs: int) -> tuple[list, list]:
    """(init keys, step keys) of each run: run r is the single run of seed ``seed + r``."""
    pairs = [jax.random.split(jax.random.key(seed + r)) for r in range(runs)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


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
    runs: int = 1,
) -> StructureRun:
    """DiBS posterior over DAGs for data ``x`` (n, d).

    ``mask[n, j] = 1`` marks node j as intervened on in sample n. ``knowledge``
    (:class:`~deepbn.structure.knowledge.Knowledge`) fixes required and forbidden
    edges exactly and adds soft edge priors to p(G); it is part of the run's
    identity, like the settings. With
    ``checkpoint_path`` the particles are saved after every chunk of steps and a
    checkpoint of the same data, settings and seed is resumed (more steps than
    it holds continue it); one of other data or settings is refused.
    ``names`` label the variables of the posterior's networks. The posterior's
    ``fixed_pairs`` are the pairs that the hard knowledge and the mask's
    intervention targets orient (:func:`deepbn.structure.equivalence.fixed_pairs`):
    its equivalence classes are the ones they leave.

    ``runs`` R > 1 runs R independent DiBS posteriors at once: the state gains a
    leading run axis, :func:`dibs.step_runs` vmaps the SVGD step over it (each
    run's kernel couples only its own particles) and the run axis is sharded
    across devices. Run r uses the keys of seed ``seed + r``, so it is the single
    run of that seed. The posterior pools the R x particles particles: DiBS+
    weights over all of them (the distinct graphs any run found, weighted by
    p(G, D)), the empirical weights uniform; :mod:`deepbn.structure.diagnostics`
    compares the runs. R is part of the run's identity (checkpoints).
    """
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or x.shape[1] < 2:
        raise DataError(f"structure learning needs at least 2 variables, got shape {x.shape}")
    if x.shape[0] < 2:
        raise DataError("structure learning needs at least 2 samples")
    check_steps(steps)
    require_count("the number of runs", runs)
    config.check()
    check_scaling(scaling)
    d = x.shape[1]
    if names is not None and len(names) != d:
        raise DataError(f"{len(names)} names for {d} variables")
    knowledge = _checked_knowledge(knowledge, names, d)
    cfg = config.resolved(d)
    _check_required_bound(knowledge, cfg.max_parents, names)
    scaling = resolve_scaling(scaling, cfg.model)
    xs = scale_columns(x, scaling)
    data = dibs.make_data(xs, mask, cfg, knowledge)
    init_keys, step_keys = run_keys(seed, runs)
    # knowledge and runs join the identity only when given, so runs without them keep
    # their fingerprint
    arrays = (x, mask) if knowledge is None else (x, mask, *knowledge)
    settings = {"method": "dibs", "config": cfg._asdict(), "scaling": scaling, "seed": seed}
    if runs > 1:
        settings["runs"] = runs
    fp = run_layer.fingerprint(arrays, settings)
    if runs == 1:
        step, state, step_data, place = dibs.step, dibs.init(init_keys[0], d, cfg), data, \
            shard_particles
    else:
        step, state, place = dibs.step_runs, dibs.init_runs(init_keys, d, cfg), shard_runs
        step_data = dibs.RunsData(data, jnp.stack([run_layer.raw_key(k) for k in step_keys]))

    def report(done, total, out):
        if progress is not None:
            progress(done, {"edges": float(out["edges"][-1]), "cyclic": int(out["cyclic"][-1])})

    res = run_layer.run(step, state, step_data, step_keys[0], steps, config=cfg, chunk=CHUNK,
                        checkpoint=checkpoint_path, fingerprint=fp, progress=report,
                        place=place if shard else None)
    if res.stopped:
        raise UsageError(f"DiBS {res.stopped}; try a smaller step size")
    final = res.state
    if runs > 1:  # the runs' particles one after the other: run r holds block r
        final = final._replace(z=_merge_runs(final.z),
                               theta=jax.tree_util.tree_map(_merge_runs, final.theta))
    post = from_particles(final, data, cfg)
    post = post._replace(names=tuple(names) if names is not None else None, model=cfg.model,
                         x_scaled=np.asarray(xs), keep=np.asarray(data.keep),
                         center=column_centers(x, scaling), scale=column_scales(x, scaling),
                         fixed_pairs=equivalence.fixed_pairs(d, knowledge, mask))
    return StructureRun(post, data, cfg, scaling, x, res.outputs["edges"],
                        res.outputs["cyclic"].astype(int), res.seconds, res.resumed_from,
                        res.compile_seconds, knowledge, runs)


def _merge_runs(a):
    return a.reshape((a.shape[0] * a.shape[1], *a.shape[2:]))


def _checked_knowledge(knowledge, names, d):
    """The knowledge checked for the variables' names; None when it holds nothing (the same
    run as without)."""
    if knowledge is None:
        return None
    knowledge = knowledge.check(names if names is not None else [f"x{i}" for i in range(d)])
    return None if knowledge.is_empty() else knowledge


def _check_required_bound(knowledge, bound: int, names) -> None:
    if knowledge is None:
        return
    required = knowledge.required.sum(axis=0)
    if required.max() > bound:
        j = int(required.argmax())
        label = names[j] if names is not None else f"x{j}"
        raise KnowledgeError(f"knowledge: '{label}' has {int(required[j])} required "
                             f"parents, more than the bound of {bound} parents "
                             f"per node; raise max_parents (discover --max-parents)")


def sample_structure(
    x: np.ndarray,
    config: DiBSConfig = DiBSConfig(),
    options: OrderMCMCOptions = OrderMCMCOptions(),
    seed: int = 0,
    mask: np.ndarray | None = None,
    scaling: str = "auto",
    checkpoint_dir: str | Path | None = None,
    progress: Callable[[int, dict], None] | None = None,
    names: list[str] | None = None,
    knowledge: Knowledge | None = None,
):
    """A BGe posterior over DAGs for data ``x`` (n, d) by order MCMC alone
    (:func:`deepbn.structure.order_mcmc.order_mcmc`: candidates by forward selection, random
    starts, tempered chains, a growing search space, until the chains agree), with the
    prior of ``config`` (``graph_prior``, ``edges_per_node``) and ``knowledge``.

    Returns the :class:`StructureRun` whose posterior is the chains' draws (equal weights)
    and Rao-Blackwellised edge marginals, as :func:`learn_structure`'s is the particles', and
    the :class:`~deepbn.structure.order_mcmc.OrderMCMCResult`. ``checkpoint_dir`` holds a
    checkpoint per round of the sampler; a rerun resumes.
    """
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or x.shape[1] < 2:
        raise DataError(f"structure learning needs at least 2 variables, got shape {x.shape}")
    if x.shape[0] < 2:
        raise DataError("structure learning needs at least 2 samples")
    config = config.check()
    if config.model != "bge":
        raise UsageError("order MCMC sums parent sets out under BGe: use it with --model bge")
    check_scaling(scaling)
    d = x.shape[1]
    if names is not None and len(names) != d:
        raise DataError(f"{len(names)} names for {d} variables")
    opts = options.check().resolved(d)
    knowledge = _checked_knowledge(knowledge, names, d)
    _check_required_bound(knowledge, opts.max_parents, names)
    scaling = resolve_scaling(scaling, "bge")
    xs = scale_columns(x, scaling)
    cfg = config._replace(max_parents=opts.max_parents).resolved(d)
    data = dibs.make_data(xs, mask, cfg, knowledge)
    res = order_mcmc.order_mcmc(
        xs, opts.steps, opts.chains, seed, cfg.edges_per_node, cfg.graph_prior,
        opts.max_parents, opts.candidates, knowledge=knowledge, mask=mask,
        temperatures=opts.temperatures, until_rhat=opts.until_rhat,
        grow_rounds=opts.grow_rounds, checkpoint_dir=checkpoint_dir, progress=progress,
        stats=data.bge)
    n = len(res.graphs)
    post = GraphPosterior(
        res.graphs, None, res.log_joint, np.full(n, 1.0 / n), np.full(n, 1.0 / n),
        np.zeros(n, bool), names=tuple(names) if names is not None else None, model="bge",
        x_scaled=np.asarray(xs), keep=np.asarray(data.keep),
        center=column_centers(x, scaling), scale=column_scales(x, scaling),
        beyond_max_parents=np.zeros(n, bool),
        fixed_pairs=equivalence.fixed_pairs(d, knowledge, mask), edge_marginals=res.edge_probs)
    mean_edges = np.array([float(res.graphs.sum(axis=(1, 2)).mean())])
    run = StructureRun(post, data, cfg, scaling, x, mean_edges, np.zeros(1, int), res.seconds,
                       res.resumed_from, res.compile_seconds, knowledge)
    return run, res
