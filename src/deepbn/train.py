"""One training loop: a jitted epoch (``lax.scan`` over minibatches) as one step of the driver.

``loss_fn(params, fixed, key, x, scalars) -> (loss, (fixed, metrics))`` is
minimised with an Optax optimiser; ``params, fixed = deepbn.nn.split(model)``:
the optimiser sees only ``params``, while ``fixed`` (masks, batch-norm running
averages, power-iteration vectors) is carried through the batches and may be
updated by the loss (running averages); ``scalars`` are per-epoch inputs such
as a temperature. An epoch shuffles the data with its own key and
runs every full batch in one compiled scan; the data stay on the device as
stored (uint8 MNIST is cast per batch).

:func:`run_epochs` runs the epochs through :func:`deepbn.run.run` (one epoch a
step, ``epochs_per_chunk`` epochs in one compiled call, a checkpoint after each
call: parameters, fixed state, optimiser state, history) and resumes from it;
when an epoch leaves non-finite parameters it stops with a message and keeps
the last good checkpoint.

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

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepbn import run as run_layer

CHECKPOINT = "checkpoint.npz"


def make_epoch(loss_fn: Callable, optimizer: optax.GradientTransformation, batch: int,
               progress: Callable[[int, float], None] | None = None,
               progress_every: int = 50, post_update: Callable | None = None,
               shard: bool = True) -> Callable:
    """A jitted ``epoch(carry, data, key, scalars) -> (carry, metrics per batch)``.

    ``carry`` is ``(params, fixed, opt_state)``; ``loss_fn`` gets ``scalars`` with
    ``epoch_fraction`` added: the share of the epoch done after this step, in (0, 1]
    (for schedules that move step by step inside an epoch); ``progress(batches_done, loss)``
    is called from inside the compiled loop every ``progress_every`` batches;
    ``post_update(params, fixed) -> (params, fixed)`` runs after every optimiser
    step (e.g. one step of the power iteration of spectral normalisation, which
    must track the weights). ``shard``: with several devices, every minibatch's rows
    are split over them (:func:`deepbn.run.batch_sharding`; parameters replicated, the
    gradient summed across devices): the same training to float rounding.
    """
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    rows = run_layer.batch_sharding(batch, "rows") if shard else None

    def epoch(carry, data, key, scalars):
        n_batches = data.shape[0] // batch
        k_perm, k_steps = jax.random.split(key)
        order = jax.random.permutation(k_perm, data.shape[0])[: n_batches * batch]

        def step(carry, xs):
            params, fixed, opt_state = carry
            idx, k, i = xs
            x = data[idx].astype(jnp.float32)
            if rows is not None:
                x = jax.lax.with_sharding_constraint(x, rows)
            step_scalars = {**scalars, "epoch_fraction": (i + 1) / n_batches}
            (loss, (fixed, metrics)), grads = grad_fn(params, fixed, k, x, step_scalars)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            if post_update is not None:
                params, fixed = post_update(params, fixed)
            if progress is not None:
                jax.lax.cond(i % progress_every == progress_every - 1,
                             lambda: jax.debug.callback(progress, i + 1, loss), lambda: None)
            return (params, fixed, opt_state), metrics

        xs = (order.reshape(n_batches, batch), jax.random.split(k_steps, n_batches),
              jnp.arange(n_batches))
        return jax.lax.scan(step, carry, xs)

    return jax.jit(epoch)


class History(NamedTuple):
    epochs_done: int
    records: list  # one dict of floats per epoch


def _strongly_typed(tree):
    """Weakly typed leaves (from Python scalars) turn strong after one optimiser update,
    which would compile the epoch a second time: make them strong from the start."""
    def strong(a):
        if isinstance(a, jax.Array) and getattr(a, "weak_type", False):
            return jnp.array(np.asarray(a), a.dtype)
        return a
    return jax.tree_util.tree_map(strong, tree)


class EpochData(NamedTuple):
    rows: jnp.ndarray  # the training data, as stored
    scalars: dict  # name -> (epochs,) per-epoch inputs (e.g. the gate temperature)


def epoch_step(key, state, data: EpochData, epoch_fn):
    """One epoch as a method step: ``state = (carry, epoch)``; run by :func:`deepbn.run.run`."""
    carry, e = state
    scalars = {k: v[e] for k, v in data.scalars.items()}
    carry, metrics = epoch_fn(carry, data.rows, key, scalars)
    return (carry, e + 1), metrics


def load_state(path: str | Path, carry):
    """The carry and per-epoch records saved in a checkpoint written by :func:`run_epochs`."""
    template = (carry, jnp.zeros((), jnp.int32))
    state, records = run_layer.read_checkpoint(path, template)
    return state[0], records


def run_epochs(
    epoch_fn: Callable,
    carry: tuple,
    data,
    key,
    epochs: int,
    out_dir: str | Path | None,
    fingerprint: dict,
    scalars_for: Callable[[int], dict] = lambda e: {},
    on_epoch: Callable[[int, dict, tuple], dict] | None = None,
    epochs_per_chunk: int = 1,
) -> tuple[tuple, History, str | None]:
    """Run ``epochs`` epochs from a fresh ``carry`` or the checkpoint in ``out_dir``.

    Each epoch is one step of :func:`deepbn.run.run` (epoch e's key is
    ``fold_in(key, e)``). ``fingerprint`` (settings) and the data's bytes identify
    the run; a checkpoint of another run is refused with a one-line error.
    ``scalars_for(e)`` gives epoch e's scalar inputs (computed here, for every
    epoch, and passed in as data). ``on_epoch(epoch, metrics, carry)`` returns
    extra per-epoch records (e.g. validation ELBO); it sees the carry at the end of
    the chunk, so an ``on_epoch`` that evaluates the model needs ``epochs_per_chunk=1``.
    Epochs of a few minibatches are dominated by the per-call overhead and the
    checkpoint: several epochs per chunk (``epochs_per_chunk``) amortise both, with
    the same result. Returns the final carry, the history and a stop message (None
    when all epochs ran).
    """
    path = Path(out_dir) / CHECKPOINT if out_dir is not None else None
    rows = jnp.asarray(data)
    table = [scalars_for(e) for e in range(max(epochs, 1))]
    scalars = {k: jnp.stack([jnp.asarray(t[k]) for t in table]) for k in table[0]}
    state = (_strongly_typed(carry), jnp.zeros((), jnp.int32))

    def records(s, done, out, seconds):
        n = len(next(iter(out.values()))) if out else 1  # the epochs of this chunk
        made = []
        for i in range(n):
            metrics = {k: float(np.mean(v[i])) for k, v in out.items()}
            epoch = done - n + i + 1
            rec = {"epoch": epoch, "seconds": seconds / n, **metrics}
            if on_epoch is not None:
                rec.update(on_epoch(epoch - 1, metrics, s[0]))
            made.append(rec)
        return made

    fp = run_layer.fingerprint(rows, {"method": "epochs", **fingerprint})
    res = run_layer.run(epoch_step, state, EpochData(rows, scalars), run_layer.raw_key(key),
                        epochs, config=epoch_fn, chunk=epochs_per_chunk, checkpoint=path,
                        fingerprint=fp, after_chunk=records)
    message = None
    if res.stopped:
        kept = ("nothing was checkpointed" if not res.steps else
                f"kept the checkpoint after epoch {res.steps}")
        last = min(res.steps + max(1, epochs_per_chunk), epochs)  # the chunk that failed
        which = (f"epoch {last}" if last == res.steps + 1 else
                 f"one of epochs {res.steps + 1}-{last}")
        message = (f"{which} produced non-finite values; stopped, {kept}; try a smaller "
                   "learning rate")
    return res.state[0], History(res.steps, res.records), message
