"""The bad inputs of every command, as a user types them: (id, arguments, expected message).

``{d}`` is a folder of input files (see ``write_inputs``) and ``{out}`` a fresh output path.
Every case must end with exit status 2, one line ``error: ...`` containing the message, no
traceback and no output file. Used by ``tests/test_bad_inputs_cli.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

H = "example:gaussian-hierarchy"
TREE = "example:gaussian-binary-tree"
DBN = "example:kingma-dbn"
MNIST = "example:kingma-mnist"

# name -> text of a file in {d}
FILES = {
    "extra_field.csv": "a,b\n1,2,3\n4,5,6\n",
    "short_row.csv": "a,b,c\n1,2,3\n4,5\n6,7,8\n",
    "beyond_float32.csv": "a,b\n1,1e39\n2,3\n4,5\n",
    "word.csv": "a,b\n1,2\n3,abc\n5,6\n",
    "nan.csv": "a,b\n1,2\n3,nan\n5,6\n",
    "empty.csv": "",
    "header_only.csv": "a,b\n",
    "duplicate_names.csv": "a,a\n1,2\n3,4\n5,7\n",
    "one_column.csv": "a\n1\n2\n3\n",
    "constant.csv": "a,b\n1,2\n1,3\n1,5\n",
    "ab.csv": "a,b\n1,2\n2,1\n3,5\n4,4\n",
    "cyclic_truth.csv": "cause,effect\na,b\nb,a\n",
    "unknown_truth.csv": "cause,effect\na,zz\n",
    "bad_mask.csv": "a,b\n0,1\n2,0\n0,0\n1,1\n",
    "short_mask.csv": "a,b\n0,1\n",
    "other_columns.csv": "p,q\n1,2\n3,4\n",
    "not_json.json": "{nodes: [",
    "arcs_not_a_list.json": '{"nodes": ["a", "b"], "arcs": 5, "cpds": {}}',
    "cpds_a_list.json": '{"nodes": ["a"], "arcs": [], "cpds": [1, 2]}',
    "observed_no.json": ('{"format": "deepbn", "version": 1, "nodes": [{"name": "a", "family": '
                         '"linear-gaussian", "observed": "no", "params": {"weight": [[]], '
                         '"bias": [0], "scale": [1]}}]}'),
    "unknown_family.json": ('{"format": "deepbn", "version": 1, "nodes": [{"name": "a", '
                            '"family": "poisson", "params": {}}]}'),
    "unknown_parent.json": ('{"format": "deepbn", "version": 1, "nodes": [{"name": "a", '
                            '"family": "linear-gaussian", "parents": ["ghost"], "params": '
                            '{"weight": [[1.0]], "bias": [0], "scale": [1]}}]}'),
    "json_list.json": "[1, 2, 3]",
    "tie_mismatch.json": ('{"format": "deepbn", "version": 1, "nodes": [{"name": "a", "tie": "g", '
                          '"family": "linear-gaussian", "params": {"weight": [[]], "bias": [0], '
                          '"scale": [1]}}, {"name": "b", "tie": "g", "family": "laplace", '
                          '"params": {"weight": [[]], "bias": [0], "scale": [1]}}]}'),
    "a_file": "not a folder\n",
    "empty_grid.toml": "command = 'discover d.csv'\n[grid]\nsteps = []\n",
    "not_toml.toml": "command = [\n",
}


def write_inputs(d: Path) -> None:
    """Write ``FILES`` and the data tables the cases need into ``d``."""
    import jax

    from deepbn.examples import load
    from deepbn.io.tables import write_table

    for name, text in FILES.items():
        (d / name).write_text(text)
    (d / "binary.csv").write_bytes(b"\xff\xfe\x00bad")
    for spec, name, n in [(H, "h.csv", 6), (TREE, "tree.csv", 12), (DBN, "dbn.csv", 1)]:
        net = load(spec)
        values = net.sample(jax.random.key(0), n)
        names = list(net.observed_names)
        write_table(d / name, net.to_table(values, names), net.columns(names))
    text = (d / "dbn.csv").read_text().splitlines()
    cells = text[1].split(",")
    (d / "dbn_not_binary.csv").write_text(f"{text[0]}\n{','.join(['0.5'] + cells[1:])}\n")
    rng = np.random.default_rng(0)
    write_table(d / "wide.csv", rng.normal(size=(5, 21)), [f"v{i}" for i in range(21)])
    images = {k: (rng.random((n, 6)) < 0.5).astype(np.uint8)
              for k, n in [("train", 16), ("valid", 4), ("test", 4)]}
    np.savez(d / "images.npz", **images)
    np.savez(d / "no_train.npz", test=images["test"])
    real = {k: rng.random((n, 784)).astype(np.float32) for k, n in [("train", 4), ("test", 2)]}
    np.savez(d / "images_real784.npz", **real)
    np.savez(d / "images_inf.npz", **{**images, "train": np.full((16, 6), np.inf)})
    (d / "not_a_vae").mkdir()
    (d / "not_a_vae" / "config.json").write_text(json.dumps({"command": "discover"}))


def _discover(*extra):
    return ["discover", "{d}/ab.csv", "--out", "{out}", "--steps", "3", *extra]


def _posterior(*extra, data="{d}/h.csv"):
    return ["posterior", H, data, "--out", "{out}", "--warmup", "5", "--samples", "5", *extra]


def _fit(*extra, data="{d}/h.csv"):
    return ["fit", H, data, "--out", "{out}", "--iterations", "3", *extra]


def _vae(*extra, data="{d}/images.npz"):
    return ["vae", "train", "--data", data, "--out", "{out}", "--epochs", "1", "--nodes", "2",
            "--latent-dim", "4", "--batch", "8", *extra]


def _siren(*extra, data="{d}/tree.csv"):
    return ["siren", "train", TREE, data, "--out", "{out}", "--epochs", "1", "--batch", "4",
            "--blocks", "1", "--iw", "4", *extra]


def _sample(*extra, net=H):
    return ["sample", net, "-n", "3", "-o", "{out}.csv", *extra]


CASES: list[tuple[str, list[str], str]] = [
    # data tables
    ("table extra field", ["discover", "{d}/extra_field.csv", "--out", "{out}"],
     "line 2 has 3 fields, the header 2"),
    ("table short row", ["discover", "{d}/short_row.csv", "--out", "{out}"],
     "line 3 has 2 fields, the header 3"),
    ("table beyond float32", ["discover", "{d}/beyond_float32.csv", "--out", "{out}"],
     "value 1e39 in column 'b' (line 2)"),
    ("table word", ["discover", "{d}/word.csv", "--out", "{out}"],
     "non-numeric value 'abc' in column 'b' (line 3)"),
    ("table nan", ["discover", "{d}/nan.csv", "--out", "{out}"],
     "missing value in column 'b' (line 3)"),
    ("table empty", ["discover", "{d}/empty.csv", "--out", "{out}"], "the file is empty"),
    ("table header only", ["discover", "{d}/header_only.csv", "--out", "{out}"],
     "no data rows below the header"),
    ("table duplicate names", ["discover", "{d}/duplicate_names.csv", "--out", "{out}"],
     "duplicate column name(s) a"),
    ("table one column", ["discover", "{d}/one_column.csv", "--out", "{out}"],
     "needs at least 2 variables"),
    ("table constant column", ["discover", "{d}/constant.csv", "--out", "{out}"],
     "constant column(s) a"),
    ("table missing", ["discover", "{d}/no_such.csv", "--out", "{out}"],
     "no_such.csv: no such data file"),
    ("table is a folder", ["discover", "{d}/not_a_vae", "--out", "{out}"],
     "not_a_vae: is a folder; give a CSV file"),
    # discover's other inputs and options
    ("discover truth cyclic", _discover("--truth", "{d}/cyclic_truth.csv"),
     "the true graph has a cycle (a -> b -> a)"),
    ("discover truth unknown name", _discover("--truth", "{d}/unknown_truth.csv"),
     "line 2: unknown variable 'zz'"),
    ("discover truth missing", _discover("--truth", "{d}/no_such.csv"),
     "no_such.csv: cannot read edge list"),
    ("discover truth not text", _discover("--truth", "{d}/binary.csv"),
     "binary.csv: not a CSV text file"),
    ("discover interventions not 0/1", _discover("--interventions", "{d}/bad_mask.csv"),
     "mask entries must be 0 or 1"),
    ("discover interventions rows", _discover("--interventions", "{d}/short_mask.csv"),
     "the mask has 1 rows but the data has 4"),
    ("discover heldout columns", _discover("--heldout", "{d}/other_columns.csv"),
     "missing column(s) a, b"),
    ("discover model", _discover("--model", "gp"),
     "model must be one of bge, linear, mlp, got 'gp'"),
    ("discover exact joint model", _discover("--exact", "--model", "linear"),
     "--exact sums BGe marginal likelihoods: use it with --model bge"),
    ("discover order MCMC joint model", _discover("--order-mcmc", "100", "--model", "mlp"),
     "--order-mcmc sums parent sets out under BGe: use it with --model bge"),
    ("discover order MCMC candidates", _discover("--order-mcmc", "100", "--candidates", "25"),
     "--candidates must be 1 to 20, not 25"),
    ("discover order MCMC negative", _discover("--order-mcmc", "-5"),
     "--order-mcmc must be at least 0, got -5"),
    ("discover sampler unknown", _discover("--sampler", "gibbs"),
     "sampler must be one of auto, order, dibs, got 'gibbs'"),
    ("discover order sampler joint model", _discover("--sampler", "order", "--model", "linear"),
     "--sampler order sums parent sets out under BGe: use it with --model bge, or --sampler "
     "dibs"),
    ("discover order sampler runs", _discover("--runs", "2"),
     "--runs counts DiBS runs; order MCMC's independent runs are its --chains"),
    ("discover chains 0", _discover("--chains", "0"), "--chains must be at least 1, got 0"),
    ("discover temperatures 0", _discover("--temperatures", "0"),
     "--temperatures must be at least 1, got 0"),
    ("discover until-rhat below 1", _discover("--until-rhat", "0.9"),
     "--until-rhat must be above 1 (or 0: the whole budget), not 0.9"),
    ("discover exact too many variables", ["discover", "{d}/wide.csv", "--out", "{out}",
                                           "--exact"],
     "--exact sums over 2^d parent sets per node, at most 20 variables; this table has 21"),
    ("discover graph prior", _discover("--graph-prior", "ba"), "graph prior must be one of er, sf"),
    ("discover standardize", _discover("--standardize", "minmax"), "scaling must be one of auto"),
    ("discover particles 0", _discover("--particles", "0"),
     "number of particles must be at least 1"),
    ("discover steps 0", _discover("--steps", "0"), "SVGD steps must be at least 1"),
    ("discover graph samples 0", _discover("--graph-samples", "0"),
     "graph samples must be at least 1"),
    ("discover max parents 0", _discover("--max-parents", "0"),
     "maximum number of parents must be at least 1"),
    ("discover edges per node inf", _discover("--edges-per-node", "inf"),
     "expected edges per node must be a positive number"),
    ("discover edges per node negative", _discover("--edges-per-node", "-1"),
     "must be a positive number, got -1"),
    ("discover out is a file", ["discover", "{d}/ab.csv", "--out", "{d}/a_file"],
     "a_file: exists and is not a folder"),
    ("discover out below a file", ["discover", "{d}/ab.csv", "--out", "{d}/a_file/run"],
     "cannot create the output folder (Not a directory)"),
    # network files
    ("network missing", _sample(net="{d}/no_such.json"), "no_such.json: no such network file"),
    ("network not json", _sample(net="{d}/not_json.json"), "not valid JSON (line 1"),
    ("network arcs not a list", _sample(net="{d}/arcs_not_a_list.json"),
     "'arcs' must be a list of [parent, child] pairs"),
    ("network cpds a list", _sample(net="{d}/cpds_a_list.json"),
     "'cpds' must map each node name to its cpd"),
    ("network observed no", _sample(net="{d}/observed_no.json"),
     "node 'a': 'observed' must be true or false, got 'no'"),
    ("network unknown family", _sample(net="{d}/unknown_family.json"),
     "node 'a': unknown family 'poisson'"),
    ("network unknown parent", _sample(net="{d}/unknown_parent.json"),
     "node 'a' has unknown parent 'ghost'"),
    ("network a json list", _sample(net="{d}/json_list.json"),
     "expected a JSON object with 'nodes'"),
    ("network tie mismatch", _sample(net="{d}/tie_mismatch.json"),
     "tie_mismatch.json: nodes 'a' and 'b' are tied ('g') but are linear-gaussian and laplace"),
    ("network unknown example", _sample(net="example:no-such"), "unknown example 'no-such'"),
    ("example unknown parameter", _sample(net="example:kingma-dbn?X=3"),
     "unknown parameter 'X' of example 'kingma-dbn'"),
    ("example bad parameter value", _sample(net="example:kingma-dbn?T=ten"),
     "parameter T of example 'kingma-dbn' must be int"),
    ("example parameter not positive", _sample(net="example:kingma-dbn?T=0"),
     "needs a positive value"),
    # sample
    ("sample n 0", ["sample", H, "-n", "0", "-o", "{out}.csv"],
     "the number of samples must be at least 1"),
    ("sample n too large", ["sample", H, "-n", "1000000000", "-o", "{out}.csv"],
     "draw fewer at a time"),
    ("sample output a folder", ["sample", H, "-n", "2", "-o", "{d}/not_a_vae"],
     "not_a_vae: is a folder; give a file name"),
    ("network path with brackets", _sample(net="{d}/[/x]/net[1].json"),
     "/[/x]/net[1].json: no such network file"),
    ("sample output below a file", ["sample", H, "-n", "2", "-o", "{d}/a_file/x.csv"],
     "a_file is a file, not a folder"),
    # demo
    ("demo n 0", ["demo", "--out", "{out}", "-n", "0"], "number of samples must be at least 1"),
    ("demo steps 0", ["demo", "--out", "{out}", "--steps", "0"], "SVGD steps must be at least 1"),
    ("demo order MCMC negative", ["demo", "--out", "{out}", "--order-mcmc", "-1"],
     "--order-mcmc must be at least 0, got -1"),
    ("demo out is a file", ["demo", "--out", "{d}/a_file"], "a_file: exists and is not a folder"),
    # posterior
    ("posterior form", _posterior("--form", "whitened"), "unknown form 'whitened'"),
    ("posterior sampler", _posterior("--sampler", "mala"), "unknown sampler 'mala'"),
    ("posterior particles 1", _posterior("--particles", "1"), "at least 2 particles"),
    ("posterior particle form on a non-chain", _posterior("--form", "particle"),
     "needs a state-space network"),
    ("posterior chains 0", _posterior("--chains", "0"), "need at least 1 chain"),
    ("posterior warmup negative", _posterior("--warmup", "-1"), "-1 warmup step(s)"),
    ("posterior samples 0", _posterior("--samples", "0"), "0 sample(s)"),
    ("posterior integration steps 0", _posterior("--integration-steps", "0"),
     "leapfrog steps per HMC transition must be at least 1"),
    ("posterior checkpoint every 0", _posterior("--checkpoint-every", "0"),
     "transitions between checkpoints must be at least 1"),
    ("posterior latent unknown", _posterior("--latent", "ghost"), "unknown node(s) ghost"),
    ("posterior data other columns", _posterior(data="{d}/ab.csv"),
     "columns do not match the network's observed nodes"),
    ("posterior data not binary", ["posterior", DBN, "{d}/dbn_not_binary.csv", "--out", "{out}"],
     "column 'x1' of bernoulli node 'x1' must hold 0 or 1"),
    ("posterior no latent nodes", _posterior("--latent", ""), "no latent node named"),
    ("posterior out is a file", ["posterior", H, "{d}/h.csv", "--out", "{d}/a_file"],
     "a_file: exists and is not a folder"),
    # fit
    ("fit method", _fit("--method", "gibbs"), "method must be one of mcmc-em, vi"),
    ("fit iterations 0", _fit("--iterations", "0"), "iterations must be at least 1"),
    ("fit form", _fit("--form", "whitened"), "form must be one of centred, auxiliary"),
    ("fit optimizer", _fit("--optimizer", "lbfgs"), "optimizer must be one of adagrad, adam, sgd"),
    ("fit learning rate nan", _fit("--learning-rate", "nan"), "learning rate"),
    ("fit learning rate negative", _fit("--learning-rate", "-0.1"),
     "learning rate must be a positive number, got -0.1"),
    ("fit hmc transitions 0", _fit("--hmc-transitions", "0"), "must be at least 1"),
    ("fit learn unknown node", _fit("--learn", "ghost"), "cannot learn unknown node(s) ghost"),
    ("fit data other columns", _fit(data="{d}/ab.csv"),
     "columns do not match the network's observed nodes"),
    ("fit diverging", _fit("--optimizer", "sgd", "--learning-rate", "1e6", "--iterations", "50"),
     "produced non-finite values; stopped, nothing was"),
    ("fit cases 0", _fit("--cases", "0"), "the cases must be at least 1"),
    ("fit test cases of a CSV", _fit("--test-cases", "5"), "--test-cases needs an image set"),
    ("fit images of several observed nodes", _fit(data="{d}/images.npz"),
     "gives the values of one observed node, but example:gaussian-hierarchy observes 10"),
    ("fit kingma-mnist images not 784-d", ["fit", MNIST, "{d}/images.npz", "--out", "{out}"],
     "images.npz: images of 6 values, but node 'x' of example:kingma-mnist takes 784"),
    ("fit kingma-mnist images not binary",
     ["fit", MNIST, "{d}/images_real784.npz", "--out", "{out}"],
     "column 'x[0]' of bernoulli node 'x' must hold 0 or 1"),
    # vae train / eval
    ("vae data missing", _vae(data="{d}/no_such.npz"), "no_such.npz: no such file"),
    ("vae data without train", _vae(data="{d}/no_train.npz"), "no 'train' array"),
    ("vae data infinite", _vae(data="{d}/images_inf.npz"), "'train' holds NaN or infinite values"),
    ("vae structure", _vae("--structure", "tree"), "unknown structure 'tree'"),
    ("vae nodes 0", _vae("--nodes", "0"), "positive multiple of the number of latent nodes (0)"),
    ("vae latent dim not divisible", _vae("--latent-dim", "5"),
     "latent dimension (5) must be a positive multiple"),
    ("vae epochs 0", _vae("--epochs", "0"), "epochs must be at least 1"),
    ("vae batch 0", _vae("--batch", "0"), "batch size 0 must be between 1 and"),
    ("vae lr 0", _vae("--lr", "0"), "learning rate must be a positive number"),
    ("vae lr decay 2", _vae("--lr-decay", "2"), "learning-rate decay must be in (0, 1]"),
    ("vae temperature decay 0", _vae("--temperature-decay", "0"),
     "temperature decay must be in (0, 1]"),
    ("vae out is a file", ["vae", "train", "--data", "{d}/images.npz", "--out", "{d}/a_file"],
     "a_file: exists and is not a folder"),
    ("vae eval missing folder", ["vae", "eval", "{d}/no_such_folder"], "holds no trained model"),
    ("vae eval not a vae folder", ["vae", "eval", "{d}/not_a_vae"],
     "was not written by 'deepbn vae train'"),
    ("vae eval iw 0", ["vae", "eval", "{d}/not_a_vae", "--iw", "0"],
     "importance samples must be at least 1"),
    ("vae eval max examples 0", ["vae", "eval", "{d}/not_a_vae", "--max-examples", "0"],
     "test examples must be at least 1"),
    ("vae diverging", _vae("--lr", "1e8"),
     "epoch 1 produced non-finite values; stopped, nothing was checkpointed"),
    # siren train
    # the plain-VAE variant: the same command and stop, half the compile time of the BN one
    ("siren diverging", _siren("--lr", "1e8", "--variant", "vae"),
     "epoch 1 produced non-finite values; stopped, nothing was checkpointed"),
    ("siren variant", _siren("--variant", "dense"), "unknown variant 'dense'"),
    ("siren latent unknown", _siren("--latent", "ghost"),
     "latent node(s) ghost not in the network"),
    ("siren epochs 0", _siren("--epochs", "0"), "epochs must be at least 1"),
    ("siren batch 0", _siren("--batch", "0"), "batch size must be at least 1"),
    ("siren lr negative", _siren("--lr", "-1"), "learning rate must be a positive number"),
    ("siren blocks 0", _siren("--blocks", "0"), "flow blocks must be at least 1"),
    ("siren iw 0", _siren("--iw", "0"), "importance samples must be at least 1"),
    ("siren data other columns", _siren(data="{d}/ab.csv"),
     "columns do not match the observed nodes"),
    ("siren heldout other columns", _siren("--heldout", "{d}/ab.csv"),
     "columns do not match the observed nodes"),
    ("siren heldout twice", _siren("--heldout", "{d}/tree.csv", "--heldout-rows", "2"),
     "give --heldout FILE or --heldout-rows N, not both"),
    ("siren too few rows", _siren("--train-per-node", "100"),
     "has 12 rows; the run needs 3100 training rows"),
    ("siren steps 0", _siren("--steps", "0"), "the number of steps must be at least 1"),
    ("siren heldout rows all", _siren("--heldout-rows", "12"),
     "has 12 rows; --heldout-rows 12 leaves none to train on"),
    ("siren warmup above 1", _siren("--warmup", "2"), "--warmup is a fraction of the epochs"),
    # sweep
    ("sweep spec missing", ["sweep", "{d}/no_such.toml", "--out", "{out}"],
     "no_such.toml: no such sweep spec"),
    ("sweep empty grid", ["sweep", "{d}/empty_grid.toml", "--out", "{out}"],
     "grid.steps: an empty list; give at least one value"),
    ("sweep not toml", ["sweep", "{d}/not_toml.toml", "--out", "{out}"],
     "not_toml.toml: not valid TOML"),
    ("sweep jobs 0", ["sweep", "{d}/empty_grid.toml", "--out", "{out}", "--jobs", "0"],
     "--jobs must be at least 1, got 0"),
    ("sweep executor", ["sweep", "{d}/empty_grid.toml", "--out", "{out}", "--executor", "slurm"],
     "slurm"),
    ("siren out is a file", ["siren", "train", TREE, "{d}/tree.csv", "--out", "{d}/a_file"],
     "a_file: exists and is not a folder"),
]
