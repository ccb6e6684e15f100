"""Loads are all or nothing (issue 12 item 10): a load that stops leaves the database exactly as
it was, whichever file, reader or step stops it.

Each test fills a DuckDB file with an earlier load, takes a snapshot of every table in it (all
rows, sorted), runs a load that stops part-way (a bad file after good ones, a file the engine
cannot read, an interrupt), and compares the snapshot after with the one before. The expected
counts of the repeated, good load are counted here from the files with the csv module and
pyarrow, independently of the readers.
"""

from __future__ import annotations

import csv
import shutil
import struct
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hyperinflam.engine import connect
from hyperinflam.errors import SourceError
from hyperinflam.sources.csv import load_csv_folder
from hyperinflam.sources.meds import load_meds
from hyperinflam.sources.omop.mapping import load_omop

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "example-csv"
EUNOMIA = ROOT / "tests" / "data" / "eunomia_synthea27nj"
MEDS = ROOT / "tests" / "data" / "mimic_iv_demo_meds" / "mimic_iv_demo_meds_events.parquet"
LOAD_ORDER = ("person", "stay", "measurement", "drug_administration", "organ_support",
              "condition", "event")


def _snapshot(raw) -> dict[str, list[tuple]]:
    """Every table of the database file (not the connection's temporary ones), rows sorted."""
    catalog = raw.execute("SELECT current_database()").fetchone()[0]
    tables = [t for (t,) in raw.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND NOT temporary "
        "ORDER BY 1", [catalog]).fetchall()]
    return {t: sorted(raw.execute(f'SELECT * FROM "{catalog}".main."{t}"').fetchall(), key=repr)
            for t in tables}


def _nothing_left_over(raw) -> None:
    """After a load, the connection reads the database's own tables again."""
    temp = raw.execute("SELECT table_name FROM duckdb_tables() WHERE temporary UNION ALL "
                       "SELECT view_name FROM duckdb_views() WHERE temporary").fetchall()
    load = ("_hi_new_", "_hi_forget_", "_hi_stg", "_hi_chk", "_hi_dups", "_hi_fin")
    left = [t for (t,) in temp if t in LOAD_ORDER or t == "quarantine" or t.startswith(load)]
    assert left == []


def _renamed_example(out: Path) -> Path:
    """docs/example-csv with other person and stay ids: a second hospital's good folder."""
    out.mkdir()
    for f in EXAMPLE.glob("*.csv"):
        text = f.read_text(encoding="utf-8")
        (out / f.name).write_text(text.replace("P00", "Q00").replace("S00", "T00"),
                                  encoding="utf-8")
    return out


def _data_rows(path: Path) -> int:
    with open(path, newline="", encoding="utf-8") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


@pytest.fixture()
def site(tmp_path):
    """A database file holding an earlier load (docs/example-csv), and its snapshot."""
    con = connect(tmp_path / "site.duckdb")
    load_csv_folder(con, EXAMPLE)
    yield con, _snapshot(con.con)
    con.disconnect()


def test_a_bad_file_after_good_ones_writes_nothing_and_the_retry_loads_everything(site, tmp_path):
    con, before = site
    folder = _renamed_example(tmp_path / "second")
    good_condition = (folder / "condition.csv").read_text(encoding="utf-8")
    # condition.csv is read after person, stay, measurement, drug_administration, organ_support
    (folder / "condition.csv").write_text("person_id,condition\nQ001,splenomegaly\n",
                                          encoding="utf-8")
    with pytest.raises(SourceError, match=r"condition\.csv line 1: missing required column"):
        load_csv_folder(con, folder)
    assert _snapshot(con.con) == before
    _nothing_left_over(con.con)

    # The retry with the file corrected loads every row: nothing reads "already present".
    (folder / "condition.csv").write_text(good_condition, encoding="utf-8")
    report = load_csv_folder(con, folder)
    for table in LOAD_ORDER:
        counts = report.counts(table)
        assert (counts.read, counts.loaded, counts.already_present) == \
            (_data_rows(folder / f"{table}.csv"), _data_rows(folder / f"{table}.csv"), 0), table
    after = _snapshot(con.con)
    for table in LOAD_ORDER:
        # every line of the table (event: also the infections derived from diagnoses)
        loaded = sum(t.loaded for t in report.tables if t.table == table)
        assert len(after[table]) == len(before[table]) + loaded


def test_an_interrupt_during_the_last_file_writes_nothing(site, tmp_path):
    con, before = site
    folder = _renamed_example(tmp_path / "second")

    def progress(table: str) -> None:
        if table == "event":  # Ctrl-C while the last file loads
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        load_csv_folder(con, folder, progress=progress)
    assert _snapshot(con.con) == before
    _nothing_left_over(con.con)


def test_omop_a_broken_table_after_good_ones_writes_nothing(site, tmp_path):
    con, before = site
    folder = tmp_path / "omop"
    shutil.copytree(EUNOMIA / "omop", folder)
    # drug_exposure is mapped after person, visits and measurement. Its data pages are
    # overwritten and its footer (schema, row counts) kept: the table is found and checked, and
    # DuckDB stops only when the rows are read.
    path = folder / "drug_exposure.parquet"
    data = bytearray(path.read_bytes())
    footer = struct.unpack("<I", data[-8:-4])[0]  # Parquet: footer length, then b"PAR1"
    data[4:len(data) - footer - 8] = b"Z" * (len(data) - footer - 12)
    path.write_bytes(bytes(data))
    with pytest.raises(SourceError, match=r"OMOP table drug_exposure cannot be read"):
        load_omop(con, folder)
    assert _snapshot(con.con) == before
    _nothing_left_over(con.con)

    report = load_omop(con, EUNOMIA / "omop")  # the intact export: every person is new
    persons = pq.read_table(EUNOMIA / "omop" / "person.parquet").num_rows
    assert (report.counts("person").loaded, report.counts("person").already_present) == \
        (persons, 0)


def test_meds_an_interrupt_after_persons_and_stays_writes_nothing(site):
    con, before = site

    def progress(step: str) -> None:
        if step == "measurement":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        load_meds(con, MEDS, all_icu=True, max_age_years=None, progress=progress)
    assert _snapshot(con.con) == before
    _nothing_left_over(con.con)


def test_bookkeeping_at_the_commit_sees_the_load_and_fails_with_it(site, tmp_path):
    from hyperinflam.sources.atomic import on_commit

    con, before = site
    raw = con.con
    seen = []

    def register(table: str) -> None:
        if table == "person":  # e.g. the load log, written once per load
            on_commit(raw, lambda: seen.append(raw.execute(
                "SELECT count(*) FROM person").fetchone()[0]))
            on_commit(raw, lambda: (_ for _ in ()).throw(OSError("disk full")))

    with pytest.raises(OSError, match="disk full"):
        load_csv_folder(con, _renamed_example(tmp_path / "second"), progress=register)
    # the first step ran inside the final transaction: the 2 earlier + 2 new persons
    assert seen == [len(before["person"]) + _data_rows(EXAMPLE / "person.csv")] == [4]
    assert _snapshot(raw) == before
    _nothing_left_over(raw)
