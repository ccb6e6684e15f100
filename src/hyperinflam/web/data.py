"""What the web pages and the JSON API show, read from the canonical tables and the screening
engine. No clinical rule lives here: the criteria (``hyperinflam.criteria``), the census status
(``hyperinflam.approaching``) and the anakinra course (``hyperinflam.anakinra``) compute every
value; this module runs their ibis expressions, caches the results per version of the database
and selects the rows of one stay.

Connections: a read-only DuckDB connection is opened for each unit of work and closed at once, so
``hyperinflam load ...`` can write between requests. Results are cached under the database's
fingerprint (size and modification time of the file and its WAL): loading new data changes the
fingerprint, and the next request sees the new data. The live census ("now") is recomputed at most
every ``census_refresh_seconds``; a stale result is served (with its evaluation time shown) while
the new one is computed in the background.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import pandas as pd

from hyperinflam import anakinra, approaching
from hyperinflam.engine import connect

log = logging.getLogger("hyperinflam.web")

#: Markers drawn on the patient time axis (issue 7), in this order (vocabulary/variables.csv).
TIMELINE_VARIABLES = ("ferritin", "crp", "fibrinogen", "platelets", "anc", "alc",
                      "triglycerides", "ast", "temperature")
#: Drug classes drawn as bars besides anakinra (vocabulary/drugs.csv classes).
BAR_DRUG_CLASSES = ("corticosteroid", "ivig")
#: Data shown from this many hours before PICU admission (labs drawn in the ED or ward).
PRE_ADMISSION_HOURS = 24
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


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


def usable_criteria(names: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """Criteria whose expressions build (checked on an empty in-memory database), and the reason
    for each one left out (shown on the census page, never silently dropped)."""
    from hyperinflam.criteria import discover
    from hyperinflam.engine import connect_memory
    from hyperinflam.screen import screen

    available = discover()
    wanted = names or list(available)
    ok, skipped = [], {}
    con = connect_memory()
    try:
        for name in wanted:
            if name not in available:
                skipped[name] = "not installed"
                continue
            try:
                screen(con, at=_now(), criteria=[name]).schema()
                ok.append(name)
            except Exception as exc:  # noqa: BLE001 - reported on the page
                skipped[name] = str(exc)
    finally:
        con.disconnect()
    return ok, skipped


@dataclass
class _Entry:
    key: tuple
    value: object
    computed_at: float


@dataclass
class Database:
    """The canonical database as the web app sees it (read-only, cached per fingerprint)."""

    path: Path
    criteria: list[str]
    census_refresh_seconds: float = 60.0
    pinned_now: dt.datetime | None = None     # a fixed "now" (demos, tests, benchmarks)
    skipped_criteria: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self.path = Path(self.path)
        self._db_lock = threading.Lock()
        self._cache: dict[str, _Entry] = {}
        self._cache_lock = threading.Lock()
        self._computing: dict[tuple, threading.Event] = {}

    # -- plumbing -----------------------------------------------------------------------------
    def now(self) -> dt.datetime:
        return self.pinned_now or _now()

    def fingerprint(self) -> tuple:
        parts = []
        for p in (self.path, self.path.with_name(self.path.name + ".wal")):
            try:
                st = p.stat()
                parts.append((st.st_size, st.st_mtime_ns))
            except FileNotFoundError:
                parts.append(None)
        return tuple(parts)

    def run(self, fn):
        """Run ``fn(con)`` on a fresh read-only connection (serialised), then close it."""
        with self._db_lock:
            con = connect(self.path, read_only=True)
            try:
                con.con.execute("SET enable_progress_bar = false")
                return fn(con)
            finally:
                con.disconnect()

    def _cached(self, name: str, key: tuple, compute, *, stale_ok: bool = False):
        """Single-flight cache: one computation per key; with ``stale_ok`` the previous value is
        returned while a new one is computed in the background."""
        with self._cache_lock:
            entry = self._cache.get(name)
            if entry is not None and entry.key == key:
                return entry.value
            event = self._computing.get(key)
            starter = event is None
            if starter:
                event = self._computing[key] = threading.Event()
        if starter:
            def work():
                try:
                    value = compute()
                    with self._cache_lock:
                        self._cache[name] = _Entry(key, value, time.monotonic())
                except Exception:  # noqa: BLE001 - logged; the waiting request re-raises
                    log.exception("computing %s failed", name)
                finally:
                    with self._cache_lock:
                        self._computing.pop(key, None)
                    event.set()
            if stale_ok and entry is not None:
                threading.Thread(target=work, daemon=True).start()
                return entry.value
            work()
        elif stale_ok and entry is not None:
            return entry.value
        event.wait()
        with self._cache_lock:
            entry = self._cache.get(name)
        if entry is None or entry.key != key:
            raise RuntimeError(f"could not compute the {name}; see the server log")
        return entry.value

    # -- census -------------------------------------------------------------------------------
    def census(self, at: dt.datetime | None = None) -> tuple[pd.DataFrame, dt.datetime]:
        """(census frame, evaluation time). ``at`` None = live (now, refreshed periodically)."""
        if at is not None:
            return self._cached(f"census@{at.isoformat()}", (self.fingerprint(), at),
                                lambda: self.run(lambda con: census_frame(con, at,
                                                                           self.criteria))), at
        bucket = int(time.time() // self.census_refresh_seconds) if not self.pinned_now else 0
        key = (self.fingerprint(), bucket)
        holder = {}

        def compute():
            moment = self.now()
            holder["at"] = moment
            return (self.run(lambda con: census_frame(con, moment, self.criteria)), moment)

        frame, moment = self._cached("census-live", key, compute, stale_ok=True)
        return frame, moment

    def strip_frame(self) -> pd.DataFrame:
        """Criteria over time for every stay on the STRIP_STEP_HOURS grid (cached)."""
        return self._cached("strip", (self.fingerprint(),),
                            lambda: self.run(lambda con: strip_frame(con, self.criteria)))

    def warm(self) -> None:
        """Compute the live census and the strip in the background (server start)."""
        def go():
            try:
                self.census()
                self.strip_frame()
            except Exception:  # noqa: BLE001
                log.exception("warming the caches failed")
        threading.Thread(target=go, daemon=True).start()

    # -- one stay -----------------------------------------------------------------------------
    def stay_ids(self) -> pd.DataFrame:
        return self._cached("stays", (self.fingerprint(),), lambda: self.run(
            lambda con: con.table("stay").select("stay_id", "person_id").to_pandas()))

    def patient(self, stay_id: str, at: dt.datetime | None = None) -> dict:
        """One stay: its data, the criteria over time (strip) and the current evaluation: the
        census row when the stay is in the PICU now, else its last evaluation on the grid."""
        data = self.run(lambda con: patient_data(con, stay_id, at or self.now()))
        if not data:
            return data
        strip = self.strip_frame()
        data["strip"] = strip[strip.stay_id == stay_id].sort_values("eval_time")
        census, census_at = self.census(at)
        rows = census[census.stay_id == stay_id]
        if not rows.empty:
            data["current"], data["current_at"] = rows.iloc[0].to_dict(), census_at
        elif not data["strip"].empty:
            last = data["strip"].iloc[-1].to_dict()
            data["current"], data["current_at"] = last, last["eval_time"]
        else:
            data["current"], data["current_at"] = None, None
        return data


# ---------------------------------------------------------------------------------------------
# Expressions (ibis) and their execution
# ---------------------------------------------------------------------------------------------
def ferritin_latest(con, at: dt.datetime) -> ibis.Table:
    """Per stay in the PICU at ``at``: the last two ferritin values at or before ``at`` since
    PRE_ADMISSION_HOURS before admission (row_number over the person's values; no asof_join)."""
    at_v = ibis.literal(at, type="timestamp")
    stay = con.table("stay")
    stay = stay.filter(stay.admit_time <= at_v,
                       stay.discharge_time.isnull() | (stay.discharge_time > at_v))
    m = con.table("measurement")
    m = m.filter(m.variable == "ferritin", m.time <= at_v).select(
        f_person="person_id", f_time="time", f_value="value", f_unit="unit")
    st = stay.select(f_stay="stay_id", s_person="person_id", admit_time="admit_time")
    j = st.join(m, st.s_person == m.f_person)
    j = j.filter(j.f_time >= j.admit_time - ibis.interval(hours=PRE_ADMISSION_HOURS))
    j = j.mutate(rk=ibis.row_number().over(group_by=j.f_stay, order_by=j.f_time.desc()))
    last = j.filter(j.rk == 0).select("f_stay", ferritin_last=j.f_value,
                                      ferritin_last_time=j.f_time, ferritin_unit=j.f_unit)
    prev = j.filter(j.rk == 1).select(p_stay=j.f_stay, ferritin_previous=j.f_value,
                                      ferritin_previous_time=j.f_time)
    return last.left_join(prev, last.f_stay == prev.p_stay).drop("p_stay")


def census_frame(con, at: dt.datetime, criteria: list[str]) -> pd.DataFrame:
    """The census at ``at``: every stay in the PICU, one row, executed as one query."""
    from hyperinflam.screen import screen

    t = screen(con, at=at, criteria=criteria)
    t = t.mutate(**approaching.status_columns(t))
    keep = [c for c in CENSUS_SCREEN_COLUMNS if c in t.columns]
    keep += [c for c in criterion_columns(t.columns, criteria) if c not in keep]
    keep += ["meets_any", "criteria_met", "approaching_any", "approaching"]
    t = t.select(*keep)
    fer = ferritin_latest(con, at)
    course = anakinra.course_summary(con, as_of=at).select(
        c_stay="stay_id", anakinra_running="running",
        anakinra_days_since_first_dose="days_since_first_dose",
        anakinra_max_mg_per_kg_day="max_mg_per_kg_day",
        anakinra_any_above_label="any_above_label")
    t = t.left_join(fer, t.stay_id == fer.f_stay).drop("f_stay")
    t = t.left_join(course, t.stay_id == course.c_stay).drop("c_stay")
    frame = t.order_by("stay_id").to_pandas()
    frame["anakinra_running"] = frame["anakinra_running"].fillna(False).astype(bool)
    return frame


def criterion_columns(columns, criteria: list[str]) -> list[str]:
    """The screen's criterion output columns (prefixed by an installed criterion's NAME)."""
    prefixes = tuple(f"{name}_" for name in criteria)
    return [c for c in columns if c.startswith(prefixes)]


def strip_frame(con, criteria: list[str]) -> pd.DataFrame:
    from hyperinflam.screen import screen

    t = screen(con, step_hours=STRIP_STEP_HOURS, criteria=criteria)
    t = t.mutate(**approaching.status_columns(t))
    keep = ["stay_id", "eval_time", "hours_since_admit", "meets_any", "criteria_met",
            "approaching_any", "approaching", *criterion_columns(t.columns, criteria)]
    return t.select(*keep).order_by(["stay_id", "eval_time"]).to_pandas()


def patient_data(con, stay_id: str, at: dt.datetime) -> dict:
    """Everything the patient page needs for one stay, up to ``at`` (small filtered queries)."""
    stay = con.table("stay")
    person = con.table("person")
    s = stay.filter(stay.stay_id == stay_id)
    p = person.select(p_person="person_id", birth_date="birth_date", sex="sex")
    s = s.join(p, s.person_id == p.p_person).drop("p_person").to_pandas()
    if s.empty:
        return {}
    row = s.iloc[0].to_dict()
    person_id = row["person_id"]
    admit = row["admit_time"].to_pydatetime()
    end = row["discharge_time"]
    end = at if pd.isna(end) else min(end.to_pydatetime(), at)
    lo = admit - dt.timedelta(hours=PRE_ADMISSION_HOURS)
    lo_v, hi_v = ibis.literal(lo, type="timestamp"), ibis.literal(end, type="timestamp")

    m = con.table("measurement")
    meas = m.filter(m.person_id == person_id, m.variable.isin(list(TIMELINE_VARIABLES)),
                    m.time >= lo_v, m.time <= hi_v).select(
        "variable", "time", "value", "unit").order_by(["variable", "time"]).to_pandas()
    d = con.table("drug_administration")
    drugs = d.filter(d.person_id == person_id, d.start_time >= lo_v, d.start_time <= hi_v,
                     (d.drug == anakinra.ANAKINRA) | d.drug_class.isin(list(BAR_DRUG_CLASSES))
                     ).select("drug", "drug_class", "dose", "dose_unit", "route", "start_time",
                              "end_time").order_by("start_time").to_pandas()
    o = con.table("organ_support")
    support = o.filter(o.person_id == person_id, o.start_time <= hi_v,
                       o.end_time.isnull() | (o.end_time >= lo_v)).select(
        "support", "start_time", "end_time", "dose", "dose_unit").order_by(
        ["support", "start_time"]).to_pandas()

    days = anakinra.daily_doses(con, as_of=end, stay_id=stay_id).to_pandas()
    course = anakinra.course_summary(con, as_of=end, stay_id=stay_id).to_pandas()

    response = marker_response(con, stay_id, person_id, course)
    return {"stay": row, "window": (lo, end), "measurements": meas, "drugs": drugs,
            "support": support, "anakinra_days": days,
            "anakinra_course": course.iloc[0].to_dict() if not course.empty else None,
            "marker_response": response}


def marker_response(con, stay_id: str, person_id: str, course: pd.DataFrame) -> pd.DataFrame:
    """Day-0 and day-7 marker values by the founding study's rules (clinical reference §12 rows
    1-2, study/cohort.chosen_values with the shipped 'rajasekaran2014' windows)."""
    if course.empty:
        return pd.DataFrame(columns=["variable", "role", "time", "value", "unit"])
    from hyperinflam.study.cohort import chosen_values
    from hyperinflam.study.definition import load_study

    study = load_study("rajasekaran2014")
    members = ibis.memtable({"stay_id": [stay_id], "person_id": [person_id],
                             "index_time": [course.iloc[0]["index_time"].to_pydatetime()]})
    values = chosen_values(con, members, list(study.markers.variables), study,
                           include_trajectory=False)
    return values.select("variable", "role", "time", "value", "unit").to_pandas()
