"""Milliseconds per DiBS step on a large graph, mid-run (not a test).

The data of ``dibs_scale.py`` (ER, 1.5 edges per node, n = 500, BGe, default
large-graph settings, 20 particles); 200 steps to leave the initial state, then
the best of 3 timings of 100 steps in one jitted ``lax.scan`` (as the driver runs
them). Time another checkout the same way, back to back on the same machine:

    python bench/dibs_step.py --d 100
    PYTHONPATH=/path/to/old/checkout/src python bench/dibs_step.py --d 100
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from deepbn.structure import dibs
from deepbn.structure.config import DiBSConfig
from dibs_vs_dibslib import make_data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=100)
    ap.add_argument("--particles", type=int, default=20)
    args = ap.parse_args()
    d = args.d
    _, x, _ = make_data(100 * d, d, 1.5, "linear", n=500)
    x = (x - x.mean(0)) / x.std(0)
    cfg = DiBSConfig(edges_per_node=1.5, n_particles=args.particles).resolved(d)
    data = dibs.make_data(x, None, cfg)
    state = dibs.init(jax.random.key(0), d, cfg)

    @jax.jit
    def hundred(key, s):
        def body(s, k):
            s, info = dibs.step(k, s, data, cfg)
            return s, info["edges"]
        return jax.lax.scan(body, s, jax.random.split(key, 100))

    for k in (1, 2):  # compile, then leave the initial state
        state, _ = hundred(jax.random.key(k), state)
    jax.block_until_ready(state)
    best = np.inf
    for r in range(3):
        t0 = time.perf_counter()
        out, _ = hundred(jax.random.key(3 + r), state)
        jax.block_until_ready(out)
        best = min(best, time.perf_counter() - t0)
    print(f"d = {d}, {args.particles} particles: {best * 10:.1f} ms per step "
          f"(steps 200-300, best of 3)")


if __name__ == "__main__":
    main()
