"""The load log: every load leaves one row per canonical table in ``load_log`` (schema.py): when,
by which hyperinflam version, with which reader, from where, in which site time zone, and the
reconciliation counts. Every reader calls :func:`record_load` as its last step, on the
connection it loaded with, so a load that stops before the end leaves no entry.

``hyperinflam info`` shows the log; ``hyperinflam quarantine --clear-resolved`` reads each
source's time zone from it.
"""

from __future__ import annotations

from hyperinflam.sources import LoadReport

__all__ = ["record_load", "has_load_log"]


def has_load_log(raw) -> bool:
    """True when the database has a load_log table (databases written before it have none)."""
    return bool(raw.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'load_log' "
                            "AND NOT temporary").fetchone()[0])


def record_load(raw, report: LoadReport, *, reader: str, tz: str) -> int | None:
    """Append the report's tables to ``load_log`` as one load; returns its load_id (None when
    the database has no load_log table, e.g. opened read-only from an older version)."""
    from hyperinflam import __version__

    if not has_load_log(raw):
        return None
    load_id = raw.execute("SELECT coalesce(max(load_id), 0) + 1 FROM load_log").fetchone()[0]
    rows = [(load_id, __version__, reader, report.source, t.table, t.source, tz, t.read,
             t.loaded, t.already_present, t.quarantined) for t in report.tables]
    if rows:
        raw.executemany(
            "INSERT INTO load_log SELECT ?, now() AT TIME ZONE 'UTC', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?",
            rows)
    return load_id
