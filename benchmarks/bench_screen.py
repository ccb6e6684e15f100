"""Screening benchmark (issue 4): hyperinflam vs a pandas pivot + phoenix-sepsis vs the DuckDB floor.

Not a test (no timing assertions anywhere). On one synthetic DuckDB database (written by
``hyperinflam.synth.database.synthesize_to_db``, not timed) three jobs run, each in a fresh child
process (wall time of the child including start-up and imports; peak RSS of the child from
``getrusage(RUSAGE_CHILDREN)``, see ``_measure.py``):

1. **hyperinflam**: ``screen(con)`` — every criterion (HLH-2004, HScore, MAS-2016, MS score,
   hyperferritinemic sepsis, Phoenix, Phoenix-8, pSOFA, PRISM III, IPSCC), every stay, the default
   24-h grid (every 24 h from admission plus the end of the stay), each input the worst value in
   its own look-back window; the result written to Parquet by the engine. DuckDB memory_limit
   ``--memory-limit`` (default: the engine's default, 3GB), spilling to ``--workdir``.
2. **pandas + phoenix-sepsis**: every measurement row read into pandas, a 24-h bucket from
   admission, a pivot of min and max per (stay, bucket, variable), then ``phx.phoenix`` on the
   wide frame (Phoenix only; organ support not joined: invasive ventilation and vasoactives are
   passed as 0, so this baseline does *less* work than a real Phoenix and the ratio is
   conservative), written to Parquet.
3. **floor**: a bare DuckDB ``GROUP BY`` (stay, 24-h bucket, variable -> min, max, count) of the
   same rows into a table, same memory limit and threads.

    python benchmarks/bench_screen.py --stays 100000            # prepares /tmp/... if needed
    python benchmarks/bench_screen.py --db /tmp/site.duckdb     # an existing synthetic database

Prints a Markdown table for docs/performance.md and appends a JSON line to
``<workdir>/screen-results.jsonl`` (with the load average before and after each job).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import measure

DEFAULT_WORKDIR = Path(os.environ.get("HYPERINFLAM_BENCH_DIR", "/tmp/hyperinflam-bench"))
BUCKET_HOURS = 24


# ---------------------------------------------------------------------------------------------
# The three measured jobs (each runs in its own child process)
# ---------------------------------------------------------------------------------------------
def job_hyperinflam(db: Path, out: Path) -> dict:
    from hyperinflam.engine import connect
    from hyperinflam.screening.screen import screen

    con = connect(db, read_only=True)
    expr = screen(con, step_hours=BUCKET_HOURS)
    expr.to_parquet(out)
    rows = con.con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
    return {"output_rows": int(rows), "output_columns": len(expr.columns)}


def _write_screen(db: Path, out: Path, criteria=None) -> dict:
    """What ``hyperinflam screen --out`` runs: the compiled plan (read from the plan cache after
    its first build), batches of persons, each written as it finishes."""
    from hyperinflam.engine import connect
    from hyperinflam.screening.plans import write_screen

    con = connect(db, read_only=True)
    plan = write_screen(con, out, "parquet", step_hours=BUCKET_HOURS, criteria=criteria)
    rows = con.con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
    return {"output_rows": int(rows), "output_columns": len(plan.columns)}


def job_batched(db: Path, out: Path) -> dict:
    """Every criterion, as the command line runs it (compiled plan, batches of persons)."""
    return _write_screen(db, out)


def job_phoenix(db: Path, out: Path) -> dict:
    """Phoenix only (``criteria=["phoenix"]``): the same job as the pandas + phoenix-sepsis
    pipeline, with organ support, look-back windows and every Phoenix input the authors use."""
    return _write_screen(db, out, ["phoenix"])


def job_phases(db: Path, out: Path) -> dict:
    """Where the hyperinflam screen's time goes (not in the ratios): Python imports, building the
    ibis expression, compiling it to SQL, the features alone on the engine (to a temporary
    table), then the whole screen on the engine to Parquet (features again + criteria +
    write)."""
    import time

    started = time.perf_counter()
    from hyperinflam.engine import connect
    from hyperinflam.features import build_features, evaluation_grid, unique_specs
    from hyperinflam.screening.screen import screen, select_criteria

    imported = time.perf_counter()
    con = connect(db, read_only=True)
    expr = screen(con, step_hours=BUCKET_HOURS)
    built = time.perf_counter()
    sql = con.compile(expr)
    compiled = time.perf_counter()
    specs = unique_specs(s for m in select_criteria() for s in m.INPUTS)
    features = build_features(con, evaluation_grid(con, step_hours=BUCKET_HOURS), specs)
    con.create_table("bench_features", features, temp=True)
    featured = time.perf_counter()
    con._run_pre_execute_hooks(expr)  # registers the vocabulary memtables the SQL reads
    con.con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet)")
    written = time.perf_counter()
    return {"output_rows": 0, "output_columns": len(expr.columns),
            "import_s": round(imported - started, 2), "build_s": round(built - imported, 2),
            "compile_s": round(compiled - built, 2),
            "features_to_temp_table_s": round(featured - compiled, 2),
            "screen_to_parquet_s": round(written - featured, 2)}


def job_pandas_phoenix(db: Path, out: Path) -> dict:
    import duckdb
    import numpy as np
    import pandas as pd
    import phoenix as phx

    raw = duckdb.connect(str(db), read_only=True)
    raw.execute("SET TimeZone = 'UTC'")
    m = raw.execute("SELECT stay_id, time, variable, value FROM measurement").to_arrow_table().to_pandas()
    stays = raw.execute("""SELECT s.stay_id, s.admit_time, p.birth_date
                           FROM stay s JOIN person p USING (person_id)""").to_arrow_table().to_pandas()
    raw.close()
    m = m.merge(stays[["stay_id", "admit_time"]], on="stay_id", how="inner")
    m["bucket"] = ((m["time"] - m["admit_time"]) // pd.Timedelta(hours=BUCKET_HOURS)).astype("int64")
    agg = m.groupby(["stay_id", "bucket", "variable"], observed=True)["value"].agg(["min", "max"])
    wide = agg.unstack("variable")
    wide.columns = [f"{var}_{stat}" for stat, var in wide.columns]
    wide = wide.reset_index().merge(stays, on="stay_id", how="left")
    n = len(wide)

    def col(name: str) -> np.ndarray:
        return wide[name].to_numpy(dtype=float, na_value=np.nan) if name in wide else np.full(n, np.nan)

    fio2 = col("fio2_max")
    age_months = ((wide["admit_time"] - pd.to_datetime(wide["birth_date"])).dt.days
                  / 30.4375).to_numpy(dtype=float)
    zeros = np.zeros(n)
    result = phx.phoenix(
        pf_ratio=col("pao2_min") / fio2 if "pao2_min" in wide else np.full(n, np.nan),
        sf_ratio=col("spo2_min") / fio2,
        imv=zeros, other_respiratory_support=(np.nan_to_num(fio2) > 0.21).astype(float),
        vasoactives=zeros, lactate=col("lactate_max"), map=col("map_min"),
        platelets=col("platelets_min"), inr=col("inr_max"), d_dimer=col("d_dimer_max"),
        fibrinogen=col("fibrinogen_min"), gcs=col("gcs_total_min"), fixed_pupils=zeros,
        age=age_months)
    result = pd.concat([wide[["stay_id", "bucket"]].reset_index(drop=True),
                        result.reset_index(drop=True)], axis=1)
    result.to_parquet(out)
    return {"output_rows": len(result), "output_columns": int(result.shape[1]),
            "measurement_rows": len(m)}


def job_floor(db: Path, out: Path) -> dict:
    import duckdb

    from hyperinflam.engine import DEFAULT_MEMORY_LIMIT, DEFAULT_TEMP_DIRECTORY

    raw = duckdb.connect()  # in memory; the synthetic file attached read-only
    raw.execute("SET TimeZone = 'UTC'")
    raw.execute(f"SET memory_limit = '{DEFAULT_MEMORY_LIMIT}'")
    if DEFAULT_TEMP_DIRECTORY:
        raw.execute(f"SET temp_directory = '{DEFAULT_TEMP_DIRECTORY}'")
    raw.execute(f"ATTACH '{db}' AS site (READ_ONLY)")
    raw.execute(f"""CREATE TABLE floor_grouped AS
        SELECT m.stay_id,
               CAST(floor(date_diff('second', s.admit_time, m.time) / {BUCKET_HOURS * 3600})
                    AS BIGINT) AS bucket,
               m.variable, min(m.value) AS value_min, max(m.value) AS value_max, count(*) AS n
        FROM site.measurement m JOIN site.stay s USING (stay_id)
        GROUP BY ALL""")
    rows = raw.execute("SELECT count(*) FROM floor_grouped").fetchone()[0]
    return {"output_rows": int(rows), "output_columns": 6}


JOBS = {"hyperinflam": job_hyperinflam, "pandas_phoenix": job_pandas_phoenix, "floor": job_floor,
        "phases": job_phases, "batched": job_batched, "phoenix": job_phoenix}
PLAN_JOBS = ("batched", "phoenix")  # read a compiled plan: warmed once before they are measured


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------
def prepare(workdir: Path, stays: int, seed: int) -> Path:
    """The synthetic database for ``stays`` (written once, not timed)."""
    from hyperinflam.synth.database import synthesize_to_db

    db = workdir / f"synth-{stays}-seed{seed}.duckdb"
    if db.exists():
        return db
    started = time.perf_counter()
    summary = synthesize_to_db(db.with_suffix(".partial"), stays, seed, overwrite=True,
                               tmp_dir=workdir,
                               progress=lambda done, n: print(f"  prepared {done:,}/{n:,} stays",
                                                              file=sys.stderr, flush=True))
    db.with_suffix(".partial").rename(db)
    print(f"prepared {stays:,} stays in {time.perf_counter() - started:.0f} s "
          f"({summary.rows['measurement']:,} measurement rows) -> {db}", file=sys.stderr)
    return db


def _load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def run(db: Path, workdir: Path, jobs: list[str], memory_limit: str) -> dict:
    import duckdb

    raw = duckdb.connect(str(db), read_only=True)
    stays = raw.execute("SELECT count(*) FROM stay").fetchone()[0]
    rows = raw.execute("SELECT count(*) FROM measurement").fetchone()[0]
    raw.close()
    os.environ["HYPERINFLAM_MEMORY_LIMIT"] = memory_limit
    spill = workdir / "duckdb-spill"
    spill.mkdir(parents=True, exist_ok=True)
    os.environ["HYPERINFLAM_TEMP_DIRECTORY"] = str(spill)
    result = {"db": str(db), "stays": stays, "measurement_rows": rows, "cpus": os.cpu_count(),
              "memory_limit": memory_limit, "jobs": {}}
    for job in (j for j in jobs if j in PLAN_JOBS):  # not measured: the plan's first build
        measure([sys.executable, __file__, "--child", job, "--db", str(db), "--out",
                 str(workdir / f"screen-bench-warm-{job}.parquet")])
        (workdir / f"screen-bench-warm-{job}.parquet").unlink(missing_ok=True)
    for job in jobs:
        out = workdir / f"screen-bench-{job}.parquet"
        out.unlink(missing_ok=True)
        before = _load()
        r = measure([sys.executable, __file__, "--child", job, "--db", str(db), "--out", str(out)])
        child = json.loads(r["stdout"].strip().splitlines()[-1])
        result["jobs"][job] = {"wall_seconds": round(r["seconds"], 1),
                               "peak_mib": round(r["peak_mib"]),
                               "measurement_rows_per_second": round(rows / r["seconds"]),
                               "load_before": before, "load_after": _load(), **child}
        out.unlink(missing_ok=True)
        print(f"{job}: {r['seconds']:.1f} s, peak {r['peak_mib']:.0f} MiB (load {before})",
              file=sys.stderr, flush=True)
    j = result["jobs"]
    if "hyperinflam" in j and "pandas_phoenix" in j:
        result["pandas_over_hyperinflam"] = round(
            j["pandas_phoenix"]["wall_seconds"] / j["hyperinflam"]["wall_seconds"], 2)
    if "phoenix" in j and "pandas_phoenix" in j:
        result["pandas_over_phoenix"] = round(
            j["pandas_phoenix"]["wall_seconds"] / j["phoenix"]["wall_seconds"], 2)
    if "batched" in j and "floor" in j:
        result["batched_over_floor"] = round(
            j["batched"]["wall_seconds"] / j["floor"]["wall_seconds"], 2)
    if "hyperinflam" in j and "floor" in j:
        result["hyperinflam_over_floor"] = round(
            j["hyperinflam"]["wall_seconds"] / j["floor"]["wall_seconds"], 2)
    with open(workdir / "screen-results.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(result) + "\n")
    return result


def print_table(result: dict) -> None:
    labels = {"hyperinflam": "hyperinflam screen (10 criteria, 24-h grid, look-back windows)",
              "pandas_phoenix": "pandas pivot (min/max per 24-h bucket) + phoenix-sepsis",
              "floor": "bare DuckDB GROUP BY to a table (floor)",
              "phases": "hyperinflam again, timed by phase (not in the ratios)",
              "batched": "hyperinflam screen as the CLI runs it (compiled plan, batches of persons)",
              "phoenix": "hyperinflam, Phoenix only (compiled plan, batches of persons)"}
    print(f"\n{result['stays']:,} stays, {result['measurement_rows']:,} measurement rows, "
          f"{result['cpus']} cores, DuckDB memory_limit {result['memory_limit']}\n")
    print("| job | output rows x columns | wall time (s) | measurement rows/s | peak RSS (MiB) | "
          "load average (1/5/15 min) before |")
    print("|---|---:|---:|---:|---:|---|")
    for job, r in result["jobs"].items():
        print(f"| {labels[job]} | {r['output_rows']:,} x {r['output_columns']} | "
              f"{r['wall_seconds']:.1f} | {r['measurement_rows_per_second']:,} | {r['peak_mib']:,} | "
              f"{r['load_before']} |")
    phases = result["jobs"].get("phases")
    if phases:
        print("\nhyperinflam by phase (s): " + ", ".join(
            f"{k[:-2].replace('_', ' ')} {v}" for k, v in phases.items() if k.endswith("_s")))
    if "pandas_over_hyperinflam" in result:
        print(f"\npandas+phoenix / hyperinflam = {result['pandas_over_hyperinflam']:.2f} "
              f"(target >= 3)")
    if "pandas_over_phoenix" in result:
        print(f"pandas+phoenix / hyperinflam Phoenix only = {result['pandas_over_phoenix']:.2f} "
              f"(issue 15 target >= 4)")
    if "batched_over_floor" in result:
        print(f"hyperinflam as the CLI runs it / floor = {result['batched_over_floor']:.2f} "
              f"(issue 15 target <= 3)")
    if "hyperinflam_over_floor" in result:
        print(f"hyperinflam / floor = {result['hyperinflam_over_floor']:.2f} (target <= 3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stays", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2014)
    parser.add_argument("--db", type=Path, help="an existing synthetic DuckDB file (else prepared)")
    parser.add_argument("--memory-limit", default=None,
                        help="DuckDB memory_limit of the jobs (default: the engine's default, "
                             "HYPERINFLAM_MEMORY_LIMIT or 3GB)")
    parser.add_argument("--jobs", default="hyperinflam,pandas_phoenix,floor")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--child", choices=sorted(JOBS), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(JOBS[args.child](args.db, args.out)))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    db = args.db or prepare(args.workdir, args.stays, args.seed)
    if args.memory_limit is None:
        from hyperinflam.engine import DEFAULT_MEMORY_LIMIT

        args.memory_limit = DEFAULT_MEMORY_LIMIT
    print_table(run(db, args.workdir, args.jobs.split(","), args.memory_limit))


if __name__ == "__main__":
    main()
