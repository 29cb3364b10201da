import json

import jax
import numpy as np
import pytest

from deepbn import examples
from deepbn.cli.app import main
from deepbn.errors import UsageError
from deepbn.inference import hmc
from deepbn.io.networks import read_network


def _sample(tmp_path, spec, n, seed=0):
    path = tmp_path / f"data{n}.csv"
    assert main(["sample", spec, "-n", str(n), "-o", str(path), "--seed", str(seed)]) == 0
    return path


def test_posterior_writes_the_contract_outputs(tmp_path, capsys):
    data = _sample(tmp_path, "example:gaussian-hierarchy", 1)
    out = tmp_path / "post"
    code = main(["posterior", "example:gaussian-hierarchy", str(data), "--out", str(out),
                 "--warmup", "150", "--samples", "100", "--chains", "2", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    on_disk = json.loads((out / "summary.json").read_text())
    for key in ("ess_min", "ess_median", "rhat_max", "divergences", "seconds",
                "ess_min_per_s", "form", "compile_seconds"):
        assert key in on_disk and key in summary
    assert on_disk["form"]["mu"] == 1.0  # informative data: centred
    with np.load(out / "samples.npz") as f:
        assert f["mu"].shape == (2, 100, 1, 1) and f["z10"].shape == (2, 100, 1, 1)
    assert (out / "trace.png").stat().st_size > 0


def test_fit_writes_a_network_and_resumes(tmp_path, capsys):
    data = _sample(tmp_path, "example:gaussian-hierarchy", 30)
    out = tmp_path / "fit"
    args = ["fit", "example:gaussian-hierarchy", str(data), "--out", str(out),
            "--iterations", "30", "--learn", "x1", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["resumed_from_iteration"] == 0
    net = read_network(out / "network.json")
    assert net.names == examples.load("example:gaussian-hierarchy").names
    assert (out / "learning_curve.png").exists()
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["resumed_from_iteration"] == 30
    assert again["log_lik_end"] == first["log_lik_end"]


@pytest.mark.parametrize("args, message", [
    (["posterior", "example:gaussian-er10", "DATA"], "no latent nodes"),
    (["posterior", "example:kingma-dbn", "DATA"], "columns do not match"),
    (["fit", "example:gaussian-hierarchy", "DATA", "--method", "gibbs"], "method must be one of"),
    (["fit", "example:gaussian-hierarchy", "DATA", "--learning-rate", "nan"], "learning rate"),
    (["fit", "example:gaussian-hierarchy", "DATA", "--learning-rate", "-1"], "learning rate"),
    (["posterior", "example:gaussian-hierarchy", "DATA", "--form", "sideways"], "unknown form"),
])
def test_errors_are_one_line_exit_2(tmp_path, capsys, args, message):
    data = _sample(tmp_path, "example:gaussian-hierarchy", 2)
    capsys.readouterr()
    args = [str(data) if a == "DATA" else a for a in args] + ["--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bernoulli_columns_must_be_binary(tmp_path, capsys):
    data = _sample(tmp_path, "example:kingma-dbn", 1)
    text = data.read_text().splitlines()
    text[1] = "0.5" + text[1][text[1].index(","):]
    data.write_text("\n".join(text) + "\n")
    assert main(["posterior", "example:kingma-dbn", str(data), "--out",
                 str(tmp_path / "o")]) == 2
    assert "must hold 0 or 1" in capsys.readouterr().err


def test_non_finite_density_at_initialisation_names_the_node():
    bn = examples.gaussian_hierarchy(groups=2, per_group=2)
    x = bn.sample(jax.random.key(0), 1)
    observed = {n: x[n] for n in bn.observed_names}
    observed["x2"] = observed["x2"].at[0, 0].set(np.inf)
    with pytest.raises(UsageError, match="node 'x2'"):
        hmc.sample_posterior(bn, observed, warmup=10, samples=10)
