"""``hyperinflam quarantine``: counts by table and reason equal to the load's reconciliation,
the rows with their source, line, reason and fix, filters, export, and --clear-resolved.

Expected values come from tests/data/broken_csv, whose defects are known by construction (one
per line; tests/test_load_csv.py lists them), and from the corrected rows written below."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hyperinflam.cli import app
from hyperinflam.engine import connect
from hyperinflam.sources.csv import load_csv_folder

ROOT = Path(__file__).resolve().parents[1]
BROKEN = ROOT / "tests" / "data" / "broken_csv"
HYPERINFLAM = str(Path(sys.executable).with_name("hyperinflam"))

#: (table, reason) -> rows, by construction of broken_csv (29 quarantined rows in all).
BY_CONSTRUCTION = {
    ("person", "unparseable_date"): 1, ("person", "invalid_sex"): 1,
    ("person", "missing_required_value"): 1,
    ("stay", "unknown_person"): 1, ("stay", "end_before_start"): 1,
    ("stay", "unparseable_time"): 1,
    ("measurement", "unknown_unit"): 1, ("measurement", "missing_unit"): 1,
    ("measurement", "unit_needs_configuration"): 2, ("measurement", "ambiguous_value"): 1,
    ("measurement", "implausible_value"): 2, ("measurement", "unparseable_time"): 1,
    ("measurement", "unparseable_value"): 1, ("measurement", "unknown_variable"): 1,
    ("measurement", "unknown_person"): 1, ("measurement", "unknown_stay"): 1,
    ("measurement", "stay_person_mismatch"): 1, ("measurement", "duplicate_row"): 1,
    ("measurement", "missing_required_value"): 1, ("measurement", "malformed_line"): 1,
    ("drug_administration", "unknown_drug"): 1, ("drug_administration", "unknown_dose_unit"): 1,
    ("drug_administration", "end_before_start"): 1,
    ("organ_support", "unknown_support"): 1, ("organ_support", "unknown_dose_unit"): 1,
    ("condition", "invalid_boolean"): 1, ("event", "invalid_event_type"): 1,
}


def _load(db: Path, folder: Path = BROKEN, tz: str = "UTC"):
    con = connect(db)
    try:
        return load_csv_folder(con, folder, tz=tz)
    finally:
        con.disconnect()


@pytest.fixture(scope="module")
def broken_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("q") / "site.duckdb"
    report = _load(db)
    return db, report


def _rows_csv(db: Path, tmp_path: Path, *extra: str) -> list[dict]:
    out = tmp_path / "q.csv"
    result = CliRunner().invoke(app, ["quarantine", "--db", str(db), "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    with open(out, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_counts_are_the_reconciliation_figures(broken_db, tmp_path):
    db, report = broken_db
    rows = _rows_csv(db, tmp_path)
    counted: dict[tuple, int] = {}
    for row in rows:
        key = (row["table"], row["reason"])
        counted[key] = counted.get(key, 0) + 1
    assert counted == BY_CONSTRUCTION
    from_report = {(t.table, reason): n for t in report.tables for reason, n in t.reasons.items()}
    assert counted == from_report
    # the default view prints the same figures, and the total
    result = CliRunner().invoke(app, ["quarantine", "--db", str(db)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "29" in result.output
    for (table, reason), n in BY_CONSTRUCTION.items():
        line = next(l for l in result.output.splitlines() if f" {reason} " in l and table in l)
        assert f" {n} " in line, line


def test_rows_carry_file_line_reason_fix_and_the_row(broken_db, tmp_path):
    db, _ = broken_db
    rows = _rows_csv(db, tmp_path, "--reason", "unknown_unit")
    assert len(rows) == 1
    row = rows[0]
    assert Path(row["source_file"]).name == "measurement.csv" and row["line_or_key"] == "4"
    assert "furlongs" in row["fix"] and "--units" in row["fix"]
    assert json.loads(row["row_as_received"])["unit"] == "furlongs"
    result = CliRunner().invoke(app, ["quarantine", "--db", str(db), "--reason", "unknown_unit",
                                      "--list"], terminal_width=300)
    assert result.exit_code == 0, result.output
    assert "measurement.csv:4" in result.output and "furlongs" in result.output
    # the fix lists accepted spellings with braces and brackets kept: {cells}/ul
    assert "{cells}/ul" in result.output


def test_filters_by_table_file_and_reason(broken_db, tmp_path):
    db, _ = broken_db
    person = _rows_csv(db, tmp_path, "--table", "person")
    assert {r["reason"] for r in person} == {"unparseable_date", "invalid_sex",
                                              "missing_required_value"}
    by_file = _rows_csv(db, tmp_path, "--file", "drug_administration.csv")
    assert len(by_file) == 3 and {r["table"] for r in by_file} == {"drug_administration"}
    both = _rows_csv(db, tmp_path, "-t", "measurement", "-r", "implausible_value")
    assert sorted(int(r["line_or_key"]) for r in both) == [8, 20]
    parquet = tmp_path / "q.parquet"
    result = CliRunner().invoke(app, ["quarantine", "--db", str(db), "-o", str(parquet)])
    assert result.exit_code == 0, result.output
    import pyarrow.parquet as pq

    assert pq.read_table(parquet).num_rows == 29


def test_unknown_reason_table_or_format_is_one_message(broken_db):
    db, _ = broken_db
    for args, words in ((["--reason", "unkown_unit"], ["unkown_unit", "unknown_unit"]),
                        (["--table", "labs"], ["labs", "measurement"]),
                        (["--out", "q.xlsx"], [".xlsx", ".csv"])):
        result = CliRunner().invoke(app, ["quarantine", "--db", str(db), *args])
        assert result.exit_code == 2
        assert "Traceback" not in result.output
        assert all(w in result.output for w in words), result.output


def test_empty_quarantine_says_so(tmp_path):
    db = tmp_path / "clean.duckdb"
    _load(db, ROOT / "docs" / "example-csv")
    result = CliRunner().invoke(app, ["quarantine", "--db", str(db)])
    assert result.exit_code == 0 and "No quarantined rows" in result.output


def _fixed_folder(tmp_path: Path) -> Path:
    """broken_csv's good persons and stays, plus corrected versions of three quarantined rows:
    measurement.csv line 4 (unit furlongs -> 10*3/uL), drug_administration.csv line 5 and
    organ_support.csv line 4, whatever their defects are, rewritten from the raw rows."""
    folder = tmp_path / "fixed"
    folder.mkdir()
    for name in ("person.csv", "stay.csv"):
        shutil.copy(BROKEN / name, folder / name)
    lines = (BROKEN / "measurement.csv").read_text(encoding="utf-8").splitlines()
    header, line4 = lines[0], lines[3]
    assert line4.endswith(",furlongs")
    (folder / "measurement.csv").write_text(
        header + "\n" + line4.replace(",furlongs", ",10*3/uL") + "\n" + lines[14] + "\n",
        encoding="utf-8")
    return folder


def test_clear_resolved_removes_exactly_the_rows_that_have_loaded_since(tmp_path):
    db = tmp_path / "site.duckdb"
    _load(db)
    folder = _fixed_folder(tmp_path)
    report = _load(db, folder)
    assert report.counts("measurement").loaded == 1  # the corrected line 4
    result = CliRunner().invoke(app, ["quarantine", "--db", str(db), "--clear-resolved"])
    assert result.exit_code == 0, result.output
    assert "Cleared 1 resolved row" in result.output
    remaining = [r for r in _rows_csv(db, tmp_path) if Path(r["source_file"]).parent == BROKEN]
    assert len(remaining) == 28  # of broken_csv's 29
    assert not [r for r in remaining if Path(r["source_file"]).parent == BROKEN
                and Path(r["source_file"]).name == "measurement.csv" and r["line_or_key"] == "4"]
    # line 15 of broken_csv is a duplicate of line 2, whose row is in the table: it stays
    assert [r for r in remaining if r["reason"] == "duplicate_row"]
    again = CliRunner().invoke(app, ["quarantine", "--db", str(db), "--clear-resolved"])
    assert again.exit_code == 0 and "nothing cleared" in again.output


def test_clear_resolved_reads_times_in_the_time_zone_of_their_load(tmp_path):
    """Both loads in Europe/Paris: the quarantined row's time, read in Paris as its load read it,
    is the loaded row's UTC time (read in UTC it would be an hour off and never match)."""
    db = tmp_path / "paris.duckdb"
    _load(db, tz="Europe/Paris")
    _load(db, _fixed_folder(tmp_path), tz="Europe/Paris")
    con = connect(db, read_only=True)
    loaded = con.con.execute("SELECT time FROM measurement WHERE variable = 'platelets' AND "
                             "unit_original = '10*3/uL'").fetchall()
    con.disconnect()
    assert [str(t[0]) for t in loaded] == ["2024-03-01 08:00:00"]  # 09:00 in Paris (UTC+1)
    result = CliRunner().invoke(app, ["quarantine", "--db", str(db), "--clear-resolved"])
    assert result.exit_code == 0 and "Cleared 1 resolved row" in result.output


def test_clear_resolved_needs_a_writable_database(tmp_path):
    result = CliRunner().invoke(app, ["quarantine", "--db", str(tmp_path / "none.duckdb"),
                                      "--clear-resolved"])
    assert result.exit_code == 2 and "No hyperinflam database" in result.output
    assert not (tmp_path / "none.duckdb").exists()


def test_quarantine_in_a_real_process(broken_db, tmp_path):
    db, _ = broken_db
    out = tmp_path / "all.csv"
    done = subprocess.run([HYPERINFLAM, "quarantine", "--db", str(db), "--file",
                           "measurement.csv", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Wrote 16 rows" in done.stdout
    with open(out, newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 16
