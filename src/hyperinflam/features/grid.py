"""The time model: the evaluation grid (one row per stay x evaluation time, with the stay's base
columns: age, weight, hours since admission) and evaluation times as naive UTC.

Clinical reference §12.14 and §11.1 (age in months = days / 30.4375 at the evaluation time).
``docs/time-model.md`` explains the grid for people.
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir
import pandas as pd

from hyperinflam.errors import FeatureError
from hyperinflam.timemodel import DAYS_PER_MONTH, MIN_STEP_HOURS, grid_step_seconds

__all__ = ["DAYS_PER_MONTH", "MIN_STEP_HOURS", "evaluation_grid", "grid_at", "grid_step_seconds",
           "hours_interval", "to_naive_utc"]


def _seconds(expr: ir.Value) -> ir.IntegerValue:
    """Seconds since the epoch of a timestamp or date, as a 64-bit integer."""
    return expr.cast("timestamp").epoch_seconds().cast("int64")


def hours_interval(hours: float):
    return ibis.interval(seconds=int(round(hours * 3600)))


def to_naive_utc(at: str | dt.datetime | pd.Timestamp) -> dt.datetime:
    """An evaluation time as a naive UTC datetime (an offset, if given, is honoured).

    A time without an offset is taken as UTC (the engine's convention, ``hyperinflam.schema``).
    """
    try:
        stamp = pd.Timestamp(at)
    except (ValueError, TypeError) as exc:
        raise FeatureError(
            f"Cannot read the time '{at}': give an ISO 8601 time such as '2024-03-01 14:30' or "
            f"'2024-03-01T14:30:00+01:00' ({exc})."
        ) from None
    if stamp is pd.NaT:
        raise FeatureError(f"The time '{at}' is empty; give an ISO 8601 time.")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.to_pydatetime()


def _last_data_time(con) -> ir.Table:
    """Per person, every data time (measurements, drug starts, organ-support starts/ends)."""
    meas = con.table("measurement").select(d_person="person_id", d_time="time")
    drug = con.table("drug_administration").select(d_person="person_id", d_time="start_time")
    org = con.table("organ_support")
    org_start = org.select(d_person="person_id", d_time="start_time")
    org_end = org.filter(org.end_time.notnull()).select(d_person="person_id", d_time="end_time")
    return ibis.union(meas, drug, org_start, org_end, distinct=False)


def _stays(con) -> ir.Table:
    stay = con.table("stay")
    person = con.table("person").select(p_person="person_id", birth_date="birth_date", sex="sex")
    joined = stay.join(person, stay.person_id == person.p_person, how="left")
    return joined.select(
        "person_id", "stay_id", "admit_time", "discharge_time", "birth_date", "sex",
        weight_kg=joined.weight_kg.cast("float64"),
    )


def _with_base_columns(grid: ir.Table) -> ir.Table:
    """Add the age and time-since-admission base columns (clinical reference §11.1, §12.14)."""
    birth_s = _seconds(grid.birth_date)
    eval_s = _seconds(grid.eval_time)
    admit_s = _seconds(grid.admit_time)
    age_days = (eval_s - birth_s).cast("float64") / 86400.0
    return grid.select(
        "person_id", "stay_id", "eval_time", "admit_time", "discharge_time", "birth_date",
        "sex", "weight_kg",
        age_days=age_days,
        age_months=age_days / DAYS_PER_MONTH,
        age_months_at_admit=(admit_s - birth_s).cast("float64") / 86400.0 / DAYS_PER_MONTH,
        hours_since_admit=(eval_s - admit_s).cast("float64") / 3600.0,
    )


def evaluation_grid(con, *, step_hours: float = 24,
                    at: str | dt.datetime | pd.Timestamp | ir.TimestampValue | None = None,
                    step_seconds: ir.IntegerValue | None = None) -> ir.Table:
    """One row per stay x evaluation time, with the base columns of the screening contract.

    Grid (``at`` is None): evaluation times ``t_k = admit_time + k * step_hours`` for k >= 1 while
    ``t_k`` is before the end of the stay, plus the end of the stay itself. The end is
    ``discharge_time``; for a stay still open (no discharge) it is the last data time of the
    person at or after admission (measurements, drug starts, organ-support starts and ends), or
    the admission itself when there is none. A 50-h stay with a 24-h step is evaluated at
    +24 h, +48 h and +50 h; a 48-h stay at +24 h and +48 h; a 10-h stay at +10 h.

    ``at``: a single time (ISO text or datetime; an offset is converted to UTC, none = UTC): the
    stays in the PICU at that time (``admit_time <= at`` and discharge empty or ``> at``),
    evaluated at ``at``.

    Base columns: person_id, stay_id, eval_time, admit_time, discharge_time, birth_date, sex,
    weight_kg, age_days (from birth_date to eval_time), age_months (= age_days / 30.4375, clinical
    reference §11.1 and §12.14), age_months_at_admit, hours_since_admit.

    ``at`` and ``step_seconds`` (which replaces ``step_hours``) may be columns of one-row
    tables (the input tables of a compiled plan, :mod:`hyperinflam.screening.plans`), so that one
    compiled query serves every time and step; see :func:`attach`.
    """
    stays = _stays(con)
    if at is not None:
        at_value = at if isinstance(at, ir.Value) else ibis.literal(to_naive_utc(at),
                                                                    type="timestamp")
        stays, at_value = attach(stays, at_value, "g_at")
        grid = stays.filter(
            stays.admit_time <= at_value,
            stays.discharge_time.isnull() | (stays.discharge_time > at_value),
        ).mutate(eval_time=at_value)
        return _with_base_columns(grid)

    step = step_seconds if step_seconds is not None else grid_step_seconds(step_hours)

    data = _last_data_time(con)
    open_stays = stays.filter(stays.discharge_time.isnull()).select(
        o_stay="stay_id", o_person="person_id", o_admit="admit_time")
    last = (
        open_stays.join(data, [open_stays.o_person == data.d_person,
                               data.d_time >= open_stays.o_admit])
        .group_by("o_stay")
        .aggregate(last_time=lambda t: t.d_time.max())
    )
    stays = stays.left_join(last, stays.stay_id == last.o_stay)
    stays = stays.mutate(
        end_time=ibis.coalesce(stays.discharge_time, stays.last_time, stays.admit_time)
    ).drop("o_stay", "last_time")
    stays, step = attach(stays, step, "g_step")
    stays = stays.mutate(g_step=step)
    stays = stays.mutate(n_steps=((_seconds(stays.end_time) - _seconds(stays.admit_time))
                                  // stays.g_step).cast("int64"))

    steps = stays.mutate(k=ibis.range(1, stays.n_steps + 1).unnest())
    steps = steps.mutate(
        eval_time=steps.admit_time + (steps.k * steps.g_step).as_interval("s"))
    steps = steps.filter(steps.eval_time < steps.end_time).drop("k")
    ends = stays.mutate(eval_time=stays.end_time)
    grid = ibis.union(steps, ends, distinct=False).drop("end_time", "n_steps", "g_step")
    return _with_base_columns(grid)


def attach(table: ir.Table, value, name: str) -> tuple[ir.Table, ir.Value]:
    """``value`` in a form expressions over ``table`` can use: a literal (or any expression of
    ``table``) as it is; a column of a one-row table (an input table of a compiled plan) by a
    cross join of that table onto ``table`` as column ``name`` (the returned table has it; drop
    it when done). A cross join rather than a scalar subquery: ibis inlines a scalar subquery
    used in a projection into later predicates with its alias, which is not valid SQL."""
    if isinstance(value, ir.Column) and not _belongs_to(value, table):
        one = value.op().rel.to_expr()
        joined = table.cross_join(one.select(**{name: value}))
        return joined, joined[name]
    return table, value


def _belongs_to(value: ir.Column, table: ir.Table) -> bool:
    return value.op().rel == table.op()


def grid_at(con, times: ir.Table) -> ir.Table:
    """Evaluation rows at given times per stay: ``times`` has ``stay_id`` and ``eval_time``
    (e.g. each cohort member's first anakinra dose). Same base columns as
    :func:`evaluation_grid`; stays not in the stay table are dropped."""
    stays = _stays(con)
    t = times.select(t_stay="stay_id", t_time=times.eval_time.cast("timestamp"))
    joined = stays.join(t, stays.stay_id == t.t_stay)
    return _with_base_columns(joined.mutate(eval_time=joined.t_time))
