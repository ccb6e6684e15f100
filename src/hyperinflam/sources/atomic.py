"""All or nothing: one load changes the database in one transaction, at its end.

Every reader (CSV, OMOP, FHIR, MEDS) runs its whole load inside :func:`load_transaction`. Until
the load has read and checked everything, nothing is written to the database: the rows a load
adds to a canonical table go to a temporary table of their own (``_hi_new_<table>``), and the
canonical table's name is, for this connection only, a temporary view of the table in the
database plus those rows, so that every later step of the same load (stays checked against the
persons just read, a reload's duplicates) sees them as if they were written. The quarantine is
shadowed by a temporary table holding this load's rows; the earlier rows a load replaces are
noted (:func:`forget_rows`). At the end one transaction deletes the replaced quarantine rows and
appends every new row, and commits.

So a load that stops for any reason (a bad file after good ones, a reader error, an engine
error, an interrupt, the process killed) leaves the database exactly as it was: nothing was
written before the final transaction, and DuckDB rolls back a transaction that did not commit,
also after a crash. A second try never reads "loaded 0 / already present N" because of a first
try that failed.

Why not one transaction around the whole load: DuckDB keeps every table created inside a
transaction in memory until it ends, and a load stages and checks each file in large
intermediate tables; a 10,000-stay folder then ran out of the load's memory limit. Temporary
tables created outside a transaction are spilled to disk, so the load's memory stays bounded.

On another engine (the Spark load writes a new folder, removed when the load fails) and for a
single table loaded on its own (:func:`hyperinflam.sources.ingest.load_staged` outside a
reader), :func:`in_load_transaction` is false and the pipeline writes the table directly, in
one transaction per table.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import duckdb

from hyperinflam.schema import CANONICAL_TABLES

__all__ = ["append_rows", "cleanup", "forget_rows", "in_load_transaction", "load_transaction",
           "on_commit", "table_transaction"]

#: Tables a load replaces rows of (per source) and appends to: shadowed by a temporary table.
SHADOWED: tuple[str, ...] = ("quarantine",)
PENDING_PREFIX = "_hi_new_"
FORGET_PREFIX = "_hi_forget_"


@dataclass
class _Load:
    prefix: str  # "catalog"."schema" of the database's own tables
    canonical: list[str] = field(default_factory=list)  # canonical tables with pending rows
    shadowed: list[str] = field(default_factory=list)
    at_commit: list[Callable[[], None]] = field(default_factory=list)

    def real(self, table: str) -> str:
        return f"{self.prefix}.{_ident(table)}"


#: ``id()`` of a raw DuckDB connection -> its open load.
_OPEN: dict[int, _Load] = {}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def in_load_transaction(raw) -> bool:
    """True while :func:`load_transaction` is open on ``raw``."""
    return id(raw) in _OPEN


@contextmanager
def load_transaction(raw) -> Iterator[None]:
    """Run a load on the DuckDB connection ``raw`` so that it changes the database at its end,
    in one transaction, or not at all (any exception is re-raised unchanged). A nested use joins
    the outer load; on a connection that is not DuckDB's (Spark) it does nothing."""
    if id(raw) in _OPEN or not isinstance(raw, duckdb.DuckDBPyConnection):
        yield
        return
    catalog, schema = raw.execute("SELECT current_database(), current_schema()").fetchone()
    state = _Load(prefix=f"{_ident(catalog)}.{_ident(schema)}")
    own = {name for (name,) in raw.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
        "AND NOT temporary", [catalog, schema]).fetchall()}
    _OPEN[id(raw)] = state
    try:
        for table in (t.name for t in CANONICAL_TABLES if t.name in own):
            state.canonical.append(table)
            pending = PENDING_PREFIX + table
            raw.execute(f"CREATE OR REPLACE TEMP TABLE {pending} AS SELECT * FROM "
                        f"{state.real(table)} LIMIT 0")
            raw.execute(f"CREATE OR REPLACE TEMP VIEW {_ident(table)} AS SELECT * FROM "
                        f"{state.real(table)} UNION ALL SELECT * FROM {pending}")
        for table in (t for t in SHADOWED if t in own):
            state.shadowed.append(table)
            for name in (table, FORGET_PREFIX + table):
                raw.execute(f"CREATE OR REPLACE TEMP TABLE {_ident(name)} AS SELECT * FROM "
                            f"{state.real(table)} LIMIT 0")
        yield
        _commit(raw, state)
    finally:
        del _OPEN[id(raw)]
        _drop_shadows(raw, state)


def _drop_shadows(raw, state: _Load) -> None:
    drops = [f"DROP VIEW IF EXISTS temp.main.{_ident(t)}" for t in state.canonical]
    drops += [f"DROP TABLE IF EXISTS temp.main.{_ident(PENDING_PREFIX + t)}"
              for t in state.canonical]
    drops += [f"DROP TABLE IF EXISTS temp.main.{_ident(n)}" for t in state.shadowed
              for n in (t, FORGET_PREFIX + t)]
    cleanup(raw, drops)


def on_commit(raw, step: Callable[[], None]) -> None:
    """Run ``step`` inside the load's final transaction, after its rows are written (it sees the
    database's own tables, this load's rows included; what it writes is committed with them, or
    not at all). Outside a load it runs at once. For bookkeeping written once per load (the
    load log)."""
    state = _OPEN.get(id(raw))
    if state is None:
        step()
    else:
        state.at_commit.append(step)


def _commit(raw, state: _Load) -> None:
    """The one transaction that writes the load: replaced rows out, new rows in."""
    columns = {t: [c for (c,) in raw.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = 'temp' AND "
        "table_name = ? ORDER BY column_index", [t]).fetchall()] for t in state.shadowed}
    with table_transaction(raw):
        for table in state.shadowed:
            same = " AND ".join(f"r.{_ident(c)} IS NOT DISTINCT FROM f.{_ident(c)}"
                                for c in columns[table])
            raw.execute(f"DELETE FROM {state.real(table)} r USING "
                        f"temp.main.{_ident(FORGET_PREFIX + table)} f WHERE {same}")
            raw.execute(f"INSERT INTO {state.real(table)} SELECT * FROM temp.main.{_ident(table)}")
        for table in state.canonical:
            raw.execute(f"INSERT INTO {state.real(table)} SELECT * FROM "
                        f"temp.main.{_ident(PENDING_PREFIX + table)}")
        if state.at_commit:  # they see the database's own tables, this load's rows included
            _drop_shadows(raw, state)
            for step in state.at_commit:
                step()


@contextmanager
def table_transaction(raw) -> Iterator[None]:
    """One DuckDB transaction: commit at the end, roll back on any exception (re-raised)."""
    raw.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        _rollback(raw)
        raise
    try:
        raw.execute("COMMIT")
    except BaseException:
        _rollback(raw)  # a commit that fails has written nothing
        raise


def append_rows(raw, table: str, columns: Sequence[str], select_sql: str) -> None:
    """Append the rows of ``select_sql`` to a canonical table: inside a load to its pending
    rows (written at the load's end), else to the table itself."""
    target = PENDING_PREFIX + table if in_load_transaction(raw) else table
    raw.execute(f"INSERT INTO {target} ({', '.join(columns)}) {select_sql}")


def forget_rows(raw, table: str, where_sql: str, params: Sequence = ()) -> None:
    """Delete the rows of ``table`` (the quarantine) that ``where_sql`` selects. Inside a load,
    this load's own rows go at once and the database's rows at the load's end."""
    state = _OPEN.get(id(raw))
    if state is not None and table in state.shadowed:
        raw.execute(f"INSERT INTO temp.main.{_ident(FORGET_PREFIX + table)} SELECT * FROM "
                    f"{state.real(table)} WHERE {where_sql}", list(params))
    raw.execute(f"DELETE FROM {_ident(table)} WHERE {where_sql}", list(params))


def _rollback(raw) -> None:
    try:
        raw.execute("ROLLBACK")
    except duckdb.TransactionException:  # already rolled back (an aborted commit)
        pass


def cleanup(raw, statements: Iterable[str]) -> None:
    """Run clean-up statements (``DROP TABLE IF EXISTS ...``, ``SET ...``) in a ``finally``. When
    an earlier DuckDB error has aborted a transaction, it is rolled back first (nothing of it
    can be committed any more), so that the clean-up runs and the error that stopped the load
    is the one the caller sees."""
    for sql in statements:
        try:
            raw.execute(sql)
        except duckdb.TransactionException:
            _rollback(raw)
            raw.execute(sql)
