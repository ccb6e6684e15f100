"""The MEDS reader's organ support, infusions, diagnoses and weights (issue 12 item 6), on the real
MIMIC-IV demo extract (tests/data/mimic_iv_demo_meds; its SOURCE.md).

Every expected row is rebuilt here from the raw events with pandas, by the rules of
docs/sources-meds.md and the item ids' meanings in MIT-LCP/mimic-code (cited in codes.csv): an
interval's k-th START event pairs with the k-th END event of the same item and subject (both in
time order); a vasoactive's START value is its rate in mcg/kg/min (vasopressin: units/hour, not
per kg, so no dose); a diagnosis code gets its dot after the third character (ICD-9 E codes: the
fourth); a stay's weight is the 226512 Admission Weight (Kg) charted nearest its admission,
from 24 h before it to its discharge.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from hyperinflam.engine import connect_memory
from hyperinflam.sources.meds import DAYS_PER_400_YEARS, interval_end_code, load_meds

EVENTS = (Path(__file__).resolve().parent / "data" / "mimic_iv_demo_meds"
          / "mimic_iv_demo_meds_events.parquet")
SHIFT = dt.timedelta(days=DAYS_PER_400_YEARS)  # the demo is moved back 400 years
#: MIMIC-IV item -> (support, dose unit of the START value) (codes.csv, mimic-code medication/*.sql)
ITEMS = {"PROCEDURE//{}//225792": ("invasive_ventilation", None),
         "INFUSION_{}//221906": ("norepinephrine", "ug/kg/min"),
         "INFUSION_{}//221289": ("epinephrine", "ug/kg/min"),
         "INFUSION_{}//221662": ("dopamine", "ug/kg/min"),
         "INFUSION_{}//221653": ("dobutamine", "ug/kg/min"),
         "INFUSION_{}//221986": ("milrinone", "ug/kg/min"),
         "INFUSION_{}//222315": ("vasopressin", None)}


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return pq.read_table(EVENTS).to_pandas()


@pytest.fixture(scope="module")
def loaded():
    con = connect_memory()
    report = load_meds(con, EVENTS, all_icu=True, max_age_years=None)
    return con, report


def _float32_text(value) -> float:
    return float(repr(np.float32(value)).removeprefix("np.float32(").removesuffix(")"))


def _icu_stays(events: pd.DataFrame) -> list[tuple[int, pd.Timestamp, pd.Timestamp]]:
    icu = events[events["code"].str.match(r"ICU_(ADMISSION|DISCHARGE)//")].copy()
    icu["admission"] = icu["code"].str.startswith("ICU_ADMISSION")
    icu = icu.sort_values(["subject_id", "time", "admission"])
    stays = []
    for subject, group in icu.groupby("subject_id"):  # 15 stays of 10 subjects
        rows = list(group.itertuples())
        stays += [(subject, a.time, b.time) for a, b in zip(rows, rows[1:])
                  if a.admission and not b.admission]
    return stays


def test_interval_end_codes():
    assert interval_end_code("PROCEDURE//START//225792") == "PROCEDURE//END//225792"
    assert interval_end_code("INFUSION_START//221906") == "INFUSION_END//221906"
    assert interval_end_code("LAB//50924") is None


def test_ventilation_and_vasoactive_infusions_are_organ_support(loaded, events):
    con, report = loaded
    expected = []
    for pattern, (support, unit) in ITEMS.items():
        for subject in sorted(events["subject_id"].unique()):
            mine = events[events["subject_id"] == subject]
            starts = mine[mine["code"] == pattern.format("START")].sort_values("time")
            ends = mine[mine["code"] == pattern.format("END")].sort_values("time")
            assert len(starts) == len(ends)  # the extract pairs every start
            for s, e in zip(starts.itertuples(), ends.itertuples()):
                dose = _float32_text(s.value) if unit and pd.notna(s.value) else None
                expected.append((str(subject), support, (s.time - SHIFT).to_pydatetime(),
                                 (e.time - SHIFT).to_pydatetime(), dose,
                                 unit if dose is not None else None))
    got = con.con.execute("SELECT person_id, support, start_time, end_time, dose, dose_unit "
                          "FROM organ_support").fetchall()
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    assert {r[1] for r in expected} >= {"invasive_ventilation", "norepinephrine", "vasopressin"}
    assert report.counts("organ_support").loaded == len(expected) == 89
    # vasopressin's rate (units/hour) is said, not silently dropped
    assert any(n.startswith("vasopressin: 1 rates not loaded as doses") for n in report.notes)
    # a stay is attached when the start lies in it
    stays = _icu_stays(events)
    for person, _, start, _, _, _ in expected:
        inside = [(s, a - SHIFT, b - SHIFT) for s, a, b in stays
                  if str(s) == person and a - SHIFT <= start <= b - SHIFT]
        n = con.con.execute("SELECT count(stay_id) FROM organ_support WHERE person_id = ? "
                            "AND start_time = ?", [person, start]).fetchone()[0]
        assert (n > 0) == bool(inside)


def _dotted(code: str, version: str) -> str:
    cut = 4 if version == "9" and code.startswith("E") else 3
    return code if len(code) <= cut else code[:cut] + "." + code[cut:]


def test_diagnoses_are_conditions_with_dotted_icd_codes(loaded, events):
    con, report = loaded
    diag = events[events["code"].str.startswith("DIAGNOSIS//ICD//")].copy()
    parts = diag["code"].str.split("//")
    diag["system"] = "ICD" + parts.str[2] + "CM"
    diag["dotted"] = [_dotted(c, v) for c, v in zip(parts.str[3], parts.str[2])]
    first = {s: min(a for subj, a, _ in _icu_stays(events) if subj == s)
             for s in diag["subject_id"].unique()}
    diag["underlying"] = [t < first[s] for s, t in zip(diag["subject_id"], diag["time"])]
    got = con.con.execute("SELECT person_id, code_system, code, onset_time, is_underlying "
                          "FROM condition").fetchall()
    expected = [(str(s), sy, c, (t - SHIFT).to_pydatetime(), u) for s, sy, c, t, u in
                zip(diag["subject_id"], diag["system"], diag["dotted"], diag["time"],
                    diag["underlying"])]
    assert sorted(got) == sorted(expected)
    assert report.counts("condition").loaded == len(diag) == 1105
    assert any(u for *_, u in expected) and not all(u for *_, u in expected)
    # spelled as codes.csv spells them (e.g. E78.5 hyperlipidaemia: DIAGNOSIS//ICD//10//E785)
    assert ("ICD10CM", "E78.5") in {(sy, c) for _, sy, c, _, _ in got}


def test_a_mapped_diagnosis_takes_its_concept_name(tmp_path, events):
    """A diagnosis whose code is a condition row of codes.csv is named by its concept (site rows
    too): here a site maps the subject's first ICD-10 code to splenomegaly."""
    diag = events[events["code"].str.startswith("DIAGNOSIS//ICD//10//")]
    code = diag["code"].iloc[0].split("//")[3]
    codes = tmp_path / "codes.csv"
    codes.write_text("kind,target,system,code,concept_id,unit_when_missing,display,status,"
                     f"reference\ncondition,splenomegaly,ICD10CM,{_dotted(code, '10')},,,,,test\n")
    con = connect_memory()
    load_meds(con, EVENTS, codes=[codes], all_icu=True, max_age_years=None)
    names = {r[0] for r in con.con.execute(
        "SELECT DISTINCT condition FROM condition WHERE code = ?", [_dotted(code, "10")]).fetchall()}
    assert names == {"splenomegaly"}


def test_admission_weight_is_the_stay_weight(loaded, events):
    con, _ = loaded
    weights = events[events["code"] == "LAB//226512//kg"]
    expected = {}
    for subject, admit, discharge in _icu_stays(events):
        inside = weights[(weights["subject_id"] == subject)
                         & (weights["time"] >= admit - pd.Timedelta(hours=24))
                         & (weights["time"] <= discharge)].copy()
        if len(inside):
            inside["distance"] = (inside["time"] - admit).abs()
            nearest = inside.sort_values(["distance"], kind="stable").iloc[0]
            expected[(str(subject), (admit - SHIFT).to_pydatetime())] = _float32_text(nearest["value"])
    got = {(p, a): w for p, a, w in con.con.execute(
        "SELECT person_id, admit_time, weight_kg FROM stay WHERE weight_kg IS NOT NULL").fetchall()}
    assert got == expected and len(expected) > 0
    # every 226512 / 224639 weight is also a weight measurement
    n = int(events["code"].isin(["LAB//226512//kg", "LAB//224639//kg"]).sum())
    n_infusion = int((events["code"] == "SUBJECT_WEIGHT_AT_INFUSION//KG").sum())
    assert con.con.execute("SELECT count(*) FROM measurement WHERE variable = 'weight'"
                           ).fetchone()[0] + con.con.execute(
        "SELECT count(*) FROM quarantine WHERE target_table = 'measurement' AND "
        "json_extract_string(raw, '$.variable') = 'weight'").fetchone()[0] == n + n_infusion


def test_every_event_is_still_accounted_for(loaded, events):
    _, report = loaded
    assert report.reconciles
    assert report.events_read == len(events)
    assert report.events_staged + sum(report.events_out_of_scope.values()) == len(events)
    assert "DIAGNOSIS" not in report.events_out_of_scope  # every diagnosis is staged now
