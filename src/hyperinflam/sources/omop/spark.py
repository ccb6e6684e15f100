"""``hyperinflam load omop SOURCE --db OUT_DIR --engine spark``: the OMOP reader on Apache Spark.

SOURCE is a folder of OMOP tables as Parquet (``person.parquet``, or a folder ``person/`` of
Parquet files; any case), a local path or a URI Spark reads (``s3a://``, ``abfss://``,
``hdfs://``, ``dbfs:/``), or ``catalog:DATABASE`` (the OMOP tables of a Spark catalog / Hive
metastore database). OUT_DIR, new or empty, receives the canonical tables and the quarantine as
Parquet datasets with a manifest, exactly the layout of ``hyperinflam export parquet``
(:mod:`hyperinflam.engine.storage`), which ``screen`` / ``study run --engine spark --db OUT_DIR``
then read.

There is one copy of the mapping and validation logic: the DuckDB SQL of
:mod:`hyperinflam.sources.omop.mapping` and :mod:`hyperinflam.sources.ingest`, run on Spark through
:mod:`hyperinflam.sources.omop.spark_sql` (sqlglot transpilation plus a few rewrites). Executors read
the OMOP tables, validate, convert and write the canonical rows and the quarantine; only the
reconciliation counts (per table and reason) come back to the driver.

Times stay naive UTC: the load runs in a new session (sharing the SparkContext) with the session
time zone UTC, and every timestamp column of the OMOP tables is read as ``timestamp_ntz`` (a
Parquet timestamp marked UTC-adjusted gives its UTC wall-clock time).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hyperinflam.engine import CATALOG_PREFIX
from hyperinflam.engine.storage import (
    COMPRESSION,
    MANIFEST_NAME,
    PARTITION_BY,
    build_manifest,
    is_uri,
)
from hyperinflam.errors import SourceError
from hyperinflam.schema import ALL_TABLES, Table
from hyperinflam.sources import LoadReport
from hyperinflam.sources.omop.access import OmopSource, find_omop_files
from hyperinflam.sources.omop.mapping import check_options, load_source, read_codes
from hyperinflam.sources.omop.spark_sql import (
    SPARK_TYPES,
    SparkLoadConnection,
    literal_frame,
    spark_identifier,
)
from hyperinflam.vocabulary import Vocabulary

__all__ = ["load_omop_spark", "check_source", "check_output", "SOURCE_HELP"]

#: Prefix of the Spark temporary views over the OMOP tables (one per table).
VIEW_PREFIX = "_omop_src_"
SOURCE_HELP = ("a folder of OMOP Parquet tables (person.parquet or person/*.parquet, ...) or "
               "catalog:DATABASE")


class _Output:
    """The output folder (local path or URI) through Hadoop's FileSystem, as Spark sees it."""

    def __init__(self, session, location: str):
        self.location = location.rstrip("/") if is_uri(location) else str(Path(location))
        jvm = session._jvm
        self._path = jvm.org.apache.hadoop.fs.Path(self.location)
        self._fs = self._path.getFileSystem(session._jsc.hadoopConfiguration())
        self._jvm = jvm

    def check_new(self) -> None:
        self._existed = bool(self._fs.exists(self._path))
        if self._existed:
            if not self._fs.getFileStatus(self._path).isDirectory():
                raise SourceError(f"--db {self.location} is a file; with --engine spark, --db "
                                  f"names a new or empty folder for the canonical Parquet tables.")
            if len(self._fs.listStatus(self._path)):
                raise SourceError(f"--db {self.location} is not empty; with --engine spark the "
                                  f"load writes a new folder of canonical Parquet tables: choose "
                                  f"a new or empty folder.")

    def table(self, name: str) -> str:
        return f"{self.location}/{name}"

    def write_text(self, name: str, text: str) -> None:
        stream = self._fs.create(self._jvm.org.apache.hadoop.fs.Path(self.table(name)), True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()

    def remove(self) -> None:
        """Remove what the load wrote (an empty folder that existed before is kept)."""
        if not getattr(self, "_existed", False):
            self._fs.delete(self._path, True)
        elif self._fs.exists(self._path):
            for status in self._fs.listStatus(self._path):
                self._fs.delete(status.getPath(), True)


def check_source(source: str | os.PathLike) -> dict[str, Path]:
    """The OMOP Parquet tables of a local SOURCE folder ({table: file or folder}), checked
    before Spark starts; {} for a URI or catalog:DATABASE (checked by Spark). Raises
    :class:`SourceError` naming the path and the fix."""
    text = str(source)
    if text.startswith(CATALOG_PREFIX) or is_uri(text):
        return {}
    path = Path(text)
    if not path.is_dir():
        what = "is a file" if path.exists() else "does not exist"
        raise SourceError(f"{path} {what}: with --engine spark, SOURCE is {SOURCE_HELP} (to load "
                          f"a DuckDB file or PostgreSQL, leave out --engine spark).")
    found = find_omop_files(path)
    tables = {name: file for name, file in found.items()
              if file.is_dir() or file.suffix.lower() == ".parquet"}
    if "person" not in tables:
        csv_hint = (" (CSV is read by the DuckDB engine only: leave out --engine spark, or convert "
                    "the tables to Parquet)") if "person" in found else ""
        raise SourceError(f"{path}: no OMOP person table{csv_hint}. Give {SOURCE_HELP}, holding "
                          f"at least person and visit_occurrence or visit_detail.")
    return tables


def check_output(out_dir: str | os.PathLike) -> None:
    """A local --db folder must be new or empty (checked before Spark starts)."""
    text = str(out_dir)
    if is_uri(text):
        return
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise SourceError(f"--db {path} is a file; with --engine spark, --db names a new or empty "
                          f"folder for the canonical Parquet tables.")
    if path.is_dir() and any(path.iterdir()):
        raise SourceError(f"--db {path} is not empty; with --engine spark the load writes a new "
                          f"folder of canonical Parquet tables: choose a new or empty folder.")


def _ntz(frame):
    """Every timestamp column as timestamp_ntz (a UTC-adjusted one: its UTC wall clock)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampType

    cols = [F.col(f"`{f.name}`").cast("timestamp_ntz").alias(f.name)
            if isinstance(f.dataType, TimestampType) else F.col(f"`{f.name}`")
            for f in frame.schema.fields]
    return frame.select(*cols)


def _attach(session, source: str) -> tuple[dict[str, tuple[str, list[str]]], str]:
    """One temporary view per OMOP table of SOURCE -> ({table: (view, columns)}, label)."""
    text = str(source)
    frames: dict[str, object] = {}
    if text.startswith(CATALOG_PREFIX):
        database = text[len(CATALOG_PREFIX):].strip()
        if not database:
            raise SourceError("catalog:DATABASE needs a database name, e.g. catalog:omop.")
        try:
            names = [t.name for t in session.catalog.listTables(database)]
        except Exception as exc:  # noqa: BLE001 - any catalog error, reported with the fix
            raise SourceError(f"{text}: the Spark catalog has no readable database "
                              f"'{database}' ({str(exc).strip().splitlines()[0]}). Give "
                              f"{SOURCE_HELP}.") from None
        for name in names:
            frames[name.lower()] = session.table(f"`{database}`.`{name}`")
        label = text
    elif is_uri(text):
        jvm = session._jvm
        root = jvm.org.apache.hadoop.fs.Path(text)
        fs = root.getFileSystem(session._jsc.hadoopConfiguration())
        if not fs.exists(root) or not fs.getFileStatus(root).isDirectory():
            raise SourceError(f"{text}: no such folder. Give {SOURCE_HELP}.")
        for status in fs.listStatus(root):
            name = status.getPath().getName()
            stem = name[:-len(".parquet")] if name.lower().endswith(".parquet") else name
            if name.startswith((".", "_")) or not (status.isDirectory()
                                                   or name.lower().endswith(".parquet")):
                continue
            frames.setdefault(stem.lower(), session.read.parquet(status.getPath().toString()))
        label = text
    else:
        for name, file in check_source(text).items():
            frames[name] = session.read.parquet(str(file))
        label = str(Path(text))
    if "person" not in frames:
        raise SourceError(f"{label}: no OMOP person table. Give {SOURCE_HELP}, holding at least "
                          f"person and visit_occurrence or visit_detail.")
    tables = {}
    for name, frame in frames.items():
        view = VIEW_PREFIX + spark_identifier(name)
        _ntz(frame).createOrReplaceTempView(view)
        written = {c.lower(): (c, _DUCKDB_TYPE.get(t, t.upper())) for c, t in frame.dtypes}
        tables[name] = (view, [c.lower() for c in frame.columns], written)
    return tables, label


#: Spark type names as DuckDB names them (OmopSource.oddities reads VARCHAR and DATE).
_DUCKDB_TYPE = {"string": "VARCHAR", "date": "DATE", "timestamp": "TIMESTAMP WITH TIME ZONE",
                "timestamp_ntz": "TIMESTAMP", "bigint": "BIGINT", "int": "INTEGER",
                "double": "DOUBLE", "float": "FLOAT"}


def _empty(session, table: Table):
    return literal_frame(session, [(c.name, SPARK_TYPES[c.sql_type]) for c in table.columns], [])


def load_omop_spark(session, source: str | os.PathLike, out_dir: str | os.PathLike, *,
                    vocabulary: Vocabulary | None = None, codes: str | Path | None = None,
                    tz: str = "UTC", options=None) -> tuple[LoadReport, dict]:
    """Load an OMOP CDM on Spark into a new canonical Parquet folder ``out_dir``.

    ``session`` is a SparkSession (:func:`hyperinflam.engine.spark_session`); the load runs in a
    new session sharing its SparkContext (its own temporary views, time zone UTC). Returns the
    reconciliation report and the manifest written to ``out_dir``. Raises :class:`SourceError`
    with the fix for a wrong SOURCE, a non-empty ``out_dir`` or a missing table or column; a
    failed load removes what it wrote.
    """
    from hyperinflam.sources.ingest import load_settings

    options = check_options(options)
    vocab = load_settings(vocabulary, tz)
    code_rows = read_codes(codes, vocab)
    work = session.newSession()
    work.conf.set("spark.sql.session.timeZone", "UTC")
    # Parquet written by pyarrow / DuckDB: naive timestamps are timestamp_ntz.
    work.conf.set("spark.sql.parquet.inferTimestampNTZ.enabled", "true")
    check_output(out_dir)
    tables, label = _attach(work, str(source))
    out = _Output(work, str(out_dir))
    out.check_new()
    written: set[str] = set()

    def view(table: Table):
        if table.name not in written:
            return _empty(work, table)
        schema = ", ".join(f"`{c.name}` {SPARK_TYPES[c.sql_type]}" for c in table.columns)
        frame = work.read.schema(schema).parquet(out.table(table.name))  # no schema inference
        return frame.select(*table.column_names)

    def write(table: Table, frame) -> None:
        writer = frame.write.mode("append").option("compression", COMPRESSION)
        partition_by = PARTITION_BY.get(table.name, ())
        if partition_by:  # one task per partition value: few, large files
            writer = frame.repartition(*partition_by).write.mode("append") \
                .option("compression", COMPRESSION).partitionBy(*partition_by)
        writer.parquet(out.table(table.name))
        written.add(table.name)

    raw = SparkLoadConnection(work, write=write, view=view)
    con = _LoadTarget(raw)
    try:
        src = OmopSource(raw, "", label, tables=tables)
        report = load_source(con, src, vocab, code_rows, tz, options)
        rows: dict[str, int] = {t.name: 0 for t in ALL_TABLES}
        for counts in report.tables:
            rows[counts.table] += counts.loaded
            rows["quarantine"] += counts.quarantined
        manifest_tables = {}
        for table in ALL_TABLES:
            partition_by = list(PARTITION_BY.get(table.name, ())) if rows[table.name] else []
            if table.name not in written:
                _empty(work, table).coalesce(1).write.option("compression", COMPRESSION) \
                    .parquet(out.table(table.name))
            manifest_tables[table.name] = {"rows": rows[table.name], "partition_by": partition_by}
        manifest = build_manifest(manifest_tables, "load omop --engine spark")
        out.write_text(MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
    except BaseException:
        out.remove()  # never leave a half-written folder behind
        raise
    finally:
        raw.close()
    return report, manifest


class _LoadTarget:
    """What the loaders take as ``con``: only its ``.con`` (the SQL connection) is used."""

    def __init__(self, raw: SparkLoadConnection):
        self.con = raw
