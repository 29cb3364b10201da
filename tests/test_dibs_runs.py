"""Several independent DiBS runs (``runs=R``): each run is the single run of its seed, the
runs do not interact, they resume exactly, and the edge R-hat across runs against a direct
computation, on agreeing and on planted disagreeing runs."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from deepbn import graph
from deepbn.cli import discover as discover_cli
from deepbn.cli.app import main
from deepbn.errors import UsageError
from deepbn.io.tables import write_table
from deepbn.structure import diagnostics, learn, report
from deepbn.structure.dibs import DiBSConfig
from deepbn.structure.learn import learn_structure
from deepbn.structure.posterior import GraphPosterior, mixture_weights

EXE = shutil.which("deepbn") or str(Path(sys.executable).parent / "deepbn")


def _data(n=80, d=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x[:, 1] += 1.5 * x[:, 0]
    x[:, 2] += 1.0 * x[:, 1]
    return x


def _direct_rhat(m, n):
    """The module doc's formula, edge by edge, with plain loops."""
    R, d, _ = m.shape
    out = np.empty((d, d))
    for i in range(d):
        for j in range(d):
            mr = [m[r, i, j] for r in range(R)]
            sm = [(n[r] * mr[r] + 0.5) / (n[r] + 1) for r in range(R)]
            W = sum(s * (1 - s) for s in sm) / R
            mean = sum(mr) / R
            B = sum((v - mean) ** 2 for v in mr) / (R - 1)
            out[i, j] = np.sqrt((W + B) / W)
    return out


def test_edge_rhat_and_kish_ess_match_direct_computation():
    rng = np.random.default_rng(1)
    m = rng.uniform(size=(3, 4, 4))
    n = np.array([1.0, 2.5, 7.0])
    np.testing.assert_allclose(diagnostics.edge_rhat(m, n), _direct_rhat(m, n), rtol=1e-12)
    same = np.repeat(m[:1], 3, axis=0)  # runs that agree: exactly 1
    np.testing.assert_allclose(diagnostics.edge_rhat(same, n), 1.0)
    assert diagnostics.kish_ess(np.array([0.5, 0.5, 0, 0])) == pytest.approx(2.0)
    assert diagnostics.kish_ess(np.full(5, 0.2)) == pytest.approx(5.0)
    assert diagnostics.kish_ess(np.array([1.0, 0, 0])) == pytest.approx(1.0)
    assert diagnostics.RHAT_WARN == discover_cli.RHAT_WARN


def _posterior(graphs, log_joint):
    graphs = np.asarray(graphs, bool)
    cyclic = np.zeros(len(graphs), bool)
    w = mixture_weights(graphs, np.asarray(log_joint, float), cyclic)
    return GraphPosterior(graphs, None, np.asarray(log_joint, float),
                          np.full(len(graphs), 1 / len(graphs)), w, cyclic)


def test_planted_disagreeing_runs_have_a_large_rhat_agreeing_runs_one():
    a = np.zeros((3, 3))
    a[0, 1] = 1  # run 0: x0 -> x1
    b = np.zeros((3, 3))
    b[1, 0] = 1  # run 1: x1 -> x0
    disagree = diagnostics.run_diagnostics(_posterior([a, a, a, b, b, b], [0.0] * 6), 2)
    # each run: one graph split over 3 particles, ESS 3; marginals 1 and 0 on both edges
    np.testing.assert_allclose(disagree.ess, [3.0, 3.0])
    closed = np.sqrt((0.875 * 0.125 + 0.5) / (0.875 * 0.125))
    assert disagree.rhat[0, 1] == pytest.approx(closed) and closed > 2.3
    assert disagree.rhat_max() == pytest.approx(closed)
    assert disagree.worst_edge() in ((0, 1), (1, 0))
    np.testing.assert_allclose(disagree.rhat[0, 2], 1.0)  # absent in both runs
    # runs that found the same graphs with the same weights agree exactly
    agree = diagnostics.run_diagnostics(_posterior([a, b, b, a, b, b], [0.0, 1.0, 1.0] * 2), 2)
    np.testing.assert_allclose(agree.rhat, 1.0)
    np.testing.assert_allclose(agree.run_edge_probs[0], agree.run_edge_probs[1])


def test_runs_are_the_single_runs_of_their_seeds_and_resume_exactly(tmp_path, monkeypatch):
    """Joint linear model (Θ gains the run axis too); chunks of 10 steps."""
    monkeypatch.setattr(learn, "CHUNK", 10)
    x = _data()
    cfg = DiBSConfig(model="linear", n_particles=3)
    ckpt = tmp_path / "c.npz"
    first = learn_structure(x, cfg, steps=10, seed=5, runs=2, checkpoint_path=ckpt)
    assert first.resumed_from == 0
    pooled = learn_structure(x, cfg, steps=20, seed=5, runs=2, checkpoint_path=ckpt)
    assert pooled.resumed_from == 10
    straight = learn_structure(x, cfg, steps=20, seed=5, runs=2)
    np.testing.assert_array_equal(pooled.posterior.graphs, straight.posterior.graphs)
    np.testing.assert_array_equal(pooled.posterior.log_joint, straight.posterior.log_joint)
    np.testing.assert_array_equal(_leaves(pooled.posterior.theta, slice(None)),
                                  _leaves(straight.posterior.theta, slice(None)))
    np.testing.assert_array_equal(pooled.edges, straight.edges)
    for other in ({"runs": 3}, {}):  # another R is another run
        with pytest.raises(UsageError, match="other data or settings"):
            learn_structure(x, cfg, steps=20, seed=5, checkpoint_path=ckpt, **other)
    with pytest.raises(UsageError, match="number of runs must be at least 1"):
        learn_structure(x, cfg, steps=20, runs=0)

    singles = [learn_structure(x, cfg, steps=20, seed=5 + r) for r in range(2)]
    post = pooled.posterior
    assert post.graphs.shape == (6, 4, 4) and pooled.runs == 2
    np.testing.assert_array_equal(pooled.particle_runs(), [0, 0, 0, 1, 1, 1])
    diag = diagnostics.run_diagnostics(post, 2)
    for r, single in enumerate(singles):
        part = slice(3 * r, 3 * r + 3)
        np.testing.assert_array_equal(post.graphs[part], single.posterior.graphs)
        np.testing.assert_allclose(post.log_joint[part], single.posterior.log_joint,
                                   rtol=1e-5)
        np.testing.assert_allclose(_leaves(post.theta, part),
                                   _leaves(single.posterior.theta, slice(None)),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(diag.run_edge_probs[r], single.posterior.edge_probs(),
                                   atol=1e-6)
    assert np.all(post.weights_empirical == 1 / 6)
    # pooled DiBS+: one softmax over all particles' log-joints (joint model: per particle)
    lj = np.where(post.cyclic, -np.inf, post.log_joint)
    np.testing.assert_allclose(post.weights_mixture, np.exp(lj - lj.max()) /
                               np.exp(lj - lj.max()).sum(), rtol=1e-6)
    # one run writes what it wrote before: no run fields
    one = singles[0]
    assert "runs" not in report.summarize(one) and "rhat_edges_max" not in report.summarize(one)
    assert "run" not in report.particles_json(one, list("abcd"))["particles"][0]
    pooled_summary = report.summarize(pooled)
    assert pooled_summary["runs"] == 2
    assert pooled_summary["rhat_edges_max"] == pytest.approx(diag.rhat_max())
    assert pooled_summary["rhat_edges_max_edge"] == [f"x{i}" for i in diag.worst_edge()]
    assert pooled_summary["weights_ess_min"] == pytest.approx(diag.ess.min())


def _leaves(tree, part):
    return np.concatenate([np.asarray(a)[part].ravel() for a in jax.tree_util.tree_leaves(tree)])


def test_discover_runs_2_writes_the_run_diagnostics(tmp_path):
    A = np.zeros((4, 4))
    A[0, 1] = A[1, 2] = 1
    x = _data(n=60)
    names = ["a", "b", "c", "e"]
    write_table(tmp_path / "d.csv", x, names)
    graph.write_edge_list(tmp_path / "t.csv", A, names)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    out = tmp_path / "o"
    proc = subprocess.run([EXE, "discover", str(tmp_path / "d.csv"), "--out", str(out),
                           "--sampler", "dibs", "--steps", "20", "--particles", "3", "--runs", "2",
                           "--truth", str(tmp_path / "t.csv")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"] == 2 and summary["particles"] == 3
    assert summary["rhat_edges_max"] >= 1.0
    assert 1.0 <= summary["weights_ess_min"] <= summary["weights_ess_mean"] <= 3.0
    cause, effect = summary["rhat_edges_max_edge"]
    assert cause in names and effect in names and cause != effect
    assert f"2 runs: edge R-hat max {summary['rhat_edges_max']:.2f} ({cause} -> {effect})" \
        in proc.stderr
    particles = json.loads((out / "graphs.json").read_text())["particles"]
    assert [p["run"] for p in particles] == [0, 0, 0, 1, 1, 1]
    assert json.loads((out / "config.json").read_text())["runs"] == 2
    warned = "warning: the runs disagree" in proc.stderr
    assert warned == (summary["rhat_edges_max"] > 1.1), proc.stderr
    assert "2 runs: edge R-hat max" in proc.stderr


def test_discover_refuses_runs_0(tmp_path, capsys):
    write_table(tmp_path / "d.csv", _data(n=10), ["a", "b", "c", "e"])
    code = main(["discover", str(tmp_path / "d.csv"), "--out", str(tmp_path / "o"),
                 "--runs", "0"])
    assert code == 2
    assert capsys.readouterr().err.strip() == "error: --runs must be at least 1, got 0"
    assert not (tmp_path / "o").exists()
