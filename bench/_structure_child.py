"""Child process of structure_scale.py: one deepbn structure run (keeps its peak RSS apart).

    python bench/_structure_child.py DATA.npz SPEC_JSON OUT.npz

SPEC: ``method`` "order" (discover's default: order MCMC alone, ``sample_structure``) or
"dibs+order" (DiBS 20 particles x 1000 steps, then ``--order-mcmc`` steps of order MCMC
from the particles: with ``PYTHONPATH`` at an older checkout, that checkout's path);
``seed``, ``k`` (expected edges per node of the prior), ``steps`` (the order MCMC budget,
optional), ``csv`` (read the data through a CSV round trip first).
"""

import json
import resource
import sys
import tempfile
import time

import numpy as np

data = np.load(sys.argv[1])
spec = json.loads(sys.argv[2])
x = np.asarray(data["x"])  # float64, as a user's array would be
if spec.get("csv"):
    # written with write_table's 9 significant digits and read back: the same data up to
    # the last digits, as a CSV round trip gives them
    from deepbn.io.tables import read_table, write_table

    with tempfile.TemporaryDirectory() as tmp:
        write_table(f"{tmp}/d.csv", x, [f"x{i}" for i in range(x.shape[1])])
        x = read_table(f"{tmp}/d.csv").values
start = time.perf_counter()
info = {}
if spec["method"] == "order":
    from deepbn.structure.config import DiBSConfig, OrderMCMCOptions
    from deepbn.structure.learn import sample_structure

    opts = OrderMCMCOptions(steps=spec.get("steps"))
    run, res = sample_structure(x, DiBSConfig(edges_per_node=spec["k"]), opts,
                                seed=spec["seed"])
    P = res.edge_probs
    info = {"rhat_max": res.rhat_max, "steps": res.steps, "budget": res.budget,
            "converged": res.converged, "sampling_seconds": res.seconds,
            "compile_seconds": res.compile_seconds, "grow_rounds": res.grow_rounds,
            "candidates_added": res.candidates_added,
            "candidates": int(res.candidates.shape[1])}
else:
    from deepbn.structure import order_mcmc
    from deepbn.structure.dibs import DiBSConfig
    from deepbn.structure.learn import learn_structure

    run = learn_structure(x, DiBSConfig(edges_per_node=spec["k"]), steps=1000,
                          seed=spec["seed"])
    refined, res = order_mcmc.refine(run, spec.get("steps") or 10000, seed=spec["seed"])
    P = res.edge_probs
    info = {"rhat_max": res.rhat_max, "steps": spec.get("steps") or 10000,
            "dibs_seconds": run.seconds + run.compile_seconds}
seconds = time.perf_counter() - start
np.savez(sys.argv[3], edge_probs=P)
print(json.dumps({"seconds": seconds, **info,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
