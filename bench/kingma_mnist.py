"""Kingma's MNIST model (2-d latent) at one wall-clock budget: MCMC-EM vs VI vs a VAE (not a test).

The model is ``example:kingma-mnist``: z ~ N(0, I_2), x ~ Bernoulli(sigmoid(MLP(z))), decoder
2 -> 200 tanh -> 784 (Kingma & Welling, arXiv 1306.0733 / ICML 2014, arXiv 1402.0480; the
hidden size is our assumption). Three learners get the same training images and the same
wall-clock budget (compilation and the learning-curve monitor included):

- ``mcmc-em``: persistent per-case HMC chains in the auxiliary form (1 transition of 10,
  or of 3, leapfrog steps per iteration) and an Adagrad M-step (the paper's method);
- ``vi``: the same model and M-step with a mean-field Gaussian per case (``--method vi``);
- ``vae``: the Graph VAE code with one 2-d latent node, structure ``none`` (a classic VAE):
  its decoder set to one hidden layer of 200 (the model's size; ELU and batch norm are the
  Graph VAE's own), its default encoder (784-512-512-256-128), Adam 1e-3, batch 64.

Every learner's test log-likelihood is the same estimator on the same test images:
importance sampling over z with a pilot from the prior, then a defensive mixture of Laplace
fits (:mod:`deepbn.inference.marginal`, ``--ll-samples`` draws per stage). The VAE's own
IWAE bound (its encoder as the proposal) is reported beside it.

    python bench/kingma_mnist.py --data /path/to/binarized_mnist.npz     # 1000 images, 150 s
    python bench/kingma_mnist.py --data mnist --cases 40 --test 20 --budget 20  # smoke

Writes ``bench/kingma_mnist.json``, ``bench/kingma_mnist.md`` and the manifold figure of the
MCMC-EM model (10 leapfrog steps), ``bench/kingma_mnist_manifold.png``. Runs resume through
each learner's checkpoint: the loop adds iterations (epochs) until the budget is spent.
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
from deepbn.inference import mcmc_em  # noqa: E402
from deepbn.inference.config import FitConfig  # noqa: E402
from deepbn.inference.manifold import manifold_images  # noqa: E402
from deepbn.inference.marginal import importance_log_likelihood, network_log_likelihood  # noqa: E402
from deepbn.io.datasets import VAEData, load_images  # noqa: E402
from deepbn.nn import normal_log_prob  # noqa: E402

HERE = Path(__file__).resolve().parent


def _until(budget: float, first: int, call) -> tuple[int, float, object]:
    """Call ``call(steps)`` with growing step counts (each call resumes the last) until the
    wall-clock budget is spent; returns (steps, seconds, last result)."""
    t0 = time.perf_counter()
    steps, res = first, call(first)
    while True:
        spent = time.perf_counter() - t0
        left = budget - spent
        if left <= 0.05 * budget:
            return steps, spent, res
        rate = steps / spent
        steps += max(1, int(rate * min(left, 0.5 * budget)))
        res = call(steps)


def fit_network(method: str, x, budget: float, out: Path, seed: int, leapfrog: int = 10):
    bn = examples.load("example:kingma-mnist")
    cfg = FitConfig(method=method, hmc_transitions=1, integration_steps=leapfrog,
                    monitor_every=50, likelihood_samples=32)

    def call(its):
        return mcmc_em.fit(bn, {"x": x}, cfg._replace(iterations=its), seed=seed, learn=["x"],
                           checkpoint_path=out / f"{method}-{leapfrog}.npz")

    first = 50 if method == "mcmc-em" else 200
    its, seconds, res = _until(budget, first, call)
    return res.network, its, seconds, res.curve


def fit_vae(d: VAEData, budget: float, out: Path, seed: int):
    from deepbn.graph_vae import experiment

    cfg = experiment.make_config(784, structure="none", nodes=1, latent_dim=2)
    cfg = cfg._replace(decoder_hidden=(200,))

    def call(epochs):
        return experiment.train(cfg, d, out / "vae", epochs, batch=min(64, len(d.train)),
                                lr=1e-3, seed=seed)

    epochs, seconds, res = _until(budget, 5, call)
    return cfg, res, epochs, seconds


def vae_test_ll(cfg, res, x_test, key, samples):
    """The common estimator on the VAE's decoder (its root z ~ N(0, I)), and its IWAE bound."""
    from deepbn import nn
    from deepbn.graph_vae import evaluate, model

    full = nn.merge(res["params"], res["fixed"])
    x = jnp.asarray(x_test, jnp.float32)

    @jax.jit
    def run(key):
        def log_joint(u):
            return model.log_likelihood(cfg, full["decoder"](u), x) + normal_log_prob(u)
        return importance_log_likelihood(log_joint, x.shape[0], 2, key, samples)

    ours = np.asarray(run(key), np.float64)
    iwae = evaluate.iwae_log_likelihood(cfg, res["params"], res["fixed"], key, x_test,
                                        k=samples)
    return ours, iwae


def _small_manifold(net, path) -> None:
    """The 20 x 20 manifold as a grey PNG of 16 levels, no frame: small enough to commit."""
    from PIL import Image

    tiles = manifold_images(net, 20).reshape(20, 20, 28, 28)
    mosaic = tiles.transpose(0, 2, 1, 3).reshape(560, 560)
    grey = (np.round(15 * (1 - mosaic)) * 17).astype(np.uint8)
    Image.fromarray(grey, "L").save(path, optimize=True)


def _row(name, ll, its, seconds, unit, extra=""):
    se = float(np.std(ll, ddof=1) / np.sqrt(len(ll)))
    return {"method": name, "test_log_lik": float(np.mean(ll)), "test_log_lik_se": se,
            "steps": its, "unit": unit, "seconds": round(seconds, 1), "note": extra}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="mnist", help="mnist or PATH.npz (binarized MNIST)")
    ap.add_argument("--cases", type=int, default=1000, help="training images")
    ap.add_argument("--test", type=int, default=500, help="test images")
    ap.add_argument("--budget", type=float, default=150.0, help="seconds per learner")
    ap.add_argument("--ll-samples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(HERE / "kingma_mnist"), help="results prefix")
    args = ap.parse_args()

    images = load_images(args.data)
    train = images.train[: args.cases].astype(np.float32)
    test = images.test[: args.test].astype(np.float32)
    d = VAEData(images.train[: args.cases], images.valid[:100], images.test[: args.test],
                "bernoulli", images.source)
    key = jax.random.key(args.seed + 1)
    rows, curves = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for method, leapfrog in (("mcmc-em", 10), ("mcmc-em", 3), ("vi", 0)):
            net, its, seconds, curve = fit_network(method, train, args.budget, tmp, args.seed,
                                                   leapfrog or 10)
            ll = network_log_likelihood(net, {"x": test}, key, args.ll_samples)
            name = f"{method} (1 HMC transition x {leapfrog} leapfrog steps)" if leapfrog else (
                method)
            rows.append(_row(name, ll, its, seconds, "iterations"))
            curves[name] = curve.tolist()
            print(rows[-1], flush=True)
            if leapfrog == 10:
                _small_manifold(net, f"{args.out}_manifold.png")
        cfg, res, epochs, seconds = fit_vae(d, args.budget, tmp, args.seed)
        ours, iwae = vae_test_ll(cfg, res, test, key, args.ll_samples)
        rows.append(_row("vae (1 node, 2-d)", ours, epochs, seconds, "epochs",
                         f"its own IWAE bound (encoder proposal, k = {args.ll_samples}): "
                         f"{float(np.mean(iwae)):.2f}"))
        print(rows[-1], flush=True)
    result = {"settings": settings(args), "rows": rows, "curves": curves,
              "machine": "2 CPU cores shared with other workers (load average 6-10)"}
    Path(f"{args.out}.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"Kingma's MNIST model, {args.cases} training images, {args.test} test images, "
             f"{args.budget:.0f} s per learner (wall clock, compilation included), "
             "2 shared CPU cores.", "",
             "| learner | steps | seconds | test log p(x) (nats/image) | note |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['steps']} {r['unit']} | {r['seconds']} | "
                     f"{r['test_log_lik']:.2f} ± {r['test_log_lik_se']:.2f} | {r['note']} |")
    Path(f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
