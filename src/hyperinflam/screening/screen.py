"""Screen PICU stays: every criterion of ``hyperinflam.criteria`` on every stay x evaluation time.

``screen`` returns one lazy ibis expression: the evaluation grid (``features.evaluation_grid``),
the wide feature table holding the union of the criteria's INPUTS (``features.build_features``),
and every criterion's ``evaluate()`` columns. Nothing runs until the caller executes or writes it.
``docs/screen-output.md`` lists the columns; ``docs/time-model.md`` explains the time model
(clinical reference §12 rows 9, 10 and 14).
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


def screen(con, *, at: str | dt.datetime | None = None, step_hours: float = 24,
           criteria: Iterable[str | ModuleType] | None = None, vocabulary=None,
           times: ir.Table | None = None) -> ir.Table:
    """The screen as one lazy ibis table: base columns, features, then criterion columns.

    ``at``: evaluate the stays in the PICU at that single time; otherwise every ``step_hours``
    from admission plus the end of the stay (``features.evaluation_grid``). ``criteria``: names or
    modules (default: all discovered by ``hyperinflam.criteria.discover()``). Every criterion sees
    the same wide table (the union of all INPUTS); its columns are prefixed with its NAME.
    ``times``: a table of (stay_id, eval_time) to evaluate instead of a grid, e.g. each stay's
    first anakinra dose (``features.grid_at``).
    """
    modules = select_criteria(criteria)
    specs = unique_specs(spec for m in modules for spec in m.INPUTS)
    grid = (grid_at(con, times) if times is not None
            else evaluation_grid(con, step_hours=step_hours, at=at))
    wide = build_features(con, grid, specs, vocabulary=vocabulary)
    taken = set(wide.columns)
    columns: dict[str, ir.Value] = {}
    for module in modules:
        columns.update(_criterion_columns(module, wide, taken))
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


def latest_evaluations(expr: ir.Table) -> ir.Table:
    """Each stay's latest evaluation row (set-based: row_number over the stay)."""
    import ibis

    ranked = expr.mutate(rank_in_stay=ibis.row_number().over(
        group_by=expr.stay_id, order_by=expr.eval_time.desc()))
    return ranked.filter(ranked.rank_in_stay == 0).drop("rank_in_stay")


def result_columns(columns: Iterable[str], criteria=None) -> dict[str, str]:
    """Criterion NAME -> the column holding its overall tri-state result (module ``RESULT``),
    for the criteria whose result column is among ``columns``. Scores without a threshold
    (pSOFA, PRISM III points, Phoenix-8) declare none."""
    present = set(columns)
    out = {}
    for module in select_criteria(criteria):
        column = getattr(module, "RESULT", None)
        if column and column in present:
            out[module.NAME] = column
    return out


#: Peak values shown per stay in the terminal summary: label -> (column, aggregate). Columns that
#: are absent (a criterion not run) are skipped.
SUMMARY_PEAKS: dict[str, tuple[str, str]] = {
    "HScore": ("hscore_points", "max"),
    "HLH\nn/8": ("hlh2004_met_count", "max"),
    "Phoe-\nnix": ("phoenix_score", "max"),
    "pSOFA": ("psofa_score", "max"),
    "PRISM\nIII": ("prism3_points", "max"),
    "ferritin\nng/mL": ("ferritin_max_72h", "max"),
}


def summary_columns(columns: Iterable[str], criteria=None) -> list[str]:
    """The columns of a screen output that :func:`stays_meeting_any` reads (keys, each
    criterion's RESULT column, the :data:`SUMMARY_PEAKS` present), in output order."""
    columns = list(columns)
    wanted = {"stay_id", "person_id", "admit_time", "eval_time",
              *result_columns(columns, criteria).values(),
              *(column for column, _ in SUMMARY_PEAKS.values())}
    return [c for c in columns if c in wanted]


def stays_meeting_any(expr: ir.Table, *, criteria=None) -> ir.Table:
    """One row per stay that meets at least one criterion at any of its evaluations.

    Set-based (ibis): per stay, for every criterion with a ``RESULT`` column, whether it was
    ever 'met' and the first evaluation time it was; ``criteria_met`` counts them;
    ``first_met_time`` is the earliest; peak values of :data:`SUMMARY_PEAKS`. Sorted by the number
    of criteria met (most first), then HScore (highest first), then stay.
    """
    import ibis

    results = result_columns(expr.columns, criteria)
    if not results:
        raise ScreenError("None of the screened criteria declares a RESULT column.")
    aggs: dict[str, ir.Value] = {}
    for name, column in results.items():
        met = expr[column] == MET
        aggs[f"{name}_met"] = met.any()
        aggs[f"{name}_first_met"] = expr.eval_time.min(where=met)
    for label, (column, how) in SUMMARY_PEAKS.items():
        if column in expr.columns:
            aggs[column] = getattr(expr[column], how)()
    per_stay = expr.group_by(["stay_id", "person_id", "admit_time"]).aggregate(**aggs)
    n_met = sum(per_stay[f"{name}_met"].cast("int64") for name in results)
    first = ibis.least(*[per_stay[f"{name}_first_met"] for name in results]) \
        if len(results) > 1 else per_stay[f"{next(iter(results))}_first_met"]
    per_stay = per_stay.mutate(criteria_met=n_met, first_met_time=first)
    order = [per_stay.criteria_met.desc()]
    if "hscore_points" in per_stay.columns:
        order.append(per_stay.hscore_points.desc())
    return per_stay.filter(per_stay.criteria_met > 0).order_by([*order, per_stay.stay_id])


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
