"""Bad input as a user meets it: the installed ``deepbn`` executable, real files.

Every case of ``tests/bad_input_cases.py`` (over 90, every command) must end with exit
status 2, one line ``error: ...`` on stderr that keeps every character of the message (no
markup), no traceback, and no output: neither the output path nor anything new beside the
inputs. The executables run three at a time: most of each run is starting Python.
"""

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from bad_input_cases import CASES, write_inputs  # noqa: E402

EXE = shutil.which("deepbn") or str(Path(sys.executable).parent / "deepbn")


def _listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")
            if "cache" not in p.parts}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(inputs folder, its listing before, {case id: (process, output path)})."""
    d = tmp_path_factory.mktemp("inputs")
    write_inputs(d)
    before = _listing(d)
    outputs = tmp_path_factory.mktemp("outputs")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}

    def one(numbered):
        k, (_, args, _) = numbered
        out = outputs / f"out{k}"
        proc = subprocess.run([EXE, *(a.format(d=d, out=out) for a in args)], env=env,
                              capture_output=True, text=True, timeout=600)
        return proc, out

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(one, enumerate(CASES)))
    return d, before, {case[0]: r for case, r in zip(CASES, results)}


def test_the_cases_cover_every_command():
    commands = {" ".join(args[:2]) if args[0] in ("vae", "siren") else args[0]
                for _, args, _ in CASES}
    assert commands == {"demo", "sample", "discover", "posterior", "fit", "vae train",
                        "vae eval", "siren train", "sweep"}
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_bad_input_is_one_line_and_leaves_nothing(runs, case):
    name, _, message = case
    d, _, done = runs
    proc, out = done[name]
    err = proc.stderr.strip().replace(str(d), "D")
    assert proc.returncode == 2, err[-2000:]
    assert "Traceback" not in err and len(err.splitlines()) == 1, err[-2000:]
    assert err.startswith("error:") and message in err, err
    assert not out.exists() and not out.with_suffix(".csv").exists()


def test_no_bad_input_changed_or_added_a_file_beside_the_inputs(runs):
    d, before, _ = runs
    assert _listing(d) == before
