"""The canonical tables written as a folder of Parquet datasets (``hyperinflam export parquet``).

The layout (manifest, one dataset per table, measurement partitioned by variable) and the reading
side are :mod:`hyperinflam.engine.storage`; this module writes it from any engine: DuckDB with its
bulk COPY, another backend (Spark) through ibis.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from hyperinflam.engine.storage import (COMPRESSION, MANIFEST_NAME, PARTITION_BY, build_manifest,
                                        ibis_schema)
from hyperinflam.errors import SourceError
from hyperinflam.schema import ALL_TABLES, Table


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _copy_duckdb(con, table: Table, target: Path, partition_by: tuple[str, ...]) -> int:
    """One table to ``target`` with DuckDB's COPY (bulk export, not clinical logic)."""
    raw = con.con
    name = table.name
    rows = int(raw.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])
    cols = ", ".join(f'"{c}"' for c in table.column_names)
    options = f"FORMAT parquet, COMPRESSION {COMPRESSION}"
    if partition_by and rows:
        keys = ", ".join(f'"{c}"' for c in partition_by)
        raw.execute(f"COPY (SELECT {cols} FROM \"{name}\") TO '{_sql_path(target)}' "
                    f"({options}, PARTITION_BY ({keys}), FILENAME_PATTERN 'data_{{i}}')")
    else:  # an empty table still gets one file holding its schema
        target.mkdir(parents=True, exist_ok=True)
        raw.execute(f"COPY (SELECT {cols} FROM \"{name}\") TO "
                    f"'{_sql_path(target / 'data_0.parquet')}' ({options})")
    return rows


def _copy_ibis(con, table: Table, target: Path, partition_by: tuple[str, ...]) -> int:
    """One table to ``target`` through ibis (another backend, e.g. Spark: executed there)."""
    expr = con.table(table.name).select(*table.column_names)
    rows = int(expr.count().execute())
    kwargs = {"partitionBy": list(partition_by)} if partition_by and rows else {}
    con.to_parquet_dir(expr, str(target), **kwargs)
    return rows


def export_parquet(con, out_dir: str | os.PathLike, *, overwrite: bool = False,
                   partition: bool = True, tables=ALL_TABLES, progress=None) -> dict:
    """Write the canonical tables (and the quarantine) of ``con`` to ``out_dir`` as Parquet.

    ``out_dir`` must not exist or be empty, unless ``overwrite`` (then an earlier hyperinflam
    export there is replaced; a folder that is not one is never deleted). Absent tables are
    written empty. Returns the manifest (rows per table), also written to ``_hyperinflam.json``.
    ``progress(table, done, total)``: called before each table (``done`` tables written).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SourceError(f"--out {out} is a file; name a folder for the Parquet tables.")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise SourceError(f"--out {out} is not empty; choose a new folder or pass --overwrite.")
        if not (out / MANIFEST_NAME).is_file():
            raise SourceError(f"--out {out} holds files that are not a hyperinflam export; it is "
                              f"not replaced. Choose a new or empty folder.")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    present = set(con.list_tables())
    is_duckdb = getattr(con, "name", "") == "duckdb"
    manifest_tables = {}
    tables = list(tables)
    for done, table in enumerate(tables):
        if progress is not None:
            progress(table.name, done, len(tables))
        partition_by = PARTITION_BY.get(table.name, ()) if partition else ()
        target = out / table.name
        if table.name not in present:
            target.mkdir(parents=True, exist_ok=True)
            pa_schema = ibis_schema(table).to_pyarrow()
            import pyarrow.parquet as pq

            pq.write_table(pa_schema.empty_table(), target / "data_0.parquet",
                           compression=COMPRESSION)
            rows, partition_by = 0, ()
        elif is_duckdb:
            rows = _copy_duckdb(con, table, target, partition_by)
        else:
            rows = _copy_ibis(con, table, target, partition_by)
        manifest_tables[table.name] = {"rows": rows, "partition_by": list(partition_by)}
    manifest = build_manifest(manifest_tables)
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
