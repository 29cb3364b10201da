"""Cost of one value-and-gradient of the kingma-dbn posterior density (not a test).

deepbn's ``reparam.log_density`` (tied run, untied run, node by node) in auxiliary
and centred form against the hand-written auxiliary density of bench/hmc_dbn.py;
2 chains vmapped, 2000 evaluations in one scan, best of 7 interleaved rounds.

    python bench/hmc_grad_cost.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hmc_dbn  # noqa: E402
from deepbn import examples  # noqa: E402
from deepbn.reparam import LatentSpace, Reparam, log_density  # noqa: E402

EVALUATIONS = 2000


def _timed_loop(f, u):
    def loop(u):
        def body(u, _):
            v, g = jax.vmap(jax.value_and_grad(f))(u)
            return u + 1e-4 * g, v

        return jax.lax.scan(body, u, None, length=EVALUATIONS)

    compiled = jax.jit(loop)
    jax.block_until_ready(compiled(u))
    return compiled


def main() -> None:
    bn = examples.load("example:kingma-dbn")
    x = bn.sample(jax.random.key(0), 1)
    obs = {n: x[n] for n in bn.observed_names}
    size = LatentSpace.from_network(bn).size
    hand, _, _ = hmc_dbn.hand_written_logdensity(bn, obs)
    u = jax.random.normal(jax.random.key(1), (2, size))
    loops = {}
    for form in ("auxiliary", "centred"):
        tied = Reparam.from_form(bn, form, obs, 1)
        copies = bn.with_ties(None)  # a parameter copy per node: the untied run stacks them
        reparams = {"tied": (bn, tied),
                    "untied": (copies, Reparam.from_form(copies, form, obs, 1, tie=False)),
                    "unrolled": (bn, tied.node_by_node())}
        for name, (net, r) in reparams.items():
            def density(v, net=net, r=r):
                return log_density(net, r, v.reshape(1, size), obs)
            loops[f"deepbn {form} {name}"] = _timed_loop(density, u)
    loops["hand-written auxiliary"] = _timed_loop(hand, u)
    best = dict.fromkeys(loops, float("inf"))
    for _ in range(7):
        for name, loop in loops.items():
            t0 = time.perf_counter()
            jax.block_until_ready(loop(u))
            best[name] = min(best[name], time.perf_counter() - t0)
    for name, seconds in best.items():
        print(f"{name:32s} {seconds / EVALUATIONS * 1e6:7.1f} µs per value+grad (2 chains)")


if __name__ == "__main__":
    main()
