"""Learning a network's parameters from data with latent nodes: MCMC-EM and plain VI.

**MCMC-EM** (Kingma & Welling, ICML 2014, arXiv 1402.0480, Sec. 5): every data
case keeps a persistent HMC chain over its latent coordinates u (the
auxiliary form by default). An iteration is an E-step of a few HMC
transitions per case (vmapped over cases, each with its own step size tuned
towards 80 % acceptance) and an M-step, one Optax step (Adagrad by default,
as in the paper) along the Fisher identity
∇_θ log p_θ(x) = E_{p_θ(u | x)}[∇_θ log p_θ(x, u)], evaluated at the chains'
current states. In the auxiliary form the marginal likelihood has the simple
Monte-Carlo estimate log p(x) ≈ log mean_s p(x | z(ε_s)), ε_s from the prior
(paper Sec. 4), reported as the learning curve.

**VI** (``method="vi"``): a mean-field Gaussian q(u_i) per case, trained with
θ by the reparameterised ELBO (Kingma & Welling, ICLR 2014) — the baseline.

Scales are learned on the log scale and so stay positive. Tied nodes (a
network's tie groups, e.g. ``kingma-dbn``'s transitions and emissions, shared
across time steps as in the paper) share one parameter set, the one leaf the
optimiser sees: its gradient is the sum over the group's nodes, one update per
iteration. An untied copy of the same network learns each node's parameters
apart (:meth:`~deepbn.bn.BayesNet.with_ties`).

Example:
    >>> from deepbn import examples
    >>> import jax
    >>> bn = examples.gaussian_hierarchy(groups=2, per_group=3)
    >>> x = bn.sample(jax.random.key(0), 50)
    >>> data = {n: x[n] for n in bn.observed_names}
    >>> fitted = fit(bn, data, iterations=100).network  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepbn import run as run_layer
from deepbn.bn import BayesNet
from deepbn.errors import UsageError
from deepbn.inference import csmc
from deepbn.inference.config import METHODS, OPTIMIZER_NAMES, FitConfig  # noqa: F401
from deepbn.reparam import Reparam, coordinates, log_density, prior_latents, values

OPTIMIZERS = {name: getattr(optax, name) for name in OPTIMIZER_NAMES}  # optax.adagrad, ...


class FitState(NamedTuple):
    params: Any  # unconstrained network parameters (scales as logs)
    u: jnp.ndarray  # (cases, size): chain states (EM) or guide means (VI); (cases, 0) for ML
    aux: jnp.ndarray  # (cases,) log step sizes (EM) or (cases, size) guide log-scales (VI)
    opt_state: Any
    iteration: jnp.ndarray


class FitData(NamedTuple):
    static: Any  # the network's parts that are not learned
    observed: dict  # name -> (cases, dim)
    reparam: Reparam | None  # the chains' / guide's coordinates; None: no latent nodes


class FitResult(NamedTuple):
    network: BayesNet
    curve: np.ndarray  # (monitored iterations, 2): iteration, objective
    objective_name: str
    acceptance: float  # mean E-step acceptance in the last chunk (EM)
    seconds: float
    resumed_from: int
    method: str = "mcmc-em"  # what ran: mcmc-em, vi, or ml (no latent nodes)


def _is_scale(path) -> bool:
    return any(getattr(p, "name", None) == "scale" for p in path)


def split_network(bn: BayesNet, learn: Sequence[str] | None = None):
    """(unconstrained parameters, the rest); scales become log-scales.

    ``learn`` names the nodes whose parameters are trainable (default: all); a tied
    node stands for its tie group: its one parameter set is learned.
    """
    learn = set(bn.names if learn is None else learn)
    unknown = sorted(learn - set(bn.names))
    if unknown:
        raise UsageError(f"cannot learn unknown node(s) {', '.join(unknown[:5])}")
    learned_sets = {bn.slots[bn.index(n)] for n in learn}
    spec = jax.tree_util.tree_map(eqx.is_inexact_array, bn)
    spec = eqx.tree_at(lambda b: b.parameter_sets, spec, tuple(
        jax.tree_util.tree_map(lambda a, keep=k in learned_sets: bool(a) and keep, c)
        for k, c in enumerate(spec.parameter_sets)))
    params, static = eqx.partition(bn, spec)
    params = jax.tree_util.tree_map_with_path(
        lambda p, a: jnp.log(a) if _is_scale(p) else a, params)
    return params, static


def join_network(params, static) -> BayesNet:
    params = jax.tree_util.tree_map_with_path(
        lambda p, a: jnp.exp(a) if _is_scale(p) else a, params)
    return eqx.combine(params, static)


def _optimizer(cfg: FitConfig):
    return OPTIMIZERS[cfg.optimizer](cfg.learning_rate)


def log_marginal_likelihood(bn: BayesNet, observed: Mapping[str, jnp.ndarray], key,
                            n_samples: int) -> jnp.ndarray:
    """Σ_cases log mean_s p(x_i | z(ε_s)), ε_s from the prior: the auxiliary-form estimate."""
    n_cases = next(iter(observed.values())).shape[0]
    # no runs tied by equal values: the estimate is taken while the parameters are learned
    reparam = Reparam.auxiliary(bn, n_cases, tie=False)
    space = reparam.space
    eps = bn.base_sample(key, n_samples * n_cases)
    eps = {k: v.reshape(n_samples, n_cases, -1) for k, v in eps.items()}

    def per_draw(e):
        u = space.join({n: e[n] for n in space.names})
        _, log_p = values(bn, reparam, u, observed)
        prior = sum(bn.conditional(bn.index(n)).base_log_prob(e[n]) for n in space.names)
        return log_p - prior  # (cases,)

    ll = jax.lax.map(per_draw, eps)  # (samples, cases)
    return jnp.sum(jax.nn.logsumexp(ll, axis=0) - jnp.log(n_samples))


def _case_log_density(bn, reparam: Reparam, observed):
    """log p(u_i, x_i) of one case, as a function of (u_i, case index)."""

    def f(u_i, i):
        obs_i = {k: v[i][None] for k, v in observed.items()}
        return log_density(bn, reparam.case(i), u_i[None], obs_i)

    return f


def _particle_e_step(k_e, bn, u, reparam: Reparam, observed, cfg: FitConfig):
    """``hmc_transitions`` particle-Gibbs sweeps of every case's trajectory (form particle)."""
    model = csmc.chain_model(bn, tie=False)  # structure only: the same under tracing
    paths = csmc.from_flat(reparam.space, bn, model, u)
    start = paths
    for k in jax.random.split(k_e, cfg.hmc_transitions):
        paths = csmc.sweep_cases(k, paths, bn, observed, model, cfg.particles)
    moved = jnp.mean(jnp.any(paths != start, axis=-1), axis=-1)  # (cases,)
    return csmc.to_flat(reparam.space, bn, model, paths), moved


def _em_iteration(k_e, state: FitState, static, reparam: Reparam, observed, cfg: FitConfig):
    bn = join_network(state.params, static)
    n_cases = state.u.shape[0]
    if cfg.form == "particle":
        u, acc = _particle_e_step(k_e, bn, state.u, reparam, observed, cfg)
        return _m_step(state, static, reparam, observed, cfg, jax.lax.stop_gradient(u),
                       state.aux, acc)
    log_p = _case_log_density(bn, reparam, observed)

    def chain(u_i, log_step, i, k):
        density = lambda u: log_p(u, i)  # noqa: E731
        kernel = blackjax.hmc(density, step_size=jnp.exp(log_step),
                              inverse_mass_matrix=jnp.ones(reparam.space.size),
                              num_integration_steps=cfg.integration_steps)
        s = kernel.init(u_i)

        def step(carry, kk):
            s, acc = carry
            s, info = kernel.step(kk, s)
            return (s, acc + info.acceptance_rate), None

        (s, acc), _ = jax.lax.scan(step, (s, 0.0), jax.random.split(k, cfg.hmc_transitions))
        acc = acc / cfg.hmc_transitions
        # Robbins-Monro on the log step size towards 80 % acceptance
        return s.position, log_step + 0.1 * (acc - 0.8), acc

    u, log_step, acc = jax.vmap(chain)(state.u, state.aux, jnp.arange(n_cases),
                                       jax.random.split(k_e, n_cases))
    return _m_step(state, static, reparam, observed, cfg, jax.lax.stop_gradient(u), log_step,
                   acc)


def _m_step(state: FitState, static, reparam: Reparam, observed, cfg: FitConfig, u, log_step,
            acc):
    """One optimiser step on log p(u, x) at the E-step's coordinates ``u``."""
    n_cases = state.u.shape[0]

    def loss(params):
        net = join_network(params, static)
        return -log_density(net, reparam, u, observed) / n_cases

    grads = jax.grad(loss)(state.params)
    updates, opt_state = _optimizer(cfg).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new = FitState(params, u, log_step, opt_state, state.iteration + 1)
    return new, jnp.mean(acc)


def _vi_iteration(k, state: FitState, static, reparam: Reparam, observed, cfg: FitConfig):
    n_cases = state.u.shape[0]
    noise = jax.random.normal(k, (cfg.vi_samples,) + state.u.shape)

    def neg_elbo(trainable):
        params, mean, log_scale = trainable
        net = join_network(params, static)
        draws = mean + jnp.exp(log_scale) * noise
        energy = jax.vmap(lambda u: log_density(net, reparam, u, observed))(draws)
        return -(jnp.mean(energy) + jnp.sum(log_scale)) / n_cases

    trainable = (state.params, state.u, state.aux)
    value, grads = jax.value_and_grad(neg_elbo)(trainable)
    updates, opt_state = _optimizer(cfg).update(grads, state.opt_state, trainable)
    params, mean, log_scale = optax.apply_updates(trainable, updates)
    return FitState(params, mean, log_scale, opt_state, state.iteration + 1), -value


def _ml_iteration(state: FitState, static, observed, cfg: FitConfig):
    """No latent nodes: one optimiser step on the exact log-likelihood (no E-step)."""
    n_cases = state.u.shape[0]

    def neg_log_lik(params):
        return -jnp.sum(join_network(params, static).log_joint(observed)) / n_cases

    value, grads = jax.value_and_grad(neg_log_lik)(state.params)
    updates, opt_state = _optimizer(cfg).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return FitState(params, state.u, state.aux, opt_state, state.iteration + 1), -value * n_cases


def step(key, state: FitState, data: FitData, config: FitConfig) -> tuple[FitState, dict]:
    """One iteration of MCMC-EM, VI or (``data.reparam`` None: no latent nodes) maximum
    likelihood; run with :func:`deepbn.run.run`.
    """
    cfg = config
    if data.reparam is None:
        state, value = _ml_iteration(state, data.static, data.observed, cfg)
        return state, {"log_lik": value}
    iteration = _em_iteration if cfg.method == "mcmc-em" else _vi_iteration
    state, stat = iteration(key, state, data.static, data.reparam, data.observed, cfg)
    return state, {"acceptance" if cfg.method == "mcmc-em" else "elbo": stat}


@eqx.filter_jit
def _initial_coordinates(bn, reparam: Reparam, key, observed):
    """The chains' starting coordinates: latent values drawn from the prior (jitted: op by op
    it took about 5 s on an 8-step DBN)."""
    return coordinates(bn, reparam, prior_latents(bn, reparam, key, observed), observed)


@eqx.filter_jit
def _monitor(params, static, observed, key, n_samples):
    bn = join_network(params, static)
    if not bn.latent_names:
        return jnp.sum(bn.log_joint(observed))
    return log_marginal_likelihood(bn, observed, key, n_samples)


def fit(
    bn: BayesNet,
    observed: Mapping[str, jnp.ndarray],
    config: FitConfig = FitConfig(),
    seed: int = 0,
    learn: Sequence[str] | None = None,
    checkpoint_path: str | Path | None = None,
    progress: Callable[[int, dict], None] | None = None,
    shard: bool = True,
) -> FitResult:
    """Fit ``bn``'s parameters to the observed cases ((cases, dim) per observed node).

    ``learn`` restricts learning to these nodes' parameters (default: all nodes).
    ``shard``: with several devices, the cases' chains (or guides) are spread over
    them (:func:`deepbn.run.shard_batch`); the same fit to float rounding.
    A network without latent nodes is fitted by plain maximum likelihood
    (gradient steps on the exact log-likelihood, no E-step); :attr:`FitResult.method`
    then says ``ml``.
    """
    cfg = config.check()
    observed = {n: jnp.asarray(observed[n], jnp.float32) for n in bn.observed_names}
    n_cases = int(next(iter(observed.values())).shape[0])
    params, static = split_network(bn, learn)
    key = run_layer.raw_key(seed)
    k_init, k_mon, key = jax.random.split(key, 3)
    if not bn.latent_names:
        reparam = None
        u0, aux = jnp.zeros((n_cases, 0)), jnp.zeros((n_cases,))
        opt_state = _optimizer(cfg).init(params)
        method = "ml"
    else:
        # no runs tied by equal values: the parameters are learned, step by step apart
        # (runs of one tie group stay tied: they share one parameter)
        if cfg.form == "particle":
            if csmc.chain_model(bn, tie=False) is None:
                raise UsageError("--form particle needs a state-space network: a root latent "
                                 "node and a recurrent run of latent nodes after it, each with "
                                 "one observed child and nothing else")
            reparam = Reparam.centred(bn, n_cases, tie=False)  # the sweeps move z itself
        else:
            reparam = Reparam.from_form(bn, cfg.form, observed, n_cases, tie=False)
        u0 = _initial_coordinates(bn, reparam, k_init, observed)
        aux = jnp.full((n_cases,), np.log(0.1)) if cfg.method == "mcmc-em" else jnp.full(
            (n_cases, reparam.space.size), np.log(0.1))
        opt_state = _optimizer(cfg).init(params if cfg.method == "mcmc-em" else (params, u0, aux))
        method = cfg.method
    state = FitState(params, u0, aux, opt_state, jnp.zeros((), jnp.int32))
    # the iteration count is not part of a run's identity: more continues it (driver rule)
    config = {**cfg._asdict(), "iterations": None}
    if cfg.form != "particle":
        config.pop("particles")  # not a setting of these runs: earlier checkpoints resume
    settings = {"method": method, "config": config,
                "seed": seed, "names": bn.names,
                "parents": bn.parents, "observed": bn.observed, "families":
                [c.family for c in bn.conditionals],
                "learn": None if learn is None else sorted(learn)}
    if any(g is not None for g in bn.ties):  # untied: the fingerprint of earlier versions
        settings["ties"] = bn.ties
    fp = run_layer.fingerprint((eqx.filter(bn, eqx.is_array), observed), settings)
    data = FitData(static, observed, reparam)
    every = cfg.monitor_every

    def monitor(params):
        return float(_monitor(params, static, observed, k_mon, cfg.likelihood_samples))

    start = monitor(params)  # the curve's first point, never checkpointed: recomputed
    last = [start]

    def after_chunk(s, done, out, seconds):
        last[0] = monitor(s.params)
        return [{"iteration": done, "objective": last[0], "seconds": seconds}]

    def report(done, total, out):
        if progress is not None:
            acc = out.get("acceptance")
            progress(done, {"objective": last[0],
                            "acceptance": float(np.mean(acc)) if acc is not None else None})

    def shard_cases(s: FitState) -> FitState:
        u, aux = run_layer.shard_batch((s.u, s.aux), n_cases, "cases")
        return s._replace(u=u, aux=aux)

    res = run_layer.run(step, state, data, key, cfg.iterations, config=cfg, chunk=every,
                        checkpoint=checkpoint_path, fingerprint=fp, progress=report,
                        after_chunk=after_chunk, place=shard_cases if shard else None)
    curve = np.array([[0.0, start]] + [[r["iteration"], r["objective"]] for r in res.records])
    acceptance = float("nan")
    if "acceptance" in res.outputs and len(res.outputs["acceptance"]):
        acceptance = float(np.mean(res.outputs["acceptance"][-every:]))
    name = ("log p(x), exact" if reparam is None else "log p(x), Monte-Carlo estimate")
    if res.stopped:
        raise UsageError(f"{method} {res.stopped}; try a smaller learning rate")
    network = join_network(res.state.params, static)
    return FitResult(network, curve, name, acceptance, res.seconds, res.resumed_from, method)
