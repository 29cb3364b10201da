"""posterior.nc: the ArviZ InferenceData of a posterior run, read back with ArviZ itself."""

import json
import sys

import equinox as eqx
import numpy as np
import pytest

import deepbn
from deepbn import examples
from deepbn.cli.app import main
from deepbn.errors import MissingExtra, UsageError
from deepbn.inference import arviz_export, hmc
from deepbn.io.tables import read_table
from deepbn.reparam import LatentSpace

xr = pytest.importorskip("xarray", reason="ArviZ is the optional extra deepbn[arviz]")
azs = pytest.importorskip("arviz_stats")


def _all(dataset):
    return np.concatenate([np.ravel(dataset[v].values) for v in dataset.data_vars])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """``deepbn posterior`` with test_inference_cli's settings (so the two share compiled
    programs): the network, data, summary, samples.npz and posterior.nc as ArviZ opens it."""
    folder = tmp_path_factory.mktemp("posterior")
    data = folder / "data1.csv"
    assert main(["sample", "example:gaussian-hierarchy", "-n", "1", "-o", str(data),
                 "--seed", "0"]) == 0
    command = ["posterior", "example:gaussian-hierarchy", str(data), "--warmup", "150",
               "--samples", "100", "--chains", "2", "--json"]
    assert main([*command, "--out", str(folder / "post")]) == 0
    bn = examples.load("example:gaussian-hierarchy")
    summary = json.loads((folder / "post" / "summary.json").read_text())
    with np.load(folder / "post" / "samples.npz") as f:
        samples = dict(f)
    with xr.open_datatree(folder / "post" / "posterior.nc") as tree:  # = arviz.from_netcdf
        tree.load()
    table = read_table(data, allow_constant=True)  # one row: every column is constant
    columns = {n: table.values[:, [table.names.index(c) for c in bn.columns([n])]]
               for n in bn.observed_names}
    return command, bn, columns, summary, samples, tree


def test_groups_dims_and_draws_match_the_run(run):
    _, bn, observed, summary, samples, tree = run
    assert {"posterior", "sample_stats", "observed_data"} <= set(tree.children)
    assert set(tree["posterior"].data_vars) == set(bn.latent_names)
    for name in bn.latent_names:
        var = tree["posterior"][name]
        assert var.dims == ("chain", "draw", "case", f"{name}_coordinate")
        np.testing.assert_array_equal(var.values, samples[name])  # bit for bit
        assert list(var[f"{name}_coordinate"].values) == bn.columns([name])
    assert list(tree["posterior"]["case"].values) == [0]
    assert set(tree["observed_data"].data_vars) == set(bn.observed_names)
    for name in bn.observed_names:
        var = tree["observed_data"][name]
        assert var.dims == ("case", f"{name}_coordinate")
        assert list(var[f"{name}_coordinate"].values) == bn.columns([name])
        np.testing.assert_array_equal(var.values, observed[name])


def test_sample_stats_are_the_samplers(run):
    _, bn, observed, summary, samples, tree = run
    stats = tree["sample_stats"]
    assert set(stats.data_vars) == {"lp", "energy", "acceptance_rate", "diverging", "step_size",
                                    "tree_depth", "n_steps"}
    assert all(stats[n].dims == ("chain", "draw") for n in stats.data_vars)
    assert stats["diverging"].dtype == bool
    assert int(stats["diverging"].sum()) == summary["divergences"]
    assert int(stats["n_steps"].sum()) == summary["gradient_evaluations_sampling"]
    # after warmup every draw uses the chain's adapted step size
    np.testing.assert_array_equal(stats["step_size"].values,
                                  np.broadcast_to(np.float32(summary["step_size"])[:, None],
                                                  (2, 100)))
    # NUTS doubles its trajectory: depth d has at most 2^d - 1 leapfrog steps, and more than
    # 2^(d-1) - 1 (the last doubling began)
    depth, steps = stats["tree_depth"].values, stats["n_steps"].values
    assert np.all((steps <= 2**depth - 1) & (steps >= 2 ** (depth - 1)))
    # every node centred here, so the sampled density is the network's joint log p(z, x)
    assert set(summary["form"].values()) == {1.0}
    values = {**observed, **{n: samples[n][..., 0, :] for n in bn.latent_names}}
    values = {n: np.broadcast_to(v, (2, 100, v.shape[-1])) for n, v in values.items()}
    log_joint = eqx.filter_jit(lambda net, v: net.log_joint(v))(bn, values)  # op by op: 3 s
    np.testing.assert_allclose(stats["lp"].values, log_joint, rtol=1e-5)


def test_attributes_say_form_per_node_seed_and_version(run):
    _, bn, _, summary, _, tree = run
    assert tree.attrs["seed"] == 0 and tree.attrs["deepbn_version"] == deepbn.__version__
    assert tree.attrs["sampler"] == "nuts" and tree.attrs["form"] == "auto"
    assert tree["posterior"].attrs["inference_library"] == "deepbn"
    for name, centring in summary["form"].items():
        var = tree["posterior"][name]
        assert var.attrs["centring"] == pytest.approx(centring, abs=1e-4)
        assert var.attrs["form"] == "centred" and var.attrs["node"] == name


def test_arviz_ess_and_rhat_on_the_file_agree_with_the_summary(run):
    """Same estimators (bulk ESS, rank-normalised split R-hat with its folded version, Vehtari
    et al. 2021), two implementations: ArviZ in float64, BlackJAX (the summary) in float32 on
    the same float32 draws. Ranks are identical, so the two differ by float32 rounding of the
    autocovariances, ~1e-6 relative: 1e-4 leaves room and still catches any change of
    estimator (tail ESS, classic R-hat or unsplit chains differ by percents)."""
    _, _, _, summary, _, tree = run
    ess = _all(azs.ess(tree))
    rhat = _all(azs.rhat(tree))
    assert ess.size == summary["coordinates"]  # every case and coordinate
    assert ess.min() == pytest.approx(summary["ess_min"], rel=1e-4)
    assert np.median(ess) == pytest.approx(summary["ess_median"], rel=1e-4)
    assert rhat.max() == pytest.approx(summary["rhat_max"], rel=1e-4)
    assert summary["ess_min"] > 40  # Geyer's sequence ends inside the chains (module doc)


def _hand_made(sampler="hmc"):
    """PosteriorSamples without sampling: a vector node, a '/' in a name, partial centring."""
    space = LatentSpace(("a/b", "z"), (1, 2), (0, 1))
    rng = np.random.default_rng(0)
    samples = {"a/b": rng.normal(size=(2, 5, 1, 1)), "z": rng.normal(size=(2, 5, 1, 2))}
    stats = {"lp": rng.normal(size=(2, 5)), "n_steps": np.full((2, 5), 16, np.int32)}
    summary = {"sampler": sampler, "seed": 0}
    return hmc.PosteriorSamples(samples, space, np.array([[1.0, 0.5, 0.5]]), "custom", summary,
                                stats, {"x": np.zeros((1, 3))})


def test_hmc_stats_vector_nodes_and_names_a_tree_cannot_hold():
    tree = arviz_export.to_arviz(_hand_made())
    assert set(tree["sample_stats"].data_vars) == {"lp", "num_integration_steps"}
    assert list(tree["posterior"]["z_coordinate"].values) == ["z[0]", "z[1]"]
    assert list(tree["observed_data"]["x_coordinate"].values) == ["x[0]", "x[1]", "x[2]"]
    a_b = tree["posterior"]["a_b"]  # '/' separates groups in a DataTree
    assert a_b.attrs["node"] == "a/b" and a_b.attrs["form"] == "centred"
    assert tree["posterior"]["z"].attrs["form"] == "partial"
    post = _hand_made()
    clash = post._replace(samples={"a/b": post.samples["a/b"], "a_b": post.samples["z"]},
                          space=LatentSpace(("a/b", "a_b"), (1, 2), (0, 1)))
    with pytest.raises(UsageError, match="a_b"):
        arviz_export.to_arviz(clash)


def test_without_arviz_posterior_writes_the_rest_and_says_how_to_get_it(run, tmp_path, capsys,
                                                                        monkeypatch):
    command, *_ = run
    out = tmp_path / "p"
    out.mkdir()
    (out / "posterior.nc").write_text("an earlier run's")
    monkeypatch.setitem(sys.modules, "arviz_base", None)  # import arviz_base now fails
    with pytest.raises(MissingExtra, match='pip install "deepbn\\[arviz\\]"'):
        arviz_export.to_arviz(_hand_made())
    capsys.readouterr()
    assert main([*command, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    hint = [line for line in captured.err.splitlines() if "posterior.nc" in line]
    assert hint == ['posterior.nc not written: it needs ArviZ (arviz_base is missing); '
                    'pip install "deepbn[arviz]"']
    assert "Traceback" not in captured.err
    for name in ("samples.npz", "summary.json", "trace.png", "config.json"):
        assert (out / name).exists(), name
    assert not (out / "posterior.nc").exists()  # not left to contradict samples.npz
