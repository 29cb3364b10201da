"""NUTS on kingma-dbn and gaussian-hierarchy: deepbn forms vs hand-written BlackJAX, NumPyro.

Same data for every sampler (one simulated case of each network, seed 0),
2 chains, 1000 warmup + 1000 draws. Each configuration runs in its own
process with the persistent compilation cache off, so compile times are
first-compile times. Reported per run: ESS (bulk, min and median over all
latent coordinates, in z-space), R-hat (rank-normalised), divergences, seconds
of warmup + sampling without compilation, compile seconds, ESS_min per second
and per 1000 gradient evaluations of the sampling phase.

    pip install -e ".[bench]"          # numpyro
    python bench/hmc_dbn.py            # writes bench/hmc_dbn.json and bench/hmc_dbn_traces.png

Peers: ``blackjax-aux`` is NUTS with window adaptation on a hand-written
auxiliary-form log density of the DBN (a ``lax.scan`` over time);
``numpyro-aux`` is NumPyro NUTS on the same model written with
``numpyro.contrib.control_flow.scan``, non-centred by hand for the DBN
(``LocScaleReparam`` cannot replay sites inside ``scan``) and with
``LocScaleReparam(centered=0)`` for the hierarchy;
``numpyro-centred`` the same without the reparameterisation.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CHAIN_SEED = 0  # --seed: the chains' randomness; the data are always the same
RUNS = {
    "kingma-dbn": ["deepbn-auto", "deepbn-centred", "deepbn-auxiliary", "blackjax-aux",
                   "numpyro-aux", "numpyro-centred"],
    "gaussian-hierarchy": ["deepbn-auto", "deepbn-centred", "deepbn-auxiliary",
                           "numpyro-centred", "numpyro-aux"],
}


def _case(network: str):
    import jax

    from deepbn import examples

    bn = examples.load(f"example:{network}")
    x = bn.sample(jax.random.key(0), 1)
    return bn, {n: x[n] for n in bn.observed_names}


def _dbn_params(bn):
    """W, b, sigma_z, w, c of kingma-dbn read back from its nodes (shared across time)."""
    z2 = bn.conditionals[bn.index("z2")]
    x1 = bn.conditionals[bn.index("x1")]
    (w, c), = x1.net.layers
    return z2.weight, z2.bias, z2.scale, w[:, 0], c[0]


def run_deepbn(network, form, chains, warmup, samples):
    from deepbn.inference import hmc

    bn, obs = _case(network)
    post = hmc.sample_posterior(bn, obs, form=form, chains=chains, warmup=warmup,
                                samples=samples, seed=1 + CHAIN_SEED)
    s = post.summary
    draws = np.concatenate([post.samples[n][:, :, 0, :] for n in post.space.names], axis=-1)
    return {k: s[k] for k in ("ess_min", "ess_median", "rhat_max", "divergences", "seconds",
                              "compile_seconds", "pilot_seconds", "gradient_evaluations_sampling",
                              "ess_min_per_s", "ess_min_per_1000_grads")}, draws


def hand_written_logdensity(bn, obs):
    """kingma-dbn's auxiliary-form log-density written by hand: (logdensity, T, dim)."""
    import jax
    import jax.numpy as jnp

    W, b, sz, w, c = _dbn_params(bn)
    T = len(obs)
    x = jnp.stack([obs[f"x{t}"][0, 0] for t in range(1, T + 1)])
    dim = W.shape[0]

    def logdensity(flat):
        eps = flat.reshape(T, dim)

        def step(z, e):
            z = jnp.tanh(W @ z + b) + sz * e
            return z, z

        _, rest = jax.lax.scan(step, eps[0], eps[1:])
        logits = jnp.concatenate([eps[:1], rest]) @ w + c
        lik = jnp.sum(x * jax.nn.log_sigmoid(logits) + (1 - x) * jax.nn.log_sigmoid(-logits))
        return lik - 0.5 * jnp.sum(eps**2)

    return logdensity, T, dim


def run_blackjax(network, chains, warmup, samples):
    import blackjax
    import jax
    import jax.numpy as jnp

    bn, obs = _case(network)
    W, b, sz, w, c = _dbn_params(bn)
    T = len(obs)
    x = jnp.stack([obs[f"x{t}"][0, 0] for t in range(1, T + 1)])
    dim = W.shape[0]

    def states(eps):  # eps (T, dim) -> z (T, dim)
        def step(z, e):
            z = jnp.tanh(W @ z + b) + sz * e
            return z, z
        _, rest = jax.lax.scan(step, eps[0], eps[1:])
        return jnp.concatenate([eps[:1], rest])

    def logdensity(flat):
        eps = flat.reshape(T, dim)
        logits = states(eps) @ w + c
        lik = jnp.sum(x * jax.nn.log_sigmoid(logits) + (1 - x) * jax.nn.log_sigmoid(-logits))
        return lik - 0.5 * jnp.sum(eps**2)

    def chain(key, pos):
        k1, k2 = jax.random.split(key)
        adapt = blackjax.window_adaptation(
            blackjax.nuts, logdensity,
            adaptation_info_fn=blackjax.adaptation.base.get_filter_adapt_info_fn())
        (state, params), _ = adapt.run(k1, pos, num_steps=warmup)
        kernel = blackjax.nuts(logdensity, **params)

        def body(s, k):
            s, info = kernel.step(k, s)
            return s, (s.position, info.num_integration_steps)

        _, (draws, steps) = jax.lax.scan(body, state, jax.random.split(k2, samples))
        return jax.vmap(lambda e: states(e.reshape(T, dim)).ravel())(draws), jnp.sum(steps)

    keys = jax.random.split(jax.random.key(1 + CHAIN_SEED), chains)
    pos = jax.random.normal(jax.random.key(2 + CHAIN_SEED), (chains, T * dim))
    f = jax.jit(jax.vmap(chain))
    t0 = time.perf_counter()
    compiled = f.lower(keys, pos).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    z, steps = jax.block_until_ready(compiled(keys, pos))
    return _summary(np.asarray(z), time.perf_counter() - t0, compile_s, int(np.sum(steps))), \
        np.asarray(z)


def _numpyro_model(network, bn, obs, centred):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.contrib.control_flow import scan
    from numpyro.infer.reparam import LocScaleReparam

    # the roots (z1, mu) are N(0, 1): the same in both forms; "z" is every other latent
    reparam = (lambda m: m) if centred or network == "kingma-dbn" else (
        lambda m: numpyro.handlers.reparam(m, config=lambda site: LocScaleReparam(0) if (
            site["name"] == "z" and not site["is_observed"]) else None))
    if network == "kingma-dbn":
        W, b, sz, w, c = (jnp.asarray(a) for a in _dbn_params(bn))
        T = len(obs)
        x = jnp.stack([obs[f"x{t}"][0, 0] for t in range(1, T + 1)])
        dim = W.shape[0]

        def model():
            z1 = numpyro.sample("z1", dist.Normal(jnp.zeros(dim), 1.0).to_event(1))
            numpyro.sample("x1", dist.Bernoulli(logits=z1 @ w + c), obs=x[0])

            def transition(z, xt):
                if centred:
                    z = numpyro.sample("z", dist.Normal(jnp.tanh(W @ z + b), sz).to_event(1))
                else:  # LocScaleReparam cannot replay sites inside scan: write it out
                    e = numpyro.sample("e", dist.Normal(jnp.zeros(dim), 1.0).to_event(1))
                    z = numpyro.deterministic("z", jnp.tanh(W @ z + b) + sz * e)
                numpyro.sample("x", dist.Bernoulli(logits=z @ w + c), obs=xt)
                return z, z

            scan(transition, z1, x[1:])

        def latents(samples):
            return jnp.concatenate([samples["z1"][:, :, None], samples["z"]], axis=2).reshape(
                samples["z1"].shape[0], samples["z1"].shape[1], -1)
    else:
        groups = len(obs)
        xs = jnp.stack([obs[f"x{k}"][0] for k in range(1, groups + 1)])  # (groups, per_group)

        def model():
            mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
            with numpyro.plate("groups", groups):
                z = numpyro.sample("z", dist.Normal(mu, 1.0))
            numpyro.sample("x", dist.Normal(z[:, None], 0.1).to_event(2), obs=xs)

        def latents(samples):
            return jnp.concatenate([samples["mu"][:, :, None], samples["z"]], axis=2)

    return reparam(model), latents


def run_numpyro(network, centred, chains, warmup, samples):
    import jax
    from numpyro.infer import MCMC, NUTS

    bn, obs = _case(network)
    model, latents = _numpyro_model(network, bn, obs, centred)
    mcmc = MCMC(NUTS(model), num_warmup=warmup, num_samples=samples, num_chains=chains,
                chain_method="vectorized", progress_bar=False)

    def timed():
        t0 = time.perf_counter()
        mcmc.run(jax.random.key(1 + CHAIN_SEED), extra_fields=("num_steps",))
        jax.block_until_ready(mcmc.get_samples())
        return time.perf_counter() - t0

    # NumPyro compiles inside run() and caches the compiled sampler on the MCMC object:
    # the second, identical run is the sampling time, the difference the compile time
    first = timed()
    seconds = timed()
    compile_s = max(first - seconds, 0.0)
    z = np.asarray(latents(mcmc.get_samples(group_by_chain=True)))
    steps = int(np.sum(mcmc.get_extra_fields()["num_steps"]))
    return _summary(z, seconds, compile_s, steps), z


def _summary(z, seconds, compile_s, grads):
    from deepbn.inference.diagnostics import convergence

    d = convergence(z)
    return {**{k: d[k] for k in ("ess_min", "ess_median", "rhat_max")}, "divergences": None,
            "seconds": round(seconds, 3), "compile_seconds": round(compile_s, 3),
            "gradient_evaluations_sampling": grads, "ess_min_per_s": d["ess_min"] / seconds,
            "ess_min_per_1000_grads": 1000 * d["ess_min"] / max(grads, 1)}


def use_cpu_clock() -> None:
    """Read every timer of this process from ``time.process_time``: CPU seconds of all
    threads, which a shared machine inflates far less than wall-clock seconds."""
    import types

    import deepbn.inference.hmc
    import deepbn.run

    global time
    clock = types.SimpleNamespace(perf_counter=time.process_time)
    time = deepbn.run.time = deepbn.inference.hmc.time = clock


def child(network, name, chains, warmup, samples, draws_path):
    if name.startswith("deepbn-"):
        res, z = run_deepbn(network, name.split("-", 1)[1], chains, warmup, samples)
    elif name == "blackjax-aux":
        res, z = run_blackjax(network, chains, warmup, samples)
    else:
        res, z = run_numpyro(network, name.endswith("centred"), chains, warmup, samples)
    # the paper's figure shows a node deep in the chain, where the two forms differ
    first = 90 if network == "kingma-dbn" else 0
    np.save(draws_path, z[:, :, first : first + 3])
    print(json.dumps(res, default=float))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--networks", nargs="+", default=list(RUNS))
    ap.add_argument("--only", nargs="+", default=None, help="run only these configurations")
    ap.add_argument("--out", default=str(HERE / "hmc_dbn.json"))
    ap.add_argument("--seed", type=int, default=0, help="chain seed (the data stay fixed)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="seconds by the wall clock, or CPU seconds (a shared machine)")
    ap.add_argument("--child", nargs=2, metavar=("NETWORK", "NAME"), help=argparse.SUPPRESS)
    ap.add_argument("--draws", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    global CHAIN_SEED
    CHAIN_SEED = args.seed
    if args.child:
        if args.clock == "cpu":
            use_cpu_clock()
        child(*args.child, args.chains, args.warmup, args.samples, args.draws)
        return
    results, traces = [], {}
    for network in args.networks:
        for name in RUNS[network]:
            if args.only and name not in args.only:
                continue
            draws = Path(args.out).with_suffix(f".{network}.{name}.npy")
            cmd = [sys.executable, __file__, "--child", network, name, "--chains",
                   str(args.chains), "--warmup", str(args.warmup), "--samples",
                   str(args.samples), "--draws", str(draws), "--seed", str(args.seed),
                   "--clock", args.clock]
            env = {**__import__("os").environ, "JAX_ENABLE_COMPILATION_CACHE": "false"}
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                row = {"network": network, "run": name,
                       "error": proc.stderr.strip().splitlines()[-1][:300]}
            else:
                row = {"network": network, "run": name,
                       **json.loads(proc.stdout.strip().splitlines()[-1])}
                traces[(network, name)] = np.load(draws)
                draws.unlink()
            results.append(row)
            print(json.dumps(row, default=float), flush=True)
            Path(args.out).write_text(json.dumps({"results": results, "chains": args.chains,
                                                  "warmup": args.warmup,
                                                  "samples": args.samples}, indent=1,
                                                 default=float))
    if ("kingma-dbn", "deepbn-centred") in traces and ("kingma-dbn", "deepbn-auxiliary") in traces:
        from deepbn.plots import traces as plot_traces

        plot_traces({"centred": traces[("kingma-dbn", "deepbn-centred")],
                     "auxiliary": traces[("kingma-dbn", "deepbn-auxiliary")]},
                    ["z10[0]", "z10[1]", "z10[2]"], HERE / "hmc_dbn_traces.png")
    _print_table(results)


def _print_table(results):
    print("| network | run | ESS min | ESS median | R-hat max | s (no compile) | compile s "
          "| ESS_min/s | ESS_min/s incl. pilot | ESS_min/1000 grads |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['network']} | {r['run']} | error: {r['error']} |")
            continue
        print(f"| {r['network']} | {r['run']} | {r['ess_min']:.0f} | {r['ess_median']:.0f} | "
              f"{r['rhat_max']:.3f} | {r['seconds']:.1f} | {r['compile_seconds']:.1f} | "
              f"{r['ess_min_per_s']:.2f} | "
              f"{r['ess_min'] / (r['seconds'] + r.get('pilot_seconds', 0.0)):.2f} | "
              f"{r['ess_min_per_1000_grads']:.2f} |")


if __name__ == "__main__":
    main()
