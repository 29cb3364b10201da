"""Cheap uniform (and logistic) noise for DiBS's graph samples (a counter-based hash).

A DiBS step draws P x M x d² uniforms (20 particles x 16 graphs x 10⁴ entries at
d = 100: 3.2 million per step), and on a CPU JAX's Threefry generator then costs
more than the rest of the step. A graph sample compares them with σ(L); the
Gumbel-softmax graphs use the logistic variables :func:`logistic_of` makes of them.
Here the uniforms are a hash of their index, keyed by two words drawn from the
caller's JAX key: ``lowbias32`` (C. Wellons, "Hash function prospector", 2018: an
integer mixer with very low avalanche bias) applied twice, ``mix(mix(i ^ k₀) + k₁)``,
top 24 bits. About 4x faster than ``jax.random.logistic`` on 2 CPU cores; the stream is a pure
function of the key, so the same seed gives the same result. It serves Monte-Carlo
gradient estimates, not cryptography.

Example:
    >>> import jax
    >>> logistic(jax.random.key(0), (2, 3)).shape
    (2, 3)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def _lowbias32(x: jnp.ndarray) -> jnp.ndarray:
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def uniform(key: jax.Array, shape: tuple[int, ...]) -> jnp.ndarray:
    """Uniforms on (0, 1) (2⁻²⁵ away from both ends), float32."""
    k = jax.random.bits(key, (2,), jnp.uint32)
    index = jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)
    bits = _lowbias32(_lowbias32(index ^ k[0]) + k[1]) >> 8
    return (bits.astype(jnp.float32) + 0.5) * (1.0 / (1 << 24))


def logistic_of(u: jnp.ndarray) -> jnp.ndarray:
    """ε = log(1 - u) - log u, standard logistic for uniform u, with 1[L + ε > 0] = 1[u < σ(L)]:
    the logistic variable that goes with a Bernoulli draw made by comparing u with σ(L)."""
    return jnp.log1p(-u) - jnp.log(u)


def logistic(key: jax.Array, shape: tuple[int, ...]) -> jnp.ndarray:
    """Standard logistic variables, float32: :func:`logistic_of` :func:`uniform`."""
    return logistic_of(uniform(key, shape))
