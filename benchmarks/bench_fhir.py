"""Benchmark: parse N FHIR R4 Observation lines of bulk NDJSON (issue 5: report rows per second).

The lines are real Synthea Observations (the test extract tests/data/synthea_r4_bundles_smart)
repeated with new ids and patients until N lines; generation is not timed. Three figures:

1. the fast path: orjson + validation of the fields used, staged into DuckDB
   (``hyperinflam.sources.fhir.parse.Staging``, the parse step of ``load fhir``);
2. the whole ``load_fhir`` (parse, reference resolution, codes, the shared validation pipeline,
   quarantine) into an empty database;
3. fhirclient 4.4.0 (FHIR R4 models, docs/stack.md) parsing a sample of the same lines, for scale.

    python benchmarks/bench_fhir.py [N]          # default 1,000,000
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

#: The Synthea Bundles of the test fixtures (tests/data/synthea_r4_bundles_smart/SOURCE.md).
DATA = (Path(__file__).resolve().parents[1] / "tests" / "data" / "synthea_r4_bundles_smart"
        / "bundles")


def _template() -> tuple[list[dict], list[dict]]:
    patients, observations = [], []
    for path in sorted(DATA.glob("*.json")):
        for entry in json.loads(path.read_text())["entry"]:
            r = entry["resource"]
            if r["resourceType"] == "Patient":
                patients.append(r)
            elif r["resourceType"] == "Observation":
                observations.append(r)
    return patients, observations


def write_ndjson(folder: Path, n: int) -> None:
    patients, observations = _template()
    n_pat = max(1, n // 100)
    with open(folder / "Patient.000.ndjson", "w") as handle:
        for i in range(n_pat):
            p = dict(patients[i % len(patients)], id=f"p{i}")
            handle.write(json.dumps(p) + "\n")
    with open(folder / "Observation.000.ndjson", "w") as handle:
        for i in range(n):
            o = dict(observations[i % len(observations)], id=f"o{i}",
                     subject={"reference": f"Patient/p{i % n_pat}"})
            o.pop("encounter", None)
            handle.write(json.dumps(o) + "\n")


def main(n: int) -> None:
    import duckdb
    from fhirclient.models.observation import Observation

    from hyperinflam.engine import connect
    from hyperinflam.sources.fhir.reader import load_fhir
    from hyperinflam.sources.fhir.parse import Staging

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ndjson"
        folder.mkdir()
        write_ndjson(folder, n)
        size_mb = (folder / "Observation.000.ndjson").stat().st_size / 1e6

        raw = duckdb.connect(str(Path(tmp) / "parse.duckdb"))
        staging = Staging(raw)
        staging.create()
        t0 = time.perf_counter()
        staging.add_ndjson(folder / "Observation.000.ndjson", "Observation.000.ndjson")
        staging.flush(force=True)
        parse_s = time.perf_counter() - t0
        rows = raw.execute("SELECT count(*) FROM _fhir_obs").fetchone()[0]
        raw.close()
        print(f"fast path (orjson, fields used, staged in DuckDB): {n:,} lines ({size_mb:.0f} MB), "
              f"{rows:,} value rows in {parse_s:.1f} s = {n / parse_s:,.0f} lines/s")

        con = connect(Path(tmp) / "load.duckdb")
        t0 = time.perf_counter()
        report = load_fhir(con, folder)
        load_s = time.perf_counter() - t0
        m = report.counts("measurement")
        print(f"whole load_fhir: {load_s:.1f} s = {n / load_s:,.0f} lines/s "
              f"(measurement read {m.read:,}, loaded {m.loaded:,}, quarantined {m.quarantined:,})")

        sample = min(n, 20_000)
        with open(folder / "Observation.000.ndjson") as handle:
            lines = [next(handle) for _ in range(sample)]
        t0 = time.perf_counter()
        for line in lines:
            Observation(json.loads(line), strict=True)
        fc_s = time.perf_counter() - t0
        print(f"fhirclient 4.4.0 models (json + strict R4 validation), {sample:,} lines: "
              f"{fc_s:.1f} s = {sample / fc_s:,.0f} lines/s (parse only, nothing staged)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
