"""The container the analysis returns and every renderer reads (docs/results-format.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

RESULTS_COLUMNS = ["study", "section", "group", "variable", "label", "level", "timepoint",
                   "statistic", "value", "unit", "method"]
OBSERVATIONS_COLUMNS = ["study", "patient", "variable", "hours_from_index", "value", "unit", "role"]


@dataclass
class StudyResults:
    """Statistics computed once (``results``) and the patient-level values behind the plots
    (``observations``), with the study definition and provenance used to write the methods."""

    results: pd.DataFrame
    observations: pd.DataFrame
    definition: dict  # the validated study definition, as plain data (model_dump)
    provenance: dict = field(default_factory=dict)  # versions, data source, run time

    def stat(self, section: str, variable: str, statistic: str, *, timepoint: str | None = None,
             level: str | None = None, group: str = "cohort") -> float | None:
        """One value of the results table (None if absent)."""
        r = self.results
        mask = ((r["section"] == section) & (r["variable"] == variable)
                & (r["statistic"] == statistic) & (r["group"] == group))
        mask &= r["timepoint"].isna() if timepoint is None else (r["timepoint"] == timepoint)
        mask &= r["level"].isna() if level is None else (r["level"] == level)
        rows = r.loc[mask, "value"]
        return None if rows.empty else float(rows.iloc[0])
