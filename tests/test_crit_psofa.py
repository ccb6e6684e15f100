"""pSOFA against clinical reference §6 (worked examples of §6.4, every band edge of §6.2).

Expected points are read by hand off the §6.2 tables, never computed by hyperinflam. Every case
is registered at import and all are evaluated in one query per engine (the ``backend`` fixture:
DuckDB and Spark; tests/widetable.py ``Batch``).
"""

from __future__ import annotations

import ibis
import pandas as pd
import pytest

from hyperinflam.criteria import discover, psofa
from hyperinflam.vocabulary import load
from widetable import Batch

C = {spec.variable + ("_dose" if spec.agg == "max" and spec.source == "organ_support" else ""):
     spec.column for spec in psofa.INPUTS}
BOOL = {s.column for s in psofa.INPUTS if s.agg == "any"}


def frame(rows: list[dict]) -> pd.DataFrame:
    """Wide rows: 'age' plus input names of C; everything absent is NULL."""
    df = pd.DataFrame({"person_id": [f"p{i}" for i in range(len(rows))]})
    df["stay_id"] = df.person_id
    df["eval_time"] = pd.Timestamp("2024-03-01 12:00")
    df["age_months"] = pd.array([r.get("age") for r in rows], dtype="Float64")
    df["age_months_at_admit"] = df["age_months"]
    for name, column in C.items():
        vals = [r.get(name) for r in rows]
        df[column] = pd.array(vals, dtype="boolean" if column in BOOL else "Float64")
    return df


#: Every case of this module: one query per engine.
BATCH = Batch(psofa, frame)
case, cases = BATCH.add, BATCH.add_all


@pytest.fixture(scope="module")
def results(backend):
    return BATCH.evaluate(backend)


def test_contract():
    assert discover()["psofa"] is psofa
    names = list(psofa.evaluate(ibis.memtable(frame([{"age": 60.0}]))))
    assert all(n.startswith("psofa_") for n in names)
    assert {"psofa_missing", "psofa_n_assumed_normal", "psofa_score"} <= set(names)


WORKED_EXAMPLE_1 = case({"age": 60.0, "pf_ratio": 180.0, "invasive_ventilation": True,
                         "platelets": 85.0, "bilirubin_total": 2.4, "gcs_total": 12.0,
                         "dopamine": True, "dopamine_dose": 7.0, "map_any": 58.0,
                         "creatinine": 1.2})
WORKED_EXAMPLE_2 = case({"age": 8.0, "platelets": 160.0, "bilirubin_total": 0.4,
                         "gcs_total": 15.0, "map_any": 52.0, "creatinine": 0.35})
NOTHING_MEASURED = case({"age": None})


def test_worked_example_1(results):
    """§6.4: 60 months, P/F 180 on IMV, plt 85, bili 2.4, GCS 12, dopamine 7 (MAP 58), creat 1.2."""
    r = results.loc[WORKED_EXAMPLE_1]
    assert (r.psofa_respiratory_points, r.psofa_coagulation_points, r.psofa_hepatic_points,
            r.psofa_neurologic_points, r.psofa_cardiovascular_points,
            r.psofa_renal_points) == (3, 2, 2, 2, 3, 2)
    assert r.psofa_score == 14
    assert r.psofa_n_assumed_normal == 0
    assert r.psofa_missing == "sf_ratio"


def test_worked_example_2(results):
    """§6.4: 8 months, room air, no S/F, plt 160, bili 0.4, GCS 15, MAP 52, creat 0.35 -> 2."""
    r = results.loc[WORKED_EXAMPLE_2]
    assert r.psofa_score == 2
    assert (r.psofa_cardiovascular_points, r.psofa_renal_points) == (1, 1)
    assert r.psofa_n_assumed_normal == 1  # respiratory: neither P/F nor S/F
    assert r.psofa_missing == "pf_ratio,sf_ratio"


def test_missing_everything_scores_zero_and_counts_six_systems(results):
    r = results.loc[NOTHING_MEASURED]
    assert r.psofa_score == 0 and r.psofa_n_assumed_normal == 6
    assert r.psofa_missing.split(",") == ["pf_ratio", "sf_ratio", "platelets", "bilirubin_total",
                                          "map", "gcs", "creatinine", "age_months"]


# (input, value, extra inputs, expected points of the system's column)
EDGES = [
    # coagulation, platelets 10^3/uL
    ("platelets", 150.0, "coagulation", 0), ("platelets", 149.99, "coagulation", 1),
    ("platelets", 100.0, "coagulation", 1), ("platelets", 99.99, "coagulation", 2),
    ("platelets", 50.0, "coagulation", 2), ("platelets", 49.99, "coagulation", 3),
    ("platelets", 20.0, "coagulation", 3), ("platelets", 19.99, "coagulation", 4),
    # hepatic, bilirubin mg/dL
    ("bilirubin_total", 1.19, "hepatic", 0), ("bilirubin_total", 1.2, "hepatic", 1),
    ("bilirubin_total", 1.99, "hepatic", 1), ("bilirubin_total", 2.0, "hepatic", 2),
    ("bilirubin_total", 5.99, "hepatic", 2), ("bilirubin_total", 6.0, "hepatic", 3),
    ("bilirubin_total", 11.99, "hepatic", 3), ("bilirubin_total", 12.0, "hepatic", 4),
    # neurologic, GCS
    ("gcs_total", 15.0, "neurologic", 0), ("gcs_total", 14.0, "neurologic", 1),
    ("gcs_total", 13.0, "neurologic", 1), ("gcs_total", 12.0, "neurologic", 2),
    ("gcs_total", 10.0, "neurologic", 2), ("gcs_total", 9.0, "neurologic", 3),
    ("gcs_total", 6.0, "neurologic", 3), ("gcs_total", 5.0, "neurologic", 4),
    ("gcs_total", 3.0, "neurologic", 4),
]


@pytest.mark.parametrize("row, name, value, system, points",
                         [(case({"age": 60.0, e[0]: e[1]}), *e) for e in EDGES])
def test_single_input_band_edges(results, row, name, value, system, points):
    assert results.loc[row][f"psofa_{system}_points"] == points


RESPIRATORY = [
    # P/F, with and without IMV
    ({"pf_ratio": 400.0}, 0), ({"pf_ratio": 399.9}, 1), ({"pf_ratio": 300.0}, 1),
    ({"pf_ratio": 299.9}, 2), ({"pf_ratio": 200.0}, 2), ({"pf_ratio": 199.9}, 2),
    ({"pf_ratio": 199.9, "invasive_ventilation": True}, 3),
    ({"pf_ratio": 100.0, "invasive_ventilation": True}, 3),
    ({"pf_ratio": 99.9, "invasive_ventilation": True}, 4), ({"pf_ratio": 50.0}, 2),
    # S/F: 264 -> 1 (§12 row 36)
    ({"sf_ratio": 292.0}, 0), ({"sf_ratio": 291.9}, 1), ({"sf_ratio": 264.0}, 1),
    ({"sf_ratio": 263.9}, 2), ({"sf_ratio": 221.0}, 2), ({"sf_ratio": 220.9}, 2),
    ({"sf_ratio": 220.9, "invasive_ventilation": True}, 3),
    ({"sf_ratio": 148.0, "invasive_ventilation": True}, 3),
    ({"sf_ratio": 147.9, "invasive_ventilation": True}, 4),
    # P/F preferred over S/F when both exist
    ({"pf_ratio": 450.0, "sf_ratio": 100.0, "invasive_ventilation": True}, 0),
    # supplemental oxygen is not "respiratory support" by default
    ({"pf_ratio": 90.0, "fio2": 0.6}, 2),
]


@pytest.mark.parametrize("row, inputs, points",
                         [(case({"age": 60.0, **inputs}), inputs, p) for inputs, p in RESPIRATORY])
def test_respiratory_edges(results, row, inputs, points):
    assert results.loc[row].psofa_respiratory_points == points


CARDIO = [
    ({"map_any": 65.0}, 0), ({"map_any": 64.9}, 1),
    ({"dobutamine": True, "dobutamine_dose": 20.0}, 2),
    ({"dopamine": True, "dopamine_dose": 5.0}, 2), ({"dopamine": True, "dopamine_dose": 5.01}, 3),
    ({"dopamine": True, "dopamine_dose": 15.0}, 3), ({"dopamine": True, "dopamine_dose": 15.01}, 4),
    ({"epinephrine": True, "epinephrine_dose": 0.1}, 3),
    ({"epinephrine": True, "epinephrine_dose": 0.11}, 4),
    ({"norepinephrine": True, "norepinephrine_dose": 0.1}, 3),
    ({"norepinephrine": True, "norepinephrine_dose": 0.11}, 4),
    ({"epinephrine": True}, 3), ({"dopamine": True}, 2),  # dose not recorded: lowest row
    ({"epinephrine": False, "dopamine": False, "map_any": 40.0}, 1),
]


@pytest.mark.parametrize("row, inputs, points",
                         [(case({"age": 60.0, **inputs}), inputs, p) for inputs, p in CARDIO])
def test_cardiovascular_rows(results, row, inputs, points):
    assert results.loc[row].psofa_cardiovascular_points == points


UNKNOWN_DOSE = case({"age": 60.0, "epinephrine": True, "map_any": 70.0})


def test_unknown_vasoactive_dose_is_named(results):
    r = results.loc[UNKNOWN_DOSE]
    assert "epinephrine_dose" in r.psofa_missing.split(",")
    assert r.psofa_n_assumed_normal == 5  # cardiovascular was scored (3), the other five were not


# age (months), MAP threshold for 1 point, creatinine lower edges of 1..4 points (§6.2)
AGE_ROWS = [
    (0.0, 46, (0.8, 1.0, 1.2, 1.6)), (0.99, 46, (0.8, 1.0, 1.2, 1.6)),
    (1.0, 55, (0.3, 0.5, 0.8, 1.2)), (11.99, 55, (0.3, 0.5, 0.8, 1.2)),
    (12.0, 60, (0.4, 0.6, 1.1, 1.5)), (23.99, 60, (0.4, 0.6, 1.1, 1.5)),
    (24.0, 62, (0.6, 0.9, 1.6, 2.3)), (59.99, 62, (0.6, 0.9, 1.6, 2.3)),
    (60.0, 65, (0.7, 1.1, 1.8, 2.6)), (143.99, 65, (0.7, 1.1, 1.8, 2.6)),
    (144.0, 67, (1.0, 1.7, 2.9, 4.2)), (216.0, 67, (1.0, 1.7, 2.9, 4.2)),
    (216.01, 70, (1.2, 2.0, 3.5, 5.0)),
]


def _age_band_cases(age, map_threshold, edges) -> list[str]:
    rows = [{"age": age, "map_any": map_threshold}, {"age": age, "map_any": map_threshold - 0.1}]
    rows += [{"age": age, "creatinine": e} for e in edges]
    rows += [{"age": age, "creatinine": round(e - 0.01, 2)} for e in edges]
    return cases(rows)


@pytest.mark.parametrize("age, map_threshold, edges, rows",
                         [(*a, _age_band_cases(*a)) for a in AGE_ROWS])
def test_age_banded_map_and_creatinine(results, age, map_threshold, edges, rows):
    r = results.loc[rows]
    assert list(r.psofa_cardiovascular_points[:2]) == [0, 1]
    assert list(r.psofa_renal_points[2:6]) == [1, 2, 3, 4]
    assert list(r.psofa_renal_points[6:]) == [0, 1, 2, 3]


VOCAB = load()
IN_TWO_UNITS = cases([
    {"age": 60.0, "platelets": 85.0, "bilirubin_total": 2.4, "creatinine": 1.2},
    {"age": 60.0, "platelets": VOCAB.convert("platelets", 85_000, "/uL"),
     "bilirubin_total": VOCAB.convert("bilirubin_total", 2.4 * 17.104, "umol/L"),
     "creatinine": VOCAB.convert("creatinine", 1.2 * 88.40, "umol/L")}])


def test_same_patient_in_other_units(results):
    """Platelets /uL, bilirubin umol/L, creatinine umol/L (factors §11.1) give the same points."""
    r = results.loc[IN_TWO_UNITS]
    cols = ["psofa_coagulation_points", "psofa_hepatic_points", "psofa_renal_points",
            "psofa_score"]
    assert r[cols].iloc[0].tolist() == r[cols].iloc[1].tolist() == [2, 2, 2, 6]

