"""Conditional distributions p(node | parents) for Bayesian-network nodes.

Every family is an Equinox module (a pytree of its parameters) with

- ``log_prob(value, parents)``: log density summed over the node's dimensions,
- ``sample(key, parents)``: a draw, equal in law to ``reparam(base_sample(...))``,
- ``base_sample(key, shape)`` / ``base_log_prob(eps)``: the fixed base noise,
- ``reparam(eps, parents)``: the auxiliary (non-centred) form
  ``value = g(parents, eps)`` (Kingma & Welling, arXiv 1306.0733, Sec. 2).

``parents`` is the concatenation of the parents' values along the last axis
(shape ``(..., in_dim)``; ``in_dim`` may be 0 for a root). Any leading batch
dimensions broadcast.

Example:
    >>> import jax, jax.numpy as jnp
    >>> c = LinearGaussian(weight=jnp.ones((1, 2)), bias=jnp.zeros(1), scale=jnp.ones(1))
    >>> c.log_prob(jnp.zeros(1), jnp.zeros(2)).shape
    ()
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from deepbn.errors import NetworkFileError
from deepbn.nn import ACTIVATIONS, MLP, normal_log_prob


def _activation(name: str, where: str):
    if name not in ACTIVATIONS:
        raise NetworkFileError(
            f"{where}: unknown activation '{name}'; use one of {', '.join(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]


def gaussian_log_prob(value, mean, scale):
    """log N(value; mean, diag(scale²)), summed over the last axis."""
    return normal_log_prob(value, mean, jnp.log(scale))


def base_noise(base: str, key, shape) -> jnp.ndarray:
    """Draw from a base distribution: ``normal``, ``laplace`` or ``uniform`` on [0, 1]."""
    if base == "normal":
        return jax.random.normal(key, shape)
    if base == "laplace":
        return jax.random.laplace(key, shape)
    return jax.random.uniform(key, shape)


class Conditional(eqx.Module):
    """Base class: one node's conditional distribution given its parents."""

    family: ClassVar[str] = ""
    base: ClassVar[str] = "normal"  # base noise of the auxiliary form
    continuous: ClassVar[bool] = True  # a density in the value (HMC can move it)

    @property
    def dim(self) -> int:
        raise NotImplementedError

    @property
    def in_dim(self) -> int:
        raise NotImplementedError

    def log_prob(self, value, parents):
        raise NotImplementedError

    def reparam(self, eps, parents):
        raise NotImplementedError

    def loc_scale(self, parents):
        """(location, scale), each (..., dim): value = location + scale * eps."""
        raise NotImplementedError(f"{self.family} is not a location-scale family")

    def base_sample(self, key, shape=()):
        return base_noise(self.base, key, tuple(shape) + (self.dim,))

    def base_log_prob(self, eps):
        if self.base == "normal":
            return normal_log_prob(eps)
        if self.base == "laplace":
            return jnp.sum(-jnp.abs(eps) - jnp.log(2.0), axis=-1)
        inside = (eps >= 0) & (eps <= 1)
        return jnp.sum(jnp.where(inside, 0.0, -jnp.inf), axis=-1)

    def sample(self, key, parents):
        return self.reparam(self.base_sample(key, parents.shape[:-1]), parents)

    @property
    def is_location_scale(self) -> bool:
        """True when ``reparam`` is ``loc(parents) + scale * eps`` with a constant scale."""
        return False

    def fixed_scale(self):
        """The scale (dim,) when it does not depend on the parents, else None."""
        return self.scale if self.is_location_scale else None


class _LinearLocScale(Conditional):
    """Shared body of linear location-scale families: loc = W·pa + b."""

    weight: jnp.ndarray  # (dim, in_dim)
    bias: jnp.ndarray  # (dim,)
    scale: jnp.ndarray  # (dim,), standard deviation (Gaussian) or scale (Laplace)

    @property
    def dim(self) -> int:
        return self.weight.shape[0]

    @property
    def in_dim(self) -> int:
        return self.weight.shape[1]

    def loc(self, parents):
        return parents @ self.weight.T + self.bias

    def reparam(self, eps, parents):
        return self.loc(parents) + self.scale * eps

    def loc_scale(self, parents):
        loc = self.loc(parents)
        return loc, jnp.broadcast_to(self.scale, loc.shape)

    @property
    def is_location_scale(self) -> bool:
        return True


class LinearGaussian(_LinearLocScale):
    """x ~ N(W·pa + b, diag(scale²))."""

    family: ClassVar[str] = "linear-gaussian"

    def log_prob(self, value, parents):
        return gaussian_log_prob(value, self.loc(parents), self.scale)


class Laplace(_LinearLocScale):
    """x ~ Laplace(W·pa + b, scale), independently per dimension."""

    family: ClassVar[str] = "laplace"
    base: ClassVar[str] = "laplace"

    def log_prob(self, value, parents):
        return jnp.sum(
            -jnp.abs(value - self.loc(parents)) / self.scale - jnp.log(2.0 * self.scale), axis=-1
        )


class ActivationGaussian(_LinearLocScale):
    """x ~ N(f(W·pa + b), diag(scale²)) with f in tanh / identity / relu / ...

    The deep latent Gaussian family of Kingma & Welling (ICML 2014, Sec. 4).
    """

    family: ClassVar[str] = "activation-gaussian"
    activation: str = eqx.field(static=True, default="tanh")

    def loc(self, parents):
        return ACTIVATIONS[self.activation](parents @ self.weight.T + self.bias)

    def log_prob(self, value, parents):
        return gaussian_log_prob(value, self.loc(parents), self.scale)


class MLPGaussian(Conditional):
    """x ~ N(mu(pa), diag(sigma(pa)²)), mu (and optionally log sigma) from an MLP.

    With ``learn_scale`` the last layer has ``2 * dim`` outputs: the mean and
    the log standard deviation; otherwise the scale is the parameter ``scale``.
    """

    family: ClassVar[str] = "mlp-gaussian"
    net: MLP  # the file's ``layers`` ((W (out, in), b), ...; transposed in memory), activation
    scale: jnp.ndarray  # (dim,), used when not learn_scale
    learn_scale: bool = eqx.field(static=True, default=False)

    @staticmethod
    def init(key, in_dim: int, dim: int, hidden=(32,), learn_scale=False, activation="tanh",
             scale: float = 1.0) -> MLPGaussian:
        out = 2 * dim if learn_scale else dim
        return MLPGaussian(MLP.init(key, (in_dim, *hidden, out), activation=activation),
                           jnp.full(dim, scale), learn_scale)

    @property
    def dim(self) -> int:
        return self.scale.shape[0]

    @property
    def in_dim(self) -> int:
        return self.net.in_dim

    def _mean_scale(self, parents):
        out = self.net(parents)
        if self.learn_scale:
            return out[..., : self.dim], jnp.exp(out[..., self.dim :])
        return out, self.scale

    def log_prob(self, value, parents):
        mean, scale = self._mean_scale(parents)
        return gaussian_log_prob(value, mean, scale)

    def reparam(self, eps, parents):
        mean, scale = self._mean_scale(parents)
        return mean + scale * eps

    def loc_scale(self, parents):
        mean, scale = self._mean_scale(parents)
        return mean, jnp.broadcast_to(scale, mean.shape)

    @property
    def is_location_scale(self) -> bool:
        return not self.learn_scale


class ProductGaussian(_LinearLocScale):
    """x_k ~ N(b_k + Π_i W_ki pa_i, scale_k²): a product of the (scaled) parents.

    With unit weights the mean is the plain product of the parents, e.g. the
    arithmetic circuit's z3 ~ N(z0 z1, 0.1²) (Mouton & Kroon 2022, Sec. 5).
    """

    family: ClassVar[str] = "product-gaussian"

    def loc(self, parents):
        return jnp.prod(parents[..., None, :] * self.weight, axis=-1) + self.bias

    def log_prob(self, value, parents):
        return gaussian_log_prob(value, self.loc(parents), self.scale)


class Bernoulli(Conditional):
    """x ~ Bernoulli(sigmoid(logit(pa))) with the logit from a linear map or an MLP.

    One layer is the linear (logistic-regression) case. ``reparam`` maps
    uniform noise u to 1[u < sigmoid(logit)]: exact in law, not differentiable.
    """

    family: ClassVar[str] = "bernoulli"
    base: ClassVar[str] = "uniform"
    continuous: ClassVar[bool] = False
    net: MLP  # the file's ``layers`` and ``activation``

    @staticmethod
    def init(key, in_dim: int, dim: int, hidden=(), activation="tanh") -> Bernoulli:
        return Bernoulli(MLP.init(key, (in_dim, *hidden, dim), activation=activation))

    @property
    def dim(self) -> int:
        return self.net.out_dim

    @property
    def in_dim(self) -> int:
        return self.net.in_dim

    def logits(self, parents):
        return self.net(parents)

    def log_prob(self, value, parents):
        logit = self.logits(parents)
        return jnp.sum(
            value * jax.nn.log_sigmoid(logit) + (1 - value) * jax.nn.log_sigmoid(-logit), axis=-1
        )

    def reparam(self, eps, parents):
        return (eps < jax.nn.sigmoid(self.logits(parents))).astype(jnp.result_type(float))


FAMILIES: dict[str, type[Conditional]] = {
    c.family: c for c in (LinearGaussian, Laplace, ActivationGaussian, ProductGaussian,
                          MLPGaussian, Bernoulli)
}


def check_conditional(c: Conditional, where: str) -> None:
    """Raise :class:`NetworkFileError` if ``c``'s parameters are inconsistent."""
    arrays = [leaf for leaf in jax.tree_util.tree_leaves(c)]
    if not all(np.all(np.isfinite(np.asarray(a))) for a in arrays):
        raise NetworkFileError(f"{where}: parameters contain NaN or infinity")
    if isinstance(c, _LinearLocScale):
        w, b, s = (np.asarray(x) for x in (c.weight, c.bias, c.scale))
        if w.ndim != 2 or b.shape != (w.shape[0],) or s.shape != (w.shape[0],):
            raise NetworkFileError(
                f"{where}: wrong dimensions: weight {w.shape}, bias {b.shape}, scale {s.shape}; "
                "need weight (dim, n_parent_dims), bias (dim,), scale (dim,)"
            )
        if np.any(s <= 0):
            raise NetworkFileError(f"{where}: scale/variance must be positive, got {s.tolist()}")
    if isinstance(c, (MLPGaussian, Bernoulli)):
        layers = c.net.layers
        if not layers:
            raise NetworkFileError(f"{where}: needs at least one layer")
        for k, (w, b) in enumerate(layers):
            if w.ndim != 2 or b.shape != (w.shape[1],):  # (in, out) in memory
                raise NetworkFileError(f"{where}: layer {k} has weight {w.shape[::-1]}, "
                                       f"bias {b.shape}; need weight (out, in), bias (out,)")
            if k and w.shape[0] != layers[k - 1][0].shape[1]:
                raise NetworkFileError(f"{where}: layer {k} input size does not match layer {k-1}")
    if isinstance(c, MLPGaussian):
        s = np.asarray(c.scale)
        want = 2 * c.dim if c.learn_scale else c.dim
        if layers[-1][0].shape[1] != want:
            raise NetworkFileError(f"{where}: last layer must have {want} outputs for dim {c.dim}")
        if np.any(s <= 0):
            raise NetworkFileError(f"{where}: scale must be positive, got {s.tolist()}")
    for holder in (c, getattr(c, "net", None)):
        if hasattr(holder, "activation"):
            _activation(holder.activation, where)
