"""Wide tables as the screen builds them, for testing one criterion module on hand-made rows.

A criterion's ``evaluate`` receives the base columns of the screening contract plus one column
per FeatureSpec of its INPUTS (``hyperinflam.criteria``). Tests register cases (input columns by
name), then evaluate every case of a module in one query, which keeps them fast.
"""

from __future__ import annotations

import ibis
import pandas as pd

AGE_6_YEARS_DAYS = 6 * 365.25
BASE_SCHEMA = {
    "person_id": "string", "stay_id": "string", "eval_time": "timestamp",
    "admit_time": "timestamp", "discharge_time": "timestamp", "birth_date": "date",
    "sex": "string", "weight_kg": "float64", "age_days": "float64", "age_months": "float64",
    "age_months_at_admit": "float64", "hours_since_admit": "float64",
}


def wide(rows: dict[str, dict], module) -> ibis.Table:
    """Base columns + one column per FeatureSpec of ``module``, one row per case (stay_id = the
    case key). Unset inputs are NULL (missing); a 6-year-old evaluated 24 h after admission."""
    schema = dict(BASE_SCHEMA)
    for spec in module.INPUTS:
        schema[spec.column] = {"count": "int64", "any": "boolean"}.get(spec.agg, "float64")
    base = {"person_id": "p", "eval_time": pd.Timestamp("2024-03-02 12:00"),
            "admit_time": pd.Timestamp("2024-03-01 12:00"), "discharge_time": None,
            "birth_date": pd.Timestamp("2018-03-01").date(), "sex": "female", "weight_kg": 20.0,
            "age_days": AGE_6_YEARS_DAYS, "age_months": AGE_6_YEARS_DAYS / 30.4375,
            "age_months_at_admit": AGE_6_YEARS_DAYS / 30.4375, "hours_since_admit": 24.0}
    records = []
    for key, row in rows.items():
        unknown = set(row) - set(schema)
        assert not unknown, f"not an input column: {unknown}"
        records.append({**base, **{c: None for c in schema if c not in base}, **row,
                        "stay_id": key})
    return ibis.memtable(pd.DataFrame(records, columns=list(schema)), schema=schema)


def evaluate(rows: dict[str, dict], module) -> pd.DataFrame:
    """Evaluate ``module`` on every case at once; the result is indexed by case key."""
    t = wide(rows, module)
    out = ibis.duckdb.connect().execute(t.mutate(**module.evaluate(t)))
    return out.set_index("stay_id", drop=False)


class CaseBook:
    """Cases registered at import time and evaluated together in one query."""

    def __init__(self, module):
        self.module = module
        self.cases: dict[str, dict] = {}

    def case(self, **columns) -> str:
        """Register one wide-table row (input columns by name); returns its key."""
        key = f"case{len(self.cases):04d}"
        self.cases[key] = columns
        return key

    def evaluate(self) -> pd.DataFrame:
        """Every registered case, in one query."""
        return evaluate(self.cases, self.module)

    def wide(self, rows: dict[str, dict]) -> ibis.Table:
        return wide(rows, self.module)
