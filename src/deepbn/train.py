"""One training loop: a jitted epoch (``lax.scan`` over minibatches), checkpoints, resume.

``loss_fn(params, stats, key, x, scalars) -> (loss, (stats, metrics))`` is
minimised with an Optax optimiser; ``stats`` are non-trained state carried
through the batches (batch-norm running averages), ``scalars`` per-epoch
inputs such as a temperature. An epoch shuffles the data with its own key and
runs every full batch in one compiled scan; the data stay on the device as
stored (uint8 MNIST is cast per batch).

:func:`fit` runs epochs, saves a checkpoint after each (parameters,
statistics, optimiser state, history) and resumes from it; when an epoch ends
with a non-finite loss or parameters it stops with a message and keeps the
last good checkpoint.

Example:
    >>> import jax, jax.numpy as jnp, optax
    >>> def loss_fn(p, s, key, x, scalars):
    ...     return jnp.mean((x - p) ** 2), (s, {"loss": jnp.mean((x - p) ** 2)})
    >>> epoch = make_epoch(loss_fn, optax.sgd(0.1), batch=2)
    >>> carry = (jnp.zeros(3), {}, optax.sgd(0.1).init(jnp.zeros(3)))
    >>> carry, metrics = epoch(carry, jnp.ones((4, 3)), jax.random.key(0), {})
    >>> metrics["loss"].shape
    (2,)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepbn import checkpoint
from deepbn.errors import UsageError

CHECKPOINT = "checkpoint.npz"


def make_epoch(loss_fn: Callable, optimizer: optax.GradientTransformation, batch: int,
               progress: Callable[[int, float], None] | None = None,
               progress_every: int = 50, post_update: Callable | None = None) -> Callable:
    """A jitted ``epoch(carry, data, key, scalars) -> (carry, metrics per batch)``.

    ``carry`` is ``(params, stats, opt_state)``; ``progress(batches_done, loss)``
    is called from inside the compiled loop every ``progress_every`` batches;
    ``post_update(params)`` runs after every optimiser step (e.g. one step of the
    power iteration of spectral normalisation, which must track the weights).
    """
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def epoch(carry, data, key, scalars):
        n_batches = data.shape[0] // batch
        k_perm, k_steps = jax.random.split(key)
        order = jax.random.permutation(k_perm, data.shape[0])[: n_batches * batch]

        def step(carry, xs):
            params, stats, opt_state = carry
            idx, k, i = xs
            x = data[idx].astype(jnp.float32)
            (loss, (stats, metrics)), grads = grad_fn(params, stats, k, x, scalars)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            if post_update is not None:
                params = post_update(params)
            if progress is not None:
                jax.lax.cond(i % progress_every == progress_every - 1,
                             lambda: jax.debug.callback(progress, i + 1, loss), lambda: None)
            return (params, stats, opt_state), metrics

        xs = (order.reshape(n_batches, batch), jax.random.split(k_steps, n_batches),
              jnp.arange(n_batches))
        return jax.lax.scan(step, carry, xs)

    return jax.jit(epoch)


class History(NamedTuple):
    epochs_done: int
    records: list  # one dict of floats per epoch


def _finite(tree) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree_util.tree_leaves(tree)
               if np.issubdtype(np.asarray(x).dtype, np.floating))


def _strongly_typed(tree):
    """Weakly typed leaves (from Python scalars) turn strong after one optimiser update,
    which would compile the epoch a second time: make them strong from the start."""
    def strong(a):
        if isinstance(a, jax.Array) and getattr(a, "weak_type", False):
            return jnp.array(np.asarray(a), a.dtype)
        return a
    return jax.tree_util.tree_map(strong, tree)


def fit(
    epoch_fn: Callable,
    carry: tuple,
    data,
    key,
    epochs: int,
    out_dir: str | Path | None,
    fingerprint: dict,
    scalars_for: Callable[[int], dict] = lambda e: {},
    on_epoch: Callable[[int, dict, tuple], dict] | None = None,
) -> tuple[tuple, History, str | None]:
    """Run ``epochs`` epochs from a fresh ``carry`` or the checkpoint in ``out_dir``.

    ``fingerprint`` identifies the model and data; a checkpoint with another
    fingerprint is refused with a one-line error. ``on_epoch(epoch, metrics,
    carry)`` returns extra per-epoch records (e.g. validation ELBO). Returns the
    final carry, the history and a stop message (None when all epochs ran).
    """
    path = Path(out_dir) / CHECKPOINT if out_dir is not None else None
    records: list = []
    start = 0
    if path is not None and path.exists():
        loaded = checkpoint.load(path, carry)
        if loaded is None or loaded[1].get("fingerprint") != fingerprint:
            raise UsageError(f"{path.parent} holds a checkpoint of a different model or data; "
                             "use another --out folder or delete it")
        carry, meta = loaded
        start, records = int(meta["epochs_done"]), list(meta["records"])
    data = jnp.asarray(data)
    carry = _strongly_typed(carry)
    for e in range(start, epochs):
        t0 = time.perf_counter()
        new_carry, metrics = epoch_fn(carry, data, jax.random.fold_in(key, e), scalars_for(e))
        metrics = {k: float(np.mean(np.asarray(v))) for k, v in metrics.items()}
        if not (all(np.isfinite(list(metrics.values()))) and _finite(new_carry[0])):
            bad = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            return carry, History(e, records), (
                f"epoch {e + 1} produced non-finite values ({bad}); stopped and kept the "
                f"checkpoint after epoch {e}; try a smaller learning rate")
        carry = new_carry
        record = {"epoch": e + 1, "seconds": time.perf_counter() - t0, **metrics}
        if on_epoch is not None:
            record.update(on_epoch(e, metrics, carry))
        records.append(record)
        if path is not None:
            checkpoint.save(path, carry, {"fingerprint": fingerprint, "epochs_done": e + 1,
                                          "records": records})
    return carry, History(max(start, epochs), records), None
