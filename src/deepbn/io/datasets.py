"""Data sets, checked: the Sachs protein-signalling data (structure learning, from a local
file) and image data for the VAEs (binarized MNIST, downloaded once into a cache, or any
``.npz``). The cache is ``$DEEPBN_CACHE`` (default ``~/.cache/deepbn``).

**Sachs** et al. (2005), "Causal protein-signaling networks derived from
multiparameter single-cell data", Science 308: flow cytometry of 11
phosphoproteins and phospholipids in human T cells. Several versions
circulate (all nine conditions or one, discretized or not, 17, 18 or 20
edges); deepbn pins one (:func:`load_sachs`, :data:`SACHS_PIN`):

- rows: the 853 cells of the observational condition (anti-CD3/CD28 only,
  spreadsheet "1. cd3cd28"), raw concentrations, pinned by the SHA-256 of the
  (853, 11) float32 values in :data:`SACHS_NAMES` order. The file can be that
  table (tab, comma or space separated, the spreadsheets' column spellings) or
  ``cdt/data/resources/cyto_full_data.csv`` from the ``cdt`` 0.6.0 wheel on
  PyPI: 7466 rows, the nine stimulation conditions stacked, cd3cd28 first, of
  which the first 853 rows are taken;
- preprocessing: the natural log (positive, heavy-tailed concentrations); a
  run's column standardization is left to the caller (``discover``'s default);
- graph: the 17-edge consensus network of bnlearn's repository (the network
  Sachs et al. report, as used by the DiBS paper), not the 18-edge
  ``cyto_full_target.csv`` that ships with cdt (:data:`SACHS_CONSENSUS`).

``python -m deepbn.io.datasets sachs FILE --out sachs.csv`` writes the pinned
table for ``deepbn discover`` and the consensus graph beside it.

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
import importlib.util
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

import numpy as np

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



class SachsPin(NamedTuple):
    """Which Sachs rows :func:`load_sachs` accepts: the condition's rows, the row count of
    cdt's table of all conditions (the condition first), the SHA-256 of the raw rows."""

    rows: int
    stacked_rows: int
    sha256: str


# sha256 of the (853, 11) float32 little-endian raw values, SACHS_NAMES order: the first
# 853 rows of cdt 0.6.0's cyto_full_data.csv (file sha256 fc331dcd...ddf01aa)
SACHS_PIN = SachsPin(
    853, 7466, "be97bf60b1e3aa532e0f7ce1cca44d3764ad512af4c281d703575ff50cff3060")

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
    import pandas as pd

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


def values_digest(x: np.ndarray) -> str:
    """SHA-256 of an array as contiguous little-endian float32 (independent of the file's
    separators, column spellings and number formatting)."""
    return hashlib.sha256(np.ascontiguousarray(x, dtype="<f4").tobytes()).hexdigest()


def _cdt_copy() -> Path | None:
    """cdt's ``cyto_full_data.csv`` if the cdt package is installed (without importing it)."""
    spec = importlib.util.find_spec("cdt")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "resources" / (
        "cyto_full_data.csv")
    return path if path.exists() else None


def load_sachs(path: str | os.PathLike | None = None, log_transform: bool = True,
               check: bool = True) -> tuple:
    """(x, names, consensus adjacency) of the pinned Sachs data (see the module docstring).

    ``path``: the 853-row cd3cd28 table or cdt's ``cyto_full_data.csv`` (7466 rows, the
    first 853 taken); ``None`` looks for the latter in an installed ``cdt`` package.
    ``check`` refuses, in one line, a table whose rows differ from :data:`SACHS_PIN`
    (another version: rounded, rescaled, reordered or another condition).
    ``log_transform`` applies log(x) (the concentrations are positive and heavy-tailed;
    the usual preprocessing before a Gaussian model).
    """
    if path is None:
        path = _cdt_copy()
        if path is None:
            raise DataError(
                "no Sachs file given and no cdt package installed: pass the path of the "
                "853-row cd3cd28 table or of cyto_full_data.csv from the cdt wheel "
                "(pip download cdt==0.6.0 --no-deps; unzip; cdt/data/resources/)")
    x = parse_sachs(path)
    pin = SACHS_PIN
    if x.shape[0] == pin.stacked_rows:
        x = x[: pin.rows]
    elif x.shape[0] != pin.rows:
        raise DataError(
            f"{path}: {x.shape[0]} data rows; expected {pin.rows} (the cd3cd28 condition of "
            f"Sachs et al.) or {pin.stacked_rows} (cdt's cyto_full_data.csv, cd3cd28 first)")
    if check and values_digest(x) != pin.sha256:
        raise DataError(
            f"{path}: the {pin.rows} cd3cd28 rows differ from the pinned version (SHA-256 of "
            f"the values {values_digest(x)[:12]}..., pinned {pin.sha256[:12]}...): another "
            "version of the data (rounded, rescaled, reordered or another condition?); use "
            "cdt 0.6.0's cyto_full_data.csv, or --no-check (check=False) to use it anyway")
    if log_transform:
        if np.any(x <= 0):
            raise DataError(f"{path}: non-positive values cannot be log-transformed")
        x = np.log(x)
    return x, list(SACHS_NAMES), sachs_consensus_adjacency()


def write_sachs(source: str | os.PathLike | None, out: str | os.PathLike,
                log_transform: bool = True, check: bool = True) -> tuple[Path, Path]:
    """Write the pinned Sachs table as a ``discover`` CSV and the consensus graph beside it
    (``<stem>_consensus.csv``, ``cause,effect``); returns both paths."""
    from deepbn import graph
    from deepbn.io.tables import write_table

    x, names, A = load_sachs(source, log_transform=log_transform, check=check)
    out = Path(out)
    truth = out.with_name(out.stem + "_consensus.csv")
    write_table(out, x, names)
    graph.write_edge_list(truth, A, names)
    return out, truth


def main(argv: list[str] | None = None) -> int:
    """``python -m deepbn.io.datasets sachs FILE --out sachs.csv [--raw] [--no-check]``."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m deepbn.io.datasets",
                                 description="Write a pinned data set as a discover CSV.")
    sub = ap.add_subparsers(dest="dataset", required=True)
    sp = sub.add_parser("sachs", help="Sachs et al. (2005): 853 cd3cd28 cells, log, "
                        "17-edge consensus graph written beside as <stem>_consensus.csv")
    sp.add_argument("file", nargs="?", default=None,
                    help="the 853-row cd3cd28 table or cdt's cyto_full_data.csv "
                    "(default: from an installed cdt package)")
    sp.add_argument("--out", required=True, help="CSV to write (header: variable names)")
    sp.add_argument("--raw", action="store_true", help="raw concentrations, no log")
    sp.add_argument("--no-check", action="store_true",
                    help="accept rows that differ from the pinned version")
    args = ap.parse_args(argv)
    try:
        data, truth = write_sachs(args.file, args.out, log_transform=not args.raw,
                                  check=not args.no_check)
    except (DataError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {data} ({SACHS_PIN.rows} rows x {len(SACHS_NAMES)}, "
          f"{'raw' if args.raw else 'log'}) and {truth} ({len(SACHS_CONSENSUS)} edges)")
    return 0


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


if __name__ == "__main__":
    raise SystemExit(main())
