"""The bedside census as screening queries: every stay in the PICU at a time, its screen
evaluated then with the census status (:mod:`.approaching`), the last two ferritin values and the
anakinra course; and the criteria over time of chosen stays (the strip). Each is one set-based
ibis expression with the stay filter applied before the joins; the web application
(:mod:`hyperinflam.web`) runs them once per data version and serves their rows from memory.
"""

from __future__ import annotations

import datetime as dt
import functools

import ibis
import ibis.expr.types as ir
import pandas as pd

from hyperinflam.screening import anakinra, approaching

#: Data shown from this many hours before PICU admission (labs drawn in the ED or ward).
PRE_ADMISSION_HOURS = 24
#: The census status columns (screening.meets, screening.approaching).
STATUS_COLUMNS = ("meets_phenotype", "phenotype_met", "meets_severity", "severity_met",
                  "approaching_any", "approaching")
#: Criteria over time on the patient page (the strip) and its grid step (hours).
STRIP_COLUMNS = ("hscore_points", "hscore_max_possible", "hlh2004_met_count",
                 "hlh2004_unknown_count", "hlh2004_result", "phoenix_score", "psofa_score")
STRIP_STEP_HOURS = 24
#: Census columns taken from the screen when the criterion is installed.
CENSUS_SCREEN_COLUMNS = (
    "stay_id", "person_id", "eval_time", "admit_time", "sex", "age_months", "weight_kg",
    "hours_since_admit", "hscore_points", "hscore_max_possible", "hscore_n_missing",
    approaching.HSCORE_MET_COLUMN, "hlh2004_met_count", "hlh2004_unknown_count", "hlh2004_result",
    "phoenix_score", "phoenix_sepsis", "phoenix_septic_shock", "psofa_score",
)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


@functools.lru_cache(maxsize=8)
def _usable_criteria(names: tuple[str, ...] | None) -> tuple[tuple[str, ...], tuple]:
    from hyperinflam.criteria import discover
    from hyperinflam.engine import connect_memory
    from hyperinflam.screening.screen import screen

    available = discover()
    wanted = list(names) if names else list(available)
    ok, skipped = [], {}
    con = connect_memory()
    try:
        for name in wanted:
            if name not in available:
                skipped[name] = "not installed"
                continue
            try:
                screen(con, at=utc_now(), criteria=[name]).schema()
                ok.append(name)
            except Exception as exc:  # noqa: BLE001 - reported on the page
                skipped[name] = str(exc)
    finally:
        con.disconnect()
    return tuple(ok), tuple(skipped.items())


def usable_criteria(names: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """Criteria whose expressions build (checked once per process on an empty in-memory
    database), and the reason for each one left out (shown on the census page, never silently
    dropped)."""
    ok, skipped = _usable_criteria(tuple(names) if names else None)
    return list(ok), dict(skipped)


def plan_time(at) -> dt.datetime:
    """A time given to a compiled plan: naive UTC (an offset is honoured; none = UTC)."""
    from hyperinflam.features.grid import to_naive_utc

    if isinstance(at, dt.datetime) and not hasattr(at, "to_pydatetime"):
        return at if at.tzinfo is None else at.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return pd.Timestamp(to_naive_utc(at)).to_pydatetime()


def timestamp_literal(value: dt.datetime | ir.TimestampValue) -> ir.TimestampValue:
    """A time as an ibis timestamp (an ibis value, e.g. a compiled plan's input, as is)."""
    if isinstance(value, ir.Value):
        return value
    return ibis.literal(value, type="timestamp")


def stays_in_picu(con, at: dt.datetime) -> ir.Table:
    """Stays in the PICU at ``at`` (admitted at or before, not discharged by then), with the
    person's birth date and sex."""
    at_v = timestamp_literal(at)
    stay = con.table("stay")
    stay = stay.filter(stay.admit_time <= at_v,
                       stay.discharge_time.isnull() | (stay.discharge_time > at_v))
    return with_person(con, stay)


def with_person(con, stay: ir.Table) -> ir.Table:
    person = con.table("person")
    p = person.select(p_person="person_id", birth_date="birth_date", sex="sex")
    return stay.join(p, stay.person_id == p.p_person).drop("p_person")


def ferritin_latest(con, at: dt.datetime, stays: ir.Table | None = None) -> ir.Table:
    """Per stay in the PICU at ``at`` (or of ``stays``): the last two ferritin values at or
    before ``at`` since PRE_ADMISSION_HOURS before admission (row_number over the person's
    values; no asof_join)."""
    at_v = timestamp_literal(at)
    stays = stays if stays is not None else stays_in_picu(con, at)
    m = con.table("measurement")
    m = m.filter(m.variable == "ferritin", m.time <= at_v).select(
        f_person="person_id", f_time="time", f_value="value", f_unit="unit")
    st = stays.select(f_stay="stay_id", s_person="person_id", admit_time="admit_time")
    j = st.join(m, st.s_person == m.f_person)
    j = j.filter(j.f_time >= j.admit_time - ibis.interval(hours=PRE_ADMISSION_HOURS))
    j = j.mutate(rk=ibis.row_number().over(group_by=j.f_stay, order_by=j.f_time.desc()))
    last = j.filter(j.rk == 0).select("f_stay", ferritin_last=j.f_value,
                                      ferritin_last_time=j.f_time, ferritin_unit=j.f_unit)
    prev = j.filter(j.rk == 1).select(p_stay=j.f_stay, ferritin_previous=j.f_value,
                                      ferritin_previous_time=j.f_time)
    return last.left_join(prev, last.f_stay == prev.p_stay).drop("p_stay")


def census_expr(con, at: dt.datetime, criteria: list[str]) -> ir.Table:
    """The census at ``at`` as one ibis expression: every stay in the PICU, one row."""
    from hyperinflam.screening.screen import screen

    return census_tail(con, screen(con, at=at, criteria=criteria), at, criteria)


def census_tail(con, t: ir.Table, at: dt.datetime | ir.TimestampValue,
                criteria: list[str]) -> ir.Table:
    """The census from the screen ``t`` at ``at``: census status, the census columns, the last
    two ferritin values and the anakinra course, by stay."""
    t = t.mutate(**approaching.status_columns(t))
    keep = [c for c in CENSUS_SCREEN_COLUMNS if c in t.columns]
    keep += [c for c in criterion_columns(t.columns, criteria) if c not in keep]
    keep += [*STATUS_COLUMNS]
    t = t.select(*keep)
    fer = ferritin_latest(con, at)
    course = anakinra.course_summary(con, as_of=at).select(
        c_stay="stay_id", anakinra_running="running",
        anakinra_days_since_first_dose="days_since_first_dose",
        anakinra_max_mg_per_kg_day="max_mg_per_kg_day",
        anakinra_any_above_label="any_above_label")
    t = t.left_join(fer, t.stay_id == fer.f_stay).drop("f_stay")
    t = t.left_join(course, t.stay_id == course.c_stay).drop("c_stay")
    rt = recognition_expr(con, at, criteria)
    t = t.left_join(rt, t.stay_id == rt.rt_stay).drop("rt_stay")
    return t.order_by("stay_id")


def recognition_expr(con, at: dt.datetime, criteria: list[str], stays: ir.Table | None = None
                     ) -> ir.Table:
    """Per stay in the PICU at ``at`` (or of ``stays``): recognition to treatment up to ``at``
    (:mod:`.recognition`, exact first-met times): ``<name>_first_met``, ``phenotype_first_met``,
    ``first_dose_time``, ``recognition_to_treatment_hours``; key ``rt_stay``."""
    from hyperinflam.screening.recognition import recognition_to_treatment

    stays = stays if stays is not None else stays_in_picu(con, at)
    rt = recognition_to_treatment(con, stays, until=at, criteria=criteria)
    return rt.rename(rt_stay="stay_id")


def census_plan(con, criteria: list[str]):
    """:func:`census_expr` as a compiled plan (:mod:`hyperinflam.engine.plans`), its time a
    parameter ``at``: built and compiled once per criteria set, then every census time (the live
    census, each ``?at=``) runs the cached SQL."""
    from hyperinflam.engine import plans

    criteria = list(criteria)
    return plans.get_plan(con, "census", {"criteria": criteria},
                          lambda backend, tables, params: census_expr(backend, params["at"],
                                                                      criteria),
                          parameters={"at": "timestamp"})


def census_frame(con, at: dt.datetime, criteria: list[str]) -> pd.DataFrame:
    """The census at ``at``: every stay in the PICU, one row, executed as one query (the
    compiled :func:`census_plan`)."""
    from hyperinflam.engine import plans

    frame = plans.run_pandas(con, census_plan(con, criteria), params={"at": plan_time(at)})
    frame["anakinra_running"] = frame["anakinra_running"].fillna(False).astype(bool)
    return frame


def criterion_columns(columns, criteria: list[str]) -> list[str]:
    """The screen's criterion output columns (prefixed by an installed criterion's NAME)."""
    prefixes = tuple(f"{name}_" for name in criteria)
    return [c for c in columns if c.startswith(prefixes)]


def strip_expr(con, criteria: list[str], stays: ir.Table, until: dt.datetime) -> ir.Table:
    """Criteria over time of ``stays`` (a table with stay_id) on the STRIP_STEP_HOURS evaluation
    grid of ``features.evaluation_grid``, evaluations at or before ``until`` only. The grid is
    restricted to those stays before the features are built (``screen(times=...)``)."""
    from hyperinflam.features import evaluation_grid
    from hyperinflam.screening.screen import screen

    grid = evaluation_grid(con, step_hours=STRIP_STEP_HOURS)
    wanted = stays.select(w_stay="stay_id")
    times = grid.join(wanted, grid.stay_id == wanted.w_stay).select("stay_id", "eval_time")
    times = times.filter(times.eval_time <= timestamp_literal(until))
    t = screen(con, criteria=criteria, times=times)
    t = t.mutate(**approaching.status_columns(t))
    keep = ["stay_id", "eval_time", "hours_since_admit", *STATUS_COLUMNS,
            *criterion_columns(t.columns, criteria)]
    return t.select(*keep).order_by(["stay_id", "eval_time"])


def strip_frame(con, criteria: list[str], stays: ir.Table | None = None,
                until: dt.datetime | None = None) -> pd.DataFrame:
    """Criteria over time (see :func:`strip_expr`); default: every stay, every evaluation."""
    if stays is None:
        stays = con.table("stay")
    if until is None:
        until = dt.datetime(9999, 12, 31)
    return strip_expr(con, criteria, stays, until).to_pandas()
