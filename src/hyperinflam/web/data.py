"""The cache lifecycle of what the web pages and the JSON API show. No clinical rule and no query
lives here: the census queries are :mod:`hyperinflam.screening.census` and the patient-page rows
:mod:`hyperinflam.web.patient` (the criteria, the census status and the anakinra course compute
every value); this module runs those expressions once per version of the data and serves the rows
of one stay from memory.

Performance model (issue 7 load test, docs/performance.md):

* **Data version**: the database file's identity (device, inode), size and modification time,
  and those of its WAL (:meth:`Database.version`). Loading new data changes it.
* **One read-only connection**, opened lazily, reopened only when the version changes (once the
  queries running on it are done), and closed after ``idle_close_seconds`` without use, because
  an open read-only connection holds DuckDB's file lock and ``hyperinflam load`` (another
  process) could not write. Each unit of work runs on its own cursor of that connection, at most
  ``concurrent_queries`` at a time (the others wait): a patient page of a stay outside the census
  is not queued behind a census at a new time, and a burst of new ``?at=`` times cannot start
  more queries than the cores can run.
* **Compiled plans** (:mod:`hyperinflam.engine.plans`): the census and every patient-page table
  is built and compiled once per criteria set (in memory, and on disk for the next start), its
  time and stay bound as parameters at each run, so a new ``?at=`` or a stay outside the census
  pays the engine's work only.
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
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hyperinflam.engine import connect
from hyperinflam.screening.census import census_frame, utc_now
from hyperinflam.web.patient import ByStay, patient_data, patient_tables, patient_window, records

log = logging.getLogger("hyperinflam.web")

#: Seconds without a query after which the read-only connection is closed (lets a loader write).
IDLE_CLOSE_SECONDS = 2.0
#: Snapshots at chosen (non-live) times kept in memory.
SNAPSHOTS_KEPT = 8
#: Patient bundles of stays outside a snapshot kept in memory.
STAY_BUNDLES_KEPT = 64
#: Units of work (census snapshots, patient tables, one stay's page) run at the same time, each
#: on its own cursor of the shared connection; more wait for a free one (docs/performance.md).
CONCURRENT_QUERIES = 2


@dataclass
class Snapshot:
    """Everything the census and the patient pages of the stays in the PICU at ``at`` show,
    computed once for one data version; the patient tables are split by stay for lookups."""

    version: tuple
    at: dt.datetime
    census: pd.DataFrame                  # one row per stay, ordered by stay_id
    tables: dict[str, ByStay] | None = None  # patient tables, computed on first patient view
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
        lo, end = patient_window(row, self.at)
        course = t["anakinra_course"].get(stay_id)
        return {"stay": row, "window": (lo, end),
                "measurements": t["measurements"].get(stay_id),
                "drugs": t["drugs"].get(stay_id),
                "support": t["support"].get(stay_id),
                "anakinra_days": t["anakinra_days"].get(stay_id),
                "anakinra_course": dict(course.rows[0]) if course.rows else None,
                "marker_response": t["marker_response"].get(stay_id),
                "strip": t["strip"].get(stay_id),
                "recognition": dict(self._census_rows[stay_id]),
                "current": dict(self._census_rows[stay_id]), "current_at": self.at}


@dataclass
class Database:
    """The canonical database as the web app sees it: read-only, computed once per version."""

    path: Path
    criteria: list[str]
    census_refresh_seconds: float = 60.0
    pinned_now: dt.datetime | None = None     # a fixed "now" (demos, tests, benchmarks)
    skipped_criteria: dict[str, str] = field(default_factory=dict)
    idle_close_seconds: float = IDLE_CLOSE_SECONDS
    concurrent_queries: int = CONCURRENT_QUERIES

    def __post_init__(self):
        self.path = Path(self.path)
        self._db_lock = threading.Lock()
        self._db_changed = threading.Condition(self._db_lock)
        self._active = 0
        self._slots = threading.BoundedSemaphore(max(1, int(self.concurrent_queries)))
        self.max_active_seen = 0
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
        return self.pinned_now or utc_now()

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
        """Run ``fn(con)`` on its own cursor of the shared read-only connection (an ibis
        backend); at most ``concurrent_queries`` at a time. The connection is (re)opened when
        the data version changed, once no query runs on the old one."""
        import ibis

        with self._slots:
            with self._db_changed:
                version = self.version()
                while self._con is None or self._con_version != version:
                    if self._active == 0:
                        self._close_connection()
                        self._con = connect(self.path, read_only=True)
                        self._con.con.execute("SET enable_progress_bar = false")
                        self._con_version = version
                        self.n_connections_opened += 1
                        self._start_closer()
                        break
                    self._db_changed.wait()
                    version = self.version()
                self._active += 1
                self.max_active_seen = max(self.max_active_seen, self._active)
                cursor = self._con.con.cursor()
            try:
                # per-connection settings of engine.connect, for this cursor too
                cursor.execute("SET TimeZone = 'UTC'")
                cursor.execute("SET enable_progress_bar = false")
                return fn(ibis.duckdb.from_connection(cursor))
            finally:
                cursor.close()
                with self._db_changed:
                    self._active -= 1
                    self._last_used = time.monotonic()
                    self._db_changed.notify_all()

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
                        if (self._con is not None and self._active == 0
                                and time.monotonic() - self._last_used
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

    def not_recorded(self) -> list[str]:
        """The domains the database's source does not record (their words), once per data
        version (:func:`hyperinflam.features.recorded.not_recorded_labels`)."""
        from hyperinflam.features.recorded import not_recorded_labels

        version = self.version()
        cached = getattr(self, "_not_recorded", None)
        if cached is None or cached[0] != version:
            cached = (version, self.run(not_recorded_labels))
            self._not_recorded = cached
        return list(cached[1])

    def patient_tables(self, snap: Snapshot) -> dict[str, ByStay]:
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
        """Every stay (stay_id, person_id, admit_time), cached per data version."""
        version = self.version()
        cached = self._stays
        if cached is not None and cached[0] == version:
            return cached[1]
        frame = self.run(lambda con: con.table("stay")
                         .select("stay_id", "person_id", "admit_time")
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
