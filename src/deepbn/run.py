"""One driver for every method: ``step`` scanned in jitted chunks, checkpointed, resumable.

A method is an ``init`` / ``step`` pair (BlackJAX / Optax style): ``init``
builds a NamedTuple state, and ``step(key, state, data, config) -> (state,
outputs)`` advances it by one step. ``data`` is a pytree of arrays passed to
the compiled program as an argument (never baked in as a constant);
``config`` is hashable and static. :func:`run` then

- scans ``step`` over chunks of ``chunk`` steps, each chunk one compiled
  ``lax.scan`` (compiled once: a last, shorter chunk runs the same program with
  its surplus steps switched off; compile time is reported apart),
- derives step t's key as ``fold_in(key, t)``, so where the chunks fall never
  changes the result,
- stacks every step's ``outputs`` (draws, per-step statistics) along a new
  leading axis,
- after each chunk saves the state, the key, the outputs so far and the
  ``records`` (from ``after_chunk``) to one checkpoint (atomically); run again with the same
  checkpoint it continues from there and ends bit-identical to an uninterrupted
  run,
- refuses, with one line naming the folder, a checkpoint made from other data
  or settings (:func:`fingerprint`: a hash of the data bytes and the settings),
- stops when a chunk leaves a non-finite value in the state, keeping the last
  good checkpoint, and says so in :attr:`RunResult.stopped`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> def step(key, x, data, config):
    ...     x = x + data * jax.random.normal(key)
    ...     return x, {"x": x}
    >>> res = run(step, jnp.zeros(()), jnp.ones(()), jax.random.key_data(jax.random.key(0)),
    ...           steps=10, chunk=4)
    >>> res.outputs["x"].shape, res.steps
    ((10,), 10)
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Hashable
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from deepbn.atomic import atomic_write
from deepbn.errors import UsageError, require_count

_log = logging.getLogger("deepbn")  # the CLI prints its INFO lines

Step = Callable[[jax.Array, Any, Any, Any], tuple[Any, Any]]


class RunResult(NamedTuple):
    state: Any
    outputs: dict  # name -> (steps, ...) numpy array, every step including resumed ones
    records: list  # JSON-able dicts, as ``after_chunk`` made them
    steps: int  # steps done in total
    resumed_from: int  # steps found in the checkpoint (0 when fresh)
    seconds: float  # wall time of this call's chunks, compile excluded
    compile_seconds: float
    stopped: str | None  # why the run stopped early (non-finite values), else None


def fingerprint(arrays, settings) -> str:
    """A short hash of the bytes, dtypes and shapes of ``arrays`` (a pytree) and of ``settings``.

    ``settings`` is anything ``json.dumps`` can write with ``default=str``.
    """
    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(arrays):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def raw_key(seed_or_key) -> jax.Array:
    """A raw uint32 key (checkpoints as a plain array) from a seed or a typed key."""
    if isinstance(seed_or_key, int):
        seed_or_key = jax.random.key(seed_or_key)
    if jnp.issubdtype(seed_or_key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(seed_or_key)
    return seed_or_key


def batch_sharding(size: int, axis_name: str = "batch") -> jax.sharding.NamedSharding | None:
    """A leading axis of length ``size`` split over all devices (a 1-d mesh); None with
    one device or when ``size`` does not divide evenly."""
    devices = jax.devices()
    if len(devices) < 2 or size % len(devices):
        return None
    mesh = jax.sharding.Mesh(np.array(devices), (axis_name,))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(axis_name))


def shard_batch(tree, size: int, axis_name: str = "batch"):
    """Spread the leading axis of every leaf of length ``size`` over all devices.

    A 1-d ``jax.sharding`` mesh over the devices; leaves whose first axis is the
    method's batch axis (particles, chains, cases) are split across it, all
    other leaves replicated. ``jit`` then partitions the vmapped work and inserts
    the collectives (e.g. the all-gather of SVGD's kernel matrix). With one
    device, or a batch that does not divide evenly, the tree is returned as is:
    the same code runs on one CPU. Several hosts: call
    ``jax.distributed.initialize()`` first, then ``jax.devices()`` spans them.
    """
    split = batch_sharding(size, axis_name)
    if split is None:
        return tree
    whole = jax.sharding.NamedSharding(split.mesh, jax.sharding.PartitionSpec())

    def place(leaf):
        if hasattr(leaf, "shape") and leaf.ndim >= 1 and leaf.shape[0] == size:
            return jax.device_put(leaf, split)
        return jax.device_put(leaf, whole)

    return jax.tree_util.tree_map(place, tree)


def _chunk_program(step: Step, config: Hashable, length: int, masked: bool):
    def chunk(state, data, key, start, end):
        def body(s, t):
            def active():
                return step(jax.random.fold_in(key, t), s, data, config)
            if not masked:  # the cond below, around every step, cost ~8% of NUTS on kingma-dbn
                return active()
            # the last chunk is short: steps past the end leave the state as it is (one
            # chunk length, one compile)
            shapes = jax.eval_shape(active)[1]
            idle = (s, jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), shapes))
            return jax.lax.cond(t < end, active, lambda: idle)

        state, out = jax.lax.scan(body, state, start + jnp.arange(length, dtype=jnp.int32))
        return state, out, _all_finite(state)

    return jax.jit(chunk)


def _all_finite(tree) -> jax.Array:
    """One boolean on the device: every float leaf finite (no copy of the state to host)."""
    leaves = [leaf for leaf in jax.tree_util.tree_leaves(tree)
              if jnp.issubdtype(jnp.result_type(leaf), jnp.floating)]
    if not leaves:
        return jnp.bool_(True)
    if jax.device_count() == 1:
        # one reduction over all leaves: with a reduction per leaf (hundreds, with the
        # optimiser's state) XLA compiles a kernel each (chunk compile 6.6 -> 5.5 s for a small
        # Graph VAE). Not across devices: the concatenation would move the state's shardings.
        dtype = jnp.result_type(*leaves)
        return jnp.all(jnp.isfinite(jnp.concatenate([jnp.ravel(v).astype(dtype)
                                                     for v in leaves])))
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))


@lru_cache(maxsize=64)
def _compiled(step: Step, config: Hashable, length: int, masked: bool, signature):
    del signature  # part of the cache key: the shapes and dtypes the program was built for
    return {}


def _signature(tree) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return (treedef, tuple((np.shape(a), str(getattr(a, "dtype", type(a))),
                            getattr(a, "sharding", None)) for a in leaves))


def _save(path: Path, state, key, outputs: dict, meta: dict) -> None:
    arrays = {f"state_{k}": np.asarray(leaf)
              for k, leaf in enumerate(jax.tree_util.tree_leaves(state))}
    arrays["key"] = np.asarray(key)
    for name, value in outputs.items():
        arrays[f"out_{name}"] = value
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def _load(path: Path, state, want: str | None):
    """(state, key, outputs, meta) from ``path``; a one-line error if it is not this run's
    (``want=None``: any fingerprint, only the shapes must fit)."""
    refuse = UsageError(f"{path.parent}: holds a checkpoint of other data or settings; "
                        "use another output folder or delete it")
    try:
        with np.load(path) as f:
            meta = json.loads(str(f["meta"]))
            files = set(f.files)
            if want is not None and meta.get("fingerprint") != want:
                raise refuse
            leaves, treedef = jax.tree_util.tree_flatten(state)
            stored = [f[f"state_{k}"] for k in range(len(leaves)) if f"state_{k}" in files]
            key = f["key"]
            outputs = {n[4:]: f[n] for n in files if n.startswith("out_")}
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 - any unreadable file is reported the same way
        raise UsageError(f"{path}: cannot read the checkpoint ({type(e).__name__}); "
                         "delete it to start again") from None
    if len(stored) != len(leaves) or any(np.shape(a) != np.shape(b)
                                         for a, b in zip(stored, leaves)):
        raise refuse
    restored = [jnp.asarray(a, dtype=np.asarray(b).dtype) for a, b in zip(stored, leaves)]
    return jax.tree_util.tree_unflatten(treedef, restored), jnp.asarray(key), outputs, meta


def read_checkpoint(path: str | Path, template) -> tuple[Any, list]:
    """(state, records) of a checkpoint :func:`run` wrote, shaped like ``template``."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path.parent}: no checkpoint; run the command that trains first")
    state, _, _, meta = _load(path, template, None)
    return state, list(meta.get("records", []))


def run(
    step: Step,
    state,
    data,
    key,
    steps: int,
    *,
    config: Hashable = None,
    chunk: int = 50,
    checkpoint: str | Path | None = None,
    fingerprint: str | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
    after_chunk: Callable[[Any, int, dict, float], dict] | None = None,
    place: Callable[[Any], Any] | None = None,
    until: Callable[[Any, int], bool] | None = None,
) -> RunResult:
    """Run ``steps`` steps of ``step`` from ``state`` (or from the checkpoint), see the module doc.

    ``key`` is a raw key (:func:`raw_key`); ``progress(done, steps, chunk_outputs)``
    is called after each chunk; ``after_chunk(state, done, chunk_outputs,
    seconds)`` returns the records (JSON-able dicts: one for the chunk, or one per
    step) kept in :attr:`RunResult.records` and the checkpoint; ``place(state)`` puts
    the state on devices (e.g. shards its batch axis over a mesh); ``until(state, done)``,
    asked after each chunk (and of a resumed state), ends the run early when it returns True
    (a convergence test): :attr:`RunResult.steps` then says how far it went.
    """
    require_count("the number of steps", steps, minimum=0)
    chunk = max(1, int(chunk))
    key = raw_key(key)
    path = Path(checkpoint) if checkpoint is not None else None
    done, outputs, records = 0, {}, []
    if path is not None and path.exists():
        state, key, outputs, meta = _load(path, state, fingerprint)
        done, records = int(meta["steps"]), list(meta.get("records", []))
        if done > steps:
            raise UsageError(f"{path.parent}: holds a run of {done} steps, more than the {steps} "
                             f"asked for; ask for at least {done} or use another output folder")
        if done:
            _log.info(f"resuming from {path}: {done} of {steps} steps already done")
    resumed_from = done
    if place is not None:
        state = place(state)
    parts = {n: [v] for n, v in outputs.items()}
    seconds = compile_seconds = 0.0
    stopped = None
    length = min(chunk, steps)
    end = jnp.asarray(steps, jnp.int32)
    program = None
    while done < steps:
        if until is not None and done and until(state, done):
            break
        n = min(length, steps - done)
        start = jnp.asarray(done, jnp.int32)
        if program is None:  # the state's shapes and placement stay those of the first chunk
            masked = (steps - done) % length != 0
            compiled = _compiled(step, config, length, masked, _signature((state, data, key)))
            if "program" not in compiled:
                t0 = time.perf_counter()
                compiled["program"] = _chunk_program(step, config, length, masked).lower(
                    state, data, key, start, end).compile()
                compile_seconds += time.perf_counter() - t0
            program = compiled["program"]
        t0 = time.perf_counter()
        new_state, out, finite = jax.block_until_ready(program(state, data, key, start, end))
        chunk_seconds = time.perf_counter() - t0
        seconds += chunk_seconds
        out = jax.tree_util.tree_map(lambda a, n=n: np.asarray(a)[:n], out)
        if not bool(finite):
            kept = ("nothing was checkpointed" if not done else
                    f"kept the state after step {done}" + (" (checkpointed)" if path else ""))
            stopped = (f"step {done + 1}-{done + n} produced non-finite values; stopped, {kept}")
            break
        # XLA may give the outputs other shardings than the inputs had; the next chunk's
        # program was compiled for the placement ``place`` makes
        state = new_state if place is None else place(new_state)
        done += n
        for name, value in (out or {}).items():
            parts.setdefault(name, []).append(value)
        if after_chunk is not None:
            records.extend(after_chunk(state, done, out or {}, chunk_seconds))
        if path is not None:
            t0 = time.perf_counter()
            outputs = {k: np.concatenate(v) for k, v in parts.items()}
            parts = {k: [v] for k, v in outputs.items()}
            _save(path, state, key, outputs, {"fingerprint": fingerprint, "steps": done,
                                              "records": records})
            seconds += time.perf_counter() - t0
        if progress is not None:
            progress(done, steps, out or {})
    outputs = {k: np.concatenate(v) for k, v in parts.items()}
    return RunResult(state, outputs, records, done, resumed_from, seconds, compile_seconds,
                     stopped)
