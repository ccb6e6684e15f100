"""The repository stands alone: citations resolve inside it, and nothing points outside it.

1. Every citation of the clinical reference (``§5.2``, ``§12.11``, "clinical reference §11.1")
   in the scanned files names a heading of docs/clinical-reference.md, written in the one scheme
   that file documents at its top. Older forms ("§12 row 11", "clinical reference 11.1",
   "section 12 rows 1-8", "12 row 21") are reported with the form to write instead.
2. No file of the repository refers to the data, reference or notes folder that sat beside it
   while it was developed.

Each failure names file:line and the citation.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "clinical-reference.md"

#: Where citations are checked: the package (code, vocabulary CSVs, templates, the CLI help, the
#: shipped study), the docs, the README and the study files beside the package.
CITATION_SCOPE = ("src", "docs", "studies", "README.md")
#: Where a reference to the outside folder is looked for.
STANDALONE_SCOPE = ("src", "tests", "docs", "scripts", "benchmarks", "studies", ".ci",
                    "README.md", "pyproject.toml")
TEXT_SUFFIXES = {".py", ".md", ".csv", ".toml", ".j2", ".html", ".js", ".css", ".txt", ".sh",
                 ".properties", ".json", ".ndjson", ".sql", ""}

# Written in pieces so that this file does not match itself.
_OUTSIDE = "shar" + "ed"
OUTSIDE_PATTERNS = [re.compile(p) for p in (
    r"\.\./" + _OUTSIDE + r"\b", _OUTSIDE + r"/data\b", _OUTSIDE + r"/clinical-reference",
    _OUTSIDE + r"/stack-notes", r"/wo" + r"rk/")]

SECTION = r"\d+(?:\.\d+)*"
#: "§5.2", optionally followed by an old-style "row K".
SIGN = re.compile(r"§\s?(" + SECTION + r")(\s*,?\s*rows?\s+\d+)?")
#: "clinical reference 11.1", "clinical reference, section 12" (no § sign: the old form).
PROSE = re.compile(r"clinical reference\s*,?\s*(?:sections?\s+)?(" + SECTION + r")(?![\d.])",
                   re.IGNORECASE)
#: "12 row 21", "section 12 rows 1-8": the ambiguity list cited by table row.
ROW = re.compile(r"(?<![\d.§])12\s*,?\s+rows?\s+(\d+)")


def headings() -> set[str]:
    found = []
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#{2,4}\s+(" + SECTION + r")\.?\s", line)
        if m:
            found.append(m.group(1))
    assert len(found) == len(set(found)), "a section number heads two sections"
    return set(found)


def _files(scope: tuple[str, ...], root: Path = ROOT):
    for name in scope:
        path = root / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
        for file in candidates:
            if not file.is_file() or file.suffix not in TEXT_SUFFIXES:
                continue
            if any(part in ("__pycache__", ".venv", "node_modules") or part.endswith(".egg-info")
                   for part in file.relative_to(root).parts):
                continue
            try:
                text = file.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            yield file.relative_to(root).as_posix(), text


def citation_problems(scope: tuple[str, ...] = CITATION_SCOPE, root: Path = ROOT) -> list[str]:
    known = headings()
    problems = []
    for name, text in _files(scope, root):
        for number, line in enumerate(text.splitlines(), 1):
            for m in SIGN.finditer(line):
                section, row = m.group(1), m.group(2)
                if row:
                    k = re.search(r"\d+", row).group()
                    fix = f"§12.{k}" if section == "12" else f"§{section} criterion {k}"
                    problems.append(f"{name}:{number}: '{m.group(0).strip()}' -> write {fix}")
                elif section not in known:
                    problems.append(f"{name}:{number}: '§{section}' is not a heading of "
                                    f"docs/clinical-reference.md")
            for m in PROSE.finditer(line):
                problems.append(f"{name}:{number}: '{m.group(0)}' -> write 'clinical reference "
                                f"§{m.group(1)}'" + ("" if m.group(1) in known else
                                                     " (and it is not a heading)"))
            for m in ROW.finditer(line):
                problems.append(f"{name}:{number}: '{m.group(0)}' -> write §12.{m.group(1)}")
    return problems


def test_the_reference_numbers_every_ambiguity_as_a_heading():
    known = headings()
    assert {f"12.{k}" for k in range(1, 40)} <= known
    assert {"0", "1", "1.2", "5.4", "10.4", "11.1", "13"} <= known


def test_every_citation_names_a_heading_of_the_clinical_reference():
    problems = citation_problems()
    assert not problems, "citations that do not resolve:\n" + "\n".join(problems)


def test_the_checker_reports_each_kind_of_bad_citation(tmp_path):
    # The check itself can fail: one file with every old form and an unknown section.
    bad = tmp_path / "docs" / "bad.md"
    bad.parent.mkdir()
    bad.write_text("a (§12 row 11)\nb (clinical reference 11.1)\nc (see §99.9)\n"
                   "d (clinical reference section 12 rows 1-8)\ne (10.4; 12 row 1)\n"
                   "f (§1.2 row 4), fine: §12.11, clinical reference §11.1\n", encoding="utf-8")
    problems = citation_problems(("docs",), root=tmp_path)
    assert [p.split(":")[1] for p in problems] == ["1", "2", "3", "4", "4", "5", "6"], problems
    assert "write §12.11" in problems[0] and "write 'clinical reference §11.1'" in problems[1]
    assert "'§99.9' is not a heading" in problems[2]
    assert "write §12.1" in problems[5] and "write §1.2 criterion 4" in problems[6]


def test_nothing_refers_to_the_folder_beside_the_repository():
    problems = []
    for name, text in _files(STANDALONE_SCOPE):
        for number, line in enumerate(text.splitlines(), 1):
            for pattern in OUTSIDE_PATTERNS:
                if pattern.search(line):
                    problems.append(f"{name}:{number}: {line.strip()[:120]}")
                    break
    assert not problems, ("files that depend on a folder outside the repository (use tests/data, "
                          "the package data or docs/ instead):\n" + "\n".join(problems))
