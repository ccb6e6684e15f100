"""What a patient page shows, read from the canonical tables for the stays of a census snapshot
(set-based, by stay) or for one stay: markers, drugs and organ support on the time axis, the
criteria strip, the anakinra daily doses and course, and the founding study's day-0 / day-7 marker
response. The rows are kept split by stay (:class:`ByStay`) for lookups from memory.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

import ibis
import ibis.expr.types as ir
import pandas as pd

from hyperinflam.screening import anakinra
from hyperinflam.screening.census import (PRE_ADMISSION_HOURS, recognition_expr, stays_in_picu,
                                          strip_expr, timestamp_literal, with_person)

#: Markers drawn on the patient time axis (issue 7), in this order (vocabulary/variables.csv).
TIMELINE_VARIABLES = ("ferritin", "crp", "fibrinogen", "platelets", "anc", "alc",
                      "triglycerides", "ast", "temperature")
#: Drug classes drawn as bars besides anakinra (vocabulary/drugs.csv classes).
BAR_DRUG_CLASSES = ("corticosteroid", "ivig")

_EMPTY_RESPONSE_COLUMNS = ["variable", "role", "time", "value", "unit"]


def records(frame: pd.DataFrame) -> list[dict]:
    """The rows of a frame as dicts, converted column by column (``to_dict("records")`` and
    ``itertuples`` index row by row on pandas 3's Arrow-backed columns: ~100 times slower)."""
    columns = [str(c) for c in frame.columns]
    values = [frame[c].tolist() for c in frame.columns]
    return [dict(zip(columns, row)) for row in zip(*values)]


@dataclass(frozen=True)
class Rows:
    """Rows of one table for one stay (dicts of Python values) and the table's columns."""

    columns: tuple[str, ...]
    rows: list[dict]

    @classmethod
    def of(cls, frame: pd.DataFrame) -> "Rows":
        return cls(tuple(str(c) for c in frame.columns), records(frame))

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def empty(self) -> bool:
        return not self.rows


@dataclass(frozen=True)
class ByStay:
    """A result table split by stay once (when a snapshot is made): stay_id -> Rows."""

    columns: tuple[str, ...]
    groups: dict[str, list[dict]]
    n_rows: int

    @classmethod
    def of(cls, frame: pd.DataFrame) -> "ByStay":
        groups: dict[str, list[dict]] = {}
        rows = records(frame)
        for row in rows:
            groups.setdefault(row["stay_id"], []).append(row)
        return cls(tuple(str(c) for c in frame.columns), groups, len(rows))

    def get(self, stay_id: str) -> Rows:
        return Rows(self.columns, self.groups.get(stay_id, []))

    def __len__(self) -> int:
        return self.n_rows


def patient_window(stay_row: dict, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Time span of the patient page: PRE_ADMISSION_HOURS before admission to discharge or
    ``at``, whichever comes first."""
    admit = pd.Timestamp(stay_row["admit_time"]).to_pydatetime()
    end = stay_row.get("discharge_time")
    end = at if end is None or pd.isna(end) else min(pd.Timestamp(end).to_pydatetime(), at)
    return admit - dt.timedelta(hours=PRE_ADMISSION_HOURS), end


def timeline_exprs(con, stays: ir.Table, at: dt.datetime) -> dict[str, ir.Table]:
    """Markers, drugs and organ support of ``stays`` (stay_id, person_id, admit_time,
    discharge_time) from PRE_ADMISSION_HOURS before admission to discharge or ``at``. The stays
    are reduced to (stay, person, window) first, then joined to each source by person and time."""
    at_v = timestamp_literal(at)
    end = ibis.coalesce(ibis.least(stays.discharge_time, at_v), at_v)
    w = stays.select(w_stay="stay_id", w_person="person_id",
                     w_lo=stays.admit_time - ibis.interval(hours=PRE_ADMISSION_HOURS), w_hi=end)
    m = con.table("measurement")
    m = m.filter(m.variable.isin(list(TIMELINE_VARIABLES)), m.time <= at_v)
    mj = w.join(m, [w.w_person == m.person_id, m.time >= w.w_lo, m.time <= w.w_hi])
    meas = mj.select(stay_id=mj.w_stay, variable=mj.variable, time=mj.time, value=mj.value,
                     unit=mj.unit).order_by(["stay_id", "variable", "time"])
    d = con.table("drug_administration")
    d = d.filter((d.drug == anakinra.ANAKINRA) | d.drug_class.isin(list(BAR_DRUG_CLASSES)),
                 d.start_time <= at_v)
    dj = w.join(d, [w.w_person == d.person_id, d.start_time >= w.w_lo, d.start_time <= w.w_hi])
    drugs = dj.select(stay_id=dj.w_stay, drug=dj.drug, drug_class=dj.drug_class, dose=dj.dose,
                      dose_unit=dj.dose_unit, route=dj.route, start_time=dj.start_time,
                      end_time=dj.end_time).order_by(["stay_id", "start_time"])
    o = con.table("organ_support")
    o = o.filter(o.start_time <= at_v)
    oj = w.join(o, [w.w_person == o.person_id, o.start_time <= w.w_hi,
                    o.end_time.isnull() | (o.end_time >= w.w_lo)])
    support = oj.select(stay_id=oj.w_stay, support=oj.support, start_time=oj.start_time,
                        end_time=oj.end_time, dose=oj.dose, dose_unit=oj.dose_unit).order_by(
        ["stay_id", "support", "start_time"])
    return {"measurements": meas, "drugs": drugs, "support": support}


def marker_response_expr(con, course: ir.Table, at: dt.datetime) -> ir.Table:
    """Day-0 and day-7 marker values by the founding study's rules (clinical reference §12.1-§12.2,
    study/cohort.chosen_values with the shipped 'rajasekaran2014' windows) for every stay of
    ``course`` (stay_id, person_id, index_time); values after ``at`` are not shown ("so far")."""
    from hyperinflam.study.cohort import chosen_values
    from hyperinflam.study.definition import load_study

    study = load_study("rajasekaran2014")
    values = chosen_values(con, course.select("stay_id", "person_id", "index_time"),
                           list(study.markers.variables), study, include_trajectory=False)
    values = values.filter(values.time <= timestamp_literal(at))
    return values.select("stay_id", "variable", "role", "time", "value", "unit").order_by(
        ["stay_id", "variable", "role", "time"])


#: Columns of the stay row of a patient page.
STAY_COLUMNS = ("stay_id", "person_id", "admit_time", "discharge_time", "admission_reason",
                "weight_kg", "birth_date", "sex")


def snapshot_exprs(con, at: dt.datetime, criteria: list[str]
                   ) -> dict[str, Callable[[], ir.Table]]:
    """The patient-page tables of every stay in the PICU at ``at``: name -> a function building
    its expression (each built only when asked for)."""
    stays = stays_in_picu(con, at)
    # Anakinra rows of the stays in the PICU only, filtered on the engine before the marker
    # response is looked up: a site's whole history of treated stays is not recomputed per
    # snapshot.
    in_picu = stays.select(i_stay="stay_id")

    def current(expr: ir.Table) -> ir.Table:
        return expr.semi_join(in_picu, expr.stay_id == in_picu.i_stay)

    def course():
        return current(anakinra.course_summary(con, as_of=at))

    def timeline(name):
        return lambda: timeline_exprs(con, stays, at)[name]

    return {"stays": lambda: stays.select(*STAY_COLUMNS),
            **{name: timeline(name) for name in ("measurements", "drugs", "support")},
            "strip": lambda: strip_expr(con, criteria, stays, at),
            "anakinra_days": lambda: current(anakinra.daily_doses(con, as_of=at)),
            "anakinra_course": course,
            "marker_response": lambda: marker_response_expr(con, course(), at)}


def stay_exprs(con, stay_id: str, end: dt.datetime, criteria: list[str] | None
               ) -> dict[str, Callable[[], ir.Table]]:
    """The patient-page tables of one stay up to ``end`` (the stay filter applied first): name ->
    a function building its expression."""
    stay = con.table("stay")
    one = with_person(con, stay.filter(stay.stay_id == stay_id))

    def course():
        return anakinra.course_summary(con, as_of=end, stay_id=stay_id)

    def timeline(name):
        return lambda: timeline_exprs(con, one, end)[name]

    out = {**{name: timeline(name) for name in ("measurements", "drugs", "support")},
           "anakinra_days": lambda: anakinra.daily_doses(con, as_of=end, stay_id=stay_id),
           "anakinra_course": course,
           "marker_response": lambda: marker_response_expr(con, course(), end),
           "recognition": lambda: recognition_expr(con, end, criteria or [], one)}
    if criteria is not None:
        out["strip"] = lambda: strip_expr(con, criteria, one, end)
    return out


def _one_stay_expr(con, stay_id: str) -> ir.Table:
    stay = con.table("stay")
    return with_person(con, stay.filter(stay.stay_id == stay_id))


def _run(con, kind: str, name: str, criteria, exprs, parameters: dict[str, str],
         params: dict) -> pd.DataFrame:
    """Table ``name`` of ``exprs(backend, **params)`` run as a compiled plan (engine.plans)
    ``<kind>_<name>``: built and compiled once per criteria set, its time (and stay) parameters
    bound at each run."""
    from hyperinflam.engine import plans

    plan = plans.get_plan(
        con, f"{kind}_{name}", {"criteria": None if criteria is None else list(criteria)},
        lambda backend, tables, sentinels: exprs(backend, **sentinels)[name](),
        parameters=parameters)
    return plans.run_pandas(con, plan, params=params)


#: The tables of a snapshot's patient pages (:func:`snapshot_exprs`).
SNAPSHOT_TABLES = ("stays", "measurements", "drugs", "support", "strip", "anakinra_days",
                   "anakinra_course", "marker_response")


def patient_tables(con, at: dt.datetime, criteria: list[str]) -> dict[str, ByStay]:
    """Patient-page rows of every stay in the PICU at ``at`` (set-based queries, each a compiled
    plan whose time is a parameter), by stay."""
    from hyperinflam.screening.census import plan_time

    def exprs(backend, at):
        return snapshot_exprs(backend, at, criteria)

    params = {"at": plan_time(at)}
    return {name: ByStay.of(_run(con, "snapshot", name, criteria, exprs, {"at": "timestamp"},
                                 params)) for name in SNAPSHOT_TABLES}


def patient_data(con, stay_id: str, at: dt.datetime, criteria: list[str] | None = None) -> dict:
    """Everything the patient page needs for one stay, up to ``at``: the same expressions as a
    snapshot, with the stay filter applied first (small queries, each a compiled plan whose stay
    and time are parameters)."""
    from hyperinflam.engine import plans
    from hyperinflam.screening.census import plan_time

    stay_plan = plans.get_plan(con, "patient_stay", {},
                               lambda backend, tables, params: _one_stay_expr(
                                   backend, params["stay_id"]),
                               parameters={"stay_id": "string"})
    s = plans.run_pandas(con, stay_plan, params={"stay_id": str(stay_id)})
    if s.empty:
        return {}
    row = records(s)[0]
    lo, end = patient_window(row, at)

    def exprs(backend, stay_id, end):
        return stay_exprs(backend, stay_id, end, criteria)

    names = ["measurements", "drugs", "support", "anakinra_days", "anakinra_course",
             "marker_response", "recognition"] + (["strip"] if criteria is not None else [])
    params = {"stay_id": str(stay_id), "end": plan_time(end)}
    frames = {name: _run(con, "stay", name, criteria, exprs,
                         {"stay_id": "string", "end": "timestamp"}, params) for name in names}
    strip = frames.get("strip", pd.DataFrame(columns=["stay_id", "eval_time"]))
    rt, course = frames["recognition"], frames["anakinra_course"]
    return {"stay": row, "window": (lo, end),
            **{n: Rows.of(frames[n]) for n in ("measurements", "drugs", "support")},
            "anakinra_days": Rows.of(frames["anakinra_days"]),
            "recognition": records(rt)[0] if not rt.empty else {},
            "anakinra_course": records(course)[0] if not course.empty else None,
            "marker_response": Rows.of(frames["marker_response"]), "strip": Rows.of(strip)}

