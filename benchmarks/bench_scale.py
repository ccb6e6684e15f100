"""Scaling benchmark: screening N synthetic stays on DuckDB and on Spark (issue 6; docs/scale.md).

Not a test (no timing assertions anywhere). For each size the data are generated once into
``--workdir`` (``hyperinflam.synth.database`` -> DuckDB file -> Parquet export; not timed), then the screen (every
criterion that builds, the default 24-h grid) runs in a fresh child process that writes its
result to Parquet on the engine (only results leave the engine). Measured: wall time of the child
(including engine start-up), evaluation rows and measurement rows per second, and peak memory
(VmHWM of the child and of its JVM, summed: an upper bound of the peak).

    python benchmarks/bench_scale.py --stays 10000 --engine duckdb
    python benchmarks/bench_scale.py --stays 100000 --engine duckdb --memory-limit 8GB
    python benchmarks/bench_scale.py --stays 10000 --engine spark --spark-master 'local[2]'
    python benchmarks/bench_scale.py --report --figures docs/performance-data

Results are appended to ``<workdir>/scale-results.jsonl``; ``--report`` prints the table for
docs/performance.md, fits log(time) = a + b log(stays) with scipy (b = the scaling exponent) and
writes ``<workdir>/scale.svg``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_WORKDIR = Path(os.environ.get("HYPERINFLAM_BENCH_DIR", "/tmp/hyperinflam-bench"))


# ---------------------------------------------------------------------------------------------
# Data (not timed)
# ---------------------------------------------------------------------------------------------
def prepare(workdir: Path, stays: int, seed: int) -> Path:
    """Synthetic cohort -> DuckDB file (``hyperinflam.synth.database``, chunk by chunk) -> Parquet for
    ``stays`` synthetic stays; returns the Parquet folder. Not timed."""
    from hyperinflam.engine import connect
    from hyperinflam.engine.storage import is_parquet_folder
    from hyperinflam.exports.parquet import export_parquet
    from hyperinflam.synth.database import synthesize_to_db

    base = workdir / f"stays-{stays}"
    parquet = base / "parquet"
    if is_parquet_folder(parquet):
        return parquet
    base.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    db = base / "site.duckdb"
    synthesize_to_db(db, stays, seed, overwrite=True, tmp_dir=base,
                     progress=lambda done, n: print(f"  prepared {done:,}/{n:,} stays",
                                                    file=sys.stderr, flush=True))
    con = connect(db)
    export_parquet(con, parquet, overwrite=True)
    con.disconnect()
    db.unlink()
    print(f"prepared {stays} stays in {time.perf_counter() - started:.0f} s -> {parquet}",
          file=sys.stderr)
    return parquet


# ---------------------------------------------------------------------------------------------
# The measured child
# ---------------------------------------------------------------------------------------------
def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _vm_hwm_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_screen(parquet: Path, engine: str, spark_master: str | None, spark_conf: list[str],
               out: Path) -> dict:
    """Screen every stay of ``parquet`` on ``engine``; write the result next to ``out``."""
    from hyperinflam.criteria import discover
    from hyperinflam.engine import open_engine
    from hyperinflam.screening.screen import screen

    started = time.perf_counter()
    con = open_engine(parquet, engine, spark_master if engine == "spark" else None,
                      spark_conf if engine == "spark" else None)
    opened = time.perf_counter() - started
    criteria = []
    for name in discover():
        try:
            screen(con, criteria=[name])
            criteria.append(name)
        except Exception as exc:  # noqa: BLE001 - a criterion still being written
            print(f"left out {name}: {exc}", file=sys.stderr)
    expr = screen(con, criteria=criteria)
    if engine == "spark":
        con.to_parquet_dir(expr, str(out))  # written by the executors
        written = con.read_parquet(str(out))
        rows = int(written.count().to_pyarrow().as_py())
    else:
        expr.to_parquet(out)
        rows = int(con.read_parquet(str(out)).count().to_pyarrow().as_py())
    measurements = int(con.table("measurement").count().to_pyarrow().as_py())
    stays = int(con.table("stay").count().to_pyarrow().as_py())
    peak = _vm_hwm_mib(os.getpid()) + sum(_vm_hwm_mib(p) for p in _descendants(os.getpid()))
    con.disconnect()
    return {"evaluation_rows": rows, "measurement_rows": measurements, "stays_seen": stays,
            "criteria": criteria, "engine_start_seconds": round(opened, 2),
            "peak_mib": round(peak, 1)}


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------
def measure(args) -> dict:
    parquet = prepare(args.workdir, args.stays, args.seed)
    out = args.workdir / f"stays-{args.stays}" / f"screen-{args.engine}"
    if out.is_dir():
        import shutil

        shutil.rmtree(out)
    out.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--child", "--parquet", str(parquet), "--engine",
           args.engine, "--out", str(out if args.engine == "spark" else out.with_suffix(".parquet"))]
    if args.spark_master:
        cmd += ["--spark-master", args.spark_master]
    for item in args.spark_conf or []:
        cmd += ["--spark-conf", item]
    env = dict(os.environ)
    if args.memory_limit:
        env["HYPERINFLAM_MEMORY_LIMIT"] = args.memory_limit
    env["HYPERINFLAM_TEMP_DIRECTORY"] = str(args.workdir / "duckdb-spill")
    load_before = os.getloadavg()
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-4000:])
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    result = {
        "engine": args.engine, "spark_master": args.spark_master if args.engine == "spark" else None,
        "stays": args.stays, "wall_seconds": round(wall, 2),
        "stays_per_second": round(args.stays / wall, 1),
        "evaluation_rows_per_second": round(child["evaluation_rows"] / wall, 1),
        "measurement_rows_per_second": round(child["measurement_rows"] / wall, 1),
        "memory_limit": args.memory_limit or os.environ.get("HYPERINFLAM_MEMORY_LIMIT", "4GB"),
        "cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
        **child,
    }
    with open(args.workdir / "scale-results.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(result) + "\n")
    return result


def report(workdir: Path, figures: Path | None = None) -> None:
    """The table for docs/performance.md, the fitted exponent per engine and the plot.

    ``figures``: folder for ``scale.svg`` and ``scale.csv`` (the measured figures; default the
    workdir; the repository keeps them in docs/performance-data/)."""
    figures = figures or workdir
    figures.mkdir(parents=True, exist_ok=True)
    import numpy as np
    from scipy import stats

    rows = [json.loads(line) for line in
            (workdir / "scale-results.jsonl").read_text(encoding="utf-8").splitlines() if line]
    every = {}
    for r in rows:  # the latest run per engine, size and DuckDB memory limit
        limit = r.get("memory_limit") if r["engine"] == "duckdb" else None
        every[(r["engine"], r["stays"], limit)] = r
    latest = {}  # per engine and size, the fastest of those (fitted and drawn as the line)
    for (engine, stays, _), r in sorted(every.items(), key=lambda kv: -kv[1]["wall_seconds"]):
        latest[(engine, stays)] = r
    others = [(k, r) for k, r in every.items() if latest[k[:2]] is not r]
    print("| engine | stays | measurement rows | evaluation rows | wall time (s) | "
          "measurement rows/s | peak memory (MiB) | DuckDB memory limit |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    import csv

    with open(figures / "scale.csv", "w", newline="", encoding="utf-8") as handle:
        w = csv.writer(handle)
        w.writerow(["engine", "stays", "measurement_rows", "evaluation_rows", "wall_seconds",
                    "measurement_rows_per_second", "peak_mib", "load_average_1min_before",
                    "memory_limit"])
        for (engine, stays, _), r in sorted(every.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            w.writerow([engine if engine == "duckdb" else f"spark {r.get('spark_master') or ''}".strip(),
                        stays, r["measurement_rows"], r["evaluation_rows"], r["wall_seconds"],
                        round(r["measurement_rows_per_second"]), round(r["peak_mib"]),
                        (r.get("load_average_before") or [""])[0],
                        r.get("memory_limit") if engine == "duckdb" else ""])
    for (engine, stays, limit), r in sorted(every.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        label = engine if engine == "duckdb" else f"spark {r.get('spark_master') or ''}".strip()
        print(f"| {label} | {stays:,} | {r['measurement_rows']:,} | {r['evaluation_rows']:,} | "
              f"{r['wall_seconds']:.1f} | {r['measurement_rows_per_second']:,.0f} | "
              f"{r['peak_mib']:,.0f} | {limit or ''} |")
    for engine in sorted({e for e, _ in latest}):
        pts = sorted((s, r["wall_seconds"]) for (e, s), r in latest.items() if e == engine)
        if len(pts) >= 2:
            fit = stats.linregress(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]))
            print(f"{engine}: time ~ stays^{fit.slope:.2f} (log-log least squares over "
                  f"{len(pts)} sizes)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for engine in sorted({e for e, _ in latest}):
        pts = sorted((s, r["wall_seconds"]) for (e, s), r in latest.items() if e == engine)
        label = engine
        if len(pts) >= 2:
            slope = stats.linregress(np.log([p[0] for p in pts]), np.log([p[1] for p in pts])).slope
            label = f"{engine} (time ~ stays^{slope:.2f})"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    for (engine, stays, limit), r in others:
        ax.plot([stays], [r["wall_seconds"]], marker="s", linestyle="none", fillstyle="none",
                color="grey", label=f"{engine}, memory limit {limit}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("synthetic PICU stays")
    ax.set_ylabel("screening wall time (s)")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(figures / "scale.svg", metadata={"Date": None})
    print(f"plot: {figures / 'scale.svg'}; figures: {figures / 'scale.csv'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stays", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2014)
    parser.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb")
    parser.add_argument("--spark-master", default=None)
    parser.add_argument("--spark-conf", action="append")
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory limit, e.g. 8GB")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--figures", type=Path, default=None,
                        help="with --report: folder for scale.svg and scale.csv "
                             "(e.g. docs/performance-data)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--parquet", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_screen(args.parquet, args.engine, args.spark_master,
                                    args.spark_conf or [], args.out)))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.report:
        report(args.workdir, args.figures)
        return
    print(json.dumps(measure(args), indent=2))


if __name__ == "__main__":
    main()
