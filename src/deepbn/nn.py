"""The shared neural pieces: one (masked) MLP, one Gaussian log-density, fixed state.

Every network in deepbn is an :class:`MLP`: the MLP-Gaussian and Bernoulli
conditionals, DiBS's per-node MLP model, the residual blocks of the graphical
flows (masked, spectrally normalised, LipSwish), SIReN-VAE's decoder and
encoder heads (masked) and the Graph VAE's encoder and decoder (batch norm).

**Masks** make a network respect a DAG: a weight exists only where the mask
(from :mod:`deepbn.masks`, MADE-style; Germain et al., ICML 2015) allows it.
**Batch norm** (Ioffe & Szegedy, ICML 2015, Alg. 1-2) normalises each hidden
layer with the batch's statistics in training and with running averages in
evaluation. Masks, running averages and power-iteration vectors are not
trained: they are held in :class:`Fixed` leaves, and :func:`split` separates
a model into what the optimiser updates and the fixed rest, so an optimiser is
only ever built on the trained part (and weight decay or Adam state never
touches a mask).

Example:
    >>> import jax, jax.numpy as jnp
    >>> net = MLP.init(jax.random.key(0), (3, 8, 2), batch_norm=True)
    >>> y, net = net.train_apply(jnp.ones((5, 3)))         # batch statistics, new averages
    >>> params, fixed = split(net)                         # what an optimiser may see
    >>> float(normal_log_prob(jnp.zeros(2), 0.0, 0.0))     # log N(0; 0, I) in 2-d
    -1.8378770351409912
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from deepbn.masks import mlp_masks

LOG_2PI = float(np.log(2.0 * np.pi))
BATCH_NORM_MOMENTUM = 0.1  # weight of the current batch in the running averages
BATCH_NORM_EPS = 1e-5

ACTIVATIONS: dict[str, Callable] = {
    "identity": lambda x: x,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "elu": jax.nn.elu,
}


def normal_log_prob(value, loc=0.0, log_scale=0.0, axis: int | None = -1) -> jnp.ndarray:
    """log N(value; loc, exp(log_scale)²) elementwise, summed over ``axis`` (None: not summed).

    The one Gaussian log-density of the package; a log-variance v is
    ``log_scale = v / 2``, a scale s is ``log_scale = log s``.
    """
    z = (value - loc) * jnp.exp(-log_scale)
    lp = -0.5 * z * z - log_scale - 0.5 * LOG_2PI
    return lp if axis is None else jnp.sum(lp, axis=axis)


class Fixed(eqx.Module):
    """A non-trained array in a model: a mask, a running average, a power-iteration vector."""

    value: jnp.ndarray


def _is_fixed(x) -> bool:
    return isinstance(x, Fixed)


def split(model: Any) -> tuple[Any, Any]:
    """(trained part, fixed part) of a model: the inexact arrays outside :class:`Fixed`
    leaves, and everything else; :func:`merge` puts them back together."""
    return eqx.partition(model, lambda x: not _is_fixed(x) and eqx.is_inexact_array(x),
                         is_leaf=_is_fixed)


def merge(params: Any, fixed: Any) -> Any:
    """The model that :func:`split` took apart."""
    return eqx.combine(params, fixed, is_leaf=_is_fixed)


def _dense_init(key, sizes: Sequence[int], weight_std: float | None) -> tuple:
    keys = jax.random.split(key, max(len(sizes) - 1, 1))
    return tuple(
        (jax.random.normal(k, (n_in, n_out))
         * (np.sqrt(1.0 / max(n_in, 1)) if weight_std is None else weight_std),
         jnp.zeros(n_out))
        for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:]))


class MLP(eqx.Module):
    """x -> W_L a(... a(W_1 x + b_1) ...) + b_L, optionally masked and batch-normalised.

    ``layers[k] = (W (in, out), b (out,))``: ``x @ W``, which XLA's CPU matrix
    products run 15-35 % faster than ``x @ W.T`` forward and backward (measured on
    the Graph VAE's layers); ``masks[k]`` (:class:`Fixed`, (in, out) 0/1) zeroes the
    weights a DAG forbids; with batch norm every hidden layer
    (and the last one when ``activate_last``) is normalised, then scaled by
    ``norms[k] = (γ, β)``, with running averages ``running[k] = Fixed((mean, var))``.
    """

    layers: tuple
    masks: tuple | None = None
    norms: tuple | None = None
    running: tuple | None = None
    activation: str = eqx.field(static=True, default="elu")
    activate_last: bool = eqx.field(static=True, default=False)

    @staticmethod
    def init(key, sizes: Sequence[int], *, activation: str = "elu",
             allowed: Sequence[frozenset[int]] | None = None, batch_norm: bool = False,
             activate_last: bool = False, weight_std: float | None = None) -> MLP:
        """Weights N(0, 1/fan_in) (or N(0, ``weight_std``²)), zero biases, for ``sizes``.

        ``allowed[j]``: the inputs output j may depend on (:func:`deepbn.masks.mlp_masks`).
        """
        layers = _dense_init(key, sizes, weight_std)
        masks = None if allowed is None else tuple(
            Fixed(jnp.asarray(m, jnp.float32))
            for m in mlp_masks(allowed, sizes[0], tuple(sizes[1:-1])))
        norms = running = None
        if batch_norm:
            widths = list(sizes[1:-1]) + ([sizes[-1]] if activate_last else [])
            norms = tuple((jnp.ones(n), jnp.zeros(n)) for n in widths)
            running = tuple(Fixed((jnp.zeros(n), jnp.ones(n))) for n in widths)
        return MLP(layers, masks, norms, running, activation, activate_last)

    @property
    def in_dim(self) -> int:
        return self.layers[0][0].shape[0]

    @property
    def out_dim(self) -> int:
        return self.layers[-1][0].shape[1]

    def masked_layers(self) -> tuple:
        """The layers with forbidden weights zeroed."""
        if self.masks is None:
            return self.layers
        return tuple((w * jax.lax.stop_gradient(m.value), b)
                     for (w, b), m in zip(self.layers, self.masks))

    def _apply(self, x, layers, activation, train: bool):
        act = activation or (lambda k, h: ACTIVATIONS[self.activation](h))
        last = len(layers) - 1
        new_running = []
        for k, (w, b) in enumerate(layers):
            x = x @ w + b
            if k == last and not self.activate_last:
                break
            if self.norms is not None:
                mean, var = jax.lax.stop_gradient(self.running[k].value)
                if train:
                    axes = tuple(range(x.ndim - 1))
                    batch_mean, batch_var = jnp.mean(x, axis=axes), jnp.var(x, axis=axes)
                    new_running.append(Fixed(
                        ((1 - BATCH_NORM_MOMENTUM) * mean + BATCH_NORM_MOMENTUM * batch_mean,
                         (1 - BATCH_NORM_MOMENTUM) * var + BATCH_NORM_MOMENTUM * batch_var)))
                    mean, var = batch_mean, batch_var
                gamma, beta = self.norms[k]
                x = (x - mean) * jax.lax.rsqrt(var + BATCH_NORM_EPS) * gamma + beta
            x = act(k, x)
        return x, tuple(new_running)

    def __call__(self, x, *, layers: tuple | None = None,
                 activation: Callable | None = None) -> jnp.ndarray:
        """The network on ``x`` (..., in) in evaluation mode (running batch-norm averages).

        ``layers``: use these (e.g. spectrally normalised) instead of the masked
        layers; ``activation(k, h)``: the k-th hidden activation, instead of the
        named one (e.g. LipSwish with a learned β per layer).
        """
        return self._apply(x, self.masked_layers() if layers is None else layers,
                           activation, False)[0]

    def train_apply(self, x) -> tuple[jnp.ndarray, MLP]:
        """The network on a batch in training mode: batch statistics (over every leading
        axis of ``x``), and the network with updated running averages."""
        y, running = self._apply(x, self.masked_layers(), None, self.norms is not None)
        if self.norms is None:
            return y, self
        return y, eqx.tree_at(lambda m: m.running, self, running)


def apply_many(nets: Sequence[MLP], x) -> jnp.ndarray:
    """Several MLPs of the same shape and activation (unmasked, no batch norm) on one input
    ``x`` (..., in): their outputs stacked, (len(nets), ..., out).

    One matrix product per layer for all of them (the first a single wide product of the
    shared input, the rest batched over the networks) instead of one per network: for
    small heads, such as the Graph VAE's per-node networks, the cost is the number of
    operations, not their size.
    """
    first = nets[0]
    if any(n.masks is not None or n.norms is not None for n in nets):
        raise ValueError("apply_many takes unmasked MLPs without batch norm")
    act = ACTIVATIONS[first.activation]
    last = len(first.layers) - 1
    for k in range(last + 1):
        w = jnp.stack([n.layers[k][0] for n in nets])
        b = jnp.stack([n.layers[k][1] for n in nets])
        x = (jnp.einsum("...i,nio->n...o", x, w) if k == 0
             else jnp.einsum("n...i,nio->n...o", x, w))
        x = x + b.reshape(b.shape[:1] + (1,) * (x.ndim - 2) + b.shape[1:])
        if k < last or first.activate_last:
            x = act(x)
    return x
