"""The canonical tables as a folder of Parquet datasets, readable by DuckDB, Spark or a lakehouse.

Layout (``hyperinflam export parquet --db PATH --out DIR``)::

    DIR/_hyperinflam.json          manifest: format, version, tables, rows, partitioning
    DIR/person/data_0.parquet      one dataset (folder) per canonical table, quarantine included
    DIR/measurement/variable=crp/data_0.parquet   measurement partitioned by variable (hive style)
    ...

Columns and types are those of :mod:`hyperinflam.schema`. Timestamps are Parquet ``TIMESTAMP``
(microseconds) *not* adjusted to UTC, holding naive UTC; Spark reads them as ``timestamp_ntz``
and DuckDB as ``TIMESTAMP``, so no engine shifts them by a session time zone
(docs/stack.md, "Time zones"). Measurements are partitioned by ``variable`` because
every feature and study reads a few variables: both engines then read only those folders.

Registering such a folder (:func:`register_parquet`) on a connection creates one view per table,
with the canonical column order and types (partition columns come back as text and last; the
views fix that). A table with no dataset is an empty view of the right schema. This module takes
a connection and never opens one: :mod:`hyperinflam.engine` opens it (DuckDB or Spark) and calls
:func:`register_parquet` or :func:`register_catalog`.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from hyperinflam import __version__
from hyperinflam.errors import SourceError
from hyperinflam.schema import ALL_TABLES, CANONICAL_TABLES, Table

if TYPE_CHECKING:  # ibis is imported where it is used: checking a --db path needs none of it
    import ibis

MANIFEST_NAME = "_hyperinflam.json"
FORMAT_NAME = "hyperinflam-parquet"
FORMAT_VERSION = 1
#: Hive-style partition columns per table (a named setting; ``partition=False`` writes none).
PARTITION_BY: dict[str, tuple[str, ...]] = {"measurement": ("variable",)}
#: Parquet compression (zstd: small files, fast to read on both engines).
COMPRESSION = "zstd"

#: ibis type names of the canonical SQL types.
_IBIS_TYPES = {"VARCHAR": "string", "DATE": "date", "TIMESTAMP": "timestamp",
               "DOUBLE": "float64", "BOOLEAN": "boolean", "BIGINT": "int64"}
#: Spark SQL types of the canonical SQL types (naive timestamps are TIMESTAMP_NTZ on Spark).
_SPARK_TYPES = {"VARCHAR": "string", "DATE": "date", "TIMESTAMP": "timestamp_ntz",
                "DOUBLE": "double", "BOOLEAN": "boolean", "BIGINT": "bigint"}


def ibis_schema(table: Table) -> ibis.Schema:
    """The ibis schema of a canonical table (types from :mod:`hyperinflam.schema`)."""
    import ibis

    return ibis.schema({c.name: _IBIS_TYPES[c.sql_type] for c in table.columns})


def is_parquet_folder(path: str | os.PathLike) -> bool:
    """True for a folder written by :func:`hyperinflam.exports.parquet.export_parquet` (manifest,
    or at least a stay/ dataset)."""
    p = Path(path)
    return p.is_dir() and ((p / MANIFEST_NAME).is_file() or (p / "stay").is_dir())


def read_manifest(folder: str | os.PathLike) -> dict:
    """The folder's manifest ({} when absent, e.g. a folder written by another tool)."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SourceError(f"{path}: not a readable manifest ({exc}); export the folder again.") \
            from None
    if manifest.get("format") != FORMAT_NAME or manifest.get("version", 0) > FORMAT_VERSION:
        raise SourceError(
            f"{path}: format {manifest.get('format')!r} version {manifest.get('version')!r} is "
            f"not {FORMAT_NAME} version <= {FORMAT_VERSION}; upgrade hyperinflam or export again.")
    return manifest


def is_uri(text: str) -> bool:
    """A location Spark reads through a Hadoop file system (s3a://, abfss://, hdfs://, dbfs:/),
    not a local path."""
    return "://" in text or text.startswith("dbfs:")


def build_manifest(tables: dict[str, dict], written_by: str = "") -> dict:
    """The ``_hyperinflam.json`` manifest of a canonical Parquet folder: format, version, writer,
    time and the timestamp convention, and per table its rows and partition columns. One
    definition for every writer (``export parquet`` and ``load omop --engine spark``)."""
    return {
        "format": FORMAT_NAME, "version": FORMAT_VERSION,
        "written_by": f"hyperinflam {__version__}" + (f" ({written_by})" if written_by else ""),
        "written_at_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "timestamps": "naive UTC (Parquet TIMESTAMP, microseconds, not adjusted to UTC)",
        "tables": tables,
    }


# ---------------------------------------------------------------------------------------------
# Open
# ---------------------------------------------------------------------------------------------
def _canonical_view(raw: ibis.Table, table: Table) -> ibis.Table:
    """Columns in canonical order and type; a missing optional column becomes NULL."""
    import ibis

    cols = {}
    for column in table.columns:
        name, dtype = column.name, _IBIS_TYPES[column.sql_type]
        if name in raw.columns:
            cols[name] = raw[name].cast(dtype)
        elif column.required:
            raise SourceError(f"Parquet table '{table.name}' has no column '{name}' (columns: "
                              f"{', '.join(raw.columns)}); export it again with hyperinflam.")
        else:
            cols[name] = ibis.null(dtype)
    return raw.select(**cols)


def _spark_view(session, location: str, table: Table) -> None:
    """Temp view ``table.name`` over a Parquet dataset, canonical column order and types."""
    from pyspark.sql import functions as F

    frame = session.read.parquet(location)
    present = set(frame.columns)
    cols = []
    for c in table.columns:
        if c.name in present:
            cols.append(F.col(c.name).cast(_SPARK_TYPES[c.sql_type]).alias(c.name))
        elif c.required:
            raise SourceError(f"Parquet table '{table.name}' at {location} has no column "
                              f"'{c.name}'; export it again with hyperinflam.")
        else:
            cols.append(F.lit(None).cast(_SPARK_TYPES[c.sql_type]).alias(c.name))
    frame.select(*cols).createOrReplaceTempView(table.name)


def _has_parquet_files(path: Path) -> bool:
    return any(path.rglob("*.parquet"))


def register_parquet(con, folder: str | os.PathLike, *, tables=ALL_TABLES) -> dict[str, str]:
    """Create one view per canonical table of ``folder`` on ``con`` (DuckDB or Spark).

    Returns {table: what it was read from}. ``folder`` may be a URI that Spark reads
    (``s3a://``, ``abfss://``, ``dbfs:/``); DuckDB needs a local folder.
    """
    import ibis

    text = str(folder)
    local = None if is_uri(text) else Path(text)
    if local is not None:
        if not local.is_dir():
            raise SourceError(f"--db {local}: no such folder of Parquet tables.")
        read_manifest(local)  # format check
    spark = getattr(con, "name", "") == "pyspark"
    sources = {}
    for table in tables:
        name = table.name
        location = f"{text.rstrip('/')}/{name}"
        exists = _has_parquet_files(local / name) if local is not None else True
        if not exists:
            empty = ibis.memtable(ibis_schema(table).to_pyarrow().empty_table())
            con.create_view(name, empty, overwrite=True)
            sources[name] = "(absent: empty)"
            continue
        if spark:  # one temp view straight from the DataFrame reader (cheaper than via ibis)
            _spark_view(con._session, location, table)
            sources[name] = location
            continue
        else:
            raw = con.read_parquet(str(Path(location) / "**" / "*.parquet"),
                                   table_name=f"{name}__parquet", hive_partitioning=True)
        con.create_view(name, _canonical_view(raw, table), overwrite=True)
        sources[name] = location
    return sources


def register_catalog(con, database: str, *, tables=CANONICAL_TABLES) -> None:
    """Views named like the canonical tables over ``database.<table>`` of a Spark catalog
    (e.g. a Databricks schema written by ``hyperinflam export parquet`` or a pipeline)."""
    database = database.strip()
    if not database:
        raise SourceError("--db catalog:DATABASE needs a database name, e.g. catalog:picu.")
    for table in tables:
        try:
            raw = con.table(table.name, database=database)
        except Exception as exc:  # noqa: BLE001 - any catalog error, reported with the table
            raise SourceError(f"Spark catalog database '{database}' has no readable table "
                              f"'{table.name}' ({exc}).") from None
        con.create_view(table.name, _canonical_view(raw, table), overwrite=True)
