"""What the web pages and the JSON API show, read from the canonical tables and the screening
engine. No clinical rule lives here: the criteria (``hyperinflam.criteria``), the census status
(``hyperinflam.screening.approaching``) and the anakinra course (``hyperinflam.screening.anakinra``) compute every
value; this module runs their ibis expressions once per version of the data and serves the rows
of one stay from memory.

Performance model (issue 7 load test, docs/performance.md):

* **Data version**: the database file's identity (device, inode), size and modification time,
  and those of its WAL (:meth:`Database.version`). Loading new data changes it.
* **One read-only connection**, opened lazily, reopened only when the version changes, used under
  a lock (DuckDB parallelises each query itself), and closed after ``idle_close_seconds`` without
  use, because an open read-only connection holds DuckDB's file lock and ``hyperinflam load``
  (another process) could not write.
* **Snapshot** per (version, as-of time): the census (one row per stay in the PICU), the criteria
  strip of those stays and all their patient-page rows (markers, drugs, organ support, anakinra
  periods and course, marker response), each computed by one set-based query with the stay
  filter applied before the joins. A patient page of a current stay is then a lookup in memory.
  A stay outside the snapshot (discharged, or not yet admitted at that time) is read by small
  queries filtered to that one stay / person first.
* The live snapshot ("now") is recomputed at most every ``census_refresh_seconds``; the previous
  one is served (with its evaluation time shown) while the new one is computed in the background.
  Snapshots at chosen times are kept in a small LRU cache.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pandas as pd

from hyperinflam.screening import anakinra, approaching
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
#: Seconds without a query after which the read-only connection is closed (lets a loader write).
IDLE_CLOSE_SECONDS = 2.0
#: Snapshots at chosen (non-live) times kept in memory.
SNAPSHOTS_KEPT = 8
#: Patient bundles of stays outside a snapshot kept in memory.
STAY_BUNDLES_KEPT = 64

_EMPTY_RESPONSE_COLUMNS = ["variable", "role", "time", "value", "unit"]


def _now() -> dt.datetime:
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
                screen(con, at=_now(), criteria=[name]).schema()
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
class _ByStay:
    """A result table split by stay once (when a snapshot is made): stay_id -> Rows."""

    columns: tuple[str, ...]
    groups: dict[str, list[dict]]
    n_rows: int

    @classmethod
    def of(cls, frame: pd.DataFrame) -> "_ByStay":
        groups: dict[str, list[dict]] = {}
        rows = records(frame)
        for row in rows:
            groups.setdefault(row["stay_id"], []).append(row)
        return cls(tuple(str(c) for c in frame.columns), groups, len(rows))

    def get(self, stay_id: str) -> Rows:
        return Rows(self.columns, self.groups.get(stay_id, []))

    def __len__(self) -> int:
        return self.n_rows


@dataclass
class Snapshot:
    """Everything the census and the patient pages of the stays in the PICU at ``at`` show,
    computed once for one data version; the patient tables are split by stay for lookups."""

    version: tuple
    at: dt.datetime
    census: pd.DataFrame                  # one row per stay, ordered by stay_id
    tables: dict[str, _ByStay] | None = None  # patient tables, computed on first patient view
    computed_in_s: float = 0.0

    def __post_init__(self):
        self._census_rows = {r["stay_id"]: r for r in records(self.census)}

    @property
    def key(self) -> tuple:
        return (self.version, self.at)

    def has(self, stay_id: str) -> bool:
        return stay_id in self._census_rows

    def patient(self, stay_id: str) -> dict:
        """The patient-page bundle of one stay of this snapshot (see :func:`patient_data`)."""
        t = self.tables
        row = dict(t["stays"].get(stay_id).rows[0])
        lo, end = _window(row, self.at)
        course = t["anakinra_course"].get(stay_id)
        return {"stay": row, "window": (lo, end),
                "measurements": t["measurements"].get(stay_id),
                "drugs": t["drugs"].get(stay_id),
                "support": t["support"].get(stay_id),
                "anakinra_days": t["anakinra_days"].get(stay_id),
                "anakinra_course": dict(course.rows[0]) if course.rows else None,
                "marker_response": t["marker_response"].get(stay_id),
                "strip": t["strip"].get(stay_id),
                "current": dict(self._census_rows[stay_id]), "current_at": self.at}


def _window(stay_row: dict, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Time span of the patient page: PRE_ADMISSION_HOURS before admission to discharge or
    ``at``, whichever comes first."""
    admit = pd.Timestamp(stay_row["admit_time"]).to_pydatetime()
    end = stay_row.get("discharge_time")
    end = at if end is None or pd.isna(end) else min(pd.Timestamp(end).to_pydatetime(), at)
    return admit - dt.timedelta(hours=PRE_ADMISSION_HOURS), end


@dataclass
class Database:
    """The canonical database as the web app sees it: read-only, computed once per version."""

    path: Path
    criteria: list[str]
    census_refresh_seconds: float = 60.0
    pinned_now: dt.datetime | None = None     # a fixed "now" (demos, tests, benchmarks)
    skipped_criteria: dict[str, str] = field(default_factory=dict)
    idle_close_seconds: float = IDLE_CLOSE_SECONDS

    def __post_init__(self):
        self.path = Path(self.path)
        self._db_lock = threading.Lock()
        self._con = None
        self._con_version: tuple | None = None
        self._last_used = 0.0
        self._closer: threading.Thread | None = None
        self._closed = threading.Event()
        self._cache_lock = threading.Lock()
        self._live: Snapshot | None = None
        self._live_bucket: tuple | None = None
        self._snapshots: OrderedDict[tuple, Snapshot] = OrderedDict()
        self._bundles: OrderedDict[tuple, dict] = OrderedDict()
        self._computing: dict[tuple, threading.Event] = {}
        self._errors: dict[tuple, BaseException] = {}
        self._stays: tuple[tuple, pd.DataFrame] | None = None
        self.n_connections_opened = 0

    # -- plumbing -----------------------------------------------------------------------------
    def now(self) -> dt.datetime:
        return self.pinned_now or _now()

    def version(self) -> tuple:
        """Identity of the data: (device, inode, size, mtime) of the file and of its WAL."""
        parts = []
        for p in (self.path, self.path.with_name(self.path.name + ".wal")):
            try:
                st = os.stat(p)
                parts.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
            except FileNotFoundError:
                parts.append(None)
        return tuple(parts)

    fingerprint = version  # the former name

    def run(self, fn):
        """Run ``fn(con)`` on the shared read-only connection (one unit of work at a time)."""
        with self._db_lock:
            version = self.version()
            if self._con is None or self._con_version != version:
                self._close_connection()
                self._con = connect(self.path, read_only=True)
                self._con.con.execute("SET enable_progress_bar = false")
                self._con_version = version
                self.n_connections_opened += 1
                self._start_closer()
            try:
                return fn(self._con)
            finally:
                self._last_used = time.monotonic()

    def _close_connection(self) -> None:
        if self._con is not None:
            try:
                self._con.disconnect()
            finally:
                self._con, self._con_version = None, None

    def _start_closer(self) -> None:
        if self._closer is not None and self._closer.is_alive():
            return

        def loop():
            while not self._closed.wait(max(self.idle_close_seconds / 2, 0.05)):
                if self._con is None:
                    continue
                if time.monotonic() - self._last_used < self.idle_close_seconds:
                    continue
                if self._db_lock.acquire(blocking=False):
                    try:
                        if (self._con is not None and time.monotonic() - self._last_used
                                >= self.idle_close_seconds):
                            self._close_connection()
                    finally:
                        self._db_lock.release()
        self._closer = threading.Thread(target=loop, name="hyperinflam-db-idle", daemon=True)
        self._closer.start()

    def close(self) -> None:
        """Close the connection and stop the idle closer (application shutdown)."""
        self._closed.set()
        with self._db_lock:
            self._close_connection()

    def _single_flight(self, key: tuple, compute):
        """Run ``compute()`` once for ``key`` however many requests wait for it."""
        with self._cache_lock:
            event = self._computing.get(key)
            starter = event is None
            if starter:
                event = self._computing[key] = threading.Event()
        if starter:
            try:
                return compute()
            except BaseException as exc:
                with self._cache_lock:
                    self._errors[key] = exc
                raise
            finally:
                with self._cache_lock:
                    self._computing.pop(key, None)
                event.set()
        event.wait()
        return None

    # -- snapshots ------------------------------------------------------------------------------
    def snapshot(self, at: dt.datetime | None = None) -> Snapshot:
        """The snapshot at ``at`` (None = live: now, refreshed every census_refresh_seconds)."""
        if at is not None:
            return self._snapshot_at(at)
        version = self.version()
        bucket = (version, 0 if self.pinned_now else
                  int(time.time() // self.census_refresh_seconds))
        live = self._live
        if live is not None and self._live_bucket == bucket:
            return live
        if live is not None:
            # New refresh period or new data: serve the current snapshot (its evaluation time is
            # shown) while the next one is computed in the background, once.
            with self._cache_lock:
                busy = ("live",) + bucket in self._computing
            if not busy:
                threading.Thread(target=self._refresh_live, args=(bucket,), daemon=True).start()
            return live
        return self._refresh_live(bucket) or self._wait_live(bucket)

    def _refresh_live(self, bucket: tuple) -> Snapshot | None:
        def compute():
            snap = self._compute_snapshot(self.now(), bucket[0])
            with self._cache_lock:
                self._live, self._live_bucket = snap, bucket
            return snap
        try:
            return self._single_flight(("live",) + bucket, compute)
        except Exception:  # noqa: BLE001 - logged; a waiting request reports it
            log.exception("computing the live census failed")
            if self._live is not None:
                return None
            raise

    def _wait_live(self, bucket: tuple) -> Snapshot:
        with self._cache_lock:
            live = self._live
            error = self._errors.pop(("live",) + bucket, None)
        if live is not None:
            return live
        raise RuntimeError("could not compute the census; see the server log") from error

    def _snapshot_at(self, at: dt.datetime) -> Snapshot:
        key = (self.version(), at)
        for _ in range(2):
            with self._cache_lock:
                snap = self._snapshots.get(key)
                if snap is not None:
                    self._snapshots.move_to_end(key)
                    return snap

            def compute():
                snap = self._compute_snapshot(at, key[0])
                with self._cache_lock:
                    self._snapshots[key] = snap
                    while len(self._snapshots) > SNAPSHOTS_KEPT:
                        self._snapshots.popitem(last=False)
                return snap
            snap = self._single_flight(("at",) + key, compute)
            if snap is not None:
                return snap
        with self._cache_lock:
            error = self._errors.pop(("at",) + key, None)
        raise RuntimeError("could not compute the census; see the server log") from error

    def _compute_snapshot(self, at: dt.datetime, version: tuple) -> Snapshot:
        started = time.perf_counter()
        census = self.run(lambda con: census_frame(con, at, self.criteria))
        snap = Snapshot(version=version, at=at, census=census)
        snap.computed_in_s = time.perf_counter() - started
        log.info("census snapshot: %d stays in %.2f s", len(snap.census), snap.computed_in_s)
        return snap

    def patient_tables(self, snap: Snapshot) -> dict[str, _ByStay]:
        """The patient tables of every stay of ``snap`` (computed once, on first need)."""
        while snap.tables is None:
            def compute():
                started = time.perf_counter()
                tables = self.run(lambda con: patient_tables(con, snap.at, self.criteria))
                snap.tables = tables
                log.info("patient tables of %d stays in %.2f s", len(snap.census),
                         time.perf_counter() - started)
                return tables
            if self._single_flight(("tables",) + snap.key, compute) is None and \
                    snap.tables is None:
                with self._cache_lock:
                    error = self._errors.pop(("tables",) + snap.key, None)
                raise RuntimeError("could not read the patient data; see the server log") \
                    from error
        return snap.tables

    def census(self, at: dt.datetime | None = None) -> tuple[pd.DataFrame, dt.datetime]:
        """(census frame, evaluation time). ``at`` None = live (now, refreshed periodically)."""
        snap = self.snapshot(at)
        return snap.census, snap.at

    def warm(self) -> None:
        """Compute the live snapshot in the background (server start)."""
        def go():
            try:
                self.patient_tables(self.snapshot())
            except Exception:  # noqa: BLE001
                log.exception("warming the census failed")
        threading.Thread(target=go, daemon=True).start()

    # -- one stay -----------------------------------------------------------------------------
    def stay_ids(self) -> pd.DataFrame:
        """Every stay (stay_id, person_id), cached per data version."""
        version = self.version()
        cached = self._stays
        if cached is not None and cached[0] == version:
            return cached[1]
        frame = self.run(lambda con: con.table("stay").select("stay_id", "person_id")
                         .order_by("stay_id").to_pandas())
        self._stays = (version, frame)
        return frame

    def patient(self, stay_id: str, at: dt.datetime | None = None, *,
                snapshot: Snapshot | None = None) -> dict:
        """One stay: its data, the criteria over time (strip) and the current evaluation (the
        census row when the stay is in the PICU at that time, else its last evaluation on the
        grid). Stays of the snapshot are served from memory; others by per-stay queries."""
        snap = snapshot or self.snapshot(at)
        if snap.has(stay_id):
            self.patient_tables(snap)
            return snap.patient(stay_id)
        key = (snap.version, snap.at, stay_id)
        with self._cache_lock:
            hit = self._bundles.get(key)
        if hit is not None:
            return hit
        data = self.run(lambda con: patient_data(con, stay_id, snap.at, self.criteria))
        if data:
            strip = data["strip"]
            if not strip.empty:
                last = dict(strip.rows[-1])
                data["current"], data["current_at"] = last, last["eval_time"]
            else:
                data["current"], data["current_at"] = None, None
        with self._cache_lock:
            self._bundles[key] = data
            while len(self._bundles) > STAY_BUNDLES_KEPT:
                self._bundles.popitem(last=False)
        return data


# ---------------------------------------------------------------------------------------------
# Expressions (ibis) and their execution
# ---------------------------------------------------------------------------------------------
def _ts(value: dt.datetime) -> ir.TimestampScalar:
    return ibis.literal(value, type="timestamp")


def stays_in_picu(con, at: dt.datetime) -> ir.Table:
    """Stays in the PICU at ``at`` (admitted at or before, not discharged by then), with the
    person's birth date and sex."""
    at_v = _ts(at)
    stay = con.table("stay")
    stay = stay.filter(stay.admit_time <= at_v,
                       stay.discharge_time.isnull() | (stay.discharge_time > at_v))
    return _with_person(con, stay)


def _with_person(con, stay: ir.Table) -> ir.Table:
    person = con.table("person")
    p = person.select(p_person="person_id", birth_date="birth_date", sex="sex")
    return stay.join(p, stay.person_id == p.p_person).drop("p_person")


def ferritin_latest(con, at: dt.datetime, stays: ir.Table | None = None) -> ir.Table:
    """Per stay in the PICU at ``at`` (or of ``stays``): the last two ferritin values at or
    before ``at`` since PRE_ADMISSION_HOURS before admission (row_number over the person's
    values; no asof_join)."""
    at_v = _ts(at)
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
    return t.order_by("stay_id")


def census_frame(con, at: dt.datetime, criteria: list[str]) -> pd.DataFrame:
    """The census at ``at``: every stay in the PICU, one row, executed as one query."""
    frame = census_expr(con, at, criteria).to_pandas()
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
    times = times.filter(times.eval_time <= _ts(until))
    t = screen(con, criteria=criteria, times=times)
    t = t.mutate(**approaching.status_columns(t))
    keep = ["stay_id", "eval_time", "hours_since_admit", "meets_any", "criteria_met",
            "approaching_any", "approaching", *criterion_columns(t.columns, criteria)]
    return t.select(*keep).order_by(["stay_id", "eval_time"])


def strip_frame(con, criteria: list[str], stays: ir.Table | None = None,
                until: dt.datetime | None = None) -> pd.DataFrame:
    """Criteria over time (see :func:`strip_expr`); default: every stay, every evaluation."""
    if stays is None:
        stays = con.table("stay")
    if until is None:
        until = dt.datetime(9999, 12, 31)
    return strip_expr(con, criteria, stays, until).to_pandas()


def timeline_exprs(con, stays: ir.Table, at: dt.datetime) -> dict[str, ir.Table]:
    """Markers, drugs and organ support of ``stays`` (stay_id, person_id, admit_time,
    discharge_time) from PRE_ADMISSION_HOURS before admission to discharge or ``at``. The stays
    are reduced to (stay, person, window) first, then joined to each source by person and time."""
    at_v = _ts(at)
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
    """Day-0 and day-7 marker values by the founding study's rules (clinical reference §12 rows
    1-2, study/cohort.chosen_values with the shipped 'rajasekaran2014' windows) for every stay of
    ``course`` (stay_id, person_id, index_time); values after ``at`` are not shown ("so far")."""
    from hyperinflam.study.cohort import chosen_values
    from hyperinflam.study.definition import load_study

    study = load_study("rajasekaran2014")
    values = chosen_values(con, course.select("stay_id", "person_id", "index_time"),
                           list(study.markers.variables), study, include_trajectory=False)
    values = values.filter(values.time <= _ts(at))
    return values.select("stay_id", "variable", "role", "time", "value", "unit").order_by(
        ["stay_id", "variable", "role", "time"])




def patient_tables(con, at: dt.datetime, criteria: list[str]) -> dict[str, _ByStay]:
    """Patient-page rows of every stay in the PICU at ``at`` (set-based queries), by stay."""
    stays = stays_in_picu(con, at)
    stays_df = stays.select("stay_id", "person_id", "admit_time", "discharge_time",
                            "admission_reason", "weight_kg", "birth_date", "sex").to_pandas()
    frames = {name: expr.to_pandas() for name, expr in timeline_exprs(con, stays, at).items()}
    strip = strip_expr(con, criteria, stays, at).to_pandas()
    # Anakinra rows of the stays in the PICU only, filtered on the engine before the marker
    # response is looked up: a site's whole history of treated stays is not recomputed per
    # snapshot.
    in_picu = stays.select(i_stay="stay_id")

    def current(expr: ir.Table) -> ir.Table:
        return expr.semi_join(in_picu, expr.stay_id == in_picu.i_stay)

    days = current(anakinra.daily_doses(con, as_of=at)).to_pandas()
    course_expr = current(anakinra.course_summary(con, as_of=at))
    course = course_expr.to_pandas()
    if course.empty:
        response = pd.DataFrame(columns=["stay_id", *_EMPTY_RESPONSE_COLUMNS])
    else:
        response = marker_response_expr(con, course_expr, at).to_pandas()
    return {"stays": _ByStay.of(stays_df),
            "measurements": _ByStay.of(frames["measurements"]),
            "drugs": _ByStay.of(frames["drugs"]), "support": _ByStay.of(frames["support"]),
            "strip": _ByStay.of(strip), "anakinra_days": _ByStay.of(days),
            "anakinra_course": _ByStay.of(course), "marker_response": _ByStay.of(response)}


def patient_data(con, stay_id: str, at: dt.datetime, criteria: list[str] | None = None) -> dict:
    """Everything the patient page needs for one stay, up to ``at``: the same expressions as a
    snapshot, with the stay filter applied first (small queries)."""
    stay = con.table("stay")
    one = _with_person(con, stay.filter(stay.stay_id == stay_id))
    s = one.to_pandas()
    if s.empty:
        return {}
    row = records(s)[0]
    lo, end = _window(row, at)
    frames = {name: Rows.of(expr.to_pandas())
              for name, expr in timeline_exprs(con, one, end).items()}
    days = anakinra.daily_doses(con, as_of=end, stay_id=stay_id).to_pandas()
    course_expr = anakinra.course_summary(con, as_of=end, stay_id=stay_id)
    course = course_expr.to_pandas()
    if course.empty:
        response = pd.DataFrame(columns=["stay_id", *_EMPTY_RESPONSE_COLUMNS])
    else:
        response = marker_response_expr(con, course_expr, end).to_pandas()
    strip = (strip_expr(con, criteria, one, end).to_pandas() if criteria is not None
             else pd.DataFrame(columns=["stay_id", "eval_time"]))
    return {"stay": row, "window": (lo, end), **frames, "anakinra_days": Rows.of(days),
            "anakinra_course": records(course)[0] if not course.empty else None,
            "marker_response": Rows.of(response), "strip": Rows.of(strip)}
