"""Phenotype at the index time and PRISM III-24 for the study, values worked out by hand from
clinical reference 1.2 (HLH-2004), 2.2 (HScore) and 7.2 (PRISM III)."""

from datetime import datetime, timedelta

import pandas as pd
import pytest

from hyperinflam.engine import connect_memory
from hyperinflam.study.phenotype import phenotype_frames, phenotype_results

T0 = datetime(2024, 3, 1, 8, 0)


def h(hours):
    return T0 + timedelta(hours=hours)


def insert(con, table, rows):
    con.con.register("rows_to_insert", pd.DataFrame(rows))
    con.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM rows_to_insert")
    con.con.unregister("rows_to_insert")


def m(hours, variable, value, unit):
    return {"person_id": "p1", "time": h(hours), "variable": variable, "value": value,
            "unit": unit, "value_original": str(value), "unit_original": unit}


@pytest.fixture(scope="module")
def frames():
    con = connect_memory()
    insert(con, "person", [{"person_id": "p1", "birth_date": "2014-01-01", "sex": "female"}])
    insert(con, "stay", [{"stay_id": "s1", "person_id": "p1", "admit_time": T0,
                          "discharge_time": h(200)}])
    insert(con, "measurement", [
        m(20, "ferritin", 6500.0, "ng/mL"),        # HScore > 6000: 50; HLH >= 500: met
        m(20, "temperature", 39.5, "Cel"),         # HScore > 39.4: 49; HLH >= 38.5: met; PRISM 0
        m(20, "ast", 120.0, "U/L"),                # HScore >= 30: 19
        m(20, "fibrinogen", 200.0, "mg/dL"),       # 2.00 g/L <= 2.5: 30
        m(20, "triglycerides", 400.0, "mg/dL"),    # 4.52 mmol/L > 4: 64; HLH >= 3.0: met
        m(20, "hemoglobin", 8.5, "g/dL"),          # HScore <= 9.2; HLH 85 g/L < 90
        m(20, "wbc", 3.0, "10*3/uL"),              # HScore <= 5.0; PRISM 3000 is not < 3000
        m(20, "platelets", 80.0, "10*3/uL"),       # HScore <= 110; HLH < 100; PRISM 4
        m(26, "platelets", 30.0, "10*3/uL"),       # after the first 24 h: not PRISM III-24
        m(31, "ferritin", 20000.0, "ng/mL"),       # after the index: not at index
    ])
    insert(con, "condition", [{"person_id": "p1", "condition": "splenomegaly",
                               "onset_time": h(10), "is_underlying": False}])
    cohort = pd.DataFrame({"stay_id": ["s1"], "index_time": [h(30)], "admit_time": [T0],
                           "discharge_time": [h(200)]})
    return phenotype_frames(con, cohort)


def test_hscore_at_index(frames):
    at_index, _ = frames
    row = at_index.iloc[0]
    # 50 + 49 + 19 + 30 + 64 + 34 (3 lineages) + 23 (splenomegaly, hepatomegaly unknown) = 269
    assert row["hscore_points"] == 269
    # + immunosuppression 18 + marrow 35 + organomegaly up to 38 (15 more) = 337
    assert row["hscore_max_possible"] == 337
    assert row["hscore_ge_169"] == "met"


def test_hlh2004_at_index(frames):
    at_index, _ = frames
    row = at_index.iloc[0]
    # fever, splenomegaly, cytopenias (Hb + platelets), TG, ferritin = 5; 3 unknown
    assert row["hlh2004_met_count"] == 5
    assert row["hlh2004_result"] == "met"


def test_prism3_24_uses_the_first_24_hours_only(frames):
    _, prism = frames
    assert prism.iloc[0]["prism3_points"] == 4  # platelets 80 000/mm3; the 30 at +26 h is outside


def test_results_rows(frames):
    rows = phenotype_results("toy", *frames)
    hscore_median = rows[(rows.variable == "hscore_points") & (rows.stat_name == "median")]
    assert float(hscore_median.value.iloc[0]) == 269.0
    met = rows[(rows.variable == "hlh2004_result") & (rows.level == "met")
               & (rows.stat_name == "percent")]
    assert float(met.value.iloc[0]) == 100.0
    prism = rows[(rows.section == "baseline") & (rows.variable == "prism3_points")
                 & (rows.stat_name == "median")]
    assert float(prism.value.iloc[0]) == 4.0


@pytest.mark.parametrize("require, members", [("hscore_points >= 269", 1),
                                              ("hscore_points >= 270", 0),
                                              ("hlh2004_result == met", 1)])
def test_cohort_requirement_on_the_screen_at_index(require, members):
    """HScore at the first dose is 269 (worked out above): the requirement's edge."""
    from hyperinflam.study.cohort import extract_cohort
    from hyperinflam.study.definition import parse_study

    con = connect_memory()
    insert(con, "person", [{"person_id": "p1", "birth_date": "2014-01-01", "sex": "female"}])
    insert(con, "stay", [{"stay_id": "s1", "person_id": "p1", "admit_time": T0,
                          "discharge_time": h(200)}])
    insert(con, "measurement", [
        m(20, "ferritin", 6500.0, "ng/mL"), m(20, "temperature", 39.5, "Cel"),
        m(20, "ast", 120.0, "U/L"), m(20, "fibrinogen", 200.0, "mg/dL"),
        m(20, "triglycerides", 400.0, "mg/dL"), m(20, "hemoglobin", 8.5, "g/dL"),
        m(20, "wbc", 3.0, "10*3/uL"), m(20, "platelets", 80.0, "10*3/uL")])
    insert(con, "condition", [{"person_id": "p1", "condition": "splenomegaly",
                               "onset_time": h(10), "is_underlying": False}])
    insert(con, "drug_administration", [{"person_id": "p1", "drug": "anakinra",
                                         "drug_class": "il1_blocker", "dose": 100.0,
                                         "dose_unit": "mg", "route": "sc", "start_time": h(30)}])
    study = parse_study({"study": {"id": "t", "title": "t"}, "cohort": {"require": require}})
    frames = extract_cohort(con, study)
    assert len(frames.cohort) == members
