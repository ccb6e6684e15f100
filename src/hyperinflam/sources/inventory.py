"""What a database holds (``hyperinflam info``): its tables and row counts, the loads that wrote
it (``load_log``: when, reader, source, site time zone, hyperinflam version, counts), the domains
its sources record, and the quarantine counts.

Domains: the loads' own record of which domains their sources provide (``source_domains``,
:mod:`hyperinflam.sources.domains`), one row per domain: recorded by any load or not, why, and
the rows loaded; besides it the domains present in the data are counted (measurement variables,
drugs, organ-support kinds, conditions, events, weights), which says what was loaded but not
what a source could not provide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hyperinflam.schema import ALL_TABLES, BOOKKEEPING_TABLES
from hyperinflam.sources.load_log import has_load_log
from hyperinflam.sources.quarantine_rows import quarantine_counts

__all__ = ["Inventory", "inventory"]


@dataclass
class Inventory:
    path: Path
    kind: str  # 'DuckDB database' or 'Parquet folder'
    size_bytes: int
    tables: list[tuple[str, int]] = field(default_factory=list)  # (table, rows); -1 = absent
    loads: list[dict] = field(default_factory=list)  # one per load, oldest first
    has_load_log: bool = False
    written_by: list[str] = field(default_factory=list)  # hyperinflam versions
    domains_recorded: list[dict] = field(default_factory=list)  # the loads' own record
    domains_present: list[tuple[str, str, int]] = field(default_factory=list)  # domain, what, rows
    quarantine: list[tuple] = field(default_factory=list)  # quarantine_counts rows

    @property
    def n_stays(self) -> int:
        return dict(self.tables).get("stay", 0)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def _tables(raw) -> set[str]:
    """Tables and views of the database (a Parquet folder's tables are views)."""
    return {r[0] for r in raw.execute("SELECT table_name FROM duckdb_tables() UNION SELECT "
                                      "view_name FROM duckdb_views() WHERE NOT internal")
            .fetchall()}


def inventory(con, path: Path, *, manifest: dict | None = None) -> Inventory:
    """The :class:`Inventory` of an open database (``hyperinflam.engine.connect``)."""
    raw = con.con
    kind = "Parquet folder" if path.is_dir() else "DuckDB database"
    inv = Inventory(path=path, kind=kind, size_bytes=_size(path))
    present = _tables(raw)
    for table in ALL_TABLES + BOOKKEEPING_TABLES:
        n = raw.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0] \
            if table.name in present else -1
        inv.tables.append((table.name, n))
    inv.has_load_log = has_load_log(raw)
    if inv.has_load_log:
        rows = raw.execute("""SELECT load_id, max(loaded_at), any_value(hyperinflam_version),
                   any_value(reader), any_value(source), any_value(time_zone), sum(rows_read),
                   sum(rows_loaded), sum(rows_already_present), sum(rows_quarantined)
            FROM load_log GROUP BY load_id ORDER BY load_id""").fetchall()
        keys = ("load_id", "loaded_at", "version", "reader", "source", "time_zone", "read",
                "loaded", "already_present", "quarantined")
        inv.loads = [dict(zip(keys, r)) for r in rows]
        inv.written_by = sorted({load["version"] for load in inv.loads})
    if manifest and manifest.get("written_by"):
        inv.written_by = sorted(set(inv.written_by) | {str(manifest["written_by"]).split(" (")[0]
                                                       .removeprefix("hyperinflam ")})
    if "source_domains" in present:
        cursor = raw.execute("""SELECT domain, any_value(kind) AS kind,
                   bool_or(recorded) AS recorded,
                   string_agg(DISTINCT basis, '; ' ORDER BY basis) AS basis, sum(rows) AS rows
            FROM source_domains GROUP BY domain ORDER BY min(rowid)""")
        columns = [d[0] for d in cursor.description]
        inv.domains_recorded += [dict(zip(columns, r)) for r in cursor.fetchall()]
    inv.domains_present = _domains_present(raw, present)
    if "quarantine" in present:
        inv.quarantine = quarantine_counts(raw)
    return inv


def _domains_present(raw, present: set[str]) -> list[tuple[str, str, int]]:
    queries = {
        "measurement": "SELECT 'measurement', variable, count(*) FROM measurement GROUP BY 2",
        "drug_administration": "SELECT 'drug', drug_class || ': ' || drug, count(*) FROM "
                               "drug_administration GROUP BY 2",
        "organ_support": "SELECT 'organ support', support, count(*) FROM organ_support GROUP BY 2",
        "condition": "SELECT 'condition', CASE WHEN is_underlying THEN 'underlying disease' ELSE "
                     "'finding or diagnosis' END, count(*) FROM condition GROUP BY 2",
        "event": "SELECT 'event', event_type, count(*) FROM event GROUP BY 2",
        "stay": "SELECT 'weight', 'admission weight (stay.weight_kg)', count(weight_kg) FROM stay "
                "HAVING count(weight_kg) > 0",
    }
    parts = [sql for table, sql in queries.items() if table in present]
    if not parts:
        return []
    return [tuple(r) for r in raw.execute(" UNION ALL ".join(f"({p})" for p in parts)
                                          + " ORDER BY 1, 2").fetchall()]
