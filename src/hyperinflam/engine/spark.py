"""The distributed engine: Apache Spark (PySpark, optional extra ``spark``).

A SparkSession with hyperinflam's settings (session time zone UTC, quiet start-up in local mode,
scratch folders that are removed at exit) and the ibis PySpark backend on it. The canonical tables
are registered on it by :mod:`.storage` (a Parquet folder or a Spark catalog database).
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

from hyperinflam.errors import EngineError

#: Spark master used when none is given: every core of this machine.
DEFAULT_SPARK_MASTER = "local[*]"
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
    import ibis

    session = session if session is not None else spark_session(master, conf)
    return ibis.pyspark.connect(session)
