"""The command line: outputs, JSON summaries, and one-line errors with exit status 2."""

import json

import numpy as np
import pytest

from deepbn.cli.app import main
from deepbn.io.tables import read_table


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("deepbn ")


def test_sample_writes_observed_columns(tmp_path, capsys):
    out = tmp_path / "x.csv"
    code, stdout, _ = run(capsys, "sample", "example:kingma-dbn", "-n", "7", "-o", str(out),
                          "--seed", "3", "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["n"] == 7 and summary["nodes"] == 20
    table = read_table(out, allow_constant=True)
    assert table.names == [f"x{t}" for t in range(1, 21)] and table.values.shape == (7, 20)
    assert set(np.unique(table.values)) <= {0.0, 1.0}
    again = tmp_path / "y.csv"
    run(capsys, "sample", "example:kingma-dbn", "-n", "7", "-o", str(again), "--seed", "3")
    assert out.read_text() == again.read_text()


def test_sample_all_nodes_vector_columns(tmp_path, capsys):
    out = tmp_path / "x.csv"
    code, _, _ = run(capsys, "sample", "example:kingma-dbn", "-n", "2", "-o", str(out), "--all")
    assert code == 0
    header = out.read_text().splitlines()[0].split(",")
    assert header[:2] == ["z1[0]", "z1[1]"] and len(header) == 20 * 10 + 20


@pytest.mark.parametrize("args,message", [
    (["sample", "example:nope", "-n", "2", "-o", "{tmp}/a.csv"], "unknown example 'nope'"),
    (["sample", "{tmp}/missing.json", "-n", "2", "-o", "{tmp}/a.csv"], "no such network file"),
    (["sample", "{tmp}/bad.json", "-n", "2", "-o", "{tmp}/a.csv"], "unknown node 'q'"),
    (["sample", "example:ecoli70", "-n", "0", "-o", "{tmp}/a.csv"],
     "number of samples must be at least 1"),
    (["sample", "example:ecoli70", "-n", "1000000000", "-o", "{tmp}/a.csv"],
     "draw fewer at a time"),
    (["siren", "train", "example:arithmetic-circuit", "{tmp}/a.csv", "--out", "{tmp}/o",
      "--blocks", "0"], "number of flow blocks must be at least 1"),
    (["siren", "train", "example:arithmetic-circuit", "{tmp}/a.csv", "--out", "{tmp}/o",
      "--iw", "0"], "number of importance samples must be at least 1"),
    (["siren", "train", "example:arithmetic-circuit", "{tmp}/a.csv", "--out", "{tmp}/o",
      "--lr", "-1"], "learning rate must be a positive number"),
])
def test_errors_are_one_line_exit_2(tmp_path, capsys, args, message):
    (tmp_path / "bad.json").write_text(json.dumps({
        "nodes": ["a"], "arcs": [["a", "q"]],
        "cpds": {"a": {"coefficients": {"(Intercept)": [0]}, "variance": [1], "parents": []}}}))
    code, out, err = run(capsys, *[a.format(tmp=tmp_path) for a in args])
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "a.csv").exists()


def test_usage_error_exits_2(capsys):
    code, _, err = run(capsys, "sample", "example:ecoli70", "-n", "abc", "-o", "x.csv")
    assert code == 2 and "Traceback" not in err


def test_the_compilation_cache_is_trimmed_oldest_first(tmp_path):
    import os

    from deepbn.cli.common import trim_cache

    for k in range(5):  # 100 bytes each, file 0 the oldest
        f = tmp_path / f"p{k}-cache"
        f.write_bytes(b"x" * 100)
        os.utime(f, (1000 + k, 1000 + k))
    trim_cache(tmp_path, 300)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p2-cache", "p3-cache", "p4-cache"]
    trim_cache(tmp_path, 10_000)
    assert len(list(tmp_path.iterdir())) == 3


def test_demo_as_a_user_runs_it(tmp_path):
    # the installed executable in a subprocess, as the README's first command runs it
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    exe = shutil.which("deepbn") or str(Path(sys.executable).parent / "deepbn")
    out = tmp_path / "demo"
    done = subprocess.run([exe, "demo", "--out", str(out), "-n", "100", "--steps", "40",
                           "--order-mcmc", "400", "--json"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["example"] == "example:gaussian-er10" and summary["n"] == 100
    assert summary["network"] == "network.json"
    # discover's default: order MCMC alone, 16 chains, at most the 400 steps asked for
    assert summary["sampler"] == "order" and summary["order_mcmc_chains"] == 16
    assert summary["order_mcmc_budget"] == 400 and summary["order_mcmc_steps"] <= 400
    for key in ("eshd", "auroc", "neg_ll", "order_mcmc_rhat_max"):
        assert np.isfinite(summary[key])
    for name in ("data.csv", "truth.csv", "edge_probs.csv", "graphs.json", "network.json",
                 "cpdag.csv", "edge_probs.png", "graph.png", "summary.json"):
        assert (out / name).stat().st_size > 0
