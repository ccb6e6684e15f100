"""What every command shares: the consoles, fail() (one message, no traceback, exit 2), the
options every reader or engine command takes (one definition, one help text), time parsing of
--grid / --at, and opening the engine with every fixable error as one message."""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

DB_HELP = ("DuckDB database file holding the canonical tables. Default: hyperinflam.duckdb in "
           "your user data directory.")


# Options every reader shares (one definition, one help text).
UNITS_OPTION = typer.Option(
    None, "--units", help="Site unit spellings: a CSV laid out like vocabulary/units.csv "
    "(variable,unit,factor,offset,status,reference); its rows take precedence.")
#: Help of every --codes option (one dictionary, one layout: docs/vocabulary.md).
CODES_HELP = ("Site codes: a CSV laid out like vocabulary/codes.csv (kind,target,system,code,"
              "concept_id,unit_when_missing,display,status,reference; the former per-reader "
              "layouts are read too); its rows take precedence. See docs/vocabulary.md.")
SITE_TZ_OPTION = typer.Option(
    "UTC", "--tz", help="Site time zone (IANA name, e.g. Europe/Amsterdam) of times written "
    "without an offset. Stored times are UTC.")

# --engine / --spark-master / --spark-conf of screen, study run and load omop (docs/scale.md).
ENGINE_OPTION = typer.Option(
    "duckdb", "--engine", help="Engine that computes: 'duckdb' (embedded, default) or 'spark' "
    "(reads --db as a Parquet folder or catalog:DATABASE; see docs/scale.md).")
SPARK_MASTER_OPTION = typer.Option(
    None, "--spark-master", help="Spark master URL with --engine spark, e.g. spark://host:7077. "
    "Default local[*].")
SPARK_CONF_OPTION = typer.Option(
    None, "--spark-conf", help="Spark setting KEY=VALUE (repeatable), e.g. --spark-conf "
    "spark.executor.memory=8g.")


#: --quiet of every long command: no progress bar or step lines (results and errors still print).
QUIET_OPTION = typer.Option(False, "--quiet", "-q", help="No progress bar or step lines (the "
                            "results and any error are still printed). Progress is also off when "
                            "the output is not a terminal.")


def show_progress(quiet: bool = False) -> bool:
    """Whether a long command draws progress: not with --quiet, not when stdout is no terminal."""
    return not quiet and console.is_terminal


class StepProgress:
    """A rich progress bar for long work measured in units (persons, rows, stays, ...), or
    nothing at all when ``enabled`` is False. Use as a context manager; ``update(done, total,
    text)`` moves the bar; ``status(text)`` is a spinner line for a step without a count."""

    def __init__(self, title: str, unit: str, enabled: bool = True):
        self.title, self.unit, self.enabled = title, unit, enabled
        self._progress = None
        self._task = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn,
                                       TextColumn, TimeElapsedColumn)

            self._progress = Progress(
                SpinnerColumn(), TextColumn("[progress.description]{task.description}"),
                BarColumn(), MofNCompleteColumn(), TextColumn(self.unit),
                TimeElapsedColumn(), console=console, transient=False)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.title, total=None)
        return self

    def update(self, done: float, total: int, text: str | None = None) -> None:
        if self._progress is None:
            return
        description = f"{self.title}: {text}" if text else self.title
        self._progress.update(self._task, completed=int(done), total=total or None,
                              description=description)

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)
        return False


def status(text: str, enabled: bool = True):
    """A spinner line while a step without a count runs (nothing when not ``enabled``)."""
    import contextlib

    return console.status(text, spinner="dots") if enabled else contextlib.nullcontext()


def fail(message: str, code: int = 2) -> None:
    """Print a user-facing error (no traceback) and exit."""
    # soft_wrap: no line breaks inserted into paths and commands the user may copy
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def parse_grid(text: str) -> float:
    """'24h', '24', '6 h' or '1d' -> hours."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([hd]?)\s*", text or "", flags=re.IGNORECASE)
    if not match:
        fail(f"--grid '{text}' is not a step: write hours such as '24h', '6h' or '1d'.")
    hours = float(match.group(1)) * (24 if match.group(2).lower() == "d" else 1)
    if hours < 1:
        fail(f"--grid '{text}' is shorter than 1 hour: use a step of at least '1h'.")
    return hours


def parse_at(text: str, tz: str):
    import pandas as pd

    try:
        stamp = pd.Timestamp(text)
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize(tz)
    except Exception as exc:  # noqa: BLE001 - any parse error is the user's to fix
        fail(f"--at '{text}' is not a time: write ISO 8601 such as '2024-03-01 14:30' or "
             f"'2024-03-01T14:30:00+01:00' ({exc}).")
    return stamp.tz_convert("UTC").tz_localize(None).to_pydatetime()


def open_for_plans_or_fail(db, engine: str = "duckdb", spark_master: Optional[str] = None,
                           spark_conf: Optional[list[str]] = None):
    """The connection a compiled plan runs on: a bare DuckDB connection for a database file
    (no ibis import: a cached screen starts fast), else :func:`open_engine_or_fail`. Close it
    with :func:`close_connection`."""
    from hyperinflam.engine import connect_file, resolve_db_path

    if (engine or "duckdb").strip().lower() == "duckdb" and not spark_master and not spark_conf \
            and not resolve_db_path(db).is_dir():
        try:
            return connect_file(db)
        except FileNotFoundError as exc:
            fail(str(exc))
    return open_engine_or_fail(db, engine, spark_master, spark_conf)


def close_connection(con) -> None:
    """Close an ibis backend or a bare DuckDB connection."""
    (con.disconnect if hasattr(con, "disconnect") else con.close)()


def open_engine_or_fail(db, engine: str = "duckdb", spark_master: Optional[str] = None,
                        spark_conf: Optional[list[str]] = None):
    """``hyperinflam.engine.open_engine`` with every fixable error printed as one message."""
    from hyperinflam.engine import open_engine
    from hyperinflam.errors import EngineError, SourceError

    try:
        if engine == "spark":
            with console.status("Starting Spark...", spinner="dots"):
                return open_engine(db, engine, spark_master, spark_conf)
        return open_engine(db, engine, spark_master, spark_conf)
    except (EngineError, SourceError, FileNotFoundError) as exc:
        fail(str(exc))
