import numpy as np
import pandas as pd
import pytest

from deepbn import graph
from deepbn.errors import DataError
from deepbn.io.datasets import SACHS_NAMES, load_sachs, parse_sachs, sachs_consensus_adjacency
from deepbn.structure.inputs import read_truth

# the original spreadsheet spellings, tab separated, as in "1. cd3cd28"
HEADER = "praf\tpmek\tplcg\tPIP2\tPIP3\tp44/42\tpakts473\tPKA\tPKC\tP38\tpjnk"


def test_parses_the_original_column_spellings(tmp_path):
    rows = [[26.4, 13.2, 8.82, 18.3, 58.8, 6.61, 17.0, 414, 17.0, 44.9, 40.0],
            [35.9, 16.5, 12.3, 16.8, 8.13, 18.6, 32.5, 352, 3.37, 16.5, 61.5]]
    path = tmp_path / "cd3cd28.txt"
    path.write_text(HEADER + "\n" + "\n".join("\t".join(map(str, r)) for r in rows) + "\n")
    x = parse_sachs(path)
    np.testing.assert_allclose(x, np.array(rows, np.float32))
    A = sachs_consensus_adjacency()
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


# the pinned-version checks on a small table made here: the pin is swapped for one that
# describes it (3 cd3cd28 rows; cdt's stacked table = 5 rows, the condition first)
SMALL = [[26.4, 13.2, 8.82, 18.3, 58.8, 6.61, 17.0, 414, 17.0, 44.9, 40.0],
         [35.9, 16.5, 12.3, 16.8, 8.13, 18.6, 32.5, 352, 3.37, 16.5, 61.5],
         [59.4, 44.1, 14.6, 10.2, 13.0, 14.9, 32.5, 403, 11.4, 31.9, 19.5]]
OTHER = [[1.0] * 11, [2.0] * 11]  # rows of another condition, stacked after


@pytest.fixture
def small_pin(monkeypatch):
    import hashlib

    from deepbn.io import datasets

    digest = hashlib.sha256(np.array(SMALL, "<f4").tobytes()).hexdigest()
    monkeypatch.setattr(datasets, "SACHS_PIN", datasets.SachsPin(3, 5, digest))
    return datasets


def _write(path, header, rows, sep):
    path.write_text(sep.join(header) + "\n" + "".join(
        sep.join(map(str, r)) + "\n" for r in rows))
    return path


def test_pinned_loader_accepts_each_format(tmp_path, small_pin):
    want = np.log(np.array(SMALL, np.float32))
    original = HEADER.split("\t")
    files = [
        _write(tmp_path / "cd3cd28.txt", original, SMALL, "\t"),           # the spreadsheet
        _write(tmp_path / "cyto_full_data.csv", original, SMALL + OTHER, ","),  # cdt's table
        _write(tmp_path / "copy.csv", SACHS_NAMES, SMALL, ","),            # renamed copy
        _write(tmp_path / "copy.txt", SACHS_NAMES, SMALL, " "),            # space separated
    ]
    for path in files:
        x, names, A = small_pin.load_sachs(path)
        np.testing.assert_allclose(x, want, rtol=1e-6, err_msg=str(path))
    raw = small_pin.load_sachs(files[1], log_transform=False)[0]
    np.testing.assert_array_equal(raw, np.array(SMALL, np.float32))


def test_pinned_loader_refuses_another_version_in_one_line(tmp_path, small_pin):
    original = HEADER.split("\t")
    rounded = [[round(v) for v in r] for r in SMALL]
    cases = [
        (_write(tmp_path / "a.csv", original, SMALL[:2], ","), "2 data rows; expected 3"),
        (_write(tmp_path / "b.csv", original, rounded, ","), "differ from the pinned version"),
        (_write(tmp_path / "c.csv", original, SMALL[::-1], ","), "differ from the pinned"),
        (_write(tmp_path / "d.csv", original, OTHER + SMALL, ","), "differ from the pinned"),
    ]
    for path, message in cases:
        with pytest.raises(DataError, match=message) as e:
            small_pin.load_sachs(path)
        assert "\n" not in str(e.value)
    # check=False takes another version as it is
    x = small_pin.load_sachs(cases[1][0], log_transform=False, check=False)[0]
    np.testing.assert_array_equal(x, np.array(rounded, np.float32))


def test_write_sachs_command_writes_data_and_consensus(tmp_path, small_pin, capsys):
    src = _write(tmp_path / "cyto_full_data.csv", HEADER.split("\t"), SMALL + OTHER, ",")
    out = tmp_path / "sachs.csv"
    assert small_pin.main(["sachs", str(src), "--out", str(out)]) == 0
    x = pd.read_csv(out)
    assert list(x.columns) == SACHS_NAMES
    np.testing.assert_allclose(x.to_numpy(), np.log(np.array(SMALL)), rtol=1e-6)
    # the truth file reads back as the consensus DAG through discover's own reader
    A = read_truth(str(tmp_path / "sachs_consensus.csv"), SACHS_NAMES)
    np.testing.assert_array_equal(A, sachs_consensus_adjacency())
    assert A.sum() == 17 and graph.is_dag(A)
    capsys.readouterr()
    assert small_pin.main(["sachs", str(tmp_path / "sachs_consensus.csv"), "--out",
                           str(tmp_path / "y.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "no column for Raf" in err
    assert not (tmp_path / "y.csv").exists()


def test_real_pin_refuses_a_small_file(tmp_path):
    path = _write(tmp_path / "s.csv", SACHS_NAMES, SMALL, ",")
    with pytest.raises(DataError, match="3 data rows; expected 853 .* or 7466"):
        load_sachs(path)


def test_load_sachs_without_a_path_finds_an_installed_cdt(tmp_path, small_pin, monkeypatch):
    # a stand-in cdt package on sys.path, its table where the real wheel keeps it
    resources = tmp_path / "site" / "cdt" / "data" / "resources"
    resources.mkdir(parents=True)
    (tmp_path / "site" / "cdt" / "__init__.py").write_text("raise ImportError('not imported')\n")
    _write(resources / "cyto_full_data.csv", HEADER.split("\t"), SMALL + OTHER, ",")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    x = small_pin.load_sachs(log_transform=False)[0]
    np.testing.assert_array_equal(x, np.array(SMALL, np.float32))
