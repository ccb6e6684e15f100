"""The phenotype at the index time: criteria and scores of the screening engine at each cohort
member's first anakinra dose, and PRISM III-24 points for the baseline table.

The screen (``hyperinflam.screening.screen``) is evaluated at one time per stay (``times=``, from
its compiled plan, :mod:`hyperinflam.screening.plans`: no building or compiling once cached): the
index time for the phenotype section, and admission + 24 h (or discharge, if earlier) for PRISM III-24
(clinical reference §7.3 and §12.29: the founding paper's PRISM version is not stated, so the
points are labelled PRISM III-24 and never claimed equivalent). Only the small per-member frame
is executed; the statistics are plain descriptive summaries (numpy quantiles, counts).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hyperinflam.criteria import discover
from hyperinflam.criteria import label as label_of
from hyperinflam.engine import plans
from hyperinflam.screening import meets
from hyperinflam.screening.plans import screen_inputs, screen_pandas, screen_plan

#: Numeric scores summarised at the index time: column -> (label, unit). Sources: clinical
#: reference 2 (HScore), 1 (HLH-2004), 5 (Phoenix), 6 (pSOFA).
PHENOTYPE_SCORES: dict[str, tuple[str, str | None]] = {
    "hscore_points": ("HScore, points observed", "points"),
    "hscore_max_possible": ("HScore, maximum possible given unknown inputs", "points"),
    "hlh2004_met_count": ("HLH-2004 criteria met (of 8)", None),
    "phoenix_score": ("Phoenix Sepsis Score", "points"),
    "psofa_score": ("pSOFA", "points"),
}
def _result_labels() -> dict[str, str]:
    """Every criterion's RESULT column (the one "meets" rule, screening.meets) -> its label,
    phenotype criteria first, and Phoenix septic shock."""
    modules = [m for m in discover().values() if getattr(m, "RESULT", None)]
    modules.sort(key=lambda m: list(meets.GROUP_TITLES).index(meets.group_of(m)))
    out = {m.RESULT: getattr(m, "LABEL", m.NAME) for m in modules}
    out["phoenix_septic_shock"] = "Phoenix septic shock"
    return out


#: Tri-state results summarised at the index time: column -> label.
PHENOTYPE_RESULTS: dict[str, str] = _result_labels()
#: Per group, whether a criterion of it is met at the index time (screening.meets).
MEETS_LABELS: dict[str, str] = {
    f"meets_{group}": f"Meets a criterion of the {title} group" for group, title in
    meets.GROUP_TITLES.items()}
#: PRISM III-24 (points only; the probability equation is licensed, clinical reference §7.3).
PRISM_COLUMN = "prism3_points"
PRISM_LABEL = "PRISM III-24 (first 24 h of the PICU stay)"
PRISM_WINDOW_HOURS = 24
PRISM_METHOD = ("PRISM III-24 points (Pollack 1996; clinical reference §7): worst values of the "
                "first 24 h of the PICU stay, unmeasured variables scored normal as the authors "
                "do; points only (the mortality equation is licensed). The founding paper does "
                "not state its PRISM version (clinical reference §10.2; §12.29).")
PHENOTYPE_METHOD = ("Criteria and scores at the first anakinra dose from the screening engine "
                    "(hyperinflam.screening.screen): labs worst in the 72 h before, clinical findings "
                    "documented in the stay before (clinical reference §12.10); "
                    "unknown inputs are never counted as normal except by Phoenix and pSOFA, "
                    "whose authors score them 0.")

_QUANTILE_METHOD = "linear"


def _criteria_for(columns) -> list[str]:
    available = discover()
    return [name for name in available if any(c.startswith(f"{name}_") for c in columns)]


def phenotype_frames(con, cohort: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(at index, PRISM III-24) frames, one row per cohort member, from the screening engine.

    ``cohort`` needs stay_id, index_time, admit_time, discharge_time (study.cohort frames).
    """
    if cohort.empty:
        return pd.DataFrame(columns=["stay_id"]), pd.DataFrame(columns=["stay_id"])
    at_index = pd.DataFrame({
        "stay_id": cohort["stay_id"].astype(str),
        "eval_time": pd.to_datetime(cohort["index_time"]).astype("datetime64[us]")})
    wanted = list(PHENOTYPE_SCORES) + list(PHENOTYPE_RESULTS)

    def at_index_columns(backend, expr, tables):
        expr = expr.mutate(**meets.status_columns(expr))
        flags = [c for c in expr.columns if c.endswith(meets.OUTSIDE_AGES_SUFFIX)]
        return expr.select("stay_id", "eval_time", *[c for c in wanted if c in expr.columns],
                           *MEETS_LABELS, *flags)

    plan = screen_plan(con, "times", criteria=_criteria_for(wanted), name="phenotype_at_index",
                       extend=at_index_columns, extend_key=wanted)
    index_frame = plans.run_pandas(con, plan, screen_inputs("times", times=at_index)).drop(
        columns="eval_time")

    admit = pd.to_datetime(cohort["admit_time"])
    end = admit + pd.Timedelta(hours=PRISM_WINDOW_HOURS)
    discharge = pd.to_datetime(cohort["discharge_time"])
    prism_time = end.where(discharge.isna() | (discharge > end), discharge)
    at_24h = pd.DataFrame({"stay_id": cohort["stay_id"].astype(str),
                           "eval_time": prism_time.astype("datetime64[us]")})
    prism_frame = screen_pandas(con, "times", criteria=["prism3"],
                                columns=["stay_id", PRISM_COLUMN], times=at_24h)
    return index_frame, prism_frame


def _numeric_rows(study_id: str, section: str, variable: str, label: str,
                  values: pd.Series, unit: str) -> list[dict]:
    x = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    base = dict(study=study_id, section=section, group="cohort", variable=variable, label=label,
                level=None, timepoint=None, unit=unit, method=None)
    rows = [dict(base, statistic="n", value=float(len(x)), unit=None)]
    if len(x):
        q1, med, q3 = np.quantile(x, [0.25, 0.5, 0.75], method=_QUANTILE_METHOD)
        for stat, value in (("median", med), ("q1", q1), ("q3", q3), ("min", x.min()),
                            ("max", x.max())):
            rows.append(dict(base, statistic=stat, value=float(value),
                             method=f"numpy quantile, method={_QUANTILE_METHOD}"
                             if stat in ("median", "q1", "q3") else None))
    return rows


def _categorical_rows(study_id: str, variable: str, label: str, values: pd.Series,
                      n_cohort: int) -> list[dict]:
    rows = []
    counts = values.fillna("not evaluated").value_counts()
    for level in ("met", "not_met", "indeterminate", "unknown", "not evaluated"):
        if level not in counts.index:
            continue
        count = int(counts[level])
        base = dict(study=study_id, section="phenotype", group="cohort", variable=variable,
                    label=label, level=level.replace("_", " "), timepoint=None, method=None)
        rows.append(dict(base, statistic="count", value=float(count), unit=None))
        rows.append(dict(base, statistic="percent",
                         value=100.0 * count / n_cohort if n_cohort else np.nan, unit="%"))
    return rows


def phenotype_results(study_id: str, index_frame: pd.DataFrame,
                      prism_frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of the results dataset: section ``phenotype`` (scores and results at the index time)
    and the ``baseline`` PRISM III-24 points (docs/results-format.md)."""
    rows: list[dict] = []
    n = len(index_frame)
    for column, (label, unit) in PHENOTYPE_SCORES.items():
        if column in index_frame.columns:
            rows += _numeric_rows(study_id, "phenotype", column, label, index_frame[column], unit)
    for column, label in PHENOTYPE_RESULTS.items():
        if column in index_frame.columns:
            rows += _categorical_rows(study_id, column, label, index_frame[column], n)
    for column, label in MEETS_LABELS.items():
        if column in index_frame.columns:
            levels = index_frame[column].map({True: "met", False: "not_met"})
            rows += _categorical_rows(study_id, column, label, levels, n)
    for column in index_frame.columns:
        if column.endswith(meets.OUTSIDE_AGES_SUFFIX):
            name = column.removesuffix(meets.OUTSIDE_AGES_SUFFIX)
            count = int(index_frame[column].fillna(False).astype(bool).sum())
            base = dict(study=study_id, section="phenotype", group="cohort", variable=column,
                        label=f"{label_of(name)}: evaluated outside the ages its authors "
                              f"validated", level="outside validated ages", timepoint=None,
                        method=None)
            rows.append(dict(base, statistic="count", value=float(count), unit=None))
            rows.append(dict(base, statistic="percent",
                             value=100.0 * count / n if n else np.nan, unit="%"))
    if PRISM_COLUMN in prism_frame.columns:
        rows += _numeric_rows(study_id, "baseline", PRISM_COLUMN, PRISM_LABEL,
                              prism_frame[PRISM_COLUMN], "points")
    return pd.DataFrame(rows)
