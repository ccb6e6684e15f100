"""Screen PICU stays: every criterion of ``hyperinflam.criteria`` on every stay x evaluation time.

``screen`` returns one lazy ibis expression: the evaluation grid (``features.evaluation_grid``),
the wide feature table holding the union of the criteria's INPUTS (``features.build_features``),
and every criterion's ``evaluate()`` columns. Nothing runs until the caller executes or writes it.
``docs/screen-output.md`` lists the columns; ``docs/time-model.md`` explains the time model
(clinical reference §12.9, §12.10, §12.14).
"""

from __future__ import annotations

import datetime as dt
from types import ModuleType
from typing import Iterable

import ibis.expr.types as ir
import pandas as pd

from hyperinflam.errors import ScreenError
from hyperinflam.features import build_features, evaluation_grid, grid_at, unique_specs

#: Values of a tri-state result column meaning the criterion is fulfilled.
MET = "met"
#: The age column a criterion's VALIDATED_AGE_MONTHS is checked against (§12.14: age at the
#: evaluation time) and the suffix of the flag the screen adds (screening.meets).
AGE_COLUMN = "age_months"
OUTSIDE_AGES_SUFFIX = "_outside_validated_ages"


def outside_validated_ages(t: ir.Table, modules) -> dict[str, ir.Value]:
    """``<name>_outside_validated_ages`` for every criterion module declaring
    ``VALIDATED_AGE_MONTHS = (low, high)``: age < low or age >= high (NULL without an age)."""
    if AGE_COLUMN not in t.columns:
        return {}
    age = t[AGE_COLUMN]
    out = {}
    for module in modules:
        ages = getattr(module, "VALIDATED_AGE_MONTHS", None)
        if ages:
            low, high = ages
            out[f"{module.NAME}{OUTSIDE_AGES_SUFFIX}"] = (age < low) | (age >= high)
    return out


def select_criteria(criteria: Iterable[str | ModuleType] | None = None) -> list[ModuleType]:
    """Criterion modules to run: all discovered ones (None), or the given names / modules."""
    from hyperinflam.criteria import discover

    available = discover()
    if criteria is None:
        return list(available.values())
    chosen = []
    for item in criteria:
        if isinstance(item, str):
            if item not in available:
                raise ScreenError(
                    f"Unknown criterion '{item}'. Available: "
                    f"{', '.join(available) or '(none installed)'}.")
            chosen.append(available[item])
        else:
            for attr in ("NAME", "INPUTS", "evaluate"):
                if not hasattr(item, attr):
                    raise ScreenError(f"Criterion {item!r} has no {attr}; see "
                                      f"hyperinflam/criteria/__init__.py for the contract.")
            chosen.append(item)
    return chosen


def _criterion_columns(module: ModuleType, wide: ir.Table, taken: set[str]) -> dict[str, ir.Value]:
    try:
        columns = module.evaluate(wide)
    except Exception as exc:  # a criterion's bug, reported with its name
        raise ScreenError(f"Criterion '{module.NAME}' failed to build its columns: {exc}") from exc
    prefix = f"{module.NAME}_"
    for name in columns:
        if not name.startswith(prefix) or name != name.lower():
            raise ScreenError(f"Criterion '{module.NAME}' outputs column '{name}': every output "
                              f"column must be lower case and start with '{prefix}'.")
        if name in taken:
            raise ScreenError(f"Criterion '{module.NAME}' outputs column '{name}', which already "
                              f"exists in the screen table.")
        taken.add(name)
    return columns


def screen(con, *, at: str | dt.datetime | ir.TimestampValue | None = None,
           step_hours: float = 24, criteria: Iterable[str | ModuleType] | None = None,
           vocabulary=None, times: ir.Table | None = None,
           step_seconds: ir.IntegerValue | None = None) -> ir.Table:
    """The screen as one lazy ibis table: base columns, features, then criterion columns.

    ``at``: evaluate the stays in the PICU at that single time; otherwise every ``step_hours``
    from admission plus the end of the stay (``features.evaluation_grid``). ``criteria``: names or
    modules (default: all discovered by ``hyperinflam.criteria.discover()``). Every criterion sees
    the same wide table (the union of all INPUTS); its columns are prefixed with its NAME.
    ``times``: a table of (stay_id, eval_time) to evaluate instead of a grid, e.g. each stay's
    first anakinra dose (``features.grid_at``). ``at`` and ``step_seconds`` may be ibis values
    (the compiled plans of :mod:`hyperinflam.screening.plans` read them from input tables).
    """
    modules = select_criteria(criteria)
    specs = unique_specs(spec for m in modules for spec in m.INPUTS)
    grid = (grid_at(con, times) if times is not None
            else evaluation_grid(con, step_hours=step_hours, at=at, step_seconds=step_seconds))
    wide = build_features(con, grid, specs, vocabulary=vocabulary)
    taken = set(wide.columns)
    columns: dict[str, ir.Value] = {}
    for module in modules:
        columns.update(_criterion_columns(module, wide, taken))
    # each criterion that declares its validated ages: is this evaluation outside them
    columns.update(outside_validated_ages(wide, modules))
    return _staged_mutate(wide, columns) if columns else wide


def _staged_mutate(wide: ir.Table, columns: dict[str, ir.Value]) -> ir.Table:
    """``wide.mutate(**columns)``, with every output that another output is built from computed
    once and referenced by name.

    A criterion builds its outputs from each other (HLH-2004's count from its eight criteria, the
    HScore total from its points, ...). ibis inlines such sub-expressions at every use, so one
    projection repeated them many times (the full screen: ~590 KB of SQL, 2.6 s to compile on
    the 2-core benchmark machine; staged: ~480 KB, 1.6 s; the engine's own run time is about the
    same, DuckDB already shares common sub-expressions). Here outputs are added in dependency
    levels (an output containing another comes in a later level and reads it as a column).
    ``ibis.random()`` in a column that is
    dropped again keeps the compiler from merging the levels back into one projection (ibis does
    not merge projections across impure expressions); it is never part of the result. Same
    values and column order as ``wide.mutate(**columns)``.
    """
    import ibis
    import ibis.expr.operations as ops
    from ibis.common.graph import Graph

    # Dereferenced to ``wide`` (criteria may have built some columns on derived tables).
    values = {name: op for name, op in wide.mutate(**columns).op().values.items()
              if name in columns}
    shared = {name: op for name, op in values.items()
              if not isinstance(op, (ops.Literal, ops.Field))}
    inside: dict[str, set[str]] = {}
    for name, op in values.items():
        graph = Graph.from_bfs(op, filter=ops.Value)
        inside[name] = {other for other, sub in shared.items() if sub != op and sub in graph}
    level: dict[str, int] = {}

    def level_of(name: str) -> int:
        if name not in level:
            level[name] = 1 + max((level_of(d) for d in inside[name]), default=0)
        return level[name]

    for name in values:
        level_of(name)
    table, added = wide, []
    for current in range(1, max(level.values()) + 1):
        names = [n for n in values if level[n] == current]
        mapping = {wide[c].op(): table[c].op() for c in wide.columns}
        mapping.update({shared[n]: table[n].op() for n in added if n in shared})
        stage = {n: values[n].replace(mapping, filter=ops.Value).to_expr() for n in names}
        if current < max(level.values()):
            table = table.mutate(**stage, stage_barrier=ibis.random()).drop("stage_barrier")
        else:
            table = table.mutate(**stage)
        added += names
    return table.select(*wide.columns, *columns)


def screen_frame(con, *, at: str | dt.datetime | None = None, step_hours: float = 24,
                 criteria: Iterable[str | ModuleType] | None = None,
                 vocabulary=None) -> pd.DataFrame:
    """The screen as a pandas DataFrame, sorted by stay and evaluation time (the Python API)."""
    expr = screen(con, at=at, step_hours=step_hours, criteria=criteria, vocabulary=vocabulary)
    return expr.order_by(["stay_id", "eval_time"]).to_pandas()


def screen_columns(criteria: Iterable[str | ModuleType] | None = None) -> pd.DataFrame:
    """Every column of the screen output: name, type, kind (base / feature / criterion), and the
    criterion that declares or outputs it. Built from the expression's schema on an empty
    in-memory database (nothing is computed); ``docs/screen-output.md`` is written from it.
    """
    from hyperinflam.engine import connect_memory
    from hyperinflam.features import evaluation_grid

    con = connect_memory()
    modules = select_criteria(criteria)
    base = set(evaluation_grid(con).columns)
    declared = {}
    for module in modules:
        for spec in module.INPUTS:
            declared.setdefault(spec.column, []).append(module.NAME)
    rows = []
    for name, dtype in screen(con, criteria=modules).schema().items():
        if name in base:
            kind, owner = "base", ""
        elif name in declared:
            kind, owner = "feature", ", ".join(declared[name])
        else:
            kind = "criterion"
            owner = next((m.NAME for m in modules if name.startswith(f"{m.NAME}_")), "")
        rows.append({"column": name, "type": str(dtype), "kind": kind, "criterion": owner})
    con.disconnect()
    return pd.DataFrame(rows)
