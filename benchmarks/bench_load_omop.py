"""Benchmark: load N OMOP measurement rows (default 1,000,000) from Parquet and from PostgreSQL.

The rows are the Eunomia Synthea27Nj measurements of the test extract (tests/data; 2,415 rows of 8
persons) repeated with new ids (real concepts, units, DECIMAL values), written to a temporary
Parquet folder (and a temporary PostgreSQL schema with
--postgres). Nothing generated is kept. Usage:
    python benchmarks/bench_load_omop.py [--rows 1000000] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from importlib import resources
from pathlib import Path

import duckdb

from hyperinflam.engine import connect_memory
from hyperinflam.sources.omop.access import load_postgres_extension
from hyperinflam.sources.omop.mapping import load_omop

#: The Eunomia extract of the test fixtures (tests/data/eunomia_synthea27nj/SOURCE.md).
EUNOMIA = Path(__file__).resolve().parents[1] / "tests" / "data" / "eunomia_synthea27nj" / "omop"
#: The official CDM 5.4 DDL shipped in the package (hyperinflam/omop_cdm54/SOURCE.md).
DDL = Path(str(resources.files("hyperinflam") / "omop_cdm54" / "ddl"))


def build(folder: Path, rows: int) -> None:
    con = duckdb.connect()
    source_rows = con.execute(f"SELECT count(*) FROM read_parquet('{EUNOMIA}/measurement.parquet')"
                              ).fetchone()[0]
    for f in EUNOMIA.glob("*.parquet"):
        if f.stem != "measurement":
            shutil.copy(f, folder / f.name)
    con.execute(f"""COPY (
        SELECT m.* REPLACE (CAST(row_number() OVER () AS INTEGER) AS measurement_id,
                          m.measurement_datetime + INTERVAL (k) MINUTE AS measurement_datetime)
        FROM read_parquet('{EUNOMIA}/measurement.parquet') m,
             range(CAST(ceil({rows} / {source_rows}) AS BIGINT)) r(k)
        LIMIT {rows}) TO '{folder}/measurement.parquet' (FORMAT parquet)""")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--postgres", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build(folder, args.rows)
        con = connect_memory()
        t = time.perf_counter()
        report = load_omop(con, folder)
        m = [x for x in report.tables if x.table == "measurement"][0]
        print(f"parquet: {m.read:,} measurement rows read, {m.loaded:,} loaded, "
              f"{m.quarantined:,} quarantined in {time.perf_counter() - t:.1f} s (whole CDM load)")
        if args.postgres:
            schema = f"hi_bench_{uuid.uuid4().hex[:8]}"
            pg = duckdb.connect()
            load_postgres_extension(pg)
            pg.execute(f"ATTACH '{args.postgres}' AS pg (TYPE postgres)")
            ddl = (DDL / "postgresql" / "omopcdm_postgresql_5.4_ddl.sql").read_text()
            pg.execute(f"CALL postgres_execute('pg', 'CREATE SCHEMA {schema}')")
            pg.execute("CALL postgres_execute('pg', ?)", [ddl.replace("@cdmDatabaseSchema", schema)])
            pg.execute("CALL pg_clear_cache()")
            try:
                for f in folder.glob("*.parquet"):
                    pg.execute(f"INSERT INTO pg.{schema}.{f.stem} BY NAME SELECT * FROM read_parquet('{f}')")
                con = connect_memory()
                t = time.perf_counter()
                report = load_omop(con, args.postgres, schema=schema)
                m = [x for x in report.tables if x.table == "measurement"][0]
                print(f"postgres: {m.read:,} measurement rows read, {m.loaded:,} loaded in "
                      f"{time.perf_counter() - t:.1f} s (whole CDM load)")
            finally:
                pg.execute(f"CALL postgres_execute('pg', 'DROP SCHEMA {schema} CASCADE')")


if __name__ == "__main__":
    main()
