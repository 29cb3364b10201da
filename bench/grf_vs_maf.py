"""Density estimation of a network's samples: graphical residual flow vs zuko's MAF (not a test).

Fully observed samples of a built-in network (100 x |nodes| for training, 1000
held out), standardised with the training mean and scale. deepbn fits
:class:`deepbn.flows.FlowDensity`: a graphical residual flow masked by the DAG,
an elementwise affine after every block, one jitted ``lax.scan`` per chunk of
steps. The reference fits ``zuko.flows.MAF`` with the same adjacency (4
transformations, ELU hidden layers of the same width) on the same minibatches,
with the same number of steps and Adam learning rate (``bench/_maf_zuko.py`` in
``bench/.venv-torch``: torch 2.13.0 and zuko 1.6.0, made by
``bench/setup_torch.sh``). The GRF gets as many blocks as fit in the MAF's
number of trainable parameters. Reports test NLL in the data's units (nats per
example) and training steps/s of both in the same run.

    bash bench/setup_torch.sh
    python bench/grf_vs_maf.py --networks arithmetic-circuit ecoli70 --seeds 0
    python bench/grf_vs_maf.py            # four networks, seeds 0-2
    python bench/grf_vs_maf.py --regression mlp --schedule cosine --grf-hidden 16
                                          # the configuration below MAF on all four

Writes bench/grf_vs_maf.json (after every run) and prints a table of seed means.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import _paths
from deepbn import examples, graph
from deepbn.flows import FlowDensity
from deepbn.nn import split

HERE = Path(__file__).resolve().parent
NETWORKS = ("arithmetic-circuit", "gaussian-binary-tree", "ecoli70", "magic-niab")


def make_data(network: str, seed: int, per_node: int, test: int, steps: int, batch: int):
    bn = examples.load(f"example:{network}")
    order = graph.topological_order(bn.adjacency())
    A = bn.adjacency().astype(bool)[np.ix_(order, order)]
    n = per_node * bn.d
    sample = bn.sample(jax.random.key(2000 + seed), n + test)
    x = np.concatenate([np.asarray(sample[bn.names[j]]) for j in order], axis=1)
    mean, scale = x[:n].mean(0), x[:n].std(0)
    z = (x - mean) / scale
    rng = np.random.default_rng(seed)
    per_epoch = n // batch
    epochs = [rng.permutation(n)[: per_epoch * batch].reshape(per_epoch, batch)
              for _ in range(-(-steps // per_epoch))]
    batches = np.concatenate(epochs)[:steps]
    log_scale = float(np.log(scale).sum())
    return A, z[:n].astype(np.float32), z[n:].astype(np.float32), batches, log_scale


def oracle_nll(A, train, test) -> float:
    """Test NLL (standardised units) of the linear-Gaussian network fitted by maximum
    likelihood with the true DAG: per node, least squares on its parents. For a network
    that is linear-Gaussian, the best any density estimator of this family can expect."""
    nll = np.zeros(len(test))
    for j in range(A.shape[0]):
        pa = np.flatnonzero(A[:, j])
        X, X_test = (np.c_[np.ones(len(x)), x[:, pa]] for x in (train, test))
        beta, *_ = np.linalg.lstsq(X, train[:, j], rcond=None)
        var = np.var(train[:, j] - X @ beta)
        nll += 0.5 * np.log(2 * np.pi * var) + 0.5 * (test[:, j] - X_test @ beta) ** 2 / var
    return float(nll.mean())


def trainable_parameters(density: FlowDensity) -> int:
    """Parameters that training changes (not the fixed masks and power-iteration vectors)."""
    params, _ = split(density)
    return sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(params))


def blocks_within(A, hidden, budget: int, regression: str | None = None) -> int:
    """The most GRF blocks (with affines, behind ``regression``) whose trainable parameters
    fit in ``budget``."""
    one, two = (trainable_parameters(FlowDensity.init(jax.random.key(0), A, k, tuple(hidden),
                                                      affine=True, regression=regression))
                for k in (1, 2))
    base = one - (two - one)  # the density's own scale and shift, and the regression
    return max(1, (budget - base) // (two - one))


def fit_grf(A, train, test, batches, seed, blocks, hidden, lr, chunk, affine, spectral,
            regression=None, schedule="constant"):
    density = FlowDensity.init(jax.random.key(seed), A, blocks, tuple(hidden), affine=affine,
                               spectral=spectral, regression=regression)
    params, static = eqx.partition(density, eqx.is_inexact_array)
    opt = optax.adam(optax.cosine_decay_schedule(lr, len(batches)) if schedule == "cosine"
                     else lr)
    train_j = jnp.asarray(train)

    def loss(p, idx):
        return -jnp.mean(eqx.combine(p, static).log_prob(train_j[idx]))

    @jax.jit
    def run(p, state, idx_chunk):
        def step(carry, idx):
            p, state = carry
            value, grads = jax.value_and_grad(loss)(p, idx)
            updates, state = opt.update(grads, state, p)
            p = optax.apply_updates(p, updates)
            if spectral == "power":  # advance the persistent power-iteration vectors
                p, _ = eqx.partition(eqx.combine(p, static).refresh(1), eqx.is_inexact_array)
            return (p, state), value

        (p, state), values = jax.lax.scan(step, (p, state), idx_chunk)
        return p, state, values

    state = opt.init(params)
    chunks = [batches[i:i + chunk] for i in range(0, len(batches), chunk)]
    t0 = time.perf_counter()
    params, state, _ = run(params, state, jnp.asarray(chunks[0]))
    jax.block_until_ready(params)
    compile_and_first = time.perf_counter() - t0
    start = time.perf_counter()
    timed = 0
    for c in chunks[1:]:
        if len(c) != chunk:  # a ragged tail would compile a second program; not timed
            params, state, _ = run(params, state, jnp.asarray(c))
            continue
        params, state, _ = run(params, state, jnp.asarray(c))
        timed += len(c)
    jax.block_until_ready(params)
    seconds = time.perf_counter() - start
    model = eqx.combine(params, static)
    nll = float(-jnp.mean(eqx.filter_jit(lambda m, x: m.log_prob(x))(model, jnp.asarray(test))))
    n_params = trainable_parameters(model)
    # the Lipschitz bound as trained: the exact spectral norm of every normalised layer
    blocks_weights = jax.vmap(lambda b: b.normalised_weights()[0])(model.flow.blocks)
    largest = max(float(jnp.max(jax.vmap(lambda w: jnp.linalg.norm(w, 2))(w)))
                  for w, _ in blocks_weights)
    return {"nll": nll, "steps_per_second": timed / seconds, "first_chunk_seconds":
            compile_and_first, "parameters": n_params, "largest_layer_norm": largest}


def fit_maf(data_file, args, seed):
    python = HERE / ".venv-torch" / "bin" / "python"
    if not python.exists():
        return {"error": "bench/.venv-torch missing: run bash bench/setup_torch.sh"}
    cmd = [str(python), str(HERE / "_maf_zuko.py"), data_file, "--steps", str(args.steps),
           "--batch", str(args.batch), "--lr", str(args.lr), "--transforms", str(args.blocks),
           "--seed", str(seed), "--schedule", args.schedule, "--hidden", *map(str, args.hidden)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1][:300]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", nargs="+", default=list(NETWORKS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--per-node", type=int, default=100, help="training samples per node")
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--blocks", type=int, default=4, help="MAF transformations")
    ap.add_argument("--grf-blocks", type=int, default=0,
                    help="GRF blocks; 0: as many as fit in the MAF's number of parameters")
    ap.add_argument("--hidden", type=int, nargs="+", default=[64])
    ap.add_argument("--grf-hidden", type=int, nargs="+", default=None,
                    help="hidden widths of the GRF blocks (default: --hidden, the MAF's); "
                         "narrower blocks buy more of them within the same parameters")
    ap.add_argument("--no-block-affine", action="store_true",
                    help="GRF without the elementwise affine after each block")
    ap.add_argument("--regression", choices=["linear", "mlp"], default=None,
                    help="GRF with a learned regression of every node on its parents in front "
                         "(FlowDensity(regression=...)); its parameters count in the budget")
    ap.add_argument("--linear", action="store_const", const="linear", dest="regression",
                    help="the same as --regression linear")
    ap.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                    help="learning rate: constant, or cosine decay to 0 over --steps (both "
                         "flows)")
    ap.add_argument("--chunk", type=int, default=100, help="deepbn steps per jitted scan")
    ap.add_argument("--out", default=str(HERE / "grf_vs_maf.json"))
    args = ap.parse_args()
    grf_hidden = args.grf_hidden or args.hidden
    rows = []
    for network in args.networks:
        gaussian = examples.load(f"example:{network}").is_linear_gaussian()
        for seed in args.seeds:
            A, train, test, batches, log_scale = make_data(network, seed, args.per_node,
                                                           args.test, args.steps, args.batch)
            with tempfile.TemporaryDirectory() as tmp:
                data_file = str(Path(tmp) / "data.npz")
                np.savez(data_file, train=train, test=test, batches=batches, adjacency=A)
                maf = fit_maf(data_file, args, seed)
            blocks = (blocks_within(A, grf_hidden, maf["parameters"], args.regression)
                      if args.grf_blocks == 0
                      else args.grf_blocks) if "parameters" in maf else args.blocks
            grf, grf_power = [fit_grf(A, train, test, batches, seed, blocks, grf_hidden,
                                      args.lr, args.chunk, not args.no_block_affine, spectral,
                                      args.regression, args.schedule)
                              for spectral in ("exact", "power")]
            oracle = {"nll": oracle_nll(A, train, test)} if gaussian else {}
            for r in (grf, grf_power, maf, oracle):  # standardised units -> the data's units
                if "nll" in r:
                    r["nll"] += log_scale
            grf["blocks"] = grf_power["blocks"] = blocks
            row = {"network": network, "seed": seed, "d": int(A.shape[0]),
                   "n_train": len(train), "grf": grf, "grf_power": grf_power, "maf": maf,
                   "oracle": oracle}
            rows.append(row)
            print(json.dumps(row), flush=True)
            Path(args.out).write_text(json.dumps({"settings": _paths.settings(args), "runs": rows},
                                                 indent=1))
    print("| network | d | NLL GRF exact / power / MAF | linear-Gaussian MLE | steps/s GRF exact "
          "/ power / MAF | power / MAF speed | largest layer norm (power) | blocks GRF/MAF "
          "| params GRF/MAF |")
    print("|---|---|---|---|---|---|---|---|---|")
    for network in args.networks:
        mine = [r for r in rows if r["network"] == network and "nll" in r["maf"]]
        if not mine:
            continue
        mean = lambda who, key, mine=mine: float(np.mean([r[who][key] for r in mine]))  # noqa: E731
        who = ("grf", "grf_power", "maf")
        print(f"| {network} | {mine[0]['d']} | "
              + " / ".join(f"{mean(w, 'nll'):.3f}" for w in who) + " | "
              + (f"{mean('oracle', 'nll'):.3f}" if mine[0].get("oracle") else "–") + " | "
              + " / ".join(f"{mean(w, 'steps_per_second'):.0f}" for w in who)
              + f" | {mean('grf_power', 'steps_per_second') / mean('maf', 'steps_per_second'):.2f}x"
              + f" | {max(r['grf_power']['largest_layer_norm'] for r in mine):.3f}"
              + f" | {mine[0]['grf']['blocks']}/{args.blocks}"
              + f" | {mine[0]['grf']['parameters']}/{mine[0]['maf']['parameters']} |")

if __name__ == "__main__":
    main()
