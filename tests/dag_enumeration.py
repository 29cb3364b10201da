"""Every directed graph and every DAG on a few nodes: the brute-force reference of the tests."""

import itertools

import numpy as np

from deepbn import graph


def all_graphs(d: int):
    """Every directed graph without self-loops on ``d`` nodes, as (d, d) bool matrices."""
    pairs = [(i, j) for i in range(d) for j in range(d) if i != j]
    for bits in itertools.product([False, True], repeat=len(pairs)):
        A = np.zeros((d, d), bool)
        for b, (i, j) in zip(bits, pairs):
            A[i, j] = b
        yield A


def all_dags(d: int):
    """Every DAG on ``d`` nodes (25 on 3, 543 on 4)."""
    return (A for A in all_graphs(d) if graph.is_dag(A))
