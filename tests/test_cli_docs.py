"""docs/cli.md is generated from the typer app and lists every command and option; this test
fails when they drift (someone added or changed an option without regenerating the page)."""

from __future__ import annotations

from pathlib import Path

import typer

from hyperinflam.cli import app
from hyperinflam.cli.reference import render

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "cli.md"
REGENERATE = "python -m hyperinflam.cli.reference --write docs/cli.md"


def test_docs_cli_md_is_the_command_line_as_it_is():
    assert DOC.read_text(encoding="utf-8") == render(), (
        f"docs/cli.md is out of date with the command line. Regenerate it with: {REGENERATE} "
        f"(and commit it).")


def test_docs_cli_md_names_every_command_and_option():
    text = DOC.read_text(encoding="utf-8")

    def walk(command, path):
        subs = getattr(command, "commands", None)
        if subs:
            for name, sub in subs.items():
                yield from walk(sub, [*path, name])
        else:
            yield path, command

    commands = list(walk(typer.main.get_command(app), []))
    assert len(commands) >= 20
    for path, command in commands:
        assert f"### {' '.join(path)}\n" in text, f"{' '.join(path)}: {REGENERATE}"
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("-"):
                    assert f"`{opt}" in text or f", {opt}" in text, (path, opt, REGENERATE)
