"""Connections to the engine that holds the canonical tables: DuckDB (embedded) or Spark.

DuckDB, embedded, is the default: a database file the user names, else one in the user data
directory. A folder of Parquet datasets written by ``hyperinflam export parquet``
(:mod:`hyperinflam.engine.storage`) is accepted wherever a database is: it opens read-only, as
views. Apache Spark (PySpark, optional extra ``spark``) is the distributed engine: it reads the
canonical tables from such a Parquet folder or from a Spark catalog database.

Features, criteria and study extraction are written once, as ibis expressions, against the
backend returned here; the same code runs on both engines (``docs/scale.md``). Every timestamp in
the canonical tables is naive UTC, and both engines run with their session time zone set to UTC
(``hyperinflam.schema``; docs/stack.md, "Time zones").
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from hyperinflam.engine.duckdb import (DEFAULT_MEMORY_LIMIT, DEFAULT_TEMP_DIRECTORY,
                                       LOAD_MEMORY_LIMIT, check_database_path, connect,
                                       connect_duckdb_views, connect_file, connect_memory,
                                       create_canonical_tables, default_db_path,
                                       missing_canonical_tables, not_hyperinflam_message, raw_sql,
                                       resolve_db_path)
from hyperinflam.engine.spark import (DEFAULT_SPARK_MASTER, JAVA_OPTIONS, SPARK_DEFAULT_CONF,
                                      SPARK_LOCAL_CONF, connect_spark, parse_spark_conf,
                                      spark_conf_for, spark_session)
from hyperinflam.errors import EngineError

__all__ = [
    "CATALOG_PREFIX", "DEFAULT_MEMORY_LIMIT", "DEFAULT_SPARK_MASTER", "DEFAULT_TEMP_DIRECTORY",
    "ENGINES", "JAVA_OPTIONS", "LOAD_MEMORY_LIMIT", "SPARK_DEFAULT_CONF", "SPARK_LOCAL_CONF",
    "check_database_path", "connect", "connect_duckdb_views", "connect_file", "connect_memory",
    "connect_spark",
    "create_canonical_tables", "default_db_path", "engine_name", "open_engine",
    "parse_spark_conf", "raw_sql", "resolve_db_path", "spark_conf_for", "spark_session",
    "write_result_file",
]

#: The engines ``open_engine`` knows.
ENGINES = ("duckdb", "spark")
#: Prefix of a ``--db`` value naming a Spark catalog database instead of a path.
CATALOG_PREFIX = "catalog:"


def engine_name(con) -> str:
    """'duckdb' or 'spark' (or the ibis backend name of another engine)."""
    name = getattr(con, "name", "")
    return "spark" if name == "pyspark" else name


def write_result_file(con, expr, out: Path, kind: str) -> None:
    """Write a result table (a screen, not raw rows) to ONE local .csv or .parquet file.

    DuckDB streams it to the file; on Spark the result is collected to the driver as Arrow and
    written there (ibis' Spark writer would make a folder of part files instead of a file).
    """
    if engine_name(con) == "duckdb":
        (expr.to_csv if kind == "csv" else expr.to_parquet)(out)
        return
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    table = expr.to_pyarrow()
    if kind == "csv":
        pa_csv.write_csv(table, out)
    else:
        pq.write_table(table, out)


def open_engine(db: str | os.PathLike | None = None, engine: str = "duckdb",
                spark_master: str | None = None,
                spark_conf: Iterable[str] | Mapping[str, str] | None = None):
    """Open the canonical tables read-only on ``engine`` for ``screen``, ``study run`` and the like.

    * ``engine='duckdb'``: ``db`` is a DuckDB file (default: :func:`default_db_path`) or a
      Parquet folder; same as ``connect(db, read_only=True)``.
    * ``engine='spark'``: ``db`` is a Parquet folder (local path or any URI Spark reads, e.g.
      ``s3a://bucket/picu``, ``dbfs:/...``) or ``catalog:DATABASE`` (the canonical tables of a
      Spark catalog database, e.g. on Databricks). ``spark_master`` defaults to ``local[*]``;
      ``spark_conf`` is a mapping or a list of ``KEY=VALUE`` texts (``--spark-conf``).

    Errors the user can fix raise :class:`EngineError` (or FileNotFoundError) naming the fix.
    """
    engine = (engine or "duckdb").strip().lower()
    if engine not in ENGINES:
        raise EngineError(f"--engine '{engine}' is not known: use one of {', '.join(ENGINES)}.")
    if engine == "duckdb":
        if spark_conf or spark_master:
            raise EngineError("--spark-master and --spark-conf need --engine spark.")
        con = connect(db, read_only=True)
        missing = missing_canonical_tables(set(con.list_tables()))
        if missing:
            con.disconnect()
            raise EngineError(not_hyperinflam_message(resolve_db_path(db), missing))
        return con

    from hyperinflam.engine import storage

    conf = parse_spark_conf(spark_conf)
    text = str(db) if db is not None else ""
    if text.startswith(CATALOG_PREFIX):
        con = connect_spark(spark_master, conf)
        storage.register_catalog(con, text[len(CATALOG_PREFIX):])
        return con
    if not text:
        raise EngineError(
            "--engine spark needs --db: a Parquet folder written by 'hyperinflam export parquet' "
            "or catalog:DATABASE (a Spark catalog database with the canonical tables).")
    if not storage.is_uri(text):
        path = Path(text)
        if path.is_file():
            raise EngineError(
                f"{path} is a DuckDB file; Spark reads Parquet. Export it first: 'hyperinflam "
                f"export parquet --db {path} --out {path.with_suffix('')}-parquet', then "
                f"'--db {path.with_suffix('')}-parquet --engine spark'.")
        if not storage.is_parquet_folder(path):
            raise EngineError(
                f"{path} is not a Parquet folder of canonical tables (no {storage.MANIFEST_NAME} "
                f"and no stay/ dataset). Write one with 'hyperinflam export parquet'.")
    con = connect_spark(spark_master, conf)
    storage.register_parquet(con, text)
    return con
