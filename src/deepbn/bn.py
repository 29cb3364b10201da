"""Bayesian networks over named, possibly vector-valued nodes.

A :class:`BayesNet` is an Equinox module: its conditionals are the pytree
leaves (learnable), its structure (names, parents, which nodes are observed,
topological order) is static. Values are passed as a dict ``name -> array`` of
shape ``(..., dim)``; any leading batch shape works and every method is
jittable.

Example:
    >>> import jax
    >>> from deepbn import examples
    >>> bn = examples.load("example:gaussian-binary-tree")
    >>> values = bn.sample(jax.random.key(0), 5)
    >>> bn.log_joint(values).shape
    (5,)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from deepbn import graph
from deepbn.conditionals import Conditional, LinearGaussian, base_noise, check_conditional
from deepbn.errors import CycleError, NetworkFileError, UsageError, require_count

MAX_SAMPLE_VALUES = 2**28  # one draw of 2 GiB as a float64 table: more is refused up front


def column_names(name: str, dim: int) -> list[str]:
    """A node's table columns: ``x`` for a scalar node, ``z[0]``, ``z[1]``, ... for a vector."""
    return [name] if dim == 1 else [f"{name}[{k}]" for k in range(dim)]


class BayesNet(eqx.Module):
    """A DAG of named nodes, each with a conditional distribution given its parents.

    Args:
        names: node names, in the network's node order (the column order of data).
        parents: for each node, its parents' names; the parent vector passed to
            the conditional is their values concatenated in this order.
        conditionals: one :class:`~deepbn.conditionals.Conditional` per node.
        observed: for each node, whether it is observed (default: all observed).
        source: where the network came from, used in error messages.
    """

    conditionals: tuple
    names: tuple = eqx.field(static=True)
    parents: tuple = eqx.field(static=True)
    observed: tuple = eqx.field(static=True)
    order: tuple = eqx.field(static=True)

    def __init__(
        self,
        names: Sequence[str],
        parents: Sequence[Sequence[str]],
        conditionals: Sequence[Conditional],
        observed: Sequence[bool] | None = None,
        source: str = "network",
    ):
        names = tuple(str(n) for n in names)
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise NetworkFileError(f"{source}: duplicate node name(s) {', '.join(dup)}")
        if not (len(parents) == len(conditionals) == len(names)):
            raise NetworkFileError(f"{source}: need one parent list and conditional per node")
        index = {n: k for k, n in enumerate(names)}
        A = np.zeros((len(names), len(names)), bool)
        for j, pa in enumerate(parents):
            for p in pa:
                if p not in index:
                    raise NetworkFileError(
                        f"{source}: node '{names[j]}' has unknown parent '{p}'; "
                        "add the node or fix the name"
                    )
                A[index[p], j] = True
        try:
            order = graph.topological_order(A, names)
        except CycleError as e:
            raise CycleError(f"{source}: {e}") from None
        for j, c in enumerate(conditionals):
            where = f"{source}: node '{names[j]}' ({c.family})"
            check_conditional(c, where)
            want = sum(conditionals[index[p]].dim for p in parents[j])
            if c.in_dim != want:
                raise NetworkFileError(
                    f"{where}: wrong dimensions: conditional takes {c.in_dim} parent inputs "
                    f"but its parents ({', '.join(parents[j]) or 'none'}) have {want} in total"
                )
        self.names = names
        self.parents = tuple(tuple(str(p) for p in pa) for pa in parents)
        self.conditionals = tuple(conditionals)
        self.observed = tuple(bool(o) for o in observed) if observed is not None else (
            (True,) * len(names)
        )
        if len(self.observed) != len(names):
            raise NetworkFileError(f"{source}: need one observed flag per node")
        self.order = tuple(order)

    # ----- structure -------------------------------------------------------
    @property
    def d(self) -> int:
        return len(self.names)

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(c.dim for c in self.conditionals)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise UsageError(
                f"unknown node '{name}'; the network's nodes are {', '.join(self.names[:10])}"
                f"{', ...' if self.d > 10 else ''}"
            ) from None

    def adjacency(self) -> np.ndarray:
        """Boolean adjacency matrix, ``A[i, j]`` = edge i -> j, in node order."""
        A = np.zeros((self.d, self.d), bool)
        for j, pa in enumerate(self.parents):
            for p in pa:
                A[self.names.index(p), j] = True
        return A

    @property
    def observed_names(self) -> tuple[str, ...]:
        return tuple(n for n, o in zip(self.names, self.observed) if o)

    @property
    def latent_names(self) -> tuple[str, ...]:
        return tuple(n for n, o in zip(self.names, self.observed) if not o)

    def with_observed(self, observed: Sequence[str]) -> BayesNet:
        """The same network with exactly the nodes ``observed`` marked observed."""
        for n in observed:
            self.index(n)
        flags = tuple(n in set(observed) for n in self.names)
        return BayesNet(self.names, self.parents, self.conditionals, flags)

    def with_latent(self, latent: Sequence[str]) -> BayesNet:
        """The same network with exactly the nodes ``latent`` hidden, every other node observed.

        Turns any network (e.g. a fully observed one learned by ``discover``) into
        one for posterior inference or EM with some variables unobserved.
        """
        latent = [str(n) for n in latent]
        if not latent:
            raise UsageError("no latent node named; give at least one node to hide")
        unknown = [n for n in latent if n not in self.names]
        if unknown:
            raise UsageError(
                f"unknown node(s) {', '.join(unknown[:5])}; the network's nodes are "
                f"{', '.join(self.names[:10])}{', ...' if self.d > 10 else ''}")
        hidden = set(latent)
        if hidden >= set(self.names):
            raise UsageError("every node would be latent; leave at least one node observed "
                             "(its column is the data)")
        return self.with_observed([n for n in self.names if n not in hidden])

    def replace_conditional(self, name: str, conditional: Conditional) -> BayesNet:
        cs = list(self.conditionals)
        cs[self.index(name)] = conditional
        return BayesNet(self.names, self.parents, cs, self.observed)

    # ----- densities and sampling -----------------------------------------
    def parent_values(self, values: Mapping[str, jnp.ndarray], j: int, batch_shape=()):
        """The concatenated parent vector of node ``j`` (``(..., in_dim)``)."""
        pa = self.parents[j]
        if not pa:
            return jnp.zeros(tuple(batch_shape) + (0,))
        return jnp.concatenate([jnp.asarray(values[p]) for p in pa], axis=-1)

    def _batch_shape(self, values: Mapping[str, jnp.ndarray]) -> tuple:
        for n in self.names:
            if n in values:
                v = jnp.asarray(values[n])
                return v.shape[:-1]
        return ()

    def log_prob_nodes(self, values: Mapping[str, jnp.ndarray]) -> dict[str, jnp.ndarray]:
        """Per-node log p(x_j | pa_j); ``values`` must hold every node."""
        batch = self._batch_shape(values)
        return {
            self.names[j]: self.conditionals[j].log_prob(
                jnp.asarray(values[self.names[j]]), self.parent_values(values, j, batch)
            )
            for j in range(self.d)
        }

    def log_joint(self, values: Mapping[str, jnp.ndarray]) -> jnp.ndarray:
        """log p(x) = sum_j log p(x_j | pa_j), batched over leading dimensions."""
        missing = [n for n in self.names if n not in values]
        if missing:
            raise UsageError(f"log_joint needs a value for every node; missing {missing[:5]}")
        return sum(self.log_prob_nodes(values).values())

    def base_sample(self, key, n: int | None = None) -> dict[str, jnp.ndarray]:
        """Base noise eps for every node (the auxiliary form's root variables).

        One draw per base family, split across nodes: far fewer random-number
        kernels to compile than one draw per node.
        """
        shape = () if n is None else (n,)
        groups: dict[str, list[int]] = {}
        for j, c in enumerate(self.conditionals):
            groups.setdefault(c.base, []).append(j)
        eps: dict[str, jnp.ndarray] = {}
        for k, base in zip(jax.random.split(key, len(groups)), sorted(groups)):
            members = groups[base]
            draw = base_noise(base, k, shape + (sum(self.dims[j] for j in members),))
            start = 0
            for j in members:
                eps[self.names[j]] = draw[..., start : start + self.dims[j]]
                start += self.dims[j]
        return eps

    def reparam(self, eps: Mapping[str, jnp.ndarray],
                given: Mapping[str, jnp.ndarray] | None = None) -> dict[str, jnp.ndarray]:
        """Map base noise to values in topological order: x_j = g_j(pa_j, eps_j).

        Nodes present in ``given`` keep those values (their eps is unused).
        """
        given = dict(given or {})
        values: dict[str, jnp.ndarray] = {}
        batch = self._batch_shape({**eps, **given})
        for j in self.order:
            name = self.names[j]
            if name in given:
                values[name] = jnp.asarray(given[name])
            else:
                pa = self.parent_values(values, j, batch)
                values[name] = self.conditionals[j].reparam(eps[name], pa)
        return values

    def sample(self, key, n: int | None = None) -> dict[str, jnp.ndarray]:
        """Ancestral sample of ``n`` joint draws (jitted); ``n=None`` gives one draw."""
        if n is not None:
            require_count("the number of samples", n)
            values = n * sum(self.dims)
            if values > MAX_SAMPLE_VALUES:
                raise UsageError(f"{n} samples of {sum(self.dims)} dimensions are {values:.3g} "
                                 f"numbers (about {values * 8 / 2**30:.0f} GiB as a table); "
                                 "draw fewer at a time, with different seeds")
        return _sample(self, key, n)

    # ----- closed forms -----------------------------------------------------
    def is_linear_gaussian(self) -> bool:
        return all(isinstance(c, LinearGaussian) for c in self.conditionals)

    def linear_gaussian_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Joint mean and covariance of all nodes (flattened in node order).

        With x = B x + b + e, e ~ N(0, D): mean = (I - B)^-1 b and
        cov = (I - B)^-1 D (I - B)^-T, in float64.
        """
        if not self.is_linear_gaussian():
            raise UsageError("closed-form moments need every node to be linear-gaussian")
        offsets = np.cumsum((0,) + self.dims)
        m = int(offsets[-1])
        B = np.zeros((m, m))
        b = np.zeros(m)
        D = np.zeros(m)
        for j, c in enumerate(self.conditionals):
            rows = slice(offsets[j], offsets[j + 1])
            col = 0
            W = np.asarray(c.weight, np.float64)
            for p in self.parents[j]:
                k = self.names.index(p)
                B[rows, offsets[k] : offsets[k + 1]] = W[:, col : col + self.dims[k]]
                col += self.dims[k]
            b[rows] = np.asarray(c.bias, np.float64)
            D[rows] = np.asarray(c.scale, np.float64) ** 2
        inv = np.linalg.inv(np.eye(m) - B)
        return inv @ b, inv @ np.diag(D) @ inv.T

    # ----- tables ------------------------------------------------------------
    def columns(self, names: Sequence[str] | None = None) -> list[str]:
        """Table column names of ``names`` (default all nodes): ``x`` or ``z[0]``, ``z[1]``."""
        cols = []
        for n in names if names is not None else self.names:
            cols += column_names(n, self.dims[self.index(n)])
        return cols

    def to_table(self, values: Mapping[str, jnp.ndarray],
                 names: Sequence[str] | None = None) -> np.ndarray:
        names = list(names if names is not None else self.names)
        return np.concatenate([np.asarray(values[n]) for n in names], axis=-1)

    def from_table(self, table, names: Sequence[str] | None = None) -> dict[str, jnp.ndarray]:
        names = list(names if names is not None else self.names)
        table = jnp.asarray(table)
        out, col = {}, 0
        for n in names:
            dim = self.dims[self.index(n)]
            out[n] = table[..., col : col + dim]
            col += dim
        return out


@eqx.filter_jit
def _sample(bn: BayesNet, key, n):
    return bn.reparam(bn.base_sample(key, n))
