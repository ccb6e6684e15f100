"""Connections to the engine that holds the canonical tables.

DuckDB, embedded, is the default: a database file the user names, else one in the user data
directory. Features, criteria and study extraction are written as ibis expressions against the
backend returned here, so that the same code can run on other ibis backends.
"""

from __future__ import annotations

import os
from pathlib import Path

import ibis
from ibis.backends.duckdb import Backend as DuckDBBackend
from platformdirs import user_data_dir

from hyperinflam.schema import ALL_TABLES

#: Memory DuckDB may use before it spills to disk (a named setting, overridable by environment).
DEFAULT_MEMORY_LIMIT = os.environ.get("HYPERINFLAM_MEMORY_LIMIT", "4GB")


def default_db_path() -> Path:
    """The embedded database used when the user names none: ``<user data dir>/hyperinflam.duckdb``."""
    return Path(user_data_dir("hyperinflam", appauthor=False)) / "hyperinflam.duckdb"


def resolve_db_path(db: str | os.PathLike | None) -> Path:
    return Path(db) if db else default_db_path()


def connect(db: str | os.PathLike | None = None, *, read_only: bool = False,
            create: bool = True) -> DuckDBBackend:
    """Open (and, unless ``read_only``, create) the canonical database.

    The session time zone is UTC: every timestamp in the canonical tables is naive UTC.
    """
    path = resolve_db_path(db)
    if read_only and not path.exists():
        raise FileNotFoundError(
            f"No hyperinflam database at {path}. Load data first, for example "
            f"'hyperinflam load csv FOLDER --db {path}' or 'hyperinflam demo'."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    con = ibis.duckdb.connect(str(path), read_only=read_only)
    raw = con.con
    raw.execute("SET TimeZone = 'UTC'")
    raw.execute(f"SET memory_limit = '{DEFAULT_MEMORY_LIMIT}'")
    if create and not read_only:
        create_canonical_tables(con)
    return con


def connect_memory() -> DuckDBBackend:
    """An in-memory database with the canonical tables (tests, small jobs)."""
    con = ibis.duckdb.connect()
    con.con.execute("SET TimeZone = 'UTC'")
    create_canonical_tables(con)
    return con


def create_canonical_tables(con: DuckDBBackend) -> None:
    for table in ALL_TABLES:
        con.con.execute(table.ddl())


def raw_sql(con: DuckDBBackend):
    """The underlying DuckDB connection, for bulk loading only (never for clinical logic)."""
    return con.con
