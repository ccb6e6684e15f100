"""Reading the quarantine back: counts by table and reason, the rows with their source and fix,
and the rows whose source row has since been loaded (``hyperinflam quarantine``).

The counts are those of the loads' reconciliations: each load replaces its sources' earlier
quarantine rows, so the ``quarantine`` table holds, per source, exactly what that source's last
load reported. Everything here is one SQL statement on the database (set-based; no row passes
through Python), on a DuckDB database or a Parquet folder opened with :func:`hyperinflam.engine.connect`.

**Resolved rows.** A quarantined row is resolved when the canonical table now holds the row it
was meant to become: the same identifying columns (person_id; stay_id; person, time, variable
and the value as recorded, whatever its unit, so a corrected unit resolves the row and another
value of the same variable at the same time does not; person, drug (or an alias) and start;
person, support and start; person, condition and onset; person, event type and time),
its times read in the time zone of the load that quarantined it (``load_log``; UTC when the
database has no log). Rows quarantined because the same row was already there
(``duplicate_row``, ``conflicting_duplicate``, ``conflicts_with_existing``) are never "resolved":
their key was loaded before them by definition, and they stay until their source is reloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from hyperinflam.sources.ingest import LAYOUT, _q, register_vocabulary
from hyperinflam.sources.load_log import has_load_log
from hyperinflam.sources.quarantine import REASON_PRIORITY, REASONS
from hyperinflam.sources.timeparse import time_sql
from hyperinflam.vocabulary import Vocabulary

__all__ = ["QuarantineFilter", "quarantine_counts", "quarantine_rows_sql", "resolved_sql",
           "clear_resolved", "NEVER_RESOLVED", "TABLE_ORDER"]

#: Reasons whose row's key was in the canonical table before the row was read.
NEVER_RESOLVED = ("duplicate_row", "conflicting_duplicate", "conflicts_with_existing",
                  "duplicate_value", "malformed_line")
#: Tables in load order (the order of the reconciliation).
TABLE_ORDER = tuple(spec.table for spec in LAYOUT)


@dataclass(frozen=True)
class QuarantineFilter:
    """Which quarantine rows: by reason(s), target table(s) and source file (the file's name,
    its path, or the end of it, e.g. 'measurement.csv' or 'omop#measurement')."""

    reasons: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    file: str | None = None

    def where_sql(self, alias: str = "q") -> str:
        parts = ["TRUE"]
        if self.reasons:
            parts.append(f"{alias}.reason IN ({', '.join(_q(r) for r in self.reasons)})")
        if self.tables:
            parts.append(f"{alias}.target_table IN ({', '.join(_q(t) for t in self.tables)})")
        if self.file:
            f = self.file.replace("\\", "/")
            parts.append(f"(replace({alias}.source_file, '\\', '/') = {_q(f)} "
                         f"OR ends_with(replace({alias}.source_file, '\\', '/'), {_q('/' + f)}) "
                         f"OR ends_with({alias}.source_file, {_q('#' + f)}))")
        return " AND ".join(parts)


def _order_sql(alias: str = "q") -> str:
    tables = " ".join(f"WHEN {_q(t)} THEN {i}" for i, t in enumerate(TABLE_ORDER))
    reasons = " ".join(f"WHEN {_q(r)} THEN {i}" for r, i in REASON_PRIORITY.items())
    return (f"CASE {alias}.target_table {tables} ELSE {len(TABLE_ORDER)} END, "
            f"CASE {alias}.reason {reasons} ELSE {len(REASONS)} END, {alias}.reason")


def _file_name_sql(col: str) -> str:
    """The file name of a source: the part after the last '/' (an OMOP or MEDS source keeps
    its '#table', e.g. 'omop#measurement')."""
    return f"regexp_extract({col}, '([^/\\\\]*)$', 1)"


def quarantine_counts(raw, where: QuarantineFilter = QuarantineFilter()) -> list[tuple]:
    """(table, reason, rows, sources, example 'file:line') per table and reason, in load order
    and reason priority (the order of the load's reconciliation)."""
    return raw.execute(f"""
        SELECT q.target_table, q.reason, count(*) AS n, count(DISTINCT q.source_file) AS files,
               arg_min({_file_name_sql('q.source_file')} || ':' || coalesce(CAST(q.source_line AS
               VARCHAR), '?'), q.source_line) AS example
        FROM quarantine q WHERE {where.where_sql()}
        GROUP BY q.target_table, q.reason
        ORDER BY {_order_sql()}""").fetchall()


def quarantine_rows_sql(where: QuarantineFilter = QuarantineFilter()) -> str:
    """SQL of the quarantine rows: table, source file, line or key, reason, the fix (detail)
    and the row as received, in load order, then file and line."""
    return f"""SELECT q.target_table AS "table", q.source_file AS source_file,
               q.source_line AS line_or_key, q.reason, q.detail AS fix, q.raw AS row_as_received
        FROM quarantine q WHERE {where.where_sql()}
        ORDER BY {_order_sql()}, q.source_file, q.source_line"""


def _j(field: str) -> str:
    return f"json_extract_string(q.raw, {_q('$.' + field)})"


def _lower(field: str) -> str:
    return f"lower(trim({_j(field)}))"


def _matches(table: str, tz: str) -> str:
    """Condition: the canonical ``table`` holds the row quarantine row ``q`` was meant to be."""
    def t(field: str) -> str:
        return time_sql(_j(field), tz)

    def named(column: str, field: str) -> str:  # a drug or support by its name or an alias
        name = _lower(field)
        return (f"(c.{column} = {name} OR c.{column} IN (SELECT drug FROM drug_names_frame "
                f"WHERE name_key = {name}))")

    conditions = {
        "person": f"c.person_id = {_j('person_id')}",
        "stay": f"c.stay_id = {_j('stay_id')}",
        "measurement": (f"c.person_id = {_j('person_id')} AND c.time = {t('time')} "
                        f"AND c.variable = {_lower('variable')} "
                        f"AND trim(c.value_original) = trim({_j('value')})"),
        "drug_administration": (f"c.person_id = {_j('person_id')} AND c.start_time = "
                                f"{t('start_time')} AND {named('drug', 'drug')}"),
        "organ_support": (f"c.person_id = {_j('person_id')} AND c.start_time = "
                          f"{t('start_time')} AND {named('support', 'support')}"),
        "condition": (f"c.person_id = {_j('person_id')} AND lower(c.condition) = "
                      f"{_lower('condition')} AND c.onset_time IS NOT DISTINCT FROM "
                      f"{time_sql(_j('onset_time'), tz, allow_date_only=True)}"),
        "event": (f"c.person_id = {_j('person_id')} AND c.event_type = {_lower('event_type')} "
                  f"AND c.time = {t('time')}"),
    }
    return f"EXISTS (SELECT 1 FROM {table} c WHERE {conditions[table]})"


def resolved_sql(raw, where: QuarantineFilter = QuarantineFilter()) -> str:
    """SQL selecting (source_file, source_line, reason) of the resolved quarantine rows."""
    tz_of = ("(SELECT table_source, arg_max(time_zone, load_id) AS tz FROM load_log "
             "GROUP BY table_source)") if has_load_log(raw) else \
        "(SELECT NULL::VARCHAR AS table_source, NULL::VARCHAR AS tz WHERE FALSE)"
    zones = [r[0] for r in raw.execute(
        f"SELECT DISTINCT coalesce(z.tz, 'UTC') FROM quarantine q LEFT JOIN {tz_of} z "
        f"ON z.table_source = q.source_file").fetchall()]
    never = ", ".join(_q(r) for r in NEVER_RESOLVED)
    parts = []
    for tz in zones:
        for table in TABLE_ORDER:
            parts.append(f"""SELECT q.source_file, q.source_line, q.reason FROM quarantine q
                LEFT JOIN {tz_of} z ON z.table_source = q.source_file
                WHERE q.target_table = {_q(table)} AND coalesce(z.tz, 'UTC') = {_q(tz)}
                  AND q.reason NOT IN ({never}) AND {where.where_sql()}
                  AND {_matches(table, tz)}""")
    return " UNION ALL ".join(parts) if parts else \
        "SELECT NULL AS source_file, NULL AS source_line, NULL AS reason WHERE FALSE"


def clear_resolved(raw, where: QuarantineFilter = QuarantineFilter(),
                   vocabulary: Vocabulary | None = None) -> list[tuple]:
    """Delete the resolved quarantine rows (one transaction); returns (table, reason, rows)
    of what was removed."""
    register_vocabulary(raw, vocabulary or Vocabulary())
    raw.execute(f"CREATE OR REPLACE TEMP TABLE _hi_resolved AS {resolved_sql(raw, where)}")
    try:
        removed = raw.execute(f"""SELECT q.target_table, q.reason, count(*) FROM quarantine q
            JOIN _hi_resolved r ON q.source_file = r.source_file AND q.reason = r.reason
              AND q.source_line IS NOT DISTINCT FROM r.source_line
            GROUP BY q.target_table, q.reason ORDER BY {_order_sql()}""").fetchall()
        raw.execute("BEGIN TRANSACTION")
        try:
            raw.execute("""DELETE FROM quarantine q USING _hi_resolved r
                WHERE q.source_file = r.source_file AND q.reason = r.reason
                  AND q.source_line IS NOT DISTINCT FROM r.source_line""")
            raw.execute("COMMIT")
        except BaseException:
            raw.execute("ROLLBACK")
            raise
    finally:
        raw.execute("DROP TABLE IF EXISTS _hi_resolved")
    return removed
