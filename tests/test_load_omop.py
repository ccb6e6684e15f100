"""OMOP CDM reader (issue 5 items 2, 5, 7) on the real Eunomia Synthea27Nj data.

The data are the extract in tests/data/eunomia_synthea27nj (8 of the 28 persons, all 5 children;
its SOURCE.md). Counts are computed independently from the Parquet files with pyarrow; the
literals beside them were counted with DuckDB over the raw extract (the query is in the comment);
the same data from Parquet, CSV, a DuckDB file built from the official DDL and PostgreSQL give
identical tables.
"""

from __future__ import annotations

import uuid
from importlib import resources
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from hyperinflam.engine import connect_memory
from hyperinflam.errors import SourceError
from hyperinflam.schema import TABLES_BY_NAME
from hyperinflam.sources.omop.access import load_postgres_extension
from hyperinflam.sources.omop.mapping import OmopOptions, load_omop

EUNOMIA = Path(__file__).resolve().parent / "data" / "eunomia_synthea27nj"
#: The official CDM 5.4 DDL as shipped in the package (hyperinflam/omop_cdm54/SOURCE.md).
DDL = Path(str(resources.files("hyperinflam") / "omop_cdm54" / "ddl"))
PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CANONICAL = ("person", "stay", "measurement", "drug_administration", "organ_support",
             "condition", "event")


def _codes_with_er(tmp_path: Path) -> Path:
    """A site codes file (--codes): Eunomia's children have ER visits only; count them as
    fallback stays so that screen has stays to evaluate."""
    path = tmp_path / "site_codes.csv"
    path.write_text("kind,target,vocabulary_id,concept_code,concept_id,reference\n"
                    "inpatient_visit,er,Visit,ER,9203,test site: ER visits as fallback stays\n")
    return path


def _tables(con) -> dict:
    out = {}
    for t in CANONICAL:
        cols = TABLES_BY_NAME[t].column_names
        df = con.con.execute(f"SELECT * FROM {t}").fetchdf()
        out[t] = df.sort_values(cols, na_position="first").reset_index(drop=True)
    return out


def _parquet(name: str):
    return pq.read_table(EUNOMIA / "omop" / f"{name}.parquet")


def _build_duckdb(path: Path) -> None:
    ddl = (DDL / "duckdb" / "omopcdm_duckdb_5.4_ddl.sql").read_text()
    con = duckdb.connect(str(path))
    con.execute(ddl.replace("@cdmDatabaseSchema", "main"))
    for file in sorted((EUNOMIA / "omop").glob("*.parquet")):
        con.execute(f"INSERT INTO {file.stem} BY NAME SELECT * FROM read_parquet('{file}')")
    con.close()


@pytest.fixture(scope="module")
def parquet_load(tmp_path_factory):
    codes = _codes_with_er(tmp_path_factory.mktemp("codes"))
    con = connect_memory()
    report = load_omop(con, EUNOMIA / "omop", codes=codes)
    return con, report, codes


def test_counts_reconcile_and_match_parquet(parquet_load):
    con, report, _ = parquet_load
    assert report.reconciles
    # The literals: DuckDB over the extract, SELECT count(*) FROM 'omop/person.parquet' (8) and
    # 'omop/measurement.parquet' (2415); tests/data/eunomia_synthea27nj/SOURCE.md lists them.
    person = _parquet("person")
    assert report.counts("person").read == person.num_rows == 8
    assert report.counts("person").loaded == 8
    meas = _parquet("measurement")
    m = report.tables[[t.table for t in report.tables].index("measurement")]
    # the 6 throat cultures are events, not measurements (test_cultures_are_tests_for_infection)
    assert m.read + EUNOMIA_CULTURES == meas.num_rows == 2415
    # ferritin: 12 rows, ug/L (unit_concept_id 8748) -> ng/mL x 1 (clinical reference 11.1)
    ferritin = meas.filter(pc.equal(meas["measurement_concept_id"], 3001122))
    got = con.con.execute("SELECT value, value_original, unit_original FROM measurement "
                          "WHERE variable = 'ferritin' ORDER BY time, value").fetchall()
    assert len(got) == ferritin.num_rows == 12
    assert sorted(v for v, _, _ in got) == sorted(float(x) for x in
                                                  ferritin["value_as_number"].to_pylist())
    assert {u for _, _, u in got} == {"ug/L"}
    # AST: unit_concept_id 0, unit from unit_source_value 'U/L' (... WHERE measurement_concept_id
    # = 3013721: 12 rows, all of person 11)
    ast = meas.filter(pc.equal(meas["measurement_concept_id"], 3013721))
    assert set(ast["unit_concept_id"].to_pylist()) == {0}
    n_ast = con.con.execute("SELECT count(*) FROM measurement WHERE variable = 'ast'").fetchone()[0]
    assert n_ast == ast.num_rows == 12
    assert {r[0] for r in con.con.execute("SELECT DISTINCT unit_original FROM measurement "
                                          "WHERE variable = 'ast'").fetchall()} == {"U/L"}
    # unknown concepts are quarantined, never dropped
    import csv
    from importlib import resources
    with resources.files("hyperinflam.vocabulary").joinpath("codes.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["kind"] == "measurement"
                and r["system"] != "MEDS"]
    codes = {r["code"] for r in rows if r["code"]}
    concept = _parquet("concept").to_pandas()
    known = {int(r["concept_id"]) for r in rows if r["concept_id"]} | set(
        concept[concept["vocabulary_id"].eq("LOINC") & concept["concept_code"].isin(codes)]["concept_id"])
    frame = meas.to_pandas()
    unknown = int((~frame["measurement_concept_id"].isin(known)
                   & ~frame["measurement_source_value"].isin(codes)
                   & (frame["value_as_number"].notna()  # a value, or a numeric verbatim value
                      | pd.to_numeric(frame["value_source_value"], errors="coerce").notna())).sum())
    assert m.reasons["unknown_variable"] == unknown
    assert report.counts("event").loaded == _parquet("death").num_rows == 2  # persons 11 and 23
    assert report.counts("condition").read == _parquet("condition_occurrence").num_rows
    q = con.con.execute("SELECT count(*) FROM quarantine WHERE target_table = 'measurement'"
                        ).fetchone()[0]
    assert q == m.quarantined


#: Eunomia's cultures: DuckDB over the extract's CSVs, SELECT count(*) FROM
#: 'csv/measurement.csv' WHERE measurement_concept_id = 4024958 (6 rows of persons 3, 6, 11, 23;
#: 'csv/concept.csv' names 4024958 SNOMED 117015009 Throat culture, a culture code of
#: vocabulary/codes.csv). No other measurement or observation concept of the extract is one.
EUNOMIA_CULTURES = 6


def test_cultures_are_tests_for_infection(parquet_load):
    """A culture is a test for infection ordered (clinical reference §5.1, §12.43): an event
    'infection_test' at its date, named by its concept, and not a measurement."""
    con, report, _ = parquet_load
    raw = duckdb.connect()
    csv = EUNOMIA / "csv"
    expected = raw.execute(f"""SELECT CAST(m.person_id AS VARCHAR), CAST(m.measurement_date AS
        TIMESTAMP), c.concept_name FROM read_csv('{csv}/measurement.csv') m
        JOIN read_csv('{csv}/concept.csv') c ON c.concept_id = m.measurement_concept_id
        WHERE m.measurement_concept_id = 4024958 ORDER BY 1, 2""").fetchall()
    raw.close()
    assert len(expected) == EUNOMIA_CULTURES
    assert {name for *_, name in expected} == {"Throat culture"}
    got = con.con.execute("SELECT person_id, time, detail FROM event WHERE event_type = "
                          "'infection_test' ORDER BY 1, 2").fetchall()
    assert got == expected
    line = next(t for t in report.tables if t.table == "event"
                and t.source.endswith("#measurement"))
    assert (line.read, line.loaded, line.quarantined) == (EUNOMIA_CULTURES, EUNOMIA_CULTURES, 0)
    assert con.con.execute("SELECT count(*) FROM measurement WHERE variable LIKE '%117015009%'"
                           ).fetchone()[0] == 0
    assert con.con.execute("SELECT count(*) FROM quarantine WHERE target_table = 'measurement' "
                           "AND raw LIKE '%4024958%'").fetchone()[0] == 0


def test_fallback_stays_are_flagged(parquet_load):
    con, report, _ = parquet_load
    visits = _parquet("visit_occurrence").to_pandas()
    person = _parquet("person").to_pandas()[["person_id", "birth_datetime"]]
    v = visits.merge(person, on="person_id")
    # 0-21 completed years at the visit start (clinical reference §11.2, as the MEDS reader and
    # the shipped study): the visit starts before the 22nd birthday.
    start, birth = v["visit_start_datetime"], v["birth_datetime"]
    completed = start.dt.year - birth.dt.year - (
        (start.dt.month * 100 + start.dt.day) < (birth.dt.month * 100 + birth.dt.day)).astype(int)
    expected = v[v["visit_concept_id"].isin([9201, 262, 9203]) & completed.between(0, 21)]
    # person 12 (born 1996): ER visits at 15.4 and 20.4 years both count (SOURCE.md); the old
    # rule (< 18 years) took the first only
    assert set(expected.loc[expected["person_id"] == 12, "visit_occurrence_id"]) and \
        (completed[expected.index][expected["person_id"] == 12] >= 18).any()
    assert report.counts("stay").loaded == len(expected) > 0
    # persons of every age are loaded, children or not
    assert report.counts("person").loaded == len(person) == 8
    assert any("fallback" in n for n in report.notes)
    assert any("concept_ancestor" in n for n in report.notes)


def test_screen_runs(parquet_load):
    from hyperinflam.screening.screen import screen

    con, _, _ = parquet_load
    frame = screen(con, step_hours=24).to_pandas()
    n_stays = con.con.execute("SELECT count(*) FROM stay").fetchone()[0]
    assert frame["stay_id"].nunique() == n_stays


def test_reload_adds_nothing(parquet_load):
    con, _, codes = parquet_load
    before = con.con.execute("SELECT count(*) FROM measurement").fetchone()[0]
    again = load_omop(con, EUNOMIA / "omop", codes=codes)
    assert again.reconciles
    assert again.counts("person").already_present == 8
    assert con.con.execute("SELECT count(*) FROM measurement").fetchone()[0] == before


@pytest.fixture(scope="module")
def pg_schema():
    """A fresh CDM 5.4 schema from the official PostgreSQL DDL, filled with Eunomia rows."""
    schema = f"hi_test_{uuid.uuid4().hex[:10]}"
    con = duckdb.connect()
    load_postgres_extension(con)
    try:
        con.execute(f"ATTACH '{PG_URL}' AS pg (TYPE postgres)")
    except duckdb.Error as exc:
        pytest.fail(f"PostgreSQL at {PG_URL} is required for these tests: {exc}")
    ddl = (DDL / "postgresql" / "omopcdm_postgresql_5.4_ddl.sql").read_text()
    con.execute(f"CALL postgres_execute('pg', 'CREATE SCHEMA {schema}')")
    con.execute("CALL postgres_execute('pg', ?)", [ddl.replace("@cdmDatabaseSchema", schema)])
    con.execute("CALL pg_clear_cache()")
    for file in sorted((EUNOMIA / "omop").glob("*.parquet")):
        con.execute(f"INSERT INTO pg.{schema}.{file.stem} BY NAME SELECT * FROM read_parquet('{file}')")
    yield schema
    con.execute(f"CALL postgres_execute('pg', 'DROP SCHEMA {schema} CASCADE')")
    con.close()


@pytest.mark.slow
def test_identical_from_parquet_csv_duckdb_postgres(parquet_load, tmp_path, pg_schema):
    _, _, codes = parquet_load
    reference = connect_memory()
    load_omop(reference, EUNOMIA / "omop", codes=codes)
    expected = _tables(reference)
    db = tmp_path / "eunomia.duckdb"
    _build_duckdb(db)
    for source, schema in ((EUNOMIA / "csv", None), (db, None), (PG_URL, pg_schema)):
        con = connect_memory()
        report = load_omop(con, source, schema=schema, codes=codes)
        assert report.reconciles
        got = _tables(con)
        for t in CANONICAL:
            assert got[t].equals(expected[t]), f"{t} differs when read from {source}"


def test_bad_input_is_quarantined(tmp_path):
    meas = _parquet("measurement").slice(0, 0).to_pylist()
    base = duckdb.connect(str(tmp_path / "bad.duckdb"))
    base.execute((DDL / "duckdb" / "omopcdm_duckdb_5.4_ddl.sql").read_text()
                 .replace("@cdmDatabaseSchema", "main"))
    base.execute(f"INSERT INTO person BY NAME SELECT * FROM read_parquet('{EUNOMIA}/omop/person.parquet') "
                 f"WHERE person_id = 2")
    rows = [  # id, person, concept, datetime, value, unit concept, unit source
        (1, 2, 3001122, "2020-01-01 10:00", 100, 8748, "ug/L"),     # ok
        (2, 2, 999999, "2020-01-01 10:00", 100, 8748, "ug/L"),      # unknown concept
        (3, 2, 3013721, "2020-01-01 10:00", 40, 0, None),           # unit 0, no source unit
        (4, 2, 3001122, "2020-01-01 11:00", 5000000, 8748, "ug/L"), # outside plausible range
        (5, 99, 3001122, "2020-01-01 10:00", 100, 8748, "ug/L"),    # dangling person
    ]
    for i, p, c, t, v, u, us in rows:
        base.execute("INSERT INTO measurement (measurement_id, person_id, measurement_concept_id, "
                     "measurement_date, measurement_datetime, measurement_type_concept_id, "
                     "value_as_number, unit_concept_id, unit_source_value) VALUES "
                     "(?, ?, ?, CAST(? AS DATE), CAST(? AS TIMESTAMP), 0, ?, ?, ?)",
                     [i, p, c, t[:10], t, v, u, us])
    base.execute("INSERT INTO concept VALUES (8748, 'microgram per liter', 'Unit', 'UCUM', 'Unit', "
                 "'S', 'ug/L', DATE '1970-01-01', DATE '2099-12-31', NULL)")
    base.close()
    con = connect_memory()
    report = load_omop(con, tmp_path / "bad.duckdb")
    assert report.reconciles
    reasons = dict(con.con.execute("SELECT source_line, reason FROM quarantine WHERE "
                                   "target_table = 'measurement'").fetchall())
    assert reasons == {2: "unknown_variable", 3: "missing_unit", 4: "implausible_value",
                       5: "unknown_person"}
    assert meas == []


def test_clear_errors(tmp_path):
    con = connect_memory()
    with pytest.raises(SourceError, match="no such file"):
        load_omop(con, tmp_path / "nowhere")
    with pytest.raises(SourceError, match="cannot connect"):
        load_omop(con, "postgresql://postgres@127.0.0.1:1/none")
    folder = tmp_path / "partial"
    folder.mkdir()
    duckdb.sql(f"COPY (SELECT person_id, year_of_birth FROM read_parquet('{EUNOMIA}/omop/person.parquet')) "
               f"TO '{folder}/person.parquet'")
    with pytest.raises(SourceError, match="gender_concept_id"):
        load_omop(con, folder)
    with pytest.raises(SourceError, match="stay_fallback"):
        load_omop(con, EUNOMIA / "omop", options=OmopOptions(stay_fallback="x"))


def test_load_report_names_every_omop_source_table_in_a_narrow_terminal():
    # Three OMOP tables feed organ_support: an 80-column terminal must still tell their rows
    # apart (the source table in full under the canonical table) and keep the "adds up" column.
    import io

    from rich.console import Console

    from hyperinflam.sources import LoadReport
    from hyperinflam.sources.quarantine import TableLoadCounts, render_load_report

    report = LoadReport(source="/data/site/omop-parquet")
    for omop_table in ("procedure_occurrence", "device_exposure", "drug_exposure"):
        report.tables.append(TableLoadCounts(
            table="organ_support", source=f"/data/site/omop-parquet#{omop_table}",
            read=1_234_567, loaded=1_234_560, quarantined=7))
    out = io.StringIO()
    render_load_report(report, Console(file=out, width=80))
    text = out.getvalue()
    for omop_table in ("procedure_occurrence", "device_exposure", "drug_exposure"):
        assert f"from {omop_table}" in text
    assert "omop-parquet#" not in text            # the label is the title, not repeated per row
    assert text.count("\u2713") == 4               # every row and the total add up, all shown

    # A source named like the canonical table (MEDS) adds no line; a '#' inside a folder name
    # is not mistaken for a source table.
    meds = LoadReport(source="/data/meds")
    meds.tables.append(TableLoadCounts(table="measurement", source="/data/meds#measurement",
                                       read=3, loaded=3))
    folder = LoadReport(source="/data/run#3")
    folder.tables.append(TableLoadCounts(table="stay", source="/data/run#3/stay.csv",
                                         read=3, loaded=3))
    for other in (meds, folder):
        out = io.StringIO()
        render_load_report(other, Console(file=out, width=80))
        assert "from " not in out.getvalue(), out.getvalue()
