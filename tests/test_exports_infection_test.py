"""A test for infection ordered (event 'infection_test', clinical reference §5.1) leaves an export
as what it is and comes back as an infection_test, never as an infection.

The database written here holds one person with one stay, one culture (infection_test, 10:00)
and one infection (a recorded infection event, 2024-03-05 09:00: four days later, so the two are
nothing alike), and no drug: nothing can derive a further infection on the way back. Expected by
hand: after export -> load into a new database, exactly one 'infection' event (03-05 09:00,
"pneumonia") and one 'infection_test' event (03-01 10:00, "blood culture").
"""

from __future__ import annotations

from pathlib import Path

from hyperinflam.engine import connect_memory
from hyperinflam.exports.fhir import export_fhir_ndjson
from hyperinflam.exports.omop import export_omop
from hyperinflam.sources.csv import load_csv_folder
from hyperinflam.sources.fhir.reader import load_fhir
from hyperinflam.sources.omop.mapping import OmopOptions, load_omop

EXPECTED = [("infection", "2024-03-05 09:00", "pneumonia"),
            ("infection_test", "2024-03-01 10:00", "blood culture")]


def _original(tmp: Path):
    folder = tmp / "csv"
    folder.mkdir()
    (folder / "person.csv").write_text("person_id,birth_date,sex\nP1,2016-01-15,female\n")
    (folder / "stay.csv").write_text("stay_id,person_id,admit_time,discharge_time\n"
                                     "S1,P1,2024-03-01 08:00,2024-03-10 08:00\n")
    (folder / "event.csv").write_text("person_id,stay_id,event_type,time,detail\n"
                                      "P1,S1,infection_test,2024-03-01 10:00,blood culture\n"
                                      "P1,S1,infection,2024-03-05 09:00,pneumonia\n")
    con = connect_memory()
    report = load_csv_folder(con, folder)
    assert report.reconciles
    assert _events(con) == EXPECTED  # the database as written
    return con


def _events(con) -> list[tuple]:
    return con.con.execute("SELECT event_type, strftime(time, '%Y-%m-%d %H:%M'), detail "
                           "FROM event ORDER BY event_type, time").fetchall()


def test_omop_export_keeps_a_culture_an_infection_test(tmp_path):
    original = _original(tmp_path)
    export_omop(original, tmp_path / "omop.duckdb")
    back = connect_memory()
    report = load_omop(back, tmp_path / "omop.duckdb", schema="cdm",
                       options=OmopOptions(ids="source_value"))
    assert report.reconciles
    assert _events(back) == EXPECTED


def test_fhir_export_keeps_a_culture_an_infection_test(tmp_path):
    original = _original(tmp_path)
    export_fhir_ndjson(original, tmp_path / "ndjson")
    back = connect_memory()
    report = load_fhir(back, tmp_path / "ndjson")
    assert report.reconciles
    assert _events(back) == EXPECTED
