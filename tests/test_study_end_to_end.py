"""The founding study end to end from CSV files: the toy check of clinical reference §10.4, and the
same patients recorded in other units (CRP mg/dL, fibrinogen g/L, ANC cells/uL) give the same
results. Expected values are computed here by hand and with scipy from the raw numbers."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from hyperinflam.engine import connect_memory
from hyperinflam.sources.csv import load_csv_folder
from hyperinflam.study.run import run_study

# Clinical reference §10.4 toy check: CRP mg/L at the first dose and 7 days later.
CRP_BASE = [250.0, 180.0, 120.0, 300.0]
CRP_DAY7 = [60.0, 40.0, 90.0, 30.0]
FIB_BASE = [272.0, 150.0, 310.0, 95.0]        # mg/dL
FIB_DAY7 = [158.0, 140.0, 200.0, 120.0]
ANC_BASE = [1.5, 0.4, 6.2, 3.3]               # 10^3/uL
ANC_DAY7 = [2.5, 0.9, 4.0, 3.1]


def write_folder(folder: Path, units: str) -> None:
    """Four children, anakinra 30 h after admission; baseline 2 h before the dose, day 7 at +168 h.
    ``units``: 'canonical' (mg/L, mg/dL, 10*3/uL) or 'other' (mg/dL, g/L, cells/uL)."""
    folder.mkdir()
    rows = {"person": [], "stay": [], "measurement": [], "drug_administration": []}
    for i in range(4):
        pid, sid = f"p{i}", f"s{i}"
        rows["person"].append({"person_id": pid, "birth_date": f"201{i}-05-0{i + 1}",
                               "sex": "female" if i % 2 else "male"})
        rows["stay"].append({"stay_id": sid, "person_id": pid, "admit_time": "2024-01-10 08:00",
                             "discharge_time": "2024-02-01 08:00",
                             "admission_reason": "respiratory distress", "weight_kg": "20"})
        rows["drug_administration"].append({
            "person_id": pid, "stay_id": sid, "drug": "anakinra", "dose": "2", "dose_unit": "mg/kg",
            "route": "iv", "start_time": "2024-01-11 14:00", "end_time": "", "weight_kg": "20"})
        for time, crp, fib, anc in (("2024-01-11 12:00", CRP_BASE[i], FIB_BASE[i], ANC_BASE[i]),
                                    ("2024-01-18 14:00", CRP_DAY7[i], FIB_DAY7[i], ANC_DAY7[i])):
            if units == "canonical":
                values = [("crp", crp, "mg/L"), ("fibrinogen", fib, "mg/dL"),
                          ("anc", anc, "10*3/uL")]
            else:  # clinical reference §11.1: mg/L = mg/dL x 10; mg/dL = g/L x 100; /uL / 1000
                values = [("crp", crp / 10, "mg/dL"), ("fibrinogen", fib / 100, "g/L"),
                          ("anc", round(anc * 1000), "cells/uL")]
            for variable, value, unit in values:
                rows["measurement"].append({"person_id": pid, "stay_id": sid, "time": time,
                                            "variable": variable, "value": f"{value:g}",
                                            "unit": unit})
    for table, records in rows.items():
        with open(folder / f"{table}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = {}
    for units in ("canonical", "other"):
        folder = tmp_path_factory.mktemp(units) / "csv"
        write_folder(folder, units)
        con = connect_memory()
        report = load_csv_folder(con, folder)
        assert report.reconciles and sum(t.quarantined for t in report.tables) == 0
        out[units] = run_study(con, "rajasekaran2014")
    return out


def _day7(r, variable, stat, timepoint=None):
    return r.stat("marker", variable, stat, comparison="day7", timepoint=timepoint)


def test_toy_check_from_csv(results):
    r = results["canonical"]
    assert _day7(r, "crp", "n") == 4
    assert _day7(r, "crp", "mean", "baseline") == pytest.approx(212.5)
    assert _day7(r, "crp", "sem", "baseline") == pytest.approx(39.4, abs=0.05)
    assert _day7(r, "crp", "mean", "day7") == pytest.approx(55.0)
    assert _day7(r, "crp", "sem", "day7") == pytest.approx(13.2, abs=0.05)
    assert _day7(r, "crp", "pct_change_of_means") == pytest.approx(-74.1, abs=0.05)
    assert _day7(r, "crp", "median_pct_change") == pytest.approx(-76.9, abs=0.05)
    assert _day7(r, "crp", "p_paired_t") == pytest.approx(0.0518, abs=5e-5)
    assert _day7(r, "crp", "p_wilcoxon") == pytest.approx(0.125)


def test_fibrinogen_and_anc_against_scipy(results):
    r = results["canonical"]
    for variable, base, day7 in (("fibrinogen", FIB_BASE, FIB_DAY7), ("anc", ANC_BASE, ANC_DAY7)):
        b, d = np.array(base), np.array(day7)
        assert _day7(r, variable, "mean", "baseline") == pytest.approx(b.mean())
        assert _day7(r, variable, "sem", "day7") == pytest.approx(stats.sem(d))
        assert _day7(r, variable, "p_paired_t") == pytest.approx(stats.ttest_rel(b, d).pvalue)


def test_other_units_give_the_same_results(results):
    order = ["section", "variable", "level", "comparison", "timepoint", "stat_name", "method"]
    a = results["canonical"].results.sort_values(order, na_position="first")
    b = results["other"].results.sort_values(order, na_position="first")
    keys = ["section", "variable", "level", "comparison", "timepoint", "stat_name", "unit"]
    assert a[keys].fillna("").values.tolist() == b[keys].fillna("").values.tolist()
    np.testing.assert_allclose(a.value.to_numpy(dtype=float), b.value.to_numpy(dtype=float),
                               rtol=1e-9, equal_nan=True)
