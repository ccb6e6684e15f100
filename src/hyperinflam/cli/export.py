"""``hyperinflam export parquet | omop``: the canonical tables written out for other engines
(exports/; docs/scale.md, docs/sources-omop.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hyperinflam.cli.common import (QUIET_OPTION, codes_option, db_option, fail, out_option, say,
                                    set_quiet, status)

export_app = typer.Typer(help="Write the canonical tables out for other engines.",
                         no_args_is_help=True)


def _run_export(db, label: str, write):
    """Open the database read-only, run ``write(con, step)`` with a spinner whose line
    ``step(table, done, total)`` moves on ("measurement (3 of 11)"); fixable errors become one
    message. Returns (what write returned, seconds)."""
    import time

    from hyperinflam.engine import open_engine
    from hyperinflam.errors import EngineError, SourceError

    try:
        con = open_engine(db)
    except (FileNotFoundError, EngineError, SourceError) as exc:
        fail(str(exc))
    started = time.perf_counter()
    try:
        with status(label) as spinner:
            def step(table: str, done: int, total: int) -> None:
                spinner.update(f"{label} {table} ({done + 1} of {total})...")
            result = write(con, step)
    except SourceError as exc:
        fail(str(exc))
    finally:
        con.disconnect()
    return result, time.perf_counter() - started


@export_app.command("parquet")
def export_parquet_command(
    out: Path = out_option("Folder to write (created; must be new or empty unless --overwrite).",
                           metavar="FOLDER"),
    db: Optional[Path] = db_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier hyperinflam "
                                   "export in --out (never a folder of other files)."),
    partition: bool = typer.Option(True, "--partition/--no-partition", help="Partition "
                                   "measurement by variable (default; both engines then read "
                                   "only the variables a query needs)."),
    quiet: bool = QUIET_OPTION,
):
    """Export the canonical tables to a folder of Parquet datasets (one per table).

    Spark, DuckDB and any lakehouse read the folder; every hyperinflam command accepts it as
    --db, and --engine spark needs it. Timestamps stay naive UTC. See docs/scale.md.

    Example: hyperinflam export parquet --db site.duckdb --out site-parquet
    """
    from hyperinflam.exports.parquet import export_parquet

    set_quiet(quiet)
    manifest, seconds = _run_export(db, f"Writing {out}:", lambda con, step: export_parquet(
        con, out, overwrite=overwrite, partition=partition, progress=step))
    for name, info in manifest["tables"].items():
        parts = f" (partitioned by {', '.join(info['partition_by'])})" if info["partition_by"] \
            else ""
        say(f"  {name:<20} {info['rows']:>12,} rows{parts}")
    say(f"Wrote {out} in {seconds:.1f} s. Use it as --db {out} (add --engine spark to compute "
        f"on Spark).")


# --- export omop ----------------------------------------------------------------------------
# (exports/omop.py; docs/sources-omop.md)
@export_app.command("omop")
def export_omop_command(
    target: str = typer.Argument(..., help="DuckDB file (created) or postgresql://user@host:5432/db "
                                 "URL.", show_default=False, metavar="TARGET"),
    db: Optional[Path] = db_option(),
    schema: str = typer.Option("cdm", "--schema", metavar="NAME", help="CDM schema to create "
                               "(must not exist yet, or be empty)."),
    codes: Optional[list[Path]] = codes_option("Here: the code written for each target."),
    quiet: bool = QUIET_OPTION,
):
    """Write the canonical tables as an OMOP CDM 5.4 schema (official DDL).

    The schema reads back into identical canonical tables with
    'hyperinflam load omop TARGET --schema NAME --ids source_value'. Encoding: docs/sources-omop.md.

    Example: hyperinflam export omop site-omop.duckdb --db site.duckdb
    """
    from hyperinflam.exports.omop import export_omop

    set_quiet(quiet)
    written, seconds = _run_export(db, f"Writing OMOP CDM 5.4 to {target}...",
                                   lambda con, step: export_omop(con, target, schema=schema,
                                                                 codes=list(codes or ())))
    for name, n in written.items():
        say(f"  {name:<22} {n:>12,} rows")
    say(f"Wrote schema {schema} in {seconds:.1f} s. Read it back with: hyperinflam load omop "
        f"{target} --schema {schema} --ids source_value")
