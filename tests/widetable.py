"""Wide tables as the screen builds them, for testing one criterion module on hand-made rows.

A criterion's ``evaluate`` receives the base columns of the screening contract plus one column
per FeatureSpec of its INPUTS (``hyperinflam.criteria``). Tests register their cases at import
(input columns by name), then every case of a module is evaluated in one query per engine (the
``backend`` fixture of conftest.py: DuckDB and Spark), which keeps them fast on both: hundreds of
cases cost one Spark query, not hundreds. :func:`declared_and_written_types` writes results as
the screen writes them, to compare the file's column types with the declared ones
(tests/test_criteria_types.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

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


def evaluate(rows: dict[str, dict], module, con=None) -> pd.DataFrame:
    """Evaluate ``module`` on every case at once (on ``con``, default a DuckDB connection); the
    result is indexed by case key."""
    t = wide(rows, module)
    con = con if con is not None else ibis.duckdb.connect()
    out = con.execute(t.mutate(**module.evaluate(t)))
    return out.set_index("stay_id", drop=False).loc[list(rows)]


def declared_and_written_types(con, expr: ibis.Table, folder: Path) -> tuple[dict, dict]:
    """The column types ``expr`` declares and the types of the Parquet file the engine of ``con``
    writes for it (``hyperinflam.engine.write_result_file``, as ``hyperinflam screen`` writes),
    each as {column: Arrow type name}: equal when the engine computes what is declared (a CASE
    over integer literals is INTEGER to DuckDB although ibis declares int64)."""
    import pyarrow.parquet as pq

    from hyperinflam.engine import write_result_file

    out = Path(folder) / f"types-{con.name}.parquet"
    write_result_file(con, expr, out, "parquet")
    declared = {name: str(t) for name, t in zip(expr.columns, expr.schema().to_pyarrow().types)}
    written = {f.name: str(f.type) for f in pq.read_schema(out)}
    return declared, written


@contextmanager
def settings(modules: Sequence, values: dict | None):
    """Module settings (named constants a criterion reads at evaluate) changed for a block."""
    saved = []
    try:
        for name, value in (values or {}).items():
            module = next(m for m in modules if hasattr(m, name))
            saved.append((module, name, getattr(module, name)))
            setattr(module, name, value)
        yield
    finally:
        for module, name, value in reversed(saved):
            setattr(module, name, value)


class Batch:
    """Rows registered at import and evaluated together, once per engine.

    ``frame`` turns the list of rows into a wide pandas frame (one row each, in order);
    ``modules`` are evaluated on it (their columns side by side); ``settings`` are module
    constants set while the expression is built (e.g. ``{"HYPOTENSION_TABLE": ...}``).
    """

    def __init__(self, modules, frame: Callable[[list[dict]], pd.DataFrame],
                 settings: dict | None = None):
        self.modules = tuple(modules) if isinstance(modules, (list, tuple)) else (modules,)
        self.frame = frame
        self.settings = settings
        self.rows: list[dict] = []

    def add(self, row: dict) -> str:
        self.rows.append(row)
        return f"row{len(self.rows) - 1:05d}"

    def add_all(self, rows) -> list[str]:
        return [self.add(r) for r in rows]

    def table(self, rows: list[dict] | None = None) -> ibis.Table:
        frame = self.frame(list(self.rows if rows is None else rows)).copy()
        frame["stay_id"] = [f"row{i:05d}" for i in range(len(frame))]
        return ibis.memtable(frame)

    def expression(self, rows: list[dict] | None = None) -> ibis.Table:
        t = self.table(rows)
        with settings(self.modules, self.settings):
            columns = {}
            for module in self.modules:
                columns.update(module.evaluate(t))
        return t.select("stay_id", **columns)

    def evaluate(self, con) -> pd.DataFrame:
        """Every registered row on ``con``, indexed by its key."""
        out = con.execute(self.expression())
        return out.set_index("stay_id", drop=False).sort_index()


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

    def evaluate(self, con=None) -> pd.DataFrame:
        """Every registered case, in one query (on ``con``, default DuckDB)."""
        return evaluate(self.cases, self.module, con)

    def wide(self, rows: dict[str, dict]) -> ibis.Table:
        return wide(rows, self.module)
