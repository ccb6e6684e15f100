"""The ``hyperinflam`` command line (typer + rich).

Each command is a thin shell over a library function: parse options, call, render. Errors the user
can fix (a missing column, an unknown key in a study file) are printed as one clear message and
exit with status 2, never as a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from hyperinflam import __version__

app = typer.Typer(
    name="hyperinflam",
    help=(
        "Screen PICU stays for the hyperinflammatory phenotype (sHLH / MAS / sepsis-MODS), follow "
        "anakinra therapy, and run the founding case-series study on your own data.\n\n"
        "Start with 'hyperinflam demo': it generates a synthetic PICU cohort into the embedded "
        "DuckDB database and runs the founding study (Rajasekaran 2014), writing an offline HTML "
        "report."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
load_app = typer.Typer(help="Load a site's data into the canonical tables.", no_args_is_help=True)
study_app = typer.Typer(help="Run declarative studies (see the studies/ folder).", no_args_is_help=True)
app.add_typer(load_app, name="load")
app.add_typer(study_app, name="study")

console = Console()
err_console = Console(stderr=True)

DB_HELP = ("DuckDB database file holding the canonical tables. Default: hyperinflam.duckdb in "
           "your user data directory.")


def fail(message: str, code: int = 2) -> None:
    """Print a user-facing error (no traceback) and exit."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@app.callback(invoke_without_command=True)
def _main(version: bool = typer.Option(False, "--version", help="Print the version and exit.")):
    if version:
        console.print(f"hyperinflam {__version__}")
        raise typer.Exit()


# --- load csv -------------------------------------------------------------------------------
# (sources/csv.py)

# --- synth ----------------------------------------------------------------------------------
# (synth.py)

# --- study run ------------------------------------------------------------------------------
# (study/, report/)

# --- demo -----------------------------------------------------------------------------------

# --- screen ---------------------------------------------------------------------------------
# (features.py, criteria/)


if __name__ == "__main__":  # pragma: no cover
    app()
