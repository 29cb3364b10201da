"""What ``discover`` reads besides the data: an intervention mask and a true graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepbn import graph
from deepbn.errors import DataError
from deepbn.examples import PREFIX, load
from deepbn.io.tables import Table, match_columns, read_table


def read_truth(spec: str, names: list[str]) -> np.ndarray:
    """True DAG from a ``cause,effect`` CSV or a network (file or example:NAME)."""
    if spec.startswith(PREFIX) or spec.lower().endswith(".json"):
        net = load(spec)
        unknown = [n for n in net.names if n not in names]
        missing = [n for n in names if n not in net.names]
        if unknown or missing:
            raise DataError(
                f"{spec}: network nodes do not match the data columns "
                f"(not in data: {', '.join(unknown[:5]) or '-'}; "
                f"not in network: {', '.join(missing[:5]) or '-'})"
            )
        A = net.adjacency()
        idx = [net.names.index(n) for n in names]
        return A[np.ix_(idx, idx)]
    A = graph.read_edge_list(spec, names)
    cycle = graph.find_cycle(A)
    if cycle is not None:
        path = " -> ".join(names[k] for k in [*cycle, cycle[0]])
        raise DataError(f"{spec}: the true graph has a cycle ({path}); a DAG is needed")
    return A


def read_mask(path: Path, table: Table) -> np.ndarray:
    """Intervention mask: same columns and rows as the data, entries 0 or 1."""
    mask_table = read_table(path, allow_constant=True)
    values = match_columns(mask_table, table.names, f"the data {table.path}")
    if values.shape[0] != table.values.shape[0]:
        raise DataError(
            f"{path}: the mask has {values.shape[0]} rows but the data has "
            f"{table.values.shape[0]}; give one mask row per data row"
        )
    if not np.isin(values, (0.0, 1.0)).all():
        raise DataError(f"{path}: mask entries must be 0 or 1 (1 = intervened on)")
    if values.all(axis=0).any():
        j = int(np.flatnonzero(values.all(axis=0))[0])
        raise DataError(f"{path}: variable '{table.names[j]}' is intervened on in every sample")
    return values
