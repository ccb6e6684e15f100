"""OMOP exports as they exist (issue 12 item 7): the real Eunomia extract (tests/data/
eunomia_synthea27nj) rewritten at test time with one oddity real exports have (upper-case column
names, every number stored as text, DATE values in the *_datetime columns, tables missing, empty
tables as a CSV header only) loads like the pristine extract and the load names the oddity.

The expected canonical tables are those of the pristine extract, whose counts tests/test_load_omop
checks against the raw files; counts here are taken from the files with pyarrow.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from hyperinflam.engine import connect_memory
from hyperinflam.schema import TABLES_BY_NAME
from hyperinflam.sources.omop.mapping import load_omop

EUNOMIA = Path(__file__).resolve().parent / "data" / "eunomia_synthea27nj"
CANONICAL = ("person", "stay", "measurement", "drug_administration", "organ_support",
             "condition", "event")
#: Tables the reader reads (sources/omop/access.py REQUIRED_COLUMNS), as the oddities name them.
DROPPED = ("death", "measurement", "condition_occurrence", "drug_exposure", "visit_detail",
           "observation", "procedure_occurrence", "device_exposure", "care_site")


@pytest.fixture(scope="module")
def codes(tmp_path_factory) -> Path:
    """Eunomia's children have ER visits only: count them as fallback stays (a site file)."""
    path = tmp_path_factory.mktemp("codes") / "site_codes.csv"
    path.write_text("kind,target,system,code,concept_id,unit_when_missing,display,status,"
                    "reference\ninpatient_visit,er,Visit,ER,9203,,,,test site\n")
    return path


def _tables(con) -> dict[str, list[tuple]]:
    out = {}
    for table in CANONICAL:
        cols = ", ".join(TABLES_BY_NAME[table].column_names)
        out[table] = sorted(con.con.execute(f"SELECT {cols} FROM {table}").fetchall(), key=repr)
    return out


@pytest.fixture(scope="module")
def pristine(codes):
    con = connect_memory()
    report = load_omop(con, EUNOMIA / "omop", codes=codes)
    return _tables(con), report


def _rewrite(folder: Path, change) -> Path:
    folder.mkdir()
    for file in sorted((EUNOMIA / "omop").glob("*.parquet")):
        table = change(file.stem, pq.read_table(file))
        if table is not None:
            pq.write_table(table, folder / file.name)
    return folder


def _upper(name: str, table: pa.Table) -> pa.Table:
    return table.rename_columns([c.upper() for c in table.column_names])


def _text(name: str, table: pa.Table) -> pa.Table:
    return pa.table({c: pc.cast(table[c], pa.string()) for c in table.column_names})


def _dates(name: str, table: pa.Table) -> pa.Table:
    """Every *_datetime column as DATE (what many ETLs write when the source has dates only)."""
    return pa.table({c: pc.cast(table[c], pa.date32())
                     if c.endswith("_datetime") and pa.types.is_timestamp(table[c].type)
                     else table[c] for c in table.column_names})


def _midnight(rows: dict[str, list[tuple]]) -> dict[str, int]:
    return {t: len(r) for t, r in rows.items()}


@pytest.mark.parametrize("oddity, change, said", [
    ("upper-case column names", _upper, "column names in upper or mixed case"),
    ("numbers stored as text", _text, "numbers stored as text"),
])
def test_same_tables_as_the_pristine_extract(tmp_path, codes, pristine, oddity, change, said):
    expected, _ = pristine
    con = connect_memory()
    report = load_omop(con, _rewrite(tmp_path / "odd", change), codes=codes)
    assert report.reconciles
    assert _tables(con) == expected
    assert any(said in n for n in report.notes), report.notes


def test_the_pristine_extract_has_no_false_oddity(pristine):
    """The typed Eunomia Parquet has text columns named *_id (concept.vocabulary_id): not numbers
    stored as text; its two empty tables are named (SOURCE.md: care_site, concept_ancestor)."""
    _, report = pristine
    assert not any("numbers stored as text" in n or "upper or mixed case" in n
                   or "dates without a time" in n for n in report.notes), report.notes
    empty = [n for n in report.notes if n.startswith("empty tables")]
    assert empty and "care_site" in empty[0] and "concept_ancestor" in empty[0]


def test_dates_in_datetime_columns_read_as_midnight(tmp_path, codes, pristine):
    expected, _ = pristine
    con = connect_memory()
    report = load_omop(con, _rewrite(tmp_path / "odd", _dates), codes=codes)
    assert report.reconciles
    got = _tables(con)
    # nothing is lost: every table has the pristine number of rows
    assert {t: len(r) for t, r in got.items()} == {t: len(r) for t, r in expected.items()}
    # every measurement time is its date at 00:00 (pyarrow: measurement_date of the raw file)
    meas = pq.read_table(EUNOMIA / "omop" / "measurement.parquet")
    times = {r[0] for r in con.con.execute("SELECT DISTINCT CAST(time AS TIME) FROM measurement"
                                           ).fetchall()}
    assert {str(t) for t in times} == {"00:00:00"}
    dates = {d.isoformat() for d in meas["measurement_date"].to_pylist()}
    loaded = {r[0].date().isoformat() for r in con.con.execute("SELECT time FROM measurement")
              .fetchall()}
    assert loaded <= dates
    said = [n for n in report.notes if "dates without a time" in n]
    assert said and "measurement.measurement_datetime" in said[0]


def test_missing_tables_are_named(tmp_path, codes):
    con = connect_memory()
    folder = _rewrite(tmp_path / "odd", lambda name, t: None if name in DROPPED else t)
    report = load_omop(con, folder, codes=codes)
    assert report.reconciles
    persons = pq.read_metadata(EUNOMIA / "omop" / "person.parquet").num_rows
    assert con.con.execute("SELECT count(*) FROM person").fetchone()[0] == persons
    text = " ".join(report.notes)
    for table in DROPPED:
        assert table in text, table
    for table in ("measurement", "drug_administration", "organ_support", "condition", "event"):
        assert con.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0


def test_header_only_csv_is_an_empty_table(tmp_path, codes, pristine):
    expected, _ = pristine
    folder = tmp_path / "csv"
    shutil.copytree(EUNOMIA / "csv", folder)
    emptied = ("condition_occurrence", "death", "drug_exposure")
    for name in emptied:
        path = folder / f"{name}.csv"
        path.write_text(path.read_text().splitlines()[0] + "\n")
    con = connect_memory()
    report = load_omop(con, folder, codes=codes)
    assert report.reconciles
    got = _tables(con)
    assert got["condition"] == [] and got["drug_administration"] == []
    # no death, no diagnosis: the events left are the cultures of measurement.csv (tests for
    # infection, the 6 throat cultures of tests/test_load_omop.py), as in the whole extract
    cultures = [r for r in expected["event"] if r[2] == "infection_test"]
    assert len(cultures) == 6 and got["event"] == cultures
    assert got["measurement"] == expected["measurement"] and got["stay"] == expected["stay"]
    said = [n for n in report.notes if n.startswith("empty tables")]
    assert said and all(name in said[0] for name in emptied), report.notes


def test_upper_case_tables_and_columns_in_postgresql(codes, pristine):
    """PostgreSQL keeps quoted upper-case names ("PERSON"."PERSON_ID", as some ETLs create them):
    the load matches them without regard to case and says so (PostgreSQL 127.0.0.1:5432, as
    tests/test_load_omop)."""
    import uuid

    import duckdb

    from hyperinflam.sources.omop.access import load_postgres_extension

    url = "postgresql://postgres@127.0.0.1:5432/postgres"
    schema = f"hi_upper_{uuid.uuid4().hex[:10]}"
    pg = duckdb.connect()
    load_postgres_extension(pg)
    try:
        pg.execute(f"ATTACH '{url}' AS pg (TYPE postgres)")
    except duckdb.Error as exc:
        pytest.fail(f"PostgreSQL at {url} is required for this test: {exc}")
    pg.execute(f"CALL postgres_execute('pg', 'CREATE SCHEMA {schema}')")
    try:
        for file in sorted((EUNOMIA / "omop").glob("*.parquet")):
            cols = ", ".join(f'"{c}" AS "{c.upper()}"' for c in pq.read_schema(file).names)
            pg.execute(f"CREATE TABLE pg.{schema}.\"{file.stem.upper()}\" AS SELECT {cols} "
                       f"FROM read_parquet('{file}')")
        expected, _ = pristine
        con = connect_memory()
        report = load_omop(con, url, schema=schema, codes=codes)
        assert report.reconciles
        assert _tables(con) == expected
        assert any("column names in upper or mixed case (CARE_SITE.CARE_SITE_ID" in n
                   for n in report.notes), report.notes
    finally:
        pg.execute(f"CALL postgres_execute('pg', 'DROP SCHEMA {schema} CASCADE')")
        pg.close()


def test_semicolon_separated_csv_export(tmp_path, codes, pristine):
    """A European export: the Eunomia CSVs rewritten with ';' (the csv module) load the pristine
    tables (issue 12 item 10: a semicolon-separated CSV is recognised)."""
    import csv

    folder = tmp_path / "semicolon"
    folder.mkdir()
    for path in sorted((EUNOMIA / "csv").glob("*.csv")):
        with path.open(newline="") as src, (folder / path.name).open("w", newline="") as out:
            csv.writer(out, delimiter=";").writerows(csv.reader(src))
    expected, _ = pristine
    con = connect_memory()
    report = load_omop(con, folder, codes=codes)
    assert report.reconciles
    assert _tables(con) == expected
