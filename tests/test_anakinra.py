"""Anakinra course (clinical reference §9.1, §12 rows 7, 34, 39): values computed by hand."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from hyperinflam.screening import anakinra
from hyperinflam.engine import connect_memory

T0 = dt.datetime(2024, 3, 1, 8, 0)


def _db(stays, drugs, weights=()):
    con = connect_memory()
    raw = con.con
    people = {s[1] for s in stays}
    for p in people:
        raw.execute("INSERT INTO person VALUES (?, DATE '2018-01-01', 'female')", [p])
    for stay_id, person_id, admit, discharge, weight in stays:
        raw.execute("INSERT INTO stay VALUES (?, ?, ?, ?, 'sepsis', ?)",
                    [stay_id, person_id, admit, discharge, weight])
    for person_id, dose, unit, route, start, end, weight in drugs:
        raw.execute("INSERT INTO drug_administration VALUES (?, NULL, 'anakinra', 'il1_blocker', "
                    "?, ?, ?, ?, ?, ?)", [person_id, dose, unit, route, start, end, weight])
    for person_id, time, kg in weights:
        raw.execute("INSERT INTO measurement VALUES (?, NULL, ?, 'weight', ?, 'kg', ?, 'kg', NULL)",
                    [person_id, time, kg, str(kg)])
    return con


def _q6h(person, mg, days, weight=None, start=T0):
    return [(person, mg, "mg", "sc", start + dt.timedelta(hours=6 * i), None, weight)
            for i in range(4 * days)]


def test_2_mg_kg_q6h_20_kg_is_8_mg_kg_day_not_flagged():
    # 2 mg/kg x 20 kg = 40 mg per dose; 4 doses per 24 h = 160 mg = 8 mg/kg/day (not > 8).
    con = _db([("s1", "p1", T0 - dt.timedelta(hours=3), None, 20.0)], _q6h("p1", 40.0, 2, 20.0))
    days = anakinra.daily_doses(con).to_pandas()
    assert list(days.period) == [0, 1]
    assert days.dose_mg.tolist() == pytest.approx([160.0, 160.0])
    assert days.dose_mg_per_kg.tolist() == pytest.approx([8.0, 8.0])
    assert days.dose_flag.tolist() == ["", ""]
    assert days.cumulative_mg.tolist() == pytest.approx([160.0, 320.0])
    assert days.cumulative_mg_per_kg.tolist() == pytest.approx([8.0, 16.0])
    assert days.weight_kg.tolist() == [20.0, 20.0]
    assert (days.weight_source == "administration").all()
    assert days.period_start.iloc[0] == pd.Timestamp(T0)


def test_2_5_mg_kg_q6h_is_10_mg_kg_day_above_labelled_maximum():
    # 2.5 mg/kg x 20 kg = 50 mg q6h = 200 mg/day = 10 mg/kg/day > 8 -> flagged.
    con = _db([("s1", "p1", T0, None, 20.0)], _q6h("p1", 50.0, 1, 20.0))
    days = anakinra.daily_doses(con).to_pandas()
    assert days.dose_mg_per_kg.tolist() == pytest.approx([10.0])
    assert days.dose_flag.tolist() == [anakinra.FLAG_ABOVE_LABEL]


def test_continuous_infusion_split_across_periods_and_implausible_flag():
    # 2.5 mg/kg/h for 30 h from 08:00, 10 kg: period 0 = 24 h x 25 mg/h = 600 mg (60 mg/kg/day,
    # > 48 implausible); period 1 = 6 h x 25 = 150 mg (15 mg/kg/day, above label).
    con = _db([("s1", "p1", T0, None, 10.0)],
              [("p1", 2.5, "mg/kg/h", "iv", T0, T0 + dt.timedelta(hours=30), None)])
    days = anakinra.daily_doses(con).to_pandas()
    assert days.dose_mg.tolist() == pytest.approx([600.0, 150.0])
    assert days.dose_mg_per_kg.tolist() == pytest.approx([60.0, 15.0])
    assert days.dose_flag.tolist() == [anakinra.FLAG_IMPLAUSIBLE, anakinra.FLAG_ABOVE_LABEL]
    assert (days.weight_source == "admission").all()


def test_weight_precedence_measurement_before_dose_over_admission():
    # §12 row 34: no dosing weight -> latest weight measured at or before the dose (18 kg, not the
    # 25 kg measured afterwards), else admission weight (20 kg). 36 mg / 18 kg = 2 mg/kg/day.
    con = _db([("s1", "p1", T0 - dt.timedelta(hours=5), None, 20.0)],
              [("p1", 36.0, "mg", "iv", T0, None, None)],
              weights=[("p1", T0 - dt.timedelta(hours=2), 18.0),
                       ("p1", T0 - dt.timedelta(hours=4), 19.0),
                       ("p1", T0 + dt.timedelta(hours=1), 25.0)])
    days = anakinra.daily_doses(con).to_pandas()
    assert days.weight_kg.tolist() == [18.0]
    assert days.weight_source.tolist() == ["latest_measurement"]
    assert days.dose_mg_per_kg.tolist() == pytest.approx([2.0])


def test_mg_per_kg_dose_without_any_weight_is_unknown_not_zero():
    con = _db([("s1", "p1", T0, None, None)], [("p1", 2.0, "mg/kg", "sc", T0, None, None)])
    days = anakinra.daily_doses(con).to_pandas()
    assert days.dose_mg.isna().all() and days.dose_flag.isna().all()
    assert bool(days.dose_unknown.iloc[0])


def test_index_is_first_dose_in_stay_and_period_boundaries():
    # A dose before admission is not the index (§12 row 7); doses at +23:59 and +24:00 fall in
    # periods 0 and 1 (half-open periods, §12 row 39).
    admit = T0
    drugs = [("p1", 100.0, "mg", "sc", admit - dt.timedelta(days=3), None, 20.0),
             ("p1", 20.0, "mg", "sc", admit + dt.timedelta(hours=1), None, 20.0),
             ("p1", 20.0, "mg", "sc", admit + dt.timedelta(hours=24, minutes=59), None, 20.0),
             ("p1", 40.0, "mg", "sc", admit + dt.timedelta(hours=25), None, 20.0)]
    con = _db([("s1", "p1", admit, None, 20.0)], drugs)
    days = anakinra.daily_doses(con).to_pandas()
    assert days.index_time.iloc[0] == pd.Timestamp(admit + dt.timedelta(hours=1))
    assert days.dose_mg.tolist() == pytest.approx([40.0, 40.0])


def test_course_summary_days_since_first_dose_and_running():
    con = _db([("s1", "p1", T0, None, 20.0)], _q6h("p1", 40.0, 3, 20.0))
    as_of = T0 + dt.timedelta(hours=60)  # doses at 0, 6, ..., 60 h -> 11 doses
    s = anakinra.course_summary(con, as_of=as_of).to_pandas().iloc[0]
    assert s.days_since_first_dose == pytest.approx(2.5)
    assert bool(s.running)
    assert s.cumulative_mg == pytest.approx(11 * 40.0)
    assert s.n_periods == 3
    later = anakinra.course_summary(con, as_of=T0 + dt.timedelta(days=5)).to_pandas().iloc[0]
    assert not bool(later.running)  # last dose at +66 h, more than 24 h before +120 h
    assert later.cumulative_mg_per_kg == pytest.approx(24.0)
