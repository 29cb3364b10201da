"""SIReN-VAE variants in the data-sparse and data-rich settings (not a test).

The paper's setting (Mouton & Kroon 2022, Sec. 5): training sets of 2 x |nodes|
(sparse) and 100 x |nodes| (rich) samples drawn from the network, 1000 held-out
samples, the non-leaf nodes latent (the observed nodes of the built-in examples
where the example already marks them); variants true / fc / ind / vae; every
run the same budget of optimiser steps. Reports held-out NLL (importance
sampling, k = 1000, in the data's units), reconstruction error (standardised)
and seconds.

    python bench/siren.py --networks arithmetic-circuit gaussian-binary-tree --seeds 0
    python bench/siren.py            # all four networks, seeds 0-2 (long)

Writes bench/siren.json (after every run) and prints a table of seed means.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import numpy as np

import _paths
from deepbn import examples
from deepbn.cli.siren import default_latent
from deepbn.siren import experiment as siren_experiment
from deepbn.siren import model as siren

HERE = Path(__file__).resolve().parent
NETWORKS = ("arithmetic-circuit", "gaussian-binary-tree", "ecoli70", "magic-niab")


def run(network: str, setting: str, variant: str, seed: int, steps: int, test: int,
        warmup: float) -> dict:
    bn = examples.load(f"example:{network}")
    latent = default_latent(bn)
    spec = siren.SirenSpec.from_network(bn, latent, variant)
    n = (2 if setting == "sparse" else 100) * bn.d
    sample = bn.sample(jax.random.key(1000 + seed), n + test)
    x = np.concatenate([np.asarray(sample[o]) for o in spec.observed], axis=1)
    batch = min(64, n)
    epochs = max(1, siren_experiment.epochs_for_steps(steps, n, batch))
    res = siren_experiment.train(bn, latent, variant, x[:n], x[n:], epochs=epochs, batch=batch,
                                 seed=seed, warmup=warmup)
    return {"network": network, "setting": setting, "variant": variant, "seed": seed,
            "n_train": n, "epochs": epochs, "nll": res["nll"], "re": res["re"],
            "seconds": res["seconds"], "latent": len(latent), "observed": len(spec.observed)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", nargs="+", default=list(NETWORKS))
    ap.add_argument("--settings", nargs="+", default=["sparse", "rich"])
    ap.add_argument("--variants", nargs="+", default=list(siren.VARIANTS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--warmup", type=float, default=0.2,
                    help="KL warm-up fraction (siren_sparse.md predates it: --warmup 0)")
    ap.add_argument("--out", default=str(HERE / "siren.json"))
    args = ap.parse_args()
    rows = []
    for network in args.networks:
        for setting in args.settings:
            for seed in args.seeds:
                for variant in args.variants:
                    try:
                        row = run(network, setting, variant, seed, args.steps, args.test,
                                  args.warmup)
                    except Exception as e:  # noqa: BLE001 - a failed run is reported, not fatal
                        row = {"network": network, "setting": setting, "variant": variant,
                               "seed": seed, "error": f"{type(e).__name__}: {e}"[:300]}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    Path(args.out).write_text(json.dumps(
                        {"settings": _paths.settings(args), "runs": rows}, indent=1))
    print("| network | setting | " + " | ".join(f"{v} NLL" for v in args.variants)
          + " | true < vae |")
    print("|---|---|" + "---|" * (len(args.variants) + 1))
    for network in args.networks:
        for setting in args.settings:
            means = {}
            for v in args.variants:
                vals = [r["nll"] for r in rows if r["network"] == network and
                        r["setting"] == setting and r["variant"] == v and "nll" in r]
                means[v] = float(np.mean(vals)) if vals else float("nan")
            ok = means.get("true", np.nan) < means.get("vae", np.nan)
            print(f"| {network} | {setting} | " + " | ".join(f"{means[v]:.3f}" for v in
                                                             args.variants) + f" | {ok} |")


if __name__ == "__main__":
    main()
