"""Train a SIReN-VAE variant on a data table and report held-out NLL and reconstruction error.

Observed columns are standardised with the training mean and standard
deviation; the reported negative log-likelihood is converted back to the data's
own units (adding Σ log sd), so variants and runs on the same data compare
directly. For a linear-Gaussian network the held-out rows' exact NLL under the
network itself (``nll_network``) is reported beside it: the floor a model of data
drawn from that network approaches. Training: Adam on the single-sample ELBO, minibatches of
``min(batch, n)``, one jitted scan per epoch (:mod:`deepbn.train`), a
checkpoint per epoch in ``out`` (resumable).

Example:
    >>> from deepbn import examples
    >>> import jax, numpy as np
    >>> bn = examples.load("example:arithmetic-circuit")
    >>> s = bn.sample(jax.random.key(0), 48)
    >>> x = np.concatenate([np.asarray(s[n]) for n in ("x0", "x1")], axis=1)
    >>> res = train(bn, bn.latent_names, "true", x[:32], x[32:], epochs=2)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepbn import nn
from deepbn import train as training
from deepbn.bn import BayesNet
from deepbn.errors import UsageError, require_count, require_positive
from deepbn.results import explain_nulls, write_json
from deepbn.siren import model as siren

# Optimiser steps per compiled call and checkpoint: with tiny training sets (2|G| rows, one
# minibatch an epoch) a call and a checkpoint per epoch took longer than the epochs did.
CHUNK_STEPS = 100

NULL_REASONS = {"nll_network": "no closed form: the network is not linear-Gaussian (or its "
                               "observed nodes have a singular covariance)"}


def check_settings(epochs: int = 300, batch: int = 64, lr: float = 3e-3, blocks: int = 4,
                   hidden: Sequence[int] = (64,), iw: int = 1000, warmup: float = 0.2) -> None:
    """One-line errors for training settings no run can use."""
    if not 0.0 <= warmup <= 1.0:
        raise UsageError(f"--warmup is a fraction of the epochs, between 0 and 1; got {warmup}")
    require_count("the number of epochs", epochs)
    require_count("the batch size", batch)
    require_count("the number of flow blocks", blocks)
    require_count("the number of importance samples", iw)
    if not hidden or min(hidden) < 1:
        raise UsageError(f"hidden layer widths must be at least 1, got {list(hidden)}")
    require_positive("the learning rate", lr)


def train(bn: BayesNet, latent: Sequence[str], variant: str, x_train: np.ndarray,
          x_test: np.ndarray, epochs: int = 300, batch: int = 64, lr: float = 3e-3,
          blocks: int = 4, hidden: Sequence[int] = (64,), seed: int = 0,
          out: str | Path | None = None, iw: int = 1000, linear: bool = False,
          warmup: float = 0.2,
          progress: Callable[[int, float], None] | None = None,
          on_epoch_end: Callable[[dict], None] | None = None) -> dict:
    """Fit one variant; returns eval numbers (``nll``, ``re``, ``seconds``) and the history.

    ``warmup``: the KL term's weight rises linearly, optimiser step by optimiser step,
    from about 0 to 1 over that fraction of the epochs (KL warm-up; Bowman et al. 2016,
    Sønderby et al. 2016, Sec. 2.3), so that latents are not switched off before the
    decoder learns to use them; the reported ELBO is always the full one.
    """
    check_settings(epochs, batch, lr, blocks, hidden, iw, warmup)
    spec = siren.SirenSpec.from_network(bn, latent, variant)
    x_train = np.asarray(x_train, np.float32)
    x_test = np.asarray(x_test, np.float32)
    for name, x in (("training", x_train), ("held-out", x_test)):
        if x.ndim != 2 or x.shape[1] != len(spec.observed):
            raise UsageError(f"{name} data have {x.shape[-1]} columns; the observed nodes are "
                             f"{', '.join(spec.observed)} ({len(spec.observed)})")
    mean, sd = x_train.mean(0), x_train.std(0)
    sd = np.where(sd > 0, sd, 1.0).astype(np.float32)
    xs_train, xs_test = (x_train - mean) / sd, (x_test - mean) / sd
    key = jax.random.key(seed)
    k_init, k_train, k_eval = jax.random.split(key, 3)
    model = siren.init(k_init, spec, blocks, tuple(hidden), linear)
    batch = max(1, min(batch, xs_train.shape[0]))
    per_epoch = steps_per_epoch(xs_train.shape[0], batch)
    opt = optax.adam(lr)

    def loss_fn(params, fixed, k, x, scalars):
        reconstruction, kl = siren.elbo_terms(nn.merge(params, fixed), k, x, spec)
        value = jnp.mean(reconstruction + kl)
        beta = scalars["beta_before"] + (scalars["beta"] - scalars["beta_before"]) * (
            scalars["epoch_fraction"])
        return -jnp.mean(reconstruction + beta * kl), (fixed, {"elbo": value, "kl_weight": beta})

    epoch_fn = training.make_epoch(
        loss_fn, opt, batch, progress,
        post_update=lambda p, f: nn.split(siren.refresh(nn.merge(p, f), 1)))
    fingerprint = {"variant": variant, "latent": list(spec.latent), "n": int(x_train.shape[0]),
                   "blocks": blocks, "hidden": list(hidden), "lr": lr, "batch": batch,
                   "linear": linear, "warmup": warmup,
                   # the KL weight of every epoch: a run resumed with another length would
                   # join two schedules
                   "warmup_epochs": warmup_epochs(epochs, warmup), "kl_ramp": "per step",
                   "seed": seed, "nodes": list(bn.names)}  # the data's bytes: in fit

    def on_epoch(e, metrics, carry):
        if on_epoch_end is not None:
            on_epoch_end({"epoch": e + 1, **metrics})
        return {}

    t0 = time.perf_counter()
    params, fixed = nn.split(model)
    carry, history, message = training.run_epochs(
        epoch_fn, (params, fixed, opt.init(params)), xs_train, k_train, epochs, out, fingerprint,
        scalars_for=lambda e: {"beta_before": np.float32(kl_weight(e - 1, epochs, warmup)),
                               "beta": np.float32(kl_weight(e, epochs, warmup))},
        on_epoch=on_epoch,
        epochs_per_chunk=-(-CHUNK_STEPS // per_epoch))
    seconds = time.perf_counter() - t0
    if message:
        raise UsageError(message)
    model = siren.refresh(nn.merge(carry[0], carry[1]), 50)
    ll = np.asarray(_importance(model, k_eval, jnp.asarray(xs_test), spec, iw))
    re = np.asarray(siren.reconstruction_error(model, k_eval, jnp.asarray(xs_test), spec))
    result = {"variant": variant, "nll": float(-ll.mean() + np.sum(np.log(sd))),
              "nll_standardised": float(-ll.mean()),
              "nll_network": network_nll(bn, spec.observed, x_test), "re": float(re.mean()),
              "seconds": round(seconds, 3), "epochs": len(history.records),
              "steps": len(history.records) * per_epoch,
              "n_train": int(x_train.shape[0]), "n_test": int(x_test.shape[0]), "iw": iw,
              "latent": list(spec.latent), "observed": list(spec.observed),
              "elbo_curve": [r["elbo"] for r in history.records]}
    if out is not None:
        write_json(Path(out) / "eval.json",
                   explain_nulls({k: v for k, v in result.items() if k != "elbo_curve"},
                                 NULL_REASONS))
    return {**result, "model": model, "spec": spec}


def steps_per_epoch(n: int, batch: int) -> int:
    """Optimiser steps in one epoch over ``n`` rows: full minibatches of ``min(batch, n)``."""
    return n // max(1, min(batch, n))


def epochs_for_steps(steps: int, n: int, batch: int) -> int:
    """The fewest epochs over ``n`` rows that take at least ``steps`` optimiser steps."""
    return -(-steps // steps_per_epoch(n, batch))


def warmup_epochs(epochs: int, warmup: float) -> int:
    """Epochs over which the KL weight rises: the ``warmup`` fraction, rounded, at least 1."""
    return max(1, round(warmup * epochs))


def kl_weight(epoch: int, epochs: int, warmup: float) -> float:
    """The KL term's weight at the end of epoch ``epoch`` (from 0; ``-1``: the start of
    training): rising linearly to 1 at the end of the first :func:`warmup_epochs`, then 1;
    always 1 when ``warmup`` is 0. Inside an epoch the weight moves linearly from the
    previous epoch's value to this one, step by step: a ramp in whole-epoch stairs cost
    up to 0.8 nats on ecoli70 with many steps per epoch (``bench/siren_warmup_probe.md``)."""
    if warmup == 0:
        return 1.0
    return min(1.0, (epoch + 1) / warmup_epochs(epochs, warmup))


def network_nll(bn: BayesNet, observed: Sequence[str], x: np.ndarray) -> float | None:
    """Mean negative log-likelihood of rows ``x`` under the network's own parameters.

    For a linear-Gaussian network the observed nodes are jointly Gaussian with the
    marginal of :meth:`BayesNet.linear_gaussian_moments`, so this is exact: the
    held-out NLL no model of these data can beat in expectation when the data were
    drawn from ``bn``. ``None`` for any other network (no closed form).
    """
    if not bn.is_linear_gaussian():
        return None
    mean, cov = bn.linear_gaussian_moments()
    offsets = np.cumsum((0,) + bn.dims)
    idx = np.concatenate([np.arange(offsets[bn.index(o)], offsets[bn.index(o) + 1])
                          for o in observed])
    try:
        chol = np.linalg.cholesky(cov[np.ix_(idx, idx)])
    except np.linalg.LinAlgError:  # a deterministic observed node: no density
        return None
    white = np.linalg.solve(chol, (np.asarray(x, np.float64) - mean[idx]).T)
    log_det = 2.0 * np.sum(np.log(np.diag(chol)))
    return float(0.5 * (np.mean(np.sum(white**2, 0)) + log_det + len(idx) * np.log(2 * np.pi)))


def _importance(model, key, x, spec, iw, chunk: int = 256):
    f = jax.jit(lambda m, k, xb: siren.importance_log_likelihood(m, k, xb, spec, iw))
    return jnp.concatenate([f(model, jax.random.fold_in(key, s), x[s : s + chunk])
                            for s in range(0, x.shape[0], chunk)])
