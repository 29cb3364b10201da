"""Data tables in and out: a CSV with a header row of variable names.

Every problem with a table is reported as one line naming the file, the row
or column, and what to do (:class:`~deepbn.errors.DataError`).

Example:
    >>> table = read_table("data.csv")  # doctest: +SKIP
    >>> table.values.shape, table.names[:2]  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from deepbn.atomic import atomic_write
from deepbn.errors import DataError

FLOAT32_MAX = float(np.finfo(np.float32).max)


class Table(NamedTuple):
    """A numeric data table: ``values`` (n, d) float32 and the column ``names``."""

    values: np.ndarray
    names: list[str]
    path: str



def read_csv_rows(path: str | os.PathLike, what: str) -> list[list[str]]:
    """The rows of a small CSV file (edge lists, tiers, edge priors) as strings; a file that
    cannot be read, or is not text, is one :class:`DataError` naming ``what`` it should be."""
    try:
        with open(path, newline="") as f:
            return list(csv.reader(f))
    except OSError as e:
        raise DataError(f"{path}: cannot read {what} ({e.strerror})") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a CSV text file ({e})") from None

def read_table(path: str | os.PathLike, allow_constant: bool = False) -> Table:
    """Read a CSV with a header into float32 values and column names.

    Every row must have as many fields as the header (a row with one more is not
    read as an index column); a UTF-8 byte-order mark is dropped; values beyond
    float32's range are refused, naming the cell. Constant columns are rejected
    unless ``allow_constant`` (they carry no information for structure learning
    and break standardisation).
    """
    path = str(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = csv.reader(f)
            header = next(rows, None)
            if header:
                for line, row in enumerate(rows, start=2):
                    if row and len(row) != len(header):
                        raise DataError(
                            f"{path}: line {line} has {len(row)} fields, the header "
                            f"{len(header)}; every row needs one value per column")
    except FileNotFoundError:
        raise DataError(f"{path}: no such data file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder; give a CSV file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read data file ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start}); "
                        "save it as UTF-8 CSV") from None
    if not header or all(not h.strip() for h in header):
        raise DataError(f"{path}: the file is empty; expected a header row of variable names")
    names = [h.strip() for h in header]
    for k, n in enumerate(names):
        if not n:
            raise DataError(f"{path}: column {k + 1} has an empty name in the header")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"{path}: duplicate column name(s) {', '.join(dup)}; rename them")
    import pandas as pd  # here, not at the top: 0.3 s that a failing command never needs

    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True,
                          header=0, names=names, index_col=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, ValueError) as e:
        raise DataError(f"{path}: malformed CSV ({str(e).splitlines()[0]})") from None
    if len(raw) == 0:
        raise DataError(f"{path}: no data rows below the header")
    values = np.empty(raw.shape, np.float32)
    for k, n in enumerate(names):
        col = raw[n].str.strip()
        empty = (col == "") | col.str.lower().isin(["na", "nan", "null", "none"])
        if empty.any():
            row = int(np.flatnonzero(empty.to_numpy())[0]) + 2
            raise DataError(
                f"{path}: missing value in column '{n}' (line {row}); "
                "fill or drop rows with missing values"
            )
        num = pd.to_numeric(col, errors="coerce")
        bad = num.isna().to_numpy() | ~np.isfinite(num.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}: non-numeric value {col.iloc[row]!r} in column '{n}' (line {row + 2}); "
                "every cell must be a finite number"
            )
        wide = num.to_numpy(dtype=np.float64)
        outside = np.abs(wide) > FLOAT32_MAX
        if outside.any():
            row = int(np.flatnonzero(outside)[0])
            raise DataError(
                f"{path}: value {col.iloc[row]} in column '{n}' (line {row + 2}) is beyond "
                f"the float32 range (±{FLOAT32_MAX:.3g}); rescale the column")
        values[:, k] = wide.astype(np.float32)
    if not allow_constant and len(values) > 1:
        const = [n for k, n in enumerate(names) if np.all(values[:, k] == values[0, k])]
        if const:
            raise DataError(
                f"{path}: constant column(s) {', '.join(const[:5])}; "
                "drop them (they carry no information)"
            )
    return Table(values, names, path)


def _some(names: Sequence[str], k: int = 6) -> str:
    return ", ".join(names[:k]) + (" ..." if len(names) > k else "")


def match_columns(table: Table, expected: Sequence[str], what: str = "the network",
                  ignore: Sequence[str] = ()) -> np.ndarray:
    """Reorder ``table``'s columns to ``expected``; one-line error if they differ.

    Columns named in ``ignore`` (e.g. those of nodes hidden for this run) may be
    present and are left out.
    """
    if ignore:
        drop = set(ignore) - set(expected)
        keep = [k for k, n in enumerate(table.names) if n not in drop]
        table = table._replace(values=table.values[:, keep], names=[table.names[k] for k in keep])
    missing = [n for n in expected if n not in table.names]
    extra = [n for n in table.names if n not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {_some(missing)}")
        if extra:
            parts.append(f"column(s) not in {what}: {_some(extra)}")
        raise DataError(f"{table.path}: columns do not match {what}: {'; '.join(parts)}")
    index = [table.names.index(n) for n in expected]
    return table.values[:, index]


def write_table(path: str | os.PathLike, values, names: Sequence[str]) -> None:
    """Write a CSV with a header, atomically (full float32 precision)."""
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[1] != len(names):
        raise DataError(f"{path}: {values.shape} values do not fit {len(names)} column names")
    import pandas as pd

    with atomic_write(path) as f:
        pd.DataFrame(values, columns=list(names)).to_csv(f, index=False, float_format="%.9g",
                                                         lineterminator="\n")


SCALINGS = ("auto", "column", "global", "none")


def column_centers(x, mode: str) -> np.ndarray:
    """The per-column offsets :func:`scale_columns` subtracts (zeros for ``none``)."""
    x = np.asarray(x, np.float64)
    return np.zeros(x.shape[1]) if mode == "none" else x.mean(0)


def column_scales(x, mode: str) -> np.ndarray:
    """The per-column divisors :func:`scale_columns` uses (ones for ``none``)."""
    x = np.asarray(x, np.float64)
    if mode == "none":
        return np.ones(x.shape[1])
    if mode == "column":
        scale = x.std(0)
    elif mode == "global":
        scale = np.full(x.shape[1], np.sqrt(((x - x.mean(0)) ** 2).mean()))
    else:
        raise DataError(f"unknown scaling '{mode}'; use one of column, global, none")
    return np.where(scale > 0, scale, 1.0)


def scale_columns(x, mode: str, reference=None) -> np.ndarray:
    """Centre and scale data with statistics of ``reference`` (default ``x``).

    ``column``: each column to zero mean and unit variance; ``global``: each
    column centred, all divided by one pooled standard deviation (keeps the
    relative variances, which carry information about edge directions in
    equal-noise models); ``none``: unchanged.
    """
    x = np.asarray(x, np.float64)
    ref = x if reference is None else np.asarray(reference, np.float64)
    if mode == "none":
        return x.astype(np.float32)
    return ((x - column_centers(ref, mode)) / column_scales(ref, mode)).astype(np.float32)
