"""Batched screening from 10,000 to 1,000,000 stays: the whole ``hyperinflam screen`` process (issue 15).

Not a test (no timing assertions anywhere). What a site runs: ``hyperinflam screen --db DB --out
screen.parquet --quiet`` (every criterion, the default 24-h grid), which screens in batches of
persons of about ``HYPERINFLAM_BATCH_ROWS`` measurement rows (default 4 million) and writes each
batch as it finishes (``hyperinflam.engine.plans.write_file_in_batches``). Each run is a fresh
process (``_measure.py``: wall time and peak RSS of the process); the compiled plan is read from
the plan cache (one unmeasured warm-up run first, so the first size does not pay the compile).

Data (not timed): one synthetic database of ``--base-stays`` stays
(``hyperinflam.synth.database.synthesize_to_db``, seed 2014), then a database of N stays made by
copying every canonical table N / base times with ``-r<k>`` appended to ``person_id`` and
``stay_id`` (same times, same values: copy k of a person is a different person with the same
rows). Generating 1,000,000 stays directly took 44 min (docs/performance.md, "Scale"); copying
takes minutes, and every stay has the same shape of data as in the generated cohort.

    python benchmarks/bench_batches.py --sizes 10000,100000,1000000
    python benchmarks/bench_batches.py --sizes 100000 --batch-rows 6000000   # another batch size

Prints one Markdown row per size, then the fitted exponent (log-log least squares, scipy) and the
ratio of the largest to the next size; appends JSON lines to ``<workdir>/batches-results.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import hyperinflam_cmd, measure

DEFAULT_WORKDIR = Path(os.environ.get("HYPERINFLAM_BENCH_DIR", "/tmp/hyperinflam-bench"))
ID_COLUMNS = ("person_id", "stay_id")  # text identifiers (hyperinflam.schema)


def base_db(workdir: Path, stays: int, seed: int) -> Path:
    """The synthetic database of ``stays`` stays, written once (bench_screen's)."""
    from bench_screen import prepare

    return prepare(workdir, stays, seed)


def replicated_db(workdir: Path, base: Path, base_stays: int, stays: int) -> Path:
    """``stays`` stays: every canonical table of ``base`` copied ``stays / base_stays`` times."""
    import duckdb

    copies = stays // base_stays
    if copies * base_stays != stays:
        raise SystemExit(f"--sizes must be multiples of --base-stays ({base_stays})")
    if copies == 1:
        return base
    db = workdir / f"replicated-{base_stays}x{copies}.duckdb"
    if db.exists():
        return db
    partial = db.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    started = time.perf_counter()
    con = duckdb.connect(str(partial))
    con.execute(f"ATTACH '{base}' AS base (READ_ONLY)")
    con.execute(f"SET temp_directory = '{workdir / 'duckdb-spill'}'")
    tables = con.execute("SELECT table_name, list(column_name ORDER BY column_index) "
                         "FROM duckdb_columns() WHERE database_name = 'base' "
                         "AND schema_name = 'main' GROUP BY table_name ORDER BY 1").fetchall()
    for name, cols in tables:  # every table of the base, canonical or bookkeeping
        con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM base.main."{name}" LIMIT 0')
        if "person_id" not in cols:
            con.execute(f'INSERT INTO "{name}" SELECT * FROM base.main."{name}"')
            continue
        renamed = ", ".join(
            f"CASE WHEN {c} IS NULL THEN NULL ELSE {c} || '-r' || k END" if c in ID_COLUMNS
            else f'"{c}"' for c in cols)
        con.execute(f'INSERT INTO "{name}" SELECT {renamed} '
                    f'FROM base.main."{name}", range({copies}) AS r(k)')
        print(f"  {name}: copied x{copies}", file=sys.stderr, flush=True)
    con.execute("DETACH base")
    con.close()
    partial.rename(db)
    print(f"replicated {stays:,} stays in {time.perf_counter() - started:.0f} s -> {db}",
          file=sys.stderr)
    return db


def count(db: Path) -> tuple[int, int]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    stays = con.execute("SELECT count(*) FROM stay").fetchone()[0]
    rows = con.execute("SELECT count(*) FROM measurement").fetchone()[0]
    con.close()
    return int(stays), int(rows)


def screen_once(db: Path, out: Path) -> dict:
    out.unlink(missing_ok=True)
    before = os.getloadavg()[0]
    r = measure(hyperinflam_cmd("screen", "--db", str(db), "--out", str(out), "--quiet"))
    import duckdb

    rows = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
    out.unlink(missing_ok=True)
    return {"wall_seconds": round(r["seconds"], 1), "peak_mib": round(r["peak_mib"]),
            "evaluation_rows": int(rows), "load_before": round(before, 2),
            "load_after": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--base-stays", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2014)
    parser.add_argument("--batch-rows", type=int, default=None,
                        help="HYPERINFLAM_BATCH_ROWS of the screen (default: the setting's)")
    parser.add_argument("--runs", type=int, default=1, help="runs per size (median reported)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    (args.workdir / "duckdb-spill").mkdir(exist_ok=True)
    if args.batch_rows:
        os.environ["HYPERINFLAM_BATCH_ROWS"] = str(args.batch_rows)
    os.environ.setdefault("HYPERINFLAM_TEMP_DIRECTORY", str(args.workdir / "duckdb-spill"))
    from hyperinflam.screening.plans import batch_rows_setting

    base = base_db(args.workdir, args.base_stays, args.seed)
    out = args.workdir / "batches-screen.parquet"
    screen_once(base, out)  # warm-up: the compiled plan is then read from the cache
    results = []
    print("| stays | measurement rows | evaluation rows | wall time (s) | measurement rows/s | "
          "peak RSS (MiB) | load average before |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for stays in (int(s) for s in args.sizes.split(",")):
        db = replicated_db(args.workdir, base, args.base_stays, stays)
        n_stays, n_rows = count(db)
        runs = [screen_once(db, out) for _ in range(args.runs)]
        runs.sort(key=lambda r: r["wall_seconds"])
        r = {**runs[len(runs) // 2], "stays": n_stays, "measurement_rows": n_rows,
             "runs": [x["wall_seconds"] for x in runs], "batch_rows": batch_rows_setting(),
             "cpus": os.cpu_count()}
        results.append(r)
        with open(args.workdir / "batches-results.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(r) + "\n")
        print(f"| {n_stays:,} | {n_rows:,} | {r['evaluation_rows']:,} | {r['wall_seconds']:.1f} | "
              f"{n_rows / r['wall_seconds']:,.0f} | {r['peak_mib']:,} | {r['load_before']} |",
              flush=True)
    if len(results) >= 2:
        import numpy as np
        from scipy import stats

        fit = stats.linregress(np.log([r["stays"] for r in results]),
                               np.log([r["wall_seconds"] for r in results]))
        print(f"\ntime ~ stays^{fit.slope:.2f} over {len(results)} sizes (target <= 1.05); "
              f"{results[-1]['stays']:,} / {results[-2]['stays']:,} stays: "
              f"{results[-1]['wall_seconds'] / results[-2]['wall_seconds']:.1f}x the time for "
              f"{results[-1]['stays'] / results[-2]['stays']:.0f}x the stays; peak RSS "
              f"{max(r['peak_mib'] for r in results):,} MiB (target <= 6 GB)")


if __name__ == "__main__":
    main()
