"""``hyperinflam quarantine``: the rows a load did not take, counted, listed, exported and, once
their source row has loaded, cleared (sources/quarantine_rows.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hyperinflam.cli.common import (QUIET_OPTION, console, db_option, fail, plural, say,
                                    set_quiet)

QUARANTINE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

QUARANTINE_HELP = (
    "Show the quarantine: every input row a load did not take, with the reason, where it came "
    "from and how to fix it.\n\n"
    "By default prints the count per table and reason (the figures of the loads' "
    "reconciliations) with one example location each. --list prints the rows (source file, line "
    "or source key, reason, fix); --out FILE writes them all to a .csv or .parquet file. "
    "--reason, --table and --file narrow every view.\n\n"
    "--clear-resolved removes the rows whose source row has loaded since (e.g. from a corrected "
    "file): the canonical table now holds the row it was meant to become. Reloading the same "
    "file replaces its quarantine rows anyway. Reasons and fixes: docs/sources.md.\n\n"
    "Examples:\n\n"
    "hyperinflam quarantine --db site.duckdb\n\n"
    "hyperinflam quarantine --db site.duckdb --reason unknown_unit --list\n\n"
    "hyperinflam quarantine --db site.duckdb --file measurement.csv --out to-fix.csv"
)


def quarantine_command(
    db: Optional[Path] = db_option(),
    reason: Optional[list[str]] = typer.Option(None, "--reason", "-r", metavar="REASON",
                                               help="Only this reason (repeatable), e.g. "
                                               "unknown_unit."),
    table: Optional[list[str]] = typer.Option(None, "--table", "-t", metavar="TABLE",
                                              help="Only rows meant for this canonical table "
                                              "(repeatable), e.g. measurement."),
    file: Optional[str] = typer.Option(None, "--file", "-f", metavar="FILE", help="Only rows "
                                       "from this source file: its name (measurement.csv), its "
                                       "path, or the end of it."),
    list_rows: bool = typer.Option(False, "--list", help="Print the rows, not only the counts."),
    limit: int = typer.Option(50, "--limit", min=1, metavar="N", help="Rows --list prints "
                              "(--out writes all)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="FILE", help="Write the "
                                       "rows to this .csv or .parquet file: table, source_file, "
                                       "line_or_key, reason, fix, row_as_received."),
    clear_resolved: bool = typer.Option(False, "--clear-resolved", help="Remove the rows whose "
                                        "source row has loaded since."),
    quiet: bool = QUIET_OPTION,
):
    from hyperinflam.engine import connect, resolve_db_path
    from hyperinflam.errors import EngineError, SourceError
    from hyperinflam.schema import CANONICAL_TABLES
    from hyperinflam.sources.quarantine import REASONS
    from hyperinflam.sources.quarantine_rows import (QuarantineFilter, clear_resolved as clear,
                                                     quarantine_counts, quarantine_rows_sql)

    set_quiet(quiet)
    kind = None
    if out is not None:
        kind = QUARANTINE_FORMATS.get(out.suffix.lower())
        if kind is None:
            fail(f"--out {out}: unknown file type '{out.suffix}'; name a .csv or .parquet file.")
    tables = [t.name for t in CANONICAL_TABLES]
    for name in table or ():
        if name not in tables:
            fail(f"--table '{name}' is not a canonical table; use one of: {', '.join(tables)}.")
    path = resolve_db_path(db)
    if not path.exists():
        fail(f"No hyperinflam database at {path}. Load data first, for example 'hyperinflam load "
             f"csv FOLDER --db {path}'.")
    try:
        con = connect(db, read_only=not clear_resolved, create=False)
    except (EngineError, SourceError, FileNotFoundError) as exc:
        fail(str(exc))
    raw = con.con
    try:
        if "quarantine" not in con.list_tables():
            fail(f"--db {path} has no quarantine table: it is not a hyperinflam database. Load "
                 f"data into it with 'hyperinflam load ...'.")
        known = set(REASONS) | {r[0] for r in raw.execute(
            "SELECT DISTINCT reason FROM quarantine").fetchall()}
        for name in reason or ():
            if name not in known:
                fail(f"--reason '{name}' is not a quarantine reason; use one of: "
                     f"{', '.join(sorted(known))}.")
        where = QuarantineFilter(reasons=tuple(reason or ()), tables=tuple(table or ()),
                                 file=file)
        if clear_resolved:
            removed = clear(raw, where)
            _print_removed(removed, path)
        counts = quarantine_counts(raw, where)
        total = sum(n for _, _, n, _, _ in counts)
        narrowed = bool(reason or table or file)
        if total == 0:
            say(f"No quarantined rows{' match' if narrowed else ''} in {path}."
                + (" Every row of every load was loaded." if not narrowed else ""))
            if out is not None:
                _write_rows(raw, quarantine_rows_sql(where), out, kind)
                say(f"Wrote 0 rows to {out}.")
            return
        console.print(_counts_table(counts, total, path, narrowed))
        if list_rows:
            _print_rows(raw, quarantine_rows_sql(where), limit, total)
        if out is not None:
            _write_rows(raw, quarantine_rows_sql(where), out, kind)
            say(f"Wrote {plural(total, 'row')} to {out}.")
        if not list_rows and out is None:
            say(f"See the rows with --list (first {limit}) or write them all with --out FILE.csv; "
                f"narrow with --reason, --table or --file.")
    finally:
        con.disconnect()


def _counts_table(counts, total: int, path: Path, narrowed: bool):
    from rich.table import Table
    from rich.text import Text

    title = f"Quarantined rows in {path}" + (" (filtered)" if narrowed else "")
    table = Table(title=Text(title), title_justify="left",
                  caption="the figures of the loads' reconciliations", caption_justify="left")
    for name, justify in (("table", "left"), ("reason", "left"), ("rows", "right"),
                          ("example", "left")):
        table.add_column(name, justify=justify, no_wrap=name != "example", overflow="fold")
    for target, why, n, _, example in counts:
        table.add_row(Text(target), Text(why), f"{n:,}", Text(example or ""))
    table.add_row(Text("total", style="bold"), "", Text(f"{total:,}", style="bold"), "",
                  end_section=True)
    return table


def _print_rows(raw, rows_sql: str, limit: int, total: int) -> None:
    """Each row as a short block: where it came from, table and reason, the fix, the row."""
    rows = raw.execute(f"SELECT * FROM ({rows_sql}) LIMIT {int(limit)}").fetchall()
    shown = (f"the first {len(rows):,} of {total:,}; --out FILE.csv writes all"
             if total > len(rows) else plural(total, "row"))
    say(f"\nQuarantined rows ({shown}):", style="bold")
    for target, source, line, why, fix, row in rows:
        where = _file_name(source) + ("" if line is None else f":{line}")
        say(f"\n{where}  {target}  {why}", style="bold")
        say(f"  fix: {fix or '(none given)'}")
        say(f"  row: {row or ''}")


def _file_name(source: str) -> str:
    return source.replace("\\", "/").rsplit("/", 1)[-1]


def _write_rows(raw, rows_sql: str, out: Path, kind: str) -> None:
    from hyperinflam.sources.ingest import _q

    out.parent.mkdir(parents=True, exist_ok=True)
    options = "FORMAT csv, HEADER true" if kind == "csv" else "FORMAT parquet"
    try:
        raw.execute(f"COPY ({rows_sql}) TO {_q(str(out))} ({options})")
    except Exception as exc:  # noqa: BLE001 - an unwritable path is the user's to fix
        fail(f"--out {out}: cannot be written ({exc}).")


def _print_removed(removed, path: Path) -> None:
    n = sum(r[2] for r in removed)
    if not n:
        say(f"No quarantined row of {path} has loaded since: nothing cleared.")
        return
    say(f"Cleared {plural(n, 'resolved row')} (their source rows have loaded since): "
        + "; ".join(f"{t} {why} {k:,}" for t, why, k in removed) + ".")
