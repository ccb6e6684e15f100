"""Bounded load test of the bedside web application on loopback (not a timed test).

Builds 1,000+ synthetic stays (hyperinflam.synth.generator -> CSV reader), shifts each child's data so that
their last stay is open "now" (about 1,000 current stays), starts uvicorn on 127.0.0.1 in a
separate process, then 20 concurrent users (httpx async clients, each signed in) issue a fixed number of
census and patient-page requests. Prints median / p95 latency and errors per page.

    python benchmarks/bench_web.py [--stays 1100] [--users 20] [--requests 400] [--db PATH]

``--db PATH`` keeps the built database at PATH and reuses it on the next run (building it takes
about a minute); without it a temporary database is built and removed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import re
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path

NOW = dt.datetime(2025, 6, 1, 12, 0)
PASSWORD = "benchmark password 1"


def make_current(raw, now: dt.datetime, max_open: int = 1000, spread_hours: int = 120) -> int:
    """Shift each person's rows so their last stay was admitted 0..spread_hours before ``now`` and
    is still open; remove data after ``now`` (benchmark set-up only, not clinical logic)."""
    stamp = f"TIMESTAMP '{now:%Y-%m-%d %H:%M:%S}'"
    raw.execute(f"""CREATE OR REPLACE TEMP TABLE shift AS
        SELECT person_id, stay_id, ({stamp} - INTERVAL (1 + (hash(person_id) % {spread_hours * 60}))
        MINUTE) - admit_time AS delta FROM (SELECT *, row_number() OVER (PARTITION BY person_id
        ORDER BY admit_time DESC) AS rk FROM stay) WHERE rk = 1""")
    for table, cols in {"stay": ["admit_time", "discharge_time"], "measurement": ["time"],
                        "drug_administration": ["start_time", "end_time"],
                        "organ_support": ["start_time", "end_time"], "condition": ["onset_time"],
                        "event": ["time"]}.items():
        sets = ", ".join(f"{c} = {c} + s.delta" for c in cols)
        raw.execute(f"UPDATE {table} SET {sets} FROM shift s WHERE {table}.person_id = s.person_id")
    raw.execute("UPDATE person SET birth_date = CAST(birth_date + s.delta AS DATE) FROM (SELECT "
                "person_id, any_value(delta) AS delta FROM shift GROUP BY person_id) s WHERE "
                "person.person_id = s.person_id")
    raw.execute(f"UPDATE stay SET discharge_time = NULL WHERE stay_id IN (SELECT stay_id FROM "
                f"shift ORDER BY stay_id LIMIT {max_open})")
    for table, col in {"measurement": "time", "drug_administration": "start_time",
                       "organ_support": "start_time", "event": "time"}.items():
        raw.execute(f"DELETE FROM {table} WHERE {col} > {stamp}")
    for table in ("drug_administration", "organ_support"):
        raw.execute(f"UPDATE {table} SET end_time = NULL WHERE end_time > {stamp}")
    return raw.execute("SELECT count(*) FROM stay WHERE discharge_time IS NULL").fetchone()[0]


def build(folder: Path, stays: int) -> tuple[Path, int]:
    from hyperinflam.engine import connect
    from hyperinflam.sources.csv import load_csv_folder
    from hyperinflam.synth.writer import synthesize

    synthesize(folder / "csv", stays, 2014)
    db = folder / "bench.duckdb"
    con = connect(db)
    con.con.execute("SET enable_progress_bar = false")
    load_csv_folder(con, folder / "csv")
    n_open = make_current(con.con, NOW)
    con.disconnect()
    return db, n_open


async def user_session(base: str, name: str, n: int, keys: list[str], out: dict) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        page = await client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        await client.post("/login", data={"username": name, "password": PASSWORD,
                                          "csrf_token": token})
        rng = random.Random(name)
        for i in range(n):
            kind = "census" if i % 2 == 0 else "patient"
            url = "/census" if kind == "census" else f"/patient/{rng.choice(keys)}"
            started = time.perf_counter()
            try:
                r = await client.get(url)
                ok = r.status_code == 200
            except Exception:  # noqa: BLE001 - counted as an error
                ok = False
            out[kind].append((time.perf_counter() - started) * 1000)
            if not ok:
                out[kind + "_errors"] += 1


def serve(db: Path, state: Path, port: int) -> None:
    """The server process: build the app, compute the live snapshot, then serve on loopback."""
    import uvicorn

    from hyperinflam.web import WebSettings, create_app

    app = create_app(WebSettings(db=db, state=state, pinned_now=NOW, warm=False))
    t0 = time.perf_counter()
    database = app.state.database
    database.patient_tables(database.snapshot())
    print(f"warm-up (census snapshot: census, criteria strip and patient rows of every current "
          f"stay): {time.perf_counter() - t0:.1f} s", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")


def current_stay_keys(db: Path, state: Path) -> list[str]:
    """Opaque keys of the stays open at NOW (what the census links to)."""
    from hyperinflam.engine import connect
    from hyperinflam.web.privacy import Pseudonymizer
    from hyperinflam.web.state import StateStore

    con = connect(db, read_only=True)
    try:
        ids = [r[0] for r in con.con.execute(
            "SELECT stay_id FROM stay WHERE admit_time <= ? AND (discharge_time IS NULL OR "
            "discharge_time > ?)", [NOW, NOW]).fetchall()]
    finally:
        con.disconnect()
    pseudo = Pseudonymizer(StateStore(state).secret("pseudonym"))
    return [pseudo.stay_key(s) for s in ids]


def main() -> None:
    import multiprocessing

    from hyperinflam.web.state import StateStore

    ap = argparse.ArgumentParser()
    ap.add_argument("--stays", type=int, default=1100)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--requests", type=int, default=400, help="total requests (half census)")
    ap.add_argument("--db", type=Path, default=None,
                    help="keep the benchmark database here and reuse it when it exists")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hyperinflam-bench-web-") as tmp:
        t0 = time.perf_counter()
        if args.db is not None and args.db.exists():
            db = args.db
            print(f"database: reusing {db}")
        else:
            db, n_open = build(Path(tmp), args.stays)
            if args.db is not None:
                args.db.parent.mkdir(parents=True, exist_ok=True)
                db = Path(shutil.move(db, args.db))
            print(f"database: {n_open} current stays ({time.perf_counter() - t0:.1f} s to build)")
        state = Path(tmp) / "state.sqlite"
        store = StateStore(state)
        for i in range(args.users):
            store.add_user(f"user{i}", "clinician", PASSWORD)
        store.close()
        keys = current_stay_keys(db, state)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        # The server runs in its own process, as in production: the load generator's own Python
        # work (20 async clients parsing responses) does not compete with it for the GIL.
        server = multiprocessing.get_context("spawn").Process(target=serve,
                                                              args=(db, state, port))
        server.start()
        try:
            deadline = time.monotonic() + 600
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or not server.is_alive():
                        raise SystemExit("the server did not start")
                    time.sleep(0.2)
            out = {"census": [], "patient": [], "census_errors": 0, "patient_errors": 0}
            per_user = args.requests // args.users
            t0 = time.perf_counter()

            async def run():
                await asyncio.gather(*(user_session(f"http://127.0.0.1:{port}", f"user{i}",
                                                    per_user, keys, out)
                                       for i in range(args.users)))
            asyncio.run(run())
            wall = time.perf_counter() - t0
        finally:
            server.terminate()
            server.join(timeout=10)
        print(f"{len(keys)} current stays; {args.users} concurrent users, "
              f"{per_user * args.users} requests in {wall:.1f} s")
        for kind in ("census", "patient"):
            lat = sorted(out[kind])
            p95 = lat[max(0, int(round(0.95 * len(lat))) - 1)]
            print(f"{kind:8s} n={len(lat)} median {statistics.median(lat):.0f} ms  p95 {p95:.0f} ms"
                  f"  errors {out[kind + '_errors']}")


if __name__ == "__main__":
    main()
