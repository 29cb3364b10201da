"""``deepbn discover``: contract outputs, resume, and one-line errors."""

import json
from collections import Counter

import jax
import numpy as np
import pytest

from deepbn import examples, graph
from deepbn.cli.app import main
from deepbn.io.tables import write_table
from deepbn.structure import equivalence


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("disc")
    A = graph.random_er_dag(0, 4, 1.0)
    net = examples.linear_gaussian_network(A, names=["a", "b", "c", "e"])
    x = net.to_table(net.sample(jax.random.key(0), 150))
    write_table(tmp / "data.csv", x, net.names)
    write_table(tmp / "heldout.csv", net.to_table(net.sample(jax.random.key(1), 50)), net.names)
    graph.write_edge_list(tmp / "truth.csv", A, net.names)
    return tmp, A


def _probs(path):
    """A d x d table like edge_probs.csv, without its header row and column."""
    return np.array([[float(v) for v in line.split(",")[1:]]
                     for line in path.read_text().splitlines()[1:]])


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_discover_writes_the_contract_files_and_resumes(dataset, capsys):
    tmp, A = dataset
    out = tmp / "run"
    args = ["discover", tmp / "data.csv", "--out", out, "--sampler", "dibs", "--steps", "60",
            "--particles", "4", "--truth", tmp / "truth.csv", "--heldout",
            tmp / "heldout.csv", "--json"]
    code, stdout, err = run(capsys, *args)
    assert code == 0, err
    assert "tip: with 4 variables, --exact" in err
    summary = json.loads(stdout)
    for key in ("n", "d", "model", "steps", "seconds", "cyclic_particles", "eshd", "auroc",
                "neg_ll"):
        assert key in summary
    assert summary["n"] == 150 and summary["d"] == 4 and summary["steps"] == 60
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["eshd"] == summary["eshd"]
    lines = (out / "edge_probs.csv").read_text().splitlines()
    assert lines[0] == ",a,b,c,e" and len(lines) == 5 and lines[1].startswith("a,")
    probs = np.array([[float(v) for v in line.split(",")[1:]] for line in lines[1:]])
    assert np.all(np.diag(probs) == 0) and probs.min() >= 0 and probs.max() <= 1
    graphs = json.loads((out / "graphs.json").read_text())
    assert len(graphs["particles"]) == 4
    assert sum(p["weight_dibs_plus"] for p in graphs["particles"]) == pytest.approx(1.0)
    assert (out / "edge_probs.png").stat().st_size > 1000
    assert (out / "graph.png").stat().st_size > 1000
    code, stdout, _ = run(capsys, *args)  # same folder and settings: nothing to recompute
    assert code == 0 and json.loads(stdout)["resumed_from_step"] == 60


def test_discover_exact_writes_the_exact_edge_probabilities_and_the_distance(dataset, capsys):
    from deepbn.io.tables import read_table, scale_columns
    from deepbn.structure.exact import exact_edge_probs
    from deepbn.structure.metrics import edge_auroc, expected_shd_from_edge_probs

    tmp, A = dataset
    out = tmp / "exact"
    code, stdout, err = run(capsys, "discover", tmp / "data.csv", "--out", out, "--sampler",
                            "dibs", "--steps", "60", "--particles", "4", "--truth",
                            tmp / "truth.csv", "--exact", "--edges-per-node", "1.5", "--json")
    assert code == 0, err
    assert "tip:" not in err
    summary = json.loads(stdout)
    lines = (out / "edge_probs_exact.csv").read_text().splitlines()
    assert lines[0] == ",a,b,c,e"
    exact = np.array([[float(v) for v in line.split(",")[1:]] for line in lines[1:]])
    # the same data scaling and prior as the DiBS run, summed over every DAG
    x = scale_columns(read_table(tmp / "data.csv").values, "column")
    np.testing.assert_allclose(exact, exact_edge_probs(x, 1.5).edge_probs, atol=1e-5)
    sampled = _probs(out / "edge_probs.csv")
    assert summary["exact_max_abs_diff"] == pytest.approx(np.abs(sampled - exact).max(), abs=1e-5)
    assert summary["exact_eshd"] == pytest.approx(expected_shd_from_edge_probs(exact, A))
    assert summary["exact_auroc"] == pytest.approx(edge_auroc(exact, A))


def test_discover_order_mcmc_replaces_the_particles_with_the_chains_draws(dataset, capsys):
    tmp, A = dataset
    out = tmp / "order"
    (tmp / "forbid.csv").write_text("cause,effect\nb,c\n")
    args = ["discover", tmp / "data.csv", "--out", out, "--sampler", "dibs", "--steps", "60",
            "--particles", "4", "--truth", tmp / "truth.csv", "--exact", "--order-mcmc", "2000",
            "--forbid", tmp / "forbid.csv", "--json"]
    code, stdout, err = run(capsys, *args)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["order_mcmc_chains"] == 4 and summary["order_mcmc_steps"] == 2000
    assert summary["order_mcmc_candidates"] == 3 and summary["order_mcmc_max_parents"] == 3
    assert 0 < summary["order_mcmc_acceptance"] <= 1
    assert summary["order_mcmc_rhat_max"] < 1.1
    assert "dibs_eshd" in summary and "dibs_auroc" in summary
    probs = _probs(out / "edge_probs.csv")
    exact = _probs(out / "edge_probs_exact.csv")
    # 4 chains x 1000 kept steps on 24 orders: close to the sums over every DAG
    assert summary["exact_max_abs_diff"] < 0.05
    np.testing.assert_allclose(probs, exact, atol=0.05)
    assert probs[1, 2] == 0.0  # forbidden b -> c
    draws = json.loads((out / "graphs.json").read_text())["particles"]
    assert len(draws) == summary["order_mcmc_draws"] == 4 * 20
    assert all(["b", "c"] not in p["edges"] for p in draws)
    share = np.zeros((4, 4))
    names = ["a", "b", "c", "e"]
    for p in draws:
        for cause, effect in p["edges"]:
            share[names.index(cause), names.index(effect)] += p["weight_dibs_plus"]
    np.testing.assert_allclose(share, probs, atol=0.2)  # 80 draws
    code, stdout, _ = run(capsys, *args)  # rerun: both stages resume from their checkpoints
    again = json.loads(stdout)
    assert code == 0 and again["order_mcmc_resumed_from"] == 2000
    assert again["eshd"] == summary["eshd"]


def test_discover_order_mcmc_with_one_chain_has_no_rhat(dataset, capsys):
    tmp, _ = dataset
    code, stdout, err = run(capsys, "discover", tmp / "data.csv", "--out", tmp / "one",
                            "--sampler", "dibs", "--steps", "20", "--particles", "1",
                            "--order-mcmc", "200", "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["order_mcmc_chains"] == 1 and summary["order_mcmc_rhat_max"] is None
    assert summary["order_mcmc_rhat_max_edge"] is None


def test_discover_samples_with_order_mcmc_by_default_and_resumes(dataset, capsys):
    tmp, A = dataset
    out = tmp / "default"
    (tmp / "forbid.csv").write_text("cause,effect\nb,c\n")
    args = ["discover", tmp / "data.csv", "--out", out, "--truth", tmp / "truth.csv",
            "--heldout", tmp / "heldout.csv", "--forbid", tmp / "forbid.csv", "--exact",
            "--chains", "4", "--temperatures", "2", "--order-mcmc", "8000", "--json"]
    code, stdout, err = run(capsys, *args)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["sampler"] == "order" and summary["particles"] is None
    assert summary["order_mcmc_chains"] == 4 and summary["order_mcmc_temperatures"] == 2
    assert summary["order_mcmc_budget"] == 8000 and summary["order_mcmc_converged"] is True
    assert summary["steps"] == summary["order_mcmc_steps"] < 8000  # stopped: R-hat < 1.05
    assert summary["order_mcmc_rhat_max"] < 1.05 and summary["order_mcmc_until_rhat"] == 1.05
    assert "warning" not in err
    # 4 variables: no parent bound beyond the candidates, as the exact sums
    assert summary["order_mcmc_max_parents"] == 3 and summary["max_parents"] == 3
    probs = _probs(out / "edge_probs.csv")
    assert probs[1, 2] == 0.0  # forbidden b -> c
    assert summary["exact_max_abs_diff"] < 0.05 and summary["exact_mean_abs_diff"] < 0.01
    draws = json.loads((out / "graphs.json").read_text())["particles"]
    assert len(draws) == summary["order_mcmc_draws"]
    assert np.isfinite(summary["neg_ll"]) and np.isfinite(summary["eshd"])
    history = json.loads((out / "history.json").read_text())
    assert history[-1]["step"] == summary["order_mcmc_steps"]
    assert (out / "network.json").exists() and (out / "order_mcmc.npz").exists()
    code, stdout, err = run(capsys, *args)  # rerun: every round resumes from its checkpoint
    again = json.loads(stdout)
    assert code == 0 and again["order_mcmc_resumed_from"] == summary["order_mcmc_steps"]
    assert again["eshd"] == summary["eshd"]


def test_discover_warns_when_the_chains_stop_short_of_the_target(dataset, capsys):
    tmp, _ = dataset
    code, stdout, err = run(capsys, "discover", tmp / "data.csv", "--out", tmp / "short",
                            "--chains", "3", "--temperatures", "1", "--order-mcmc", "40",
                            "--until-rhat", "1.0001", "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["order_mcmc_converged"] is False
    assert summary["order_mcmc_steps"] == summary["order_mcmc_budget"]
    assert "warning: the order MCMC chains disagree: edge R-hat" in err
    assert "raise the --order-mcmc budget" in err


def test_discover_with_interventions_and_network_truth(tmp_path, capsys):
    net = examples.load("example:gaussian-er10")
    x = np.asarray(net.to_table(net.sample(jax.random.key(0), 80)))
    mask = np.zeros_like(x)
    mask[:20, 0] = 1
    x[:20, 0] = 5.0 + np.random.default_rng(0).normal(size=20)
    write_table(tmp_path / "d.csv", x, net.names)
    write_table(tmp_path / "m.csv", mask, net.names)
    code, stdout, err = run(capsys, "discover", tmp_path / "d.csv", "--out", tmp_path / "o",
                            "--steps", "20", "--particles", "4", "--interventions",
                            tmp_path / "m.csv", "--truth", "example:gaussian-er10", "--json",
                            "--max-parents", "1")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["true_edges"] == int(net.adjacency().sum())
    # bounded parent sets: a particle whose graph gives a node 2+ parents has DiBS+ weight 0
    assert summary["max_parents"] == 1
    particles = json.loads((tmp_path / "o" / "graphs.json").read_text())["particles"]
    beyond = [max(Counter(e for _, e in p["edges"]).values(), default=0) > 1
              for p in particles]
    assert summary["particles_beyond_max_parents"] == sum(beyond)
    if not all(beyond):  # (if every particle is beyond, the DiBS+ weights are uniform)
        assert all(p["weight_dibs_plus"] == 0 for p, b in zip(particles, beyond) if b)
    if summary["particles_beyond_max_parents"]:
        assert "more than 1 parents" in err
    # the targets {} and {x0} orient every edge at the intervened node in the class
    rows = (tmp_path / "o" / "cpdag.csv").read_text().splitlines()[1:] \
        if summary["cpdag"] else []
    for cause, effect, directed in (r.split(",") for r in rows):
        if net.names[0] in (cause, effect):
            assert directed == "1"
    # and E-SHD compares each particle's class and the truth's under the same targets
    fixed = equivalence.fixed_pairs(len(net.names), targets=mask)
    graphs = np.zeros((len(particles), *fixed.shape), bool)
    for k, p in enumerate(particles):
        for cause, effect in p["edges"]:
            graphs[k, net.names.index(cause), net.names.index(effect)] = True
    weights = np.array([p["weight_dibs_plus"] for p in particles])
    cyclic = np.array([p["cyclic"] for p in particles])
    assert summary["eshd_cpdag"] == pytest.approx(equivalence.expected_shd_cpdag(
        graphs, weights, net.adjacency(), cyclic, fixed))


@pytest.mark.parametrize("case,message", [
    ("one_column", "at least 2 variables"),
    ("mask_rows", "the mask has 3 rows but the data has 150"),
    ("mask_values", "mask entries must be 0 or 1"),
    ("mask_columns", "columns do not match"),
    ("truth_unknown", "unknown variable 'zz'"),
    ("truth_network", "network nodes do not match"),
    ("bad_model", "model must be one of bge, linear, mlp"),
    ("heldout_columns", "columns do not match"),
    ("non_numeric", "non-numeric value"),
])
def test_discover_errors(dataset, tmp_path, capsys, case, message):
    data, _ = dataset
    args = ["discover", data / "data.csv", "--out", tmp_path / "o", "--steps", "5"]
    if case == "one_column":
        (tmp_path / "one.csv").write_text("a\n1\n2\n")
        args[1] = tmp_path / "one.csv"
    elif case.startswith("mask"):
        body = {"mask_rows": "a,b,c,e\n0,0,0,0\n1,0,0,0\n0,0,0,0\n",
                "mask_values": "a,b,c,e\n" + "0,2,0,0\n" * 150,
                "mask_columns": "a,b,c,x\n" + "0,0,0,0\n" * 150}[case]
        (tmp_path / "m.csv").write_text(body)
        args += ["--interventions", tmp_path / "m.csv"]
    elif case == "truth_unknown":
        (tmp_path / "t.csv").write_text("cause,effect\na,zz\n")
        args += ["--truth", tmp_path / "t.csv"]
    elif case == "truth_network":
        args += ["--truth", "example:ecoli70"]
    elif case == "bad_model":
        args += ["--model", "gp"]
    elif case == "heldout_columns":
        (tmp_path / "h.csv").write_text("a,b\n1,2\n3,4\n")
        args += ["--heldout", tmp_path / "h.csv"]
    elif case == "non_numeric":
        (tmp_path / "n.csv").write_text("a,b\n1,2\n3,oops\n")
        args[1] = tmp_path / "n.csv"
    code, _, err = run(capsys, *args)
    assert code == 2
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o" / "summary.json").exists()
