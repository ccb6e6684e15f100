"""OMOP: infections from the code the site recorded, not only from the standard concept (issue
12 item 5). An OMOP ETL maps a site's ICD-10-CM / ICD-9-CM diagnosis to a standard SNOMED CT
concept (condition_concept_id) and keeps the site's code as condition_source_concept_id (a
concept of vocabulary ICD10CM / ICD9CM) and condition_source_value. A standard concept that is
not on the SNOMED infection list (here 'Fever', and a made-up 'Disorder') still gives an
infection when the source code is an ICD infection code (the ``event,infection`` rows of
vocabulary/codes.csv); the condition row keeps the standard SNOMED code.

The OMOP tables are written here by hand; the concept ids are made up for the test (the
concept codes are real). ICD meanings (ICD-10-CM FY2024 tabular list; ICD-9-CM FY2014): A41.9
sepsis, unspecified organism and 038.9 unspecified septicemia (infections); E11.9 type 2
diabetes mellitus without complications and 250.00 (not). SNOMED CT 386661006 Fever and
73211009 Diabetes mellitus are not on the infection list (vocabulary/codes.csv).
"""

from __future__ import annotations

from pathlib import Path

from hyperinflam.engine import connect
from hyperinflam.sources.infections import SOURCE_SUFFIX
from hyperinflam.sources.omop.mapping import load_omop

CONCEPTS = """\
concept_id,vocabulary_id,concept_code,concept_name,standard_concept
71,SNOMED,386661006,Fever,S
72,SNOMED,73211009,Diabetes mellitus,S
81,ICD10CM,A41.9,"Sepsis, unspecified organism",
82,ICD10CM,E11.9,Type 2 diabetes mellitus without complications,
91,ICD9CM,038.9,Unspecified septicemia,
92,ICD9CM,250.00,Diabetes mellitus without mention of complication,
"""

#: (standard concept, source concept, source value, hour on 2024-03-02, status, infection?)
#: -- by hand from the module docstring.
CONDITIONS = [
    (71, 81, "A41.9", 1, "", True),      # source concept ICD10CM A41.9
    (71, 0, "A41.9", 2, "", True),       # no source concept; the value has ICD-10's form
    (71, 0, "A419", 3, "", True),        # the same without the dot
    (72, 82, "E11.9", 4, "", False),     # source concept ICD10CM E11.9: no infection
    (72, 0, "E11.9", 5, "", False),      # value E11.9: no infection
    (71, 91, "0389", 6, "", True),       # source concept ICD9CM 038.9 (value as written)
    (71, 0, "038.9", 7, "", True),       # dotted ICD-9-CM value, no source concept
    (72, 92, "250.00", 8, "", False),    # ICD9CM 250.00: no infection
    (71, 0, "038", 9, "", False),        # a bare number is no ICD code here (SNOMED?)
    (71, 81, "A41.9", 10, "underlying", False),  # an underlying condition gives none
]
INFECTION_HOURS = [h for *_, h, _s, infection in CONDITIONS if infection]  # 1, 2, 3, 6, 7


def _omop(folder: Path) -> Path:
    folder.mkdir()
    (folder / "person.csv").write_text(
        "person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth\n1,8532,2015,1,1\n")
    (folder / "concept.csv").write_text(CONCEPTS)
    # an inpatient visit (9201): the fallback stay of a child
    (folder / "visit_occurrence.csv").write_text(
        "visit_occurrence_id,person_id,visit_concept_id,visit_start_date,visit_end_date\n"
        "1,1,9201,2024-03-01,2024-03-10\n")
    rows = ["condition_occurrence_id,person_id,condition_concept_id,condition_start_date,"
            "condition_start_datetime,condition_source_value,condition_source_concept_id,"
            "condition_status_source_value,visit_occurrence_id"]
    for i, (std, src, value, h, status, _) in enumerate(CONDITIONS):
        rows.append(f"{i + 1},1,{std},2024-03-02,2024-03-02 {h:02d}:00:00,{value},{src},"
                    f"{status},1")
    (folder / "condition_occurrence.csv").write_text("\n".join(rows) + "\n")
    return folder


def _infections(con):
    return con.con.execute(
        "SELECT strftime(time, '%m-%d %H:%M'), detail FROM event WHERE event_type = 'infection' "
        "ORDER BY time").fetchall()


def test_an_icd_source_code_of_a_snomed_condition_is_an_infection(tmp_path):
    con = connect(tmp_path / "db.duckdb")
    report = load_omop(con, _omop(tmp_path / "omop"))
    assert report.reconciles
    events = _infections(con)
    assert [t for t, _ in events] == [f"03-02 {h:02d}:00" for h in INFECTION_HOURS]
    detail = dict(events)
    assert detail["03-02 01:00"] == ("diagnosis ICD10CM A41.9 (source code of SNOMED "
                                     "386661006): Fever")
    assert detail["03-02 03:00"] == ("diagnosis ICD10CM A419 (source code of SNOMED "
                                     "386661006): Fever")
    assert detail["03-02 06:00"] == ("diagnosis ICD9CM 038.9 (source code of SNOMED "
                                     "386661006): Fever")
    # the condition rows keep their standard SNOMED code
    assert con.con.execute("SELECT DISTINCT code_system, code FROM condition ORDER BY 2"
                           ).fetchall() == [("SNOMED", "386661006"), ("SNOMED", "73211009")]
    derived = next(t for t in report.tables if t.source.endswith(SOURCE_SUFFIX))
    assert (derived.read, derived.loaded, derived.already_present) == (5, 5, 0)
    # a reload writes nothing twice (the conditions are already present: no new infection)
    again = load_omop(con, tmp_path / "omop")
    assert again.reconciles
    assert len(_infections(con)) == len(INFECTION_HOURS)
    con.disconnect()


def test_source_codes_follow_the_site_time_zone(tmp_path):
    """Times without an offset are local (--tz): 01:00 in Amsterdam (UTC+1 in March) is 00:00
    UTC; the source code still meets its condition row."""
    con = connect(tmp_path / "db.duckdb")
    report = load_omop(con, _omop(tmp_path / "omop"), tz="Europe/Amsterdam")
    assert report.reconciles
    assert [t for t, _ in _infections(con)] == [f"03-02 {h - 1:02d}:00" for h in INFECTION_HOURS]
    con.disconnect()


def test_a_quarantined_condition_gives_no_infection_from_its_source_code(tmp_path):
    """A condition row the load quarantines (its person is unknown) gives no infection: the
    source codes count only for condition rows the load wrote."""
    folder = _omop(tmp_path / "omop")
    text = (folder / "condition_occurrence.csv").read_text()
    (folder / "condition_occurrence.csv").write_text(
        text + "99,2,71,2024-03-02,2024-03-02 12:00:00,A41.9,81,,\n")
    con = connect(tmp_path / "db.duckdb")
    report = load_omop(con, folder)
    assert report.reconciles
    assert con.con.execute("SELECT count(*) FROM quarantine WHERE target_table = 'condition'"
                           ).fetchone()[0] == 1
    assert [t for t, _ in _infections(con)] == [f"03-02 {h:02d}:00" for h in INFECTION_HOURS]
    con.disconnect()


# ---------------------------------------------------------------------------------------------
# A culture recorded as an OMOP measurement is a test for infection ordered (event
# 'infection_test', clinical reference §5.1, §12.43), not a measurement; with two systemic
# antimicrobial doses it gives the suspected infection (§12.42: doses from 24 h before to 72 h
# after the test). Rows by hand; concept 555 is made up (its code is real: SNOMED CT 30088009
# Blood culture), 4024958 (SNOMED 117015009 Throat culture) and 1778162 (cefuroxime, RxNorm
# ingredient 2194) are the concept ids of vocabulary/codes.csv, 3024929 platelets.
CULTURE_MEASUREMENTS = [
    # id, concept, datetime, source value, value, unit: what it becomes
    (1, 4024958, "2024-03-02 10:00:00", "117015009", "", ""),   # culture by concept id
    (2, 4024958, "2024-03-02 10:00:00", "117015009", "", ""),   # its exact duplicate
    (3, 555, "2024-03-04 10:00:00", "30088009", "", ""),        # by code (concept table)
    (4, 0, "2024-03-05 10:00:00", "600-7", "", ""),             # by source value (LOINC)
    (5, 3024929, "2024-03-02 06:00:00", "777-3", "80", "10*3/uL"),  # platelets: a measurement
]


def _omop_cultures(folder: Path) -> Path:
    folder.mkdir()
    (folder / "person.csv").write_text(
        "person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth\n1,8532,2015,1,1\n")
    (folder / "concept.csv").write_text(
        "concept_id,vocabulary_id,concept_code,concept_name,standard_concept\n"
        "555,SNOMED,30088009,Blood culture,S\n")
    (folder / "visit_occurrence.csv").write_text(
        "visit_occurrence_id,person_id,visit_concept_id,visit_start_date,visit_end_date\n"
        "1,1,9201,2024-03-01,2024-03-10\n")
    rows = ["measurement_id,person_id,measurement_concept_id,measurement_date,"
            "measurement_datetime,measurement_source_value,value_as_number,unit_concept_id,"
            "unit_source_value,visit_occurrence_id"]
    rows += [f"{i},1,{c},{t[:10]},{t},{s},{v},0,{u},1" for i, c, t, s, v, u in CULTURE_MEASUREMENTS]
    (folder / "measurement.csv").write_text("\n".join(rows) + "\n")
    # two oral cefuroxime doses: 2 h and 14 h after the first culture
    (folder / "drug_exposure.csv").write_text(
        "drug_exposure_id,person_id,drug_concept_id,drug_exposure_start_date,"
        "drug_exposure_start_datetime,drug_exposure_end_date,quantity,dose_unit_source_value,"
        "route_source_value,visit_occurrence_id\n"
        "1,1,1778162,2024-03-02,2024-03-02 12:00:00,2024-03-02,250,mg,oral,1\n"
        "2,1,1778162,2024-03-03,2024-03-03 00:00:00,2024-03-03,250,mg,oral,1\n")
    return folder


def test_an_omop_culture_measurement_is_a_test_for_infection(tmp_path):
    con = connect(tmp_path / "db.duckdb")
    report = load_omop(con, _omop_cultures(tmp_path / "omop"))
    assert report.reconciles
    assert con.con.execute("SELECT strftime(time, '%m-%d %H:%M'), detail FROM event "
                           "WHERE event_type = 'infection_test' ORDER BY time").fetchall() == [
        ("03-02 10:00", "117015009"), ("03-04 10:00", "Blood culture"), ("03-05 10:00", "600-7")]
    tests = next(t for t in report.tables if t.table == "event"
                 and t.source.endswith("#measurement"))
    # rows 1-4 read, row 2 the exact duplicate of row 1
    assert (tests.read, tests.loaded, tests.quarantined) == (4, 3, 1)
    assert dict(tests.reasons) == {"duplicate_row": 1}
    # only the platelets are a measurement
    measurement = report.counts("measurement")
    assert (measurement.read, measurement.loaded) == (1, 1)
    assert con.con.execute("SELECT variable FROM measurement").fetchall() == [("platelets",)]
    # the culture at 03-02 10:00 and the doses at 12:00 and 03-03 00:00 give one infection at
    # 10:00; the cultures of 03-04 and 03-05 have no dose from 24 h before them on
    assert con.con.execute("SELECT count(*) FROM drug_administration WHERE drug = 'cefuroxime' "
                           "AND drug_class = 'antimicrobial'").fetchone()[0] == 2
    assert _infections(con) == [
        ("03-02 10:00", "suspected infection: 117015009 + 2 antimicrobial doses (cefuroxime)")]
    # a reload writes nothing twice
    again = load_omop(con, tmp_path / "omop")
    assert again.reconciles
    assert con.con.execute("SELECT count(*) FROM event WHERE event_type = 'infection_test'"
                           ).fetchone()[0] == 3
    assert len(_infections(con)) == 1
    con.disconnect()
