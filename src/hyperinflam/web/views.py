"""What the web pages and the JSON API show per role: the JSON models (OpenAPI), the census rows,
the patient views (timeline, criteria, anakinra course, the SVG time axis), identifiers and times
shown to a clinician as they are and to a researcher as pseudonyms and shifted dates, and the cache
of these views per snapshot. Every function takes the application's :class:`WebContext`.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Optional

import pandas as pd
from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import Template
from pydantic import BaseModel

from hyperinflam.criteria import label as criterion_label
from hyperinflam.screening import anakinra, meets
from hyperinflam.screening.approaching import missing_input_notes
from hyperinflam.web import charts
from hyperinflam.web.data import Database
from hyperinflam.web.patient import BAR_DRUG_CLASSES, TIMELINE_VARIABLES, records
from hyperinflam.web.privacy import Pseudonymizer, from_frame, to_frame
from hyperinflam.web.state import StateStore, User

FILTERS = ("all", "meets", "approaching")
#: Derived views kept in memory (census rows / HTML / JSON per role and filter, patient views).
VIEW_CACHE_ENTRIES = 512


class _LRU:
    """A small thread-safe LRU cache of derived views. One build per key: concurrent first
    requests for the same key wait for it (20 users opening the census at once render it once)."""

    def __init__(self, size: int):
        self.size, self._data, self._lock = size, OrderedDict(), threading.Lock()
        self._building: dict = {}

    def get_or_build(self, key, build):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
            key_lock = self._building.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._data:
                    return self._data[key]
            try:
                value = build()
                with self._lock:
                    self._data[key] = value
                    while len(self._data) > self.size:
                        self._data.popitem(last=False)
            finally:
                with self._lock:
                    self._building.pop(key, None)
        return value


@dataclass
class WebContext:
    """What every route of one application reads (``app.state.web``): the state store, the
    canonical database, the pseudonymizer, the templates, the vocabulary labels, and the caches
    of derived views and of the stay index."""

    store: StateStore
    database: Database
    pseudo: Pseudonymizer
    templates: Jinja2Templates
    rows_template: Template
    labels: dict[str, str]
    short_labels: dict[str, str]
    units: dict[str, str]
    # Views derived from a snapshot, cached per (snapshot, role, filter / stay): the census
    # rows, their rendered HTML and JSON, the patient views. A new snapshot (new data version or
    # refresh) has a new key; old entries fall out of the bounded caches.
    views: _LRU = field(default_factory=lambda: _LRU(VIEW_CACHE_ENTRIES))
    stay_index: dict[str, Any] = field(default_factory=dict)


def context(request: Request) -> WebContext:
    """The :class:`WebContext` of the application serving ``request``."""
    return request.app.state.web


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


# -- JSON models (OpenAPI) ----------------------------------------------------------------------


class CensusRow(BaseModel):
    key: str
    patient: str
    stay: str
    admit_time: Optional[str] = None
    hours_since_admit: Optional[float] = None
    age_years: Optional[float] = None
    sex: Optional[str] = None
    hscore_points: Optional[int] = None
    hscore_max_possible: Optional[int] = None
    hscore_ge_169: Optional[str] = None
    hlh2004_met_count: Optional[int] = None
    hlh2004_unknown_count: Optional[int] = None
    hlh2004_result: Optional[str] = None
    phoenix_score: Optional[int] = None
    phoenix_septic_shock: Optional[str] = None
    psofa_score: Optional[int] = None
    other_results: dict[str, str] = {}
    ferritin_last: Optional[float] = None
    ferritin_previous: Optional[float] = None
    ferritin_unit: Optional[str] = None
    ferritin_trend: Optional[str] = None
    anakinra_running: bool = False
    # the one "meets" rule (screening.meets): phenotype is the headline, severity beside it
    meets_phenotype: bool = False
    phenotype_met: str = ""
    meets_severity: bool = False
    severity_met: str = ""
    approaching_any: bool = False
    approaching: str = ""
    outside_validated_ages: str = ""
    # recognition to treatment (screening.recognition): e.g. "HScore >= 169 for 38 h, no anakinra"
    recognition: str = ""
    recognition_to_treatment_hours: Optional[float] = None


class Census(BaseModel):
    evaluated_at: Optional[str]
    filter: str
    n_stays: int
    rows: list[CensusRow]
    criteria_unavailable: dict[str, str] = {}
    #: Domains the source does not record (features/recorded.py): unknown, never "no".
    not_recorded: list[str] = []


class Timeline(BaseModel):
    key: str
    patient: str
    stay: str
    measurements: list[dict[str, Any]]
    drugs: list[dict[str, Any]]
    organ_support: list[dict[str, Any]]


class Criteria(BaseModel):
    key: str
    evaluated_at: Optional[str]
    current: dict[str, Any]
    over_time: list[dict[str, Any]]
    missing_inputs: list[dict[str, str]]


class AnakinraCourse(BaseModel):
    key: str
    summary: Optional[dict[str, Any]]
    daily: list[dict[str, Any]]
    marker_response: list[dict[str, Any]]
    flags: dict[str, float]


class Me(BaseModel):
    user: str
    role: str


# -- helpers --------------------------------------------------------------------------------


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _jsonable(value):
    if value is None:
        return None
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return None if pd.isna(value) else pd.Timestamp(value).isoformat()
    if isinstance(value, float) and value != value:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item"):
        return value.item()
    return value


def _ns(row: dict) -> SimpleNamespace:
    return SimpleNamespace(**row)


def _text(value) -> str:
    """A value for a tooltip: '' when missing."""
    value = _jsonable(value)
    return "" if value is None else str(value)


#: The times ``?at=`` accepts (documented in docs/web.md): pandas' nanosecond calendar, which
#: every frame of the census passes through (1677-09-21 to 2262-04-11), in whole years; wide
#: enough for de-identified sources shifted by centuries (the MIMIC-IV demo loads in the 1700s).
AT_EARLIEST = dt.datetime(1678, 1, 1)
AT_LATEST = dt.datetime(2261, 12, 31, 23, 59)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
#: The form of ``at`` in the OpenAPI document (checked by the route, with a message, not by the
#: schema validator): 'now' or an ISO 8601 date, optionally with a time and an offset.
AT_SCHEMA = {"pattern": r"^(now|\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:\d{2})?)?)$",
             "examples": ["2024-03-01T14:30:00Z", "now"]}
AT_HELP = ("ISO 8601 time, e.g. '2024-03-01 14:30' or '2024-03-01T14:30:00+01:00' (no offset: "
           "UTC); 'now' or nothing for now. Researchers: in the stay's own frame (docs/web.md).")


def _parse_at(text: str | dt.datetime | None) -> dt.datetime | None:
    """A ``?at=`` value as a naive UTC datetime; None (or 'now') is now. Anything else than an
    ISO 8601 time between :data:`AT_EARLIEST` and :data:`AT_LATEST` is a 422 with a message."""
    if text is None or (isinstance(text, str) and text.strip().lower() in ("", "now")):
        return None
    if isinstance(text, dt.datetime):
        stamp = text
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone(dt.timezone.utc).replace(tzinfo=None)
    else:
        from hyperinflam.errors import FeatureError
        from hyperinflam.features import to_naive_utc

        shown = text.strip()[:40]
        if not _ISO_DATE.match(text.strip()):
            raise ApiError(422, f"at: '{shown}' is not a time: give an ISO 8601 time such as "
                                f"'2024-03-01 14:30' (UTC) or '2024-03-01T14:30:00+01:00', or "
                                f"'now'.")
        try:
            stamp = to_naive_utc(text.strip())
        except (FeatureError, ValueError, OverflowError) as exc:
            raise ApiError(422, f"at: '{shown}' is not a time: give an ISO 8601 time such as "
                                f"'2024-03-01 14:30' ({exc})") from None
    if not AT_EARLIEST <= stamp <= AT_LATEST:
        raise ApiError(422, f"at: the time must be between {AT_EARLIEST:%Y-%m-%d} and "
                            f"{AT_LATEST:%Y-%m-%d} (ISO 8601).")
    return stamp.replace(microsecond=0)


def _not_after_now(ctx: WebContext, at: dt.datetime | None, shown=None) -> None:
    """A chosen time after now (the pinned now under --as-of) is refused: nothing after now is
    shown. ``shown`` formats now for the message (a researcher sees it in the stay frame)."""
    now = ctx.database.now()
    if at is not None and at > now:
        text = shown(now) if shown else now.isoformat(sep=" ", timespec="minutes")
        raise ApiError(422, f"at: the time is after now ({text} UTC); choose an earlier time.")


# -- presentation per role ----------------------------------------------------------------


def ident(ctx: WebContext, user: User, person_id: str, stay_id: str) -> tuple[str, str]:
    if user.role == "clinician":
        return str(person_id), str(stay_id)
    return ctx.pseudo.person_pseudonym(person_id), ctx.pseudo.stay_pseudonym(stay_id)


def when(ctx: WebContext, user: User, value, admit_time, until=None):
    """A time as shown to ``user``: as it is for a clinician, in the stay frame of
    ``admit_time`` for a researcher (:mod:`hyperinflam.web.privacy`); a time after ``until``
    (the evaluation time: a discharge or an end still to come) is not shown."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    value = pd.Timestamp(value)
    if until is not None and value > pd.Timestamp(until):
        return None
    if user.role != "clinician":
        value = to_frame(value, admit_time)
        if value is None:
            return None
    return value.isoformat(sep=" ", timespec="minutes")


def _labels(names) -> str:
    """Comma-separated criterion NAMEs as their labels."""
    return ", ".join(criterion_label(n) for n in (names or "").split(",") if n)


#: UCUM codes as people write them (issue 14: "x10³/µL", never "10*3/uL").
_UNIT_LABELS = {"10*3/uL": "×10³/µL", "10*9/L": "×10⁹/L", "10*6/uL": "×10⁶/µL",
                "10*12/L": "×10¹²/L", "Cel": "°C", "ug/mL": "µg/mL", "ug/L": "µg/L",
                "umol/L": "µmol/L", "mg/kg/d": "mg/kg/day", "ug/kg/min": "µg/kg/min",
                "mm[Hg]": "mmHg", "/min": "/min", "%": "%", "1": ""}


def unit_label(unit) -> str:
    """A unit (UCUM code) as shown on every page and export."""
    if unit is None or (not isinstance(unit, str) and pd.isna(unit)):
        return ""
    return _UNIT_LABELS.get(unit, unit.replace("u", "µ") if unit.startswith("u") else unit)


def _round(value, digits: int = 1):
    value = _jsonable(value)
    return None if value is None else round(float(value), digits)


def first_met_marks(row: dict) -> list[tuple[str, pd.Timestamp]]:
    """(criterion NAME, first time met) of the phenotype criteria met so far, earliest first."""
    marks = []
    for column, value in row.items():
        if column.endswith("_first_met") and column != "phenotype_first_met":
            value = _jsonable(value)
            if value is not None:
                marks.append((column.removesuffix("_first_met"), pd.Timestamp(value)))
    return sorted(marks, key=lambda m: m[1])


def recognition_text(row: dict, at) -> str:
    """The census line of recognition to treatment, from exact first-met times: for a stay
    meeting a phenotype criterion without anakinra "HScore >= 169 for 38 h, no anakinra"; with
    anakinra "anakinra 12 h after HScore >= 169" (or "before"); '' otherwise."""
    marks = first_met_marks(row)
    if not marks:
        return ""
    name, first = marks[0]
    dose = _jsonable(row.get("first_dose_time"))
    if dose is None:
        if not row.get("meets_phenotype"):
            return ""
        current = [(n, t) for n, t in marks if n in (row.get("phenotype_met") or "").split(",")]
        name, first = current[0] if current else marks[0]
        hours = (pd.Timestamp(at) - first).total_seconds() / 3600
        return f"{criterion_label(name)} for {hours:.0f} h, no anakinra"
    delay = (pd.Timestamp(dose) - first).total_seconds() / 3600
    side = "after" if delay >= 0 else "before"
    return f"anakinra {abs(delay):.0f} h {side} {criterion_label(name)}"


def census_rows(ctx: WebContext, user: User, frame: pd.DataFrame,
                at=None) -> list[CensusRow]:
    shown = {"hlh2004_result"}
    rows = []
    for r in records(frame):
        patient, stay = ident(ctx, user, r["person_id"], r["stay_id"])
        trend = None
        last, prev = _jsonable(r.get("ferritin_last")), _jsonable(r.get("ferritin_previous"))
        if last is not None and prev is not None:
            trend = "up" if last > prev else "down" if last < prev else "flat"
        others = {criterion_label(k.removesuffix("_result")): r[k] for k in r
                  if k.endswith("_result") and k not in shown and isinstance(r[k], str)}
        age = _jsonable(r.get("age_months"))
        rows.append(CensusRow(
            key=ctx.pseudo.stay_key(r["stay_id"]), patient=patient, stay=stay,
            # a researcher's census shows no clock time (hours in the PICU say it all)
            admit_time=(when(ctx, user, r.get("admit_time"), r.get("admit_time"))
                        if user.role == "clinician" else None),
            hours_since_admit=_jsonable(r.get("hours_since_admit")),
            age_years=None if age is None else round(age / 12, 1),
            sex=_jsonable(r.get("sex")),
            **{k: _jsonable(r.get(k)) for k in (
                "hscore_points", "hscore_max_possible", "hscore_ge_169", "hlh2004_met_count",
                "hlh2004_unknown_count", "hlh2004_result", "phoenix_score",
                "phoenix_septic_shock", "psofa_score", "ferritin_last", "ferritin_previous",
                "ferritin_unit")},
            other_results=others, ferritin_trend=trend,
            anakinra_running=bool(r.get("anakinra_running")),
            meets_phenotype=bool(r.get("meets_phenotype")),
            phenotype_met=_labels(r.get("phenotype_met")),
            meets_severity=bool(r.get("meets_severity")),
            severity_met=_labels(r.get("severity_met")),
            approaching_any=bool(r.get("approaching_any")),
            approaching=_labels(r.get("approaching")),
            outside_validated_ages=", ".join(criterion_label(n)
                                             for n in meets.outside_ages_names(r)),
            recognition=recognition_text(r, at),
            recognition_to_treatment_hours=_round(r.get("recognition_to_treatment_hours"))))
    # Default order for rounds: children meeting a criterion first, then those approaching,
    # then by HScore; ties by the label the user sees (a pseudonym for researchers, so the
    # order never reveals the identifiers' order).
    rows.sort(key=lambda row: (not row.meets_phenotype, not row.approaching_any,
                               -(row.hscore_points or 0), row.patient))
    return rows


def census_view(ctx: WebContext, user: User, at: str | None, filter_: str) -> tuple[Census, tuple]:
    if filter_ not in FILTERS:
        raise ApiError(422, f"filter '{filter_}' is not known: use one of {', '.join(FILTERS)}")
    at_real = _parse_at(at)
    if at_real is not None and user.role != "clinician":
        raise ApiError(422, "at: a researcher sees the current census only (each patient's times "
                            "are in that stay's own frame: choose a time on the patient page)")
    _not_after_now(ctx, at_real)
    snap = ctx.database.snapshot(at_real)
    key = ("census", snap.key, user.role, filter_)

    def build():
        frame = snap.census
        if filter_ == "meets":
            frame = frame[frame.meets_phenotype]
        elif filter_ == "approaching":
            frame = frame[frame.approaching_any]
        return Census(evaluated_at=snap.at.isoformat(sep=" ", timespec="minutes")
                      if user.role == "clinician" else None,
                      filter=filter_, n_stays=len(frame),
                      rows=census_rows(ctx, user, frame, snap.at),
                      criteria_unavailable=ctx.database.skipped_criteria,
                      not_recorded=ctx.database.not_recorded())
    return ctx.views.get_or_build(key, build), key


def get_census(ctx: WebContext, user: User, at: str | None, filter_: str) -> Census:
    return census_view(ctx, user, at, filter_)[0]


def find_stay(ctx: WebContext, key: str) -> dict:
    version = ctx.database.version()
    index = ctx.stay_index.get("index") if ctx.stay_index.get("version") == version else None
    if index is None:
        stays = ctx.database.stay_ids()
        index = {ctx.pseudo.stay_key(s): {"stay_id": s, "person_id": p, "admit_time": a}
                 for s, p, a in zip(stays.stay_id, stays.person_id, stays.admit_time.tolist())}
        ctx.stay_index.update(version=version, index=index)
    hit = index.get(key)
    if hit is None:
        raise ApiError(404, "no such patient stay (the link may be from an older database)")
    return dict(hit)


def patient_views(ctx: WebContext, user: User, key: str, at: str | None) -> tuple[dict, dict]:
    """(stay, views): the timeline, criteria and anakinra views and the page context of one
    stay for one role, cached per snapshot."""
    stay = find_stay(ctx, key)
    at_real = _parse_at(at)
    admit = stay["admit_time"]
    if at_real is not None and user.role != "clinician":
        at_real = from_frame(at_real, admit)  # a researcher's time is in the stay frame
        _not_after_now(ctx, at_real,
                       lambda now: to_frame(now, admit).isoformat(sep=" ", timespec="minutes"))
    else:
        _not_after_now(ctx, at_real)
    snap = ctx.database.snapshot(at_real)
    cache_key = ("patient", snap.key, user.role, key)

    def build():
        data = ctx.database.patient(stay["stay_id"], snapshot=snap)
        if not data:
            raise ApiError(404, "no such patient stay")
        return patient_context(ctx, user, key, stay, data, snap.at)
    return stay, ctx.views.get_or_build(cache_key, build)


def patient_context(ctx: WebContext, user: User, key: str, stay: dict, data: dict,
                    at: dt.datetime) -> dict:
    """The page context of one stay evaluated at ``at``: nothing after ``at`` is shown (a
    discharge, the end of a drug or of organ support still to come)."""
    info = data["stay"]
    stay = {**stay, "at": at}
    admit = info["admit_time"]
    return {
        "timeline": timeline_json(ctx, user, key, stay, data),
        "criteria": criteria_json(ctx, user, key, stay, data),
        "anakinra": anakinra_json(ctx, user, key, stay, data),
        "svg": build_timeline_svg(ctx, user, data, admit, at),
        "recognition": recognition_text(data.get("recognition") or {}, at),
        "admit_time": when(ctx, user, admit, admit),
        "discharge_time": when(ctx, user, info["discharge_time"], admit, until=at),
        "birth_date": str(info["birth_date"])[:10] if user.role == "clinician" else None,
        "sex": info.get("sex"), "weight_kg": _jsonable(info.get("weight_kg")),
        "reason": info.get("admission_reason"),
        "shift_note": user.role != "clinician",
        # every time shown carries its zone: UTC, or the researcher's stay frame
        "tz": "UTC" if user.role == "clinician" else "(stay frame)",
        "labels": ctx.labels}


def timeline_json(ctx: WebContext, user, key, stay, data) -> Timeline:
    patient, stay_label = ident(ctx, user, stay["person_id"], stay["stay_id"])

    def shifted(rows, cols):
        return view_rows(ctx, user, stay, rows, shift=cols, drop=("stay_id",))
    return Timeline(key=key, patient=patient, stay=stay_label,
                    measurements=shifted(data["measurements"], ["time"]),
                    drugs=shifted(data["drugs"], ["start_time", "end_time"]),
                    organ_support=shifted(data["support"], ["start_time", "end_time"]))


def view_rows(ctx: WebContext, user: User, stay: dict, rows, *, shift=(),
              drop=()) -> list[dict]:
    """JSON-ready rows for one role: times in ``shift`` in the researcher's stay frame, and none
    after the evaluation time ``stay['at']``."""
    admit, at = stay["admit_time"], stay.get("at")
    return [{k: when(ctx, user, v, admit, until=at) if k in shift else _jsonable(v)
             for k, v in r.items() if k not in drop} for r in rows]


def criteria_json(ctx: WebContext, user, key, stay, data) -> Criteria:
    current = data.get("current") or {}
    current = {k: _jsonable(v) for k, v in current.items()
               if k not in ("person_id", "stay_id", "admit_time", "eval_time",
                            "ferritin_last_time", "ferritin_previous_time")}
    strip = view_rows(ctx, user, stay, data["strip"], shift=("eval_time",), drop=("stay_id",))
    return Criteria(key=key, evaluated_at=when(ctx, user, data.get("current_at"),
                                               stay["admit_time"]),
                    current=current, over_time=strip,
                    missing_inputs=missing_input_notes(data.get("current") or {}, ctx.labels))


def anakinra_json(ctx: WebContext, user, key, stay, data) -> AnakinraCourse:
    days = view_rows(ctx, user, stay, data["anakinra_days"],
                     shift=("index_time", "period_start", "period_end"),
                     drop=("person_id", "stay_id"))
    summary = data["anakinra_course"]
    if summary:
        summary = {k: _jsonable(v) for k, v in summary.items()
                   if k not in ("person_id", "stay_id")}
        for c in ("index_time", "last_dose_time"):
            summary[c] = when(ctx, user, summary.get(c), stay["admit_time"])
    resp = view_rows(ctx, user, stay, data["marker_response"], shift=("time",),
                     drop=("stay_id",))
    return AnakinraCourse(key=key, summary=summary, daily=days, marker_response=resp,
                          flags={"above_labelled_maximum_mg_kg_day":
                                 anakinra.LABELLED_MAXIMUM_MG_KG_DAY,
                                 "implausible_above_mg_kg_day":
                                 anakinra.IMPLAUSIBLE_ABOVE_MG_KG_DAY,
                                 "lowest_reported_mg_kg_day":
                                 anakinra.LOWEST_REPORTED_MG_KG_DAY})


def build_timeline_svg(ctx: WebContext, user: User, data: dict, admit, at) -> str:
    def sh(t):
        if t is None or pd.isna(t):
            return None
        t = pd.Timestamp(t)
        if t > pd.Timestamp(at):  # an end still to come: drawn up to the evaluation time
            t = pd.Timestamp(at)
        return to_frame(t, admit) if user.role != "clinician" else t
    lo, hi = data["window"]
    axis = charts.Axis(sh(lo), sh(hi))
    meas = data["measurements"]
    markers = []
    for var in TIMELINE_VARIABLES:
        markers.append({"label": ctx.labels.get(var, var), "short_label": ctx.short_labels.get(var),
                        "unit": unit_label(ctx.units.get(var, "")),
                        "points": [(sh(r["time"]), r["value"]) for r in meas
                                   if r["variable"] == var]})
    bars = []
    drugs = data["drugs"].rows
    groups = [("Anakinra", [r for r in drugs if r["drug"] == anakinra.ANAKINRA])]
    names = {"corticosteroid": "Corticosteroids", "ivig": "IVIG"}
    for cls in BAR_DRUG_CLASSES:
        groups.append((names.get(cls, cls), [r for r in drugs if r["drug_class"] == cls
                                             and r["drug"] != anakinra.ANAKINRA]))
    for label, sub in groups:
        bars.append({"label": label, "spans": [
            (sh(r.start_time), sh(r.end_time) if not pd.isna(r.end_time) else None,
             f"{r.drug} {_text(r.dose)} {_text(r.dose_unit)} {_text(r.route)}")
            for r in map(_ns, sub)]})
    sup = data["support"].rows
    for name in sorted({r["support"] for r in sup},
                       key=lambda s: (s != "invasive_ventilation", s)):
        sub = [r for r in sup if r["support"] == name]
        label = "Invasive ventilation" if name == "invasive_ventilation" else name.capitalize()
        bars.append({"label": label, "spans": [
            (sh(r.start_time), sh(r.end_time) if not pd.isna(r.end_time) else sh(hi),
             f"{name} {_text(r.dose)} {_text(r.dose_unit)}")
            for r in map(_ns, sub)]})
    strip = data["strip"].columns
    strip_rows = data["strip"].rows
    rows = []
    if "hscore_points" in strip:
        rows.append({"label": "HScore", "cells": [
            (sh(r["eval_time"]), f"{_jsonable(r['hscore_points'])}",
             r.get("hscore_ge_169") == "met") for r in strip_rows]})
    if "hlh2004_met_count" in strip:
        rows.append({"label": "HLH-2004 (of 8)", "cells": [
            (sh(r["eval_time"]), f"{r['hlh2004_met_count']}+{r['hlh2004_unknown_count']}?",
             r.get("hlh2004_result") == "met") for r in strip_rows]})
    if "phoenix_score" in strip:
        rows.append({"label": "Phoenix", "cells": [
            (sh(r["eval_time"]), f"{_jsonable(r['phoenix_score'])}",
             r.get("phoenix_sepsis") == "met") for r in strip_rows]})
    events = [(sh(t), f"{criterion_label(name)} first met") for name, t in
              first_met_marks(data.get("recognition") or {})]
    dose = _jsonable((data.get("recognition") or {}).get("first_dose_time"))
    if dose is not None:
        events.append((sh(dose), "first anakinra dose"))
    return charts.timeline_svg(axis, markers, bars, rows, events)

