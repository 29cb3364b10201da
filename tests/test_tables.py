import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepbn.errors import DataError
from deepbn.io.tables import match_columns, read_table, write_table


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 20), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_write_read_round_trip(n, d, seed):
    import tempfile

    rng = np.random.default_rng(seed)
    values = (rng.normal(size=(n, d)) * 10.0 ** rng.integers(-3, 4)).astype(np.float32)
    names = [f"v{k}" for k in range(d)]
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/t.csv"
        write_table(path, values, names)
        table = read_table(path, allow_constant=True)
    assert table.names == names
    np.testing.assert_array_equal(table.values, values)


@pytest.mark.parametrize("text,message", [
    ("", "empty"),
    ("a,b\n", "no data rows"),
    ("a,b\n1,x\n", "non-numeric value 'x' in column 'b' \\(line 2\\)"),
    ("a,b\n1,2\n3,\n", "missing value in column 'b' \\(line 3\\)"),
    ("a,b\n1,2\nNA,4\n", "missing value in column 'a' \\(line 3\\)"),
    ("a,b\n1,2\n1,3\n", "constant column\\(s\\) a"),
    ("a,a\n1,2\n3,4\n", "duplicate column name\\(s\\) a"),
    ("a,b\n1,inf\n2,3\n", "non-numeric value 'inf'"),
    ("a,,c\n1,2,3\n", "column 2 has an empty name"),
])
def test_bad_tables(tmp_path, text, message):
    path = tmp_path / "d.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as e:
        read_table(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_missing_file_and_column_matching(tmp_path):
    with pytest.raises(DataError, match="no such data file"):
        read_table(tmp_path / "none.csv")
    path = tmp_path / "d.csv"
    path.write_text("b,a,c\n1,2,3\n4,5,7\n")
    table = read_table(path)
    np.testing.assert_array_equal(match_columns(table, ["a", "b", "c"]), [[2, 1, 3], [5, 4, 7]])
    with pytest.raises(DataError, match="missing column\\(s\\) d; column\\(s\\) not in"):
        match_columns(table, ["a", "b", "d"])


def test_atomic_write_leaves_no_partial_file(tmp_path):
    path = tmp_path / "out.csv"
    write_table(path, np.ones((2, 2)), ["a", "b"])
    before = path.read_text()
    with pytest.raises(DataError):
        write_table(path, np.ones((2, 3)), ["a", "b"])
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_a_byte_order_mark_is_not_part_of_the_first_name(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffx1,x2\n1,2\n3,4\n".encode("utf-8"))
    table = read_table(path)
    assert table.names == ["x1", "x2"]
    np.testing.assert_array_equal(table.values, [[1, 2], [3, 4]])


@pytest.mark.parametrize("text, message", [
    ("a,b\n1,2\n3,4,5\n", "line 3 has 3 fields, the header 2"),  # not an index column
    ("a,b\n1\n3,4\n", "line 2 has 1 fields, the header 2"),
    ("a,b\n1,-4e38\n3,4\n", "beyond the float32 range"),
])
def test_row_widths_and_float32_range_are_checked(tmp_path, text, message):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_table(path)


def test_written_files_get_the_umask_mode_not_0600(tmp_path):
    import os

    old = os.umask(0o027)
    try:
        write_table(tmp_path / "t.csv", np.zeros((2, 2)), ["a", "b"])
    finally:
        os.umask(old)
    assert (tmp_path / "t.csv").stat().st_mode & 0o777 == 0o640
