"""The container the analysis returns and every renderer reads (docs/results-format.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

#: The analysis results dataset: one row per group x variable x level x comparison x timepoint x
#: statistic (docs/results-format.md §1).
RESULTS_COLUMNS = ["study", "section", "group", "variable", "label", "level", "comparison",
                   "timepoint", "stat_name", "stat_label", "value", "unit", "method", "warning",
                   "error"]
OBSERVATIONS_COLUMNS = ["study", "patient", "variable", "hours_from_index", "value", "unit", "role"]
#: The per-patient listing (docs/results-format.md §3): patient-level, never pooled or shared.
#: One ``cotherapy_<class>`` column per co-therapy class of the study follows
#: ``index_drug_days``.
PATIENTS_COLUMNS = [
    "study", "patient", "age_years", "sex", "health_status", "admission_reason", "prism3",
    "prism3_source", "hours_admission_to_index", "index_drug_mg_kg_day",
    "index_drug_max_mg_kg_day", "index_drug_route", "index_drug_days",
    "invasive_ventilation", "vasoactive_infusion", "infection_after_index",
    "infection_days_from_index", "picu_days", "outcome", "death_days_from_index",
    # the secondary analysis "time from recognition to treatment" (study.recognition)
    "hours_recognition_to_index", "first_phenotype_criterion", "start_group",
]


def patients_columns(cotherapy_classes: list[str]) -> list[str]:
    """The listing's columns for a study with these co-therapy classes."""
    at = PATIENTS_COLUMNS.index("index_drug_days") + 1
    return (PATIENTS_COLUMNS[:at] + [f"cotherapy_{c}" for c in cotherapy_classes]
            + PATIENTS_COLUMNS[at:])


@dataclass
class StudyResults:
    """Statistics computed once (``results``), the patient-level values behind the plots
    (``observations``) and the per-patient listing (``patients``), with the study definition and
    provenance used to write the methods."""

    results: pd.DataFrame
    observations: pd.DataFrame
    definition: dict  # the validated study definition, as plain data (model_dump)
    provenance: dict = field(default_factory=dict)  # versions, data source, run time
    patients: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PATIENTS_COLUMNS))

    def stat(self, section: str, variable: str, stat_name: str, *, comparison: str | None = None,
             timepoint: str | None = None, level: str | None = None,
             group: str = "cohort") -> float | None:
        """One value of the results table (None if absent or empty)."""
        r = self.results
        mask = ((r["section"] == section) & (r["variable"] == variable)
                & (r["stat_name"] == stat_name) & (r["group"] == group))
        for column, wanted in (("comparison", comparison), ("timepoint", timepoint),
                               ("level", level)):
            mask &= r[column].isna() if wanted is None else (r[column] == wanted)
        rows = r.loc[mask, "value"]
        return None if rows.empty or pd.isna(rows.iloc[0]) else float(rows.iloc[0])

    def row(self, section: str, variable: str, stat_name: str, **where) -> dict | None:
        """The whole row (with its warning and error), or None."""
        r = self.results
        mask = ((r["section"] == section) & (r["variable"] == variable)
                & (r["stat_name"] == stat_name))
        for column, wanted in where.items():
            mask &= r[column].isna() if wanted is None else (r[column] == wanted)
        rows = r.loc[mask]
        return None if rows.empty else rows.iloc[0].to_dict()
