"""docs/clinical-reference.md states the settings the code uses, with the code's values.

Where the reference says what hyperinflam chooses (a **Choice**, or an "In hyperinflam" line of
§12), it names a module constant (`criteria.hlh2004.FEVER_THRESHOLD_CEL = 38.5`; within a
paragraph that names the module, a constant alone: `DIC_INR_ABOVE = 1.5`) or a key of the founding
study file (`[windows] day7_tolerance_hours = 24`; then `key = value` for the same section). Each
one is looked up here in the package and in the shipped study, and its value compared with the
value the reference prints, so the reference cannot drift from the code unnoticed.
"""

from __future__ import annotations

import ast
import importlib
import re
import tomllib
from pathlib import Path

import pytest

from hyperinflam.study.definition import load_study

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "clinical-reference.md"
MODULE = re.compile(r"`((?:criteria|features|screening|sources|study|exports|engine)"
                    r"(?:\.[a-z_0-9]+)+)(?:\.([A-Z][A-Z0-9_]*))?(?: = ([^`]+))?`")
CONSTANT = re.compile(r"`([A-Z][A-Z0-9_]*) = ([^`]+)`")
STUDY_KEY = re.compile(r"`(?:\[(\w+)\] )?([a-z][a-z0-9_]*) = ([^`]+)`")


def _paragraphs() -> list[str]:
    """Paragraphs and list items of the reference (a table row is one paragraph)."""
    out, current = [], []
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith(("* ", "|", "#", "  * ")):
            if current:
                out.append(" ".join(current))
            current = [line] if line.strip() else []
        else:
            current.append(line.strip())
    if current:
        out.append(" ".join(current))
    return out


def _module(path: str):
    try:
        return importlib.import_module(f"hyperinflam.{path}")
    except ModuleNotFoundError:
        return None


def _value(text: str):
    """A Python literal as written in the reference (`= 38.5`, `= "uptodate"`, `= False`)."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text.strip()


def _toml_value(text: str):
    """A study-file value as written in the reference (TOML: `= true`, `= ["paired_t"]`)."""
    return tomllib.loads(f"v = {text.strip()}")["v"]


def _settings():
    """(paragraph number, where, stated value, actual value) of every named setting."""
    study = load_study("rajasekaran2014")
    found = []
    for number, paragraph in enumerate(_paragraphs()):
        modules = []
        for path, name, value in MODULE.findall(paragraph):
            module = _module(path)
            if module is None and "." in path:   # `criteria.hscore.FIT_INTERCEPT` style
                head, _, tail = path.rpartition(".")
                module, name = _module(head), name or tail
            assert module is not None, f"paragraph {number}: no module hyperinflam.{path}"
            modules.append(module)
            if name:
                assert hasattr(module, name), f"{module.__name__} has no {name}"
                if value:
                    found.append((number, f"{module.__name__}.{name}", _value(value),
                                  getattr(module, name)))
        for name, value in CONSTANT.findall(paragraph):
            if re.search(r"`[a-z_.]+\." + name + " = ", paragraph):
                continue  # already read qualified
            owners = [m for m in modules if hasattr(m, name)]
            assert owners, f"paragraph {number}: {name} is in none of the modules it names " \
                           f"({[m.__name__ for m in modules]})"
            found.append((number, f"{owners[0].__name__}.{name}", _value(value),
                          getattr(owners[0], name)))
        section = None
        for sec, key, value in STUDY_KEY.findall(paragraph):
            section = sec or section
            if section is None:
                continue
            part = getattr(study, section, None)
            assert part is not None and hasattr(part, key), f"study file has no [{section}] {key}"
            found.append((number, f"[{section}] {key}", _toml_value(value), getattr(part, key)))
    return found


SETTINGS = _settings()


def test_the_reference_names_settings():
    # the parsing itself finds what it should (a reference with none would pass vacuously)
    names = {where for _, where, _, _ in SETTINGS}
    assert {"hyperinflam.criteria.hlh2004.FEVER_THRESHOLD_CEL",
            "hyperinflam.criteria.hyperferritinemic_sepsis.DIC_INR_ABOVE",
            "hyperinflam.features.derived.SF_MAX_SPO2_PCT",
            "[windows] day7_tolerance_hours", "[analysis] tests"} <= names
    assert len(SETTINGS) >= 40


@pytest.mark.parametrize("paragraph, where, stated, actual", SETTINGS,
                         ids=[s[1] for s in SETTINGS])
def test_each_stated_value_is_the_code_value(paragraph, where, stated, actual):
    if isinstance(actual, dict) and not isinstance(stated, dict):   # "40 U/L for every group"
        assert set(actual.values()) == {stated}, f"{where}: {actual} is not {stated} throughout"
    elif isinstance(actual, bool) or isinstance(stated, bool):
        assert actual is stated
    elif isinstance(actual, (int, float)) and isinstance(stated, (int, float)):
        assert float(actual) == float(stated)
    else:
        assert actual == stated, f"{where}: the reference says {stated!r}, the code {actual!r}"
