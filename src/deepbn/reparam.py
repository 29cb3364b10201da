"""Per-node centring of a network's latent nodes as a config: centred, auxiliary or partial.

A latent node j with a location-scale conditional, z_j = μ_j(pa_j) + σ_j(pa_j) ε_j,
can be sampled in its own value (**centred**, CP) or in its base noise ε_j
(**auxiliary** / differentiable non-centred, DNCP; Kingma & Welling,
arXiv 1306.0733 and ICML 2014, arXiv 1402.0480, Sec. 2-3). Both are special
cases of the **partially centred** coordinate with weight c ∈ [0, 1]
(Papaspiliopoulos, Roberts & Sköld, Statist. Sci. 2007, Sec. 4; in this
scaled form also Gorinova, Moore & Hoffman, ICML 2020):

    z_j = σ_j^{1-c} u_j + (1 - c) μ_j,        u_j | pa_j ~ σ_j^{c-1} (N(cμ_j, σ_j²) shifted),

so c = 1 gives u_j = z_j and c = 0 gives u_j = ε_j. The density of u_j given
its parents is p_ε(ε_j) σ_j^{-c} with ε_j = (z_j - μ_j) / σ_j. Walking the
network in topological order turns any such network plus observed values into
one log-density over the flat vector of all u: no per-model code.

Which c (Kingma & Welling 2014, Sec. 3; PRS 2007, Sec. 4.2): in the Gaussian
two-level model z ~ N(μ, σ²), data ~ N(z, τ²), the sampler mixes best at
c = σ² / (σ² + τ²): centred when the data pin z down far more tightly than
its conditional prior does, auxiliary when they do not. :meth:`Reparam.auto`
measures both from a local Gaussian approximation of the auxiliary form: at
its approximate mode the curvature of -log p(ε | data) in ε_j is
h_j = 1 + σ_j² λ_j, where λ_j is the data's precision about z_j, so
κ_j = 1 - 1/h_j = σ_j² λ_j / (1 + σ_j² λ_j) is that rule; by default a node is
centred when κ_j > 1/2 and auxiliary otherwise (the choice between the two forms
the papers make), with the continuous κ available as ``partial=True``.

The choice is data, as NumPyro's ``reparam`` handlers make it a config over a
model: a :class:`Reparam` holds the weights c, one per case and coordinate, and
the network's recurrent runs of nodes (:class:`Run`), found once outside ``jit``
and walked as one ``lax.scan`` each. :func:`log_density`, :func:`values` (u to
every node's value), :func:`coordinates` (its inverse) and
:func:`prior_latents` read it.

Example:
    >>> import jax
    >>> from deepbn import examples
    >>> bn = examples.kingma_dbn(T=4, dim=2)  # z1 -> z2 -> z3 -> z4, each z_t emits x_t
    >>> x = bn.sample(jax.random.key(0), 1)
    >>> observed = {n: x[n] for n in bn.observed_names}
    >>> centred = Reparam.centred(bn, n_cases=1)
    >>> [[bn.names[k] for k in run.nodes] for run in centred.runs]
    [['z2', 'z3', 'z4']]
    >>> z = centred.space.join({n: x[n] for n in centred.space.names})  # centred: u = z
    >>> auxiliary = Reparam.auxiliary(bn, n_cases=1)
    >>> eps = coordinates(bn, auxiliary, z, observed)  # auxiliary: u = ε
    >>> jump = log_density(bn, auxiliary, eps, observed) - log_density(bn, centred, z, observed)
    >>> round(float(jump), 2)  # Σ_j log σ_j: 3 transition nodes of 2 coordinates, σ = 0.1
    -13.82
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepbn.bn import BayesNet
from deepbn.errors import UsageError
from deepbn.inference.config import FORMS  # noqa: E402


class LatentSpace(NamedTuple):
    """Where each latent node's coordinates sit in the flat vector u (per case)."""

    names: tuple[str, ...]  # latent nodes in topological order
    dims: tuple[int, ...]
    offsets: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(sum(self.dims))

    @staticmethod
    def from_network(bn: BayesNet) -> LatentSpace:
        latent = [bn.names[j] for j in bn.order if not bn.observed[j]]
        if not latent:
            raise UsageError("the network has no latent nodes: nothing to infer; "
                             "mark some nodes as latent (observed: false)")
        for name in latent:
            c = bn.conditional(bn.index(name))
            if not c.continuous:
                raise UsageError(f"latent node '{name}' is {c.family}: HMC needs continuous "
                                 "latent nodes; observe it or give it a continuous family")
        dims = tuple(bn.dims[bn.index(n)] for n in latent)
        return LatentSpace(tuple(latent), dims, tuple(int(o) for o in np.cumsum((0,) + dims)[:-1]))

    def split(self, u: jnp.ndarray) -> dict[str, jnp.ndarray]:
        return {n: u[..., o : o + k] for n, o, k in zip(self.names, self.offsets, self.dims)}

    def join(self, parts: Mapping[str, jnp.ndarray]) -> jnp.ndarray:
        return jnp.concatenate([jnp.asarray(parts[n]) for n in self.names], axis=-1)

    def node_values(self, per_coordinate: np.ndarray) -> dict[str, float]:
        """Mean of a per-coordinate quantity over each node's coordinates (and cases)."""
        a = np.asarray(per_coordinate).reshape(-1, self.size)
        return {n: float(a[:, o : o + k].mean()) for n, o, k in zip(self.names, self.offsets,
                                                                     self.dims)}


class Run(NamedTuple):
    """A recurrent run of latent nodes, walked as one ``lax.scan`` (see :func:`runs`)."""

    nodes: tuple[int, ...]  # latent nodes, each the only parent of the next
    emissions: tuple[int, ...] | None  # one observed single-parent child per node, or None
    tied: bool = False  # every step (and emission) has the same parameter values


def _same_kind(a, b) -> bool:
    """Two conditionals that can be stacked: same class, static fields and parameter shapes."""
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    return ta == tb and all(np.shape(x) == np.shape(y) for x, y in zip(la, lb))


def _concrete_equal(modules) -> bool:
    """All modules hold identical concrete parameters (never true while being traced)."""
    leaves = [jax.tree_util.tree_leaves(m) for m in modules]
    for group in zip(*leaves):
        if any(isinstance(x, jax.core.Tracer) for x in group):
            return False
        first = np.asarray(group[0])
        if not all(np.array_equal(first, np.asarray(x)) for x in group[1:]):
            return False
    return True


def runs(bn: BayesNet, min_length: int = 3, tie: bool = True) -> tuple[Run, ...]:
    """Runs of latent nodes z_a -> z_b -> ... with stackable conditionals (a recurrent BN).

    A node extends a run when its only parent is the run's last node and its
    conditional has the same kind as the run's and maps dim to dim. If every node of
    a run has an observed child whose only parent it is, all of the same kind, those
    emissions join the run. Walking a run is one ``lax.scan`` instead of one
    unrolled block per time step: far smaller programs to compile for dynamic
    Bayes nets. A run is ``tied`` when its nodes (and its emissions) share one
    parameter set: when they are one tie group of the network (see
    :class:`~deepbn.bn.BayesNet`), or, with ``tie``, when their parameters are
    concrete and equal at every step (never so while traced, so call this
    outside ``jit``). The scan then closes over one set of parameters instead of
    slicing a stacked copy at every step, about half the cost of a gradient on
    ``kingma-dbn``. A run tied by equal values stands for those values only:
    pass ``tie=False`` for a network whose parameters are being learned (a tie
    group's run stays tied: its nodes share one parameter however it is learned).
    """
    index = {n: k for k, n in enumerate(bn.names)}
    conds = bn.conditionals
    children: dict[int, list[int]] = {k: [] for k in range(bn.d)}
    for j, pa in enumerate(bn.parents):
        for p in pa:
            children[index[p]].append(j)
    used: set[int] = set()
    found = []
    for j in bn.order:
        if j in used or bn.observed[j] or conds[j].dim != conds[j].in_dim:
            continue
        run = [j]
        while True:
            nxt = [c for c in children[run[-1]] if not bn.observed[c]
                   and bn.parents[c] == (bn.names[run[-1]],) and _same_kind(conds[c], conds[j])]
            if len(nxt) != 1 or nxt[0] in used:
                break
            run.append(nxt[0])
        if len(run) < min_length:
            continue
        used.update(run)
        emissions = []
        for k in run:
            obs = [c for c in children[k] if bn.observed[c] and bn.parents[c] == (bn.names[k],)]
            emissions.append(obs[0] if len(obs) == 1 else None)
        ok = all(e is not None for e in emissions) and all(
            _same_kind(conds[e], conds[emissions[0]]) for e in emissions)
        def shared(nodes):  # one parameter set: structurally, or (tie) by equal values
            return len({bn.slots[k] for k in nodes}) == 1 or (
                tie and _concrete_equal([conds[k] for k in nodes]))

        tied = shared(run) and (not ok or shared(emissions))
        found.append(Run(tuple(run), tuple(emissions) if ok else None, tied))
    return tuple(found)


class Reparam(eqx.Module):
    """Which coordinates the latent nodes are sampled in: the config the log-density reads.

    ``weights`` (n_cases, space.size) are the centring weights c per case and
    coordinate: 1 centred, 0 auxiliary, in between partially centred (see the
    module docstring). ``runs`` are the recurrent runs walked as one scan each
    (static; :func:`runs`); with none the network is walked node by node, with
    the same density. Build one with :meth:`centred`, :meth:`auxiliary`,
    :meth:`auto`, :meth:`from_form` or :meth:`from_weights`.
    """

    space: LatentSpace = eqx.field(static=True)
    weights: jnp.ndarray
    runs: tuple[Run, ...] = eqx.field(static=True, default=())

    @property
    def n_cases(self) -> int:
        return int(self.weights.shape[0])

    @classmethod
    def from_weights(cls, bn: BayesNet, weights, n_cases: int, tie: bool = True) -> Reparam:
        """Given centring weights, broadcast to (n_cases, size) (e.g. one weight per coordinate)."""
        space = LatentSpace.from_network(bn)
        try:
            w = jnp.broadcast_to(jnp.asarray(weights, jnp.float32), (n_cases, space.size))
        except ValueError:
            raise UsageError(f"centring weights of shape {np.shape(weights)} do not fit "
                             f"{n_cases} case(s) x {space.size} latent coordinates") from None
        return cls(space, w, runs(bn, tie=tie))

    @classmethod
    def centred(cls, bn: BayesNet, n_cases: int, tie: bool = True) -> Reparam:
        """Every latent node in its own value (c = 1): u = z."""
        space = LatentSpace.from_network(bn)
        return cls(space, jnp.ones((n_cases, space.size)), runs(bn, tie=tie))

    @classmethod
    def auxiliary(cls, bn: BayesNet, n_cases: int, tie: bool = True) -> Reparam:
        """Every latent node in its base noise (c = 0): u = ε."""
        space = LatentSpace.from_network(bn)
        return cls(space, jnp.zeros((n_cases, space.size)), runs(bn, tie=tie))

    @classmethod
    def auto(cls, bn: BayesNet, observed: Mapping[str, jnp.ndarray], n_cases: int,
             partial: bool = False, mode_steps: int = 100, learning_rate: float = 0.05,
             tie: bool = True) -> Reparam:
        """Centring weights from the auxiliary form's curvature at its approximate mode.

        κ = 1 - 1/h per coordinate, h the diagonal of -∇² log p(ε, data) after
        ``mode_steps`` Adam steps from ε = 0 (the prior mode); cases are
        independent, so one Hessian-vector product per coordinate serves all.
        By default each latent node of each case is then centred when its mean κ
        exceeds 1/2 (the data dominate its conditional prior) and auxiliary
        otherwise. ``partial=True`` keeps κ itself, PRS's partial centring: optimal
        in a two-level Gaussian model, but in runs of small-noise nodes (the
        DBN) even κ ≈ 0.05 couples each coordinate to its parents and slows
        mixing several-fold, so the binary rule is the default.
        """
        pilot = cls.auxiliary(bn, n_cases, tie=tie)
        kappa = np.asarray(_kappa(bn, pilot, dict(observed), mode_steps, learning_rate))
        if partial:
            return cls(pilot.space, jnp.asarray(kappa), pilot.runs)
        c = np.zeros_like(kappa)
        for o, k in zip(pilot.space.offsets, pilot.space.dims):
            c[:, o : o + k] = (kappa[:, o : o + k].mean(axis=1, keepdims=True) > 0.5)
        return cls(pilot.space, jnp.asarray(c), pilot.runs)

    @classmethod
    def from_form(cls, bn: BayesNet, form: str, observed: Mapping[str, jnp.ndarray],
                  n_cases: int, tie: bool = True) -> Reparam:
        """``centred``, ``auxiliary`` or ``auto`` (:meth:`auto` with its defaults) by name."""
        if form == "centred":
            return cls.centred(bn, n_cases, tie=tie)
        if form == "auxiliary":
            return cls.auxiliary(bn, n_cases, tie=tie)
        if form == "auto":
            return cls.auto(bn, observed, n_cases, tie=tie)
        raise UsageError(f"unknown form '{form}'; use one of {', '.join(FORMS)}")

    def case(self, i) -> Reparam:
        """The config of case ``i`` alone (weights (1, size))."""
        return Reparam(self.space, self.weights[i][None], self.runs)

    def node_by_node(self) -> Reparam:
        """The same centring walked node by node, no run scanned (the same density)."""
        return Reparam(self.space, self.weights, ())


def stack_modules(modules):
    """Modules of one structure (e.g. a run's per-step conditionals) as one module whose
    leaves carry a leading axis, for ``lax.scan``."""
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *modules)


def _latent_step(cond, pa, u, c):
    """z = σ^{1-c} u + (1-c) μ and the log-density of u given the parents."""
    loc, scale = cond.loc_scale(pa)
    z = scale ** (1.0 - c) * u + (1.0 - c) * loc
    return z, _latent_term(cond, loc, scale, z, c)


def _latent_term(cond, loc, scale, z, c):
    eps = (z - loc) / scale
    return cond.base_log_prob(eps) - jnp.sum(c * jnp.log(scale), axis=-1)


def _run_coordinates(space: LatentSpace, names, parts, flat):
    """(length, *batch, dim) coordinates of a run's nodes; one slice when contiguous."""
    at = [space.names.index(n) for n in names]
    dim = space.dims[at[0]]
    if at == list(range(at[0], at[0] + len(at))):
        o = space.offsets[at[0]]
        block = flat[..., o : o + dim * len(at)]
        return jnp.moveaxis(block.reshape(*block.shape[:-1], len(at), dim), -2, 0)
    return jnp.stack([parts[n] for n in names])


def _scan_run(bn, space, run: Run, pa0, u, centring, u_parts, c_parts, observed):
    """Values (length, *batch, dim) and summed log-density (*batch) of one run.

    The scan carries only the state; every log-density term is then evaluated
    for all steps at once, outside the sequential loop, so that the loop's
    forward and backward passes stay as small as the hand-written recurrence.
    """
    names = [bn.names[k] for k in run.nodes]
    us = _run_coordinates(space, names, u_parts, u)
    cs = _run_coordinates(space, names, c_parts, centring)
    if run.tied:
        cond = bn.conditional(run.nodes[0])
        per_step = None  # the scan closes over the one set of parameters
    else:
        cond = per_step = stack_modules([bn.conditional(k) for k in run.nodes])
    known = _known_run(space, names, centring)
    if known is not None and np.all(known == 1.0):
        # centred: z = u, no sequential loop at all
        return _run_terms(bn, run, cond, per_step, pa0, us, cs, observed)
    if known is not None and np.all(known == 0.0):
        # auxiliary: ε = u, so p(u) needs no second pass over the locations
        zs = _run_states(run, cond, per_step, pa0, us, cs)
        base = bn.conditional(run.nodes[0])
        return _run_emissions(bn, run, jnp.sum(base.base_log_prob(us), axis=0), zs, observed)
    return _run_terms(bn, run, cond, per_step, pa0,
                      _run_states(run, cond, per_step, pa0, us, cs), cs, observed)


def _known_run(space: LatentSpace, names, weights) -> np.ndarray | None:
    """A run's centring weights when they are a compile-time constant, else None.

    Read with numpy: any jnp operation inside a trace is staged, constant or not.
    """
    try:
        weights = np.asarray(weights)
    except jax.errors.TracerArrayConversionError:
        return None
    at = [space.names.index(n) for n in names]
    return np.stack([weights[..., space.offsets[k] : space.offsets[k] + space.dims[k]]
                     for k in at])


def _run_states(run: Run, cond, per_step, pa0, us, cs):
    """The run's values z (length, *batch, dim): the sequential part."""
    fixed = cond.fixed_scale()
    if fixed is not None:
        # σ does not depend on the parents: σ^{1-c} u leaves the loop
        fixed = fixed.reshape(fixed.shape[:-1] + (1,) * (us.ndim - fixed.ndim) + fixed.shape[-1:])
        shift, weight = fixed ** (1.0 - cs) * us, 1.0 - cs

        def step(pa, x):
            k, s, w = x
            return (s + w * k.loc_scale(pa)[0],) * 2
    else:
        def step(pa, x):
            k, u_t, c_t = x
            loc, scale = k.loc_scale(pa)
            return (scale ** (1.0 - c_t) * u_t + (1.0 - c_t) * loc,) * 2

    if run.tied:
        _, zs = jax.lax.scan(lambda pa, x: step(pa, (cond,) + x), pa0,
                             (shift, weight) if fixed is not None else (us, cs))
    else:
        _, zs = jax.lax.scan(step, pa0, (per_step, shift, weight) if fixed is not None
                             else (per_step, us, cs))
    return zs


def _run_terms(bn, run: Run, cond, per_step, pa0, zs, cs, observed):
    """(zs, summed log-density): every term at once, outside the sequential loop."""
    pas = jnp.concatenate([pa0[None], zs[:-1]])
    if run.tied:
        log_p = jnp.sum(_latent_term(cond, *cond.loc_scale(pas), zs, cs), axis=0)
    else:
        log_p = jnp.sum(jax.vmap(lambda k, pa, z, c: _latent_term(k, *k.loc_scale(pa), z, c))(
            per_step, pas, zs, cs), axis=0)
    return _run_emissions(bn, run, log_p, zs, observed)


def _run_emissions(bn, run: Run, log_p, zs, observed):
    """``log_p`` plus the run's emissions' log-densities given its values ``zs``."""
    if run.emissions is not None:
        xs = jnp.stack([observed[bn.names[e]] for e in run.emissions])
        if run.tied:
            log_p = log_p + jnp.sum(bn.conditional(run.emissions[0]).log_prob(xs, zs), axis=0)
        else:
            em = stack_modules([bn.conditional(e) for e in run.emissions])
            log_p = log_p + jnp.sum(jax.vmap(lambda k, x, z: k.log_prob(x, z))(em, xs, zs),
                                    axis=0)
    return zs, log_p


def values(bn: BayesNet, reparam: Reparam, u: jnp.ndarray,
           observed: Mapping[str, jnp.ndarray]) -> tuple[dict[str, jnp.ndarray], jnp.ndarray]:
    """Every node's value for the coordinates ``u`` (n_cases, size), and log p(u, observed).

    Latent nodes are mapped from ``u`` in topological order, observed nodes keep
    their values; the log-density is per case, shape (n_cases,). The reparam's
    runs are walked as one scan each, every other node one at a time.
    """
    space, centring = reparam.space, reparam.weights
    u_parts = space.split(u)
    c_parts = space.split(centring)
    batch = u.shape[:-1]
    out: dict[str, jnp.ndarray] = {}
    log_p = jnp.zeros(batch)
    starts = {r.nodes[0]: r for r in reparam.runs}
    done: set[int] = set()
    for j in bn.order:
        if j in done:
            continue
        name = bn.names[j]
        cond = bn.conditional(j)
        if j in starts:
            run = starts[j]
            zs, lp = _scan_run(bn, space, run, bn.parent_values(out, j, batch), u, centring,
                               u_parts, c_parts, observed)
            for k, n in enumerate(bn.names[i] for i in run.nodes):
                out[n] = zs[k]
            for e in run.emissions or ():
                out[bn.names[e]] = observed[bn.names[e]]
            done.update(run.nodes + (run.emissions or ()))
            log_p = log_p + lp
            continue
        pa = bn.parent_values(out, j, batch)
        if bn.observed[j]:
            out[name] = observed[name]
            log_p = log_p + cond.log_prob(observed[name], pa)
            continue
        out[name], lp = _latent_step(cond, pa, u_parts[name], c_parts[name])
        log_p = log_p + lp
    return out, log_p


def log_density(bn: BayesNet, reparam: Reparam, u: jnp.ndarray,
                observed: Mapping[str, jnp.ndarray]) -> jnp.ndarray:
    """log p(u, observed) summed over cases; ``u`` is (n_cases, size)."""
    return jnp.sum(values(bn, reparam, u, observed)[1])


def latent_values(bn: BayesNet, reparam: Reparam, u: jnp.ndarray,
                  observed: Mapping[str, jnp.ndarray]) -> jnp.ndarray:
    """The latent values z (same shape as ``u``) that the coordinates ``u`` stand for."""
    out, _ = values(bn, reparam, u, observed)
    return reparam.space.join({n: out[n] for n in reparam.space.names})


def coordinates(bn: BayesNet, reparam: Reparam, z: jnp.ndarray,
                observed: Mapping[str, jnp.ndarray]) -> jnp.ndarray:
    """Inverse of :func:`latent_values`: the coordinates u of the latent values z."""
    space = reparam.space
    z_parts = space.split(z)
    c_parts = space.split(reparam.weights)
    batch = z.shape[:-1]
    known: dict[str, jnp.ndarray] = dict(observed)
    u_parts = {}
    for j in bn.order:
        name = bn.names[j]
        if bn.observed[j]:
            continue
        loc, scale = bn.conditional(j).loc_scale(bn.parent_values(known, j, batch))
        c = c_parts[name]
        u_parts[name] = (z_parts[name] - (1.0 - c) * loc) / scale ** (1.0 - c)
        known[name] = z_parts[name]
    return space.join(u_parts)


def prior_latents(bn: BayesNet, reparam: Reparam, key: jax.Array,
                  observed: Mapping[str, jnp.ndarray]) -> jnp.ndarray:
    """Latent values drawn from the prior (ancestral, observed nodes clamped): (n_cases, size).

    Only the reparam's layout and runs are used: the draw does not depend on its weights.
    """
    space, n_cases = reparam.space, reparam.n_cases
    eps = bn.base_sample(key, n_cases)
    auxiliary = Reparam(space, jnp.zeros((n_cases, space.size)), reparam.runs)
    return latent_values(bn, auxiliary, space.join({n: eps[n] for n in space.names}), observed)


@eqx.filter_jit
def _kappa(bn, pilot: Reparam, observed, mode_steps, learning_rate):
    """κ per case and coordinate at the approximate mode of the auxiliary form ``pilot``."""
    def neg(u):
        return -log_density(bn, pilot, u, observed)

    opt = optax.adam(learning_rate)

    def step(carry, _):
        u, s = carry
        upd, s = opt.update(jax.grad(neg)(u), s, u)
        return (optax.apply_updates(u, upd), s), None

    start = pilot.weights  # zeros (the auxiliary form): ε = 0, the prior mode
    (u, _), _ = jax.lax.scan(step, (start, opt.init(start)), None, length=mode_steps)
    grad = jax.grad(neg)

    def hessian_diagonal_entry(k):
        v = jnp.zeros_like(u).at[:, k].set(1.0)
        return jax.jvp(grad, (u,), (v,))[1][:, k]

    h = jax.vmap(hessian_diagonal_entry, out_axes=1)(jnp.arange(u.shape[1]))
    return jnp.clip(1.0 - 1.0 / jnp.maximum(h, 1.0), 0.0, 1.0)
