"""Where Spark's time goes on the screen: starting, building, Catalyst's phases, running (issue 15 item 4).

Not a test (no timing assertions anywhere). On a Parquet folder of the canonical tables (made
from a synthetic DuckDB database with ``hyperinflam.exports.parquet.export_parquet``, not timed),
in one process on Spark ``--master`` (default ``local[2]``):

1. engine start (``open_engine(..., 'spark')``: the JVM, the session, the Parquet views);
2. the screen's compiled plan (every criterion, 24-h grid): built and compiled by ibis, or read
   from the plan cache (run the benchmark twice: the second run reads it);
3. ``session.sql(plan SQL)``: parsing and analysis (Spark analyses eagerly);
4. ``queryExecution().executedPlan()``: optimisation and physical planning;
5. running it: the result written to Parquet by the executors.

Catalyst's own tracker (``QueryPlanningTracker.phases``) gives 3 and 4 per phase (parsing,
analysis, optimization, planning), printed with the wall times.

    python benchmarks/bench_spark_plan.py --db /tmp/hyperinflam-bench/synth-10000-seed2014.duckdb
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

DEFAULT_WORKDIR = Path(os.environ.get("HYPERINFLAM_BENCH_DIR", "/tmp/hyperinflam-bench"))


def parquet_of(db: Path, workdir: Path) -> Path:
    from hyperinflam.engine import connect
    from hyperinflam.engine.storage import is_parquet_folder
    from hyperinflam.exports.parquet import export_parquet

    folder = workdir / f"{db.stem}-parquet"
    if not is_parquet_folder(folder):
        con = connect(db, read_only=True)
        export_parquet(con, folder, overwrite=True)
        con.disconnect()
    return folder


def staged(session, sql: str) -> tuple[str, list]:
    """Run every CTE of ``sql`` that is read more than once as its own stage (checkpointed and
    registered as a temporary view of that name), in order; return the rest of the query and
    each stage's name, references and seconds."""
    from collections import Counter

    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="spark")
    ctes = list(tree.args["with_"].expressions)
    refs = Counter(t.name for t in tree.find_all(exp.Table))
    stages, kept = [], []
    for cte in ctes:
        name = cte.alias
        if refs[name] > 1 and not name.startswith("ibis_"):
            started = time.perf_counter()
            body = cte.this.copy()
            if kept:
                body.set("with_", exp.With(expressions=[c.copy() for c in kept]))
            frame = session.sql(body.sql(dialect="spark")).localCheckpoint()
            frame.createOrReplaceTempView(name)
            stages.append([name, refs[name], round(time.perf_counter() - started, 2)])
        else:
            kept.append(cte)
    tree.args["with_"].set("expressions", kept)
    if not kept:
        tree.set("with_", None)
    return tree.sql(dialect="spark"), stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="a synthetic DuckDB database")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--spark-conf", action="append", default=[],
                        help="KEY=VALUE for the session (repeatable), e.g. "
                             "spark.sql.optimizer.maxIterations=20")
    parser.add_argument("--staged", action="store_true",
                        help="plan in stages: each CTE the query reads more than once is run "
                             "first and checkpointed (sqlglot splits the cached SQL), then the "
                             "rest; the result is compared with the one-query run")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    folder = parquet_of(args.db, args.workdir)

    t0 = time.perf_counter()
    from hyperinflam.engine import open_engine, plans
    from hyperinflam.screening.plans import screen_inputs, screen_plan

    con = open_engine(folder, "spark", args.master, args.spark_conf or None)
    session = con._session
    t_start = time.perf_counter()
    plan = screen_plan(con, "grid")
    t_plan = time.perf_counter()
    sql = plan.bound_sql()
    out = args.workdir / "spark-plan-screen"
    shutil.rmtree(out, ignore_errors=True)
    with plans._Inputs(con, plan, screen_inputs("grid", step_hours=24)):
        t_inputs = time.perf_counter()
        stages = []
        if args.staged:
            sql, stages = staged(session, sql)
        t_staged = time.perf_counter()
        df = session.sql(sql)
        t_analysed = time.perf_counter()
        qe = df._jdf.queryExecution()
        qe.executedPlan()
        t_planned = time.perf_counter()
        phases = {}
        tracker = qe.tracker().phases()
        it = tracker.keySet().iterator()
        while it.hasNext():
            name = it.next()
            phases[name] = round(tracker.get(name).get().durationMs() / 1000, 2)
        df.write.parquet(str(out))
        t_ran = time.perf_counter()
        if args.staged:  # the same rows as the query in one stage
            whole = session.sql(plan.bound_sql())
            written = session.read.parquet(str(out))
            differ = (written.exceptAll(whole).count(), whole.exceptAll(written).count())
    rows = session.read.parquet(str(out)).count()
    con.disconnect()
    shutil.rmtree(out, ignore_errors=True)
    result = {"master": args.master, "spark_conf": args.spark_conf, "db": str(args.db), "sql_kib": round(len(sql) / 1024),
              "sql_lines": sql.count("\n") + 1, "evaluation_rows": rows,
              "engine_start_s": round(t_start - t0, 2),
              "plan_build_or_cache_s": round(t_plan - t_start, 2),
              "register_inputs_s": round(t_inputs - t_plan, 2),
              "stages_s": round(t_staged - t_inputs, 2), "stages": stages,
              "parse_and_analyse_s": round(t_analysed - t_staged, 2),
              "optimise_and_plan_s": round(t_planned - t_analysed, 2),
              "catalyst_phases_s": phases, "run_and_write_s": round(t_ran - t_planned, 2),
              "load_average": [round(x, 2) for x in os.getloadavg()]}
    if args.staged:
        result["rows_differing_from_one_stage"] = differ
    with open(args.workdir / "spark-plan-results.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(result) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
