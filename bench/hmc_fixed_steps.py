"""Whole-program cost per gradient: deepbn's HMC vs hand-written BlackJAX (not a test).

NUTS chooses its own trajectory lengths, so ESS/s mixes the cost of a gradient
with the adaptation's outcome. Here both run HMC with a fixed number of
leapfrog steps on kingma-dbn in the auxiliary form (deepbn through
``hmc.sample_posterior``; the reference is bench/hmc_dbn.py's hand-written
density with ``blackjax.hmc``), so both take exactly the same number of
gradients: the ratio of sampling times is the ratio of costs per gradient of the
whole program (adaptation included, compile excluded).

    python bench/hmc_fixed_steps.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import time

import blackjax
import jax

import hmc_dbn
from deepbn.inference import hmc


def hand_written(bn, obs, steps: int, warmup: int, samples: int, chains: int):
    logdensity, T, dim = hmc_dbn.hand_written_logdensity(bn, obs)

    def chain(key, pos):
        k1, k2 = jax.random.split(key)
        adapt = blackjax.window_adaptation(blackjax.hmc, logdensity, num_integration_steps=steps)
        (state, params), _ = adapt.run(k1, pos, num_steps=warmup)
        kernel = blackjax.hmc(logdensity, **params)
        _, draws = jax.lax.scan(lambda s, k: (kernel.step(k, s)[0],) * 2, state,
                                jax.random.split(k2, samples))
        return draws.position

    keys = jax.random.split(jax.random.key(1), chains)
    pos = jax.random.normal(jax.random.key(2), (chains, T * dim))
    compiled = jax.jit(jax.vmap(chain)).lower(keys, pos).compile()
    start = time.perf_counter()
    jax.block_until_ready(compiled(keys, pos))
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    bn, obs = hmc_dbn._case("kingma-dbn")
    rows = []
    for r in range(args.repeats):
        post = hmc.sample_posterior(bn, obs, form="auxiliary", sampler="hmc",
                                    integration_steps=args.steps, chains=args.chains,
                                    warmup=args.warmup, samples=args.samples, seed=1)
        mine = post.summary["seconds"]
        theirs = hand_written(bn, obs, args.steps, args.warmup, args.samples, args.chains)
        rows.append({"repeat": r, "deepbn_s": mine, "blackjax_s": theirs,
                     "ratio": mine / theirs})
        print(json.dumps(rows[-1]), flush=True)
    gradients = args.chains * (args.warmup + args.samples) * args.steps
    best = min(row["deepbn_s"] for row in rows), min(row["blackjax_s"] for row in rows)
    print(f"{gradients} gradients each; best of {args.repeats}: deepbn {best[0]:.3f} s, "
          f"hand-written BlackJAX {best[1]:.3f} s, ratio {best[0] / best[1]:.2f}")


if __name__ == "__main__":
    main()
