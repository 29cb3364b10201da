"""Long runs of kingma-dbn: particle Gibbs (deepbn auto) vs NUTS in every form, as T grows.

kingma-dbn (d = 10, sigma_z = 0.1) at T = 20, 100, 1000, one simulated
sequence per T (seed 0), 4 chains. Runs: ``deepbn-auto`` (what ``deepbn
posterior`` does by default: NUTS in the auxiliary form at T = 20, particle
Gibbs from T = 50), ``deepbn-particle`` (particle Gibbs at every T),
``deepbn-blocked`` (blocked particle Gibbs, blocks of 20 states), ``deepbn-centred``,
``deepbn-auxiliary`` (NUTS), ``blackjax-aux`` (hand-written
BlackJAX NUTS in the auxiliary form) and ``numpyro-centred`` / ``numpyro-aux``
(NumPyro NUTS; the DBN's non-centring written by hand, as in
``bench/hmc_dbn.py``, whose peers this reuses). Each run is its own process
(compilation cache off) with a wall-clock limit; a run past it is reported as
such. Reported: ESS (bulk, min and median over all latent coordinates, z-space),
R-hat (rank-normalised split), seconds of warmup + sampling without
compilation, ESS_min per second, ESS_min per 1000 draws, and for deepbn's runs the
CPU seconds of warmup + sampling (process CPU time per transition after the first
chunk, times the transitions) and ESS_min per CPU second, which a machine shared
with other jobs distorts far less than wall-clock time.

    python bench/hmc_long.py --T 20 100           # writes bench/hmc_long.json, .md, .png
    python bench/hmc_long.py --T 1000 --only deepbn-auto --append
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RUNS = ["deepbn-auto", "deepbn-particle", "deepbn-blocked", "deepbn-centred",
        "deepbn-auxiliary", "blackjax-aux", "numpyro-centred", "numpyro-aux"]
PARTICLE_RUNS = ("deepbn-auto", "deepbn-particle", "deepbn-blocked")


def child(T, name, chains, warmup, samples, particles, block):
    sys.path.insert(0, str(HERE))
    import jax

    import hmc_dbn  # the peers: hand-written BlackJAX and NumPyro on kingma-dbn
    from deepbn import examples

    def case(network):
        bn = examples.kingma_dbn(T=T)
        x = bn.sample(jax.random.key(0), 1)
        return bn, {n: x[n] for n in bn.observed_names}

    hmc_dbn._case = case
    if name.startswith("deepbn-"):
        from deepbn.inference import hmc

        bn, obs = case("kingma-dbn")
        form = name.split("-", 1)[1]
        if form == "blocked":  # blocked particle Gibbs, not the default: README "Long runs"
            from deepbn.inference.config import BLOCK

            form, block = "particle", block or BLOCK
        ticks = []  # (transitions done, CPU seconds, wall seconds) after each chunk

        def tick(done, total):
            ticks.append((done, time.process_time(), time.perf_counter()))

        post = hmc.sample_posterior(bn, obs, form=form, chains=chains,
                                    warmup=warmup, samples=samples, seed=1,
                                    particles=particles, block=block, chunk=50,
                                    progress=tick)
        s = post.summary
        res = {k: s.get(k) for k in ("ess_min", "ess_median", "rhat_max", "seconds",
                                     "compile_seconds", "pilot_seconds", "ess_min_per_s",
                                     "update_rate", "samples", "warmup")}
        res["scheme"] = s["scheme"]
        # CPU time (all threads of this process) per transition, from the chunks after the
        # first (which holds the compilation): on a machine shared with other jobs it
        # measures the work where wall-clock seconds measure the load too
        (d0, c0, _), (d1, c1, _) = ticks[0], ticks[-1]
        cpu_per_step = (c1 - c0) / max(d1 - d0, 1)
        res["cpu_seconds"] = cpu_per_step * (warmup + samples)
        res["ess_min_per_cpu_s"] = s["ess_min"] / res["cpu_seconds"]
    elif name == "blackjax-aux":
        res, _ = hmc_dbn.run_blackjax("kingma-dbn", chains, warmup, samples)
    else:
        res, _ = hmc_dbn.run_numpyro("kingma-dbn", name.endswith("centred"), chains, warmup,
                                     samples)
    res["ess_min_per_1000_draws"] = 1000.0 * res["ess_min"] / (chains * samples)
    print(json.dumps(res, default=float))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, nargs="+", default=[20, 100, 1000])
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=300, help="NUTS warmup")
    ap.add_argument("--samples", type=int, default=300, help="NUTS draws per chain")
    ap.add_argument("--pg-warmup", type=int, default=200, help="particle-Gibbs burn-in")
    ap.add_argument("--pg-samples", type=int, default=1000, help="particle-Gibbs draws")
    ap.add_argument("--particles", type=int, default=None,
                    help="particles (default: deepbn's choice, summary.json's scheme)")
    ap.add_argument("--block", type=int, default=None,
                    help="particle-Gibbs block length (default: deepbn's choice)")
    ap.add_argument("--limit", type=float, default=600.0, help="seconds per run")
    ap.add_argument("--only", nargs="+", default=None)
    ap.add_argument("--append", action="store_true", help="add to the existing results")
    ap.add_argument("--out", default=str(HERE / "hmc_long.json"))
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        T, name = int(args.child[0]), args.child[1]
        pg = name in PARTICLE_RUNS and not (name == "deepbn-auto" and T < 50)
        child(T, name, args.chains, args.pg_warmup if pg else args.warmup,
              args.pg_samples if pg else args.samples, args.particles, args.block)
        return
    out = Path(args.out)
    results = json.loads(out.read_text())["results"] if args.append and out.exists() else []
    for T in args.T:
        for name in RUNS:
            if args.only and name not in args.only:
                continue
            cmd = [sys.executable, __file__, "--child", str(T), name]
            for opt in ("chains", "warmup", "samples", "pg_warmup", "pg_samples", "particles",
                        "block"):
                if getattr(args, opt) is not None:
                    cmd += [f"--{opt.replace('_', '-')}", str(getattr(args, opt))]
            env = {**os.environ, "JAX_ENABLE_COMPILATION_CACHE": "false"}
            start = time.perf_counter()
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                                      timeout=args.limit)
                if proc.returncode != 0:
                    row = {"T": T, "run": name,
                           "error": (proc.stderr.strip().splitlines() or ["?"])[-1][:300]}
                else:
                    row = {"T": T, "run": name,
                           **json.loads(proc.stdout.strip().splitlines()[-1])}
            except subprocess.TimeoutExpired:
                row = {"T": T, "run": name, "error": f"past the {args.limit:.0f} s limit"}
            row["wall_seconds"] = round(time.perf_counter() - start, 1)
            if "samples" in row:  # the draws this row ran, which may differ between T
                row["draws"] = f"{row.pop('warmup')} + {row.pop('samples')}"
            results = [r for r in results if (r["T"], r["run"]) != (T, name)] + [row]
            print(json.dumps(row, default=float), flush=True)
            out.write_text(json.dumps({"results": results, "settings": {
                k: getattr(args, k) for k in ("chains", "warmup", "samples", "pg_warmup",
                                              "pg_samples", "particles", "block",
                                              "limit")}},
                indent=1, default=float))
    table = _table(results)
    out.with_suffix(".md").write_text(table)
    print(table)
    _plot(results, out.with_suffix(".png"))


def _table(results) -> str:
    lines = ["| T | run | scheme | warmup + draws | ESS min | ESS median | R-hat max | "
             "ESS_min / 1000 draws | s (no compile) | ESS_min/s | CPU s | ESS_min/CPU s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r["T"], RUNS.index(r["run"]))):
        if "error" in r:
            lines.append(f"| {r['T']} | {r['run']} | | | {r['error']} | | | | | | | |")
            continue
        rhat = "inf" if r["rhat_max"] is None else f"{r['rhat_max']:.3f}"
        sc = r.get("scheme") or {}
        scheme = sc.get("form", "")
        if sc.get("name") == "particle-gibbs":
            scheme = (f"PG, {sc['particles']} particles"
                      + (f", blocks of {sc['block']}" if sc.get("block") else ""))
        lines.append(f"| {r['T']} | {r['run']} | {scheme} | {r.get('draws', '')} | "
                     f"{r['ess_min']:.1f} | {r['ess_median']:.0f} | "
                     f"{rhat} | {r['ess_min_per_1000_draws']:.1f} | {r['seconds']:.1f} | "
                     f"{r['ess_min_per_s']:.3f} | " + (
                         f"{r['cpu_seconds']:.1f} | {r['ess_min_per_cpu_s']:.3f} |"
                         if "cpu_seconds" in r else " | |"))
    return "\n".join(lines) + "\n"


def _plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    for name in RUNS:
        pts = sorted((r["T"], r["ess_min_per_s"]) for r in results
                     if r["run"] == name and "error" not in r and r["ess_min_per_s"])
        if pts:
            ax.plot(*np.array(pts).T, "o-", label=name)
        cpu = sorted((r["T"], r["ess_min_per_cpu_s"]) for r in results
                     if r["run"] == name and r.get("ess_min_per_cpu_s"))
        if cpu:
            bx.plot(*np.array(cpu).T, "o-", label=name)
    ax.set(xscale="log", yscale="log", xlabel="T (time steps)", ylabel="ESS_min per second",
           title="kingma-dbn (d = 10): wall clock (shared machine)")
    ax.legend(fontsize=8)
    auto = sorted((r["T"], r["ess_min_per_cpu_s"]) for r in results
                  if r.get("ess_min_per_cpu_s") and r.get("scheme", {}).get("block") == 0)
    if auto:  # the target: cost per effective sample at most linear in T from the smallest T
        t0, e0 = auto[0]
        ts = np.array([t0, max(t for t, _ in auto)])
        bx.plot(ts, e0 * t0 / ts, "k--", lw=0.8, label="linear in T (target bound)")
    bx.set(xscale="log", yscale="log", xlabel="T (time steps)", ylabel="ESS_min per CPU second",
           title="particle Gibbs: per CPU second")
    bx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
