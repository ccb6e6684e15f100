"""docs/cli.md, generated from the typer app: every command, its help and every option.

Regenerate after changing a command or an option::

    python -m hyperinflam.cli.reference --write docs/cli.md

``tests/test_cli_docs.py`` fails when docs/cli.md and the app drift apart. The page's opening
(the options that mean the same everywhere, site codes, times, exit status) is the text below;
the rest is read from the commands.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import typer

#: The shared options, in the order the table of commands shows them.
SHARED_OPTIONS = ("--db", "--out", "--tz", "--codes", "--units", "--engine", "--quiet")

INTRO = """\
# The command line

`hyperinflam COMMAND --help` prints the same text as this page; this page is generated from the
commands themselves (`python -m hyperinflam.cli.reference --write docs/cli.md`) and a test fails
when the two drift apart.

## Options that mean the same everywhere

Each of these options has one definition (`src/hyperinflam/cli/common.py`) and one meaning on
every command that takes it; the table below shows which command takes which.

| option | meaning |
|---|---|
| `--db FILE` | The database: a DuckDB file holding the canonical tables (or, where a command only reads, a folder of Parquet tables written by `export parquet`). Default: `hyperinflam.duckdb` in your user data directory; `hyperinflam info` shows what a database holds. A folder that is not a Parquet export, or a file that is not a DuckDB database, is one error message naming the fix. |
| `-o, --out FILE` or `FOLDER` | Where the command writes its output: a file (`screen`: `.csv` or `.parquet`; `quarantine`: `.csv` or `.parquet`) or a folder (`study run`, `demo`, `synth`, `export parquet`). |
| `--tz ZONE` | The site time zone (IANA name, e.g. `Europe/Amsterdam`) of every time written without an offset: in the input files and in every time option (`screen --at`, `serve --as-of`). A time with an offset (`Z`, `+01:00`) is that instant. Times are stored and shown in UTC. An unknown zone is an error naming the zone. |
| `--codes FILE` | Site codes, repeatable, on every loader (CSV included) and on `export omop`: a CSV laid out like `vocabulary/codes.csv` (see "Site codes"). A site row takes precedence over a shipped row for the same code, and a later `--codes` file over an earlier one. |
| `--units FILE` | Site unit spellings, on every loader: a CSV laid out like `vocabulary/units.csv`; its rows take precedence. |
| `--engine NAME` | The engine that computes: `duckdb` (embedded, default) or `spark` (with `--spark-master URL` and `--spark-conf KEY=VALUE`; see [scale.md](scale.md)). |
| `-q, --quiet` | No progress bar, spinner or step lines; the results and any error are still printed. Progress is also off when the output is not a terminal. |

## Site codes

Every `--codes FILE` has the one layout of the dictionary, `vocabulary/codes.csv`
(`kind,target,system,code,concept_id,unit_when_missing,display,status,reference`; the former
per-reader layouts are read too): see [vocabulary.md](vocabulary.md). A site row replaces the
shipped rows of the same kind, system and code; with several `--codes` files, a later file's row
comes before an earlier one's. For `load csv`, rows of system `CSV` give the site's own names as
written in its CSV files (kind `measurement`, `drug` or `support`; a drug's name also names a
vasoactive infusion in `organ_support.csv`; case and surrounding spaces ignored), for example:

    kind,target,system,code,reference
    measurement,ferritin,CSV,Ferritine (serum),site lab system
    drug,anakinra,CSV,Kineret 100 mg,site pharmacy
    drug,norepinephrine,CSV,Noradrenalin,site ICU chart

## Times

Every time option and every time in the input is ISO 8601: year-month-day, then hours and
minutes, optional seconds and an optional offset (`2024-03-01 14:30`, `2024-03-01T14:30:00`,
`2024-03-01T14:30:00+01:00`). Day/month orders such as `11/03/2024` are never guessed: they are an
error naming the accepted form. Details: [time-model.md](time-model.md).

## Exit status

0 when the command did its work (a load with quarantined rows, a screen with no stay meeting a
criterion and an empty database are normal answers); 2 for a problem you can fix, printed as one
message naming the file, option or key and the fix, never a traceback.
"""


def _command_tree(app: typer.Typer):
    """(path, click command) for every command, in the order --help lists them."""
    import click  # noqa: F401 - typer's click objects

    root = typer.main.get_command(app)
    ctx = root.make_context("hyperinflam", ["--help"], resilient_parsing=True)

    def walk(command, path, parent_ctx):
        yield path, command, parent_ctx
        for name in getattr(command, "commands", {}) or {}:
            sub = command.commands[name]
            sub_ctx = sub.make_context(name, [], parent=parent_ctx, resilient_parsing=True)
            yield from walk(sub, [*path, name], sub_ctx)

    yield from walk(root, ["hyperinflam"], ctx)


def _help_text(command) -> str:
    return inspect.cleandoc(command.help or "").strip()


def _markdown_paragraphs(text: str) -> str:
    """Help paragraphs as Markdown (single line breaks joined, as --help shows them)."""
    paragraphs = [" ".join(line.strip() for line in p.splitlines()) for p in text.split("\n\n")]
    out = []
    for p in paragraphs:
        if p.startswith("hyperinflam "):  # an example command
            out.append(f"    {p}")
        else:
            out.append(p)
    return "\n\n".join(out)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(param) -> str:
    if getattr(param, "is_flag", False) or param.required:
        return ""
    default = param.default
    if default is None or default == [] or default == () or callable(default):
        return ""
    if isinstance(default, Path):
        default = str(default)
    return f"`{default}`"


def _option_names(param) -> str:
    names = sorted(param.opts, key=lambda o: (o.startswith("--"), o))
    names += list(param.secondary_opts)
    metavar = param.metavar or ""
    joined = ", ".join(names)
    return f"`{joined} {metavar}`" if metavar else f"`{joined}`"


def _params(command, ctx):
    return [p for p in command.get_params(ctx) if p.name != "help"]


def render(app: typer.Typer | None = None) -> str:
    """The whole of docs/cli.md."""
    from hyperinflam.cli import app as default_app

    app = app or default_app
    tree = list(_command_tree(app))
    leaves = [(path, cmd, ctx) for path, cmd, ctx in tree
              if not getattr(cmd, "commands", None)]
    lines = [INTRO, "## Commands and their options", "",
             "| command | what it does | " + " | ".join(f"`{o}`" for o in SHARED_OPTIONS) + " |",
             "|---|---|" + "---|" * len(SHARED_OPTIONS)]
    for path, cmd, ctx in leaves:
        opts = {o for p in _params(cmd, ctx) for o in p.opts}
        first = _help_text(cmd).split("\n\n")[0]
        marks = ["yes" if o in opts else "" for o in SHARED_OPTIONS]
        anchor = "-".join(path[1:])
        lines.append(f"| [`{' '.join(path[1:])}`](#{anchor}) | {_cell(first)} | "
                     + " | ".join(marks) + " |")
    lines.append("")
    for path, cmd, ctx in leaves:
        name = " ".join(path[1:])
        lines += [f"### {name}", ""]
        pieces = " ".join(cmd.collect_usage_pieces(ctx))
        lines += [f"    {' '.join(path)} {pieces}", "", _markdown_paragraphs(_help_text(cmd)), ""]
        params = _params(cmd, ctx)
        arguments = [p for p in params if p.param_type_name == "argument"]
        options = [p for p in params if p.param_type_name == "option"]
        if arguments:
            lines += ["| argument | meaning |", "|---|---|"]
            for p in arguments:
                lines.append(f"| `{p.metavar or p.name.upper()}` | {_cell(p.help or '')} |")
            lines.append("")
        if options:
            lines += ["| option | meaning | default |", "|---|---|---|"]
            for p in options:
                meaning = _cell(p.help or "") + (" (required)" if p.required else "")
                lines.append(f"| {_option_names(p)} | {meaning} | {_default(p)} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    text = render()
    if args[:1] == ["--write"] and len(args) == 2:
        Path(args[1]).write_text(text, encoding="utf-8")
        return 0
    if args:
        print("usage: python -m hyperinflam.cli.reference [--write docs/cli.md]", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
