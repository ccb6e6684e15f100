"""``load omop --engine spark`` (issue 6 item 3) gives what ``load omop`` gives on DuckDB.

The data: a small synthetic cohort (``hyperinflam.synth.generator``) -> canonical tables -> OMOP CDM 5.4
(``export_omop``) -> one Parquet file or folder per OMOP table, plus bad rows that must be
quarantined (missing unit, unknown unit, implausible value, unparseable value, unknown person, a
drug with an unknown dose unit). The same folder is loaded by DuckDB (``load_omop``) and by Spark
(``load_omop_spark``, the shared local Spark session of conftest.py); the Spark output folder is
read back with DuckDB, the reader every engine's ``--db`` folder goes through.

Asserted: identical reconciliation (read, loaded, already present, quarantined, reasons and
example per table and source), identical canonical tables (every column, same rows after
sorting; floats exactly) and an identical quarantine table (reason, detail and raw row).
"""

from __future__ import annotations

import json

import duckdb
import pytest

from hyperinflam.engine import connect_memory, open_engine
from hyperinflam.errors import SourceError
from hyperinflam.schema import ALL_TABLES
from hyperinflam.sources.csv import load_csv_folder
from hyperinflam.exports.omop import export_omop
from hyperinflam.sources.omop.mapping import OmopOptions, load_omop
from hyperinflam.engine.storage import MANIFEST_NAME, read_manifest
from hyperinflam.synth.writer import synthesize

pytestmark = pytest.mark.slow  # a Spark load per test (tens of seconds each)

BACK = OmopOptions(ids="source_value")
#: Three stays: every OMOP table the reader maps has rows (persons, PICU visit_detail,
#: measurements with units from concepts and from the source value, drugs, ventilation,
#: conditions, events), and Spark's fixed cost per statement stays the main cost.
N_STAYS = 3
#: (measurement_id, problem, concept id, value_as_number, value_source_value, unit concept,
#:  unit_source_value, expected reason). Ferritin is LOINC 2276-4 / concept 3001122.
BAD_MEASUREMENTS = [
    (900001, 3001122, 250.0, "250", 0, None, "missing_unit"),      # a value, no unit at all
    (900002, 3001122, 300.0, "300", 0, "furlongs", "unknown_unit"),
    (900003, 3001122, 9.0e7, "90000000", 0, "ng/mL", "implausible_value"),
    (900004, 3001122, None, "12,5", 0, "ng/mL", "unparseable_value"),
]
#: Ferritin at one person and time, 5 h after the PICU admission day began (docs/csv-layout.md,
#: "Two values at the same time"): 900008 repeats 900007's value in other digits ("250.0")
#: -> duplicate_value; 900009 differs -> 900007 and 900009 both kept, flagged 'conflicting'.
SAME_TIME = [(900007, 250.0, "250"), (900008, 250.0, "250.0"), (900009, 410.0, "410")]


@pytest.fixture(scope="module")
def omop_folder(tmp_path_factory):
    """The synthetic cohort as OMOP Parquet (person as a Spark-style folder), with bad rows."""
    root = tmp_path_factory.mktemp("omop_spark")
    synthesize(root / "csv", N_STAYS, 5)
    con = connect_memory()
    assert load_csv_folder(con, root / "csv").reconciles
    export_omop(con, root / "omop.duckdb", schema="cdm")
    con.disconnect()
    folder = root / "omop"
    folder.mkdir()
    db = duckdb.connect(str(root / "omop.duckdb"))
    person_id, visit_id, day = db.execute(
        "SELECT person_id, visit_detail_id, visit_detail_start_date FROM cdm.visit_detail "
        "ORDER BY 1 LIMIT 1").fetchone()
    for mid, concept, number, text, unit, unit_text, _ in BAD_MEASUREMENTS:
        db.execute("INSERT INTO cdm.measurement (measurement_id, person_id, measurement_concept_id, "
                   "measurement_date, measurement_datetime, measurement_type_concept_id, "
                   "value_as_number, value_source_value, unit_concept_id, unit_source_value, "
                   "visit_detail_id) VALUES (?, ?, ?, ?, CAST(? AS TIMESTAMP) + INTERVAL 3 HOUR, "
                   "32817, ?, ?, ?, ?, ?)",
                   [mid, person_id, concept, day, day, number, text, unit, unit_text, visit_id])
    db.execute("INSERT INTO cdm.measurement (measurement_id, person_id, measurement_concept_id, "
               "measurement_date, measurement_type_concept_id, value_as_number, unit_concept_id, "
               "unit_source_value) VALUES (900005, 987654, 3001122, ?, 32817, 100, 0, 'ng/mL')",
               [day])  # a person who is not in the CDM
    for mid, number, text in SAME_TIME:
        db.execute("INSERT INTO cdm.measurement (measurement_id, person_id, measurement_concept_id, "
                   "measurement_date, measurement_datetime, measurement_type_concept_id, "
                   "value_as_number, value_source_value, unit_concept_id, unit_source_value, "
                   "visit_detail_id) VALUES (?, ?, 3001122, ?, CAST(? AS TIMESTAMP) + INTERVAL 5 "
                   "HOUR, 32817, ?, ?, 0, 'ng/mL', ?)",
                   [mid, person_id, day, day, number, text, visit_id])
    db.execute("INSERT INTO cdm.drug_exposure (drug_exposure_id, person_id, drug_concept_id, "
               "drug_exposure_start_date, drug_exposure_end_date, drug_type_concept_id, quantity, "
               "dose_unit_source_value, drug_source_value) SELECT 900006, person_id, "
               "drug_concept_id, drug_exposure_start_date, drug_exposure_end_date, "
               "drug_type_concept_id, 2, 'spoonfuls', drug_source_value FROM cdm.drug_exposure "
               "ORDER BY drug_exposure_id LIMIT 1")
    tables = [r[0] for r in db.execute("SELECT table_name FROM duckdb_tables() "
                                       "WHERE schema_name = 'cdm'").fetchall()]
    for table in tables:
        if table == "person":  # a folder of part files, as Spark and other tools write them
            (folder / "person").mkdir()
            target = folder / "person" / "part-0.parquet"
        else:
            target = folder / f"{table}.parquet"
        db.execute(f"COPY cdm.{table} TO '{target}' (FORMAT parquet)")
    db.close()
    return folder


def _report_rows(report) -> list[tuple]:
    return [(t.table, t.source, t.read, t.loaded, t.already_present, t.quarantined,
             dict(t.reasons), dict(t.examples)) for t in report.tables]


def _sorted_rows(raw, table) -> list[tuple]:
    cols = ", ".join(table.column_names)
    return raw.execute(f"SELECT {cols} FROM {table.name} ORDER BY ALL").fetchall()


def test_spark_load_equals_duckdb_load(omop_folder, spark, tmp_path):
    from hyperinflam.sources.omop.spark import load_omop_spark

    duck = connect_memory()
    expected = load_omop(duck, omop_folder, options=BACK)
    assert expected.reconciles

    out = tmp_path / "canonical"
    report, manifest = load_omop_spark(spark, omop_folder, out, options=BACK)
    assert report.reconciles
    assert _report_rows(report) == _report_rows(expected)
    # the Spark load keeps no domain record (docs/data-model.md, "Fallback"), so it has no
    # "not recorded by this source" note; every other note is the same
    domain_note = "not recorded by this source"
    assert [n for n in expected.notes if n.startswith(domain_note)], expected.notes
    assert report.notes == [n for n in expected.notes if not n.startswith(domain_note)]

    # the bad rows are quarantined with their reasons, on both engines
    reasons = dict(duck.con.execute("SELECT source_line, reason FROM quarantine").fetchall())
    assert {mid: reasons.get(mid) for mid, *_ in BAD_MEASUREMENTS} == {
        mid: reason for mid, *_, reason in BAD_MEASUREMENTS}
    # a person absent from the CDM has no person_source_value (--ids source_value)
    assert reasons[900005] == "missing_required_value" and reasons[900006] == "unknown_dose_unit"
    # two values at one time: the repeat quarantined, the two different values flagged
    assert reasons[900008] == "duplicate_value" and 900007 not in reasons
    flagged = duck.con.execute("SELECT value FROM measurement WHERE variable = 'ferritin' AND "
                               "flag LIKE '%conflicting%' ORDER BY value").fetchall()
    assert flagged == [(250.0,), (410.0,)]

    # the output folder is a canonical Parquet folder: manifest, measurement partitioned
    assert read_manifest(out)["tables"] == manifest["tables"]
    assert (out / MANIFEST_NAME).is_file()
    assert manifest["tables"]["measurement"]["partition_by"] == ["variable"]
    assert all((out / "measurement").glob("variable=*/*.parquet"))
    back = open_engine(out)  # read by DuckDB: the layout every engine reads
    for table in ALL_TABLES:
        rows = _sorted_rows(back.con, table)
        assert rows == _sorted_rows(duck.con, table), table.name
        assert manifest["tables"][table.name]["rows"] == len(rows)
        if table.name != "quarantine":
            assert rows, f"{table.name}: no rows, the comparison would prove nothing"
    # timestamps are naive UTC in the files (Parquet TIMESTAMP not adjusted to UTC)
    kind = back.con.execute("SELECT typeof(admit_time) FROM stay LIMIT 1").fetchone()[0]
    assert kind == "TIMESTAMP"
    raw = back.con.execute("SELECT raw FROM quarantine WHERE source_line = 900002").fetchone()[0]
    assert json.loads(raw)["unit"] == "furlongs"
    back.disconnect()
    duck.disconnect()


def test_wrong_source_is_one_clear_message(omop_folder, spark, tmp_path):
    from hyperinflam.sources.omop.spark import load_omop_spark

    with pytest.raises(SourceError, match=r"nowhere does not exist: with --engine spark, SOURCE "
                                          r"is a folder of OMOP Parquet tables"):
        load_omop_spark(spark, tmp_path / "nowhere", tmp_path / "out")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not OMOP")
    with pytest.raises(SourceError, match="no OMOP person table"):
        load_omop_spark(spark, empty, tmp_path / "out")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("mine")
    with pytest.raises(SourceError, match="is not empty"):
        load_omop_spark(spark, omop_folder, taken)
    assert (taken / "mine.txt").read_text() == "mine"
    assert not (tmp_path / "out").exists()


def test_cli_wrong_source_message(tmp_path):
    """The command prints one line naming the path and the fix (no traceback, no Spark start)."""
    from typer.testing import CliRunner

    from hyperinflam.cli import app

    result = CliRunner().invoke(app, ["load", "omop", str(tmp_path / "nowhere"), "--db",
                                      str(tmp_path / "out"), "--engine", "spark"])
    assert result.exit_code == 2, result.output
    assert "nowhere does not exist" in result.output and "Traceback" not in result.output
    assert "folder of OMOP Parquet tables" in result.output
