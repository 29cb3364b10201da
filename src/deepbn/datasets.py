"""Real data sets for structure learning.

Sachs et al. (2005), "Causal protein-signaling networks derived from
multiparameter single-cell data", Science 308: flow cytometry of 11
phosphoproteins and phospholipids in human T cells. The observational part
(stimulation anti-CD3/CD28, file "1. cd3cd28") has 853 cells. The consensus
network is the 17-edge graph of the paper's Fig. 2/3 as used in the bnlearn
repository and in the DiBS paper.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from deepbn.errors import DataError

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
