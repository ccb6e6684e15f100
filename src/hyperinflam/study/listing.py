"""The per-patient listing: one row per patient of the study, pseudonymised (P01, P02, ...), with
what the founding paper's patient table shows (clinical reference §10.1): age, sex, underlying
disease or previously healthy, reason for PICU admission, PRISM III (recorded, else computed;
filled in by the run from the screening engine), hours from PICU admission to the first dose,
the index drug's daily dose in mg/kg/day, route and days, co-therapies, invasive ventilation,
vasoactive infusion, infection after the first dose, PICU length of stay and outcome.

A value the source does not record is empty (None), never "no" (docs/results-format.md §3).
Built from the executed cohort frames only: the per-patient rows are already small.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hyperinflam.study import labels as words
from hyperinflam.study.cohort import CohortFrames
from hyperinflam.study.definition import StudyDefinition
from hyperinflam.study.results import patients_columns


def _flag(values: pd.Series, recorded: bool) -> pd.Series:
    if not recorded:
        return pd.Series([None] * len(values), index=values.index, dtype=object)
    return values.fillna(False).astype(bool).astype(object)


def patient_listing(frames: CohortFrames, study: StudyDefinition, labels: dict[str, str],
                    recorded: dict[str, bool]) -> pd.DataFrame:
    """The listing (columns: :func:`hyperinflam.study.results.patients_columns`)."""
    columns = patients_columns(study.cotherapies.classes)
    c = frames.cohort
    if c.empty:
        return pd.DataFrame(columns=["stay_id", *columns])
    out = pd.DataFrame({"stay_id": c["stay_id"], "study": study.study.id,
                        "patient": c["stay_id"].map(labels)})
    out["age_years"] = c["age_years"].astype("float64")
    out["sex"] = c["sex"].fillna("unknown").astype(object)
    out["health_status"] = (np.where(c["underlying_disease"].fillna(False).astype(bool),
                                     "underlying disease", "previously healthy")
                            if recorded.get("conditions", True) else None)
    out["health_status"] = out["health_status"].astype(object)
    out["admission_reason"] = c["admission_reason"].astype(object).where(
        c["admission_reason"].notna(), None)
    out["prism3"] = np.nan
    out["prism3_source"] = None
    out["hours_admission_to_index"] = c["hours_admission_to_index"].astype("float64")
    ex = frames.exposure if frames.exposure is not None else pd.DataFrame(columns=["stay_id"])
    ex = c[["stay_id"]].merge(ex, on="stay_id", how="left")
    out["index_drug_mg_kg_day"] = pd.to_numeric(ex.get("median_mg_kg_day"),
                                                errors="coerce").to_numpy()
    out["index_drug_max_mg_kg_day"] = pd.to_numeric(ex.get("max_mg_kg_day"),
                                                    errors="coerce").to_numpy()
    routes = ex.get("routes", pd.Series([None] * len(ex))).fillna("")
    out["index_drug_route"] = [words.route_label(r) or None for r in routes]
    out["index_drug_days"] = pd.to_numeric(ex.get("days_with_dose"), errors="coerce").to_numpy()
    cot = frames.cotherapy
    for drug_class in study.cotherapies.classes:
        if not recorded.get("drugs", True):
            out[f"cotherapy_{drug_class}"] = None
            continue
        given = set() if cot is None or cot.empty else set(
            cot.loc[(cot["drug_class"] == drug_class) & cot["in_window"].astype(bool), "stay_id"])
        out[f"cotherapy_{drug_class}"] = c["stay_id"].isin(given).astype(object).to_numpy()
    out["invasive_ventilation"] = _flag(c["invasive_ventilation"],
                                        recorded.get("invasive_ventilation", True)).to_numpy()
    out["vasoactive_infusion"] = _flag(c["vasoactive_infusion"],
                                       recorded.get("vasoactive_infusion", True)).to_numpy()
    ev = frames.events
    first = (ev.sort_values("days_from_index").groupby(["stay_id", "event_type"])["days_from_index"]
             .first() if ev is not None and not ev.empty else pd.Series(dtype=float))

    def first_day(kind: str) -> pd.Series:
        if first.empty:
            return pd.Series([np.nan] * len(c), index=c.index)
        return c["stay_id"].map(lambda s: first.get((s, kind), np.nan)).astype("float64")

    infection_day = first_day("infection")
    if recorded.get("infection", True) and study.outcomes.infections:
        out["infection_after_index"] = infection_day.notna().astype(object).to_numpy()
    else:
        out["infection_after_index"] = None
    out["infection_days_from_index"] = infection_day.to_numpy()
    out["picu_days"] = c["picu_days"].astype("float64")
    death_day = first_day("death")
    died_in_stay = set() if ev is None or ev.empty else set(
        ev.loc[(ev["event_type"] == "death") & ev["in_stay"].astype(bool), "stay_id"])
    deaths_recorded = recorded.get("death", True) and study.outcomes.deaths

    died_here = c["stay_id"].isin(died_in_stay).to_numpy() & deaths_recorded
    in_picu = c["discharge_time"].isna().to_numpy()
    died_later = death_day.notna().to_numpy()
    out["outcome"] = np.select(
        [died_here, in_picu, not deaths_recorded, died_later],
        ["died in the PICU", "still in the PICU", "discharged (deaths not recorded)",
         "discharged alive, died later"], default="discharged alive").astype(object)
    out["death_days_from_index"] = death_day.to_numpy() if deaths_recorded else np.nan
    out = out.sort_values("patient", kind="stable").reset_index(drop=True)
    # stay_id: for the run to add PRISM III and the recognition columns (empty here); then dropped
    return out.reindex(columns=["stay_id", *columns])
