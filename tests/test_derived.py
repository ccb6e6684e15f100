"""Derived measurements (P/F, S/F, MAP) against clinical reference §5.2, §5.4 and §12 rows 22, 26.

Expected values are computed by hand in each test from the rule cited.
"""

from __future__ import annotations

import ibis
import pandas as pd
import pytest

from hyperinflam.features.derived import DERIVED_VARIABLES, derived_measurements

T0 = pd.Timestamp("2024-03-01 00:00")


def at(hours: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(hours=hours)


@pytest.fixture(scope="module")
def con():
    return ibis.duckdb.connect()


def derive(con, rows) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["person_id", "time", "variable", "value"])
    df["value"] = df["value"].astype(float)
    out = con.execute(derived_measurements(ibis.memtable(df)))
    return out.sort_values(["person_id", "variable", "time", "value"]).reset_index(drop=True)


def values(out: pd.DataFrame, variable: str, person: str = "p1") -> list[tuple]:
    sel = out[(out.variable == variable) & (out.person_id == person)]
    return [(t, round(v, 6)) for t, v in zip(sel.time, sel.value)]


def test_output_layout(con):
    out = derive(con, [("p1", at(0), "fio2", 0.5), ("p1", at(0), "pao2", 80)])
    assert list(out.columns) == ["person_id", "time", "variable", "value"]
    assert DERIVED_VARIABLES == {"pf_ratio", "sf_ratio", "map_any"}


def test_pf_uses_last_fio2_at_or_before_within_6h(con):
    """§5.2: FiO2 at the same time or before the PaO2; §5.4: within 6 h."""
    out = derive(con, [
        ("p1", at(0), "fio2", 0.40),
        ("p1", at(1), "fio2", 0.50),
        ("p1", at(1), "pao2", 100),      # same time: 100 / 0.50 = 200
        ("p1", at(2), "fio2", 1.00),     # after the 01:30 PaO2: not used for it
        ("p1", at(1.5), "pao2", 90),     # last before: 0.50 -> 180
        ("p1", at(8), "pao2", 60),       # FiO2 at 2 h is 6 h before: 60 / 1.0 = 60 (inclusive)
        ("p1", at(14.01), "pao2", 60),   # nothing within 6 h before: no ratio
        ("p2", at(1), "pao2", 80),       # another person's FiO2 is never used
    ])
    assert values(out, "pf_ratio") == [(at(1), 200.0), (at(1.5), 180.0), (at(8), 60.0)]
    assert values(out, "pf_ratio", "p2") == []


def test_fio2_tie_uses_highest_fio2(con):
    out = derive(con, [("p1", at(0), "fio2", 0.4), ("p1", at(0), "fio2", 0.8),
                       ("p1", at(1), "pao2", 80)])
    assert values(out, "pf_ratio") == [(at(1), 100.0)]


def test_sf_only_when_spo2_at_most_97(con):
    """§5.2 / §12 row 22: S/F is valid only when SpO2 <= 97 %."""
    out = derive(con, [
        ("p1", at(0), "fio2", 0.5),
        ("p1", at(1), "spo2", 97),    # 194
        ("p1", at(2), "spo2", 98),    # invalid: no S/F
        ("p1", at(3), "spo2", 88),    # 176
    ])
    assert values(out, "sf_ratio") == [(at(1), 194.0), (at(3), 176.0)]


def test_map_measured_else_estimated(con):
    """§5.2: measured MAP, else DBP + (SBP - DBP)/3 from SBP and DBP at the same time."""
    out = derive(con, [
        ("p1", at(0), "sbp", 90), ("p1", at(0), "dbp", 60),       # 60 + 30/3 = 70
        ("p1", at(1), "sbp", 90), ("p1", at(1), "dbp", 60),
        ("p1", at(1), "map", 75),                                  # measured wins: 75
        ("p1", at(2), "sbp", 100),                                 # no DBP: nothing
        ("p1", at(3), "sbp", 80), ("p1", at(3.5), "dbp", 40),      # not the same time
        ("p1", at(4), "sbp", 60), ("p1", at(4), "dbp", 60),       # SBP - DBP < 1: implausible
        ("p1", at(5), "sbp", 101), ("p1", at(5), "dbp", 50),      # 50 + 51/3 = 67
    ])
    assert values(out, "map_any") == [(at(0), 70.0), (at(1), 75.0), (at(5), 67.0)]
