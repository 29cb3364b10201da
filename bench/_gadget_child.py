"""Child process: one Gadget run (sumu 0.1.2), in its own venv (bench/setup_gadget.sh).

    bench/.venv-gadget/bin/python bench/_gadget_child.py DATA.npz OUT.npz [OVERRIDES_JSON]

DATA.npz: ``x`` (n, d) continuous data, optional ``seed`` (default 0). OUT.npz:
``edge_probs`` (d, d), entry [i, j] the fraction of sampled DAGs with i -> j;
``seconds`` (wall time of ``Gadget.sample()``: candidate parents, score precomputation,
MCMC, DAG sampling); ``peak_rss`` (bytes); ``n_dags``; ``params`` (JSON of what ran).

Settings are the README's "Getting started" ones for continuous data (BGe, max_id -1,
K 15, d 3, greedy-lite candidates, 16 MC3 chains, burn-in 10000, 10000 iterations,
thinning 10, so 1000 DAGs), with two changes: K and d are capped at d_vars - 1
(candidate parents must be other variables), and tolerance is 2**-32, DAGR's own
default and what sumu's tests pass (the README leaves it out, which makes DAG sampling
fall back to brute force). sumu 0.1.2 has no wall-time budget: run time is set by
burn_in + iterations (MC3 steps, each one step of every chain), mc3_chains, and K (the
precomputation is 2**K parent sets per variable). OVERRIDES_JSON, a JSON object, replaces
any of these settings, e.g. '{"burn_in": 1000, "iterations": 1000}'. All of Gadget's
randomness is numpy's global generator, seeded here.
"""

import json
import resource
import sys
import time

import numpy as np
import sumu

data = np.load(sys.argv[1])
x = np.ascontiguousarray(data["x"], dtype=np.float64)
seed = int(data["seed"]) if "seed" in data else 0
d = x.shape[1]
params = {"scoref": "bge", "ess": 10, "max_id": -1, "K": min(15, d - 1), "d": min(3, d - 1),
          "cp_algo": "greedy-lite", "mc3_chains": 16, "burn_in": 10000,
          "iterations": 10000, "thinning": 10, "tolerance": 2.0**-32}
if len(sys.argv) > 3:
    params.update(json.loads(sys.argv[3]))

np.random.seed(seed)
start = time.perf_counter()
dags, _scores = sumu.Gadget(data=sumu.Data(x, discrete=False), **params).sample()
seconds = time.perf_counter() - start

# Each DAG is a list of families (v,) or (v, parents) (sumu/gadget.py, DAGR.sample_pset).
edge_probs = np.zeros((d, d))
for dag in dags:
    for family in dag:
        for p in (family[1] if len(family) > 1 else ()):
            edge_probs[p, family[0]] += 1
edge_probs /= len(dags)
peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
np.savez(sys.argv[2], edge_probs=edge_probs, seconds=seconds, peak_rss=peak_rss,
         n_dags=len(dags), params=json.dumps({**params, "seed": seed}))
print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_rss / 2**20, "n_dags": len(dags)}))
