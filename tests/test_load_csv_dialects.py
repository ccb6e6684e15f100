"""CSV files as sites save them (issue 12 item 10): semicolon- and tab-separated files, a file
holding only its header, a file without a header, a byte that is not UTF-8.

The files are docs/example-csv rewritten with Python's csv module; what each load must give is
the comma-separated load of the same rows (another reader path), or counted here by hand.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hyperinflam.cli import app
from hyperinflam.engine import connect_memory
from hyperinflam.errors import SourceError
from hyperinflam.schema import TABLES_BY_NAME
from hyperinflam.sources.csv import load_csv_folder

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "example-csv"
TABLES = ("person", "stay", "measurement", "drug_administration", "organ_support", "condition",
          "event")


def _rewrite(out: Path, delimiter: str = ",") -> Path:
    """docs/example-csv with another field separator (values unchanged; LF line endings)."""
    out.mkdir()
    for f in EXAMPLE.glob("*.csv"):
        with open(f, newline="", encoding="utf-8") as src:
            rows = list(csv.reader(src))
        with open(out / f.name, "w", newline="", encoding="utf-8") as dst:
            csv.writer(dst, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out


def _tables(con) -> dict[str, list[tuple]]:
    out = {}
    for t in TABLES:
        cols = ", ".join(TABLES_BY_NAME[t].column_names)
        out[t] = con.con.execute(f"SELECT {cols} FROM {t} ORDER BY ALL").fetchall()
    return out


def _rows(path: Path) -> int:
    with open(path, newline="", encoding="utf-8") as handle:
        return sum(1 for _ in handle) - 1


@pytest.mark.parametrize("delimiter, name", [(";", "semicolon"), ("\t", "tab")])
def test_semicolon_and_tab_separated_files_load_like_the_comma_ones(tmp_path, delimiter, name):
    comma = connect_memory()
    load_csv_folder(comma, EXAMPLE)
    con = connect_memory()
    report = load_csv_folder(con, _rewrite(tmp_path / name, delimiter))
    assert report.reconciles
    assert _tables(con) == _tables(comma)
    for t in TABLES:
        assert report.counts(t).loaded == _rows(EXAMPLE / f"{t}.csv")
    note = next(n for n in report.notes if f"separated by a {name}" in n)
    assert "person.csv" in note and "event.csv" in note


def test_a_decimal_comma_in_a_semicolon_file_is_quarantined_not_guessed(tmp_path):
    folder = _rewrite(tmp_path / "semicolon", ";")
    with open(folder / "measurement.csv", "a", newline="", encoding="utf-8") as handle:
        handle.write("P001;S001;2024-03-02 06:00;crp;12,5;mg/L\n")  # line 15 (13 rows + header)
    con = connect_memory()
    report = load_csv_folder(con, folder)
    m = report.counts("measurement")
    assert (m.read, m.loaded, m.quarantined) == (14, 13, 1)
    line, reason, detail = con.con.execute(
        "SELECT source_line, reason, detail FROM quarantine").fetchone()
    assert (line, reason) == (15, "unparseable_value")
    assert "12,5" in detail and "decimal separator" in detail


def test_a_file_holding_only_its_header_is_an_empty_table(tmp_path):
    folder = _rewrite(tmp_path / "folder")
    header = (folder / "measurement.csv").read_text(encoding="utf-8").splitlines()[0]
    (folder / "measurement.csv").write_text(header + "\n", encoding="utf-8")
    (folder / "event.csv").write_text("person_id,event_type,time", encoding="utf-8")  # no newline
    con = connect_memory()
    report = load_csv_folder(con, folder)
    assert report.reconciles
    for t in ("measurement", "event"):
        c = report.counts(t)
        assert (c.read, c.loaded, c.quarantined) == (0, 0, 0)
    assert report.counts("stay").loaded == _rows(EXAMPLE / "stay.csv") == 2


def test_a_file_without_a_header_is_one_clear_error(tmp_path):
    folder = _rewrite(tmp_path / "folder")
    lines = (folder / "stay.csv").read_text(encoding="utf-8").splitlines()
    (folder / "stay.csv").write_text("\n".join(lines[1:]) + "\n", encoding="utf-8")
    with pytest.raises(SourceError) as error:
        load_csv_folder(connect_memory(), folder)
    message = str(error.value)
    assert f"{folder / 'stay.csv'} line 1: no header line" in message
    assert lines[1][:40] in message                                   # what line 1 holds
    assert "stay_id,person_id,admit_time" in message                  # the fix
    result = CliRunner().invoke(app, ["load", "csv", str(folder), "--db",
                                      str(tmp_path / "x.duckdb")])
    assert result.exit_code == 2
    assert "no header line" in result.output and "Traceback" not in result.output


def test_a_semicolon_header_missing_a_column_names_the_separator(tmp_path):
    folder = _rewrite(tmp_path / "folder")
    (folder / "person.csv").write_text("person_id;birth_date\nP001;2016-05-12\n",
                                       encoding="utf-8")
    with pytest.raises(SourceError, match=r"person\.csv line 1: missing required column\(s\) sex "
                                          r"\(the header read with semicolons between fields\)"):
        load_csv_folder(connect_memory(), folder)


def test_a_byte_that_is_not_utf8_quarantines_its_line_only(tmp_path):
    folder = _rewrite(tmp_path / "folder")
    with open(folder / "organ_support.csv", "ab") as handle:  # Latin-1 'µ': line 8 (6 rows)
        handle.write(b"P001,S001,dopamine,2024-03-02 10:00,,5,\xb5g/kg/min\n")
    con = connect_memory()
    report = load_csv_folder(con, folder)
    o = report.counts("organ_support")
    assert (o.read, o.loaded, o.quarantined) == (7, 6, 1)
    assert con.con.execute("SELECT source_line, reason FROM quarantine").fetchall() == \
        [(8, "malformed_line")]


def test_line_endings_that_change_within_a_file_are_named_as_the_likely_cause(tmp_path):
    folder = _rewrite(tmp_path / "folder")
    text = (folder / "stay.csv").read_text(encoding="utf-8")
    (folder / "stay.csv").write_bytes(text.replace("\n", "\r\n", 2).encode("utf-8"))
    with pytest.raises(SourceError, match=r"stay\.csv: cannot be read .*line endings that change"):
        load_csv_folder(connect_memory(), folder)
