"""Graph VAE, FC-VAE, Ladder VAE and VAE on binarized MNIST at a fixed CPU budget (not a test).

N = 5 nodes x 16 dims, batch 64, Adam 1e-3 (x0.99 per epoch), gate temperature
0.99^epoch; every (structure, seed) run is its own process (peak RSS per run).
Reports test log-likelihood (IWAE, k importance samples, on the first
``--test-examples`` test images), ELBO and KL on the same images, training
steps/s (median epoch after the first, which compiles), peak RSS and wall time;
and the same Graph VAE in plain PyTorch (``bench/_vae_torch.py``: eager, fused
Adam, torch 2.13.0 in ``bench/.venv-torch``, made by ``bench/setup_torch.sh``)
timed on batches of the same data: the steps/s ratio.

    bash bench/setup_torch.sh
    python bench/vae_mnist.py --epochs 5 --seeds 0 --iw 1000 --test-examples 1000

Writes bench/vae_mnist.json (updated after every run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _paths

HERE = Path(__file__).resolve().parent
MNIST = HERE.parent.parent / "shared" / "data" / "binarized_mnist.npz"
STRUCTURES = ("none", "chain", "full", "learned")


def child(structure: str, seed: int, epochs: int, iw: int, test_examples: int, data: str):
    import numpy as np

    from deepbn.graph_vae import experiment, model
    from deepbn.io import datasets

    d = datasets.load_images(data)
    cfg = model.GraphVAEConfig(nodes=5, node_dim=16, structure=structure)
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        res = experiment.train(cfg, d, out, epochs, batch=64, seed=seed)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ev = experiment.evaluate_folder(out, iw=iw, max_examples=test_examples, seed=seed, data=d)
        eval_s = time.perf_counter() - t0
    epoch_s = [h["seconds"] for h in res["history"]]
    steps = d.train.shape[0] // 64
    row = {"structure": structure, "seed": seed, "epochs": epochs, "ll": ev["ll"],
           "ll_stderr": ev["ll_stderr"], "elbo": ev["elbo"], "kl": ev["kl"],
           "train_elbo": res["history"][-1]["elbo"], "valid_elbo": res["history"][-1]["valid_elbo"],
           "steps_per_second": steps / float(np.median(epoch_s[1:] or epoch_s)),
           "epoch_seconds_median": float(np.median(epoch_s[1:] or epoch_s)),
           "first_epoch_seconds": epoch_s[0], "train_seconds": train_s, "eval_seconds": eval_s,
           "structure_edges": ev["structure"], "gates": ev["gate_probabilities"],
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "stopped": res["message"]}
    print(json.dumps(row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--structures", nargs="+", default=list(STRUCTURES))
    ap.add_argument("--iw", type=int, default=1000)
    ap.add_argument("--test-examples", type=int, default=1000)
    ap.add_argument("--torch-steps", type=int, default=300)
    ap.add_argument("--data", default=str(MNIST))
    ap.add_argument("--out", default=str(HERE / "vae_mnist.json"))
    ap.add_argument("--child", nargs=2, metavar=("STRUCTURE", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.epochs, args.iw, args.test_examples,
              args.data)
        return
    results: dict = {"settings": _paths.settings(args) | {"child": None}, "runs": [], "torch": None}

    def save():
        Path(args.out).write_text(json.dumps(results, indent=1))

    torch_python = HERE / ".venv-torch" / "bin" / "python"
    if torch_python.exists():
        proc = subprocess.run([str(torch_python), str(HERE / "_vae_torch.py"), args.data,
                               "--steps", str(args.torch_steps)], capture_output=True, text=True)
        results["torch"] = (json.loads(proc.stdout.strip().splitlines()[-1])
                            if proc.returncode == 0 else {"error": proc.stderr[-300:]})
        print("torch", results["torch"], flush=True)
        save()
    for seed in args.seeds:
        for structure in args.structures:
            cmd = [sys.executable, __file__, "--child", structure, str(seed), "--epochs",
                   str(args.epochs), "--iw", str(args.iw), "--test-examples",
                   str(args.test_examples), "--data", args.data]
            env = {**os.environ, "JAX_ENABLE_COMPILATION_CACHE": "false"}
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            row = (json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0
                   else {"structure": structure, "seed": seed, "error": proc.stderr[-300:]})
            results["runs"].append(row)
            print(json.dumps(row), flush=True)
            save()
    _print_table(results)


def _print_table(results):
    torch_sps = (results.get("torch") or {}).get("steps_per_second")
    print("| structure | seed | test LL (IWAE) | ELBO | KL | steps/s | vs PyTorch | peak RSS MiB "
          "| train s | edges |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results["runs"]:
        if "error" in r:
            print(f"| {r['structure']} | {r['seed']} | error: {r['error'][-80:]} |")
            continue
        ratio = f"{r['steps_per_second'] / torch_sps:.2f}x" if torch_sps else "n/a"
        print(f"| {r['structure']} | {r['seed']} | {r['ll']:.2f} ± {r['ll_stderr']:.2f} | "
              f"{r['elbo']:.2f} | {r['kl']:.2f} | {r['steps_per_second']:.1f} | {ratio} | "
              f"{r['peak_rss_mib']:.0f} | {r['train_seconds']:.0f} | "
              f"{len(r['structure_edges'])} |")
    if torch_sps:
        print(f"PyTorch {results['torch']['torch']} Graph VAE: {torch_sps:.1f} steps/s "
              f"({results['torch']['threads']} threads)")


if __name__ == "__main__":
    main()
