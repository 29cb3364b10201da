import numpy as np
import pytest

from deepbn import graph
from deepbn.errors import DataError
from deepbn.io.datasets import SACHS_NAMES, load_sachs, parse_sachs, sachs_consensus_adjacency

# the original spreadsheet spellings, tab separated, as in "1. cd3cd28"
HEADER = "praf\tpmek\tplcg\tPIP2\tPIP3\tp44/42\tpakts473\tPKA\tPKC\tP38\tpjnk"


def test_parses_the_original_column_spellings(tmp_path):
    rows = [[26.4, 13.2, 8.82, 18.3, 58.8, 6.61, 17.0, 414, 17.0, 44.9, 40.0],
            [35.9, 16.5, 12.3, 16.8, 8.13, 18.6, 32.5, 352, 3.37, 16.5, 61.5]]
    path = tmp_path / "cd3cd28.txt"
    path.write_text(HEADER + "\n" + "\n".join("\t".join(map(str, r)) for r in rows) + "\n")
    x = parse_sachs(path)
    np.testing.assert_allclose(x, np.array(rows, np.float32))
    logx, names, A = load_sachs(path)
    assert names == SACHS_NAMES
    np.testing.assert_allclose(logx, np.log(np.array(rows, np.float32)), rtol=1e-6)
    assert A.sum() == 17 and graph.is_dag(A)


def test_consensus_graph_edges():
    A = sachs_consensus_adjacency()
    idx = {n: k for k, n in enumerate(SACHS_NAMES)}
    assert A[idx["Raf"], idx["Mek"]] and A[idx["Mek"], idx["Erk"]] and A[idx["PKC"], idx["PKA"]]
    assert not A[idx["Erk"], idx["Mek"]]


def test_bad_sachs_files(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("praf,pmek\n1,2\n")
    with pytest.raises(DataError, match="no column for Plcg"):
        parse_sachs(p)
    p.write_text(HEADER.replace("\t", ",") + "\n" + ",".join(["1"] * 10) + ",x\n")
    with pytest.raises(DataError, match="non-numeric"):
        parse_sachs(p)
