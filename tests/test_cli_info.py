"""``hyperinflam info`` and the load log every reader writes: tables and row counts, loads with
their dates, time zone and version, domains, quarantine counts. Expected counts are read from
the database with DuckDB directly, or known by construction of the fixtures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from hyperinflam import __version__
from hyperinflam.cli import app
from hyperinflam.engine import connect
from hyperinflam.schema import ALL_TABLES
from hyperinflam.sources.csv import load_csv_folder
from hyperinflam.sources.meds import load_meds

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "example-csv"
BROKEN = ROOT / "tests" / "data" / "broken_csv"
MEDS = ROOT / "tests" / "data" / "mimic_iv_demo_meds"
HYPERINFLAM = str(Path(sys.executable).with_name("hyperinflam"))


@pytest.fixture(scope="module")
def two_loads(tmp_path_factory):
    db = tmp_path_factory.mktemp("info") / "site.duckdb"
    con = connect(db)
    first = load_csv_folder(con, EXAMPLE, tz="Europe/Amsterdam")
    second = load_csv_folder(con, BROKEN)
    con.disconnect()
    return db, first, second


def test_load_log_holds_each_table_of_each_load(two_loads):
    db, first, second = two_loads
    raw = duckdb.connect(str(db), read_only=True)
    rows = raw.execute("SELECT load_id, reader, source, target_table, table_source, time_zone, "
                       "hyperinflam_version, rows_read, rows_loaded, rows_already_present, "
                       "rows_quarantined FROM load_log ORDER BY load_id, target_table, table_source"
                       ).fetchall()
    raw.close()
    expected = sorted(
        (load_id, "csv", report.source, t.table, t.source, tz, __version__, t.read, t.loaded,
         t.already_present, t.quarantined)
        for load_id, report, tz in ((1, first, "Europe/Amsterdam"), (2, second, "UTC"))
        for t in report.tables)
    assert rows == expected


def test_info_shows_tables_loads_domains_and_quarantine(two_loads):
    db, first, second = two_loads
    result = CliRunner().invoke(app, ["info", "--db", str(db)], terminal_width=250)
    assert result.exit_code == 0, result.output
    out = result.output
    raw = duckdb.connect(str(db), read_only=True)
    for table in ALL_TABLES:
        n = raw.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0]
        line = next(l for l in out.splitlines() if f" {table.name} " in l)
        assert f" {n:,} " in line, line
    loaded_at = raw.execute("SELECT max(loaded_at) FROM load_log WHERE load_id = 2").fetchone()[0]
    variables = [r[0] for r in raw.execute("SELECT DISTINCT variable FROM measurement").fetchall()]
    raw.close()
    assert f"hyperinflam {__version__}" in out
    assert "2 loads" in out and "#1" in out and "#2" in out
    assert f"{loaded_at:%Y-%m-%d %H:%M:%S} UTC" in out
    assert "--tz Europe/Amsterdam" in out and str(EXAMPLE.resolve()) in out
    assert f"quarantined {sum(t.quarantined for t in second.tables):,}" in out
    for variable in variables:
        assert f" {variable} " in out
    assert "Quarantine (29 rows)" in out  # broken_csv: 29 by construction
    assert "hyperinflam quarantine --db" in out


def test_info_of_a_meds_load_names_its_reader(tmp_path):
    db = tmp_path / "meds.duckdb"
    con = connect(db)
    load_meds(con, MEDS / "mimic_iv_demo_meds_events.parquet", all_icu=True, max_age_years=None)
    con.disconnect()
    result = CliRunner().invoke(app, ["info", "--db", str(db)], terminal_width=250)
    assert result.exit_code == 0, result.output
    assert " meds " in result.output and "mimic_iv_demo_meds_events.parquet" in result.output


def test_info_of_a_new_database_says_it_holds_no_stays(tmp_path):
    db = tmp_path / "new.duckdb"
    connect(db).disconnect()
    result = CliRunner().invoke(app, ["info", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "holds no PICU stays" in result.output and "No loads recorded yet" in result.output


def test_info_of_a_database_written_before_the_load_log(tmp_path):
    db = tmp_path / "old.duckdb"
    raw = duckdb.connect(str(db))
    for table in ALL_TABLES:  # the tables of a database without load_log
        raw.execute(table.ddl())
    raw.close()
    result = CliRunner().invoke(app, ["info", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "No load log" in result.output
    assert "load_log" in result.output and "absent" in result.output


def test_info_of_a_missing_database_names_the_path(tmp_path):
    result = CliRunner().invoke(app, ["info", "--db", str(tmp_path / "nowhere.duckdb")])
    assert result.exit_code == 2 and "nowhere.duckdb" in result.output
    assert "Traceback" not in result.output


def test_info_in_a_real_process(two_loads):
    db, _, _ = two_loads
    done = subprocess.run([HYPERINFLAM, "info", "--db", str(db)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Tables" in done.stdout and "Loads (2 loads" in done.stdout
