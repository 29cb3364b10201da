"""MCMC-EM on a dynamic Bayes net with and without tied transitions (not a test).

Data from ``kingma-dbn`` (Kingma & Welling, ICML 2014, arXiv 1402.0480, Sec. 5):
z_1 ~ N(0, I), z_{t+1} ~ N(tanh(W z_t + b), sigma_z² I), x_t ~ Bernoulli(sigmoid(wᵀz_t + c)),
T = 20 steps of a 10-d state, its transitions tied. MCMC-EM then learns the transitions
(W, b, sigma_z) from a start with W = 0 (emissions and z_1 kept at the truth, which also
fixes the sign/permutation symmetry of z), twice: with the tie (one W from every step's
evidence) and with a copy per step (each W_t from its own step). Reported: the RMS error
of W over the T - 1 copies (one copy when tied) against the true W, every ``--every``
iterations. ``--emission gaussian`` swaps the 1-bit emissions for x_t ~ N(A z_t + c,
0.2² I) of the state's dimension (z nearly observed; the centred form).

    python bench/tied_dbn.py                      # T = 20, dim = 10, 100 cases, 500 its
    python bench/tied_dbn.py --emission gaussian  # the informative variant
    python bench/tied_dbn.py --T 4 --dim 2 --cases 5 --iterations 4 --every 2  # smoke

Writes ``bench/tied_dbn[_gaussian].json`` and prints a table (markdown). Each checkpoint
continues the previous fit from its checkpoint file (the fit driver's rule: more
iterations continue a run), with JAX's compilation cache so the program compiles once.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _paths import settings  # noqa: E402
from deepbn import examples  # noqa: E402
from deepbn.bn import BayesNet  # noqa: E402
from deepbn.conditionals import LinearGaussian  # noqa: E402
from deepbn.inference import mcmc_em  # noqa: E402

HERE = Path(__file__).resolve().parent


def network(args, W=None) -> BayesNet:
    """kingma-dbn (T, dim, seed), its W replaced by ``W``; optionally Gaussian emissions."""
    bn = examples.kingma_dbn(T=args.T, dim=args.dim, sigma_z=args.sigma_z, seed=args.seed)
    if W is not None:
        step = bn.conditionals[bn.index("z2")]
        bn = bn.replace_conditional("z2", type(step)(jnp.asarray(W, jnp.float32), step.bias,
                                                     step.scale, step.activation))
    if args.emission == "gaussian":
        rng = np.random.default_rng(args.seed + 1)
        A = np.eye(args.dim) + 0.3 * rng.normal(size=(args.dim, args.dim))
        emission = LinearGaussian(jnp.asarray(A, jnp.float32),
                                  jnp.asarray(0.1 * rng.normal(size=args.dim), jnp.float32),
                                  jnp.full(args.dim, 0.2, jnp.float32))
        conds = [emission if n.startswith("x") else c for n, c in zip(bn.names, bn.conditionals)]
        bn = BayesNet(bn.names, bn.parents, conds, bn.observed, ties=bn.ties)
    return bn


def w_error(bn: BayesNet, W: np.ndarray, T: int) -> float:
    """RMS of W_t - W over the transition copies (one copy when tied)."""
    copies = [np.asarray(bn.conditionals[bn.index(f"z{t}")].weight) for t in range(2, T + 1)]
    return float(np.sqrt(np.mean([(c - W) ** 2 for c in copies])))


def curve(start: BayesNet, data, W, args, folder: Path) -> list[dict]:
    cfg = mcmc_em.FitConfig(iterations=args.every, form=args.form, optimizer=args.optimizer,
                            learning_rate=args.learning_rate, monitor_every=args.every,
                            likelihood_samples=args.likelihood_samples)
    learn = [f"z{t}" for t in range(2, args.T + 1)]
    rows = [{"iteration": 0, "w_error": w_error(start, W, args.T), "seconds": 0.0}]
    wall = time.perf_counter()
    for done in range(args.every, args.iterations + 1, args.every):
        res = mcmc_em.fit(start, data, cfg._replace(iterations=done), seed=args.seed,
                          learn=learn, checkpoint_path=folder / "checkpoint.npz")
        rows.append({"iteration": done, "w_error": w_error(res.network, W, args.T),
                     "log_lik": float(res.curve[-1, 1]), "acceptance": res.acceptance,
                     "seconds": round(time.perf_counter() - wall, 2)})
        print(f"  {done:5d} its: W error {rows[-1]['w_error']:.4f}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=20)
    ap.add_argument("--dim", type=int, default=10)
    ap.add_argument("--sigma-z", type=float, default=0.1)
    ap.add_argument("--cases", type=int, default=100)
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--emission", choices=("bernoulli", "gaussian"), default="bernoulli")
    ap.add_argument("--form", choices=("auxiliary", "centred"), default=None,
                    help="default: auxiliary (bernoulli), centred (gaussian)")
    ap.add_argument("--optimizer", default="adam")
    ap.add_argument("--learning-rate", type=float, default=0.02)
    ap.add_argument("--likelihood-samples", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    args.form = args.form or ("auxiliary" if args.emission == "bernoulli" else "centred")
    out = args.out or HERE / ("tied_dbn.json" if args.emission == "bernoulli"
                              else "tied_dbn_gaussian.json")
    jax.config.update("jax_compilation_cache_dir", str(Path(tempfile.gettempdir())
                                                       / "deepbn-bench-jax-cache"))

    truth = network(args)
    W = np.asarray(truth.conditionals[truth.index("z2")].weight)
    x = truth.sample(jax.random.key(args.seed), args.cases)
    data = {n: x[n] for n in truth.observed_names}
    start = network(args, W=np.zeros_like(W))
    results = {}
    for label, net in (("tied", start), ("untied", start.with_ties(None))):
        print(f"{label}:", flush=True)
        with tempfile.TemporaryDirectory() as folder:
            results[label] = curve(net, data, W, args, Path(folder))
    doc = {"settings": settings(args), "w_norm_rms": float(np.sqrt(np.mean(W**2))),
           "curves": results, "devices": [str(d) for d in jax.devices()]}
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nRMS error of W (T = {args.T}, dim = {args.dim}, {args.cases} cases, "
          f"{args.emission} emissions, {args.form} form, {args.optimizer} "
          f"{args.learning_rate}, seed {args.seed}):\n")
    print("| iteration | tied | untied |\n|---:|---:|---:|")
    for a, b in zip(results["tied"], results["untied"]):
        print(f"| {a['iteration']} | {a['w_error']:.4f} | {b['w_error']:.4f} |")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
