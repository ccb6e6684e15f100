"""``hyperinflam export parquet | omop``: the canonical tables written out for other engines
(exports/; docs/scale.md, docs/sources-omop.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hyperinflam.cli.common import CODES_HELP, DB_HELP, console, fail

export_app = typer.Typer(help="Write the canonical tables out for other engines.",
                         no_args_is_help=True)


def _run_export(db, label: str, write):
    """Open the database read-only, run ``write(con)`` with a spinner; fixable errors become one
    message. Returns (what write returned, seconds)."""
    import time

    from hyperinflam.engine import connect
    from hyperinflam.errors import SourceError

    try:
        con = connect(db, read_only=True)
    except FileNotFoundError as exc:
        fail(str(exc))
    started = time.perf_counter()
    try:
        with console.status(label, spinner="dots"):
            result = write(con)
    except SourceError as exc:
        fail(str(exc))
    finally:
        con.disconnect()
    return result, time.perf_counter() - started


@export_app.command("parquet")
def export_parquet_command(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (created; must be new or "
                             "empty unless --overwrite)."),
    db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier hyperinflam "
                                   "export in --out (never a folder of other files)."),
    partition: bool = typer.Option(True, "--partition/--no-partition", help="Partition "
                                   "measurement by variable (default; both engines then read "
                                   "only the variables a query needs)."),
):
    """Export the canonical tables to a folder of Parquet datasets (one per table).

    Spark, DuckDB and any lakehouse read the folder; every hyperinflam command accepts it as
    --db, and --engine spark needs it. Timestamps stay naive UTC. See docs/scale.md.

    Example: hyperinflam export parquet --db site.duckdb --out site-parquet
    """
    from hyperinflam.exports.parquet import export_parquet

    manifest, seconds = _run_export(db, f"Writing {out}...", lambda con: export_parquet(
        con, out, overwrite=overwrite, partition=partition))
    for name, info in manifest["tables"].items():
        parts = f" (partitioned by {', '.join(info['partition_by'])})" if info["partition_by"] \
            else ""
        console.print(f"  {name:<20} {info['rows']:>12,} rows{parts}")
    console.print(f"Wrote [bold]{out}[/] in {seconds:.1f} s. Use it as "
                  f"--db {out} (add --engine spark to compute on Spark).")


# --- export omop ----------------------------------------------------------------------------
# (exports/omop.py; docs/sources-omop.md)
@export_app.command("omop")
def export_omop_command(
    target: str = typer.Argument(..., help="DuckDB file (created) or postgresql://user@host:5432/db "
                                 "URL.", show_default=False),
    db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP),
    schema: str = typer.Option("cdm", "--schema", help="CDM schema to create (must not exist "
                               "yet, or be empty)."),
    codes: Optional[Path] = typer.Option(None, "--codes", help=CODES_HELP),
):
    """Write the canonical tables as an OMOP CDM 5.4 schema (official DDL).

    The schema reads back into identical canonical tables with
    'hyperinflam load omop TARGET --schema NAME --ids source_value'. Encoding: docs/sources-omop.md.

    Example: hyperinflam export omop site-omop.duckdb --db site.duckdb
    """
    from hyperinflam.exports.omop import export_omop

    written, seconds = _run_export(db, f"Writing OMOP CDM 5.4 to {target}...",
                                   lambda con: export_omop(con, target, schema=schema, codes=codes))
    for name, n in written.items():
        console.print(f"  {name:<22} {n:>12,} rows")
    console.print(f"Wrote schema [bold]{schema}[/] in {seconds:.1f} s. Read it "
                  f"back with: hyperinflam load omop {target} --schema {schema} --ids source_value")
