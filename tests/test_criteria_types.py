"""Every criterion's outputs, written as the screen writes them, have the declared column types
on every engine (the ``backend`` fixture: DuckDB and Spark).

A column type is decided when the engine plans the query, not by the values, so one wide row
with every input of every discovered criterion suffices, in one query per engine: a criterion
added later is checked without a line here. Declared: the ibis schema of the expression; written:
the Parquet schema of ``hyperinflam.engine.write_result_file`` (tests/widetable.py
``declared_and_written_types``). A CASE over integer literals is INTEGER to DuckDB and an array
of decimal literals DECIMAL although ibis declares int64 / float64 (criteria._toolkit.typed).
"""

from __future__ import annotations

import types

import ibis
import pandas as pd

from hyperinflam.criteria import discover
from hyperinflam.features import unique_specs
from widetable import declared_and_written_types, wide

ALL_CRITERIA = types.SimpleNamespace(
    INPUTS=unique_specs(spec for module in discover().values() for spec in module.INPUTS))


def test_every_criterion_output_has_its_declared_type_on_every_engine(backend, tmp_path):
    t = wide({"one": {}}, ALL_CRITERIA)
    columns = {}
    for module in discover().values():
        columns.update(module.evaluate(t))
    declared, written = declared_and_written_types(backend, t.mutate(**columns), tmp_path)
    assert list(written) == list(declared)
    differ = {c: (declared[c], written[c]) for c in declared if written[c] != declared[c]}
    assert differ == {}, f"declared vs written on {backend.name}: {differ}"


def test_the_check_sees_an_undeclared_integer_type(tmp_path):
    """A test of the test: a CASE over integer literals, left uncast, is caught."""
    t = ibis.memtable(pd.DataFrame({"x": [1.0, 2.0]}))
    expr = t.select(points=ibis.cases((t.x > 1, 3), else_=0))
    declared, written = declared_and_written_types(ibis.duckdb.connect(), expr, tmp_path)
    assert declared["points"] != written["points"]
