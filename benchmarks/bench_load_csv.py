"""Benchmark: load N synthetic stays from CSV (issue 3 target: 10,000 stays under 30 s, peak
memory under 2 GB on 2 cores). Generation is not timed.

    python benchmarks/bench_load_csv.py [N]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _measure import hyperinflam_cmd, measure

if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        csv_dir = Path(tmp) / "csv"
        gen = measure(hyperinflam_cmd("synth", "--stays", str(n), "--seed", "1", "--out", str(csv_dir)))
        rows = sum(1 for _ in open(csv_dir / "measurement.csv")) - 1
        size_mb = sum(p.stat().st_size for p in csv_dir.glob("*.csv")) / 1e6
        r = measure(hyperinflam_cmd("load", "csv", str(csv_dir), "--db", str(Path(tmp) / "b.duckdb")))
    print(f"generate {n} stays: {gen['seconds']:.1f} s ({rows:,} measurement rows, {size_mb:.0f} MB CSV)")
    print(f"load csv: {r['seconds']:.1f} s, {rows / r['seconds']:,.0f} measurement rows/s, "
          f"peak RSS {r['peak_mib']:.0f} MiB")
