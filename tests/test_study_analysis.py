"""Statistics of the case-series study, end to end through the canonical tables.

Expected values: the toy check printed in clinical reference §10.4 (asserted to the printed
precision), and a second cohort whose expected values are computed here with numpy/scipy from
the raw numbers.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import numpy as np
import pytest
from scipy import stats

from hyperinflam.engine import connect_memory
from hyperinflam.study.definition import parse_study
from hyperinflam.study.results import OBSERVATIONS_COLUMNS, RESULTS_COLUMNS
from hyperinflam.study.run import run_study

T0 = datetime(2024, 3, 1, 8, 0)


def build(baseline, day7, *, variable="crp", unit="mg/L", extra_day7_missing=0, offsets=None):
    """One stay per patient; anakinra at T0 + i days; baseline at -3 h, day 7 at +170 h
    (or the given (baseline_hours, day7_hours) offsets); ``None`` values are not recorded."""
    con = connect_memory()
    raw = con.con
    n = len(baseline)
    for i in range(n + extra_day7_missing):
        pid, idx = f"src-{i}", T0 + timedelta(days=i)
        raw.execute("INSERT INTO person VALUES (?, ?, ?)",
                    [pid, date(2010, 1, 1), "female" if i % 3 else "male"])
        raw.execute("INSERT INTO stay VALUES (?,?,?,?,?,?)",
                    [f"stay-{i}", pid, idx - timedelta(hours=4), idx + timedelta(days=30),
                     "respiratory distress" if i % 2 else "cardiovascular instability", 40.0])
        raw.execute("INSERT INTO drug_administration VALUES (?,?,?,?,?,?,?,?,?,?)",
                    [pid, None, "anakinra", "il1_blocker", 100.0, "mg", "iv", idx, None, None])
        b = baseline[i] if i < n else 100.0
        d = day7[i] if i < n else None
        hb, hd = offsets[i] if offsets else (-3, 170)
        for hours, value in ((hb, b), (hd, d)):
            if value is not None:
                raw.execute("INSERT INTO measurement VALUES (?,?,?,?,?,?,?,?,?)",
                            [pid, None, idx + timedelta(hours=hours), variable, float(value),
                             unit, str(value), unit, None])
    return con


def crp_study():
    return parse_study({"study": {"id": "toy", "title": "toy"}, "markers": {"variables": ["crp"]}})


def marker_stats(results, marker="crp"):
    r = results.results
    return r[(r["section"] == "marker") & (r["variable"] == marker)]


def p_value(results, test, marker="crp"):
    """The p-value row of a test: ``p_paired_t`` or ``p_wilcoxon`` (comparison day7)."""
    m = marker_stats(results, marker)
    rows = m[(m["stat_name"] == test) & (m["comparison"] == "day7")]
    assert len(rows) == 1
    return rows.iloc[0]


def at(results, stat, timepoint=None, marker="crp"):
    """A statistic of the day-7 comparison: descriptive at ``timepoint``, change when None."""
    return results.stat("marker", marker, stat, comparison="day7", timepoint=timepoint)


def test_toy_check_of_clinical_reference_10_4():
    con = build([250, 180, 120, 300], [60, 40, 90, 30])
    res = run_study(con, crp_study())
    assert list(res.results.columns) == RESULTS_COLUMNS
    assert list(res.observations.columns) == OBSERVATIONS_COLUMNS
    s = lambda stat, tp: at(res, stat, None if tp == "change" else tp)  # noqa: E731
    assert round(s("mean", "baseline"), 1) == 212.5
    assert round(s("sem", "baseline"), 1) == 39.4
    assert round(s("mean", "day7"), 1) == 55.0
    assert round(s("sem", "day7"), 1) == 13.2
    assert round(s("pct_change_of_means", "change"), 1) == -74.1
    assert round(s("median_pct_change", "change"), 1) == -76.9
    assert round(s("t_statistic", "change"), 3) == 3.136
    assert s("df", "change") == 3
    assert round(p_value(res, "p_paired_t")["value"], 4) == 0.0518
    w = p_value(res, "p_wilcoxon")
    assert round(w["value"], 3) == 0.125
    assert "exact distribution" in w["method"] and "zero differences dropped" in w["method"]
    assert w["warning"] is None and w["error"] is None
    assert at(res, "n") == 4
    assert at(res, "n_excluded") == 0
    assert res.stat("flow", "analysable_crp", "count", comparison="day7") == 4


def test_second_cohort_against_numpy_and_scipy():
    baseline = np.array([310.0, 95.0, 220.0, 180.0, 45.0, 260.0, 150.0])
    day7 = np.array([40.0, 110.0, 60.0, 75.0, 12.0, 130.0, 25.0])  # no tied |differences|
    con = build(list(baseline), list(day7), extra_day7_missing=2)
    res = run_study(con, crp_study())
    n = baseline.size
    s = lambda stat, tp: at(res, stat, None if tp == "change" else tp)  # noqa: E731
    assert at(res, "n") == n
    assert at(res, "n_excluded") == 2
    assert res.stat("flow", "cohort", "count") == n + 2
    for tp, x in (("baseline", baseline), ("day7", day7)):
        assert s("mean", tp) == pytest.approx(x.mean())
        assert s("sd", tp) == pytest.approx(x.std(ddof=1))
        assert s("sem", tp) == pytest.approx(stats.sem(x, ddof=1))
        assert s("median", tp) == pytest.approx(np.median(x))
        assert s("q1", tp) == pytest.approx(np.percentile(x, 25))
        assert s("q3", tp) == pytest.approx(np.percentile(x, 75))
        assert s("min", tp) == x.min() and s("max", tp) == x.max()
    assert s("pct_change_of_means", "change") == pytest.approx(
        100 * (day7.mean() - baseline.mean()) / baseline.mean())
    assert s("median_pct_change", "change") == pytest.approx(
        np.median(100 * (day7 - baseline) / baseline))
    assert s("mean_difference", "change") == pytest.approx((day7 - baseline).mean())
    t = stats.ttest_rel(baseline, day7)
    assert s("t_statistic", "change") == pytest.approx(t.statistic)
    assert p_value(res, "p_paired_t")["value"] == pytest.approx(t.pvalue)
    w = stats.wilcoxon(day7 - baseline, method="exact", zero_method="wilcox")
    assert s("w_statistic", "change") == pytest.approx(w.statistic)
    assert p_value(res, "p_wilcoxon")["value"] == pytest.approx(w.pvalue)
    # Patient labels by index time; the chosen values carry their role.
    obs = res.observations
    assert sorted(obs["patient"].unique()) == [f"P{i:02d}" for i in range(1, n + 3)]
    p01 = obs[obs["patient"] == "P01"].set_index("role")
    assert p01.loc["baseline", "value"] == baseline[0]
    assert p01.loc["day7", "value"] == day7[0]
    assert p01.loc["day7", "hours_from_index"] == 170
    assert not obs["patient"].str.contains("src").any()


def test_ties_use_normal_approximation_with_explicit_options():
    baseline = [100.0, 80.0, 60.0, 90.0, 50.0]
    day7 = [50.0, 30.0, 60.0, 40.0, 70.0]  # |differences| 50, 50, 0, 50, 20: zero and ties
    res = run_study(build(baseline, day7), crp_study())
    w = p_value(res, "p_wilcoxon")
    d = np.array(day7) - np.array(baseline)
    expected = stats.wilcoxon(d, method="approx", zero_method="wilcox", correction=False)
    assert w["value"] == pytest.approx(expected.pvalue)
    assert "normal approximation, without continuity correction" in w["method"]
    assert w["warning"] == ("normal approximation instead of the exact distribution: zero "
                            "differences present")


def test_single_patient_gives_descriptives_and_no_test():
    res = run_study(build([200.0], [50.0]), crp_study())
    assert at(res, "mean", "baseline") == 200.0
    m = marker_stats(res)
    assert "t_statistic" not in set(m["stat_name"])
    pv = m[m["stat_name"].isin(["p_paired_t", "p_wilcoxon"])]
    assert len(pv) == 2
    assert pv["value"].isna().all()
    assert (pv["error"] == "not computed: n = 1, needs at least 2 pairs").all()
    sd = m[(m["stat_name"] == "sd") & (m["timepoint"] == "baseline")].iloc[0]
    assert math.isnan(sd["value"]) and sd["error"] == "not defined for n = 1"


def test_baseline_characteristics_and_flow():
    con = build([250, 180, 120, 300], [60, 40, 90, 30])
    res = run_study(con, "rajasekaran2014")
    assert res.stat("flow", "stays", "count") == 4
    assert res.stat("flow", "stays_with_index_drug", "count") == 4
    assert res.stat("flow", "excluded_no_index_drug", "count") == 0
    assert res.stat("baseline", "sex", "count", level="male") == 2  # patients 0 and 3
    assert res.stat("baseline", "sex", "percent", level="male") == 50.0
    assert res.stat("baseline", "admission_reason", "count",
                    level="cardiovascular instability") == 2
    ages = np.array([(T0 + timedelta(days=i) - timedelta(hours=4)
                      - datetime(2010, 1, 1)).total_seconds() / 86400 / 365.25 for i in range(4)])
    assert res.stat("baseline", "age_years", "median") == pytest.approx(np.median(ages), abs=1e-4)
    # No condition is recorded at all: "previously healthy" is unknown, never 4 of 4.
    assert res.stat("baseline", "health_status", "count", level="not recorded") == 4
    assert res.stat("baseline", "health_status", "count", level="previously healthy") is None
    assert res.stat("domains", "conditions", "recorded") == 0
    assert res.stat("domains", "drugs", "recorded") == 1
    imv = res.row("baseline", "invasive_ventilation", "count")
    assert math.isnan(imv["value"]) and imv["error"].startswith("not recorded at this site")
    # Markers without data: counted, no crash.
    assert at(res, "n_excluded", marker="ferritin") == 4
    assert "PRISM" in res.provenance["methods"]["prism"]
    assert res.provenance["data_source"]["measurement"] == 8
    assert res.definition["study"]["id"] == "rajasekaran2014"
    fer = res.row("marker", "ferritin", "p_paired_t", comparison="day7")
    assert math.isnan(fer["value"]) and fer["error"] == "not computed: n = 0, needs at least 2 pairs"
    # The listing: one pseudonymised row per patient, no source identifier.
    assert res.patients["patient"].tolist() == ["P01", "P02", "P03", "P04"]
    assert not res.patients.astype(str).apply(lambda c: c.str.contains("src-|stay-")).any().any()
