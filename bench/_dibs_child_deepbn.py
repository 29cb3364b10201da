"""Child process of dibs_vs_dibslib.py: one deepbn DiBS run (keeps its peak RSS separate)."""

import json
import resource
import sys
import time

import numpy as np

from deepbn.structure.dibs import DiBSConfig
from deepbn.structure.learn import learn_structure
from deepbn.structure.posterior import heldout_log_liks

data = np.load(sys.argv[1])
spec = json.loads(sys.argv[2])
start = time.perf_counter()
# spec["config"]: further DiBSConfig fields (only those given, so older versions run too)
cfg = DiBSConfig(model=spec["model"], edges_per_node=spec["k"], n_particles=spec["particles"],
                 **spec.get("config", {}))
run = learn_structure(data["x"], cfg, steps=spec["steps"], seed=spec["seed"])
seconds = time.perf_counter() - start
post = run.posterior
ll = heldout_log_liks(post, data["x_test"], run.config, run.scaling, run.x_reference)
np.savez(sys.argv[3], graphs=post.graphs, w_emp=post.weights_empirical,
         w_mix=post.weights_mixture, heldout_ll=ll)
print(json.dumps({"seconds": seconds, "svgd_seconds": run.seconds,
                  "compile_seconds": run.compile_seconds,
                  "config": {k: v for k, v in run.config._asdict().items()
                             if k in ("max_parents", "n_graph_samples", "n_acyclicity_samples")},
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
