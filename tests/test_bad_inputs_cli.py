"""Bad input as a user meets it: the installed ``deepbn`` executable, real files.

Each case must end with exit status 2, one line ``error: ...`` on stderr that keeps
every character of the message (no markup), no traceback and no output file.
"""

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
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


NETWORKS = {
    "arcs_not_a_list.json": ('{"nodes": ["a", "b"], "arcs": 5, "cpds": {}}',
                             "'arcs' must be a list of [parent, child] pairs"),
    "cpds_a_list.json": ('{"nodes": ["a"], "arcs": [], "cpds": [1, 2]}',
                         "'cpds' must map each node name to its cpd"),
    "observed_no.json": ('{"format": "deepbn", "version": 1, "nodes": [{"name": "a", "family": '
                         '"linear-gaussian", "observed": "no", "params": {"weight": [[]], '
                         '"bias": [0], "scale": [1]}}]}',
                         "node 'a': 'observed' must be true or false, got 'no'"),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_network_files_of_the_wrong_shape_are_one_line(tmp_path, env, name):
    text, message = NETWORKS[name]
    (tmp_path / name).write_text(text)
    out = tmp_path / "a.csv"
    _one_line_error(_run(["sample", str(tmp_path / name), "-n", "2", "-o", str(out)], env),
                    message)
    assert not out.exists()


def test_a_cyclic_truth_is_refused_before_any_work(tmp_path, env):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n2,1\n3,5\n4,4\n")
    (tmp_path / "truth.csv").write_text("cause,effect\na,b\nb,a\n")
    out = tmp_path / "out"
    _one_line_error(_run(["discover", str(tmp_path / "d.csv"), "--truth",
                          str(tmp_path / "truth.csv"), "--out", str(out), "--steps", "3"], env),
                    "the true graph has a cycle (a -> b -> a)")
    assert not (out / "checkpoint.npz").exists()


@pytest.fixture(scope="module")
def hierarchy_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "h.csv"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    assert _run(["sample", "example:gaussian-hierarchy", "-n", "5", "-o", str(path)],
                env).returncode == 0
    return str(path)


NUMBERS = [
    (["posterior", "example:gaussian-hierarchy", "{data}", "--integration-steps", "0"],
     "leapfrog steps per HMC transition must be at least 1"),
    (["posterior", "example:gaussian-hierarchy", "{data}", "--checkpoint-every", "0"],
     "transitions between checkpoints must be at least 1"),
    (["posterior", "example:gaussian-hierarchy", "{data}", "--chains", "0"],
     "need at least 1 chain"),
    (["fit", "example:gaussian-hierarchy", "{data}", "--hmc-transitions", "0"],
     "must be at least 1"),
    (["fit", "example:gaussian-hierarchy", "{data}", "--learning-rate", "nan"],
     "learning rate"),
    (["discover", "{data}", "--particles", "0"], "number of particles must be at least 1"),
    (["discover", "{data}", "--edges-per-node", "inf"],
     "expected edges per node must be a positive number"),
    (["discover", "{data}", "--steps", "0"], "SVGD steps must be at least 1"),
    (["demo", "-n", "0"], "number of samples must be at least 1"),
    # a diverging fit is not silent: exit 2, and no network full of NaN is written
    (["fit", "example:gaussian-hierarchy", "{data}", "--optimizer", "sgd", "--learning-rate",
      "1e6", "--iterations", "50"], "produced non-finite values; stopped, nothing was"),
]


def _case_id(args):
    return " ".join([args[0], next(a for a in args[1:] if a.startswith("-"))])


@pytest.fixture(scope="module")
def numeric_runs(tmp_path_factory, hierarchy_csv):
    """Every NUMBERS case run at once, two at a time per core: most of each run is starting
    Python and importing JAX, and the suite must stay short."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}

    def one(case):
        args, _ = case
        out = tmp_path_factory.mktemp("out") / "out"
        full = [a.format(data=hierarchy_csv) for a in args] + ["--out", str(out)]
        return _run(full, env), out

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip((_case_id(a) for a, _ in NUMBERS), pool.map(one, NUMBERS)))


@pytest.mark.parametrize("args, message", NUMBERS, ids=[_case_id(a) for a, _ in NUMBERS])
def test_numeric_options_out_of_range_are_one_line(numeric_runs, args, message):
    proc, out = numeric_runs[_case_id(args)]
    _one_line_error(proc, message)
    for name in ("summary.json", "checkpoint.npz", "network.json"):
        assert not (out / name).exists(), name
