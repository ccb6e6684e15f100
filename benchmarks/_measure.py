"""Run a command in a child process and measure its wall time and peak resident memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

# A fresh wrapper process per measurement, so that RUSAGE_CHILDREN's peak is this command's own.
_WRAPPER = (
    "import json, resource, subprocess, sys\n"
    "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "print(json.dumps({'rc': p.returncode, 'out': p.stdout, 'err': p.stderr,\n"
    "  'maxrss_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
)


def measure(cmd: list[str]) -> dict:
    """Wall time (s) and peak RSS (MiB) of one command."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    r = json.loads(proc.stdout)
    if r["rc"] != 0:
        sys.stderr.write(r["out"] + r["err"])
        raise SystemExit(f"command failed ({r['rc']}): {' '.join(cmd)}")
    return {"seconds": wall, "peak_mib": r["maxrss_kib"] / 1024, "stdout": r["out"]}


def hyperinflam_cmd(*args: str) -> list[str]:
    return [os.path.join(os.path.dirname(sys.executable), "hyperinflam"), *args]
