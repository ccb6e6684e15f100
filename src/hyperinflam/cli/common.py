"""What every command shares: the consoles, fail() (one message, no traceback, exit 2), the
options several commands take (one definition and one help text each: --db, -o/--out, --tz,
--codes, --units, --engine, --quiet), how help names option types (in words, never ``<bool>``),
time parsing of --grid / --at / --as-of, and opening the engine with every fixable error as one
message.

Every message that carries text the user wrote (a path, a study key, an error from a layer below)
goes through :func:`fail`, :func:`say` or :func:`rich.markup.escape`, so that brackets survive:
``pip install 'hyperinflam[spark]'`` and ``allowed sections: [study], [cohort]`` print as written.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

console = Console()
err_console = Console(stderr=True)


# --- messages -------------------------------------------------------------------------------
def fail(message: str, code: int = 2) -> None:
    """Print a user-facing error (no traceback, brackets kept as written) and exit ``code``."""
    # soft_wrap: no line breaks inserted into paths and commands the user may copy
    err_console.print(Text("error: ", style="bold red") + Text(str(message)), highlight=False,
                      soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    """A warning on standard error (printed even with --quiet), brackets kept as written."""
    err_console.print(Text("warning: ", style="bold yellow") + Text(str(message)),
                      highlight=False, soft_wrap=True)


def say(message: str, style: str = "") -> None:
    """Plain text on standard output, never read as markup (paths, commands to paste)."""
    console.print(Text(str(message), style=style), highlight=False, soft_wrap=True)


def plural(n: int, word: str, many: Optional[str] = None) -> str:
    """'1 evaluation', '2 evaluations', '1,000 stays'; ``many`` for irregular plurals."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


_QUIET = {"on": False}


def set_quiet(quiet: bool) -> None:
    """--quiet for the rest of this command: no spinners or progress bars."""
    _QUIET["on"] = bool(quiet)


def show_progress(quiet: bool = False) -> bool:
    """Whether a long command draws progress: not with --quiet, not when stdout is no terminal."""
    return not (quiet or _QUIET["on"]) and console.is_terminal


class StepProgress:
    """A rich progress bar for long work measured in units (persons, rows, stays, ...), or
    nothing at all when ``enabled`` is False. Use as a context manager; ``update(done, total,
    text)`` moves the bar; ``status(text)`` is a spinner line for a step without a count."""

    def __init__(self, title: str, unit: str, enabled: bool = True):
        self.title, self.unit, self.enabled = escape(title), unit, enabled
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
        description = f"{self.title}: {escape(text)}" if text else self.title
        self._progress.update(self._task, completed=int(done), total=total or None,
                              description=description)

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)
        return False


@contextlib.contextmanager
def status(message: str, enabled: bool = True):
    """A spinner line while a step without a count runs (nothing with --quiet or when not
    ``enabled``); yields an object whose ``update(text)`` changes the line (kept as written)."""
    if not enabled or _QUIET["on"]:
        yield _Spinner(None)
        return
    with console.status(escape(message), spinner="dots") as spinner:
        yield _Spinner(spinner)


class _Spinner:
    def __init__(self, spinner) -> None:
        self._spinner = spinner

    def update(self, message: str) -> None:
        if self._spinner is not None:
            self._spinner.update(escape(message))


# --- help: option types in words, brackets kept ----------------------------------------------
#: The word shown for an option's value when its definition names none.
_TYPE_WORDS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "Path": "PATH",
               "datetime": "TIME"}


def _no_type(ctx):
    return None


def _name_type_in_words(param) -> None:
    if isinstance(param, TyperArgument):
        # its name says what it is (FOLDER, SOURCE, STUDY): no '<path>' beside it
        param.display_type_rich = _no_type
        if param.metavar is None:
            param.metavar = (param.name or "value").upper()
        return
    if param.metavar is not None:
        return
    if isinstance(param, TyperOption) and (param.is_flag or param.count):
        param.metavar = ""  # a flag takes no value: nothing to name
        return
    annotation = getattr(param.type_descriptor, "annotation", None)
    inner = getattr(annotation, "__args__", None)
    base = inner[0] if inner else annotation
    param.metavar = _TYPE_WORDS.get(getattr(base, "__name__", ""), "TEXT")


@contextlib.contextmanager
def _escaped_help(objects):
    """Escape Rich markup in the help of ``objects`` while typer renders it (typer reads help
    as markup; ours is plain text, so 'hyperinflam[spark]' must survive)."""
    saved = []
    for obj in objects:
        for attr in ("help", "short_help", "epilog"):
            value = getattr(obj, attr, None)
            if isinstance(value, str):
                saved.append((obj, attr, value))
                setattr(obj, attr, escape(value))
    try:
        yield
    finally:
        for obj, attr, value in saved:
            setattr(obj, attr, value)


class _WordsAndBrackets:
    """Help that names option types in words and keeps brackets (commands and groups)."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            _name_type_in_words(param)
        return params

    def format_help(self, ctx, formatter) -> None:
        commands = list(getattr(self, "commands", {}).values())  # a group's command summaries
        with _escaped_help([self, *self.get_params(ctx), *commands]):
            super().format_help(ctx, formatter)


class HyperCommand(_WordsAndBrackets, TyperCommand):
    """A command whose help names option types in words and keeps brackets."""


class HyperGroup(_WordsAndBrackets, TyperGroup):
    """A command group rendered like :class:`HyperCommand` (its commands' summaries too)."""


def finish_app(app: typer.Typer) -> typer.Typer:
    """Give every command and group of ``app`` (recursively) the help rendering above, so a
    command added later by anyone gets it without asking."""
    app.info.cls = HyperGroup
    for command in app.registered_commands:
        if command.cls in (None, TyperCommand):
            command.cls = HyperCommand
    for group in app.registered_groups:
        if group.typer_instance is not None:
            finish_app(group.typer_instance)
    return app


# --- shared options (one definition, one help text) ------------------------------------------
DB_WHAT = ("DuckDB database file holding the canonical tables (or a folder of Parquet tables "
           "written by 'export parquet').")
DB_DEFAULT = ("Default: hyperinflam.duckdb in your user data directory ('hyperinflam info' "
              "shows which).")
DB_HELP = f"{DB_WHAT} {DB_DEFAULT}"


def db_option(note: str = "", metavar: str = "FILE", default: str = DB_DEFAULT):
    """--db: the database a command reads or writes; ``note`` adds what is particular to it,
    ``default`` says what happens without it when that is not the default database."""
    return typer.Option(None, "--db", help=" ".join(t for t in (DB_WHAT, default, note) if t),
                        metavar=metavar, show_default=False)


def out_option(what: str, default=None, metavar: str = "FILE"):
    """-o/--out: where a command writes its output; ``what`` says what is written there."""
    return typer.Option(default if default is not None else ..., "--out", "-o", help=what,
                        metavar=metavar, show_default=default is not None)


TZ_HELP = ("Site time zone (IANA name, e.g. Europe/Amsterdam) of every time written without an "
           "offset: in the input and in the time options (--at, --as-of). Times with an offset "
           "are honoured; stored and shown times are UTC.")
SITE_TZ_OPTION = typer.Option("UTC", "--tz", help=TZ_HELP, metavar="ZONE")

UNITS_OPTION = typer.Option(
    None, "--units", metavar="FILE", help="Site unit spellings: a CSV laid out like "
    "vocabulary/units.csv (variable,unit,factor,offset,status,reference); its rows take "
    "precedence.")

#: Help of every --codes option (one dictionary, one layout: docs/vocabulary.md).
CODES_HELP = ("Site codes (repeatable): a CSV laid out like vocabulary/codes.csv (kind,target,"
              "system,code,concept_id,unit_when_missing,display,status,reference; the former "
              "per-reader layouts are read too; docs/vocabulary.md). A site row takes precedence "
              "over a shipped row for the same code, and a later --codes file over an earlier "
              "one.")


DOMAINS_HELP = ("The site's declaration of the domains its source records (repeatable): a CSV "
                "with the columns domain,status; status 'complete' (recorded: none means none) "
                "or 'absent' (not recorded: unknown everywhere, never 'no'). A domain is a "
                "variable (ferritin), an organ-support kind (invasive_ventilation), vasoactive, "
                "drugs, conditions, infection, death, weight, or a group (organ_support, labs, "
                "vitals, measurements, events). Without one, a domain is recorded when the "
                "load holds rows of it. docs/sources.md.")


def domains_option(note: str = ""):
    """--domains FILE, repeatable: the site declares domains complete or absent (every
    loader, one meaning; sources/domains.py)."""
    return typer.Option(None, "--domains", metavar="FILE",
                        help=DOMAINS_HELP + (f" {note}" if note else ""))


def codes_option(note: str = ""):
    """--codes FILE, repeatable; the site's rows take precedence (every loader, one meaning)."""
    return typer.Option(None, "--codes", metavar="FILE",
                        help=CODES_HELP + (f" {note}" if note else ""))


#: --quiet of every long command: no progress bar, spinner or step lines (results and errors
#: still print). Progress is also off when the output is not a terminal.
QUIET_OPTION = typer.Option(False, "--quiet", "-q", help="No progress bar or step lines (the "
                            "results and any error are still printed). Progress is also off when "
                            "the output is not a terminal.")

# --engine / --spark-master / --spark-conf of screen, study run and load omop (docs/scale.md).
ENGINE_HELP = ("Engine that computes: 'duckdb' (embedded, default) or 'spark' (reads --db as a "
               "Parquet folder or catalog:DATABASE; see docs/scale.md).")


def engine_option(note: str = ""):
    return typer.Option("duckdb", "--engine", help=ENGINE_HELP + (f" {note}" if note else ""),
                        metavar="NAME")


ENGINE_OPTION = engine_option()
SPARK_MASTER_OPTION = typer.Option(
    None, "--spark-master", metavar="URL", help="Spark master URL with --engine spark, e.g. "
    "spark://host:7077. Default local[*].")
SPARK_CONF_OPTION = typer.Option(
    None, "--spark-conf", metavar="KEY=VALUE", help="Spark setting (repeatable), e.g. "
    "--spark-conf spark.executor.memory=8g.")


# --- times ----------------------------------------------------------------------------------
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


def check_tz(tz: str) -> str:
    """--tz: a known IANA zone, else one message naming --tz and the zone."""
    from hyperinflam.sources.timeparse import check_zone_name

    try:
        check_zone_name(tz)
    except ValueError as exc:
        fail(f"--tz: {exc}")
    return tz


def parse_at(text: str, tz: str, option: str = "--at"):
    """A time option (ISO 8601 only; no offset = read in --tz) -> naive UTC datetime."""
    from hyperinflam.sources.timeparse import parse_time

    check_tz(tz)
    try:
        return parse_time(text, tz, what=option)
    except ValueError as exc:
        fail(str(exc))


# --- the engine -----------------------------------------------------------------------------

def open_for_plans_or_fail(db, engine: str = "duckdb", spark_master: Optional[str] = None,
                           spark_conf: Optional[list[str]] = None):
    """The connection a compiled plan runs on: a bare DuckDB connection for a database file
    (no ibis import: a cached screen starts fast), else :func:`open_engine_or_fail`. Close it
    with :func:`close_connection`."""
    from hyperinflam.engine import connect_file, resolve_db_path

    if (engine or "duckdb").strip().lower() == "duckdb" and not spark_master and not spark_conf \
            and not resolve_db_path(db).is_dir():
        from hyperinflam.errors import EngineError

        try:
            return connect_file(db)
        except (FileNotFoundError, EngineError) as exc:
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
            with status("Starting Spark..."):
                return open_engine(db, engine, spark_master, spark_conf)
        return open_engine(db, engine, spark_master, spark_conf)
    except (EngineError, SourceError, FileNotFoundError) as exc:
        fail(str(exc))


def check_db_or_fail(db) -> Path:
    """The --db path when it is a database (or nothing yet), else one message (commands that
    only name the database, such as 'users', check it too)."""
    from hyperinflam.engine import check_database_path
    from hyperinflam.errors import EngineError

    try:
        return check_database_path(db)
    except EngineError as exc:
        fail(str(exc))
