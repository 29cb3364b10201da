"""Child process of sachs.py: GES (causal-learn, BIC score) in causal-learn's own venv.

Writes the CPDAG as a boolean matrix in deepbn's convention (C[i, j] and not C[j, i]:
i -> j; both: i - j), converted from causal-learn's endpoint marks
(G[j, i] == 1 and G[i, j] == -1: i -> j; both -1: i - j).
"""

import json
import resource
import sys
import time

import numpy as np
from causallearn.search.ScoreBased.GES import ges

x = np.load(sys.argv[1])["x"].astype(np.float64)
spec = json.loads(sys.argv[2])
start = time.perf_counter()
record = ges(x, score_func=spec.get("score", "local_score_BIC"))
seconds = time.perf_counter() - start
G = record["G"].graph
C = ((G == -1) & (G.T == 1)) | ((G == -1) & (G.T == -1))
np.savez(sys.argv[3], cpdag=C)
print(json.dumps({"seconds": seconds,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
