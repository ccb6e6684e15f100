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
from hyperinflam.schema import ALL_TABLES, BOOKKEEPING_TABLES

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


#: The bytes every DuckDB database file holds at offset 8 (after the header checksum).
DUCKDB_MAGIC = b"DUCK"
#: What the first bytes of other files a user may give as --db say they are.
_OTHER_FILE_KINDS = ((b"SQLite format 3", "a SQLite database (the web application's state "
                      "database is one)"), (b"PAR1", "a Parquet file"), (b"PK", "a ZIP archive"))


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in head


def check_database_path(db: str | os.PathLike | None) -> Path:
    """The path of ``--db`` when it can hold the canonical tables, else :class:`EngineError`.

    A DuckDB database file, a folder of canonical Parquet tables (``export parquet``) or a path
    where nothing exists yet (a database to create) pass. A folder of anything else, or a file
    that is not a DuckDB database (a CSV file, a SQLite file, an empty file), is one message
    naming the path and what to give instead, never a DuckDB error or a silent empty result.
    """
    from hyperinflam.engine import storage

    path = resolve_db_path(db)
    if path.is_dir():
        if not storage.is_parquet_folder(path):
            raise EngineError(
                f"--db {path} is a folder, not a database: give the DuckDB database file that "
                f"'hyperinflam load' wrote (for example '--db {path / 'hyperinflam.duckdb'}'), or a "
                f"folder of Parquet tables written by 'hyperinflam export parquet'.")
        return path
    if path.exists():
        try:
            with open(path, "rb") as handle:
                head = handle.read(16)
        except OSError as exc:
            raise EngineError(f"--db {path} cannot be read ({exc.strerror or exc}).") from None
        if head[8:12] != DUCKDB_MAGIC:
            kind = next((what for magic, what in _OTHER_FILE_KINDS if head.startswith(magic)),
                        "an empty file" if not head else
                        "a text file" if _is_text(head) else "a file of another kind")
            hint = (" To load a CSV folder: 'hyperinflam load csv FOLDER --db site.duckdb'."
                    if path.suffix.lower() in (".csv", ".tsv", ".txt") else "")
            raise EngineError(
                f"--db {path} is not a DuckDB database ({kind}): give the database file that "
                f"'hyperinflam load' or 'hyperinflam demo' wrote, or a new file name to create "
                f"one.{hint}")
    return path


def connect(db: str | os.PathLike | None = None, *, read_only: bool = False,
            create: bool = True, memory_limit: str | None = None) -> DuckDBBackend:
    """Open (and, unless ``read_only``, create) the canonical database.

    ``db`` may also be a folder of Parquet datasets (``hyperinflam export parquet``): it opens
    read-only, as views in an in-memory DuckDB. The session time zone is UTC: every timestamp in
    the canonical tables is naive UTC. A ``db`` that is neither (another folder, a file that is
    not a DuckDB database) or a database another process holds open for writing raises
    :class:`EngineError` naming the fix.
    """
    import duckdb
    import ibis

    from hyperinflam.engine import storage

    path = check_database_path(db)
    if path.is_dir():
        if not read_only:
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
    try:
        con = ibis.duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        raise EngineError(_open_error(path, exc)) from None
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

    path = check_database_path(db)
    if not path.is_file():
        raise FileNotFoundError(
            f"No hyperinflam database at {path}. Load data first, for example "
            f"'hyperinflam load csv FOLDER --db {path}' or 'hyperinflam demo'."
        )
    try:
        raw = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        raise EngineError(_open_error(path, exc)) from None
    missing = missing_canonical_tables(
        {r[0] for r in raw.execute("SELECT table_name FROM duckdb_tables()").fetchall()})
    if missing:
        raw.close()
        raise EngineError(not_hyperinflam_message(path, missing))
    _configure_raw(raw, memory_limit=memory_limit)
    return raw


def missing_canonical_tables(present: set[str]) -> list[str]:
    """The canonical tables (schema.py) that are not among ``present``."""
    from hyperinflam.schema import CANONICAL_TABLES

    return [t.name for t in CANONICAL_TABLES if t.name not in present]


def not_hyperinflam_message(path: Path, missing: list[str]) -> str:
    """The message for a DuckDB database that lacks canonical tables."""
    from hyperinflam.schema import CANONICAL_TABLES

    what = ("none of hyperinflam's tables" if len(missing) == len(CANONICAL_TABLES)
            else f"no {', '.join(missing)} table")
    return (f"--db {path} is a DuckDB database but not one of hyperinflam's: it has {what}. Load "
            f"data into it first ('hyperinflam load csv FOLDER --db {path}'); an OMOP CDM "
            f"database is a source: 'hyperinflam load omop {path} --db site.duckdb'.")


def _open_error(path: Path, exc: Exception) -> str:
    if "lock" in str(exc).lower():
        return (f"--db {path} is open for writing in another process (a load, or 'hyperinflam "
                f"serve' while loading); wait for it to finish, or stop it, and run the command "
                f"again.")
    return f"--db {path} cannot be opened as a DuckDB database: {exc}"


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
    """The canonical tables, the quarantine and the load log (each only if absent)."""
    for table in ALL_TABLES + BOOKKEEPING_TABLES:
        con.con.execute(table.ddl())


def raw_sql(con: DuckDBBackend):
    """The underlying DuckDB connection, for bulk loading only (never for clinical logic)."""
    return con.con
