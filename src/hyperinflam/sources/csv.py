"""Load a folder of CSV files (one per canonical table) into the canonical tables.

The layout is documented in ``docs/csv-layout.md``; the tables in ``docs/data-model.md``.

How a file is loaded (all set-based inside DuckDB, no row ever goes through Python):

1. The header is read (Python ``csv``, first line only) and checked: a missing required column
   raises :class:`~hyperinflam.errors.SourceError` naming the file, the column(s) and the
   expected columns; a first line naming no column of the layout is "no header line". The field
   separator is recognised from the header: a comma, else a semicolon, tab or vertical bar when
   that splits the header into the required columns (a spreadsheet's export), said in a note.
2. DuckDB reads the file with ``read_csv(all_varchar, header)``; each row keeps its line number
   (header = line 1) from ``row_number() OVER ()`` (DuckDB preserves insertion order). Lines that
   cannot be split into the header's columns are captured by DuckDB's reject tables and
   quarantined as ``malformed_line`` at their true line. Limitation: blank lines (skipped by the
   reader) and quoted fields spanning several lines shift the reported line numbers of the rows
   after them.
   A file holding only its header line is an empty table.
3. A site's own names (``--codes FILE``, repeatable: rows of vocabulary/codes.csv with system
   ``CSV``, e.g. ``measurement,ferritin,CSV,Ferritine (serum)``) are replaced by the names they
   map to: kind ``measurement`` in measurement.variable, ``drug`` in drug_administration.drug,
   ``support`` in organ_support.support (case and surrounding spaces ignored). A site row takes
   precedence over the shipped names and aliases, a later file over an earlier one; the
   quarantine keeps the mapped name.
4. The staged rows go through the shared pipeline of :mod:`hyperinflam.sources.ingest`
   (validation, unit conversion, quarantine with one reason per row, idempotent reloads).

The whole folder is one load (:mod:`hyperinflam.sources.atomic`): when any file stops the load
(a missing column, an unreadable file), nothing of the folder is written.
"""

from __future__ import annotations

import csv as _pycsv
from pathlib import Path
from typing import Callable, Iterable

from hyperinflam.errors import SourceError
from hyperinflam.sources import LoadReport
from hyperinflam.sources.atomic import cleanup, load_transaction, on_commit
from hyperinflam.sources.ingest import (LAYOUT, TableLayout, _q, ingest, open_load,
                                         register_vocabulary, with_site_codes)
from hyperinflam.sources.domains import DOMAINS_FILE, read_declarations, record_domains
from hyperinflam.sources.infections import derive_infections
from hyperinflam.sources.suspected_infection import derive_suspected_infections
from hyperinflam.sources.load_log import record_load
from hyperinflam.sources.quarantine import TableLoadCounts
from hyperinflam.vocabulary import Vocabulary

__all__ = ["CSV_LAYOUT", "CsvFile", "load_csv_folder", "read_site_names", "render_load_report"]

#: The CSV layout: one file per canonical table, in load order.
CSV_LAYOUT = LAYOUT
CsvFile = TableLayout
REQUIRED_FILES = ("person", "stay")
#: Site names (--codes rows of system CSV): the table and column whose values they rename, and
#: the kinds of name that apply there, the first kind first (a drug's name is also valid as the
#: support of a vasoactive infusion).
SITE_NAME_COLUMNS = {("measurement", "variable"): ("measurement",),
                     ("drug_administration", "drug"): ("drug",),
                     ("organ_support", "support"): ("support", "drug")}
#: The code system of a site's own names in the CSV layout (vocabulary/codes.csv ``system``).
CSV_SYSTEM = "CSV"


def read_site_names(vocabulary: Vocabulary) -> list[tuple]:
    """(table, name_key, target) of the vocabulary's CSV-name codes (the site's --codes rows of
    system CSV; a later file's row comes first, so it wins over an earlier one's)."""
    names: dict[tuple[str, str], str] = {}
    for (table, _), kinds in SITE_NAME_COLUMNS.items():
        for kind in kinds:
            for code in vocabulary.codes_of(kind, system=CSV_SYSTEM):
                if code.code:
                    names.setdefault((table, code.code.strip().lower()), code.target)
    return [(table, key, target) for (table, key), target in names.items()]


def _register_site_names(raw, names: list[tuple]) -> None:
    raw.execute("CREATE OR REPLACE TEMP TABLE _hi_site_names "
                "(target_table VARCHAR, name_key VARCHAR, target VARCHAR)")
    if names:
        raw.executemany("INSERT INTO _hi_site_names VALUES (?, ?, ?)", names)


def _rename_site_names(raw, spec: TableLayout, header: list[str]) -> None:
    """Replace the site's names in the staged column this table's names live in."""
    for (table, column) in SITE_NAME_COLUMNS:
        if table == spec.table and column in header:
            col = f"f{header.index(column)}"
            raw.execute(f"""UPDATE _hi_stg SET {col} = m.target FROM _hi_site_names m
                WHERE m.target_table = {_q(table)} AND m.name_key = lower(trim(_hi_stg.{col}))""")


def _file_name(spec: TableLayout) -> str:
    return f"{spec.table}.csv"


#: Field separators recognised from the header line, in the order tried (comma first: the layout).
DELIMITERS: dict[str, str] = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}


def _expected(spec: TableLayout) -> str:
    return (f"expected columns: {', '.join(spec.required)} (required)"
            + (f", {', '.join(spec.optional)} (optional)" if spec.optional else "")
            + "; see docs/csv-layout.md")


def _first_line(path: Path) -> str:
    """The header line (bytes up to the first line break, so that a bad byte further down is
    reported by the reader with its line, not here)."""
    try:
        with open(path, "rb") as handle:
            return handle.readline().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SourceError(f"{path}: the header line is not UTF-8 text; save the file as UTF-8 CSV.") \
            from None


def _split(line: str, delimiter: str) -> list[str]:
    return [h.strip().lower() for h in next(_pycsv.reader([line], delimiter=delimiter), [])]


def _read_header(path: Path, spec: TableLayout) -> tuple[list[str], str]:
    """The column names of the header line (lower case) and the field separator.

    The separator is the first of :data:`DELIMITERS` that splits the header into names holding
    every required column (a CSV saved by a spreadsheet with a semicolon or tab is recognised
    from its header alone; the values are never looked at). A first line that names no column of
    the layout under any separator is a file without a header: one message with the fix."""
    line = _first_line(path)
    expected = _expected(spec)
    if not line.strip():
        raise SourceError(f"{path}: the file is empty; it needs a header line. {expected}.")
    splits = {d: _split(line, d) for d in DELIMITERS}
    known = set(spec.columns)
    complete = [d for d, names in splits.items() if all(c in names for c in spec.required)]
    delimiter = complete[0] if complete else max(  # for the message: the best split
        DELIMITERS, key=lambda d: (sum(n in known for n in splits[d]), d == ","))
    names = splits[delimiter]
    if not any(n in known for names_ in splits.values() for n in names_):
        shown = line.strip()[:80]
        raise SourceError(
            f"{path} line 1: no header line: the first line ({shown!r}) names none of the "
            f"columns of {spec.file_name}, so it looks like data. Insert a header line naming the "
            f"columns, for example: {','.join(spec.required)}; {expected}.")
    duplicated = sorted({n for n in names if names.count(n) > 1 and n})
    if duplicated:
        raise SourceError(f"{path} line 1: column(s) {', '.join(duplicated)} appear more than once "
                          f"in the header; {expected}.")
    missing = [c for c in spec.required if c not in names]
    if missing:
        split = f" (the header read with {DELIMITERS[delimiter]}s between fields)" \
            if delimiter != "," else ""
        raise SourceError(f"{path} line 1: missing required column(s) {', '.join(missing)}"
                          f"{split}; {expected}.")
    return names, delimiter


def _stage(raw, path: Path, header: list[str], delimiter: str = ",") -> int:
    """Read the file into ``_hi_stg`` (f0..fn varchar, _line) and the rejected lines into
    ``_hi_rejects``; return the number of rejected lines. A file holding only its header line
    is an empty table."""
    columns = "{" + ", ".join(f"'f{i}': 'VARCHAR'" for i in range(len(header))) + "}"
    for t in ("_hi_stg", "_hi_rejects", "_hi_reject_errors", "_hi_reject_scans"):
        raw.execute(f"DROP TABLE IF EXISTS {t}")
    raw.execute(f"""CREATE TEMP TABLE _hi_stg AS
        SELECT row_number() OVER () + 1 AS _line, *
        FROM read_csv({_q(str(path))}, header = true, auto_detect = false, columns = {columns},
                      delim = {_q(delimiter)}, quote = '"', escape = '"', all_varchar = true,
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
    header, delimiter = _read_header(path, spec)

    def stage() -> int:
        try:
            rejected = _stage(raw, path, header, delimiter)
        except Exception as exc:  # duckdb errors: encoding, unreadable file
            text = str(exc).strip()
            first = text.splitlines()[0] if text else type(exc).__name__
            hint = (" The likely cause: line endings that change within the file (Windows CRLF "
                    "and Unix LF lines mixed, e.g. lines added by hand in another editor); save "
                    "the file again with one kind of line ending."
                    if "state machine" in text else "")
            raise SourceError(f"{path}: cannot be read as a UTF-8 CSV file ({first}).{hint} "
                              f"Nothing of this load was written.") from None
        _rename_site_names(raw, spec, header)
        return rejected

    return ingest(raw, spec, header, str(path), path.name, vocab, tz, stage)


def load_csv_folder(con, folder, *, vocabulary: Vocabulary | None = None, tz: str = "UTC",
                    codes: Iterable[str | Path] = (),
                    progress: Callable[[str], None] | None = None,
                    domains: Iterable[str | Path] = ()) -> LoadReport:
    """Load a folder of CSV files (docs/csv-layout.md) into the canonical tables of ``con``.

    ``con`` comes from :func:`hyperinflam.engine.connect` (or ``connect_memory``). Times without an
    offset are read in ``tz`` (an IANA name); everything is stored as naive UTC. Every row is
    loaded, counted as already present (a reload), or quarantined with one reason; the report
    reconciles read = loaded + already present + quarantined per table. ``codes`` are site names
    files (see the module docstring). ``progress`` is called with each table name as its file
    starts.

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
    codes = list(codes or ())
    vocab = with_site_codes(vocab, codes)
    site_names = read_site_names(vocab)
    own = [folder / DOMAINS_FILE] if (folder / DOMAINS_FILE).is_file() else []
    declared = read_declarations(own + list(domains or ()), vocab)  # --domains after the folder's
    register_vocabulary(raw, vocab)
    _register_site_names(raw, site_names)
    report = LoadReport(source=str(folder.resolve()))
    if codes:
        report.notes.append(f"site codes from {', '.join(str(c) for c in codes)}: "
                            f"{len(site_names)} CSV name(s) mapped (--codes; they take "
                            f"precedence).")
    progress_bar = raw.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0]
    raw.execute("SET enable_progress_bar = false")  # the caller shows its own progress
    try:
        with load_transaction(raw):  # all files or none (sources/atomic.py)
            on_commit(raw, lambda: record_load(raw, report, reader="csv", tz=tz))
            _load_files(raw, folder, vocab, tz, progress, report)
            derive_infections(raw, report, vocab)
            derive_suspected_infections(raw, report)
            record_domains(raw, report, vocab, reader="csv", declared=declared)
    finally:
        cleanup(raw, [f"SET enable_progress_bar = {'true' if progress_bar else 'false'}",
                      "DROP TABLE IF EXISTS _hi_site_names"])
    return report


def _load_files(raw, folder: Path, vocab: Vocabulary, tz: str,
                progress: Callable[[str], None] | None, report: LoadReport) -> None:
    other_separator: dict[str, list[str]] = {}
    for spec in CSV_LAYOUT:
        if progress is not None:
            progress(spec.table)
        path = (folder / _file_name(spec)).resolve()
        if not path.is_file():
            report.tables.append(TableLoadCounts(table=spec.table, source=str(path)))
            report.notes.append(f"{_file_name(spec)} not found: no {spec.table} rows loaded.")
            continue
        header, delimiter = _read_header(path, spec)
        extra = [h for h in header if h not in spec.columns]
        if extra:
            report.notes.append(f"{_file_name(spec)}: column(s) {', '.join(extra)} are not in the "
                                f"layout and were ignored (kept in quarantine raw rows only).")
        if delimiter != ",":
            other_separator.setdefault(delimiter, []).append(_file_name(spec))
        report.tables.append(_load_file(raw, spec, path, vocab, tz))
    for delimiter, names in other_separator.items():
        report.notes.append(
            f"{', '.join(names)}: fields are separated by a {DELIMITERS[delimiter]}, not a comma "
            f"(recognised from the header line); numbers must still use a decimal point: a "
            f"decimal comma (12,5) is quarantined as unparseable_value.")


def render_load_report(report: LoadReport, console) -> None:
    """Print the reconciliation table (see :mod:`hyperinflam.sources.quarantine`)."""
    from hyperinflam.sources.quarantine import render_load_report as _render

    _render(report, console)

