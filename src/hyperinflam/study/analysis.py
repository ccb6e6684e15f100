"""Statistics of a case-series study: the ``results`` and ``observations`` tables
(docs/results-format.md) from the executed cohort frames (hyperinflam.study.cohort).

Conventions (clinical reference §10.3, §10.4 and §12.3-§12.6):

* Complete cases per marker: a patient without both a baseline and a day-7 value is excluded from
  that marker only and counted in ``n_excluded``.
* Mean, SD, SEM = SD (n - 1) / sqrt(n) (``sem_ddof``), median and quartiles (numpy linear
  interpolation), min, max, at baseline and day 7 over the complete cases.
* % change of group means, 100 x (mean day 7 - mean baseline) / mean baseline (the founding
  paper's apparent method, 10.3) and the median of per-patient % changes (patients with a
  baseline of 0 have no % change and are left out of that median; the ``method`` says how many).
* ``mean_difference`` = mean of per-patient (day 7 - baseline).
* Paired t-test (scipy.stats.ttest_rel(baseline, day7): t > 0 when values fall, as printed in the
  toy check of 10.4) and Wilcoxon signed-rank (scipy.stats.wilcoxon on day 7 - baseline, with
  ``method``, ``zero_method`` and ``correction`` passed explicitly: exact when n <= 25 and there
  are no zero or tied absolute differences, else the normal approximation), both two-sided.
  With n < 2 (or no variation) the test is not computed: the p-value row holds NaN and its
  ``method`` says why.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from hyperinflam.study.cohort import CohortFrames
from hyperinflam.study.definition import AnalysisSection, StudyDefinition
from hyperinflam.study.results import OBSERVATIONS_COLUMNS, RESULTS_COLUMNS
from hyperinflam.vocabulary import Vocabulary

SEM_METHOD = "SD (n - 1) / sqrt(n)"
QUANTILE_METHOD = "linear interpolation (numpy default)"
PCT_CHANGE_OF_MEANS_METHOD = "100 x (mean day 7 - mean baseline) / mean baseline"
MEDIAN_PCT_CHANGE_METHOD = "median of per-patient 100 x (day 7 - baseline) / baseline"
#: Relative precision at which two absolute differences count as tied for the Wilcoxon rule.
TIE_DECIMALS = 9


def patient_labels(cohort: pd.DataFrame) -> dict[str, str]:
    """Pseudonymous labels P01, P02, ... by index time (then person_id), never a source id."""
    ordered = cohort.sort_values(["index_time", "person_id", "stay_id"])["stay_id"].tolist()
    width = max(2, len(str(len(ordered))))
    return {stay: f"P{i:0{width}d}" for i, stay in enumerate(ordered, start=1)}


class _Rows:
    def __init__(self, study_id: str):
        self.study_id = study_id
        self.rows: list[dict] = []

    def add(self, section, variable, label, statistic, value, *, level=None, timepoint=None,
            unit=None, method=None, group="cohort"):
        self.rows.append({
            "study": self.study_id, "section": section, "group": group, "variable": variable,
            "label": label, "level": level, "timepoint": timepoint, "statistic": statistic,
            "value": float(value) if value is not None else math.nan, "unit": unit,
            "method": method,
        })

    def extend(self, frame: pd.DataFrame) -> None:
        """Add many rows at once (columns as in :meth:`add`; missing ones are empty)."""
        frame = frame.assign(study=self.study_id, group="cohort")
        self.rows.extend(frame.reindex(columns=RESULTS_COLUMNS).to_dict("records"))

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows, columns=RESULTS_COLUMNS)
        frame = frame.astype({c: "object" for c in RESULTS_COLUMNS if c != "value"})
        frame = frame.where(frame.notna(), None)
        frame["value"] = frame["value"].astype("float64")
        return frame


def describe(values: np.ndarray, *, ddof: int = 1) -> dict[str, float]:
    """n, mean, sd, sem, median, q1, q3, min, max (clinical reference §10.4; row 6)."""
    values = np.asarray(values, dtype="float64")
    n = values.size
    if n == 0:
        return {"n": 0}
    sd = float(np.std(values, ddof=ddof)) if n > ddof else math.nan
    q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
    return {"n": n, "mean": float(values.mean()), "sd": sd, "sem": sd / math.sqrt(n),
            "median": float(median), "q1": float(q1), "q3": float(q3),
            "min": float(values.min()), "max": float(values.max())}


def wilcoxon_options(differences: np.ndarray, analysis: AnalysisSection) -> tuple[str, str]:
    """The scipy ``method`` for these differences and the reason (clinical reference §10.4):
    'exact' when n <= wilcoxon_exact_max_n with no zero and no tied |differences|, else
    'approx' (normal approximation)."""
    d = np.asarray(differences, dtype="float64")
    n = d.size
    absolute = np.round(np.abs(d), TIE_DECIMALS)
    if n > analysis.wilcoxon_exact_max_n:
        return "approx", f"n = {n} > {analysis.wilcoxon_exact_max_n}"
    if np.any(absolute == 0):
        return "approx", "zero differences present"
    if np.unique(absolute).size < n:
        return "approx", "tied absolute differences present"
    return "exact", f"n = {n} <= {analysis.wilcoxon_exact_max_n}, no zero or tied differences"


def paired_t_method(analysis: AnalysisSection) -> str:
    return (f"paired t-test, {analysis.alternative} (scipy.stats.ttest_rel(baseline, day7); "
            f"t > 0 when values fall)")


def wilcoxon_method(method: str, reason: str, analysis: AnalysisSection) -> str:
    name = "exact" if method == "exact" else "normal approximation"
    text = (f"Wilcoxon signed-rank, {analysis.alternative}, {name}, "
            f"zero_method={analysis.wilcoxon_zero_method}")
    if method != "exact":
        text += f", correction={analysis.wilcoxon_correction}"
    return f"{text} (scipy.stats.wilcoxon; {reason})"


def paired_change(baseline: np.ndarray, day7: np.ndarray, analysis: AnalysisSection,
                  unit: str | None) -> list[dict]:
    """The ``change`` rows for one marker: % changes, mean difference and the tests."""
    b = np.asarray(baseline, dtype="float64")
    d7 = np.asarray(day7, dtype="float64")
    n = b.size
    out: list[dict] = [{"statistic": "n", "value": n}]
    diff = d7 - b
    if n == 0:
        for test, method in (("paired_t", paired_t_method(analysis)),
                             ("wilcoxon", "Wilcoxon signed-rank (scipy.stats.wilcoxon)")):
            if test in analysis.tests:
                out.append({"statistic": "p_value", "value": math.nan,
                            "method": f"{method}; not computed: n = 0, needs n >= 2"})
        return out
    mean_b = b.mean()
    pct_means = 100.0 * (d7.mean() - mean_b) / mean_b if mean_b != 0 else math.nan
    out.append({"statistic": "pct_change_of_means", "value": pct_means, "unit": "%",
                "method": PCT_CHANGE_OF_MEANS_METHOD
                + ("" if mean_b != 0 else "; not defined: mean baseline is 0")})
    has_pct = b != 0
    per_patient = 100.0 * diff[has_pct] / b[has_pct]
    note = MEDIAN_PCT_CHANGE_METHOD
    if (~has_pct).any():
        note += f"; {int((~has_pct).sum())} patient(s) with baseline 0 left out"
    out.append({"statistic": "median_pct_change",
                "value": float(np.median(per_patient)) if per_patient.size else math.nan,
                "unit": "%", "method": note})
    out.append({"statistic": "mean_difference", "value": float(diff.mean()), "unit": unit,
                "method": "mean of per-patient (day 7 - baseline)"})

    if "paired_t" in analysis.tests:
        method = paired_t_method(analysis)
        if n < 2:
            reason = f"not computed: n = {n}, needs n >= 2"
            out.append({"statistic": "p_value", "value": math.nan, "method": f"{method}; {reason}"})
        elif np.ptp(diff) == 0:
            reason = "not computed: all paired differences are equal (no variance)"
            out.append({"statistic": "p_value", "value": math.nan, "method": f"{method}; {reason}"})
        else:
            res = stats.ttest_rel(b, d7, alternative=analysis.alternative)
            out.append({"statistic": "t_statistic", "value": float(res.statistic),
                        "method": method})
            out.append({"statistic": "df", "value": float(res.df), "method": method})
            out.append({"statistic": "p_value", "value": float(res.pvalue), "method": method})

    if "wilcoxon" in analysis.tests:
        scipy_method, reason = wilcoxon_options(diff, analysis)
        method = wilcoxon_method(scipy_method, reason, analysis)
        nonzero = int(np.count_nonzero(diff))
        if n < 2 or nonzero == 0:
            why = (f"n = {n}, needs n >= 2" if n < 2 else "all paired differences are 0")
            out.append({"statistic": "p_value", "value": math.nan,
                        "method": f"{method}; not computed: {why}"})
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                res = stats.wilcoxon(diff, alternative=analysis.alternative, method=scipy_method,
                                     zero_method=analysis.wilcoxon_zero_method,
                                     correction=analysis.wilcoxon_correction)
            out.append({"statistic": "w_statistic", "value": float(res.statistic),
                        "method": method})
            out.append({"statistic": "p_value", "value": float(res.pvalue), "method": method})
    return out


def _categorical(rows: _Rows, section, variable, label, levels: pd.Series, order, total: int,
                 method=None):
    counts = levels.value_counts()
    present = list(order)  # always reported, even with a count of 0
    extra = sorted((lvl for lvl in counts.index if lvl not in present),
                   key=lambda lvl: (-counts[lvl], lvl))
    for level in present + extra:
        count = int(counts.get(level, 0))
        rows.add(section, variable, label, "count", count, level=level, method=method)
        rows.add(section, variable, label, "percent",
                 100.0 * count / total if total else math.nan, level=level, unit="%",
                 method=method)


def _flag(rows: _Rows, section, variable, label, flags: pd.Series, total: int, *, level=None,
          method=None):
    count = int(flags.fillna(False).astype(bool).sum())
    rows.add(section, variable, label, "count", count, level=level, method=method)
    rows.add(section, variable, label, "percent", 100.0 * count / total if total else math.nan,
             level=level, unit="%", method=method)


def _numeric(rows: _Rows, section, variable, label, values: pd.Series, unit, method=None,
             statistics=("n", "mean", "sd", "median", "q1", "q3", "min", "max")):
    summary = describe(values.dropna().to_numpy(dtype="float64"))
    for statistic in statistics:
        if statistic in summary:
            rows.add(section, variable, label, statistic, summary[statistic],
                     unit=None if statistic == "n" else unit, method=method)


FLOW_LABELS = {
    "stays": "PICU stays",
    "stays_with_index_drug": "Stays with the index drug in the PICU",
    "stays_in_age_range": "... and in the age range",
    "stays_in_calendar_window": "... and admitted in the calendar window",
    "stays_meeting_requirement": "... and meeting the required criterion",
    "cohort": "Cohort (first qualifying stay per patient)",
    "prior_index_drug_exposure": "Cohort members exposed to the index drug before the PICU stay",
}


def analyse(frames: CohortFrames, study: StudyDefinition) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``results`` and ``observations`` tables (docs/results-format.md)."""
    vocab = Vocabulary()
    rows = _Rows(study.study.id)
    cohort = frames.cohort
    total = len(cohort)
    labels = patient_labels(cohort)
    cohort_ids = set(cohort["stay_id"])
    a = study.analysis

    # -- flow ------------------------------------------------------------------------------
    for key, value in frames.flow.items():
        rows.add("flow", key, FLOW_LABELS.get(key, key), "count", value)
    values = frames.marker_values
    chosen = values[values["role"].notna() & values["stay_id"].isin(cohort_ids)]
    paired = chosen.pivot_table(index=["stay_id", "variable"], columns="role", values="value",
                                aggfunc="first")
    for role in ("baseline", "day7"):
        if role not in paired.columns:
            paired[role] = np.nan
    complete = paired.dropna(subset=["baseline", "day7"]).reset_index()
    for marker in study.markers.variables:
        n = int((complete["variable"] == marker).sum())
        rows.add("flow", f"analysable_{marker}",
                 f"Analysable for {vocab.variables[marker].label}", "count", n,
                 method="baseline and day-7 value both present")

    # -- baseline characteristics (clinical reference §10.1) ---------------------------------
    _numeric(rows, "baseline", "age_years", "Age at PICU admission", cohort["age_years"], "years",
             method="(admission - birth date) in days / 365.25")
    _categorical(rows, "baseline", "sex", "Sex", cohort["sex"].fillna("unknown"),
                 ["female", "male"], total)
    health = np.where(cohort["underlying_disease"].fillna(False).astype(bool),
                      "underlying disease", "previously healthy")
    _categorical(rows, "baseline", "health_status", "Previously healthy vs underlying disease",
                 pd.Series(health, dtype="object"), ["previously healthy", "underlying disease"],
                 total, method="underlying disease = any condition with is_underlying = true "
                               "not starting after discharge")
    _categorical(rows, "baseline", "admission_reason", "Reason for PICU admission",
                 cohort["admission_reason"].fillna("not recorded"), [], total)
    _flag(rows, "baseline", "invasive_ventilation", "Invasive mechanical ventilation",
          cohort["invasive_ventilation"], total, method="any time during the PICU stay")
    _flag(rows, "baseline", "vasoactive_infusion", "Vasoactive infusion",
          cohort["vasoactive_infusion"], total, method="any time during the PICU stay")
    _numeric(rows, "baseline", "weight_kg", "Admission weight", cohort["weight_kg"], "kg")
    # PRISM III "where available" (clinical reference §10.1; §12.29): hook only.

    # -- markers -------------------------------------------------------------------------
    for marker in study.markers.variables:
        var = vocab.variables[marker]
        unit = frames.units.get(marker, var.canonical_unit)
        m = complete[complete["variable"] == marker]
        n = len(m)
        rows.add("marker", marker, var.label, "n", n,
                 method="patients with both a baseline and a day-7 value")
        rows.add("marker", marker, var.label, "n_excluded", total - n,
                 method="cohort members without both values (excluded from this marker only)")
        for timepoint in ("baseline", "day7"):
            summary = describe(m[timepoint].to_numpy(dtype="float64"), ddof=a.sem_ddof)
            for statistic, value in summary.items():
                method = {"sem": SEM_METHOD if a.sem_ddof == 1 else "SD (n) / sqrt(n)",
                          "sd": f"ddof = {a.sem_ddof}", "q1": QUANTILE_METHOD,
                          "q3": QUANTILE_METHOD}.get(statistic)
                rows.add("marker", marker, var.label, statistic, value, timepoint=timepoint,
                         unit=None if statistic == "n" else unit, method=method)
        for item in paired_change(m["baseline"].to_numpy(), m["day7"].to_numpy(), a, unit):
            rows.add("marker", marker, var.label, item["statistic"], item["value"],
                     timepoint="change", unit=item.get("unit"), method=item.get("method"))

    # -- co-therapies (§12.8) -------------------------------------------------
    ct = study.cotherapies
    cot = frames.cotherapy[frames.cotherapy["stay_id"].isin(cohort_ids)]
    for drug_class in ct.classes:
        given = cot[cot["drug_class"] == drug_class]
        label = drug_class.replace("_", " ")
        window = given.loc[given["in_window"].astype(bool), "stay_id"].nunique()
        rows.add("cotherapy", drug_class, label, "count", window, level="study window",
                 method=f"any administration from {ct.window_from_hours:g} h to "
                        f"{ct.window_to_hours:+g} h of the index")
        rows.add("cotherapy", drug_class, label, "percent",
                 100.0 * window / total if total else math.nan, level="study window", unit="%")
        if ct.any_time_in_stay:
            stay = given.loc[given["in_stay"].astype(bool), "stay_id"].nunique()
            rows.add("cotherapy", drug_class, label, "count", stay, level="any time in stay",
                     method="any administration during the PICU stay")
            rows.add("cotherapy", drug_class, label, "percent",
                     100.0 * stay / total if total else math.nan, level="any time in stay",
                     unit="%")

    # -- safety (§12.33) ------------------------------------------------------
    o = study.outcomes
    ev = frames.events[frames.events["stay_id"].isin(cohort_ids)]
    followup = f"within {o.followup_days:g} days"
    for event_type, wanted, label in (("infection", o.infections, "Infection after index"),
                                      ("death", o.deaths, "Death")):
        if not wanted:
            continue
        e = ev[ev["event_type"] == event_type]
        levels = [("in stay", e["in_stay"].astype(bool)),
                  (followup, e["within_followup"].astype(bool))]
        if event_type == "death":
            levels.append(("any time after index", pd.Series(True, index=e.index)))
        for level, mask in levels:
            count = e.loc[mask, "stay_id"].nunique()
            rows.add("safety", event_type, label, "count", count, level=level,
                     method="patients with at least one event")
            rows.add("safety", event_type, label, "percent",
                     100.0 * count / total if total else math.nan, level=level, unit="%")
        e = e.sort_values(["days_from_index"], kind="stable")
        rows.extend(pd.DataFrame({
            "section": "safety", "variable": event_type, "label": label,
            "level": e["stay_id"].map(labels), "statistic": "days_from_index",
            "value": e["days_from_index"].astype("float64"), "unit": "days",
            "method": "days from the first dose of the index drug"}))

    # -- observations --------------------------------------------------------------------
    obs = values[values["stay_id"].isin(cohort_ids)].copy()
    observations = pd.DataFrame({
        "study": study.study.id,
        "patient": obs["stay_id"].map(labels),
        "variable": obs["variable"],
        "hours_from_index": obs["hours_from_index"].astype("float64"),
        "value": obs["value"].astype("float64"),
        "unit": obs["unit"],
        "role": obs["role"].astype(object).where(obs["role"].notna(), None),
    }, columns=OBSERVATIONS_COLUMNS)
    observations = observations.sort_values(["patient", "variable", "hours_from_index"],
                                            kind="stable").reset_index(drop=True)
    return rows.frame(), observations
