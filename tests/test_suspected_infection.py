"""Suspected infection from a test for infection ordered and antimicrobials given (issue 12
item 5; clinical reference §5.1 "Suspected infection (operational)": a test ordered and >= 2
doses of a systemic antimicrobial; window §12.42: doses from 24 h before to 72 h after the
test). Every expected event is worked out by hand from the rows written here.

The child: 8 years old, admitted 2024-03-01 08:00 UTC. Platelets 80 x10^3/uL (< 100: 1 point)
and INR 1.5 (> 1.3: 1 point) give a Phoenix coagulation subscore 2, so a Phoenix score 2
(§5.2): Phoenix sepsis is 'met' with a suspected infection, else 'unknown'.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from hyperinflam.engine import connect
from hyperinflam.sources.csv import load_csv_folder

ADMIT = "2024-03-01 08:00"
CULTURE = "P1,S1,infection_test,2024-03-01 10:00,blood culture\n"


def _folder(tmp: Path, name: str, events: str = "", drugs: str = "",
            conditions: str = "") -> Path:
    folder = tmp / name
    folder.mkdir()
    (folder / "person.csv").write_text("person_id,birth_date,sex\nP1,2016-01-15,female\n")
    (folder / "stay.csv").write_text("stay_id,person_id,admit_time,discharge_time\n"
                                     f"S1,P1,{ADMIT},2024-03-10 08:00\n")
    (folder / "measurement.csv").write_text(
        "person_id,stay_id,time,variable,value,unit\n"
        "P1,S1,2024-03-01 12:00,platelets,80,10*3/uL\n"
        "P1,S1,2024-03-01 12:00,inr,1.5,{INR}\n")
    if events:
        (folder / "event.csv").write_text("person_id,stay_id,event_type,time,detail\n" + events)
    if drugs:
        (folder / "drug_administration.csv").write_text(
            "person_id,stay_id,drug,dose,dose_unit,route,start_time,end_time,weight_kg\n" + drugs)
    if conditions:
        (folder / "condition.csv").write_text(
            "person_id,stay_id,condition,code_system,code,onset_time,is_underlying\n"
            + conditions)
    return folder


def _dose(time: str, route: str = "iv", drug: str = "ceftriaxone") -> str:
    return f"P1,S1,{drug},1,g,{route},{time},,25\n"


def _infections(con) -> list[tuple]:
    return con.con.execute(
        "SELECT strftime(time, '%m-%d %H:%M'), detail FROM event "
        "WHERE event_type = 'infection' ORDER BY time").fetchall()


def _load(tmp_path, **files):
    con = connect(tmp_path / "db.duckdb")
    report = load_csv_folder(con, _folder(tmp_path, "site", **files))
    assert report.reconciles
    # every test and dose written is loaded (none quarantined): a test for infection is an
    # event, an antimicrobial a drug of vocabulary/drugs.csv (class antimicrobial)
    assert con.con.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0
    assert con.con.execute("SELECT count(*) FROM event WHERE event_type = 'infection_test'"
                           ).fetchone()[0] == files.get("events", "").count("infection_test")
    n_drugs = files.get("drugs", "").count("\n") - files.get("drugs", "").count("dexamethasone")
    assert con.con.execute("SELECT count(*) FROM drug_administration WHERE drug_class = "
                           "'antimicrobial'").fetchone()[0] == n_drugs
    return con, report


def test_culture_and_two_iv_doses_give_one_infection_at_the_culture(tmp_path):
    con, report = _load(tmp_path, events=CULTURE,
                        drugs=_dose("2024-03-01 11:00") + _dose("2024-03-01 23:00"))
    # culture 10:00, doses 11:00 and 23:00 (12 h apart, within 10:00 - 24 h .. 10:00 + 72 h):
    # the infection is at min(10:00, 11:00) = 10:00
    assert _infections(con) == [
        ("03-01 10:00", "suspected infection: blood culture + 2 antimicrobial doses "
                        "(ceftriaxone)")]
    line = [t for t in report.tables if t.source.endswith("#tests for infection with "
                                                          "antimicrobials")]
    assert [(t.read, t.loaded, t.already_present) for t in line] == [(1, 1, 0)]
    assert con.con.execute("SELECT count(*) FROM event WHERE event_type = 'infection_test'"
                           ).fetchone()[0] == 1


def test_an_earlier_dose_sets_the_time(tmp_path):
    # doses 2024-02-29 20:00 (14 h before the culture, within 24 h) and 03-01 08:00
    con, _ = _load(tmp_path, events=CULTURE,
                   drugs=_dose("2024-02-29 20:00") + _dose("2024-03-01 08:00", "po",
                                                             "amoxicillin"))
    assert _infections(con) == [
        ("02-29 20:00", "suspected infection: blood culture + 2 antimicrobial doses "
                        "(amoxicillin, ceftriaxone)")]


def test_one_dose_gives_none(tmp_path):
    con, _ = _load(tmp_path, events=CULTURE, drugs=_dose("2024-03-01 11:00"))
    assert _infections(con) == []


def test_topical_ophthalmic_and_inhaled_doses_give_none(tmp_path):
    con, _ = _load(tmp_path, events=CULTURE,
                   drugs=_dose("2024-03-01 11:00", "topical", "gentamicin")
                   + _dose("2024-03-01 23:00", "ophthalmic", "gentamicin")
                   + _dose("2024-03-02 11:00", "inhaled", "tobramycin"))
    assert _infections(con) == []


def test_doses_outside_the_window_give_none(tmp_path):
    # 25 h before the culture (window opens 24 h before) and 73 h after (closes 72 h after)
    con, _ = _load(tmp_path, events=CULTURE,
                   drugs=_dose("2024-02-29 09:00") + _dose("2024-03-04 11:00"))
    assert _infections(con) == []


def test_two_doses_at_one_time_count_once(tmp_path):
    con, _ = _load(tmp_path, events=CULTURE,
                   drugs=_dose("2024-03-01 11:00") + _dose("2024-03-01 11:00", "iv",
                                                             "vancomycin"))
    assert _infections(con) == []


def test_a_non_antimicrobial_gives_none(tmp_path):
    con, _ = _load(tmp_path, events=CULTURE,
                   drugs=_dose("2024-03-01 11:00", "iv", "dexamethasone")
                   + _dose("2024-03-01 23:00", "iv", "dexamethasone"))
    assert _infections(con) == []


def test_a_culture_loaded_earlier_and_doses_later_give_it(tmp_path):
    con = connect(tmp_path / "db.duckdb")
    assert load_csv_folder(con, _folder(tmp_path, "a", events=CULTURE)).reconciles
    assert _infections(con) == []
    report = load_csv_folder(con, _folder(tmp_path, "b", drugs=_dose("2024-03-01 11:00")
                                          + _dose("2024-03-01 23:00")))
    assert report.reconciles
    assert [t for t, _ in _infections(con)] == ["03-01 10:00"]


def test_a_diagnosis_infection_at_the_same_time_is_not_duplicated(tmp_path):
    con, report = _load(tmp_path, events=CULTURE,
                        drugs=_dose("2024-03-01 11:00") + _dose("2024-03-01 23:00"),
                        conditions="P1,S1,sepsis,ICD-10-CM,A41.9,2024-03-01 10:00,false\n")
    rows = _infections(con)
    assert [t for t, _ in rows] == ["03-01 10:00"]
    assert rows[0][1].startswith("diagnosis ")
    line = [t for t in report.tables if t.source.endswith("#tests for infection with "
                                                          "antimicrobials")]
    assert [(t.read, t.loaded, t.already_present) for t in line] == [(1, 0, 1)]


def test_a_reload_adds_nothing(tmp_path):
    con = connect(tmp_path / "db.duckdb")
    folder = _folder(tmp_path, "site", events=CULTURE,
                     drugs=_dose("2024-03-01 11:00") + _dose("2024-03-01 23:00"))
    assert load_csv_folder(con, folder).reconciles
    again = load_csv_folder(con, folder)
    assert again.reconciles
    assert len(_infections(con)) == 1


def _screen(tmp_path, folder: Path) -> str:
    from hyperinflam.cli import app as cli
    db = tmp_path / f"{folder.name}.duckdb"
    runner = CliRunner()
    loaded = runner.invoke(cli, ["load", "csv", str(folder), "--db", str(db)])
    assert loaded.exit_code == 0, loaded.output
    out = tmp_path / f"{folder.name}.csv"
    screened = runner.invoke(cli, ["screen", "--db", str(db), "--at", "2024-03-02T08:00:00Z",
                                   "--out", str(out)])
    assert screened.exit_code == 0, screened.output
    row = pd.read_csv(out).iloc[0]
    assert row["phoenix_score"] == 2  # by hand: coagulation 1 + 1 (module docstring)
    return row["phoenix_sepsis"]


def test_screen_phoenix_sepsis_met_with_culture_and_antimicrobials(tmp_path):
    doses = _dose("2024-03-01 11:00") + _dose("2024-03-01 23:00")
    assert _screen(tmp_path, _folder(tmp_path, "doses_only", drugs=doses)) == "unknown"
    assert _screen(tmp_path, _folder(tmp_path, "culture", events=CULTURE,
                                     drugs=doses)) == "met"


def _fhir_bundle(path: Path, culture_status: str = "final") -> Path:
    """A child, a blood culture Observation (LOINC 600-7, its result a coded organism: no
    measurement value) at 2024-03-01 10:00 UTC, and two IV ceftriaxone administrations at 11:00
    and 23:00 (route SNOMED 47625008 intravenous)."""
    entries = [{"resource": {"resourceType": "Patient", "id": "p1", "birthDate": "2016-01-15",
                             "gender": "female"}},
               {"resource": {"resourceType": "Observation", "id": "bc1", "status": culture_status,
                             "subject": {"reference": "Patient/p1"},
                             "code": {"coding": [{"system": "http://loinc.org", "code": "600-7"}],
                                      "text": "Blood culture"},
                             "effectiveDateTime": "2024-03-01T10:00:00Z",
                             "valueCodeableConcept": {"text": "no growth"}}}]
    for i, t in enumerate(("2024-03-01T11:00:00Z", "2024-03-01T23:00:00Z")):
        entries.append({"resource": {
            "resourceType": "MedicationAdministration", "id": f"ma{i}", "status": "completed",
            "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": {"text": "ceftriaxone"},
            "effectiveDateTime": t,
            "dosage": {"route": {"coding": [{"system": "http://snomed.info/sct",
                                             "code": "47625008"}]},
                       "dose": {"value": 1, "unit": "g"}}}})
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                "entry": entries}))
    return path


def test_fhir_culture_observation_and_two_doses_give_an_infection(tmp_path):
    from hyperinflam.sources.fhir.reader import load_fhir
    con = connect(tmp_path / "db.duckdb")
    report = load_fhir(con, _fhir_bundle(tmp_path / "bundle.json"))
    assert report.reconciles
    assert con.con.execute("SELECT strftime(time, '%m-%d %H:%M'), detail FROM event WHERE "
                           "event_type = 'infection_test'").fetchall() == [
        ("03-01 10:00", "Blood culture")]
    assert con.con.execute("SELECT count(*) FROM drug_administration WHERE drug = 'ceftriaxone'"
                           " AND route = 'iv'").fetchone()[0] == 2
    assert _infections(con) == [
        ("03-01 10:00", "suspected infection: Blood culture + 2 antimicrobial doses "
                        "(ceftriaxone)")]
    con.disconnect()


def test_fhir_entered_in_error_culture_gives_none(tmp_path):
    from hyperinflam.sources.fhir.reader import load_fhir
    con = connect(tmp_path / "db.duckdb")
    report = load_fhir(con, _fhir_bundle(tmp_path / "bundle.json", "entered-in-error"))
    assert report.reconciles
    assert _infections(con) == []
    assert con.con.execute("SELECT count(*) FROM quarantine WHERE target_table = 'event'"
                           ).fetchone()[0] == 1
    assert con.con.execute("SELECT count(*) FROM drug_administration WHERE drug = 'ceftriaxone'"
                           ).fetchone()[0] == 2
    con.disconnect()


def test_meds_antimicrobials_after_a_culture_loaded_earlier_give_an_infection(tmp_path):
    """The MEDS reader's call: a blood culture of person '1' loaded from CSV, then a MEDS
    extract (as MIMIC-IV MEDS writes it: MEDICATION//CefTRIAXone//Administered, no route: a
    missing route counts as systemic, §12.42) with two doses at 11:00 and 23:00."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    from hyperinflam.sources.meds import load_meds
    con = connect(tmp_path / "db.duckdb")
    folder = _folder(tmp_path, "csv", events=CULTURE.replace("P1,S1,", "1,,"))
    (folder / "person.csv").write_text("person_id,birth_date,sex\n1,2016-01-15,female\n")
    (folder / "stay.csv").write_text("stay_id,person_id,admit_time,discharge_time\n")
    (folder / "measurement.csv").unlink()
    assert load_csv_folder(con, folder).reconciles
    t = dt.datetime
    rows = [(1, t(2016, 1, 15), "MEDS_BIRTH"), (1, t(2024, 3, 1, 8), "ICU_ADMISSION//PICU"),
            (1, t(2024, 3, 1, 11), "MEDICATION//CefTRIAXone//Administered"),
            (1, t(2024, 3, 1, 23), "MEDICATION//CefTRIAXone//Administered"),
            (1, t(2024, 3, 10, 12), "ICU_DISCHARGE//PICU")]
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"subject_id": pa.array([r[0] for r in rows], pa.int64()),
                             "time": pa.array([r[1] for r in rows], pa.timestamp("us")),
                             "code": pa.array([r[2] for r in rows], pa.string()),
                             "numeric_value": pa.array([None] * len(rows), pa.float32())}),
                   path)
    report = load_meds(con, path, all_icu=True, max_age_years=None)
    assert report.reconciles
    assert con.con.execute("SELECT count(*) FROM drug_administration WHERE drug = "
                           "'ceftriaxone'").fetchone()[0] == 2
    assert _infections(con) == [
        ("03-01 10:00", "suspected infection: blood culture + 2 antimicrobial doses "
                        "(ceftriaxone)")]
    con.disconnect()
