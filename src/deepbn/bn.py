"""Bayesian networks over named, possibly vector-valued nodes.

A :class:`BayesNet` is an Equinox module: its conditionals are the pytree
leaves (learnable), its structure (names, parents, which nodes are observed,
topological order) is static. Values are passed as a dict ``name -> array`` of
shape ``(..., dim)``; any leading batch shape works and every method is
jittable.

**Tied parameters.** Nodes may share one parameter set, as the transitions of
a dynamic Bayes net share theirs across time steps (Kingma & Welling, ICML
2014, arXiv 1402.0480, Sec. 5): ``ties`` names a group per node. The pytree
then holds each group's conditional once (:attr:`BayesNet.parameter_sets`),
and every tied node reads it, so ``log_joint``, sampling, the forms of
:mod:`deepbn.reparam` and every learner see one parameter: its gradient is
the sum of the per-node gradients and an optimiser makes one update.

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
        ties: tie groups: a mapping node -> group name, or one group name (or None:
            untied) per node. Nodes of one group share one parameter set; they need the
            same family and parameter shapes (the same parent dimensions), and the
            conditionals given for them equal parameter values.
    """

    parameter_sets: tuple  # the learnable leaves: one conditional per untied node or tie group
    names: tuple = eqx.field(static=True)
    parents: tuple = eqx.field(static=True)
    observed: tuple = eqx.field(static=True)
    order: tuple = eqx.field(static=True)
    ties: tuple = eqx.field(static=True)  # per node: its tie group's name, or None
    slots: tuple = eqx.field(static=True)  # per node: the index of its parameter set
    # per node: its dimension. Stored, not derived from the conditionals on every read:
    # callers index it per node, which made networks of thousands of nodes quadratic
    dims: tuple = eqx.field(static=True)

    def __init__(
        self,
        names: Sequence[str],
        parents: Sequence[Sequence[str]],
        conditionals: Sequence[Conditional],
        observed: Sequence[bool] | None = None,
        source: str = "network",
        ties: Mapping[str, str] | Sequence[str | None] | None = None,
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
        self.ties = _tie_list(ties, names, source)
        slots: list[int] = []
        sets: list[Conditional] = []
        first: dict[str, int] = {}
        for j, (c, group) in enumerate(zip(conditionals, self.ties)):
            if group is not None and group in first:
                k = first[group]
                _check_tie(conditionals[k], c, names[k], names[j], group, source)
                slots.append(slots[k])
                continue
            if group is not None:
                first[group] = j
            slots.append(len(sets))
            sets.append(c)
        self.names = names
        self.parents = tuple(tuple(str(p) for p in pa) for pa in parents)
        self.parameter_sets = tuple(sets)
        self.slots = tuple(slots)
        self.observed = tuple(bool(o) for o in observed) if observed is not None else (
            (True,) * len(names)
        )
        if len(self.observed) != len(names):
            raise NetworkFileError(f"{source}: need one observed flag per node")
        self.order = tuple(order)
        self.dims = tuple(int(c.dim) for c in conditionals)

    # ----- structure -------------------------------------------------------
    @property
    def conditionals(self) -> tuple[Conditional, ...]:
        """One conditional per node, in node order (tied nodes: their group's one set)."""
        return tuple(self.parameter_sets[s] for s in self.slots)

    def conditional(self, j: int) -> Conditional:
        """Node ``j``'s conditional: one lookup, where :attr:`conditionals` builds the tuple
        of every node's (per-node loops over thousands of nodes call this instead)."""
        return self.parameter_sets[self.slots[j]]

    @property
    def tie_groups(self) -> dict[str, tuple[str, ...]]:
        """Each tie group's nodes, in node order."""
        groups: dict[str, tuple[str, ...]] = {}
        for n, g in zip(self.names, self.ties):
            if g is not None:
                groups[g] = groups.get(g, ()) + (n,)
        return groups

    def with_ties(self, ties: Mapping[str, str] | Sequence[str | None] | None) -> BayesNet:
        """The same network with these tie groups (``None`` or ``{}``: every node untied,
        each with its own copy of its parameters)."""
        return BayesNet(self.names, self.parents, self.conditionals, self.observed,
                        ties=ties)

    @property
    def d(self) -> int:
        return len(self.names)

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
        return BayesNet(self.names, self.parents, self.conditionals, flags, ties=self.ties)

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
        """The network with node ``name``'s conditional replaced (a tied node: its group's)."""
        slot = self.slots[self.index(name)]
        cs = [conditional if s == slot else c for s, c in zip(self.slots, self.conditionals)]
        return BayesNet(self.names, self.parents, cs, self.observed, ties=self.ties)

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
        conds = self.conditionals
        return {
            self.names[j]: conds[j].log_prob(
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
        draws, layout = self._base_draws(key, n)
        return {name: draws[base][..., start : start + dim]
                for name, (base, start, dim) in layout.items()}

    def _base_draws(self, key, n: int | None = None):
        """({base family: one flat draw (..., total dim)}, {node: (base, start, dim)})."""
        shape = () if n is None else (n,)
        dims = self.dims
        groups: dict[str, list[int]] = {}
        for j, c in enumerate(self.conditionals):
            groups.setdefault(c.base, []).append(j)
        draws, layout = {}, {}
        for k, base in zip(jax.random.split(key, len(groups)), sorted(groups)):
            members = groups[base]
            draws[base] = base_noise(base, k, shape + (sum(dims[j] for j in members),))
            start = 0
            for j in members:
                layout[self.names[j]] = (base, start, dims[j])
                start += dims[j]
        return draws, layout

    def reparam(self, eps: Mapping[str, jnp.ndarray],
                given: Mapping[str, jnp.ndarray] | None = None) -> dict[str, jnp.ndarray]:
        """Map base noise to values in topological order: x_j = g_j(pa_j, eps_j).

        Nodes present in ``given`` keep those values (their eps is unused).
        """
        given = dict(given or {})
        values: dict[str, jnp.ndarray] = {}
        batch = self._batch_shape({**eps, **given})
        conds = self.conditionals
        for j in self.order:
            name = self.names[j]
            if name in given:
                values[name] = jnp.asarray(given[name])
            else:
                pa = self.parent_values(values, j, batch)
                values[name] = conds[j].reparam(eps[name], pa)
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
        from deepbn.reparam import runs  # reparam builds on this module

        # recurrent runs (found outside jit, where tied parameters are seen as tied) are
        # walked as one scan each and come back stacked: XLA takes minutes to compile
        # thousands of per-node slices (an unrolled kingma-dbn at T = 1000: 3 minutes)
        walks = runs(self)
        values, stacked = _sample(self, key, n, walks)
        for run, arrays in zip(walks, stacked):
            for nodes, whole in zip((run.nodes, run.emissions), arrays):
                if not isinstance(whole, jax.core.Tracer):  # split on the host: no compiling
                    whole = np.asarray(whole)
                values.update((self.names[k], jnp.asarray(whole[i]))
                              for i, k in enumerate(nodes))
        return values

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


def _tie_list(ties, names: tuple[str, ...], source: str) -> tuple[str | None, ...]:
    """One tie group name (or None) per node, from a mapping or a per-node sequence."""
    if ties is None:
        return (None,) * len(names)
    if isinstance(ties, Mapping):
        unknown = [str(n) for n in ties if n not in names]
        if unknown:
            raise NetworkFileError(f"{source}: tie of unknown node(s) {', '.join(unknown[:5])}; "
                                   "name nodes of the network")
        ties = [ties.get(n) for n in names]
    ties = tuple(ties)
    if len(ties) != len(names):
        raise NetworkFileError(f"{source}: need one tie group (or none) per node")
    for n, g in zip(names, ties):
        if g is not None and not (isinstance(g, str) and g):
            raise NetworkFileError(f"{source}: node '{n}': 'tie' must be a group name "
                                   f"(a non-empty string), got {g!r}")
    return ties


def _check_tie(a: Conditional, b: Conditional, name_a: str, name_b: str, group: str,
               source: str) -> None:
    """One-line :class:`NetworkFileError` unless ``a`` and ``b`` can share one parameter set."""
    if a is b:  # a group's own set again (with_observed, replace_conditional)
        return
    where = f"{source}: nodes '{name_a}' and '{name_b}' are tied ('{group}') but"
    fix = "tie only nodes of the same family and parameter shapes (the same parent dimensions)"
    if a.family != b.family:
        raise NetworkFileError(f"{where} are {a.family} and {b.family}; {fix}")
    leaves_a, tree_a = jax.tree_util.tree_flatten(a)
    leaves_b, tree_b = jax.tree_util.tree_flatten(b)
    shapes_a = [tuple(np.shape(x)) for x in leaves_a]
    shapes_b = [tuple(np.shape(x)) for x in leaves_b]
    if tree_a != tree_b:
        raise NetworkFileError(f"{where} their {a.family} settings (activation, layers, "
                               f"learn_scale) differ; {fix}")
    if shapes_a != shapes_b:
        diff = next(k for k, (x, y) in enumerate(zip(shapes_a, shapes_b)) if x != y)
        raise NetworkFileError(f"{where} have parameters of shapes {shapes_a[diff]} and "
                               f"{shapes_b[diff]} (dim {a.dim} and {b.dim}, parent inputs "
                               f"{a.in_dim} and {b.in_dim}); {fix}")
    if any(isinstance(x, jax.core.Tracer) for x in leaves_a + leaves_b):
        return  # being traced: the first node's values stand for the group
    if not all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(leaves_a, leaves_b)):
        raise NetworkFileError(f"{where} have different parameter values; give tied nodes "
                               "equal parameters (or drop the tie)")


@eqx.filter_jit
def _sample(bn: BayesNet, key, n, walks):
    """Ancestral sample: :meth:`BayesNet.reparam` of base noise, each run of ``walks``
    (:func:`deepbn.reparam.runs`) and its emissions in one ``lax.scan``. Returns (the
    other nodes' values, per run its values stacked (length, ..., dim), then its
    emissions' if it has them)."""
    from deepbn.reparam import stack_modules

    draws, layout = bn._base_draws(key, n)

    def noise(names):  # (len(names), ..., dim): one gather, not a slice per node
        base, _, dim = layout[names[0]]
        idx = np.concatenate([np.arange(layout[m][1], layout[m][1] + dim) for m in names])
        picked = jnp.take(draws[base], jnp.asarray(idx), axis=-1)
        return jnp.moveaxis(picked.reshape(picked.shape[:-1] + (len(names), dim)), -2, 0)

    conds = bn.conditionals
    starts = {r.nodes[0]: r for r in walks}
    batch = () if n is None else (n,)
    values: dict[str, jnp.ndarray] = {}
    stacked = []
    walked: dict[str, tuple[jnp.ndarray, int]] = {}  # a run's node -> (its stack, position)

    def parents(j):  # a walked node's value is sliced out only where a later node needs it
        got = {p: values[p] if p in values else walked[p][0][walked[p][1]]
               for p in bn.parents[j]}
        return bn.parent_values(got, j, batch)

    for j in bn.order:
        name = bn.names[j]
        if name in walked:
            continue
        if j not in starts:
            base, start, dim = layout[name]
            values[name] = conds[j].reparam(draws[base][..., start : start + dim], parents(j))
            continue
        run = starts[j]
        es = noise([bn.names[k] for k in run.nodes])
        pa0 = parents(j)
        if run.tied:
            _, zs = jax.lax.scan(lambda pa, e, step=conds[j]: (step.reparam(e, pa),) * 2,
                                 pa0, es)
        else:
            _, zs = jax.lax.scan(lambda pa, x: (x[0].reparam(x[1], pa),) * 2, pa0,
                                 (stack_modules([conds[k] for k in run.nodes]), es))
        walked.update((bn.names[k], (zs, i)) for i, k in enumerate(run.nodes))
        if run.emissions is None:
            stacked.append((zs,))
            continue
        ex = noise([bn.names[e] for e in run.emissions])
        if run.tied:
            xs = conds[run.emissions[0]].reparam(ex, zs)
        else:
            xs = jax.vmap(lambda c, e, z: c.reparam(e, z))(
                stack_modules([conds[e] for e in run.emissions]), ex, zs)
        walked.update((bn.names[k], (xs, i)) for i, k in enumerate(run.emissions))
        stacked.append((zs, xs))
    return values, stacked
