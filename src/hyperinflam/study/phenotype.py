"""The phenotype at the index time: criteria and scores of the screening engine at each cohort
member's first dose of the index drug, and PRISM III-24 points for the baseline table.

The screen (``hyperinflam.screening.screen``) is evaluated at one time per stay (``times=``, from
its compiled plan, :mod:`hyperinflam.screening.plans`: no building or compiling once cached): the
index time for the phenotype section, and admission + 24 h (or discharge, if earlier) for PRISM III-24
(clinical reference §7.3 and §12.29: the founding paper's PRISM version is not stated, so the
points are labelled PRISM III-24 and never claimed equivalent). Only the small per-member frame
is executed; the statistics are plain descriptive summaries (numpy quantiles, counts).

Recorded severity scores (issue 12 item 4): a score the site recorded (the measurement variables
``prism3_recorded``, ``pim2_recorded``, ``pim3_recorded``, ``pelod2_recorded``,
``psofa_recorded`` of vocabulary/variables.csv) is the stay's first value recorded during the
stay. The baseline PRISM III is the recorded score when there is one, else the computed PRISM
III-24, and the results say how many of each. A computed PRISM III counts unmeasured items as
normal, as its authors do: the results give the number of its 17 items observed, and a stay with
none observed is "not computable" (no value), never 0 points. Phoenix and pSOFA at the index
time likewise (their authors score a missing input 0, clinical reference §5.4, §6.3): the results
give the Phoenix inputs observed (of the 13 organ inputs, ``phoenix.SCORED_INPUTS``) and the
pSOFA organ systems observed (of 6); a stay with none observed has no score ("not computable")
and its Phoenix sepsis and septic shock are unknown, not "not met".
"""

from __future__ import annotations

import re

import ibis
import numpy as np
import pandas as pd

from hyperinflam.criteria import discover
from hyperinflam.criteria import label as label_of
from hyperinflam.criteria import phoenix, prism3, psofa
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
PRISM_ASSUMED_COLUMN = "prism3_n_assumed_normal"
#: Items of PRISM III observed (of the 17, clinical reference §7.2); 0 = not computable.
PRISM_OBSERVED_COLUMN = "prism3_n_observed"
PRISM_ITEMS = len(prism3.ITEMS)
PRISM_RECORDED = "prism3_recorded"
#: Scores a site may record (vocabulary/variables.csv, kind score): variable -> (label, unit).
RECORDED_SCORES: dict[str, tuple[str, str]] = {
    PRISM_RECORDED: ("PRISM III (recorded by the site)", "points"),
    "pim2_recorded": ("PIM2 predicted risk of death (recorded by the site)", "%"),
    "pim3_recorded": ("PIM3 predicted risk of death (recorded by the site)", "%"),
    "pelod2_recorded": ("PELOD-2 (recorded by the site)", "points"),
    "psofa_recorded": ("pSOFA (recorded by the site)", "points"),
}
PRISM_RECORDED_LABEL = "PRISM III (recorded by the site, else PRISM III-24 computed)"
PRISM_METHOD = ("PRISM III-24 points (Pollack 1996; §7): the worst values of the first 24 h of the "
                "PICU stay, unmeasured variables scored normal as the authors do; points only "
                "(the mortality equation is licensed, §7.3). The founding paper does not state "
                "its PRISM version (§10.2, §12.29).")


def phenotype_method(index_drug: str) -> str:
    return (f"Criteria and scores at the first {index_drug} dose from the screening engine: "
            f"laboratory values the worst in the 72 h before, clinical findings documented in the "
            f"stay before (clinical reference §12.10); unknown inputs are never counted as normal "
            f"except by Phoenix and pSOFA, whose authors score them 0 (the inputs observed are "
            f"counted; a patient with none observed has no score, not 0). A criterion evaluated "
            f"outside the ages its authors validated is counted and flagged.")


_QUANTILE_METHOD = "linear"

#: Scores at the index time whose authors count a missing input as normal (§5.4, §6.3):
#: score column -> (column of inputs observed, of how many, what is counted, results that follow
#: the score and are unknown when no input was observed).
OBSERVED_INPUTS: dict[str, tuple[str, int, str, tuple[str, ...]]] = {
    "phoenix_score": ("phoenix_n_observed", len(phoenix.SCORED_INPUTS), "organ inputs",
                      ("phoenix_sepsis", "phoenix_septic_shock")),
    "psofa_score": ("psofa_n_observed", len(psofa.ORGAN_SYSTEMS), "organ systems", ()),
}
#: The screen columns the counts are made from.
_OBSERVED_FROM = ("phoenix_missing", "psofa_n_assumed_normal")
_PHOENIX_INPUT_NAMES = frozenset(name for name, _ in phoenix.SCORED_INPUTS)


def with_observed_inputs(index_frame: pd.DataFrame) -> pd.DataFrame:
    """The at-index frame with the inputs observed of Phoenix and pSOFA (OBSERVED_INPUTS); a
    score none of whose inputs was observed is NaN (not computable), its results unknown."""
    out = index_frame.copy()
    if "phoenix_missing" in out.columns:
        listed = out["phoenix_missing"].fillna("").astype(str)
        absent = sum(listed.str.contains(rf"(?:^|,)\s*{re.escape(name)}\s*(?:,|$)").astype(int)
                     for name in _PHOENIX_INPUT_NAMES)
        out["phoenix_n_observed"] = len(phoenix.SCORED_INPUTS) - absent
    if "psofa_n_assumed_normal" in out.columns:
        out["psofa_n_observed"] = len(psofa.ORGAN_SYSTEMS) - pd.to_numeric(
            out["psofa_n_assumed_normal"], errors="coerce")
    for score, (observed, _, _, follow) in OBSERVED_INPUTS.items():
        if score in out.columns and observed in out.columns:
            none = out[observed] == 0
            out[score] = pd.to_numeric(out[score], errors="coerce").where(~none)
            for result in follow:
                if result in out.columns:
                    out[result] = out[result].astype(object).where(~none, "unknown")
    return out.drop(columns=[c for c in _OBSERVED_FROM if c in out.columns])


def _observed_warning(frame: pd.DataFrame, score: str) -> str | None:
    """'inputs observed: median a of b; k not computable (no input observed)'."""
    observed, total, what, _ = OBSERVED_INPUTS[score]
    if observed not in frame.columns or frame.empty:
        return None
    n_obs = pd.to_numeric(frame[observed], errors="coerce").dropna()
    if n_obs.empty:
        return None
    notes = [f"{what} observed: median {np.median(n_obs):g} of {total} (inputs not "
             f"observed count as normal, as the authors do)"]
    none = int((n_obs == 0).sum())
    if none:
        notes.append(f"{none} not computable (no input observed)")
    return "; ".join(notes)


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
    wanted = list(PHENOTYPE_SCORES) + list(PHENOTYPE_RESULTS) + list(_OBSERVED_FROM)

    def at_index_columns(backend, expr, tables):
        expr = expr.mutate(**meets.status_columns(expr))
        flags = [c for c in expr.columns if c.endswith(meets.OUTSIDE_AGES_SUFFIX)]
        return expr.select("stay_id", "eval_time", *[c for c in wanted if c in expr.columns],
                           *MEETS_LABELS, *flags)

    plan = screen_plan(con, "times", criteria=_criteria_for(wanted), name="phenotype_at_index",
                       extend=at_index_columns, extend_key=wanted)
    index_frame = with_observed_inputs(plans.run_pandas(
        con, plan, screen_inputs("times", times=at_index)).drop(columns="eval_time"))

    admit = pd.to_datetime(cohort["admit_time"])
    end = admit + pd.Timedelta(hours=PRISM_WINDOW_HOURS)
    discharge = pd.to_datetime(cohort["discharge_time"])
    prism_time = end.where(discharge.isna() | (discharge > end), discharge)
    at_24h = pd.DataFrame({"stay_id": cohort["stay_id"].astype(str),
                           "eval_time": prism_time.astype("datetime64[us]")})
    prism_frame = screen_pandas(con, "times", criteria=["prism3"],
                                columns=["stay_id", PRISM_COLUMN, PRISM_MISSING_COLUMN,
                                         PRISM_ASSUMED_COLUMN],
                                times=at_24h)
    return index_frame, with_recorded_scores(prism_frame, recorded_scores(con, cohort))


def recorded_scores(con, cohort: pd.DataFrame) -> pd.DataFrame:
    """Per cohort member, the first value of each recorded score (RECORDED_SCORES) recorded
    during the stay (admission to discharge, open while in the PICU): stay_id + one column each
    (NaN where none)."""
    out = pd.DataFrame({"stay_id": cohort["stay_id"].astype(str)})
    if cohort.empty or not {"measurement", "stay"} <= set(con.list_tables()):
        return out.assign(**{v: np.nan for v in RECORDED_SCORES})
    ids = ibis.memtable(pd.DataFrame({"c_stay": cohort["stay_id"].astype(str)}))
    stay = con.table("stay")
    stays = ids.join(stay, ids.c_stay == stay.stay_id).select(
        "c_stay", c_person="person_id", c_admit="admit_time", c_discharge="discharge_time")
    m = con.table("measurement")
    m = m.filter(m.variable.isin(list(RECORDED_SCORES)))
    j = stays.join(m, [stays.c_person == m.person_id, m.time >= stays.c_admit,
                       stays.c_discharge.isnull() | (m.time <= stays.c_discharge)])
    j = j.mutate(rk=ibis.row_number().over(group_by=[j.c_stay, j.variable],
                                           order_by=[j.time, j.value]))
    first = j.filter(j.rk == 0).select(stay_id="c_stay", variable="variable",
                                       value=j.value.cast("float64")).to_pandas()
    wide = first.pivot(index="stay_id", columns="variable", values="value")
    return out.join(wide.reindex(columns=list(RECORDED_SCORES)), on="stay_id")


def with_recorded_scores(prism_frame: pd.DataFrame, recorded: pd.DataFrame) -> pd.DataFrame:
    """The PRISM III-24 frame with the items observed (``prism3_n_observed``; computed points
    NaN = not computable when none was observed) and the recorded scores."""
    out = prism_frame.copy()
    if PRISM_ASSUMED_COLUMN in out.columns:
        assumed = pd.to_numeric(out[PRISM_ASSUMED_COLUMN], errors="coerce")
        out[PRISM_OBSERVED_COLUMN] = PRISM_ITEMS - assumed
        if PRISM_COLUMN in out.columns:
            out[PRISM_COLUMN] = pd.to_numeric(out[PRISM_COLUMN], errors="coerce").where(
                out[PRISM_OBSERVED_COLUMN] > 0)
    if "stay_id" in out.columns and not recorded.empty:
        out = out.merge(recorded, on="stay_id", how="left")
    return out


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
            warning = _observed_warning(index_frame, column) if column in OBSERVED_INPUTS \
                else None
            rows += _numeric_rows(study_id, "phenotype", column, label, index_frame[column], unit,
                                  warning=warning)
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
        rows += _prism_rows(study_id, prism_frame)
    for variable, (label, unit) in RECORDED_SCORES.items():
        if variable != PRISM_RECORDED and variable in prism_frame.columns \
                and prism_frame[variable].notna().any():
            rows += _numeric_rows(study_id, "baseline", variable, label, prism_frame[variable],
                                  unit)
    return pd.DataFrame(rows)


def _prism_rows(study_id: str, prism_frame: pd.DataFrame) -> list[dict]:
    """The baseline PRISM III: recorded when the site recorded it, else computed (PRISM
    III-24); the warning says how many of each, the items observed, and how many stays have no
    PRISM III input at all (not computable, no value)."""
    computed = pd.to_numeric(prism_frame[PRISM_COLUMN], errors="coerce")
    recorded = (pd.to_numeric(prism_frame[PRISM_RECORDED], errors="coerce")
                if PRISM_RECORDED in prism_frame.columns
                else pd.Series(np.nan, index=prism_frame.index))
    values = recorded.where(recorded.notna(), computed)
    uses_computed = recorded.isna() & computed.notna()
    scored, with_missing = prism_missing_counts(prism_frame[uses_computed])
    notes = []
    n_recorded = int(recorded.notna().sum())
    if n_recorded:
        notes.append(f"{n_recorded} recorded by the site, {int(uses_computed.sum())} computed")
    if with_missing:
        notes.append(f"{with_missing} of {scored} computed with unmeasured inputs counted normal, "
                     f"as the authors do")
    if PRISM_OBSERVED_COLUMN in prism_frame.columns:
        observed = pd.to_numeric(prism_frame[PRISM_OBSERVED_COLUMN], errors="coerce")
        if uses_computed.any():
            notes.append(f"items observed: median {np.median(observed[uses_computed]):g} of "
                         f"{PRISM_ITEMS}")
        none = int((recorded.isna() & (observed == 0)).sum())
        if none:
            notes.append(f"{none} not computable (no PRISM III input observed)")
    label = PRISM_RECORDED_LABEL if n_recorded else PRISM_LABEL
    return _numeric_rows(study_id, "baseline", PRISM_COLUMN, label, values, "points",
                         warning="; ".join(notes) or None)
