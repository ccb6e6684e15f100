"""The shared ingest pipeline fed by a query (how the OMOP, FHIR and MEDS readers load)."""

import pytest

from hyperinflam.engine import connect_memory
from hyperinflam.errors import SourceError
from hyperinflam.sources.ingest import load_staged


@pytest.fixture
def con():
    con = connect_memory()
    con.con.execute("INSERT INTO person VALUES ('p1', DATE '2015-01-01', 'female')")
    return con


def test_load_staged_converts_and_quarantines_by_source_key(con):
    query = """SELECT * FROM (VALUES
        (101, 'p1', '2024-03-01 08:00', 'crp', '20.6', 'mg/dL'),
        (102, 'p1', '2024-03-01 08:00', 'ferritin', '5000', 'mmol/L'),
        (103, 'p9', '2024-03-01 09:00', 'crp', '5', 'mg/L'))
        AS t(_line, person_id, time, variable, value, unit)"""
    counts = load_staged(con, "measurement", query, source="omop:measurement")
    assert (counts.read, counts.loaded, counts.quarantined) == (3, 1, 2)
    assert counts.reasons == {"unknown_unit": 1, "unknown_person": 1}
    value = con.con.execute("SELECT value, unit, value_original FROM measurement").fetchall()
    assert value == [(206.0, "mg/L", "20.6")]  # mg/dL x 10 (clinical reference 11.1)
    q = con.con.execute("SELECT source_file, source_line, reason FROM quarantine "
                        "ORDER BY source_line").fetchall()
    assert q == [("omop:measurement", 102, "unknown_unit"), ("omop:measurement", 103, "unknown_person")]
    again = load_staged(con, "measurement", query, source="omop:measurement")
    assert (again.loaded, again.already_present, again.quarantined) == (0, 1, 2)


def test_load_staged_names_missing_columns(con):
    with pytest.raises(SourceError, match="lack column"):
        load_staged(con, "measurement", "SELECT 1 AS _line, 'p1' AS person_id", source="x")
