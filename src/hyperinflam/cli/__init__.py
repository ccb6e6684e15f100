"""The ``hyperinflam`` command line (typer + rich): the ``app`` and the order of its commands.

Each command is a thin shell over a library function: parse options, call, render; one module per
command group (load, screen, study, web, export, synth, quarantine, info; shared options in
common.py, one definition each). Errors the user can fix (a missing column, an unknown key in a
study file) are printed as one clear message and exit with status 2, never as a traceback.
docs/cli.md is generated from this app (python -m hyperinflam.cli.reference); a test fails when
they drift.
"""

from __future__ import annotations

import typer

from hyperinflam import __version__
from hyperinflam.cli import export, info, load, quarantine, screen, study, synth, web
from hyperinflam.cli.common import console, finish_app, set_quiet

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


@app.callback(invoke_without_command=True)
def _main(version: bool = typer.Option(False, "--version", help="Print the version and exit.")):
    set_quiet(False)  # --quiet is per command
    if version:
        console.print(f"hyperinflam {__version__}")
        raise typer.Exit()


# Commands first, then the command groups, in the order 'hyperinflam --help' lists them.
app.add_typer(load.load_app, name="load")
app.add_typer(study.study_app, name="study")
app.command("synth", help=synth.SYNTH_HELP)(synth.synth_command)
app.command()(synth.demo)
app.command("screen", help=screen.SCREEN_HELP)(screen.screen_command)
app.command("quarantine", help=quarantine.QUARANTINE_HELP)(quarantine.quarantine_command)
app.command("info")(info.info_command)
app.add_typer(web.users_app, name="users")
app.command()(web.serve)
app.command("audit")(web.audit_command)
app.add_typer(export.export_app, name="export")

# Last: every command (also one added above later) names option types in words and keeps
# brackets in its help (cli/common.py).
finish_app(app)


if __name__ == "__main__":  # pragma: no cover
    app()
