"""The bedside application's slow paths, before and after compiled plans (issue 15 item 6), side by
side in one process on one database (not a timed test):

* a census at a new time (``?at=``): the census expression built, compiled and run by ibis (the
  path before plans) against the compiled census plan with the time bound;
* the patient-page tables of every stay in the PICU at that time (a new ``?at=`` on a patient
  page), the same two ways;
* one stay's page outside the census (a discharged stay, or another time), the same two ways.

Each pair runs A, B, A, B ... at new times (so no snapshot cache helps either), after one
warm-up of each (the plans' first build and compile is reported apart). Prints every pair, the
medians and the median ratio of wall time and of this process's CPU time (all its threads: the
fairer figure on a shared, loaded machine), and the load average before and after.

    python benchmarks/bench_web_plans.py [--db PATH] [--pairs 3]

``--db``: a database built by ``benchmarks/bench_web.py --db PATH`` (1,100 synthetic stays, 1,032
open at 2025-06-01 12:00); without it one is built in a temporary folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench_web import NOW, build


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", type=Path, default=None)
    ap.add_argument("--pairs", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="hyperinflam-bench-web-plans-")
    os.environ.setdefault("HYPERINFLAM_CACHE_DIR", str(Path(tmp.name) / "cache"))
    db = args.db
    if db is None or not db.exists():
        built, _ = build(Path(tmp.name), 1100)
        db = built if db is None else Path(built.replace(db))

    from hyperinflam.engine import connect, plans
    from hyperinflam.screening.census import census_expr, census_frame, usable_criteria
    from hyperinflam.web.patient import (SNAPSHOT_TABLES, patient_data, patient_tables,
                                         patient_window, snapshot_exprs, stay_exprs)

    print(f"load average before: {_load()}")
    con = connect(db, read_only=True)
    crit, _ = usable_criteria()
    stays = con.con.execute("SELECT stay_id FROM stay ORDER BY stay_id").fetchall()

    def census_expression(at):
        frame = census_expr(con, at, crit).to_pandas()
        frame["anakinra_running"] = frame["anakinra_running"].fillna(False).astype(bool)
        return frame

    def tables_expression(at):
        exprs = snapshot_exprs(con, at, crit)
        return {name: exprs[name]().to_pandas() for name in SNAPSHOT_TABLES}

    def stay_expression(stay_id, at):
        row = con.table("stay").filter(lambda t: t.stay_id == stay_id).to_pandas().iloc[0]
        _, end = patient_window(row.to_dict(), at)
        exprs = stay_exprs(con, stay_id, end, crit)
        return {name: build_().to_pandas() for name, build_ in exprs.items()}

    jobs = {
        "census at a new time": (census_expression, lambda at: census_frame(con, at, crit),
                                 lambda i: (NOW - dt.timedelta(hours=3 + i, minutes=7 * i),)),
        "patient tables of every current stay at a new time": (
            tables_expression, lambda at: patient_tables(con, at, crit),
            lambda i: (NOW - dt.timedelta(hours=20 + i, minutes=11 * i),)),
        "one stay outside the census": (
            stay_expression, lambda s, at: patient_data(con, s, at, crit),
            lambda i: (stays[(37 * i + 5) % len(stays)][0],
                       NOW - dt.timedelta(hours=30 + i, minutes=13 * i))),
    }
    for name, (before, after, arguments) in jobs.items():
        started = time.perf_counter()
        after(*arguments(1000))  # first build + compile of the plans (then cached on disk)
        first = time.perf_counter() - started
        before(*arguments(1001))
        pairs = []
        for i in range(args.pairs):
            a0, ac = time.perf_counter(), time.process_time()
            before(*arguments(2 * i))
            a, a_cpu = time.perf_counter() - a0, time.process_time() - ac
            b0, bc = time.perf_counter(), time.process_time()
            after(*arguments(2 * i + 1))
            b, b_cpu = time.perf_counter() - b0, time.process_time() - bc
            pairs.append((a, b, a_cpu, b_cpu))
            print(f"  {name}: expression {a:.2f} s ({a_cpu:.2f} s CPU), plan {b:.2f} s "
                  f"({b_cpu:.2f} s CPU), ratio {a / b:.1f} (CPU {a_cpu / b_cpu:.1f})")
        med = [statistics.median(p[k] for p in pairs) for k in range(4)]
        ratio = statistics.median(p[0] / p[1] for p in pairs)
        cpu_ratio = statistics.median(p[2] / p[3] for p in pairs)
        print(f"{name}: expression (before) median {med[0]:.2f} s wall / {med[2]:.2f} s CPU, "
              f"compiled plan median {med[1]:.2f} s wall / {med[3]:.2f} s CPU; median ratio "
              f"{ratio:.1f}x wall, {cpu_ratio:.1f}x CPU; the plans' first build and compile "
              f"{first:.1f} s")
    con.disconnect()
    plans.clear_memory_cache()
    print(f"load average after: {_load()}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
