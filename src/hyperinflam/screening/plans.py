"""The screen as compiled plans (:mod:`hyperinflam.engine.plans`): built and compiled once per
(criteria, mode, engine, canonical schema, hyperinflam code), then run from the cached SQL by the
command line, the study and the web application.

Three modes, each one plan whatever its parameters:

* ``grid``: every stay every ``step_hours`` from admission plus its end (``--grid``); the step
  is the input ``screen_step`` (one row: ``step_seconds``);
* ``at``: the stays in the PICU at one time (``--at``, the census); input ``screen_at``
  (one row: ``at_time``, naive UTC);
* ``times``: given (stay_id, eval_time) rows (the study's index times); input ``screen_times``.

The values are those of :func:`hyperinflam.screening.screen.screen` with the same arguments (the
same expression, with its parameters read from the input tables); ``tests/test_plans.py`` checks
every mode against it. This module imports ibis only when a plan has to be built, so a cached
screen starts in a fraction of a second.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable

from hyperinflam.engine import plans

MODES = ("grid", "at", "times")
#: Input tables of each mode: name -> {column: ibis type}.
MODE_INPUTS: dict[str, dict[str, dict[str, str]]] = {
    "grid": {"screen_step": {"step_seconds": "int64"}},
    "at": {"screen_at": {"at_time": "timestamp"}},
    "times": {"screen_times": {"stay_id": "string", "eval_time": "timestamp"}},
}
#: Rows of a screen are written in this order.
ORDER_BY = ("stay_id", "eval_time")
#: A screen of more measurement rows than this runs in batches of persons of about this many
#: measurement rows each (memory stays bounded whatever the site size). 4 million: at 100,000
#: stays, batches of 3 million rows ran in 0.93x the time of 12 million and half the peak memory
#: (docs/performance.md, "Issue 15: batches"). A 10,000-stay site (3.3 million rows) is one batch.
#: ``HYPERINFLAM_BATCH_ROWS`` overrides it.
DEFAULT_BATCH_ROWS = 4_000_000


def criteria_key(criteria: Iterable[str | ModuleType] | None) -> list | str:
    """What identifies a criteria selection in a plan key: 'all', the names, or for a module
    outside this package its name and the hash of its source file."""
    if criteria is None:
        return "all"
    out = []
    for item in criteria:
        if isinstance(item, str):
            out.append(item)
            continue
        name = getattr(item, "NAME", repr(item))
        source = getattr(item, "__file__", None)
        if (item.__name__ or "").startswith("hyperinflam.criteria."):
            out.append(name)
        elif source and Path(source).is_file():
            out.append([name, hashlib.sha256(Path(source).read_bytes()).hexdigest()])
        else:  # no source to hash: a key of its own each process (never a stale hit)
            out.append([name, f"id:{id(item)}"])
    return out


def _build(mode: str, criteria, columns: Iterable[str] | None, order: bool,
           extend: Callable | None = None):
    def build(backend, tables):
        from hyperinflam.screening.screen import screen

        if mode == "grid":
            expr = screen(backend, step_seconds=tables["screen_step"].step_seconds,
                          criteria=criteria)
        elif mode == "at":
            expr = screen(backend, at=tables["screen_at"].at_time, criteria=criteria)
        else:
            expr = screen(backend, times=tables["screen_times"], criteria=criteria)
        if extend is not None:
            expr = extend(backend, expr, tables)
        if columns is not None:
            expr = expr.select(*[c for c in columns if c in expr.columns])
        if order:
            expr = expr.order_by([c for c in ORDER_BY if c in expr.columns])
        return expr, screen_meta(criteria)
    return build


def screen_meta(criteria) -> dict:
    """What a caller of a cached screen needs besides its rows, so that ``hyperinflam screen``
    prints its summary without importing the criteria: each criterion's RESULT column, label and
    group (:mod:`.meets`), the groups in order with their titles, and the suffix of the
    validated-ages flags."""
    from hyperinflam.criteria import label
    from hyperinflam.screening import meets
    from hyperinflam.screening.screen import OUTSIDE_AGES_SUFFIX, select_criteria

    modules = select_criteria(criteria)
    return {"criteria": [m.NAME for m in modules],
            "results": {m.NAME: m.RESULT for m in modules if getattr(m, "RESULT", None)},
            "labels": {m.NAME: label(m.NAME) for m in modules},
            "groups": {m.NAME: meets.group_of(m) for m in modules},
            "group_titles": dict(meets.GROUP_TITLES), "phenotype": meets.PHENOTYPE,
            "severity": meets.SEVERITY, "outside_ages_suffix": OUTSIDE_AGES_SUFFIX}


def screen_plan(con, mode: str = "grid", *, criteria: Iterable[str | ModuleType] | None = None,
                columns: Iterable[str] | None = None, order: bool = True,
                name: str = "screen", extend: Callable | None = None,
                extend_key: Any = None, building: Callable[[], Any] | None = None) -> plans.Plan:
    """The compiled screen in ``mode`` (see the module docstring), ordered by stay and time.

    ``columns``: keep only these (those present, in this order). ``extend(backend, expr,
    tables)``: a further expression over the screen (e.g. the census), named by ``name`` and
    ``extend_key`` in the key. ``building``: see :func:`.plans.get_plan`.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    criteria = list(criteria) if criteria is not None else None
    parts = {"mode": mode, "criteria": criteria_key(criteria),
             "columns": list(columns) if columns is not None else None, "order": order,
             "extend": extend_key}
    return plans.get_plan(con, name, parts, _build(mode, criteria, columns, order, extend),
                          MODE_INPUTS[mode], building=building)


def screen_inputs(mode: str, *, at: str | dt.datetime | None = None, step_hours: float = 24,
                  times=None) -> dict:
    """The input rows of one run of a screen plan in ``mode``."""
    if mode == "grid":
        from hyperinflam.timemodel import grid_step_seconds

        return {"screen_step": [(grid_step_seconds(step_hours),)]}
    if mode == "at":
        return {"screen_at": [(naive_utc(at),)]}
    return {"screen_times": times}


def naive_utc(at: str | dt.datetime) -> dt.datetime:
    """An evaluation time as naive UTC (an offset is honoured; none = UTC), as
    ``features.grid.to_naive_utc`` reads it, without pandas for a datetime."""
    if isinstance(at, dt.datetime) and type(at) is dt.datetime:
        if at.tzinfo is not None:
            at = at.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return at
    from hyperinflam.features.grid import to_naive_utc

    return to_naive_utc(at)


def batch_rows_setting(batch_rows: int | None = None) -> int:
    import os

    if batch_rows is not None:
        return int(batch_rows)
    text = os.environ.get("HYPERINFLAM_BATCH_ROWS", "").strip().replace("_", "").replace(",", "")
    if not text:
        return DEFAULT_BATCH_ROWS
    if not text.isdigit() or int(text) < 1:
        from hyperinflam.errors import ScreenError

        raise ScreenError(f"HYPERINFLAM_BATCH_ROWS={os.environ['HYPERINFLAM_BATCH_ROWS']!r} is not "
                          f"a number of rows: set it to a whole number >= 1 (default "
                          f"{DEFAULT_BATCH_ROWS:,}), or unset it, or give --batch-rows.")
    return int(text)


def write_screen(con, out: str | Path, kind: str, *, mode: str = "grid",
                 at: str | dt.datetime | None = None, step_hours: float = 24,
                 criteria: Iterable[str | ModuleType] | None = None,
                 batch_rows: int | None = None,
                 progress: Callable[[float, int, str], None] | None = None,
                 plan: plans.Plan | None = None) -> plans.Plan:
    """Screen every stay (``mode`` 'grid' or 'at') into ONE .csv / .parquet file, in batches of
    persons of about ``batch_rows`` measurement rows on DuckDB (:func:`.plans.write_file_in_batches`:
    written as they finish, resumed after a stop). Returns the plan (its columns and meta)."""
    plan = plan or screen_plan(con, mode, criteria=criteria)
    inputs = screen_inputs(mode, at=at, step_hours=step_hours)
    batches = None
    if plans.engine_of(con) == "duckdb":
        batches = plans.person_batches(con, batch_rows_setting(batch_rows))
    plans.write_file_in_batches(con, plan, out, kind, inputs, batches=batches,
                                order_by=ORDER_BY, progress=progress)
    return plan


def screen_pandas(con, mode: str, *, criteria=None, columns: Iterable[str] | None = None,
                  order: bool = True, **inputs):
    """One screen run as a pandas DataFrame (the same dtypes as the expression's
    ``to_pandas()``)."""
    plan = screen_plan(con, mode, criteria=criteria, columns=columns, order=order)
    return plans.run_pandas(con, plan, screen_inputs(mode, **inputs))
