"""Interruptions as a user meets them: the installed ``deepbn`` executable, real signals.

For every long command (discover, fit, posterior, vae train, siren train): a run is killed
(SIGKILL) right after its first checkpoint; the same command run again resumes, saying so,
and is stopped with Ctrl-C (SIGINT; for ``posterior`` SIGTERM, which the same handler turns
into the same stop) after its next checkpoint: exit 130 (143), one line saying how to
resume, no results yet; run a last time it
finishes with exactly the results of an uninterrupted run. The uninterrupted run goes on
beside the interrupted ones; it starts once the killed run has written its first checkpoint,
so that it (and every later run) finds the compiled programs in the shared compilation cache
(DEEPBN_CACHE) as a user's second run does, instead of compiling them a second time at once.

Why each command is here (all five run through the one driver ``deepbn.run.run``, but each
has its own resume glue): discover (DiBS particles, graphs.json), fit (MCMC-EM state and the
fitted network.json), posterior (NUTS warmup then sampling, ArviZ file; SIGTERM), vae train
(epochs with a per-epoch history and minibatch keys), siren train (its own epoch loop and
held-out evaluation). Sizes are the smallest that still leave several checkpoints after the
one that is signalled (the run must still be running when the signal arrives).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

EXE = shutil.which("deepbn") or str(Path(sys.executable).parent / "deepbn")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Data for every command, written in-process: {name: path}."""
    import jax

    from deepbn.examples import load
    from deepbn.io.tables import write_table

    d = tmp_path_factory.mktemp("inputs")
    paths = {}
    for spec, name, n in [("example:gaussian-er10", "er.csv", 60),
                          ("example:gaussian-hierarchy", "h.csv", 4),
                          ("example:kingma-dbn", "dbn.csv", 1),
                          ("example:gaussian-binary-tree", "tree.csv", 120)]:
        net = load(spec)
        names = list(net.observed_names)
        write_table(d / name, net.to_table(net.sample(jax.random.key(1), n), names),
                    net.columns(names))
        paths[name] = str(d / name)
    rng = np.random.default_rng(0)
    images = {k: (rng.random((n, 64)) < 0.3).astype(np.uint8)
              for k, n in [("train", 256), ("valid", 32), ("test", 16)]}
    np.savez(d / "images.npz", **images)
    paths["images.npz"] = str(d / "images.npz")
    return paths


def _same_draws(full, part):
    with np.load(full / "samples.npz") as a, np.load(part / "samples.npz") as b:
        assert set(a.files) == set(b.files)
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _same_arviz_file(full, part):
    import xarray as xr

    with xr.open_datatree(full / "posterior.nc") as a, \
            xr.open_datatree(part / "posterior.nc") as b:
        assert set(a.children) == set(b.children) == {"posterior", "sample_stats",
                                                      "observed_data"}
        for group in a.children:  # values exactly, dims, coordinates (not created_at)
            xr.testing.assert_equal(a[group].to_dataset(), b[group].to_dataset())
        assert a.attrs == b.attrs


def _same_json(name, drop=()):
    def read(folder):
        value = json.loads((folder / name).read_text())
        if isinstance(value, list):
            return [{k: v for k, v in r.items() if k not in drop} for r in value]
        return {k: v for k, v in value.items() if k not in drop}

    def check(full, part):
        assert read(full) == read(part), name
    return check


def _same_text(name):
    def check(full, part):
        assert (full / name).read_text() == (part / name).read_text(), name
    return check


TIMING = ("seconds", "compile_seconds", "steps_per_second", "resumed_from_step",
          "resumed_from", "resumed_from_iteration", "ess_min_per_s", "ess_median_per_s")

# command -> (arguments with {name} for an input, signals after the first kill, what must
# equal the uninterrupted run's)
COMMANDS = {
    "discover": (["discover", "{er.csv}", "--sampler", "dibs", "--steps", "400",
                  "--particles", "8"],
                 [signal.SIGINT], [_same_text("edge_probs.csv"), _same_json("graphs.json")]),
    "fit": (["fit", "example:gaussian-hierarchy", "{h.csv}", "--iterations", "150"],
            [signal.SIGINT], [_same_text("network.json"), _same_json("summary.json", TIMING)]),
    "posterior": (["posterior", "example:kingma-dbn", "{dbn.csv}", "--warmup", "100",
                   "--samples", "100", "--checkpoint-every", "20", "--form", "auxiliary",
                   "--chains", "2", "--seed", "1"],
                  [signal.SIGTERM], [_same_draws, _same_arviz_file]),
    "vae train": (["vae", "train", "--data", "{images.npz}", "--epochs", "6", "--nodes", "2",
                   "--latent-dim", "4", "--batch", "16"],
                  [signal.SIGINT], [_same_json("history.json", TIMING),
                   _same_json("summary.json", TIMING)]),
    "siren train": (["siren", "train", "example:gaussian-binary-tree", "{tree.csv}",
                     "--epochs", "60", "--batch", "16", "--blocks", "1", "--iw", "8"],
                    [signal.SIGINT], [_same_json("history.json"), _same_json("eval.json", TIMING)]),
}
STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}


@pytest.fixture(autouse=True, scope="module")
def _sigint_as_in_a_terminal():
    """pytest started in the background by a shell without job control has SIGINT ignored,
    and the runs would inherit that (Python then never raises KeyboardInterrupt: a Ctrl-C'd
    run goes on to the end). A handler here is reset to the default in each run, as in a
    terminal."""
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _start(args, out, env):
    return subprocess.Popen([EXE, *args, "--out", str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _stamp(path):
    return path.stat().st_mtime_ns if path.exists() else None


def _signal_after_next_checkpoint(proc, checkpoint, sig):
    """Wait until ``proc`` writes a checkpoint newer than the present one, then signal it."""
    before = _stamp(checkpoint)
    deadline = time.time() + 300
    while _stamp(checkpoint) == before:
        assert proc.poll() is None, f"ended before a new checkpoint: {proc.stderr.read()[-2000:]}"
        assert time.time() < deadline
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_killed_and_interrupted_runs_resume_to_the_uninterrupted_result(tmp_path, inputs,
                                                                        command):
    template, signals, same = COMMANDS[command]
    args = [inputs[a[1:-1]] if a.startswith("{") else a for a in template]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    full, part = tmp_path / "full", tmp_path / "part"
    killed = _start(args, part, env)
    uninterrupted = None
    try:
        _signal_after_next_checkpoint(killed, part / "checkpoint.npz", signal.SIGKILL)
        uninterrupted = _start(args, full, env)
        for sig in signals:
            status, err = _signal_after_next_checkpoint(_start(args, part, env),
                                                        part / "checkpoint.npz", sig)
            lines = err.strip().splitlines()
            assert "Traceback" not in err, err[-2000:]
            assert (status, lines[0][:14], lines[-1]) == (
                STATUS[sig], "resuming from ",
                "interrupted; run the same command again to resume from the last checkpoint")
            assert not any((part / name).exists() for name in ("summary.json", "eval.json"))
        last = subprocess.run([EXE, *args, "--out", str(part)], env=env, capture_output=True,
                              text=True, timeout=600)
        assert last.returncode == 0, last.stderr[-2000:]
        assert last.stderr.startswith("resuming from "), last.stderr[:500]
        _, err = uninterrupted.communicate(timeout=600)
        assert uninterrupted.returncode == 0, err[-2000:]
    finally:
        for proc in (killed, uninterrupted):
            if proc is not None and proc.poll() is None:
                proc.kill()
    for check in same:
        check(full, part)
