"""PRISM III points (clinical reference §7): worked examples of §7.4, every threshold of the §7.2
table just below / at / just above, unit invariance (§11.1) and missing = assumed normal (§7.3).

Expected points are read by hand from the §7.2 table, never from the module under test. Every
case is registered at import and all are evaluated in one query per engine (the ``backend``
fixture: DuckDB and Spark; tests/widetable.py ``Batch``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import ibis
import pandas as pd
import pytest

from hyperinflam import vocabulary
from hyperinflam.criteria import discover, prism3
from widetable import Batch

VOCAB = vocabulary.load()

# Ages in days used for the four PRISM III age groups (§7.1: 0-30, 31-365, 366-4380, >= 4381).
AGE_DAYS = {"neonate": 10, "infant": 122, "child": 2000, "adolescent": 14 * 365}

# Short names -> wide-table columns (FeatureSpec.column of the module's inputs).
COLUMN = {
    "sbp": "sbp_min_first24h", "hr": "heart_rate_max_first24h", "temp_min": "temperature_min_first24h",
    "temp_max": "temperature_max_first24h", "gcs": "gcs_total_min_first24h",
    "pupils": "pupils_fixed_count_max_first24h", "pupils_both": "pupils_fixed_bilateral_any_stay",
    "ph_min": "ph_min_first24h", "ph_max": "ph_max_first24h", "tco2_min": "bicarbonate_min_first24h",
    "tco2_max": "bicarbonate_max_first24h", "paco2": "paco2_max_first24h", "pao2": "pao2_min_first24h",
    "glucose": "glucose_max_first24h", "k": "potassium_max_first24h", "creat": "creatinine_max_first24h",
    "bun": "bun_max_first24h", "wbc": "wbc_min_first24h", "pt": "pt_max_first24h", "ptt": "aptt_max_first24h",
    "plt": "platelets_min_first24h",
}


def frame(rows: list[dict]) -> pd.DataFrame:
    """Wide rows with the base columns and every PRISM III input (NULL unless given); a row
    names its age ('group' or 'age_days', default adolescent) and 'hours' since admission."""
    admit = datetime(2024, 3, 1, 8, 0)
    records = []
    for i, row in enumerate(rows):
        row = dict(row)
        age_days = float(row.pop("age_days", AGE_DAYS[row.pop("group", "adolescent")]))
        hours = float(row.pop("hours", 12.0))
        eval_time = admit + timedelta(hours=hours)
        rec = {
            "person_id": f"p{i}", "stay_id": f"s{i}", "eval_time": eval_time,
            "admit_time": admit, "discharge_time": admit + timedelta(days=5),
            "birth_date": (eval_time - timedelta(days=age_days)).date(), "sex": "female",
            "weight_kg": 20.0, "age_days": age_days, "age_months": age_days / 30.4375,
            "age_months_at_admit": (age_days - hours / 24) / 30.4375, "hours_since_admit": hours,
        }
        for spec in prism3.INPUTS:
            rec[spec.column] = None
        for key, value in row.items():
            rec[COLUMN[key]] = value
        records.append(rec)
    frame = pd.DataFrame(records)
    for spec in prism3.INPUTS:
        frame[spec.column] = frame[spec.column].astype(
            "boolean" if spec.source == "condition" else "Float64")
    return frame


def wide(rows: list[dict]) -> ibis.Table:
    return ibis.memtable(frame(rows))


#: Every case of this module: one query per engine.
BATCH = Batch(prism3, frame)
case, cases = BATCH.add, BATCH.add_all


@pytest.fixture(scope="module")
def results(backend):
    return BATCH.evaluate(backend)


# §7.4 worked example 1 (adolescent, 14 y).
EXAMPLE_1 = {
    "group": "adolescent", "sbp": 80, "hr": 150, "temp_min": 39.5, "temp_max": 39.5, "gcs": 12,
    "pupils": 0, "ph_min": 7.25, "tco2_min": 15, "ph_max": 7.30, "tco2_max": 15, "paco2": 45,
    "pao2": 85, "glucose": 250, "k": 4.5, "creat": 1.5, "bun": 30, "wbc": 2.5, "pt": 18,
    "ptt": 60, "plt": 60,
}
EXAMPLE_1_ITEMS = {
    "sbp": 3, "heart_rate": 3, "temperature": 0, "mental_status": 0, "pupils": 0, "acidosis": 2,
    "ph_alkalosis": 0, "pco2": 0, "total_co2": 0, "pao2": 0, "glucose": 2, "potassium": 0,
    "creatinine": 2, "bun": 3, "wbc": 4, "pt_ptt": 3, "platelets": 4,
}


WORKED_EXAMPLE_1 = case(EXAMPLE_1)
# SBP 44 (< 45 -> 7); heart rate 120 measured and normal; the 15 other items unmeasured.
WORKED_EXAMPLE_2 = case({"group": "infant", "sbp": 44, "hr": 120})
NOTHING_MEASURED = case({"group": "child"})


def test_worked_example_1_adolescent(results):
    out = results.loc[WORKED_EXAMPLE_1]
    for item, expected in EXAMPLE_1_ITEMS.items():
        assert out[f"prism3_{item}_points"] == expected, item
    assert out["prism3_neurologic_points"] == 0
    assert out["prism3_nonneurologic_points"] == 26
    assert out["prism3_points"] == 26
    assert out["prism3_age_group"] == "adolescent"
    assert out["prism3_n_assumed_normal"] == 0
    assert out["prism3_missing"] == ""


def test_worked_example_2_infant_missing_assumed_normal(results):
    out = results.loc[WORKED_EXAMPLE_2]
    assert out["prism3_age_group"] == "infant"
    assert out["prism3_points"] == 7
    assert out["prism3_nonneurologic_points"] == 7
    assert out["prism3_neurologic_points"] == 0
    assert out["prism3_n_assumed_normal"] == 15
    missing = out["prism3_missing"].split(",")
    assert "sbp" not in missing and "heart_rate" not in missing
    assert set(missing) == {
        "temperature", "gcs_total", "pupils", "ph", "bicarbonate", "paco2", "pao2", "glucose",
        "potassium", "creatinine", "bun", "wbc", "pt", "aptt", "platelets"}


def test_nothing_measured_scores_zero_and_counts_all_17_items(results):
    out = results.loc[NOTHING_MEASURED]
    assert out["prism3_points"] == 0
    assert out["prism3_n_assumed_normal"] == 17
    assert len(out["prism3_missing"].split(",")) == 17


PH_AND_TCO2, PH_ALONE = cases([{"ph_min": 7.25, "tco2_min": 4}, {"ph_min": 7.25}])


def test_acidosis_counted_once_with_worse_points(results):
    # pH 7.25 (2) and total CO2 4 (6): one item, the worse points (§7.2 scoring rules).
    assert results.loc[PH_AND_TCO2, "prism3_acidosis_points"] == 6
    # pH alone still scores the item; total CO2 unmeasured does not make it "assumed normal".
    out = results.loc[PH_ALONE]
    assert out["prism3_acidosis_points"] == 2
    assert out["prism3_n_assumed_normal"] == 16
    assert "bicarbonate" in out["prism3_missing"].split(",")


# (group, inputs, item, expected points) — each threshold below / at / above, native units.
BOUNDARIES = [
    # SBP (mmHg) 7 below the band, 3 inside "low-high" (half-open upper side, §12 row 13).
    *[(g, {"sbp": v}, "sbp", p) for g, cases in {
        "neonate": [(39, 7), (40, 3), (55, 3), (55.4, 3), (56, 0)],
        "infant": [(44, 7), (45, 3), (65, 3), (66, 0)],
        "child": [(54, 7), (55, 3), (75, 3), (76, 0)],
        "adolescent": [(64, 7), (65, 3), (85, 3), (86, 0)],
    }.items() for v, p in cases],
    # Heart rate: 3 from the lower edge, 4 above the upper edge.
    *[(g, {"hr": v}, "heart_rate", p) for g, cases in {
        "neonate": [(214, 0), (215, 3), (225, 3), (226, 4)],
        "infant": [(214, 0), (215, 3), (225, 3), (226, 4)],
        "child": [(184, 0), (185, 3), (205, 3), (206, 4)],
        "adolescent": [(144, 0), (145, 3), (155, 3), (156, 4)],
    }.items() for v, p in cases],
    # Temperature < 33 or > 40 -> 3.
    ("child", {"temp_min": 32.9, "temp_max": 37}, "temperature", 3),
    ("child", {"temp_min": 33.0, "temp_max": 40.0}, "temperature", 0),
    ("child", {"temp_min": 36, "temp_max": 40.1}, "temperature", 3),
    # Mental status GCS < 8 -> 5.
    ("child", {"gcs": 7}, "mental_status", 5),
    ("child", {"gcs": 8}, "mental_status", 0),
    # Pupils: one fixed 7, both 11 (count or the bilateral flag).
    ("child", {"pupils": 0}, "pupils", 0),
    ("child", {"pupils": 1}, "pupils", 7),
    ("child", {"pupils": 2}, "pupils", 11),
    ("child", {"pupils_both": True}, "pupils", 11),
    ("child", {"pupils_both": False}, "pupils", 0),
    # Acidosis: pH 7.0-7.28 -> 2, < 7.0 -> 6; total CO2 5-16.9 -> 2, < 5 -> 6.
    ("child", {"ph_min": 6.99}, "acidosis", 6),
    ("child", {"ph_min": 7.00}, "acidosis", 2),
    ("child", {"ph_min": 7.28}, "acidosis", 2),
    ("child", {"ph_min": 7.29}, "acidosis", 0),
    ("child", {"tco2_min": 4.9}, "acidosis", 6),
    ("child", {"tco2_min": 5.0}, "acidosis", 2),
    ("child", {"tco2_min": 16.9}, "acidosis", 2),
    ("child", {"tco2_min": 17.0}, "acidosis", 0),
    # Alkalosis: 7.48-7.55 -> 2, > 7.55 -> 3.
    ("child", {"ph_max": 7.47}, "ph_alkalosis", 0),
    ("child", {"ph_max": 7.48}, "ph_alkalosis", 2),
    ("child", {"ph_max": 7.55}, "ph_alkalosis", 2),
    ("child", {"ph_max": 7.56}, "ph_alkalosis", 3),
    # PCO2: 50.0-75.0 -> 1, > 75.0 -> 3.
    ("child", {"paco2": 49.9}, "pco2", 0),
    ("child", {"paco2": 50.0}, "pco2", 1),
    ("child", {"paco2": 75.0}, "pco2", 1),
    ("child", {"paco2": 75.1}, "pco2", 3),
    # Total CO2 > 34.0 -> 4.
    ("child", {"tco2_max": 34.0}, "total_co2", 0),
    ("child", {"tco2_max": 34.1}, "total_co2", 4),
    # PaO2: 42.0-49.9 -> 3, < 42.0 -> 6.
    ("child", {"pao2": 41.9}, "pao2", 6),
    ("child", {"pao2": 42.0}, "pao2", 3),
    ("child", {"pao2": 49.9}, "pao2", 3),
    ("child", {"pao2": 50.0}, "pao2", 0),
    # Glucose > 200 mg/dL -> 2; potassium > 6.9 -> 3.
    ("child", {"glucose": 200}, "glucose", 0),
    ("child", {"glucose": 201}, "glucose", 2),
    ("child", {"k": 6.9}, "potassium", 0),
    ("child", {"k": 7.0}, "potassium", 3),
    # Creatinine (mg/dL) > 0.85 / 0.90 / 0.90 / 1.30 -> 2.
    ("neonate", {"creat": 0.85}, "creatinine", 0),
    ("neonate", {"creat": 0.86}, "creatinine", 2),
    ("infant", {"creat": 0.90}, "creatinine", 0),
    ("infant", {"creat": 0.91}, "creatinine", 2),
    ("child", {"creat": 0.90}, "creatinine", 0),
    ("child", {"creat": 0.91}, "creatinine", 2),
    ("adolescent", {"creat": 1.30}, "creatinine", 0),
    ("adolescent", {"creat": 1.31}, "creatinine", 2),
    # Urea nitrogen (mg/dL) > 11.9 (neonate) / > 14.9 -> 3.
    ("neonate", {"bun": 11.9}, "bun", 0),
    ("neonate", {"bun": 12.0}, "bun", 3),
    ("infant", {"bun": 14.9}, "bun", 0),
    ("infant", {"bun": 15.0}, "bun", 3),
    ("adolescent", {"bun": 14.9}, "bun", 0),
    ("adolescent", {"bun": 15.0}, "bun", 3),
    # WBC < 3000 /mm3 -> 4 (canonical 10^3/uL).
    ("child", {"wbc": 2.999}, "wbc", 4),
    ("child", {"wbc": 3.0}, "wbc", 0),
    # PT > 22.0 or PTT > 85.0 (neonate) / > 57.0 -> 3.
    ("child", {"pt": 22.0}, "pt_ptt", 0),
    ("child", {"pt": 22.1}, "pt_ptt", 3),
    ("neonate", {"ptt": 85.0}, "pt_ptt", 0),
    ("neonate", {"ptt": 85.1}, "pt_ptt", 3),
    ("neonate", {"ptt": 60.0}, "pt_ptt", 0),
    ("infant", {"ptt": 57.0}, "pt_ptt", 0),
    ("infant", {"ptt": 57.1}, "pt_ptt", 3),
    ("adolescent", {"ptt": 57.1}, "pt_ptt", 3),
    # Platelets (/mm3): < 50 000 -> 5, 50 000-99 999 -> 4, 100 000-200 000 -> 2.
    ("child", {"plt": 49.999}, "platelets", 5),
    ("child", {"plt": 50.0}, "platelets", 4),
    ("child", {"plt": 99.999}, "platelets", 4),
    ("child", {"plt": 100.0}, "platelets", 2),
    ("child", {"plt": 200.0}, "platelets", 2),
    ("child", {"plt": 200.001}, "platelets", 0),
]


BOUNDARY_CASES = cases({"group": g, **inputs} for g, inputs, _, _ in BOUNDARIES)


def test_every_threshold_below_at_above(results):
    failures = [
        (g, inputs, item, expected, int(results.loc[key, f"prism3_{item}_points"]))
        for key, (g, inputs, item, expected) in zip(BOUNDARY_CASES, BOUNDARIES)
        if results.loc[key, f"prism3_{item}_points"] != expected
    ]
    assert failures == []


AGE_EDGES = [(30.9, "neonate"), (31, "infant"), (365.5, "infant"), (366, "child"),
             (4380.99, "child"), (4381, "adolescent")]


AGE_EDGE_CASES = cases({"age_days": age} for age, _ in AGE_EDGES)


def test_age_group_edges_in_completed_days(results):
    out = results.loc[AGE_EDGE_CASES]
    assert list(out["prism3_age_group"]) == [group for _, group in AGE_EDGES]


def _example_1_in_other_units() -> dict:
    convert = VOCAB.convert
    si = dict(EXAMPLE_1)
    si.update({
        "temp_min": convert("temperature", 103.1, "degF"),  # 39.5 Cel
        "temp_max": convert("temperature", 103.1, "degF"),
        "sbp": convert("sbp", 80 / 7.50062, "kPa"),
        "paco2": convert("paco2", 6.0, "kPa"),  # 45.0 mmHg
        "pao2": convert("pao2", 85 / 7.50062, "kPa"),
        "glucose": convert("glucose", 250 / 18.016, "mmol/L"),
        "creat": convert("creatinine", 132.6, "umol/L"),  # 1.5 mg/dL
        "bun": convert("bun", 30 / 2.8014, "mmol/L"),  # urea mmol/L
        "wbc": convert("wbc", 2500, "/mm3"),
        "plt": convert("platelets", 60_000, "/uL"),
    })
    return si


IN_TWO_UNITS = cases([EXAMPLE_1, _example_1_in_other_units()])


def test_same_patient_in_other_units_scores_the_same(results):
    conventional, converted = results.loc[IN_TWO_UNITS].itertuples(index=False)
    assert converted.prism3_points == conventional.prism3_points == 26


OTHER_UNIT_BOUNDARIES = [
    # Adolescent creatinine > 1.30 mg/dL (> 115 umol/L): 115 umol/L = 1.3009 -> 1.30 -> 0.
    ({"creat": ("creatinine", 115, "umol/L")}, "creatinine", 0),
    ({"creat": ("creatinine", 116, "umol/L")}, "creatinine", 2),
    # Platelets given per uL: 200 000 /uL is in the 2-point band, 200 001 is not.
    ({"plt": ("platelets", 200_000, "/uL")}, "platelets", 2),
    ({"plt": ("platelets", 200_001, "/uL")}, "platelets", 0),
    ({"plt": ("platelets", 49_999, "/uL")}, "platelets", 5),
    ({"plt": ("platelets", 50_000, "/uL")}, "platelets", 4),
    # WBC 3000 cells/uL is not < 3000.
    ({"wbc": ("wbc", 3000, "cells/uL")}, "wbc", 0),
    ({"wbc": ("wbc", 2999, "cells/uL")}, "wbc", 4),
    # Temperature 104.0 F = 40.0 C is not > 40; 104.2 F = 40.1 C is.
    ({"temp_max": ("temperature", 104.0, "degF")}, "temperature", 0),
    ({"temp_max": ("temperature", 104.2, "degF")}, "temperature", 3),
    # PaO2 42.0 mmHg = 5.5996 kPa: recorded in kPa at 2 dp (5.60 -> 42.0 mmHg) scores 3.
    ({"pao2": ("pao2", 5.60, "kPa")}, "pao2", 3),
    ({"pao2": ("pao2", 5.59, "kPa")}, "pao2", 6),
]


@pytest.mark.parametrize(("inputs", "item", "expected", "row"), [
    (inputs, item, expected,
     case({"group": "adolescent", **{k: VOCAB.convert(*spec) for k, spec in inputs.items()}}))
    for inputs, item, expected in OTHER_UNIT_BOUNDARIES])
def test_boundaries_hold_for_values_recorded_in_other_units(results, inputs, item, expected, row):
    assert results.loc[row, f"prism3_{item}_points"] == expected


WINDOW_CASES = cases({"hours": h} for h in (12.0, 24.0, 30.0))


def test_window_flag_marks_evaluations_before_24_hours_as_incomplete(results):
    out = results.loc[WINDOW_CASES]
    assert list(out["prism3_window_complete"]) == [False, True, True]


def test_module_contract():
    assert discover()["prism3"] is prism3
    t = wide([EXAMPLE_1])
    outputs = prism3.evaluate(t)
    assert all(name.startswith("prism3_") for name in outputs)
    assert {"prism3_points", "prism3_missing", "prism3_n_assumed_normal"} <= set(outputs)
    assert len({s.column for s in prism3.INPUTS}) == len(prism3.INPUTS)
    assert len(prism3.ITEMS) == 17
