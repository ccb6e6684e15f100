"""Benchmark: `hyperinflam demo` end to end (issue 3 target: under 15 s on 2 cores).

    python benchmarks/bench_demo.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _measure import hyperinflam_cmd, measure

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        r = measure(hyperinflam_cmd("demo", "--out", str(Path(tmp) / "out"),
                                    "--db", str(Path(tmp) / "demo.duckdb")))
    print(f"demo end to end: {r['seconds']:.1f} s, peak RSS {r['peak_mib']:.0f} MiB")
