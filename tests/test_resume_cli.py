"""Ctrl-C as a user sends it: the installed ``deepbn`` executable, a real SIGINT, real files.

An interrupted ``deepbn posterior`` run again with the same command continues from its
checkpoint and ends with the draws of an uninterrupted run, bit for bit.
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


def _deepbn(args, env, **kw):
    return subprocess.run([EXE, *args], env=env, capture_output=True, text=True, timeout=600,
                          **kw)


@pytest.fixture()
def env(tmp_path):
    return {**os.environ, "JAX_PLATFORMS": "cpu", "DEEPBN_CACHE": str(tmp_path / "cache")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One uninterrupted ``posterior`` run, shared by the signal cases: (command, its folder)."""
    folder = tmp_path_factory.mktemp("posterior")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "DEEPBN_CACHE": str(folder / "cache")}
    data = folder / "seq.csv"
    assert _deepbn(["sample", "example:kingma-dbn", "-n", "1", "-o", str(data)], env
                   ).returncode == 0
    common = ["posterior", "example:kingma-dbn", str(data), "--warmup", "100", "--samples",
              "100", "--checkpoint-every", "20", "--form", "auxiliary", "--seed", "1", "--json"]
    full = _deepbn([*common, "--out", str(folder / "full")], env)
    assert full.returncode == 0, full.stderr[-2000:]
    return common, folder / "full"


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_then_rerun_gives_the_uninterrupted_draws(tmp_path, env, uninterrupted, sig,
                                                           status):
    common, full = uninterrupted
    part = tmp_path / "part"
    proc = subprocess.Popen([EXE, *common, "--out", str(part)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (part / "checkpoint.npz").exists() and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.05)
    assert proc.poll() is None, "finished before the interrupt could be sent"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == status and "Traceback" not in err
    assert "interrupted; run the same command again" in err
    assert (part / "checkpoint.npz").exists() and not (part / "samples.npz").exists()
    if sig == signal.SIGTERM:
        return  # from here on the same path as after SIGINT: checked once, to keep CI short
    again = _deepbn([*common, "--out", str(part)], env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming from" in again.stderr and "steps already done" in again.stderr
    summary = json.loads(again.stdout)
    assert summary["resumed_from_step"] >= 20
    with np.load(full / "samples.npz") as a, np.load(part / "samples.npz") as b:
        assert set(a.files) == set(b.files)
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])
    if (full / "posterior.nc").exists():  # ArviZ installed (deepbn[arviz]): the same tree
        import xarray as xr

        with xr.open_datatree(full / "posterior.nc") as a, \
                xr.open_datatree(part / "posterior.nc") as b:
            assert set(a.children) == set(b.children) == {"posterior", "sample_stats",
                                                          "observed_data"}
            for group in a.children:  # values exactly, dims, coordinates (not created_at)
                xr.testing.assert_equal(a[group].to_dataset(), b[group].to_dataset())
            assert a.attrs == b.attrs



def test_a_folder_of_other_settings_is_refused_in_one_line(tmp_path, capsys):
    from deepbn.cli.app import main

    data = tmp_path / "h.csv"
    assert main(["sample", "example:gaussian-hierarchy", "-n", "1", "-o", str(data)]) == 0
    args = ["posterior", "example:gaussian-hierarchy", str(data), "--warmup", "50",
            "--samples", "20", "--out", str(tmp_path / "p")]
    assert main(args) == 0
    config = (tmp_path / "p" / "config.json").read_text()
    capsys.readouterr()
    assert main([*args, "--chains", "3"]) == 2
    err = capsys.readouterr().err
    assert "other data or settings" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "p" / "config.json").read_text() == config  # left as it was


def test_a_folder_in_use_by_a_running_command_is_refused(tmp_path, env):
    data = tmp_path / "d.csv"
    assert _deepbn(["sample", "example:gaussian-er10", "-n", "50", "-o", str(data)], env
                   ).returncode == 0
    out = tmp_path / "run"
    first = subprocess.Popen([EXE, "discover", str(data), "--out", str(out), "--steps", "20000"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (out / ".deepbn.lock").exists() or not (out / ".deepbn.lock").read_text():
            assert time.time() < deadline and first.poll() is None
            time.sleep(0.05)
        second = _deepbn(["discover", str(data), "--out", str(out), "--steps", "20"], env)
        assert second.returncode == 2
        assert f"in use by another running deepbn command (pid {first.pid})" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        first.kill()  # SIGKILL: the system releases the lock; nothing is left stuck
        first.communicate()
    again = _deepbn(["discover", str(data), "--out", str(out), "--steps", "20"], env)
    assert again.returncode == 0, again.stderr[-2000:]
