import json

import numpy as np
import pytest

from deepbn.cli.app import main
from deepbn.errors import DataError
from deepbn.io import datasets


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def _binary(n, width=16, seed=0):
    rng = np.random.default_rng(seed)
    proto = np.random.default_rng(7).integers(0, 2, (3, width))
    return (proto[rng.integers(0, 3, n)] ^ (rng.random((n, width)) < 0.05)).astype(np.uint8)


def test_train_then_eval_writes_the_contract_files(tmp_path, capsys):
    path = _npz(tmp_path / "d.npz", train=_binary(256), valid=_binary(64, seed=1),
                test=_binary(40, seed=2))
    out = tmp_path / "run"
    args = ["vae", "train", "--data", path, "--structure", "learned", "--nodes", "2",
            "--latent-dim", "4", "--epochs", "2", "--batch", "32", "--out", str(out)]
    assert main(args) == 0
    for name in ("checkpoint.npz", "config.json", "history.json", "summary.json",
                 "training_curves.png", "gates.png", "structure.png", "samples.png",
                 "reconstructions.png"):
        assert (out / name).exists(), name
    assert main(["vae", "eval", str(out), "--iw", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "eval.json").read_text())
    assert saved == result
    assert {"ll", "elbo", "kl", "structure"} <= set(saved)
    assert saved["ll"] >= saved["elbo"] - 1.0 and saved["test_examples"] == 40
    # the same folder with another model is refused before anything is written
    other = [a if a != "2" or args[k - 1] != "--nodes" else "4" for k, a in enumerate(args)]
    assert main(other) == 2
    assert "holds a different model" in capsys.readouterr().err


@pytest.mark.parametrize("arrays, extra, message", [
    (dict(train=np.zeros((8, 2, 2)), test=np.zeros((2, 4))), [], "expected \\(examples"),
    (dict(train=np.array([["a", "b"]] * 8), test=np.array([["a", "b"]] * 2)), [],
     "dtype <U1"),
    (dict(train=np.zeros((8, 4)), test=np.zeros((2, 5))), [], "'test' has 5 features"),
    (dict(train=np.zeros((8, 4))), [], "no 'test' array"),
    (dict(train=np.zeros((8, 4)), test=np.zeros((2, 4))), ["--latent-dim", "7"],
     "multiple of the number of latent nodes"),
    (dict(train=np.zeros((8, 4)), test=np.zeros((2, 4))), ["--epochs", "0"],
     "epochs must be at least 1"),
    (dict(train=np.zeros((8, 4)), test=np.zeros((2, 4))), ["--batch", "0"], "batch size 0"),
    (dict(train=np.zeros((8, 4)), test=np.zeros((2, 4))), ["--lr", "nan"],
     "learning rate must be a positive number"),
    (dict(train=np.zeros((8, 4)), test=np.zeros((2, 4))), ["--lr", "-0.1"],
     "learning rate must be a positive number"),
    (dict(train=np.zeros((8, 4)), test=np.zeros((2, 4))), ["--temperature-decay", "1.5"],
     "temperature decay must be in"),
    (dict(train=np.zeros((8, 4)), test=np.zeros((2, 4))), ["--structure", "tree"],
     "unknown structure 'tree'"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, arrays, extra, message):
    path = _npz(tmp_path / "bad.npz", **arrays)
    args = ["vae", "train", "--data", path, "--out", str(tmp_path / "o"), "--epochs", "1",
            "--nodes", "2", "--latent-dim", "4"] + extra
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    import re
    assert re.search(message, " ".join(err.split()))
    assert not (tmp_path / "o" / "checkpoint.npz").exists()


def test_eval_of_a_folder_without_a_model_is_an_error(tmp_path, capsys):
    assert main(["vae", "eval", str(tmp_path)]) == 2
    assert "holds no trained model" in capsys.readouterr().err
    for bad, message in ((["--iw", "0"], "importance samples must be at least 1"),
                         (["--max-examples", "0"], "test examples must be at least 1")):
        assert main(["vae", "eval", str(tmp_path), *bad]) == 2
        assert message in capsys.readouterr().err


def test_mnist_download_is_checked_against_its_checksum(tmp_path, monkeypatch):
    for split in ("train", "valid", "test"):
        (tmp_path / f"binarized_mnist_{split}.amat").write_text("0 1 0 1\n1 1 0 0\n")
    monkeypatch.setenv("DEEPBN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "MNIST_URL", tmp_path.as_uri() + "/binarized_mnist_{}.amat")
    with pytest.raises(DataError, match="does not match its checksum"):
        datasets.load_images("mnist")
    assert not (tmp_path / "cache" / "binarized_mnist.npz").exists()
    # a parse of the right pixels passes: check the digest function on a known array
    monkeypatch.setitem(datasets.MNIST_SHA256, "train", datasets.pixel_digest(
        np.array([[0, 1, 0, 1], [1, 1, 0, 0]], np.uint8)))
    monkeypatch.setitem(datasets.MNIST_SHA256, "valid", datasets.MNIST_SHA256["train"])
    monkeypatch.setitem(datasets.MNIST_SHA256, "test", datasets.MNIST_SHA256["train"])
    d = datasets.load_images("mnist")
    assert d.train.shape == (2, 4) and d.likelihood == "bernoulli"
    assert (tmp_path / "cache" / "binarized_mnist.npz").exists()


def test_real_valued_data_get_a_gaussian_likelihood(tmp_path):
    rng = np.random.default_rng(0)
    path = _npz(tmp_path / "r.npz", train=rng.normal(size=(20, 3)), test=rng.normal(size=(4, 3)))
    d = datasets.load_images(path)
    assert d.likelihood == "gaussian" and d.valid.shape == (2, 3) and d.train.shape == (18, 3)


def test_a_folder_remembers_its_data_by_content_and_a_resolvable_path(tmp_path, monkeypatch,
                                                                        capsys):
    work = tmp_path / "work"
    work.mkdir()
    _npz(work / "small.npz", train=_binary(64), valid=_binary(16, seed=1),
         test=_binary(16, seed=2))
    monkeypatch.chdir(work)
    args = ["vae", "train", "--structure", "none", "--nodes", "1", "--latent-dim", "2",
            "--batch", "32", "--out", "run"]
    assert main([*args, "--data", "./small.npz", "--epochs", "1"]) == 0
    config = json.loads((work / "run" / "config.json").read_text())
    assert config["command"] == "vae train" and config["epochs"] == 1
    # the same file under another spelling is the same run: it resumes (more epochs accepted,
    # and config.json says so)
    assert main([*args, "--data", "small.npz", "--epochs", "2"]) == 0
    assert json.loads((work / "run" / "config.json").read_text())["epochs"] == 2
    for name in ("summary.json", "history.json", "config.json"):  # strict JSON (results layer)
        json.loads((work / "run" / name).read_text(), parse_constant=lambda c: pytest.fail(c))
    # evaluation from another directory finds the data
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["vae", "eval", "work/run", "--iw", "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_examples"] == 16
    # other data in the same folder are refused, whatever the path
    _npz(work / "small.npz", train=_binary(64, seed=5), valid=_binary(16, seed=1),
         test=_binary(16, seed=2))
    monkeypatch.chdir(work)
    assert main([*args, "--data", "small.npz", "--epochs", "3"]) == 2
    assert "train_digest" in capsys.readouterr().err
