"""Automatic NUTS vs hand-written BlackJAX on kingma-dbn: ESS per second over chain seeds,
and the whole program's cost per gradient (not a test).

1. **NUTS over seeds.** ``deepbn-auto`` (``hmc.sample_posterior(form="auto")``) and
   ``blackjax-aux`` (bench/hmc_dbn.py's hand-written auxiliary-form density with
   ``blackjax.window_adaptation`` + ``blackjax.nuts``) on the same data, the same
   warmup, draws and number of chains, for each chain seed, each run in its own
   process (bench/hmc_dbn.py's children). Reported: ESS_min per second of sampling
   (warmup + draws, compilation excluded; deepbn's automatic-form pilot is reported
   apart) and R-hat, per seed and averaged.
2. **Cost per gradient.** Both run HMC with a fixed number of leapfrog steps in the
   auxiliary form, so both take exactly the same number of gradients: the ratio of
   sampling times is the ratio of the whole programs' costs per gradient
   (adaptation included, compile excluded).

``--clock cpu`` reads every timer from ``time.process_time`` (CPU seconds of all
threads), which a shared machine inflates far less than wall-clock seconds.

    python bench/hmc_fixed_steps.py                      # 5 seeds x 4 chains, 1000 + 1000
    python bench/hmc_fixed_steps.py --clock cpu --seeds 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import blackjax
import jax
import numpy as np

import hmc_dbn
from deepbn.inference import hmc

HERE = Path(__file__).resolve().parent
RUNS = ("deepbn-auto", "blackjax-aux")


def hand_written(bn, obs, steps: int, warmup: int, samples: int, chains: int):
    logdensity, T, dim = hmc_dbn.hand_written_logdensity(bn, obs)

    def chain(key, pos):
        k1, k2 = jax.random.split(key)
        adapt = blackjax.window_adaptation(blackjax.hmc, logdensity, num_integration_steps=steps)
        (state, params), _ = adapt.run(k1, pos, num_steps=warmup)
        kernel = blackjax.hmc(logdensity, **params)
        _, draws = jax.lax.scan(lambda s, k: (kernel.step(k, s)[0],) * 2, state,
                                jax.random.split(k2, samples))
        return draws.position

    keys = jax.random.split(jax.random.key(1), chains)
    pos = jax.random.normal(jax.random.key(2), (chains, T * dim))
    compiled = jax.jit(jax.vmap(chain)).lower(keys, pos).compile()
    start = time.perf_counter()
    jax.block_until_ready(compiled(keys, pos))
    return time.perf_counter() - start


def cost_per_gradient(args) -> dict:
    bn, obs = hmc_dbn._case("kingma-dbn")
    rows = []
    for r in range(args.repeats):
        post = hmc.sample_posterior(bn, obs, form="auxiliary", sampler="hmc",
                                    integration_steps=args.steps, chains=2,
                                    warmup=500, samples=1000, seed=1)
        mine = post.summary["seconds"]
        theirs = hand_written(bn, obs, args.steps, 500, 1000, 2)
        rows.append({"repeat": r, "deepbn_s": mine, "blackjax_s": theirs, "ratio": mine / theirs})
        print(json.dumps(rows[-1]), flush=True)
    best = min(row["deepbn_s"] for row in rows), min(row["blackjax_s"] for row in rows)
    return {"gradients": 2 * 1500 * args.steps, "steps": args.steps, "repeats": rows,
            "deepbn_best_s": best[0], "blackjax_best_s": best[1], "ratio_best": best[0] / best[1]}


def nuts_seeds(args) -> list[dict]:
    rows = []
    env = {**os.environ, "JAX_ENABLE_COMPILATION_CACHE": "false"}
    for seed in range(args.seeds):
        for name in RUNS:
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, str(HERE / "hmc_dbn.py"), "--child", "kingma-dbn", name,
                       "--chains", str(args.chains), "--warmup", str(args.warmup),
                       "--samples", str(args.samples), "--seed", str(seed),
                       "--draws", str(Path(tmp) / "draws.npy"), "--clock", args.clock]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise SystemExit(f"{name} seed {seed}: {proc.stderr.strip().splitlines()[-1]}")
            row = {"seed": seed, "run": name, **json.loads(proc.stdout.strip().splitlines()[-1])}
            rows.append(row)
            print(json.dumps(row, default=float), flush=True)
    return rows


def _table(rows: list[dict], seeds: int) -> list[str]:
    lines = ["| seed | run | ESS_min | R-hat max | s (no compile) | pilot s | ESS_min/s | "
             "ESS_min/1000 grads |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['run']} | {r['ess_min']:.0f} | {r['rhat_max']:.3f} | "
                     f"{r['seconds']:.1f} | {r.get('pilot_seconds', 0.0):.1f} | "
                     f"{r['ess_min_per_s']:.2f} | {r['ess_min_per_1000_grads']:.2f} |")
    per = {n: [r for r in rows if r["run"] == n] for n in RUNS}
    rate = {n: np.mean([r["ess_min_per_s"] for r in per[n]]) for n in RUNS}
    ratios = [a["ess_min_per_s"] / b["ess_min_per_s"] for a, b in zip(*per.values())]
    lines.append("")
    lines.append(f"Mean over {seeds} seeds: ESS_min/s deepbn-auto {rate['deepbn-auto']:.2f}, "
                 f"blackjax-aux {rate['blackjax-aux']:.2f}, ratio of means "
                 f"{rate['deepbn-auto'] / rate['blackjax-aux']:.2f}, mean of per-seed ratios "
                 f"{np.mean(ratios):.2f}; R-hat max over seeds: "
                 + ", ".join(f"{n} {max(r['rhat_max'] for r in per[n]):.3f}" for n in RUNS))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=16, help="leapfrog steps of the HMC part")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the HMC part")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    ap.add_argument("--out", default=str(HERE / "hmc_fixed_steps.json"))
    args = ap.parse_args()
    rows = nuts_seeds(args) if args.seeds else []
    if args.clock == "cpu":
        global time
        hmc_dbn.use_cpu_clock()
        time = hmc_dbn.time
    cost = cost_per_gradient(args) if args.repeats else None
    lines = _table(rows, args.seeds) if rows else []
    if cost:
        lines += ["", f"HMC, {cost['steps']} leapfrog steps, {cost['gradients']} gradients each, "
                  f"best of {len(cost['repeats'])}: deepbn "
                  f"{cost['deepbn_best_s']:.3f} s, hand-written BlackJAX "
                  f"{cost['blackjax_best_s']:.3f} s, ratio {cost['ratio_best']:.2f}"]
    print("\n".join(lines))
    settings = {k: getattr(args, k) for k in ("seeds", "chains", "warmup", "samples", "steps",
                                              "clock")}
    Path(args.out).write_text(json.dumps({"settings": settings, "nuts": rows,
                                          "cost_per_gradient": cost}, indent=1, default=float))
    Path(args.out).with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
