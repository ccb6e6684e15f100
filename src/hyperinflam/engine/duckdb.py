"""The embedded engine: DuckDB databases holding the canonical tables.

A database file the user names, else one in the user data directory; a folder of Parquet datasets
written by ``hyperinflam export parquet`` opens read-only, as views (:mod:`.storage`). Every
connection runs with its time zone set to UTC (every canonical timestamp is naive UTC) and the
memory limit below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from hyperinflam.errors import EngineError
from hyperinflam.schema import ALL_TABLES

if TYPE_CHECKING:  # ibis is imported where a connection is opened (start-up time of the CLI)
    import duckdb
    from ibis.backends.duckdb import Backend as DuckDBBackend

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


def default_db_path() -> Path:
    """The embedded database used when the user names none: ``<user data dir>/hyperinflam.duckdb``."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("hyperinflam", appauthor=False)) / "hyperinflam.duckdb"


def resolve_db_path(db: str | os.PathLike | None) -> Path:
    return Path(db) if db else default_db_path()


def _configure_duckdb(con: DuckDBBackend, *, memory_limit: str | None = None) -> None:
    _configure_raw(con.con, memory_limit=memory_limit)


def _configure_raw(raw: duckdb.DuckDBPyConnection, *, memory_limit: str | None = None) -> None:
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
    import ibis

    from hyperinflam.engine import storage

    path = resolve_db_path(db)
    if path.is_dir():
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


def connect_file(db: str | os.PathLike | None = None, *,
                 memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """A bare DuckDB connection on an existing database file, read-only and configured like
    :func:`connect` (UTC, memory limit), without ibis: what a cached plan
    (:mod:`hyperinflam.engine.plans`) runs on. Raises FileNotFoundError when there is no file;
    a folder (Parquet tables) is not accepted here (use :func:`connect`)."""
    import duckdb

    path = resolve_db_path(db)
    if not path.is_file():
        raise FileNotFoundError(
            f"No hyperinflam database at {path}. Load data first, for example "
            f"'hyperinflam load csv FOLDER --db {path}' or 'hyperinflam demo'."
        )
    raw = duckdb.connect(str(path), read_only=True)
    _configure_raw(raw, memory_limit=memory_limit)
    return raw


def connect_memory() -> DuckDBBackend:
    """An in-memory database with the canonical tables (tests, small jobs)."""
    import ibis

    con = ibis.duckdb.connect()
    con.con.execute("SET TimeZone = 'UTC'")
    create_canonical_tables(con)
    return con


def connect_duckdb_views(*, memory_limit: str | None = None) -> DuckDBBackend:
    """An empty in-memory DuckDB configured like :func:`connect` (UTC, memory limit), without
    the canonical tables: for views over Parquet (:mod:`hyperinflam.engine.storage`)."""
    import ibis

    con = ibis.duckdb.connect()
    _configure_duckdb(con, memory_limit=memory_limit)
    return con


def create_canonical_tables(con: DuckDBBackend) -> None:
    for table in ALL_TABLES:
        con.con.execute(table.ddl())


def raw_sql(con: DuckDBBackend):
    """The underlying DuckDB connection, for bulk loading only (never for clinical logic)."""
    return con.con
