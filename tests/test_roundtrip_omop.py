"""OMOP round trip (issue 5 item 6) and CDM 5.3 (item 2).

A synthetic cohort (hyperinflam.synth.generator) -> CSV -> canonical -> OMOP CDM 5.4 (official DDL) in a
DuckDB file and in PostgreSQL -> load_omop -> canonical tables identical in every column. A copy
of the real Eunomia CDM (the extract in tests/data/eunomia_synthea27nj) reshaped to CDM 5.3 loads
into the same tables as the 5.4 original.
"""

from __future__ import annotations

import uuid
from importlib import resources
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from hyperinflam.engine import connect_memory
from hyperinflam.errors import SourceError
from hyperinflam.schema import CANONICAL_TABLES
from hyperinflam.sources.csv import load_csv_folder
from hyperinflam.exports.omop import export_omop
from hyperinflam.sources.omop.access import load_postgres_extension
from hyperinflam.sources.omop.mapping import OmopOptions, load_omop
from hyperinflam.synth.writer import synthesize

EUNOMIA = Path(__file__).resolve().parent / "data" / "eunomia_synthea27nj" / "omop"
#: The official CDM 5.4 DDL as shipped in the package (hyperinflam/omop_cdm54/SOURCE.md).
DDL = Path(str(resources.files("hyperinflam") / "omop_cdm54" / "ddl"))
PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BACK = OmopOptions(ids="source_value")


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """The synthetic cohort loaded from CSV, plus the cases synth does not produce: a stay still
    open (no discharge) and a person of unknown sex."""
    folder = tmp_path_factory.mktemp("synth")
    synthesize(folder, 60, 11)
    con = connect_memory()
    report = load_csv_folder(con, folder)
    assert report.reconciles
    raw = con.con
    raw.execute("UPDATE stay SET discharge_time = NULL WHERE stay_id = (SELECT max(stay_id) FROM stay)")
    raw.execute("UPDATE person SET sex = 'unknown' WHERE person_id = (SELECT min(person_id) FROM person)")
    return con


def _rows(con, table) -> list[tuple]:
    cols = ", ".join(table.column_names)
    return con.con.execute(f"SELECT {cols} FROM {table.name} ORDER BY ALL").fetchall()


def _assert_identical(original, back) -> None:
    for table in CANONICAL_TABLES:
        a, b = _rows(original, table), _rows(back, table)
        assert a, f"{table.name}: the cohort has no rows (the test would prove nothing)"
        assert a == b, (f"{table.name}: {len(a)} rows before, {len(b)} after; first difference: "
                        f"{sorted(set(a) ^ set(b))[:2]}")


def _assert_clean(report) -> None:
    assert report.reconciles
    assert all(t.quarantined == 0 for t in report.tables), [(t.table, t.reasons)
                                                          for t in report.tables]


def test_cohort_covers_the_encoded_cases(original):
    """The cohort exercises every special encoding (counted here, independently of the export)."""
    q = lambda sql: original.con.execute(sql).fetchone()[0]  # noqa: E731
    assert q("SELECT count(*) FROM stay WHERE discharge_time IS NULL") == 1
    assert q("SELECT count(*) FROM drug_administration WHERE end_time IS NULL") > 0
    assert q("SELECT count(*) FROM drug_administration WHERE weight_kg IS NOT NULL") > 0
    assert q("SELECT count(*) FROM organ_support WHERE support IN ('dopamine', 'dobutamine', "
             "'milrinone')") > 0  # no OMOP id in drugs.csv: local RxNorm-coded concepts
    assert q("SELECT count(*) FROM organ_support WHERE dose_unit = 'U/kg/min' AND dose < 0.001") > 0
    assert q("SELECT count(*) FROM condition WHERE onset_time IS NULL") > 0
    assert q("SELECT count(*) FROM condition WHERE code IS NULL") > 0
    assert q("SELECT count(DISTINCT event_type) FROM event") == 2
    assert q("SELECT count(*) FROM measurement WHERE stay_id IS NULL") > 0


def test_round_trip_through_duckdb_file(original, tmp_path):
    target = tmp_path / "omop.duckdb"
    written = export_omop(original, target, schema="cdm")
    n = lambda t: original.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: E731
    assert written["person"] == n("person")
    assert written["visit_detail"] == n("stay")
    assert written["measurement"] == n("measurement")
    assert written["drug_exposure"] == n("drug_administration") + original.con.execute(
        "SELECT count(*) FROM organ_support WHERE support <> 'invasive_ventilation'").fetchone()[0]
    # the schema is the official one: every table of the DDL exists (39 in CDM 5.4: the
    # CREATE TABLE statements of OHDSI/CommonDataModel v5.4.2, counted by hand)
    ddl = (DDL / "duckdb" / "omopcdm_duckdb_5.4_ddl.sql").read_text()
    check = duckdb.connect(str(target), read_only=True)
    tables = {r[0] for r in check.execute("SELECT table_name FROM duckdb_tables() "
                                          "WHERE schema_name = 'cdm'").fetchall()}
    assert tables == {line.split(".")[1].split()[0].lower() for line in ddl.splitlines()
                      if line.startswith("CREATE TABLE")}
    assert len(tables) == 39
    # units with no standard concept: unit_concept_id 0 + the unit as received
    assert check.execute("SELECT count(*) FROM cdm.measurement WHERE unit_concept_id = 0 AND "
                         "unit_source_value = 'mmHg'").fetchone()[0] == original.con.execute(
        "SELECT count(*) FROM measurement WHERE unit_original = 'mmHg'").fetchone()[0] > 0
    check.close()
    back = connect_memory()
    report = load_omop(back, target, schema="cdm", options=BACK)
    _assert_clean(report)
    assert any("CDM 5.4" in n for n in report.notes)
    _assert_identical(original, back)
    with pytest.raises(SourceError, match="already holds"):
        export_omop(original, target, schema="cdm")


def test_round_trip_through_postgresql(original):
    schema = f"hi_rt_{uuid.uuid4().hex[:10]}"
    admin = duckdb.connect()
    load_postgres_extension(admin)
    try:
        admin.execute(f"ATTACH '{PG_URL}' AS pg (TYPE postgres)")
    except duckdb.Error as exc:
        pytest.fail(f"PostgreSQL at {PG_URL} is required for this test: {exc}")
    try:
        export_omop(original, PG_URL, schema=schema)
        back = connect_memory()
        report = load_omop(back, PG_URL, schema=schema, options=BACK)
        _assert_clean(report)
        _assert_identical(original, back)
    finally:
        admin.execute(f"CALL postgres_execute('pg', 'DROP SCHEMA IF EXISTS {schema} CASCADE')")
        admin.close()


def _eunomia_duckdb(path: Path, *, cdm53: bool) -> None:
    con = duckdb.connect(str(path))
    con.execute((DDL / "duckdb" / "omopcdm_duckdb_5.4_ddl.sql").read_text()
                .replace("@cdmDatabaseSchema", "main"))
    for file in sorted(EUNOMIA.glob("*.parquet")):
        con.execute(f"INSERT INTO {file.stem} BY NAME SELECT * FROM read_parquet('{file}')")
    if cdm53:  # the CDM 5.3 shape: renamed visit columns, no 5.4-only columns, version 5.3.1
        for table in ("visit_occurrence", "visit_detail"):
            for new, old in (("admitted_from_concept_id", "admitting_source_concept_id"),
                             ("admitted_from_source_value", "admitting_source_value"),
                             ("discharged_to_concept_id", "discharge_to_concept_id"),
                             ("discharged_to_source_value", "discharge_to_source_value")):
                con.execute(f"ALTER TABLE {table} RENAME COLUMN {new} TO {old}")
        con.execute("ALTER TABLE visit_detail RENAME COLUMN parent_visit_detail_id TO "
                    "visit_detail_parent_id")
        for table, col in (("procedure_occurrence", "procedure_end_date"),
                           ("procedure_occurrence", "procedure_end_datetime"),
                           ("observation", "observation_event_id"),
                           ("observation", "obs_event_field_concept_id"),
                           ("measurement", "measurement_event_id"),
                           ("measurement", "unit_source_concept_id"),
                           ("cdm_source", "cdm_version_concept_id")):
            con.execute(f"ALTER TABLE {table} DROP COLUMN {col}")
        con.execute("UPDATE cdm_source SET cdm_version = 'v5.3.1'")
    con.close()


def test_cdm_53_shaped_eunomia_loads_like_54(tmp_path):
    codes = tmp_path / "codes.csv"  # Eunomia's children have ER visits only (see test_load_omop)
    codes.write_text("kind,target,vocabulary_id,concept_code,concept_id,reference\n"
                     "inpatient_visit,er,Visit,ER,9203,test site\n")
    loaded = {}
    for cdm53 in (False, True):
        path = tmp_path / f"eunomia_{'53' if cdm53 else '54'}.duckdb"
        _eunomia_duckdb(path, cdm53=cdm53)
        con = connect_memory()
        loaded[cdm53] = (con, load_omop(con, path, codes=codes))
    (con54, r54), (con53, r53) = loaded[False], loaded[True]
    assert r53.reconciles and r54.reconciles
    assert "OMOP CDM 5.3 (cdm_source.cdm_version 'v5.3.1')." in r53.notes
    assert "OMOP CDM 5.4 (cdm_source.cdm_version '5.4')." in r54.notes
    assert any(n.startswith("CDM 5.3 has no invasive ventilation end times") for n in r53.notes)
    assert _rows(con54, CANONICAL_TABLES[0])  # persons were loaded
    for table in CANONICAL_TABLES:
        if table.name == "organ_support":
            continue
        assert _rows(con53, table) == _rows(con54, table), table.name
    # Eunomia's "Oxygen administration by mask" procedures (SNOMED 371908008, concept 4162736)
    # are supplemental oxygen; CDM 5.3 has no procedure end, so only their ends differ.
    support = "SELECT person_id, support, start_time, end_time FROM organ_support ORDER BY ALL"
    s53, s54 = con53.con.execute(support).fetchall(), con54.con.execute(support).fetchall()
    assert s54 and {r[1] for r in s54} == {"supplemental_oxygen"}
    assert [r[:3] for r in s53] == [r[:3] for r in s54]
    assert {r[3] for r in s53} == {None} and None not in {r[3] for r in s54}
    for t53, t54 in zip(r53.tables, r54.tables):
        assert (t53.table, t53.read, t53.loaded, t53.reasons) == \
            (t54.table, t54.read, t54.loaded, t54.reasons)


def test_export_command(original, tmp_path):
    from hyperinflam.cli import app

    db = tmp_path / "site.duckdb"
    original.con.execute(f"ATTACH '{db}' AS site")
    for table in CANONICAL_TABLES:
        original.con.execute(f"CREATE TABLE site.{table.name} AS SELECT * FROM {table.name}")
    original.con.execute("DETACH site")
    out = tmp_path / "omop.duckdb"
    result = CliRunner().invoke(app, ["export", "omop", str(out), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "measurement" in result.output
    again = CliRunner().invoke(app, ["export", "omop", str(out), "--db", str(db)])
    assert again.exit_code == 2 and "already holds" in again.output
    bad = CliRunner().invoke(app, ["export", "omop", "postgresql://postgres@127.0.0.1:1/x",
                                   "--db", str(db)])
    assert bad.exit_code == 2 and "cannot connect" in bad.output
