"""Infections from diagnosis codes (issue 12 item 5): a diagnosis with an ICD-10-CM infection or
sepsis code (by prefix) or a SNOMED CT infection code (exact) and an onset time is an infection
event at that time, in every reader. Expected events are listed by hand from the rows written
here, and for the FHIR and OMOP extracts from their Condition codes counted with SQL.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hyperinflam.engine import connect
from hyperinflam.sources.csv import load_csv_folder

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
EXAMPLE = ROOT / "docs" / "example-csv"

CONDITIONS = """\
person_id,stay_id,condition,code_system,code,onset_time,is_underlying
P001,S001,sepsis,ICD-10-CM,A41.9,2024-03-01 09:00,false
P001,S001,bacterial sepsis,SNOMED,10001005,2024-03-01 09:00,false
P001,S001,HIV disease,ICD-10-CM,B20,2020-01-01 00:00,true
P001,S001,urinary tract infection,ICD10CM,N39.0,,false
P001,S001,splenomegaly,ICD-10-CM,R16.1,2024-03-01 11:00,false
P001,S001,pneumonia,ICD10CM,J189,2024-03-05 10:00,false
P001,S001,hiv disease (not underlying in this row),ICD-10-CM,B20,2024-03-05 11:00,false
P002,S002,acute bronchitis,SNOMED,10509002,2024-06-10 20:00,false
P002,S002,chronic sinusitis,SNOMED,40055000,2024-06-10 21:00,false
"""


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    shutil.copytree(EXAMPLE, folder)
    (folder / "condition.csv").write_text(CONDITIONS)
    return folder


def _infections(con):
    return con.con.execute("SELECT person_id, strftime(time, '%m-%d %H:%M'), detail FROM event "
                           "WHERE event_type = 'infection' ORDER BY 1, 2").fetchall()


def test_infection_codes_in_diagnoses_are_infection_events(tmp_path):
    con = connect(tmp_path / "db.duckdb")
    report = load_csv_folder(con, _folder(tmp_path))
    events = _infections(con)
    # by hand: example-csv/event.csv has P001 03-01 05:00, 03-06 14:00 and P002 06-10 18:00 UTC;
    # from the diagnoses: P001 03-01 09:00 (A41.9 and SNOMED 10001005: one event), 03-05 10:00
    # (J18.9 written J189); P002 06-10 20:00 (SNOMED 10509002). Not: B20 underlying, N39.0
    # without onset, R16.1 (not an infection), B20 not underlying (HIV is left out of the list),
    # SNOMED 40055000 chronic sinusitis (not in the list)
    assert [(p, t) for p, t, _ in events] == [
        ("P001", "03-01 05:00"), ("P001", "03-01 09:00"), ("P001", "03-05 10:00"),
        ("P001", "03-06 14:00"), ("P002", "06-10 18:00"), ("P002", "06-10 20:00")]
    detail = dict(((p, t), d) for p, t, d in events)
    assert detail[("P001", "03-01 09:00")] == ("diagnosis ICD-10-CM A41.9: sepsis; "
                                               "diagnosis SNOMED 10001005: bacterial sepsis")
    derived = next(t for t in report.tables if t.source.endswith("#diagnoses with infection codes"))
    assert (derived.table, derived.read, derived.loaded, derived.already_present) == \
        ("event", 3, 3, 0)
    note = next(n for n in report.notes if n.startswith("infections from diagnoses"))
    assert "3 infection event(s)" in note and "1 such diagnosis(es) without an onset" in note
    assert report.reconciles
    # the load log holds the derived line too: it adds up with the event table
    assert con.con.execute("SELECT sum(rows_loaded) FROM load_log WHERE target_table = 'event'"
                           ).fetchone()[0] == con.con.execute(
        "SELECT count(*) FROM event").fetchone()[0]
    con.disconnect()


def test_a_reload_derives_nothing_twice(tmp_path):
    con = connect(tmp_path / "db.duckdb")
    folder = _folder(tmp_path)
    load_csv_folder(con, folder)
    before = _infections(con)
    load_csv_folder(con, folder)
    assert _infections(con) == before
    con.disconnect()


def test_a_recorded_infection_at_the_same_time_is_already_present(tmp_path):
    con = connect(tmp_path / "db.duckdb")
    folder = _folder(tmp_path)
    # a diagnosis at the time of the recorded infection event P001 03-01 05:00
    with (folder / "condition.csv").open("a") as f:
        f.write("P001,S001,streptococcal sepsis,ICD-10-CM,A40.0,2024-03-01 05:00,false\n")
    report = load_csv_folder(con, folder)
    derived = next(t for t in report.tables if t.source.endswith("#diagnoses with infection codes"))
    assert (derived.read, derived.loaded, derived.already_present) == (4, 3, 1)
    assert sum(1 for p, t, _ in _infections(con) if (p, t) == ("P001", "03-01 05:00")) == 1
    con.disconnect()


def _coded_conditions(con, codes: tuple[str, ...]) -> int:
    """Distinct (person, onset) of condition rows with one of ``codes``, counted directly."""
    marks = ", ".join(f"'{c}'" for c in codes)
    return con.con.execute(f"SELECT count(DISTINCT (person_id, onset_time)) FROM condition "
                           f"WHERE code IN ({marks}) AND onset_time IS NOT NULL "
                           f"AND NOT is_underlying").fetchone()[0]


#: SNOMED infection codes of vocabulary/codes.csv, written out by hand.
SNOMED_INFECTIONS = ("91302008", "10001005", "76571007", "5758002", "40733004", "87628006",
                     "233604007", "68566005", "301011002", "840539006", "444814009",
                     "75498004", "36971009", "195662009", "43878008", "10509002", "65363002",
                     "18099001")


@pytest.mark.parametrize("reader, path", [
    ("fhir", DATA / "fhir_r4_spec_examples" / "resources"),
    ("fhir", DATA / "synthea_bulk_ndjson_smart10" / "ndjson"),
    ("omop", DATA / "eunomia_synthea27nj" / "omop"),
])
def test_every_reader_derives_infections_from_snomed_diagnoses(tmp_path, reader, path):
    from hyperinflam.sources.fhir.reader import load_fhir
    from hyperinflam.sources.omop.mapping import load_omop

    con = connect(tmp_path / "db.duckdb")
    {"fhir": load_fhir, "omop": load_omop}[reader](con, path)
    expected = _coded_conditions(con, SNOMED_INFECTIONS)
    assert expected > 0  # each extract holds such diagnoses
    derived = con.con.execute("SELECT count(*) FROM event WHERE event_type = 'infection' AND "
                              "detail LIKE 'diagnosis %'").fetchone()[0]
    recorded_events = con.con.execute(
        "SELECT count(*) FROM event WHERE event_type = 'infection' AND "
        "(detail IS NULL OR detail NOT LIKE 'diagnosis %')").fetchone()[0]
    assert derived <= expected <= derived + recorded_events
    assert con.con.execute("SELECT recorded FROM source_domains WHERE domain = 'infection'"
                           ).fetchone()[0] is True
    con.disconnect()


def test_a_site_codes_row_adds_an_infection_code(tmp_path):
    """--codes rows of kind event, target infection count like the shipped ones (OMOP here;
    the code is made up for the test: Stress 73595000 is no infection)."""
    from hyperinflam.sources.omop.mapping import load_omop

    site = tmp_path / "codes.csv"
    site.write_text("kind,target,system,code,concept_id,unit_when_missing,display,status,"
                    "reference\nevent,infection,SNOMED,73595000,,,Stress (test only),,test\n")
    con = connect(tmp_path / "db.duckdb")
    load_omop(con, DATA / "eunomia_synthea27nj" / "omop", codes=[site])
    expected = _coded_conditions(con, ("73595000",))
    assert expected > 0
    assert con.con.execute("SELECT count(*) FROM event WHERE detail LIKE '%73595000%'"
                           ).fetchone()[0] == expected
    con.disconnect()
