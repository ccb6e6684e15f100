"""The bedside web application (FastAPI, server-rendered Jinja templates, inline SVG).

Pages: /login, /census, /patient/{key}; exports: /census.csv; JSON API under /api (OpenAPI at
/api/openapi.json). No CDN: the only script and stylesheet are packaged under web/static. See
docs/web.md for roles, sign-in limits, audit and the token scheme for scripts.

Security summary: argon2id password hashes (web.state); signed session cookie (Starlette
SessionMiddleware: HttpOnly, SameSite=strict, Secure with --https); a per-session CSRF token
checked on every POST; sign-in limited per user and per address; every patient view and export is
audited; the access log records route templates, never paths (no identifier in the log).
"""

from __future__ import annotations

import datetime as dt
import hmac
import io
import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal, Optional

import pandas as pd
from fastapi import Depends, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import BaseModel
from starlette.middleware.sessions import SessionMiddleware

from hyperinflam.criteria import label as criterion_label
from hyperinflam.screening import anakinra
from hyperinflam.screening.approaching import missing_input_notes
from hyperinflam.screening.census import usable_criteria
from hyperinflam.vocabulary import load as load_vocabulary
from hyperinflam.web import charts
from hyperinflam.web.data import Database
from hyperinflam.web.patient import BAR_DRUG_CLASSES, TIMELINE_VARIABLES, records
from hyperinflam.web.privacy import Pseudonymizer
from hyperinflam.web.state import StateStore, User, default_state_path

access_log = logging.getLogger("hyperinflam.web.access")

#: Sign-in limits (documented in docs/web.md): failures counted over the window, per user name
#: and per client address; above either limit sign-in is refused until the window has passed.
SIGN_IN_WINDOW_SECONDS = 15 * 60
SIGN_IN_MAX_FAILURES_PER_USER = 5
SIGN_IN_MAX_FAILURES_PER_ADDRESS = 20
SESSION_MAX_AGE_SECONDS = 12 * 3600
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
class WebSettings:
    db: Path
    state: Path | None = None
    https: bool = False
    criteria: list[str] | None = None
    pinned_now: dt.datetime | None = None
    census_refresh_seconds: float = 60.0
    warm: bool = True


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
    meets_any: bool = False
    criteria_met: str = ""
    approaching_any: bool = False
    approaching: str = ""


class Census(BaseModel):
    evaluated_at: Optional[str]
    filter: str
    n_stays: int
    rows: list[CensusRow]
    criteria_unavailable: dict[str, str] = {}


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
def _client(request: Request) -> str:
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


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: _jsonable(v) for k, v in row.items()} for row in records(frame)]


def _parse_at(text: str | dt.datetime | None) -> dt.datetime | None:
    if not text:
        return None
    if isinstance(text, dt.datetime):
        if text.tzinfo is not None:
            text = text.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return text.replace(microsecond=0)
    from hyperinflam.errors import FeatureError
    from hyperinflam.features import to_naive_utc

    try:
        return to_naive_utc(text).replace(microsecond=0)
    except FeatureError as exc:
        raise ApiError(422, f"at: {exc}") from None


def create_app(settings: WebSettings) -> FastAPI:
    """The application for one canonical database and one state database."""
    db_path = Path(settings.db)
    if not db_path.exists():
        raise FileNotFoundError(f"No hyperinflam database at {db_path}: load data first "
                                f"('hyperinflam load csv FOLDER --db {db_path}' or "
                                f"'hyperinflam demo --db {db_path}').")
    store = StateStore(settings.state or default_state_path(db_path))
    criteria, skipped = usable_criteria(settings.criteria)
    database = Database(db_path, criteria, settings.census_refresh_seconds, settings.pinned_now,
                        skipped)
    pseudo = Pseudonymizer(store.secret("pseudonym"))
    vocab = load_vocabulary()
    labels = {name: v.label for name, v in vocab.variables.items()}
    short_labels = {name: v.short_label for name, v in vocab.variables.items()}
    units = {name: v.canonical_unit for name, v in vocab.variables.items()}
    templates = Jinja2Templates(directory=str(resources.files("hyperinflam.web") / "templates"))
    rows_template = templates.env.get_template("census_rows.html")

    app = FastAPI(title="hyperinflam bedside API", version="1",
                  description="Census, patient timeline, criteria and anakinra course. Sign in "
                              "with the session cookie (browser) or 'Authorization: Bearer "
                              "<token>' (scripts; 'hyperinflam users token NAME').",
                  docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.store, app.state.database, app.state.pseudo = store, database, pseudo
    app.mount("/static", StaticFiles(packages=[("hyperinflam.web", "static")]), name="static")

    @app.middleware("http")
    async def log_and_harden(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", None) or "(unmatched)"
        access_log.info("%s %s %d %.0fms", request.method, template, response.status_code,
                        (time.perf_counter() - started) * 1000)
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        if not request.url.path.startswith("/static"):
            response.headers["Cache-Control"] = "no-store"
        return response

    app.add_middleware(SessionMiddleware, secret_key=store.secret("session"),
                       session_cookie="hyperinflam_session", max_age=SESSION_MAX_AGE_SECONDS,
                       same_site="strict", https_only=settings.https)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": exc.message}, status_code=exc.status)
        return templates.TemplateResponse(request, "error.html", {
            "status": exc.status, "message": exc.message, "user": _session_user(request)},
            status_code=exc.status)

    # -- authentication -------------------------------------------------------------------
    def _session_user(request: Request) -> User | None:
        name = request.session.get("user")
        if not name:
            return None
        user = store.get_user(name)
        if user is None or user.role != request.session.get("role"):
            request.session.clear()
            return None
        return user

    def api_user(request: Request) -> User:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            user = store.user_for_token(auth[7:].strip())
            if user is None:
                raise ApiError(401, "invalid token: create one with 'hyperinflam users token NAME'")
            return user
        user = _session_user(request)
        if user is None:
            raise ApiError(401, "sign in first (session cookie) or send 'Authorization: Bearer "
                                "<token>'")
        return user

    def page_user(request: Request) -> User:
        user = _session_user(request)
        if user is None:
            raise _Redirect("/login")
        return user

    class _Redirect(Exception):
        def __init__(self, to: str):
            self.to = to

    @app.exception_handler(_Redirect)
    async def redirect(request: Request, exc: _Redirect):
        return RedirectResponse(exc.to, status_code=303)

    def csrf_token(request: Request) -> str:
        token = request.session.get("csrf")
        if not token:
            token = request.session["csrf"] = secrets.token_urlsafe(32)
        return token

    def check_csrf(request: Request, sent: str) -> None:
        expected = request.session.get("csrf")
        if not expected or not sent or not hmac.compare_digest(expected, sent):
            raise ApiError(403, "the form expired or was not sent by this site (CSRF check "
                                "failed): reload the page and try again")

    def audit(user: User | None, request: Request, action: str, *, stay: dict | None = None,
              detail: str | None = None) -> None:
        store.audit(user=user.name if user else None, role=user.role if user else None,
                    action=action, address=_client(request),
                    stay_id=stay["stay_id"] if stay else None,
                    person_id=stay["person_id"] if stay else None, detail=detail)

    # -- presentation per role ------------------------------------------------------------
    def ident(user: User, person_id: str, stay_id: str) -> tuple[str, str]:
        if user.role == "clinician":
            return str(person_id), str(stay_id)
        return pseudo.person_pseudonym(person_id), pseudo.stay_pseudonym(stay_id)

    def when(user: User, value, person_id: str):
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return None
        value = pd.Timestamp(value)
        if user.role != "clinician":
            value = pseudo.shift(value, person_id)
        return value.isoformat(sep=" ", timespec="minutes")

    def census_rows(user: User, frame: pd.DataFrame) -> list[CensusRow]:
        shown = {"hlh2004_result"}
        rows = []
        for r in records(frame):
            patient, stay = ident(user, r["person_id"], r["stay_id"])
            trend = None
            last, prev = _jsonable(r.get("ferritin_last")), _jsonable(r.get("ferritin_previous"))
            if last is not None and prev is not None:
                trend = "up" if last > prev else "down" if last < prev else "flat"
            others = {criterion_label(k.removesuffix("_result")): r[k] for k in r
                      if k.endswith("_result") and k not in shown and isinstance(r[k], str)}
            age = _jsonable(r.get("age_months"))
            rows.append(CensusRow(
                key=pseudo.stay_key(r["stay_id"]), patient=patient, stay=stay,
                admit_time=when(user, r.get("admit_time"), r["person_id"]),
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
                meets_any=bool(r.get("meets_any")),
                criteria_met=", ".join(criterion_label(n) for n in (r.get("criteria_met") or "").split(",")
                                       if n),
                approaching_any=bool(r.get("approaching_any")),
                approaching=r.get("approaching") or ""))
        # Default order for rounds: children meeting a criterion first, then those approaching,
        # then by HScore; ties by the label the user sees (a pseudonym for researchers, so the
        # order never reveals the identifiers' order).
        rows.sort(key=lambda row: (not row.meets_any, not row.approaching_any,
                                   -(row.hscore_points or 0), row.patient))
        return rows

    # Views derived from a snapshot, cached per (snapshot, role, filter / stay): the census
    # rows, their rendered HTML and JSON, the patient views. A new snapshot (new data version or
    # refresh) has a new key; old entries fall out of the bounded caches.
    views = _LRU(VIEW_CACHE_ENTRIES)

    def census_view(user: User, at: str | None, filter_: str) -> tuple[Census, tuple]:
        if filter_ not in FILTERS:
            raise ApiError(422, f"filter '{filter_}' is not known: use one of {', '.join(FILTERS)}")
        snap = database.snapshot(_parse_at(at))
        key = ("census", snap.key, user.role, filter_)

        def build():
            frame = snap.census
            if filter_ == "meets":
                frame = frame[frame.meets_any]
            elif filter_ == "approaching":
                frame = frame[frame.approaching_any]
            return Census(evaluated_at=snap.at.isoformat(sep=" ", timespec="minutes")
                          if user.role == "clinician" else None,
                          filter=filter_, n_stays=len(frame), rows=census_rows(user, frame),
                          criteria_unavailable=database.skipped_criteria)
        return views.get_or_build(key, build), key

    def get_census(user: User, at: str | None, filter_: str) -> Census:
        return census_view(user, at, filter_)[0]

    stay_index: dict[str, Any] = {}

    def find_stay(key: str) -> dict:
        version = database.version()
        index = stay_index.get("index") if stay_index.get("version") == version else None
        if index is None:
            stays = database.stay_ids()
            index = {pseudo.stay_key(s): {"stay_id": s, "person_id": p}
                     for s, p in zip(stays.stay_id, stays.person_id)}
            stay_index.update(version=version, index=index)
        hit = index.get(key)
        if hit is None:
            raise ApiError(404, "no such patient stay (the link may be from an older database)")
        return dict(hit)

    def patient_views(user: User, key: str, at: str | None) -> tuple[dict, dict]:
        """(stay, views): the timeline, criteria and anakinra views and the page context of one
        stay for one role, cached per snapshot."""
        stay = find_stay(key)
        snap = database.snapshot(_parse_at(at))
        cache_key = ("patient", snap.key, user.role, key)

        def build():
            data = database.patient(stay["stay_id"], snapshot=snap)
            if not data:
                raise ApiError(404, "no such patient stay")
            return patient_context(user, key, stay, data)
        return stay, views.get_or_build(cache_key, build)

    def patient_context(user: User, key: str, stay: dict, data: dict) -> dict:
        pid = stay["person_id"]
        info = data["stay"]
        return {
            "timeline": timeline_json(user, key, stay, data),
            "criteria": criteria_json(user, key, stay, data),
            "anakinra": anakinra_json(user, key, stay, data),
            "svg": build_timeline_svg(user, data, pid),
            "admit_time": when(user, info["admit_time"], pid),
            "discharge_time": when(user, info["discharge_time"], pid),
            "birth_date": str(info["birth_date"])[:10] if user.role == "clinician" else None,
            "sex": info.get("sex"), "weight_kg": _jsonable(info.get("weight_kg")),
            "reason": info.get("admission_reason"),
            "shift_note": user.role != "clinician"}

    def timeline_json(user, key, stay, data) -> Timeline:
        pid = stay["person_id"]
        patient, stay_label = ident(user, pid, stay["stay_id"])

        def shifted(rows, cols):
            return view_rows(user, pid, rows, shift=cols, drop=("stay_id",))
        return Timeline(key=key, patient=patient, stay=stay_label,
                        measurements=shifted(data["measurements"], ["time"]),
                        drugs=shifted(data["drugs"], ["start_time", "end_time"]),
                        organ_support=shifted(data["support"], ["start_time", "end_time"]))

    def view_rows(user: User, pid: str, rows, *, shift=(), drop=()) -> list[dict]:
        """JSON-ready rows for one role: times in ``shift`` shifted for researchers."""
        return [{k: when(user, v, pid) if k in shift else _jsonable(v)
                 for k, v in r.items() if k not in drop} for r in rows]

    def criteria_json(user, key, stay, data) -> Criteria:
        pid = stay["person_id"]
        current = data.get("current") or {}
        current = {k: _jsonable(v) for k, v in current.items()
                   if k not in ("person_id", "stay_id", "admit_time", "eval_time",
                                "ferritin_last_time", "ferritin_previous_time")}
        strip = view_rows(user, pid, data["strip"], shift=("eval_time",), drop=("stay_id",))
        return Criteria(key=key, evaluated_at=when(user, data.get("current_at"), pid),
                        current=current, over_time=strip,
                        missing_inputs=missing_input_notes(data.get("current") or {}, labels))

    def anakinra_json(user, key, stay, data) -> AnakinraCourse:
        pid = stay["person_id"]
        days = view_rows(user, pid, data["anakinra_days"],
                         shift=("index_time", "period_start", "period_end"),
                         drop=("person_id", "stay_id"))
        summary = data["anakinra_course"]
        if summary:
            summary = {k: _jsonable(v) for k, v in summary.items()
                       if k not in ("person_id", "stay_id")}
            for c in ("index_time", "last_dose_time"):
                summary[c] = when(user, summary.get(c), pid)
        resp = view_rows(user, pid, data["marker_response"], shift=("time",),
                         drop=("stay_id",))
        return AnakinraCourse(key=key, summary=summary, daily=days, marker_response=resp,
                              flags={"above_labelled_maximum_mg_kg_day":
                                     anakinra.LABELLED_MAXIMUM_MG_KG_DAY,
                                     "implausible_above_mg_kg_day":
                                     anakinra.IMPLAUSIBLE_ABOVE_MG_KG_DAY,
                                     "lowest_reported_mg_kg_day":
                                     anakinra.LOWEST_REPORTED_MG_KG_DAY})

    # -- pages ----------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def home():
        return RedirectResponse("/census", status_code=303)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request):
        return templates.TemplateResponse(request, "login.html", {
            "csrf": csrf_token(request), "error": None, "user": None})

    @app.post("/login", response_class=HTMLResponse, include_in_schema=False)
    def login(request: Request, username: str = Form(""), password: str = Form(""),
              csrf_token_: str = Form("", alias="csrf_token")):
        check_csrf(request, csrf_token_)
        address = _client(request)
        error = None
        if (store.recent_failures(user=username, window_s=SIGN_IN_WINDOW_SECONDS)
                >= SIGN_IN_MAX_FAILURES_PER_USER or
                store.recent_failures(address=address, window_s=SIGN_IN_WINDOW_SECONDS)
                >= SIGN_IN_MAX_FAILURES_PER_ADDRESS):
            store.audit(user=username, role=None, action="sign_in_refused_rate_limit",
                        address=address)
            error = (f"Too many failed sign-ins: try again in {SIGN_IN_WINDOW_SECONDS // 60} "
                     f"minutes, or ask an administrator.")
            return templates.TemplateResponse(request, "login.html", {
                "csrf": csrf_token(request), "error": error, "user": None}, status_code=429)
        user = store.verify_password(username, password)
        if user is None:
            store.record_failure(username, address)
            store.audit(user=username, role=None, action="sign_in_failed", address=address)
            return templates.TemplateResponse(request, "login.html", {
                "csrf": csrf_token(request), "error": "Wrong user name or password.",
                "user": None}, status_code=401)
        store.clear_failures(user.name)
        request.session.clear()  # new session: no fixation
        request.session.update(user=user.name, role=user.role,
                               csrf=secrets.token_urlsafe(32))
        store.audit(user=user.name, role=user.role, action="sign_in", address=address)
        return RedirectResponse("/census", status_code=303)

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf_token_: str = Form("", alias="csrf_token")):
        check_csrf(request, csrf_token_)
        user = _session_user(request)
        if user:
            audit(user, request, "sign_out")
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    @app.get("/census", response_class=HTMLResponse, include_in_schema=False)
    def census_page(request: Request, at: str | None = None, filter: str = "all",
                    user: User = Depends(page_user)):
        census, key = census_view(user, at, filter)
        rows_html = views.get_or_build(("census-html",) + key[1:], lambda: rows_template.render(
            census=census))
        audit(user, request, "view_census", detail=f"filter={filter}")
        return templates.TemplateResponse(request, "census.html", {
            "user": user, "csrf": csrf_token(request), "census": census, "at": at or "",
            "filters": FILTERS, "rows_html": Markup(rows_html)})

    @app.get("/census.csv", include_in_schema=False)
    def census_export(request: Request, at: str | None = None, filter: str = "all",
                      user: User = Depends(page_user)):
        census = get_census(user, at, filter)
        audit(user, request, "export_census", detail=f"filter={filter}; rows={census.n_stays}")
        frame = pd.DataFrame([r.model_dump(exclude={"other_results"}) for r in census.rows])
        buf = io.StringIO()
        frame.to_csv(buf, index=False)
        return PlainTextResponse(buf.getvalue(), media_type="text/csv", headers={
            "Content-Disposition": 'attachment; filename="census.csv"'})

    @app.get("/patient/{key}", response_class=HTMLResponse, include_in_schema=False)
    def patient_page(request: Request, key: str, at: str | None = None,
                     user: User = Depends(page_user)):
        stay, context = patient_views(user, key, at)
        audit(user, request, "view_patient", stay=stay)
        return templates.TemplateResponse(request, "patient.html", {
            "user": user, "csrf": csrf_token(request), **context})

    def build_timeline_svg(user: User, data: dict, pid: str) -> str:
        def sh(t):
            if t is None or pd.isna(t):
                return None
            t = pd.Timestamp(t)
            return pseudo.shift(t, pid) if user.role != "clinician" else t
        lo, hi = data["window"]
        axis = charts.Axis(sh(lo), sh(hi))
        meas = data["measurements"]
        markers = []
        for var in TIMELINE_VARIABLES:
            markers.append({"label": labels.get(var, var), "short_label": short_labels.get(var),
                            "unit": units.get(var, ""),
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
        return charts.timeline_svg(axis, markers, bars, rows)

    # -- JSON API -------------------------------------------------------------------------
    @app.get("/api/me", response_model=Me, tags=["session"])
    def api_me(user: User = Depends(api_user)):
        return Me(user=user.name, role=user.role)

    @app.get("/api/census", response_model=Census, tags=["census"],
             responses={401: {"description": "not signed in"},
                        422: {"description": "bad parameter"}})
    def api_census(request: Request, at: Optional[dt.datetime] = Query(
                       None, description="ISO 8601 time; default now"),
                   filter: Literal["all", "meets", "approaching"] = Query("all"),
                   user: User = Depends(api_user)):
        census, key = census_view(user, at, filter)
        body = views.get_or_build(("census-json",) + key[1:], census.model_dump_json)
        audit(user, request, "api_census", detail=f"filter={filter}")
        return Response(body, media_type="application/json")

    responses = {401: {"description": "not signed in"}, 404: {"description": "unknown stay"},
                 422: {"description": "bad parameter"}}

    @app.get("/api/patients/{key}/timeline", response_model=Timeline, tags=["patient"],
             responses=responses)
    def api_timeline(request: Request, key: str, at: Optional[dt.datetime] = None,
                     user: User = Depends(api_user)):
        stay, context = patient_views(user, key, at)
        audit(user, request, "api_patient_timeline", stay=stay)
        return context["timeline"]

    @app.get("/api/patients/{key}/criteria", response_model=Criteria, tags=["patient"],
             responses=responses)
    def api_criteria(request: Request, key: str, at: Optional[dt.datetime] = None,
                     user: User = Depends(api_user)):
        stay, context = patient_views(user, key, at)
        audit(user, request, "api_patient_criteria", stay=stay)
        return context["criteria"]

    @app.get("/api/patients/{key}/anakinra", response_model=AnakinraCourse, tags=["patient"],
             responses=responses)
    def api_anakinra(request: Request, key: str, at: Optional[dt.datetime] = None,
                     user: User = Depends(api_user)):
        stay, context = patient_views(user, key, at)
        audit(user, request, "api_patient_anakinra", stay=stay)
        return context["anakinra"]

    app.state.census_view, app.state.patient_views = census_view, patient_views  # benchmarks
    app.router.on_shutdown.append(database.close)
    if settings.warm:
        database.warm()
    return app
