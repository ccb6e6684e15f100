"""Infections from ICD-9-CM diagnoses (issue 12 item 5): a diagnosis coded in ICD-9-CM counts as
an infection the way an ICD-10-CM one does (the ``event,infection,ICD9CM`` rows of
vocabulary/codes.csv, by prefix on the code without its dot, within ICD-9-CM only), in the CSV,
MEDS and FHIR readers. The expected events are listed by hand from the rows written here.

ICD-9-CM meanings (tabular list, CMS/NCHS FY2014): 038.9 unspecified septicemia, 995.92 severe
sepsis, 486 pneumonia organism unspecified, 599.0 urinary tract infection site not specified:
infections. 250.00 diabetes mellitus, 140.1 malignant neoplasm of lower lip (chapter 2: no
'1' or '14' prefix may catch it), V45.81 aortocoronary bypass status, 599.7 hematuria: not.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hyperinflam.engine import connect, connect_memory
from hyperinflam.sources.csv import load_csv_folder
from hyperinflam.sources.fhir.reader import load_fhir
from hyperinflam.sources.infections import infection_codes
from hyperinflam.sources.meds import load_meds
from hyperinflam.vocabulary import Vocabulary

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "example-csv"

#: (code as written, onset hour on 2024-03-02, infection?) -- by hand, see the module docstring.
DIAGNOSES = [("038.9", 1, True), ("995.92", 2, True), ("486", 3, True), ("250.00", 4, False),
             ("140.1", 5, False), ("V45.81", 6, False), ("599.0", 7, True),
             ("599.7", 8, False)]
INFECTION_HOURS = [h for _, h, infection in DIAGNOSES if infection]  # 1, 2, 3, 7


def _infections(con, person="%"):
    return con.con.execute(
        "SELECT person_id, strftime(time, '%m-%d %H:%M'), detail FROM event "
        "WHERE event_type = 'infection' AND person_id LIKE ? ORDER BY 1, 2", [person]).fetchall()


def test_the_icd9_rows_are_prefixes_of_their_own_system():
    codes = infection_codes(Vocabulary())
    icd9 = set(codes.loc[codes["family"] == "ICD9", "key"])
    assert {"03", "99592", "486", "5990"} <= icd9  # 038 septicemia is under 03 (030-039)
    # no prefix of the neoplasm, diabetes, V or hematuria codes
    for code in ("1401", "25000", "V4581", "5997", "140", "14", "1"):
        assert not any(code.startswith(k) for k in icd9), code
    for code in ("0389", "99592", "486", "5990", "77181", "99931", "99859", "99662", "0031"):
        assert any(code.startswith(k) for k in icd9), code
    # sarcoidosis 135, late effects 137-139, HIV 042 and neoplasms 140- are not infections
    for code in ("1359", "1370", "1390", "042", "1629"):
        assert not any(code.startswith(k) for k in icd9), code


def test_csv_icd9_diagnoses_are_infection_events(tmp_path):
    folder = tmp_path / "site"
    shutil.copytree(EXAMPLE, folder)
    lines = ["person_id,stay_id,condition,code_system,code,onset_time,is_underlying"]
    lines += [f"P001,S001,diagnosis {code},{'ICD-9-CM' if h % 2 else 'ICD9CM'},{code},"
              f"2024-03-02 {h:02d}:00,false" for code, h, _ in DIAGNOSES]
    # an ICD-9-CM prefix never matches another system's code: '038.9' written as ICD-10-CM
    lines.append("P001,S001,not ICD-9,ICD-10-CM,038.9,2024-03-02 09:00,false")
    # an underlying ICD-9-CM septicemia gives no event
    lines.append("P001,S001,old septicemia,ICD9CM,038.0,2020-01-01 00:00,true")
    (folder / "condition.csv").write_text("\n".join(lines) + "\n")
    con = connect(tmp_path / "db.duckdb")
    report = load_csv_folder(con, folder)
    assert report.reconciles
    events = _infections(con)
    # by hand: example-csv/event.csv has P001 03-01 05:00, 03-06 14:00 and P002 06-10 18:00
    # UTC; from the diagnoses P001 03-02 01:00 (038.9), 02:00 (995.92), 03:00 (486), 07:00
    # (599.0)
    assert [(p, t) for p, t, _ in events] == [
        ("P001", "03-01 05:00"), ("P001", "03-02 01:00"), ("P001", "03-02 02:00"),
        ("P001", "03-02 03:00"), ("P001", "03-02 07:00"), ("P001", "03-06 14:00"),
        ("P002", "06-10 18:00")]
    detail = dict(((p, t), d) for p, t, d in events)
    assert detail[("P001", "03-02 01:00")] == "diagnosis ICD-9-CM 038.9: diagnosis 038.9"
    assert detail[("P001", "03-02 02:00")] == "diagnosis ICD9CM 995.92: diagnosis 995.92"
    derived = next(t for t in report.tables if t.source.endswith("#diagnoses with infection codes"))
    assert (derived.read, derived.loaded, derived.already_present) == (4, 4, 0)
    con.disconnect()


def _meds_file(path: Path) -> Path:
    """One subject born 2015, in a PICU from 2024-03-01 08:00 to 03-10; the diagnoses at their
    hours of 2024-03-02, written as MEDS (MIMIC) writes them: without the dot."""
    t = dt.datetime
    rows = [(1, t(2015, 1, 1), "MEDS_BIRTH"), (1, t(2024, 3, 1, 8), "ICU_ADMISSION//PICU"),
            (1, t(2024, 3, 10, 12), "ICU_DISCHARGE//PICU"),
            # before the first PICU stay: underlying, no event
            (1, t(2023, 1, 5), "DIAGNOSIS//ICD//9//0380"),
            # ICD-10-CM still counts (sepsis A41.9) at 10:00
            (1, t(2024, 3, 2, 10), "DIAGNOSIS//ICD//10//A419")]
    rows += [(1, t(2024, 3, 2, h), "DIAGNOSIS//ICD//9//" + code.replace(".", ""))
             for code, h, _ in DIAGNOSES]
    table = pa.table({"subject_id": pa.array([r[0] for r in rows], pa.int64()),
                      "time": pa.array([r[1] for r in rows], pa.timestamp("us")),
                      "code": pa.array([r[2] for r in rows], pa.string()),
                      "numeric_value": pa.array([None] * len(rows), pa.float32())})
    pq.write_table(table, path)
    return path


def test_meds_icd9_diagnoses_are_infection_events(tmp_path):
    con = connect_memory()
    report = load_meds(con, _meds_file(tmp_path / "events.parquet"), all_icu=True,
                       max_age_years=None)
    assert report.reconciles
    events = _infections(con)
    # by hand: 03-02 01:00 (038.9), 02:00 (995.92), 03:00 (486), 07:00 (599.0), 10:00 (A41.9)
    assert [t for _, t, _ in events] == ["03-02 01:00", "03-02 02:00", "03-02 03:00",
                                         "03-02 07:00", "03-02 10:00"]
    assert [d for _, _, d in events][:4] == [
        "diagnosis ICD9CM 038.9: ICD9CM 038.9", "diagnosis ICD9CM 995.92: ICD9CM 995.92",
        "diagnosis ICD9CM 486: ICD9CM 486", "diagnosis ICD9CM 599.0: ICD9CM 599.0"]


def test_fhir_icd9_conditions_are_infection_events(tmp_path):
    entries = [{"resource": {"resourceType": "Patient", "id": "p1", "birthDate": "2015-01-01",
                             "gender": "female"}}]
    for i, (code, h, _) in enumerate(DIAGNOSES):
        entries.append({"resource": {
            "resourceType": "Condition", "id": f"c{i}", "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-9-cm", "code": code}],
                     "text": f"diagnosis {code}"},
            "onsetDateTime": f"2024-03-02T{h:02d}:00:00Z"}})
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                  "entry": entries}))
    con = connect(tmp_path / "db.duckdb")
    report = load_fhir(con, bundle)
    assert report.reconciles
    events = _infections(con)
    assert [t for _, t, _ in events] == ["03-02 01:00", "03-02 02:00", "03-02 03:00",
                                         "03-02 07:00"]
    assert events[0][2] == "diagnosis ICD-9-CM 038.9: diagnosis 038.9"
    con.disconnect()


def test_omop_icd9_condition_concepts_are_infection_events(tmp_path):
    """OMOP: the condition's concept is an ICD9CM concept (vocabulary_id ICD9CM, concept_code
    dotted, as Athena spells them); the concept ids are made up for the test."""
    from hyperinflam.sources.omop.mapping import load_omop

    folder = tmp_path / "omop"
    folder.mkdir()
    (folder / "person.csv").write_text(
        "person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth\n1,8532,2015,1,1\n")
    concepts = ["concept_id,vocabulary_id,concept_code,concept_name"]
    conditions = ["condition_occurrence_id,person_id,condition_concept_id,condition_start_date,"
                  "condition_start_datetime"]
    for i, (code, h, _) in enumerate(DIAGNOSES):
        concepts.append(f"{90000 + i},ICD9CM,{code},diagnosis {code}")
        conditions.append(f"{i + 1},1,{90000 + i},2024-03-02,2024-03-02 {h:02d}:00:00")
    (folder / "concept.csv").write_text("\n".join(concepts) + "\n")
    # an inpatient visit (9201), no PICU stay: the diagnoses have no stay
    (folder / "visit_occurrence.csv").write_text(
        "visit_occurrence_id,person_id,visit_concept_id,visit_start_date,visit_end_date\n"
        "1,1,9201,2024-03-01,2024-03-10\n")
    (folder / "condition_occurrence.csv").write_text("\n".join(conditions) + "\n")
    con = connect(tmp_path / "db.duckdb")
    report = load_omop(con, folder)
    assert report.reconciles
    events = _infections(con)
    assert [t for _, t, _ in events] == ["03-02 01:00", "03-02 02:00", "03-02 03:00",
                                         "03-02 07:00"]
    assert events[0][2] == "diagnosis ICD9CM 038.9: diagnosis 038.9"
    con.disconnect()
