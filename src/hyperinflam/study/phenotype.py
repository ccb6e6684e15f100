"""The phenotype at the index time: criteria and scores of the screening engine at each cohort
member's first dose of the index drug, and PRISM III-24 points for the baseline table.

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
from hyperinflam.study import labels as words
from hyperinflam.study.analysis import QUANTILE_METHOD

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
PRISM_MISSING_COLUMN = "prism3_missing"
PRISM_LABEL = "PRISM III-24 (first 24 h of the PICU stay)"
PRISM_WINDOW_HOURS = 24
PRISM_METHOD = ("PRISM III-24 points (Pollack 1996; §7): the worst values of the first 24 h of the "
                "PICU stay, unmeasured variables scored normal as the authors do; points only "
                "(the mortality equation is licensed, §7.3). The founding paper does not state "
                "its PRISM version (§10.2, §12.29).")


def phenotype_method(index_drug: str) -> str:
    return (f"Criteria and scores at the first {index_drug} dose from the screening engine: "
            f"laboratory values the worst in the 72 h before, clinical findings documented in the "
            f"stay before (clinical reference §12.10); unknown inputs are never counted as normal "
            f"except by Phoenix and pSOFA, whose authors score them 0. A criterion evaluated "
            f"outside the ages its authors validated is counted and flagged.")


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
                                columns=["stay_id", PRISM_COLUMN, PRISM_MISSING_COLUMN],
                                times=at_24h)
    return index_frame, prism_frame


def _row(study_id: str, section: str, variable: str, label: str, stat_name: str, value, *,
         level=None, unit=None, method=None, warning=None, error=None) -> dict:
    return dict(study=study_id, section=section, group="cohort", variable=variable, label=label,
                level=level, comparison=None, timepoint=None, stat_name=stat_name,
                stat_label=words.stat_label(stat_name),
                value=np.nan if value is None else float(value), unit=unit, method=method,
                warning=warning, error=error)


def _numeric_rows(study_id: str, section: str, variable: str, label: str,
                  values: pd.Series, unit: str, warning: str | None = None) -> list[dict]:
    x = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    rows = [_row(study_id, section, variable, label, "n", len(x), warning=warning)]
    if len(x):
        q1, med, q3 = np.quantile(x, [0.25, 0.5, 0.75], method=_QUANTILE_METHOD)
        stats = (("median", med), ("q1", q1), ("q3", q3), ("min", x.min()), ("max", x.max()))
    else:
        stats = tuple((s, None) for s in ("median", "q1", "q3", "min", "max"))
    for stat, value in stats:
        rows.append(_row(study_id, section, variable, label, stat, value, unit=unit,
                         method=QUANTILE_METHOD if stat in ("q1", "q3") else None,
                         warning=warning, error=None if value is not None else "no values"))
    return rows


def _categorical_rows(study_id: str, variable: str, label: str, values: pd.Series,
                      n_cohort: int) -> list[dict]:
    rows = []
    counts = values.fillna("not evaluated").value_counts()
    for level in ("met", "not_met", "indeterminate", "unknown", "not evaluated"):
        if level not in counts.index:
            continue
        count = int(counts[level])
        shown = words.state_label(level)
        rows.append(_row(study_id, "phenotype", variable, label, "count", count, level=shown))
        rows.append(_row(study_id, "phenotype", variable, label, "percent",
                         100.0 * count / n_cohort if n_cohort else None, level=shown, unit="%",
                         error=None if n_cohort else "no patients"))
    return rows


def prism_missing_counts(prism_frame: pd.DataFrame) -> tuple[int, int]:
    """(patients scored, of whom scored with at least one unmeasured input counted normal)."""
    if PRISM_MISSING_COLUMN not in prism_frame.columns or prism_frame.empty:
        return 0, 0
    scored = prism_frame[PRISM_COLUMN].notna() if PRISM_COLUMN in prism_frame.columns else (
        pd.Series(False, index=prism_frame.index))
    missing = prism_frame[PRISM_MISSING_COLUMN].fillna("").astype(str).str.len() > 0
    return int(scored.sum()), int((scored & missing).sum())


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
            label = f"{label_of(name)}: evaluated outside the ages its authors validated"
            # a yes/no flag (no level), like invasive_ventilation: its complement is the cohort
            rows.append(_row(study_id, "phenotype", column, label, "count", count))
            rows.append(_row(study_id, "phenotype", column, label, "percent",
                             100.0 * count / n if n else None, unit="%",
                             error=None if n else "no patients"))
    if PRISM_COLUMN in prism_frame.columns:
        scored, with_missing = prism_missing_counts(prism_frame)
        warning = (f"{with_missing} of {scored} patients scored with unmeasured inputs counted "
                   f"normal, as the authors do" if with_missing else None)
        rows += _numeric_rows(study_id, "baseline", PRISM_COLUMN, PRISM_LABEL,
                              prism_frame[PRISM_COLUMN], "points", warning=warning)
    return pd.DataFrame(rows)
