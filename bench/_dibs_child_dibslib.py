"""Child process of dibs_vs_dibslib.py: one dibs-lib run, in dibs-lib's own venv.

Uses dibs-lib's defaults (its README's usage): ER graph model, BGe or its
LinearGaussian / DenseNonlinearGaussian(hidden [5]) likelihoods, 128 MC samples.
"""

import json
import resource
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from dibs.inference import JointDiBS, MarginalDiBS
from dibs.models import BGe, DenseNonlinearGaussian, ErdosReniDAGDistribution, LinearGaussian

data = np.load(sys.argv[1])
spec = json.loads(sys.argv[2])
x, x_test = jnp.asarray(data["x"]), jnp.asarray(data["x_test"])
d = x.shape[1]
graph_model = ErdosReniDAGDistribution(n_vars=d, n_edges_per_node=spec["k"])
key = jax.random.PRNGKey(spec["seed"])
zeros = jnp.zeros(d, dtype=bool)
start = time.perf_counter()
if spec["model"] == "bge":
    lik = BGe(n_vars=d)
    dibs = MarginalDiBS(x=x, graph_model=graph_model, likelihood_model=lik)
    gs = dibs.sample(key=key, n_particles=spec["particles"], steps=spec["steps"])
    gs = np.asarray(gs)
    seconds = time.perf_counter() - start
    mix = dibs.get_mixture(jnp.asarray(gs))
    w_mix = np.exp(np.asarray(mix.logp))
    ll = np.array([float(lik.log_marginal_likelihood(g=jnp.asarray(g), x=x_test,
                                                    interv_targets=zeros)) for g in gs])
else:
    if spec["model"] == "linear":
        lik = LinearGaussian(n_vars=d)
    else:
        lik = DenseNonlinearGaussian(n_vars=d, hidden_layers=[5])
    dibs = JointDiBS(x=x, graph_model=graph_model, likelihood_model=lik)
    gs, thetas = dibs.sample(key=key, n_particles=spec["particles"], steps=spec["steps"])
    gs = np.asarray(gs)
    seconds = time.perf_counter() - start
    mix = dibs.get_mixture(jnp.asarray(gs), thetas)
    w_mix = np.exp(np.asarray(mix.logp))
    mask = jnp.zeros(x_test.shape, dtype=bool)
    ll = np.array([
        float(lik.log_likelihood(x=x_test,
                                 theta=jax.tree_util.tree_map(lambda a, i=i: a[i], thetas),
                                 g=jnp.asarray(gs[i]), interv_targets=mask))
        for i in range(len(gs))
    ])
np.savez(sys.argv[3], graphs=gs.astype(bool), w_emp=np.full(len(gs), 1.0 / len(gs)),
         w_mix=w_mix / w_mix.sum(), heldout_ll=ll)
print(json.dumps({"seconds": seconds, "svgd_seconds": seconds,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
