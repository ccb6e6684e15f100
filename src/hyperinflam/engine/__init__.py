"""Connections to the engine that holds the canonical tables: DuckDB (embedded) or Spark.

DuckDB, embedded, is the default: a database file the user names, else one in the user data
directory. A folder of Parquet datasets written by ``hyperinflam export parquet``
(:mod:`hyperinflam.engine.storage`) is accepted wherever a database is: it opens read-only, as
views. Apache Spark (PySpark, optional extra ``spark``) is the distributed engine: it reads the
canonical tables from such a Parquet folder or from a Spark catalog database.

Features, criteria and study extraction are written once, as ibis expressions, against the
backend returned here; the same code runs on both engines (``docs/scale.md``). Every timestamp in
the canonical tables is naive UTC, and both engines run with their session time zone set to UTC
(``hyperinflam.schema``; ``shared/stack-notes.md``, "Time zones").
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import ibis
from ibis.backends.duckdb import Backend as DuckDBBackend
from platformdirs import user_data_dir

from hyperinflam.errors import EngineError
from hyperinflam.schema import ALL_TABLES

#: Memory DuckDB may use before it spills to disk (a named setting, overridable by environment).
#: The process peaks about 0.7 GB above it: screening 100,000 stays peaks at 3.7 GB with 3GB
#: (docs/performance.md).
DEFAULT_MEMORY_LIMIT = os.environ.get("HYPERINFLAM_MEMORY_LIMIT", "3GB")
#: Memory DuckDB may use while loading (``hyperinflam load ...``): loads spill to disk rather than
#: hold millions of staged rows in memory; measured in docs/performance.md (10,000 stays, 3.4 M
#: measurement rows: 1.8 GB peak). Overridable by environment.
LOAD_MEMORY_LIMIT = os.environ.get("HYPERINFLAM_LOAD_MEMORY_LIMIT", "1.5GB")
#: Folder where DuckDB spills when it reaches its memory limit (default: DuckDB's own choice,
#: ``<database>.tmp`` next to a file database). Overridable by environment.
DEFAULT_TEMP_DIRECTORY = os.environ.get("HYPERINFLAM_TEMP_DIRECTORY")

#: The engines ``open_engine`` knows.
ENGINES = ("duckdb", "spark")
#: Spark master used when none is given: every core of this machine.
DEFAULT_SPARK_MASTER = "local[*]"
#: Prefix of a ``--db`` value naming a Spark catalog database instead of a path.
CATALOG_PREFIX = "catalog:"
#: Spark settings applied before the user's ``--spark-conf`` (which override them). The session
#: time zone is UTC because every canonical timestamp is naive UTC. Partition column types are not
#: inferred (``variable=...`` folders stay text). Adaptive execution coalesces small shuffles.
SPARK_DEFAULT_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}
#: A local driver also gets ``-Dlog4j2.configurationFile`` (``spark-log4j2.properties``: errors
#: only while it starts) in this option; a value of the user's ``--spark-conf`` is appended to
#: it, or replaces it when it names its own log4j configuration file. (This option also takes
#: precedence over one set in a site's spark-defaults.conf.)
JAVA_OPTIONS = "spark.driver.extraJavaOptions"
#: Extra defaults for a local master only (a cluster keeps its own): driver memory, few shuffle
#: partitions for one machine, no web UI. Driver memory is overridable by environment.
SPARK_LOCAL_CONF: dict[str, str] = {
    "spark.driver.memory": os.environ.get("HYPERINFLAM_SPARK_DRIVER_MEMORY", "4g"),
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
}


# ---------------------------------------------------------------------------------------------
# DuckDB (the embedded default)
# ---------------------------------------------------------------------------------------------
def default_db_path() -> Path:
    """The embedded database used when the user names none: ``<user data dir>/hyperinflam.duckdb``."""
    return Path(user_data_dir("hyperinflam", appauthor=False)) / "hyperinflam.duckdb"


def resolve_db_path(db: str | os.PathLike | None) -> Path:
    return Path(db) if db else default_db_path()


def _configure_duckdb(con: DuckDBBackend, *, memory_limit: str | None = None) -> None:
    raw = con.con
    raw.execute("SET TimeZone = 'UTC'")
    raw.execute(f"SET memory_limit = '{memory_limit or DEFAULT_MEMORY_LIMIT}'")
    if DEFAULT_TEMP_DIRECTORY:
        raw.execute(f"SET temp_directory = '{DEFAULT_TEMP_DIRECTORY}'")


def connect(db: str | os.PathLike | None = None, *, read_only: bool = False,
            create: bool = True, memory_limit: str | None = None) -> DuckDBBackend:
    """Open (and, unless ``read_only``, create) the canonical database.

    ``db`` may also be a folder of Parquet datasets (``hyperinflam export parquet``): it opens
    read-only, as views in an in-memory DuckDB. The session time zone is UTC: every timestamp in
    the canonical tables is naive UTC.
    """
    path = resolve_db_path(db)
    if path.is_dir():
        from hyperinflam.engine import storage

        if not read_only:
            if not (path / storage.MANIFEST_NAME).exists():
                raise EngineError(f"--db {path} is a folder; give a DuckDB database file, for "
                                  f"example '--db {path / 'hyperinflam.duckdb'}'.")
            raise EngineError(
                f"{path} is a folder of Parquet tables, which is read-only here. Load into a "
                f"DuckDB file instead (for example '--db site.duckdb'), then 'hyperinflam export "
                f"parquet --db site.duckdb --out {path}'.")
        con = connect_duckdb_views()
        storage.register_parquet(con, path)
        return con
    if read_only and not path.exists():
        raise FileNotFoundError(
            f"No hyperinflam database at {path}. Load data first, for example "
            f"'hyperinflam load csv FOLDER --db {path}' or 'hyperinflam demo'."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    con = ibis.duckdb.connect(str(path), read_only=read_only)
    _configure_duckdb(con, memory_limit=memory_limit)
    if create and not read_only:
        create_canonical_tables(con)
    return con


def connect_memory() -> DuckDBBackend:
    """An in-memory database with the canonical tables (tests, small jobs)."""
    con = ibis.duckdb.connect()
    con.con.execute("SET TimeZone = 'UTC'")
    create_canonical_tables(con)
    return con


def connect_duckdb_views(*, memory_limit: str | None = None) -> DuckDBBackend:
    """An empty in-memory DuckDB configured like :func:`connect` (UTC, memory limit), without
    the canonical tables: for views over Parquet (:mod:`hyperinflam.engine.storage`)."""
    con = ibis.duckdb.connect()
    _configure_duckdb(con, memory_limit=memory_limit)
    return con


def create_canonical_tables(con: DuckDBBackend) -> None:
    for table in ALL_TABLES:
        con.con.execute(table.ddl())


def raw_sql(con: DuckDBBackend):
    """The underlying DuckDB connection, for bulk loading only (never for clinical logic)."""
    return con.con


# ---------------------------------------------------------------------------------------------
# Spark (the distributed engine)
# ---------------------------------------------------------------------------------------------
def parse_spark_conf(items: Iterable[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``["spark.executor.memory=8g", ...]`` (the ``--spark-conf KEY=VALUE`` options) -> dict."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return {str(k): str(v) for k, v in items.items()}
    conf: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise EngineError(
                f"--spark-conf '{item}' is not KEY=VALUE; write for example "
                f"--spark-conf spark.executor.memory=8g")
        conf[key.strip()] = value.strip()
    return conf


def _is_local(master: str) -> bool:
    return master.startswith("local")


def _spark_scratch() -> Path:
    """A temporary folder for Spark's warehouse and spill files, removed at exit."""
    scratch = Path(tempfile.mkdtemp(prefix="hyperinflam-spark-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return scratch


def spark_conf_for(master: str, conf: Mapping[str, str] | None = None,
                   scratch: Path | None = None) -> dict[str, str]:
    """The Spark settings hyperinflam uses: defaults, then local-mode defaults, then ``conf``.

    The warehouse directory (``spark.sql.warehouse.dir``) and, in local mode, the spill folder
    (``spark.local.dir``) live in ``scratch`` (a temporary folder), so nothing is written to the
    working directory.
    """
    out = dict(SPARK_DEFAULT_CONF)
    if _is_local(master):
        out.update(SPARK_LOCAL_CONF)
        out[JAVA_OPTIONS] = f"-Dlog4j2.configurationFile={_spark_log_config()}"
    if scratch is not None:
        out["spark.sql.warehouse.dir"] = str(scratch / "warehouse")
        if _is_local(master):
            out["spark.local.dir"] = str(scratch / "local")
    user = dict(conf or {})
    if JAVA_OPTIONS in out and JAVA_OPTIONS in user and not _LOG_CONFIG_OPTION.search(
            user[JAVA_OPTIONS]):
        user[JAVA_OPTIONS] = f"{out[JAVA_OPTIONS]} {user[JAVA_OPTIONS]}"
    out.update(user)
    return out


#: A log4j configuration file named in Java options, by either property name log4j 2 reads
#: (``log4j2.configurationFile``, or ``log4j.configurationFile`` as Spark's docs write it).
_LOG_CONFIG_OPTION = re.compile(r"-Dlog4j2?\.configurationFile=")


def _spark_log_config() -> str:
    """``file:`` URI of the packaged log4j2 settings for a local Spark driver
    (``spark-log4j2.properties``: errors only while the session starts)."""
    return Path(__file__).with_name("spark-log4j2.properties").resolve().as_uri()


def _quiet_pyspark_error_logs() -> None:
    """PySpark 4 logs every SQL error it raises as a JSON record with the whole JVM stack trace
    (loggers ``SQLQueryContextLogger`` / ``DataFrameQueryContextLogger``), even when the caller
    catches it; hyperinflam reports its errors itself, so those two loggers only log CRITICAL.
    Process-wide: a program that embeds hyperinflam and wants those records sets the loggers'
    level back (``logging.getLogger("SQLQueryContextLogger").setLevel(logging.ERROR)``)."""
    try:
        from pyspark.logger import PySparkLogger
    except ImportError:  # PySpark < 4 has no such loggers
        return
    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)


def spark_session(master: str | None = None, conf: Mapping[str, str] | None = None, *,
                  app_name: str = "hyperinflam"):
    """Start (or join) a SparkSession with hyperinflam's settings (:func:`spark_conf_for`).

    Raises :class:`EngineError` with the fix when PySpark or Java is missing.
    """
    master = master or DEFAULT_SPARK_MASTER
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EngineError(
            "The Spark engine needs PySpark: pip install 'hyperinflam[spark]' "
            "(pyspark 4.0, Java 17).") from None
    if _is_local(master) and shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise EngineError("The Spark engine needs Java 17 (set JAVA_HOME or put 'java' on PATH).")
    settings = spark_conf_for(master, conf, scratch=_spark_scratch())
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - py4j / JVM start-up errors, reported with the fix
        raise EngineError(f"Spark did not start with master '{master}': {exc}. Check "
                          f"--spark-master and --spark-conf, and that Java 17 is installed.") from exc
    session.sparkContext.setLogLevel(os.environ.get("HYPERINFLAM_SPARK_LOG_LEVEL", "FATAL"))
    _quiet_pyspark_error_logs()
    # A session that already existed keeps its static settings; set the runtime ones again.
    session.conf.set("spark.sql.session.timeZone", "UTC")
    return session


def connect_spark(master: str | None = None, conf: Mapping[str, str] | None = None, *,
                  session=None):
    """An ibis PySpark backend on a new or given SparkSession (time zone UTC)."""
    session = session if session is not None else spark_session(master, conf)
    return ibis.pyspark.connect(session)


def engine_name(con) -> str:
    """'duckdb' or 'spark' (or the ibis backend name of another engine)."""
    name = getattr(con, "name", "")
    return "spark" if name == "pyspark" else name


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
        return connect(db, read_only=True)

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
