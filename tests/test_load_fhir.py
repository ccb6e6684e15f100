"""FHIR R4 reader on the real samples (issue 5 items 3, 5, 7): the extracts in tests/data
(synthea_bulk_ndjson_smart10, synthea_r4_bundles_smart, fhir_r4_spec_examples; their SOURCE.md).

Expected counts are computed here from the source files with the standard json module and the
code files read with csv, independently of the reader; the literals beside them were counted in
the raw files by hand (grep / jq-style, the method is in each comment).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hyperinflam.cli import app
from hyperinflam.engine import connect_memory
from hyperinflam.errors import SourceError
from hyperinflam.sources.fhir.reader import FhirSettings, load_fhir

DATA = Path(__file__).resolve().parent / "data"
VOCAB = Path(__file__).resolve().parents[1] / "src" / "hyperinflam" / "vocabulary"
BULK = DATA / "synthea_bulk_ndjson_smart10" / "ndjson"
BUNDLES = DATA / "synthea_r4_bundles_smart" / "bundles"
SPEC = DATA / "fhir_r4_spec_examples"
LOINC_URI = "http://loinc.org"


def _loinc_map() -> dict[str, str]:
    with open(VOCAB / "codes.csv", newline="", encoding="utf-8") as handle:
        return {r["code"]: r["target"] for r in csv.DictReader(handle)
                if r["system"] == "LOINC" and r["kind"] == "measurement"}


def _culture_codes() -> set[str]:
    """LOINC codes of a test for infection (event 'infection_test', clinical reference §5.1):
    such an Observation is an event, not a measurement."""
    with open(VOCAB / "codes.csv", newline="", encoding="utf-8") as handle:
        return {r["code"] for r in csv.DictReader(handle)
                if r["system"] == "LOINC" and r["kind"] == "event"
                and r["target"] == "infection_test"}


def _resources(folder: Path):
    """(resource) for every resource in every Bundle / resource JSON file under folder."""
    for path in sorted(folder.rglob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if "resourceType" not in doc:
            continue
        if doc["resourceType"] == "Bundle":
            for entry in doc.get("entry", []):
                if "resource" in entry:
                    yield entry["resource"]
        else:
            yield doc


def _observation_rows(obs):
    """The value rows of an Observation: itself (when it has a value or no components) and each
    component."""
    has_value = "dataAbsentReason" in obs or any(k.startswith("value") for k in obs)
    rows = [obs] if has_value or not obs.get("component") else []
    return rows + list(obs.get("component", []))


def _expected_measurements(resources) -> tuple[int, dict[str, int]]:
    """(rows read, loaded rows per variable): a row loads when a LOINC code maps, the value is a
    numeric valueQuantity without comparator and the Observation has an effective time with a
    clock time; a row repeated identically (same subject, time, code, value, unit) loads once."""
    loinc, cultures = _loinc_map(), _culture_codes()
    read, loaded, seen = 0, {}, set()
    for r in resources:
        if r["resourceType"] != "Observation":
            continue
        if any(c.get("system") == LOINC_URI and c.get("code") in cultures
               for c in r.get("code", {}).get("coding", [])):
            continue  # a culture (observation-f206, blood culture 600-7): an event
        time = r.get("effectiveDateTime") or (r.get("effectivePeriod") or {}).get("start")
        for row in _observation_rows(r):
            read += 1
            codes = [c["code"] for c in row.get("code", {}).get("coding", [])
                     if c.get("system") == LOINC_URI and c["code"] in loinc]
            q = row.get("valueQuantity") or {}
            if codes and isinstance(q.get("value"), (int, float)) and "comparator" not in q \
                    and time and "T" in time and r.get("status") not in ("entered-in-error",
                                                                         "cancelled"):
                var = loinc[codes[0]]
                key = (r["subject"]["reference"], time, var, q["value"], q.get("unit"))
                if key not in seen:
                    seen.add(key)
                    loaded[var] = loaded.get(var, 0) + 1
    return read, loaded


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bulk():
    con = connect_memory()
    report = load_fhir(con, BULK, settings=FhirSettings(picu_encounter_classes=("IMP",)))
    return con, report


def test_bulk_ndjson_counts_match_the_files(bulk):
    con, report = bulk
    assert report.reconciles
    patients = _lines(BULK / "patient.000.ndjson")
    encounters = _lines(BULK / "encounter.000.ndjson")
    conditions = _lines(BULK / "condition.000.ndjson")
    requests = _lines(BULK / "medicationrequest.000.ndjson")
    # Literals counted in the files: 5 lines in patient.000.ndjson; 1 Encounter with
    # "class":{..."code":"IMP"} (grep -c '"code":"IMP"'); 65 lines in condition.000.ndjson;
    # 1 Patient with deceasedDateTime.
    assert report.counts("person").read == report.counts("person").loaded == len(patients) == 5
    imp = [e for e in encounters if e["class"]["code"] == "IMP"]
    assert report.counts("stay").loaded == len(imp) == 1
    assert report.counts("condition").loaded == len(conditions) == 65
    deceased = [p for p in patients if "deceasedDateTime" in p]
    assert report.counts("event").loaded == len(deceased) == 1
    assert report.counts("measurement").read == 0  # no Observation file in this export
    # No hyperinflammation drug among the orders: each is quarantined, naming its RxNorm code;
    # but one "Amoxicillin 500 MG Oral Tablet" (an antimicrobial of drugs.csv; grep -c
    # Amoxicillin) has no dose unit. Penicillin V is not in drugs.csv (penicillin g is).
    amox = sum("Amoxicillin" in json.dumps(r) for r in requests)
    assert amox == 1
    assert report.counts("drug_administration").read == len(requests)
    assert report.counts("drug_administration").reasons == {"unknown_drug": len(requests) - amox,
                                                            "missing_unit": amox}
    assert any("log.ndjson" in n and "not FHIR" in n for n in report.notes)
    # Offsets -04:00 / -05:00 become naive UTC; relative references resolve to the Patient id.
    first = imp[0]
    got = con.con.execute("SELECT person_id, admit_time FROM stay WHERE stay_id = ?",
                          [first["id"]]).fetchone()
    assert got[0] == first["subject"]["reference"].split("/")[1]
    import datetime as dt
    want = dt.datetime.fromisoformat(first["period"]["start"]).astimezone(dt.timezone.utc)
    assert got[1] == want.replace(tzinfo=None)
    # Conditions linked to an inpatient encounter carry its stay_id.
    linked = sum(1 for c in conditions
                 if c.get("encounter", {}).get("reference", "").split("/")[-1] in
                 {e["id"] for e in imp})
    assert con.con.execute("SELECT count(stay_id) FROM condition").fetchone()[0] == linked == 1


def test_bulk_quarantine_points_at_file_and_line(bulk):
    con, _ = bulk
    rows = con.con.execute("SELECT source_file, source_line, detail FROM quarantine").fetchall()
    requests = _lines(BULK / "medicationrequest.000.ndjson")
    for source_file, line, detail in rows[:50]:
        assert source_file.endswith("medicationrequest.000.ndjson")
        resource = requests[line - 1]
        assert resource["id"] in detail
        if "has no dose_unit" not in detail:  # the amoxicillin order names its dose instead
            assert resource["medicationCodeableConcept"]["coding"][0]["code"] in detail


def test_reload_is_idempotent(bulk):
    con, first = bulk
    n_quarantine = con.con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    again = load_fhir(con, BULK, settings=FhirSettings(picu_encounter_classes=("IMP",)))
    assert again.reconciles
    assert again.counts("person").already_present == 5 and again.counts("person").loaded == 0
    assert again.counts("condition").already_present == 65
    assert con.con.execute("SELECT count(*) FROM quarantine").fetchone()[0] == n_quarantine


def test_screen_runs_on_the_bulk_load(bulk):
    from hyperinflam.screening.screen import screen

    con, _ = bulk
    frame = screen(con, step_hours=24).to_pandas()
    stays = {r[0] for r in con.con.execute("SELECT stay_id FROM stay").fetchall()}
    assert set(frame["stay_id"]) == stays and len(stays) == 1  # the one IMP encounter


def test_default_picu_rule_finds_no_icu_in_synthea():
    con = connect_memory()
    report = load_fhir(con, BULK)
    assert report.counts("stay").read == 0
    # 134 lines in encounter.000.ndjson (wc -l), none of them an ICU
    assert any("134 Encounters read, 0 PICU stays" in n for n in report.notes)


def test_synthea_bundles_urn_uuid_references_and_values():
    con = connect_memory()
    report = load_fhir(con, BUNDLES)
    assert report.reconciles
    resources = list(_resources(BUNDLES))
    read, loaded = _expected_measurements(resources)
    m = report.counts("measurement")
    assert m.read == read
    assert m.loaded == sum(loaded.values())
    got = dict(con.con.execute("SELECT variable, count(*) FROM measurement GROUP BY 1").fetchall())
    assert got == loaded
    # by hand (grep -c in the three Bundles): WBC 6690-2 1 + 2 + 3, platelets 777-3 the same,
    # oral temperature 8331-1 only in erick_auer's Bundle, once
    assert loaded["wbc"] == loaded["platelets"] == 6 and loaded["temperature"] == 1
    assert report.counts("person").loaded == sum(r["resourceType"] == "Patient" for r in resources)
    # urn:uuid subjects resolve to the Patient ids
    persons = {r[0] for r in con.con.execute("SELECT person_id FROM person").fetchall()}
    assert {r[0] for r in con.con.execute("SELECT DISTINCT person_id FROM measurement").fetchall()} \
        <= persons
    # One value checked by hand: the first WBC in the first bundle, in 10*3/uL (canonical).
    first = next(r for r in resources if r["resourceType"] == "Observation"
                 and r["code"]["coding"][0]["code"] == "6690-2")
    value = con.con.execute("SELECT value, unit FROM measurement WHERE variable = 'wbc' AND "
                            "value_original = ?", [repr(first["valueQuantity"]["value"])]).fetchone()
    assert value == (pytest.approx(first["valueQuantity"]["value"]), "10*3/uL")


def test_spec_examples_reasons_and_conversions():
    con = connect_memory()
    report = load_fhir(con, SPEC)
    assert report.reconciles
    resources = list(_resources(SPEC))
    read, loaded = _expected_measurements(resources)
    m = report.counts("measurement")
    assert m.read == read and m.loaded == sum(loaded.values())
    assert report.counts("person").read == sum(r["resourceType"] == "Patient" for r in resources)
    assert {"unknown_code", "data_absent", "not_done", "missing_required_value"} <= set(m.reasons)
    # observation-f001: glucose? no - hemoglobin 7.2 g/dL from observation-f005 style code g/dL
    hb = con.con.execute("SELECT value, unit FROM measurement WHERE variable = 'hemoglobin'").fetchall()
    assert hb and all(u == "g/dL" for _, u in hb)
    # A contained Medication (#med0301) is resolved: its name appears in the quarantine detail.
    admin = json.loads((SPEC / "resources" / "medicationadministration-medadmin0301.json").read_text())
    contained = admin["contained"][0]["code"]
    name = contained.get("text") or contained["coding"][0]["display"]
    # Its name, "Vancomycin Hydrochloride", is the antimicrobial vancomycin of drugs.csv: the
    # row is quarantined only because its Patient pat1 is not among the examples.
    assert name.startswith("Vancomycin")
    reason, raw = con.con.execute("SELECT reason, raw FROM quarantine WHERE source_file LIKE "
                                  "'%medadmin0301.json'").fetchone()
    assert reason == "unknown_person" and json.loads(raw)["drug"] == "vancomycin"
    # observation-f206 (blood culture, LOINC 600-7) is a test for infection with no effective
    # time: quarantined as an event without a time, not read as a measurement.
    assert con.con.execute("SELECT reason FROM quarantine WHERE target_table = 'event' AND "
                           "detail LIKE '%Observation f206%'").fetchall() == [
        ("missing_required_value",)]
    assert any("package.json" in n for n in report.notes)


# -- bad input, built from real sample lines ----------------------------------------------------
def test_bad_input_is_quarantined_with_file_and_line(tmp_path):
    patient = (BULK / "patient.000.ndjson").read_text().splitlines()[0]
    pid = json.loads(patient)["id"]

    def obs(i, **kw):
        base = {"resourceType": "Observation", "id": f"o{i}", "status": "final",
                "code": {"coding": [{"system": LOINC_URI, "code": "2276-4"}]},
                "subject": {"reference": f"Patient/{pid}"},
                "effectiveDateTime": "2020-01-01T10:00:00-05:00",
                "valueQuantity": {"value": 500, "unit": "ng/mL",
                                  "system": "http://unitsofmeasure.org", "code": "ng/mL"}}
        base.update(kw)
        return json.dumps(base)

    lines = [
        obs(1),  # loads: ferritin 500 ng/mL at 15:00 UTC
        obs(2, subject={"reference": f"https://fhir.example.org/r4/Patient/{pid}"},  # absolute
            effectiveDateTime="2020-01-01T16:00:00Z"),
        obs(3, code={"coding": [{"system": LOINC_URI, "code": "99999-9"}]}),  # unknown code
        obs(4, valueQuantity={"value": 5, "unit": "furlong"}),  # unit cannot be converted
        obs(5, valueQuantity={"value": 5e7, "unit": "ng/mL"}),  # outside plausible range
        obs(6, effectiveDateTime=None),  # missing time
        obs(7, subject={"reference": "Patient/nobody"}),  # dangling reference
        '{"resourceType": "Observation", "id": "broken"',  # malformed JSON
        obs(9, valueQuantity={"value": 5, "comparator": "<", "unit": "ng/mL"}),  # censored
        obs(10, valueQuantity=None, dataAbsentReason={"text": "not performed"}),
    ]
    (tmp_path / "Patient.000.ndjson").write_text(patient + "\n")
    (tmp_path / "Observation.000.ndjson").write_text("\n".join(lines) + "\n")
    (tmp_path / "log.ndjson").write_text('{"eventId": "kickoff"}\n')
    con = connect_memory()
    report = load_fhir(con, tmp_path)
    m = report.counts("measurement")
    assert report.reconciles and m.read == 10 and m.loaded == 2
    got = dict(con.con.execute("SELECT reason, source_line FROM quarantine "
                               "WHERE target_table = 'measurement'").fetchall())
    assert got == {"unknown_code": 3, "unknown_unit": 4, "implausible_value": 5,
                   "missing_required_value": 6, "unknown_person": 7, "malformed_line": 8,
                   "no_quantity": 9, "data_absent": 10}
    import datetime as dt
    assert con.con.execute("SELECT time FROM measurement ORDER BY time").fetchall() == [
        (dt.datetime(2020, 1, 1, 15, 0),), (dt.datetime(2020, 1, 1, 16, 0),)]


def test_site_codes_file_adds_a_code(tmp_path):
    """observation-f001 is glucose in blood, LOINC 15074-8 (not in the packaged codes), 6.3 mmol/L:
    a site file maps it; 6.3 x 18.016 = 113.5008 mg/dL (clinical reference 11.1)."""
    import shutil

    for name in ("patient-f001.json", "observation-f001.json"):
        shutil.copy(SPEC / "resources" / name, tmp_path / name)
    site = tmp_path.parent / f"{tmp_path.name}-site.csv"
    site.write_text("system,code,kind,target,display,status,reference\n"
                    "loinc,15074-8,measurement,glucose,Glucose [Moles/volume] in Blood,,site\n")
    plain = connect_memory()
    report = load_fhir(plain, tmp_path)
    assert report.counts("measurement").reasons == {"unknown_code": 1}
    con = connect_memory()
    report = load_fhir(con, tmp_path, codes=site)
    assert report.counts("measurement").loaded == 1
    value, unit, original = con.con.execute(
        "SELECT value, unit, unit_original FROM measurement").fetchone()
    assert (value, unit, original) == (pytest.approx(6.3 * 18.016), "mg/dL", "mmol/L")


def test_errors_are_one_clear_message(tmp_path):
    con = connect_memory()
    with pytest.raises(SourceError, match="no such file or folder"):
        load_fhir(con, tmp_path / "missing")
    (tmp_path / "codes.csv").write_text("system,code\nloinc,1\n")
    with pytest.raises(SourceError, match="missing column"):
        load_fhir(con, BULK, codes=tmp_path / "codes.csv")
    result = CliRunner().invoke(app, ["load", "fhir", str(tmp_path / "missing"),
                                      "--db", str(tmp_path / "x.duckdb")])
    assert result.exit_code == 2 and "no such file or folder" in " ".join(result.output.split())
    assert "Traceback" not in result.output
