"""A results folder as a user meets it: another run's settings and a folder in use are
refused in one line; a killed holder leaves no stale lock. (Signals and resuming:
``tests/test_interrupt_cli.py``.)"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXE = shutil.which("deepbn") or str(Path(sys.executable).parent / "deepbn")


def _deepbn(args, env, **kw):
    return subprocess.run([EXE, *args], env=env, capture_output=True, text=True, timeout=600,
                          **kw)


@pytest.fixture()
def env(tmp_path):
    return {**os.environ, "JAX_PLATFORMS": "cpu", "DEEPBN_CACHE": str(tmp_path / "cache")}


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
    first = subprocess.Popen([EXE, "discover", str(data), "--out", str(out), "--sampler", "dibs",
                              "--steps", "20000"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (out / ".deepbn.lock").exists() or not (out / ".deepbn.lock").read_text():
            assert time.time() < deadline and first.poll() is None
            time.sleep(0.05)
        second = _deepbn(["discover", str(data), "--out", str(out), "--sampler", "dibs",
                          "--steps", "20"], env)
        assert second.returncode == 2
        assert f"in use by another running deepbn command (pid {first.pid})" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        first.kill()  # SIGKILL: the system releases the lock; nothing is left stuck
        first.communicate()
    again = _deepbn(["discover", str(data), "--out", str(out), "--sampler", "dibs", "--steps",
                     "20"], env)
    assert again.returncode == 0, again.stderr[-2000:]


def test_a_second_run_finds_every_compiled_program_in_the_cache(tmp_path, env):
    """Small programs are kept too (each eager operation is one): a repeated command
    compiles nothing new."""
    cache = Path(env["DEEPBN_CACHE"]) / "jax"

    def entries():
        return {p.name for p in cache.glob("*-cache")}

    for out in ("a.csv", "b.csv"):
        done = _deepbn(["sample", "example:gaussian-hierarchy", "-n", "5", "--seed", "2",
                        "-o", str(tmp_path / out)], env)
        assert done.returncode == 0, done.stderr
        if out == "a.csv":
            first = entries()
    assert len(first) >= 5 and entries() == first
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
