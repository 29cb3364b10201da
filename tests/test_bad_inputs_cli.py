"""Bad input as a user meets it: the installed ``deepbn`` executable, real files.

Each case must end with exit status 2, one line ``error: ...`` on stderr that keeps
every character of the message (no markup), no traceback and no output file.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXE = shutil.which("deepbn") or str(Path(sys.executable).parent / "deepbn")

TABLES = {
    "extra_field.csv": ("a,b\n1,2,3\n4,5,6\n", "line 2 has 3 fields, the header 2"),
    "beyond_float32.csv": ("a,b\n1,1e39\n2,3\n4,5\n", "value 1e39 in column 'b' (line 2)"),
}


@pytest.fixture()
def env(tmp_path):
    return {**os.environ, "JAX_PLATFORMS": "cpu", "DEEPBN_CACHE": str(tmp_path / "cache")}


def _run(args, env):
    return subprocess.run([EXE, *args], env=env, capture_output=True, text=True, timeout=300)


def _one_line_error(proc, message):
    err = proc.stderr.strip()
    assert proc.returncode == 2, err[-2000:]
    assert "Traceback" not in err and len(err.splitlines()) == 1, err[-2000:]
    assert err.startswith("error:") and message in err, err


@pytest.mark.parametrize("name", sorted(TABLES))
def test_malformed_tables_are_refused_naming_the_cell(tmp_path, env, name):
    text, message = TABLES[name]
    data = tmp_path / name
    data.write_text(text)
    out = tmp_path / "out"
    _one_line_error(_run(["discover", str(data), "--out", str(out), "--steps", "5"], env),
                    message)
    assert not (out / "edge_probs.csv").exists()


def test_a_bracketed_path_is_printed_as_it_is(tmp_path, env):
    bad = tmp_path / "[/x]" / "net[1].json"
    _one_line_error(_run(["sample", str(bad), "-n", "2", "-o", str(tmp_path / "a.csv")], env),
                    f"{bad}: no such network file")


def test_an_output_that_is_a_folder_is_one_line(tmp_path, env):
    target = tmp_path / "a_folder"
    target.mkdir()
    _one_line_error(_run(["sample", "example:ecoli70", "-n", "2", "-o", str(target)], env),
                    "check the path and its permissions")
    assert not any(target.iterdir())
