"""Respiratory support recorded as FHIR R4 DeviceUseStatement (issue 12 item 2).

A DeviceUseStatement says a device was used on the patient; its code is the ``type`` of the Device
it references (same Bundle, the load's Device NDJSON file, or contained), mapped through the
``support`` rows of vocabulary/codes.csv exactly as a Procedure.code is. Expected values are by
hand: SNOMED 426854004 is "High flow oxygen nasal cannula" (codes.csv row of
high_flow_nasal_cannula), 47545007 is CPAP; Phoenix respiratory from clinical reference §5.2 (1
point: any respiratory support and S/F < 292; SpO2 88 % on FiO2 0.35 gives S/F = 88 / 0.35 =
251.4).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from hyperinflam.criteria import phoenix
from hyperinflam.engine import connect_memory
from hyperinflam.screening.screen import screen_frame
from hyperinflam.sources.fhir.reader import load_fhir

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
AT = "2024-03-01 12:00"


def _patient():
    return {"resourceType": "Patient", "id": "p1", "birthDate": "2019-01-15", "gender": "female"}


def _picu():
    return {"resourceType": "Location", "id": "picu", "name": "PICU",
            "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                  "code": "PEDICU"}]}]}


def _encounter():
    return {"resourceType": "Encounter", "id": "e1", "status": "in-progress",
            "class": {"code": "IMP"}, "subject": {"reference": "Patient/p1"},
            "period": {"start": "2024-03-01T06:00:00Z"},
            "location": [{"location": {"reference": "Location/picu"}}]}


def _device(rid, code, text=None):
    concept = {"coding": [{"system": SNOMED, "code": code}]}
    if text:
        concept["text"] = text
    return {"resourceType": "Device", "id": rid, "type": concept}


def _dus(rid, device, status="completed", **timing):
    r = {"resourceType": "DeviceUseStatement", "id": rid, "status": status,
         "subject": {"reference": "Patient/p1"}, "device": {"reference": device}}
    r.update(timing)
    return r


def _obs(rid, loinc, value, unit, time="2024-03-01T11:00:00Z"):
    return {"resourceType": "Observation", "id": rid, "status": "final",
            "code": {"coding": [{"system": LOINC, "code": loinc}]},
            "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
            "effectiveDateTime": time,
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}


HFNC_PERIOD = {"timingPeriod": {"start": "2024-03-01T10:00:00Z", "end": "2024-03-02T08:00:00Z"}}

#: The DeviceUseStatements, in this order (their line in DeviceUseStatement.ndjson).
STATEMENTS = [
    _dus("hfnc-use", "Device/hfnc", **HFNC_PERIOD),                        # 1: loads
    _dus("odd-use", "Device/odd", timingDateTime="2024-03-01T09:00:00Z"),  # 2: unknown_code
    _dus("error-use", "Device/hfnc", status="entered-in-error", **HFNC_PERIOD),  # 3: not_done
    _dus("plan-use", "Device/hfnc", status="intended", **HFNC_PERIOD),     # 4: not_done
    _dus("lost-use", "Device/nowhere", **HFNC_PERIOD),                     # 5: unknown_code
    _dus("untimed-use", "Device/hfnc"),                                    # 6: missing time
    dict(_dus("cpap-use", "#cpap", status="stopped",                       # 7: loads (contained)
              timingDateTime="2024-03-01T07:00:00Z"),
         contained=[_device("cpap", "47545007")]),
]
DEVICES = [_device("hfnc", "426854004"), _device("odd", "99999999", "Nasal widget")]


def _bundle(resources) -> dict:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:{i}", "resource": r}
                      for i, r in enumerate(resources, 1)]}


def _quarantine(con):
    return con.con.execute("""SELECT source_file, source_line, reason, detail FROM quarantine
        WHERE target_table = 'organ_support' ORDER BY source_line""").fetchall()


def _check_load(con, report, line_of):
    """The load of STATEMENTS, wherever they came from; line_of(i) is where statement i (1-based)
    is filed."""
    assert report.reconciles
    t = report.counts("organ_support")
    # 7 statements read: 2 loaded, 5 quarantined (read = loaded + already present + quarantined)
    assert (t.read, t.loaded, t.already_present, t.quarantined) == (7, 2, 0, 5)
    assert t.reasons == {"unknown_code": 2, "not_done": 2, "missing_required_value": 1}
    rows = con.con.execute("""SELECT person_id, stay_id, support, start_time, end_time, dose
        FROM organ_support ORDER BY start_time""").fetchall()
    assert rows == [
        # the contained Device (CPAP), timingDateTime: a start and no end, as a Procedure's
        # performedDateTime
        ("p1", None, "cpap", dt.datetime(2024, 3, 1, 7, 0), None, None),
        ("p1", None, "high_flow_nasal_cannula", dt.datetime(2024, 3, 1, 10, 0),
         dt.datetime(2024, 3, 2, 8, 0), None),
    ]
    got = {(line, reason) for _, line, reason, _ in _quarantine(con)}
    assert got == {(line_of(2), "unknown_code"), (line_of(3), "not_done"),
                   (line_of(4), "not_done"), (line_of(5), "unknown_code"),
                   (line_of(6), "missing_required_value")}
    details = {line: detail for _, line, _, detail in _quarantine(con)}
    assert "snomed|99999999 (Nasal widget)" in details[line_of(2)]
    assert details[line_of(2)].endswith("(DeviceUseStatement odd-use)")
    assert "'entered-in-error'" in details[line_of(3)]
    assert "'intended'" in details[line_of(4)]
    assert "Device/nowhere is not a Device of this load" in details[line_of(5)]
    assert "start_time" in details[line_of(6)]
    # the domain record sees high flow and CPAP as recorded rows, the other kinds as recorded
    # with no rows (respiratory support is one record, docs/data-model.md)
    domains = dict(con.con.execute("""SELECT domain, basis FROM source_domains
        WHERE kind = 'support' AND recorded""").fetchall())
    assert domains["support:high_flow_nasal_cannula"] == "rows"
    assert domains["support:cpap"] == "rows"
    assert domains["support:invasive_ventilation"] == "no rows (organ support recorded)"
    assert not any("DeviceUseStatement" in n or "Device " in n for n in report.notes
                   if n.startswith("resource types not read"))


def test_bundle_device_use_statements(tmp_path):
    resources = [_patient(), _picu(), _encounter(), *DEVICES, *STATEMENTS]
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(_bundle(resources)))
    con = connect_memory()
    report = load_fhir(con, path)
    first = len(resources) - len(STATEMENTS)  # entries before the first statement
    _check_load(con, report, lambda i: first + i)
    assert {f for f, _, _, _ in _quarantine(con)} == {str(path)}


def test_bulk_ndjson_device_use_statements(tmp_path):
    files = {"Patient.000.ndjson": [_patient()], "Location.000.ndjson": [_picu()],
             "Encounter.000.ndjson": [_encounter()], "Device.000.ndjson": DEVICES,
             "DeviceUseStatement.000.ndjson": STATEMENTS}
    for name, lines in files.items():
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in lines))
    con = connect_memory()
    report = load_fhir(con, tmp_path)
    _check_load(con, report, lambda i: i)
    assert {Path(f).name for f, _, _, _ in _quarantine(con)} == {"DeviceUseStatement.000.ndjson"}
    # a reload adds nothing: the two rows are already present, the five quarantined again
    again = load_fhir(con, tmp_path)
    t = again.counts("organ_support")
    assert again.reconciles and (t.read, t.loaded, t.already_present, t.quarantined) == (7, 0, 2, 5)
    assert con.con.execute("SELECT count(*) FROM organ_support").fetchone()[0] == 2


def test_a_malformed_device_use_statement_line_is_filed_under_organ_support(tmp_path):
    (tmp_path / "Patient.ndjson").write_text(json.dumps(_patient()) + "\n")
    (tmp_path / "Device.ndjson").write_text(json.dumps(DEVICES[0]) + "\n")
    (tmp_path / "DeviceUseStatement.ndjson").write_text(
        json.dumps(STATEMENTS[0]) + "\n" + '{"resourceType": "DeviceUseStatement", "id"\n')
    con = connect_memory()
    report = load_fhir(con, tmp_path)
    t = report.counts("organ_support")
    assert report.reconciles and (t.read, t.loaded, t.quarantined) == (2, 1, 1)
    assert _quarantine(con)[0][1:3] == (2, "malformed_line")


# --- screening: Phoenix respiratory (clinical reference §5.2) ------------------------------------
def _screen(tmp_path, statements):
    """The PICU stay with SpO2 88 % and FiO2 35 % at 11:00 (S/F = 88 / 0.35 = 251.4 < 292),
    screened at 12:00, with these DeviceUseStatements."""
    resources = [_patient(), _picu(), _encounter(), *DEVICES,
                 _obs("spo2", "59408-5", 88, "%"), _obs("fio2", "3150-0", 35, "%"), *statements]
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(_bundle(resources)))
    con = connect_memory()
    assert load_fhir(con, path).reconciles
    return screen_frame(con, at=AT, criteria=["phoenix"]).set_index("stay_id").loc["e1"]


def test_phoenix_respiratory_point_from_a_device_use_statement(tmp_path):
    with_hfnc = _screen(tmp_path, [STATEMENTS[0]])  # high flow 10:00 .. next day 08:00
    assert with_hfnc["phoenix_respiratory_points"] == 1
    assert with_hfnc["phoenix_respiratory_support"] == "documented_support"
    # the statement entered in error and the unknown device are no support: FiO2 0.35 > 0.21
    # still gives the point by the authors' EHR rule (§5.2)
    without = _screen(tmp_path, [STATEMENTS[1], STATEMENTS[2]])
    assert without["phoenix_respiratory_points"] == 1
    assert without["phoenix_respiratory_support"] == "fio2_above_room_air"


def test_phoenix_respiratory_without_the_fio2_rule(tmp_path, monkeypatch):
    """With criteria.phoenix.FIO2_IMPLIES_SUPPORT off only the recorded support counts: 1 point
    with the high-flow DeviceUseStatement, 0 without (S/F 251.4 < 292 but no support)."""
    monkeypatch.setattr(phoenix, "FIO2_IMPLIES_SUPPORT", False)
    assert _screen(tmp_path, [STATEMENTS[0]])["phoenix_respiratory_points"] == 1
    without = _screen(tmp_path, [STATEMENTS[2]])
    assert without["phoenix_respiratory_points"] == 0
    assert without["phoenix_respiratory_support"] == "none"


@pytest.mark.parametrize("status", ["active", "completed", "stopped", "on-hold"])
def test_statuses_of_use_load(tmp_path, status):
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(_bundle([_patient(), *DEVICES,
                                        _dus("u", "Device/hfnc", status=status, **HFNC_PERIOD)])))
    con = connect_memory()
    assert load_fhir(con, path).counts("organ_support").loaded == 1
