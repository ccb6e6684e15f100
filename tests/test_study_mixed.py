"""The repeated-measures model (hyperinflam.study.mixed) against fits computed independently.

With complete, balanced data and a random intercept per patient, the REML estimates have closed
forms (the classical two-way repeated-measures ANOVA): the difference of a timepoint from
baseline is the difference of the two sample means; its standard error is sqrt(2 MSE / n) with
MSE the subject x time interaction mean square; and the Wald chi-square of all timepoints equals
(k - 1) times the ANOVA F of time. With two timepoints the standard error is that of the paired
t-test (the SD of the differences over sqrt(n)). These hold while the between-patient variance
estimate is positive (a positive within-patient correlation), as in the data below.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hyperinflam.study.mixed import fit

RNG = np.random.default_rng(20140601)
N = 9
BASE = RNG.normal(200.0, 60.0, N)
LATER = {"day3": 0.7 * BASE + RNG.normal(0, 25, N), "day7": 0.4 * BASE + RNG.normal(0, 30, N)}


def long(values: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame([{"patient": f"P{i}", "timepoint": tp, "value": v[i]}
                         for tp, v in values.items() for i in range(len(v))])


def test_two_timepoints_match_the_paired_t_test():
    result = fit(long({"baseline": BASE, "day7": LATER["day7"]}), ["day7"])
    assert result["error"] == "" and result["warning"] == ""
    diff = LATER["day7"] - BASE
    est = result["per_timepoint"]["day7"]
    assert est["mixed_difference"] == pytest.approx(diff.mean(), rel=1e-6)
    assert est["mixed_se"] == pytest.approx(diff.std(ddof=1) / np.sqrt(N), rel=1e-4)
    t = stats.ttest_rel(LATER["day7"], BASE)
    assert est["mixed_difference"] / est["mixed_se"] == pytest.approx(t.statistic, rel=1e-4)
    assert result["overall"]["mixed_wald_chi2"] == pytest.approx(t.statistic ** 2, rel=2e-4)
    assert (result["n_patients"], result["n_observations"]) == (N, 2 * N)


def test_three_timepoints_match_the_repeated_measures_anova():
    y = np.column_stack([BASE, LATER["day3"], LATER["day7"]])  # n x k
    n, k = y.shape
    grand = y.mean()
    resid = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + grand
    mse = (resid ** 2).sum() / ((n - 1) * (k - 1))
    ms_time = n * ((y.mean(axis=0) - grand) ** 2).sum() / (k - 1)
    ms_subject = k * ((y.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    result = fit(long({"baseline": BASE, **LATER}), ["day3", "day7"])
    for j, name in enumerate(("day3", "day7"), start=1):
        est = result["per_timepoint"][name]
        assert est["mixed_difference"] == pytest.approx(y[:, j].mean() - y[:, 0].mean(), rel=1e-6)
        assert est["mixed_se"] == pytest.approx(np.sqrt(2 * mse / n), rel=1e-4)
        z = est["mixed_difference"] / est["mixed_se"]
        assert est["p_mixed"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-6)
        low, high = est["mixed_ci_low"], est["mixed_ci_high"]
        assert (high - low) / 2 == pytest.approx(stats.norm.ppf(0.975) * est["mixed_se"])
        mean = result["means"][name]
        assert mean["mixed_mean"] == pytest.approx(y[:, j].mean(), rel=1e-6)
    overall = result["overall"]
    assert overall["mixed_wald_chi2"] == pytest.approx((k - 1) * ms_time / mse, rel=2e-4)
    assert overall["mixed_wald_df"] == 2
    assert overall["mixed_var_residual"] == pytest.approx(mse, rel=1e-4)
    assert overall["mixed_var_patient"] == pytest.approx((ms_subject - mse) / k, rel=1e-3)


def test_patients_with_missing_timepoints_still_contribute():
    data = long({"baseline": BASE, **LATER})
    data = data[~((data.patient == "P0") & (data.timepoint == "day7"))]
    result = fit(data, ["day3", "day7"])
    assert result["error"] == "" and result["n_observations"] == 3 * N - 1
    assert result["n_patients"] == N


@pytest.mark.parametrize("values, error", [
    ({"baseline": BASE[:1], "day7": LATER["day7"][:1]}, "1 patient(s) with values"),
    ({"baseline": BASE[:2], "day3": LATER["day3"][:2], "day7": LATER["day7"][:2]}, None),
    ({"baseline": np.full(3, 5.0), "day7": np.full(3, 5.0)}, "all values are equal"),
])
def test_too_little_data_is_an_error_with_its_reason(values, error):
    result = fit(long(values), ["day3", "day7"] if "day3" in values else ["day7"])
    if error is None:  # 2 patients x 3 timepoints = 6 values: 3 means + 2 intercepts + 1 df
        assert result["error"] == ""
    else:
        assert error in result["error"] and result["per_timepoint"] == {}


def test_a_timepoint_without_values_is_left_out_and_said():
    result = fit(long({"baseline": BASE, "day3": LATER["day3"]}), ["day3", "day7"],
                 {"day3": "day 3", "day7": "one week"})
    assert "no values at one week: left out of the model" in result["warning"]
    assert set(result["per_timepoint"]) == {"day3"}
