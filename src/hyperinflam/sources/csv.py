"""Load a folder of CSV files (one per canonical table) into the canonical tables.

The layout is documented in ``docs/csv-layout.md``; the tables in ``docs/data-model.md``.

How a file is loaded (all set-based inside DuckDB, no row ever goes through Python):

1. The header is read (Python ``csv``, first line only) and checked: a missing required column
   raises :class:`~hyperinflam.errors.SourceError` naming the file, the column(s) and the
   expected columns.
2. DuckDB reads the file with ``read_csv(all_varchar, header)``; each row keeps its line number
   (header = line 1) from ``row_number() OVER ()`` (DuckDB preserves insertion order). Lines that
   cannot be split into the header's columns are captured by DuckDB's reject tables and
   quarantined as ``malformed_line`` at their true line. Limitation: blank lines (skipped by the
   reader) and quoted fields spanning several lines shift the reported line numbers of the rows
   after them.
3. The staged rows go through the shared pipeline of :mod:`hyperinflam.sources.ingest`
   (validation, unit conversion, quarantine with one reason per row, idempotent reloads).
"""

from __future__ import annotations

import csv as _pycsv
from pathlib import Path
from typing import Callable

from hyperinflam.errors import SourceError
from hyperinflam.sources import LoadReport
from hyperinflam.sources.ingest import (LAYOUT, TableLayout, _q, ingest, open_load,
                                         register_vocabulary)
from hyperinflam.sources.quarantine import TableLoadCounts
from hyperinflam.vocabulary import Vocabulary

__all__ = ["CSV_LAYOUT", "CsvFile", "load_csv_folder", "render_load_report"]

#: The CSV layout: one file per canonical table, in load order.
CSV_LAYOUT = LAYOUT
CsvFile = TableLayout
REQUIRED_FILES = ("person", "stay")


def _file_name(spec: TableLayout) -> str:
    return f"{spec.table}.csv"


def _read_header(path: Path, spec: TableLayout) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(_pycsv.reader(handle), None)
    except UnicodeDecodeError:
        raise SourceError(f"{path}: the header line is not UTF-8 text; save the file as UTF-8 CSV.") \
            from None
    expected = (f"expected columns: {', '.join(spec.required)} (required)"
                + (f", {', '.join(spec.optional)} (optional)" if spec.optional else "")
                + "; see docs/csv-layout.md")
    if not header or not any(h.strip() for h in header):
        raise SourceError(f"{path}: the file is empty; it needs a header line. {expected}.")
    names = [h.strip().lower() for h in header]
    duplicated = sorted({n for n in names if names.count(n) > 1 and n})
    if duplicated:
        raise SourceError(f"{path} line 1: column(s) {', '.join(duplicated)} appear more than once "
                          f"in the header; {expected}.")
    missing = [c for c in spec.required if c not in names]
    if missing:
        raise SourceError(f"{path} line 1: missing required column(s) {', '.join(missing)}; "
                          f"{expected}.")
    return names


def _stage(raw, path: Path, header: list[str]) -> int:
    """Read the file into ``_hi_stg`` (f0..fn varchar, _line) and the rejected lines into
    ``_hi_rejects``; return the number of rejected lines."""
    columns = "{" + ", ".join(f"'f{i}': 'VARCHAR'" for i in range(len(header))) + "}"
    for t in ("_hi_stg", "_hi_rejects", "_hi_reject_errors", "_hi_reject_scans"):
        raw.execute(f"DROP TABLE IF EXISTS {t}")
    raw.execute(f"""CREATE TEMP TABLE _hi_stg AS
        SELECT row_number() OVER () + 1 AS _line, *
        FROM read_csv({_q(str(path))}, header = true, auto_detect = false, columns = {columns},
                      delim = ',', quote = '"', escape = '"', all_varchar = true,
                      store_rejects = true, rejects_table = '_hi_reject_errors',
                      rejects_scan = '_hi_reject_scans')""")
    raw.execute("""CREATE TEMP TABLE _hi_rejects AS
        SELECT line AS _line, min(csv_line) AS csv_line, string_agg(error_message, '; ') AS message
        FROM _hi_reject_errors GROUP BY line""")
    n_rejected = raw.execute("SELECT count(*) FROM _hi_rejects").fetchone()[0]
    if n_rejected:
        # Good rows were numbered 2, 3, ... skipping nothing; give them the true line numbers by
        # skipping the lines DuckDB rejected.
        n_good = raw.execute("SELECT count(*) FROM _hi_stg").fetchone()[0]
        raw.execute(f"""CREATE OR REPLACE TEMP TABLE _hi_linemap AS
            SELECT row_number() OVER (ORDER BY l) + 1 AS k, l
            FROM range(2, {n_good + n_rejected + 2}) r(l)
            WHERE l NOT IN (SELECT _line FROM _hi_rejects)""")
        raw.execute("""CREATE OR REPLACE TEMP TABLE _hi_stg AS
            SELECT m.l AS _line, s.* EXCLUDE (_line)
            FROM _hi_stg s JOIN _hi_linemap m ON m.k = s._line""")
        raw.execute("DROP TABLE _hi_linemap")
    return n_rejected



def _load_file(raw, spec: TableLayout, path: Path, vocab: Vocabulary, tz: str) -> TableLoadCounts:
    header = _read_header(path, spec)

    def stage() -> int:
        try:
            return _stage(raw, path, header)
        except Exception as exc:  # duckdb errors: encoding, unreadable file
            raise SourceError(f"{path}: cannot be read as a UTF-8 CSV file ({exc}).") from None

    return ingest(raw, spec, header, str(path), path.name, vocab, tz, stage)


def load_csv_folder(con, folder, *, vocabulary: Vocabulary | None = None, tz: str = "UTC",
                    progress: Callable[[str], None] | None = None) -> LoadReport:
    """Load a folder of CSV files (docs/csv-layout.md) into the canonical tables of ``con``.

    ``con`` comes from :func:`hyperinflam.engine.connect` (or ``connect_memory``). Times without an
    offset are read in ``tz`` (an IANA name); everything is stored as naive UTC. Every row is
    loaded, counted as already present (a reload), or quarantined with one reason; the report
    reconciles read = loaded + already present + quarantined per table. ``progress`` is called with
    each table name as its file starts.

    Raises :class:`SourceError` when the folder, person.csv or stay.csv is missing, when a file
    lacks a required column, or when ``tz`` is not a time zone.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"{folder}: no such folder. Give a folder holding person.csv, stay.csv and "
                          f"optionally the other files of docs/csv-layout.md.")
    missing = [f"{t}.csv" for t in REQUIRED_FILES if not (folder / f"{t}.csv").is_file()]
    if missing:
        raise SourceError(f"{folder}: missing {' and '.join(missing)}; a CSV folder needs person.csv "
                          f"and stay.csv (see docs/csv-layout.md).")
    raw, vocab = open_load(con, vocabulary, tz)
    register_vocabulary(raw, vocab)
    report = LoadReport(source=str(folder.resolve()))
    progress_bar = raw.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0]
    raw.execute("SET enable_progress_bar = false")  # the caller shows its own progress
    try:
        _load_files(raw, folder, vocab, tz, progress, report)
    finally:
        raw.execute(f"SET enable_progress_bar = {'true' if progress_bar else 'false'}")
    return report


def _load_files(raw, folder: Path, vocab: Vocabulary, tz: str,
                progress: Callable[[str], None] | None, report: LoadReport) -> None:
    for spec in CSV_LAYOUT:
        if progress is not None:
            progress(spec.table)
        path = (folder / _file_name(spec)).resolve()
        if not path.is_file():
            report.tables.append(TableLoadCounts(table=spec.table, source=str(path)))
            report.notes.append(f"{_file_name(spec)} not found: no {spec.table} rows loaded.")
            continue
        header = _read_header(path, spec)
        extra = [h for h in header if h not in spec.columns]
        if extra:
            report.notes.append(f"{_file_name(spec)}: column(s) {', '.join(extra)} are not in the "
                                f"layout and were ignored (kept in quarantine raw rows only).")
        report.tables.append(_load_file(raw, spec, path, vocab, tz))


def render_load_report(report: LoadReport, console) -> None:
    """Print the reconciliation table (see :mod:`hyperinflam.sources.quarantine`)."""
    from hyperinflam.sources.quarantine import render_load_report as _render

    _render(report, console)

