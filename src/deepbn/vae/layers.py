"""Dense layers with batch normalisation, as plain pytrees of parameters and statistics.

Parameters (trained) and batch-norm running statistics (not trained) live in
two separate pytrees so that the optimiser never sees the statistics. In
training mode a layer normalises with the batch's mean and variance and
returns updated running averages; in evaluation mode it uses the running
averages (Ioffe & Szegedy, ICML 2015, Alg. 1-2).

Example:
    >>> import jax, jax.numpy as jnp
    >>> params, stats = mlp_init(jax.random.key(0), [4, 8, 2], batch_norm=True)
    >>> y, stats = mlp_apply(params, stats, jnp.ones((3, 4)), train=True)
    >>> y.shape
    (3, 2)
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

MOMENTUM = 0.1  # weight of the current batch in the running averages
EPS = 1e-5


def mlp_init(key, sizes: Sequence[int], batch_norm: bool,
             activate_last: bool = False) -> tuple[list, list]:
    """Weights for ``sizes[0] -> ... -> sizes[-1]``; batch norm on every hidden layer.

    ``activate_last``: the last layer is a hidden layer too (normalised, activated).

    Returns ``(params, stats)``: per layer ``{"w", "b"}`` (plus ``"gamma"``,
    ``"beta"`` on normalised layers) and per layer the running ``{"mean", "var"}``
    (empty for the output layer or without batch norm).
    """
    params, stats = [], []
    keys = jax.random.split(key, len(sizes) - 1)
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        hidden = k < len(sizes) - 2 or activate_last
        layer = {"w": jax.random.normal(keys[k], (n_in, n_out)) * np.sqrt(1.0 / n_in),
                 "b": jnp.zeros(n_out)}
        stat = {}
        if batch_norm and hidden:
            layer.update(gamma=jnp.ones(n_out), beta=jnp.zeros(n_out))
            stat = {"mean": jnp.zeros(n_out), "var": jnp.ones(n_out)}
        params.append(layer)
        stats.append(stat)
    return params, stats


def mlp_apply(params: list, stats: list, x: jnp.ndarray, train: bool,
              activation=jax.nn.elu, activate_last: bool = False) -> tuple[jnp.ndarray, list]:
    """The network on a batch ``x`` (batch, in); returns the output and the new statistics.

    Batch statistics are taken over all leading axes of ``x``.
    """
    new_stats = []
    axes = tuple(range(x.ndim - 1))
    for k, (layer, stat) in enumerate(zip(params, stats)):
        x = x @ layer["w"] + layer["b"]
        if k == len(params) - 1 and not activate_last:
            new_stats.append(stat)
            break
        if "gamma" in layer:
            if train:
                mean = jnp.mean(x, axis=axes)
                var = jnp.var(x, axis=axes)
                stat = {"mean": (1 - MOMENTUM) * stat["mean"] + MOMENTUM * mean,
                        "var": (1 - MOMENTUM) * stat["var"] + MOMENTUM * var}
            else:
                mean, var = stat["mean"], stat["var"]
            x = (x - mean) * jax.lax.rsqrt(var + EPS) * layer["gamma"] + layer["beta"]
        new_stats.append(stat)
        x = activation(x)
    return x, new_stats
