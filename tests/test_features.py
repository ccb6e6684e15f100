"""Tests of the time model and the wide feature table (hyperinflam.features).

Expected values are worked out by hand from the rules in docs/time-model.md and the screening
contract (clinical reference §11.1, §12 rows 10, 14, 21, 24). Canonical rows are inserted directly
into an in-memory database.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from hyperinflam.engine import connect_memory
from hyperinflam.errors import FeatureError
from hyperinflam.features import (FeatureSpec, build_features, concept_keys, evaluation_grid,
                                  load_concepts)

T0 = datetime(2024, 3, 1, 8, 0)


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def insert(con, table: str, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows)
    con.con.register("rows_to_insert", frame)
    con.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM rows_to_insert")
    con.con.unregister("rows_to_insert")


def meas(person: str, hours: float, variable: str, value: float, unit: str = "x") -> dict:
    return {"person_id": person, "time": h(hours), "variable": variable, "value": value,
            "unit": unit, "value_original": str(value), "unit_original": unit}


@pytest.fixture
def con():
    con = connect_memory()
    insert(con, "person", [
        {"person_id": "p1", "birth_date": "2020-03-01", "sex": "female"},
        {"person_id": "p2", "birth_date": "2023-03-01", "sex": "male"},
        {"person_id": "p3", "birth_date": "2015-01-01", "sex": "unknown"},
    ])
    insert(con, "stay", [
        # 50-h stay
        {"stay_id": "s1", "person_id": "p1", "admit_time": T0, "discharge_time": h(50),
         "weight_kg": 16.0},
        # 48-h stay: no duplicate evaluation at discharge
        {"stay_id": "s2", "person_id": "p2", "admit_time": T0, "discharge_time": h(48)},
        # open stay: ends at the last data time (+30 h)
        {"stay_id": "s3", "person_id": "p3", "admit_time": h(10), "discharge_time": None},
    ])
    insert(con, "measurement", [meas("p3", 40, "crp", 12.0)])
    return con


def frame(expr) -> pd.DataFrame:
    return expr.to_pandas().sort_values(["stay_id", "eval_time"]).reset_index(drop=True)


# --- grid --------------------------------------------------------------------------------------
def test_grid_boundaries(con):
    grid = frame(evaluation_grid(con, step_hours=24))
    got = {s: list(g.eval_time) for s, g in grid.groupby("stay_id")}
    assert got["s1"] == [h(24), h(48), h(50)]
    assert got["s2"] == [h(24), h(48)]
    assert got["s3"] == [h(34), h(40)]  # open stay: to the last data time
    s1 = grid[grid.stay_id == "s1"]
    assert list(s1.hours_since_admit) == [24.0, 48.0, 50.0]


def test_grid_short_stay_and_step(con):
    insert(con, "stay", [{"stay_id": "s4", "person_id": "p1", "admit_time": h(100),
                          "discharge_time": h(110)}])
    grid = frame(evaluation_grid(con, step_hours=6))
    assert list(grid[grid.stay_id == "s4"].eval_time) == [h(106), h(110)]
    grid = frame(evaluation_grid(con, step_hours=12))
    assert list(grid[grid.stay_id == "s4"].eval_time) == [h(110)]
    with pytest.raises(FeatureError, match="step_hours"):
        evaluation_grid(con, step_hours=0.5)


def test_age_months_at_eval_time(con):
    grid = frame(evaluation_grid(con, step_hours=24))
    row = grid[(grid.stay_id == "s1") & (grid.eval_time == h(24))].iloc[0]
    # born 2020-03-01 00:00, evaluated 2024-03-02 08:00: 1461 days + 1 day + 8 h
    days = (datetime(2024, 3, 2, 8) - datetime(2020, 3, 1)).total_seconds() / 86400
    assert days == pytest.approx(1462 + 8 / 24)
    assert row.age_days == pytest.approx(days)
    assert row.age_months == pytest.approx(days / 30.4375)
    admit_days = (T0 - datetime(2020, 3, 1)).total_seconds() / 86400
    assert row.age_months_at_admit == pytest.approx(admit_days / 30.4375)
    assert row.sex == "female" and row.weight_kg == 16.0


def test_at_selects_stays_in_picu(con):
    grid = frame(evaluation_grid(con, at=h(49)))
    assert list(grid.stay_id) == ["s1", "s3"]  # s2 left at +48 h
    assert (grid.eval_time == h(49)).all()
    # at == discharge: the child has left (half-open stay interval)
    assert list(frame(evaluation_grid(con, at=h(50))).stay_id) == ["s3"]
    # before s3's admission only s1 and s2
    assert list(frame(evaluation_grid(con, at=h(9))).stay_id) == ["s1", "s2"]
    # an offset is converted to UTC: 10:00+01:00 is 09:00 UTC = T0 + 1 h
    grid = frame(evaluation_grid(con, at="2024-03-01T10:00:00+01:00"))
    assert (grid.eval_time == h(1)).all()
    with pytest.raises(FeatureError, match="ISO 8601"):
        evaluation_grid(con, at="yesterday-ish")


# --- measurement windows -----------------------------------------------------------------------
def features_at(con, specs, *, stay="s1", at=None, step=24):
    grid = evaluation_grid(con, at=at) if at is not None else evaluation_grid(con, step_hours=step)
    out = frame(build_features(con, grid, specs))
    return out[out.stay_id == stay].set_index("eval_time")


def test_window_edges(con):
    # eval at +48 h; 24-h window is (+24 h, +48 h]
    insert(con, "measurement", [
        meas("p1", 24, "platelets", 50.0),   # exactly t - 24 h: excluded at t=48, included at t=24
        meas("p1", 24.5, "platelets", 120.0),
        meas("p1", 48, "platelets", 90.0),   # exactly t: included
        meas("p1", 48.5, "platelets", 10.0),  # after t=48, within t=50 window
        meas("p2", 30, "platelets", 1.0),     # another person: never mixed in
    ])
    spec = FeatureSpec("platelets", "min", 24)
    f = features_at(con, [spec, FeatureSpec("platelets", "count", 24),
                          FeatureSpec("platelets", "max", 24)])
    assert f.loc[h(24), "platelets_min_24h"] == 50.0
    assert f.loc[h(48), "platelets_min_24h"] == 90.0
    assert f.loc[h(48), "platelets_max_24h"] == 120.0
    assert f.loc[h(48), "platelets_count_24h"] == 2
    assert f.loc[h(50), "platelets_min_24h"] == 10.0
    assert f.loc[h(50), "platelets_count_24h"] == 2  # (+26 h, +50 h]: +48 and +48.5
    assert str(f["platelets_min_24h"].dtype) == "float64"
    assert str(f["platelets_count_24h"].dtype) == "int64"


def test_missing_is_null_and_count_zero(con):
    f = features_at(con, [FeatureSpec("ferritin", "max", 72), FeatureSpec("ferritin", "count", 72),
                          FeatureSpec("ferritin", "last", 72)])
    assert f["ferritin_max_72h"].isna().all()
    assert f["ferritin_last_72h"].isna().all()
    assert (f["ferritin_count_72h"] == 0).all()


def test_whole_stay_window_starts_at_admission(con):
    insert(con, "measurement", [
        meas("p1", -1, "ferritin", 9000.0),  # before PICU admission: outside the stay window
        meas("p1", 0, "ferritin", 700.0),    # exactly at admission: inside
        meas("p1", 30, "ferritin", 800.0),
    ])
    f = features_at(con, [FeatureSpec("ferritin", "max", None),
                          FeatureSpec("ferritin", "first", None),
                          FeatureSpec("ferritin", "max", 72)])
    assert f.loc[h(24), "ferritin_max_stay"] == 700.0
    assert f.loc[h(48), "ferritin_max_stay"] == 800.0
    assert f.loc[h(48), "ferritin_first_stay"] == 700.0
    assert f.loc[h(24), "ferritin_max_72h"] == 9000.0  # 72-h look-back reaches before admission


def test_last_and_first_with_ties(con):
    insert(con, "measurement", [
        meas("p1", 1, "temperature", 37.0),
        meas("p1", 2, "temperature", 38.1),   # two values at the same time: the higher wins
        meas("p1", 2, "temperature", 37.9),
        meas("p1", 20, "temperature", 36.5),
        meas("p1", 20, "temperature", 39.0),
        meas("p1", 30, "temperature", 37.2),
    ])
    specs = [FeatureSpec("temperature", "last", 24), FeatureSpec("temperature", "first", 24),
             FeatureSpec("temperature", "first", 6), FeatureSpec("temperature", "last", 6)]
    f = features_at(con, specs)
    assert f.loc[h(24), "temperature_last_24h"] == 39.0
    assert f.loc[h(24), "temperature_first_24h"] == 37.0
    assert f.loc[h(24), "temperature_first_6h"] == 39.0  # (+18 h, +24 h]: tie at +20 h
    assert f.loc[h(24), "temperature_last_6h"] == 39.0
    assert f.loc[h(48), "temperature_last_24h"] == 37.2
    assert f.loc[h(48), "temperature_first_24h"] == 37.2
    assert pd.isna(f.loc[h(48), "temperature_last_6h"])  # last value (+30 h) is 18 h old
    # first in (t-6 h, t] at t = +24 h: the values at +20 h, the higher one
    insert(con, "measurement", [meas("p1", 19, "temperature", 35.5)])
    f = features_at(con, specs)
    assert f.loc[h(24), "temperature_first_6h"] == 35.5
    assert f.loc[h(24), "temperature_first_24h"] == 37.0


def test_derived_variable_without_module_is_null(con, monkeypatch):
    from hyperinflam.features import windows

    monkeypatch.setattr(windows, "derived_module", lambda: None)
    monkeypatch.setattr(windows, "derived_variables", lambda: frozenset())
    f = features_at(con, [FeatureSpec("sf_ratio", "min", 6), FeatureSpec("crp", "max", 24)],
                    stay="s3")
    assert f["sf_ratio_min_6h"].isna().all()
    assert f.loc[h(40), "crp_max_24h"] == 12.0


# --- conditions, drugs, organ support, events --------------------------------------------------
def cond(person, name, hours=None, **kw):
    return {"person_id": person, "condition": name, "onset_time": None if hours is None else h(hours),
            "is_underlying": False, **kw}


def test_condition_any_true_false_null(con):
    insert(con, "condition", [
        cond("p1", "No splenomegaly", 5),          # documented absence first ...
        cond("p1", "Enlarged spleen", 30),          # ... then presence (alias, any case)
        cond("p2", "x", 1, code_system="SNOMED", code="16294009"),  # SNOMED splenomegaly
        cond("p2", "sJIA", None, is_underlying=True),  # no onset time: always counts
        cond("p3", "Bone marrow without haemophagocytosis", 12),
        cond("p3", "something else", 12, code_system="ICD-10-CM", code="R16.0"),  # hepatomegaly
    ])
    specs = [FeatureSpec("splenomegaly", "any", None, "condition"),
             FeatureSpec("systemic_jia", "any", None, "condition"),
             FeatureSpec("hemophagocytosis_bone_marrow", "any", None, "condition"),
             FeatureSpec("hepatomegaly", "any", None, "condition")]
    grid = evaluation_grid(con, step_hours=24)
    f = frame(build_features(con, grid, specs)).set_index(["stay_id", "eval_time"])
    assert f.loc[("s1", h(24)), "splenomegaly_any_stay"] == False  # noqa: E712
    assert f.loc[("s1", h(48)), "splenomegaly_any_stay"] == True  # noqa: E712
    assert pd.isna(f.loc[("s1", h(24)), "systemic_jia_any_stay"])
    assert f.loc[("s2", h(24)), "splenomegaly_any_stay"] == True  # noqa: E712
    assert f.loc[("s2", h(24)), "systemic_jia_any_stay"] == True  # noqa: E712
    assert f.loc[("s3", h(34)), "hemophagocytosis_bone_marrow_any_stay"] == False  # noqa: E712
    assert f.loc[("s3", h(34)), "hepatomegaly_any_stay"] == True  # noqa: E712
    assert pd.isna(f.loc[("s3", h(34)), "splenomegaly_any_stay"])


def test_concepts_csv_is_consistent():
    concepts = load_concepts()
    assert concepts.concept.is_unique
    assert set(concepts.negates[concepts.negates != ""]) <= set(concepts.concept)
    keys = concept_keys()
    # hepatosplenomegaly means both organs
    both = keys[keys.match_key == "hepatosplenomegaly"]
    assert set(both.concept) == {"splenomegaly", "hepatomegaly"}
    for needed in ["splenomegaly", "hepatomegaly", "hemophagocytosis_bone_marrow",
                   "hemophagocytosis_spleen", "hemophagocytosis_lymph_node",
                   "hemophagocytosis_liver", "low_nk_activity", "systemic_jia",
                   "immunosuppression", "hlh_gene_variant", "pupils_fixed_bilateral",
                   "bone_marrow_no_hemophagocytosis", "no_splenomegaly"]:
        assert needed in set(concepts.concept), needed


def test_drug_any_and_count(con):
    insert(con, "drug_administration", [
        {"person_id": "p1", "drug": "anakinra", "drug_class": "il1_blocker", "start_time": h(10)},
        {"person_id": "p1", "drug": "dexamethasone", "drug_class": "corticosteroid",
         "start_time": h(24)},  # exactly t: in the window ending at +24 h
        {"person_id": "p1", "drug": "methylprednisolone", "drug_class": "corticosteroid",
         "start_time": h(30)},
        {"person_id": "p1", "drug": "methylprednisolone", "drug_class": "corticosteroid",
         "start_time": h(31)},
    ])
    specs = [FeatureSpec("anakinra", "any", 24, "drug"),
             FeatureSpec("corticosteroid", "count", None, "drug"),
             FeatureSpec("corticosteroid", "any", 12, "drug")]
    f = features_at(con, specs)
    assert list(f["anakinra_any_24h"]) == [True, False, False]
    assert list(f["corticosteroid_count_stay"]) == [1, 2, 2]
    assert list(f["corticosteroid_any_12h"]) == [True, False, False]  # +30/+31 are > 12 h before +48


def test_organ_support_overlap(con):
    insert(con, "organ_support", [
        {"person_id": "p1", "support": "invasive_ventilation", "start_time": h(2), "end_time": h(12)},
        {"person_id": "p1", "support": "epinephrine", "start_time": h(20), "end_time": h(30),
         "dose": 0.1, "dose_unit": "mcg/kg/min"},
        {"person_id": "p1", "support": "epinephrine", "start_time": h(23), "end_time": h(25),
         "dose": 0.05, "dose_unit": "ug/kg/min"},
        {"person_id": "p1", "support": "vasopressin", "start_time": h(47), "end_time": None,
         "dose": 0.5, "dose_unit": "mU/kg/min"},
        {"person_id": "p1", "support": "norepinephrine", "start_time": h(24.5), "end_time": h(42),
         "dose": None, "dose_unit": None},
    ])
    specs = [FeatureSpec("invasive_ventilation", "any", 12, "organ_support"),
             FeatureSpec("vasoactive", "count", 6, "organ_support"),
             FeatureSpec("epinephrine", "max", 12, "organ_support"),
             FeatureSpec("vasopressin", "max", 6, "organ_support"),
             FeatureSpec("norepinephrine", "max", 6, "organ_support")]
    f = features_at(con, specs)
    # ventilation ended at +12 h, the window at t=+24 h is (+12 h, +24 h]: end == start excluded
    assert list(f["invasive_ventilation_any_12h"]) == [False, False, False]
    # (+18, +24]: epinephrine twice = 1 agent; (+42, +48]: vasopressin (norepi ended at +42)
    assert list(f["vasoactive_count_6h"]) == [1, 1, 1]
    # +24: both epinephrine intervals overlap (0.1 mcg/kg/min = 0.1 ug/kg/min); +48: none since +30
    assert list(f["epinephrine_max_12h"]) == [0.1, 0.0, 0.0]
    assert f.loc[h(48), "vasopressin_max_6h"] == pytest.approx(0.0005)  # U/kg/min
    assert f.loc[h(24), "vasopressin_max_6h"] == 0.0  # not running
    assert f.loc[h(24), "norepinephrine_max_6h"] == 0.0
    assert f.loc[h(48), "norepinephrine_max_6h"] == 0.0  # ended at +42: outside (+42, +48]
    f30 = features_at(con, specs, at=h(30))
    assert pd.isna(f30.loc[h(30), "norepinephrine_max_6h"])  # running, dose not recorded
    f11 = features_at(con, specs, at=h(11))
    assert f11.loc[h(11), "invasive_ventilation_any_12h"] == True  # noqa: E712


def test_event_any_true_or_unknown(con):
    insert(con, "event", [
        {"person_id": "p1", "event_type": "infection", "time": h(-47)},  # within 48 h before admit
        {"person_id": "p2", "event_type": "infection", "time": h(-49)},  # too early
        {"person_id": "p3", "event_type": "death", "time": h(39)},
    ])
    spec = FeatureSpec("infection", "any", None, "event")
    grid = evaluation_grid(con, step_hours=24)
    f = frame(build_features(con, grid, [spec, FeatureSpec("death", "any", 24, "event")]))
    f = f.set_index(["stay_id", "eval_time"])
    assert f.loc[("s1", h(24)), "infection_any_stay"] == True  # noqa: E712
    assert pd.isna(f.loc[("s2", h(24)), "infection_any_stay"])  # not "no infection"
    assert f.loc[("s3", h(40)), "death_any_24h"] == True  # noqa: E712
    assert pd.isna(f.loc[("s3", h(34)), "death_any_24h"])


def test_invalid_specs_name_the_fix(con):
    grid = evaluation_grid(con, step_hours=24)
    with pytest.raises(FeatureError, match="concepts.csv"):
        build_features(con, grid, [FeatureSpec("spleen_big", "any", None, "condition")])
    with pytest.raises(FeatureError, match="not defined for source"):
        build_features(con, grid, [FeatureSpec("crp", "any", 24)])
    with pytest.raises(FeatureError, match="drugs.csv"):
        build_features(con, grid, [FeatureSpec("aspirin", "any", 24, "drug")])


def test_derived_variable_is_unioned(con):
    insert(con, "measurement", [meas("p1", 20, "fio2", 0.5), meas("p1", 21, "spo2", 95.0)])
    f = features_at(con, [FeatureSpec("sf_ratio", "min", 6), FeatureSpec("spo2", "min", 6)])
    assert f.loc[h(24), "sf_ratio_min_6h"] == pytest.approx(95.0 / 0.5)  # §5.2: SpO2 <= 97 %


# --- first hours of the stay (PRISM III-24, clinical reference 7.3 and 12 row 29) ---------------
def test_first_hours_window_stops_at_admission_plus_hours(con):
    insert(con, "measurement", [
        meas("p1", 0, "heart_rate", 100.0),     # at admission: inside
        meas("p1", 24, "heart_rate", 150.0),    # exactly admission + 24 h: inside
        meas("p1", 30, "heart_rate", 210.0),    # after the first 24 h: never counted
        meas("p1", -1, "heart_rate", 190.0),    # before admission: not counted
    ])
    spec = FeatureSpec("heart_rate", "max", None, first_hours=24)
    assert spec.column == "heart_rate_max_first24h"
    out = frame(build_features(con, evaluation_grid(con, step_hours=12), [spec]))
    s1 = out[out.stay_id == "s1"].set_index("hours_since_admit")[spec.column]
    assert s1[12.0] == 100.0            # window so far: [0, 12]
    assert s1[24.0] == 150.0            # [0, 24]
    assert s1[48.0] == 150.0            # still [0, 24]: the 210 at +30 h is outside


def test_first_hours_needs_a_whole_stay_measurement_spec(con):
    with pytest.raises(FeatureError, match="first_hours"):
        build_features(con, evaluation_grid(con), [FeatureSpec("heart_rate", "max", 24,
                                                               first_hours=24)])


# --- window shapes of the fast path (issue 4 benchmark): same values as the plain definition ---
def test_whole_stay_running_cells_at_irregular_times(con):
    # Evaluation times +5, +20, +20 (duplicate), +44 and one before admission; the whole-stay
    # window at t is [admission, t] (docs/time-model.md), built from cells (t_{k-1}, t_k].
    import ibis

    from hyperinflam.features import grid_at

    insert(con, "measurement", [
        meas("p1", -2, "temperature", 41.0),   # before admission: never in the stay window
        meas("p1", 0, "temperature", 38.0),    # at admission: in every window
        meas("p1", 5, "temperature", 36.0),    # exactly at t_1 = +5: in t_1's cell
        meas("p1", 12, "temperature", 39.5),
        meas("p1", 20, "temperature", 35.5),   # exactly at t_2 = +20
        meas("p1", 30, "temperature", 40.0),
    ])
    times = ibis.memtable(pd.DataFrame({
        "stay_id": ["s1"] * 5, "eval_time": [h(5), h(20), h(20), h(44), h(-3)]}))
    specs = [FeatureSpec("temperature", "max", None), FeatureSpec("temperature", "min", None),
             FeatureSpec("temperature", "count", None)]
    f = frame(build_features(con, grid_at(con, times), specs))
    got = {(r.eval_time, r.temperature_max_stay if r.temperature_count_stay else None,
            r.temperature_min_stay if r.temperature_count_stay else None,
            r.temperature_count_stay) for r in f.itertuples()}
    assert got == {
        (h(-3), None, None, 0),               # before admission: empty window
        (h(5), 38.0, 36.0, 2),                 # [0, 5]: 38, 36
        (h(20), 39.5, 35.5, 4),                # [0, 20]: 38, 36, 39.5, 35.5 (duplicate row: same)
        (h(44), 40.0, 35.5, 5),
    }
    assert len(f) == 5
    assert f.loc[f.eval_time == h(-3), "temperature_max_stay"].isna().all()


def test_first_hours_window_at_irregular_times(con):
    import ibis

    from hyperinflam.features import grid_at

    insert(con, "measurement", [
        meas("p1", 0, "heart_rate", 100.0),
        meas("p1", 6, "heart_rate", 160.0),     # exactly t = +6: inside [0, 6]
        meas("p1", 24, "heart_rate", 150.0),    # exactly admission + 24 h: inside
        meas("p1", 24.01, "heart_rate", 250.0),  # just after: never counted
    ])
    times = ibis.memtable(pd.DataFrame({"stay_id": ["s1"] * 4,
                                        "eval_time": [h(3), h(6), h(23), h(49)]}))
    specs = [FeatureSpec("heart_rate", "max", None, first_hours=24),
             FeatureSpec("heart_rate", "min", None, first_hours=24),
             FeatureSpec("heart_rate", "count", None, first_hours=24)]
    f = frame(build_features(con, grid_at(con, times), specs)).set_index("eval_time")
    assert list(f["heart_rate_max_first24h"]) == [100.0, 160.0, 160.0, 160.0]
    assert list(f["heart_rate_count_first24h"]) == [1, 2, 2, 3]
    assert list(f["heart_rate_min_first24h"]) == [100.0, 100.0, 100.0, 100.0]


def test_short_and_long_look_backs_of_one_variable(con):
    # fio2 asked for 6 h and 24 h: one join reaching 24 h back, the 6-h values filtered in it.
    insert(con, "measurement", [
        meas("p1", 24, "fio2", 0.9),     # exactly t - 24 h at t = +48: out of both
        meas("p1", 30, "fio2", 0.8),     # in 24 h only
        meas("p1", 42, "fio2", 0.5),     # exactly t - 6 h: out of the 6-h window
        meas("p1", 42.5, "fio2", 0.4),   # in both
        meas("p1", 48, "fio2", 0.3),     # exactly t: in both
    ])
    specs = [FeatureSpec("fio2", "max", 6), FeatureSpec("fio2", "min", 6),
             FeatureSpec("fio2", "count", 6), FeatureSpec("fio2", "max", 24),
             FeatureSpec("fio2", "count", 24), FeatureSpec("fio2", "min", 12)]
    f = features_at(con, specs)
    assert f.loc[h(48), "fio2_max_6h"] == 0.4
    assert f.loc[h(48), "fio2_min_6h"] == 0.3
    assert f.loc[h(48), "fio2_count_6h"] == 2
    assert f.loc[h(48), "fio2_max_24h"] == 0.8
    assert f.loc[h(48), "fio2_count_24h"] == 4
    assert f.loc[h(48), "fio2_min_12h"] == 0.3
    assert f.loc[h(24), "fio2_max_24h"] == 0.9
    assert f.loc[h(24), "fio2_count_6h"] == 1     # (+18, +24]: the 0.9 at +24
    assert f.loc[h(50), "fio2_count_6h"] == 1     # (+44, +50]: the 0.3 at +48 only
