"""Prior knowledge in DiBS: hard knowledge exact in every output, tiers, soft edge priors,
contradictions refused, knowledge in the run's identity; ``discover`` with knowledge files."""

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepbn import Knowledge, examples, graph
from deepbn import run as run_layer
from deepbn.errors import DeepBNError, KnowledgeError, UsageError
from deepbn.io.tables import write_table
from deepbn.structure import dibs, equivalence
from deepbn.structure.dibs import DiBSConfig
from deepbn.structure.knowledge import read_knowledge
from deepbn.structure.learn import learn_structure

EXE = shutil.which("deepbn") or str(Path(sys.executable).parent / "deepbn")
NAMES = ["a", "b", "c", "d"]
# the settings and data shape of tests/test_discover_cli.py: its compiled program serves here
CFG = DiBSConfig(n_particles=4)
STEPS = 100


@pytest.fixture(scope="module")
def chain():
    """a -> b -> c -> d with strong links: the data give b - c, never a - d."""
    A = np.zeros((4, 4), bool)
    A[0, 1] = A[1, 2] = A[2, 3] = True
    net = examples.linear_gaussian_network(A, names=NAMES, seed=2)
    return A, np.asarray(net.to_table(net.sample(jax.random.key(2), 150)))


@pytest.fixture(scope="module")
def plain(chain):
    return learn_structure(chain[1], CFG, steps=STEPS, seed=0, names=NAMES)


def test_hard_knowledge_is_exact_in_every_particle_and_output(chain, plain):
    A, x = chain
    probs = plain.posterior.edge_probs()
    adjacent = probs + probs.T
    assert adjacent[0, 3] < 0.1 and adjacent[1, 2] > 0.9  # what the data alone say
    k = Knowledge.from_names(NAMES, forbid=[("b", "c")], require=[("a", "d")])
    run = learn_structure(x, CFG, steps=STEPS, seed=0, names=NAMES, knowledge=k)
    post = run.posterior
    assert np.all(post.graphs[:, 0, 3]) and not np.any(post.graphs[:, 1, 2])
    for mixture in (True, False):
        assert post.edge_probs(mixture)[0, 3] == 1.0 and post.edge_probs(mixture)[1, 2] == 0.0
    net = post.network()
    assert "a" in net.parents[NAMES.index("d")] and "b" not in net.parents[NAMES.index("c")]
    # the latent model itself: edge probabilities at any α and the particles' hard graphs
    z = np.random.default_rng(1).normal(size=(5, 4, 4, 2)).astype(np.float32)
    for G in (dibs.edge_probs(z, 3.0, run.data), dibs.hard_graphs(z, run.data)):
        assert np.all(np.asarray(G)[:, 0, 3] == 1) and np.all(np.asarray(G)[:, 1, 2] == 0)


def test_fixed_entries_carry_no_gradient(chain, plain):
    # with every pair fixed, p(G | Z) does not depend on Z: the likelihood's and the
    # acyclicity penalty's gradients are exactly zero, so the particles move the same
    # whatever the data (the compiled SVGD steps of ``plain``, run directly)
    _, x = chain
    required = np.zeros((4, 4), bool)
    required[0, 1] = required[1, 2] = True
    forbidden = ~required & ~np.eye(4, dtype=bool)
    fixed = Knowledge(forbidden, required, np.full((4, 4), np.nan)).check(NAMES)
    cfg = CFG.resolved(4)
    state = dibs.init(jax.random.key(0), 4, cfg)
    other = np.random.default_rng(0).normal(size=x.shape).astype(np.float32)

    def particles(data_x, knowledge):
        data = dibs.make_data(data_x, None, cfg, knowledge)
        res = run_layer.run(dibs.step, state, data, jax.random.key(1), 50, config=cfg, chunk=50)
        return np.asarray(res.state.z)

    np.testing.assert_array_equal(particles(x, fixed), particles(other, fixed))
    assert not np.allclose(particles(x, None), particles(other, None), atol=1e-3)
    # the acyclicity penalty (which does not see the data) holds the fixed entries too: its
    # value does not depend on Z (numpy draws and no jit: compiling costs seconds here)
    rng = np.random.default_rng(3)
    z1, z2 = rng.normal(size=(2, 4, 4, 2)).astype(np.float32)
    noise = rng.logistic(size=(8, 4, 4)).astype(np.float32)
    for knowledge, same in ((fixed, True), (None, False)):
        data = dibs.make_data(x, None, cfg, knowledge)
        h1, h2 = (float(dibs.expected_acyclicity(z, noise, 2.0, 1.0, data)) for z in (z1, z2))
        assert (h1 == h2) == same, (h1, h2)


def test_soft_prior_adds_its_log_probability_and_shifts_the_edge(chain, plain):
    _, x = chain
    p_ba, p_cd = 0.9, 0.2
    k = Knowledge.from_names(NAMES, edge_prior={("b", "a"): p_ba, ("c", "d"): p_cd})
    cfg = CFG.resolved(4)
    with_prior = dibs.make_data(x, None, cfg, k.check(NAMES))
    without = dibs.make_data(x, None, cfg)
    rng = np.random.default_rng(0)
    graphs = (rng.random((6, 4, 4)) < 0.5) & ~np.eye(4, dtype=bool)
    log_joints = jax.jit(jax.vmap(lambda G, data: dibs.log_joint(G, None, data, cfg),
                                  in_axes=(0, None)))
    gained = (log_joints(jnp.asarray(graphs, jnp.float32), with_prior)
              - log_joints(jnp.asarray(graphs, jnp.float32), without))
    for G, got in zip(graphs, np.asarray(gained)):  # Σ g log p + (1 - g) log(1 - p)
        expected = sum(np.log(p) if G[i, j] else np.log1p(-p)
                       for (i, j), p in (((1, 0), p_ba), ((2, 3), p_cd)))
        assert got == pytest.approx(expected, abs=1e-3)  # float32 scores
    # a -- b is reversible (no v-structure in the chain): the prior decides its direction
    base = plain.posterior.edge_probs()[1, 0]
    shifted = {}
    for p in (0.9, 0.1):
        knowledge = Knowledge.from_names(NAMES, edge_prior={("b", "a"): p})
        run = learn_structure(x, CFG, steps=STEPS, seed=0, names=NAMES, knowledge=knowledge)
        shifted[p] = run.posterior.edge_probs()[1, 0]
    assert shifted[0.9] > base + 0.2 and shifted[0.1] < base - 0.2, (base, shifted)


def test_tiers_forbid_exactly_the_edges_into_earlier_tiers(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"v{i}" for i in range(6)]
    for _ in range(20):
        tier = {n: int(rng.integers(0, 3)) for n in names if rng.random() < 0.8}
        k = Knowledge.from_names(names, tiers=tier)
        expected = np.array([[a in tier and b in tier and tier[a] > tier[b] for b in names]
                             for a in names])
        np.testing.assert_array_equal(k.forbidden, expected)
        assert not k.required.any()
    (tmp_path / "t.csv").write_text("variable,tier\n" + "".join(
        f"{n},{t}\n" for n, t in tier.items()))
    np.testing.assert_array_equal(read_knowledge(names, tiers=tmp_path / "t.csv").forbidden,
                                  expected)


def test_prior_probabilities_0_and_1_are_hard_and_empty_knowledge_is_none():
    P = np.full((3, 3), np.nan)
    P[0, 1], P[2, 1], P[0, 2] = 1.0, 0.0, 0.7
    k = Knowledge(np.zeros((3, 3), bool), np.zeros((3, 3), bool), P).check()
    assert k.required.tolist() == [[False, True, False], [False] * 3, [False] * 3]
    assert k.forbidden[2, 1] and k.forbidden.sum() == 1
    assert np.isnan(k.prior[0, 1]) and k.prior[0, 2] == 0.7  # only soft opinions stay soft
    assert Knowledge.none(3).is_empty() and not k.is_empty()


CONTRADICTIONS = {
    "both": (dict(forbid=[("a", "b")], require=[("a", "b")]),
             "a -> b is required (the required edges) and forbidden"),
    "cycle": (dict(require=[("a", "b"), ("b", "c"), ("c", "a")]),
              "the required edges form a cycle a -> b -> c -> a"),
    "tiers": (dict(require=[("c", "a")], tiers={"a": 0, "c": 1}),
              "c -> a (the required edges) goes from tier 1 to the earlier tier 0"),
    "range": (dict(edge_prior={("a", "b"): 1.5}), "P(a -> b) = 1.5 is not a probability"),
    "required_zero": (dict(require=[("a", "b")], edge_prior={("a", "b"): 0.0}),
                      "a -> b is required (the required edges) but has prior probability 0"),
    "forbidden_one": (dict(forbid=[("b", "a")], edge_prior={("b", "a"): 1.0}),
                      "b -> a is forbidden (the forbidden edges) but has prior probability 1"),
    "prior_cycle": (dict(require=[("a", "b")], edge_prior={("b", "a"): 1.0}),
                    "and the edges of prior probability 1 in the edge prior"),
    "self_loop": (dict(require=[("a", "a")]), "a -> a would make a its own parent"),
    "unknown": (dict(forbid=[("a", "zz")]), "the forbidden edges: unknown variable 'zz'"),
    "unknown_tier": (dict(tiers={"q": 1}), "the tiers: unknown variable 'q'"),
}


@pytest.mark.parametrize("case", sorted(CONTRADICTIONS))
def test_contradictions_are_refused_in_one_line(case):
    kwargs, message = CONTRADICTIONS[case]
    with pytest.raises(KnowledgeError) as err:
        Knowledge.from_names(NAMES, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_learn_structure_refuses_bad_knowledge_and_resumes_only_the_same(chain, tmp_path):
    _, x = chain
    cycle = np.zeros((4, 4), bool)
    cycle[0, 1] = cycle[1, 0] = True
    bad = Knowledge(np.zeros((4, 4), bool), cycle, np.full((4, 4), np.nan))
    with pytest.raises(KnowledgeError, match="cycle a -> b -> a"):
        learn_structure(x, CFG, steps=STEPS, names=NAMES, knowledge=bad)
    with pytest.raises(KnowledgeError, match="has shape"):
        learn_structure(x, CFG, steps=STEPS, knowledge=Knowledge.none(3))
    two = Knowledge.from_names(NAMES, require=[("a", "c"), ("b", "c")])
    with pytest.raises(KnowledgeError, match="'c' has 2 required parents, more than the "
                                              "bound of 1"):
        learn_structure(x, CFG._replace(max_parents=1), steps=STEPS, names=NAMES,
                        knowledge=two)
    ckpt = tmp_path / "c.npz"
    k = Knowledge.from_names(NAMES, require=[("a", "d")])
    learn_structure(x, CFG, steps=50, seed=0, names=NAMES, knowledge=k, checkpoint_path=ckpt)
    again = learn_structure(x, CFG, steps=50, seed=0, names=NAMES, knowledge=k,
                            checkpoint_path=ckpt)
    assert again.resumed_from == 50
    for other in (None, Knowledge.from_names(NAMES, require=[("d", "a")])):
        with pytest.raises(UsageError, match="other data or settings"):
            learn_structure(x, CFG, steps=50, seed=0, names=NAMES, knowledge=other,
                            checkpoint_path=ckpt)
    # empty knowledge is no knowledge: a run without any resumes with Knowledge.none
    learn_structure(x, CFG, steps=50, seed=0, checkpoint_path=tmp_path / "n.npz")
    assert learn_structure(x, CFG, steps=50, seed=0, knowledge=Knowledge.none(4),
                           checkpoint_path=tmp_path / "n.npz").resumed_from == 50


# -- the executable ----------------------------------------------------------------------------

@pytest.fixture()
def files(tmp_path, chain):
    A, x = chain
    write_table(tmp_path / "data.csv", x, NAMES)
    graph.write_edge_list(tmp_path / "truth.csv", A, NAMES)
    (tmp_path / "forbid.csv").write_text("cause,effect\nb,c\n")
    (tmp_path / "require.csv").write_text("cause,effect\na,d\n")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return tmp_path, env


def _discover(tmp, env, out, *extra):
    args = [EXE, "discover", str(tmp / "data.csv"), "--out", str(tmp / out), "--steps", "50",
            "--particles", "4", "--sampler", "dibs", *map(str, extra)]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)


def _table(path):
    lines = path.read_text().splitlines()
    return lines[0].split(","), [line.split(",") for line in lines[1:]]


def test_discover_with_forbidden_and_required_edges(files, chain):
    tmp, env = files
    A, _ = chain
    proc = _discover(tmp, env, "o", "--forbid", tmp / "forbid.csv", "--require",
                     tmp / "require.csv", "--truth", tmp / "truth.csv", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp / "o"
    header, rows = _table(out / "edge_probs.csv")
    probs = np.array([[float(v) for v in r[1:]] for r in rows])
    assert header[1:] == NAMES and probs[0, 3] == 1.0 and probs[1, 2] == 0.0
    network = json.loads((out / "network.json").read_text())
    parents = {node["name"]: node["parents"] for node in network["nodes"]}
    assert "a" in parents["d"] and "b" not in parents["c"]
    for particle in json.loads((out / "graphs.json").read_text())["particles"]:
        assert ["a", "d"] in particle["edges"] and ["b", "c"] not in particle["edges"]
    config = json.loads((out / "config.json").read_text())
    assert config["knowledge"]["required"] == [["a", "d"]]
    assert config["knowledge"]["forbidden"] == [["b", "c"]]
    # item 2's outputs of the same run: pairs, the most probable graph's class, E-SHD of CPDAGs
    header, rows = _table(out / "edge_summary.csv")
    assert header == ["a", "b", "p_adjacent", "p_forward", "p_backward",
                      "p_direction_given_adjacent"]
    by_pair = {(r[0], r[1]): [float(v) if v else None for v in r[2:]] for r in rows}
    assert len(by_pair) == 6 and by_pair[("a", "d")][:3] == [1.0, 1.0, 0.0]
    for (a, b), (p_adj, p_f, p_b, _) in by_pair.items():
        i, j = NAMES.index(a), NAMES.index(b)
        assert i < j and p_f == probs[i, j] and p_b == probs[j, i]
        assert p_adj == pytest.approx(p_f + p_b, abs=1e-5)
    summary = json.loads(proc.stdout)
    G = np.zeros((4, 4), bool)
    for child, pa in parents.items():
        for p in pa:
            G[NAMES.index(p), NAMES.index(child)] = True
    # the class restricted by the knowledge: the required a -> d is directed whatever the data
    knowledge = read_knowledge(NAMES, tmp / "forbid.csv", tmp / "require.csv")
    fixed = equivalence.fixed_pairs(4, knowledge)
    expected = ["cause,effect,directed"] + [
        f"{a},{b},{int(kind == 'directed')}"
        for a, b, kind in equivalence.edge_list(equivalence.cpdag(G, fixed), NAMES)]
    assert (out / "cpdag.csv").read_text().splitlines() == expected
    assert "a,d,1" in expected
    particles = json.loads((out / "graphs.json").read_text())["particles"]
    reference = equivalence.cpdag(A, fixed)
    expected_eshd = 0.0  # the DiBS+ weights of eshd, over each particle's class
    for particle in particles:
        P = np.zeros((4, 4), bool)
        for cause, effect in particle["edges"]:
            P[NAMES.index(cause), NAMES.index(effect)] = True
        expected_eshd += particle["weight_dibs_plus"] * equivalence.shd_cpdag(
            equivalence.cpdag(P, fixed), reference)
    assert summary["eshd_cpdag"] == pytest.approx(expected_eshd)
    assert (out / "graph.png").stat().st_size > 1000


BAD_FILES = {
    "contradiction": ("forbid.csv", "cause,effect\na,d\n",
                      "a -> d is required ({require}) and forbidden ({forbid})"),
    "probability": ("prior.csv", ",a,b,c,d\na,,2,,\n", "P(a -> b) = 2 is not a probability"),
}


def test_bad_knowledge_files_exit_2_with_one_line_and_no_output(files):
    tmp, env = files

    def attempt(case):
        name, text, message = BAD_FILES[case]
        folder = tmp / case
        folder.mkdir()
        (folder / name).write_text(text)
        option = {"forbid.csv": "--forbid", "prior.csv": "--edge-prior"}
        proc = _discover(tmp, env, f"out_{case}", "--require", tmp / "require.csv",
                         option[name], folder / name)
        return proc, message.format(require=tmp / "require.csv", forbid=folder / name), case

    with ThreadPoolExecutor(len(BAD_FILES)) as pool:
        results = list(pool.map(attempt, sorted(BAD_FILES)))
    for proc, message, case in results:
        err = proc.stderr.strip()
        assert proc.returncode == 2, err[-2000:]
        assert "Traceback" not in err and len(err.splitlines()) == 1, err[-2000:]
        assert err.startswith("error:") and message in err, err
        assert not (tmp / f"out_{case}").exists()


FILE_ERRORS = {
    "tiers_header": ("tiers", "name,level\na,0\n", "needs the header line 'variable,tier'"),
    "tiers_name": ("tiers", "variable,tier\na,0\nzz,1\n", "line 3: unknown variable 'zz'"),
    "tiers_integer": ("tiers", "variable,tier\na,first\n", "tier 'first' of 'a' is not an integer"),
    "tiers_twice": ("tiers", "variable,tier\na,0\na,1\n", "line 3: 'a' is listed twice"),
    "prior_header": ("edge_prior", ",a,zz\na,,0.5\n", "header: unknown variable 'zz'"),
    "prior_cell": ("edge_prior", ",a,b\na,,high\n", "'high' in column 'b' is not a probability"),
    "prior_nan": ("edge_prior", ",a,b\nb,nan,\n", "'nan' in column 'a' is not a probability"),
    "prior_width": ("edge_prior", ",a,b\na,0.5\n", "line 2: 1 entries for 2 columns"),
    "prior_rows": ("edge_prior", ",a,b\na,,0.5\na,,0.5\n", "line 3: 'a' is listed twice"),
    "edges_name": ("forbid", "cause,effect\na,zz\n", "unknown variable 'zz'"),
}


@pytest.mark.parametrize("case", sorted(FILE_ERRORS))
def test_malformed_knowledge_files_name_the_file_and_line(tmp_path, case):
    kind, text, message = FILE_ERRORS[case]
    path = tmp_path / f"{kind}.csv"
    path.write_text(text)
    with pytest.raises(DeepBNError) as err:
        read_knowledge(NAMES, **{kind: path})
    assert str(err.value).startswith(str(path)) and message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_edge_prior_file_reads_blanks_as_no_opinion_in_any_order(tmp_path):
    (tmp_path / "p.csv").write_text(",d,a\nc,0.25,\na,0.5,0\n")
    k = read_knowledge(NAMES, edge_prior=tmp_path / "p.csv")
    expected = np.full((4, 4), np.nan)
    expected[2, 3], expected[0, 3] = 0.25, 0.5  # a -> a = 0 on the diagonal: no opinion
    np.testing.assert_array_equal(k.prior, expected)
    assert not k.forbidden.any() and not k.required.any()
