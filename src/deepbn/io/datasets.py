"""Data sets, downloaded once into a cache and checked: the Sachs protein-signalling data
(structure learning) and image data for the VAEs (binarized MNIST or any ``.npz``).

The cache is ``$DEEPBN_CACHE`` (default ``~/.cache/deepbn``).

**Sachs** et al. (2005), "Causal protein-signaling networks derived from
multiparameter single-cell data", Science 308: flow cytometry of 11
phosphoproteins and phospholipids in human T cells. The observational part
(stimulation anti-CD3/CD28, file "1. cd3cd28") has 853 cells. The consensus
network is the 17-edge graph of the paper's Fig. 2/3 as used in the bnlearn
repository and in the DiBS paper (:func:`load_sachs`).

**Images** (:func:`load_images`): ``mnist`` is the standard statically
binarized MNIST of Larochelle & Murray (AISTATS 2011): 50k/10k/10k binary
28x28 images, downloaded from the original ``.amat`` files and checked
against the SHA-256 of each split's pixels; a local copy can be given instead
as ``PATH.npz`` (keys ``train``, ``valid``, ``test``). Any such ``.npz`` of
binary or real vectors works: binary data get a Bernoulli likelihood, real
data a Gaussian one.

Example:
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.npz")
    >>> np.savez(path, train=np.zeros((8, 4), np.uint8), test=np.ones((2, 4), np.uint8))
    >>> load_images(path).likelihood
    'bernoulli'
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from deepbn.errors import DataError
from deepbn.io.tables import FLOAT32_MAX

SACHS_NAMES = ["Raf", "Mek", "Plcg", "PIP2", "PIP3", "Erk", "Akt", "PKA", "PKC", "P38", "Jnk"]

# the spellings used by the original spreadsheets and common re-distributions
_ALIASES = {
    "raf": "Raf", "praf": "Raf", "mek": "Mek", "pmek": "Mek", "mek12": "Mek",
    "plcg": "Plcg", "plcgamma": "Plcg", "pip2": "PIP2", "pip3": "PIP3",
    "erk": "Erk", "p4442": "Erk", "erk12": "Erk", "akt": "Akt", "pakts473": "Akt",
    "pka": "PKA", "pkc": "PKC", "p38": "P38", "jnk": "Jnk", "pjnk": "Jnk",
}

SACHS_CONSENSUS = [
    ("Raf", "Mek"), ("Mek", "Erk"), ("Plcg", "PIP2"), ("Plcg", "PIP3"), ("PIP3", "PIP2"),
    ("Erk", "Akt"), ("PKA", "Akt"), ("PKA", "Erk"), ("PKA", "Jnk"), ("PKA", "Mek"),
    ("PKA", "P38"), ("PKA", "Raf"), ("PKC", "Jnk"), ("PKC", "Mek"), ("PKC", "P38"),
    ("PKC", "PKA"), ("PKC", "Raf"),
]

SACHS_URL = os.environ.get(
    "DEEPBN_SACHS_URL", "https://www.bnlearn.com/research/sachs05/Data%20Files/1.%20cd3cd28.txt"
)


def cache_dir() -> Path:
    return Path(os.environ.get("DEEPBN_CACHE", Path.home() / ".cache" / "deepbn"))


def sachs_consensus_adjacency() -> np.ndarray:
    """The 17-edge consensus DAG in the order of :data:`SACHS_NAMES`."""
    A = np.zeros((11, 11), bool)
    for c, e in SACHS_CONSENSUS:
        A[SACHS_NAMES.index(c), SACHS_NAMES.index(e)] = True
    return A


def parse_sachs(path: str | os.PathLike) -> np.ndarray:
    """Read the observational Sachs table (CSV, TSV or whitespace separated, any of the
    usual column spellings) into an (n, 11) array in :data:`SACHS_NAMES` order."""
    path = Path(path)
    try:
        table = pd.read_csv(path, sep=None, engine="python")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot parse as a table ({str(e).splitlines()[0]})") from None
    columns = {}
    for col in table.columns:
        key = re.sub(r"[^a-z0-9]", "", str(col).lower())
        if key in _ALIASES:
            columns[_ALIASES[key]] = col
    missing = [n for n in SACHS_NAMES if n not in columns]
    if missing:
        raise DataError(
            f"{path}: not a Sachs table: no column for {', '.join(missing)} "
            f"(found {', '.join(map(str, table.columns[:12]))})"
        )
    values = table[[columns[n] for n in SACHS_NAMES]].apply(pd.to_numeric, errors="coerce")
    if values.isna().any().any():
        row = int(np.flatnonzero(values.isna().any(axis=1).to_numpy())[0])
        raise DataError(f"{path}: non-numeric or missing value in data row {row + 1}")
    return values.to_numpy(np.float32)


def load_sachs(path: str | os.PathLike | None = None, log_transform: bool = True) -> tuple:
    """(x, names, consensus adjacency). Downloads once into the cache unless ``path`` given.

    ``log_transform`` applies log(x) (the concentrations are positive and
    heavy-tailed; the usual preprocessing before a Gaussian model).
    """
    if path is None:
        target = cache_dir() / "sachs" / "cd3cd28.txt"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with urllib.request.urlopen(SACHS_URL, timeout=30) as r:
                    payload = r.read()
            except (urllib.error.URLError, OSError) as e:
                raise DataError(
                    f"could not download the Sachs data from {SACHS_URL} ({e}); download "
                    "'1. cd3cd28' yourself and pass its path"
                ) from None
            tmp = target.with_suffix(".part")
            tmp.write_bytes(payload)
            os.replace(tmp, target)
            (target.parent / "sha256").write_text(hashlib.sha256(payload).hexdigest() + "\n")
        path = target
    x = parse_sachs(path)
    if log_transform:
        if np.any(x <= 0):
            raise DataError(f"{path}: non-positive values cannot be log-transformed")
        x = np.log(x)
    return x, list(SACHS_NAMES), sachs_consensus_adjacency()


MNIST_URL = os.environ.get(
    "DEEPBN_MNIST_URL",
    "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/binarized_mnist_{}.amat")
# SHA-256 of each split's pixels as contiguous uint8 (n, 784)
MNIST_SHA256 = {
    "train": "43490d4d6ac9002727af4426d8748609fdb7e4094fa65ad8d681ea60082a7a5a",
    "valid": "069b4f0beb389b776478c3e872b4df71c95ac4be64d7cbe6d32e24ebac8e6d5e",
    "test": "ca0294c3b8d984c7a1dc891015a8eea6f37bae59a34e35ea0fc8c47110a8dd86",
}
SPLITS = ("train", "valid", "test")


class VAEData(NamedTuple):
    train: np.ndarray  # uint8 (binary) or float32
    valid: np.ndarray
    test: np.ndarray
    likelihood: str  # bernoulli | gaussian
    source: str

    @property
    def input_dim(self) -> int:
        return int(self.train.shape[1])


def pixel_digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).hexdigest()


def _download_mnist() -> Path:
    target = cache_dir() / "binarized_mnist.npz"
    if target.exists():
        return target
    splits = {}
    for split in SPLITS:
        url = MNIST_URL.format(split)
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                text = r.read().decode()
        except (urllib.error.URLError, OSError) as e:
            raise DataError(f"could not download binarized MNIST from {url} ({e}); download the "
                            "three .amat files yourself, or pass --data PATH.npz with keys "
                            "train/valid/test") from None
        a = np.array([line.split() for line in text.strip().splitlines()], dtype=np.uint8)
        if pixel_digest(a) != MNIST_SHA256[split]:
            raise DataError(f"binarized MNIST '{split}' from {url} does not match its checksum; "
                            "the download is corrupt or the file changed: retry or pass "
                            "--data PATH.npz")
        splits[split] = a
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **splits)
    os.replace(tmp, target)
    return target


def load_images(spec: str | os.PathLike) -> VAEData:
    """``mnist`` (downloaded and cached) or a path to an ``.npz`` with train[/valid]/test."""
    path = _download_mnist() if str(spec) == "mnist" else Path(spec)
    if not path.exists():
        raise DataError(f"{path}: no such file; pass --data mnist or an .npz with keys "
                        "train/valid/test")
    try:
        f = np.load(path, allow_pickle=False)
        arrays = {k: f[k] for k in f.files}
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line error
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__})") from None
    for split in ("train", "test"):
        if split not in arrays:
            raise DataError(f"{path}: no '{split}' array; the file needs keys train, test "
                            "(and optionally valid)")
    if "valid" not in arrays:
        # a tenth of the training set, the last rows, held out for monitoring
        n_valid = max(1, arrays["train"].shape[0] // 10)
        arrays["valid"] = arrays["train"][-n_valid:]
        arrays["train"] = arrays["train"][:-n_valid]
    width = None
    for split in SPLITS:
        a = arrays[split]
        if a.ndim != 2:
            raise DataError(f"{path}: '{split}' has shape {a.shape}; expected (examples, features)"
                            " — flatten images first")
        if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
                or a.dtype == bool):
            raise DataError(f"{path}: '{split}' has dtype {a.dtype}; expected numbers")
        if a.shape[0] == 0:
            raise DataError(f"{path}: '{split}' has no rows")
        if width is not None and a.shape[1] != width:
            raise DataError(f"{path}: '{split}' has {a.shape[1]} features but 'train' has "
                            f"{width}; all splits need the same width")
        width = a.shape[1]
        if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
            raise DataError(f"{path}: '{split}' holds NaN or infinite values")
        if a.dtype != bool and a.size and float(np.max(np.abs(a))) > FLOAT32_MAX:
            row, col = np.unravel_index(int(np.argmax(np.abs(a))), a.shape)
            raise DataError(f"{path}: '{split}' row {row}, feature {col} holds {a[row, col]}, "
                            "beyond the float32 range; rescale the data")
    binary = all(np.all((arrays[s] == 0) | (arrays[s] == 1)) for s in SPLITS)
    cast = (lambda a: a.astype(np.uint8)) if binary else (lambda a: a.astype(np.float32))
    # the source as a path that resolves from any directory ("mnist" stays the name)
    source = "mnist" if str(spec) == "mnist" else str(Path(spec).resolve())
    return VAEData(*(cast(arrays[s]) for s in SPLITS), "bernoulli" if binary else "gaussian",
                   source)
