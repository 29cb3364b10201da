"""Data for the VAEs: statically binarized MNIST, or any ``.npz`` of train/valid/test vectors.

``mnist`` is the standard statically binarized MNIST of Larochelle & Murray
(AISTATS 2011): 50k/10k/10k binary 28x28 images. It is downloaded once into
the cache (``$DEEPBN_CACHE``, default ``~/.cache/deepbn``) from the original
``.amat`` files and checked against the SHA-256 of each split's pixels; a
local copy can be given instead as ``PATH.npz`` (keys ``train``, ``valid``,
``test``). Any such ``.npz`` of binary or real vectors works: binary data get
a Bernoulli likelihood, real data a Gaussian one.

Example:
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.npz")
    >>> np.savez(path, train=np.zeros((8, 4), np.uint8), test=np.ones((2, 4), np.uint8))
    >>> load(path).likelihood
    'bernoulli'
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

import numpy as np

from deepbn.datasets import cache_dir
from deepbn.errors import DataError

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


def load(spec: str | os.PathLike) -> VAEData:
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
    binary = all(np.all((arrays[s] == 0) | (arrays[s] == 1)) for s in SPLITS)
    cast = (lambda a: a.astype(np.uint8)) if binary else (lambda a: a.astype(np.float32))
    return VAEData(*(cast(arrays[s]) for s in SPLITS), "bernoulli" if binary else "gaussian",
                   str(spec))
